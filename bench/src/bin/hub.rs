//! Hub process benchmarks (issue 8, partial): start-to-ready, idle RSS, and SIGTERM with
//! 20 running UI servers (which must be left running).
//!
//! Run as root: `cargo build --release --workspace --bins && /var/cache/steward-target/release/hub`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use steward_bench::*;

fn main() -> anyhow::Result<()> {
    require_root();
    let exe_dir = std::env::current_exe()?.parent().unwrap().to_path_buf();
    let steward = exe_dir.join("steward");
    let users = bench_users(20);
    let (data, cfg) = demo_data_dir(&exe_dir)?;
    let text = std::fs::read_to_string(&cfg)?
        .replace("prestart = [\"alice\", \"bob\", \"carl\"]", "prestart = []");
    std::fs::write(&cfg, &text)?;

    // Start to ready (database, CA, keys and audit log already exist after the first run).
    let mut times = vec![];
    let mut rss = 0;
    for i in 0..10 {
        let (mut child, ready) = start_hub(&steward, &cfg);
        if i > 0 {
            times.push(ready);
        }
        std::thread::sleep(Duration::from_millis(500));
        rss = rss_kib(child.id());
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        child.wait()?;
    }
    let (m, p, _) = stats(times);
    println!(
        "hub start to ready (steward serve, warm data dir), n=9: median {} p99 {}",
        ms(m),
        ms(p)
    );
    println!("hub idle RSS: {:.1} MiB", rss as f64 / 1024.0);

    // SIGTERM with 20 running servers: the hub exits, the servers keep running.
    let prestart = format!(
        "prestart = [{}]",
        users
            .iter()
            .map(|u| format!("\"{u}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    std::fs::write(&cfg, text.replace("prestart = []", &prestart))?;
    let (mut child, _) = start_hub(&steward, &cfg);
    let procs = |u: &str| {
        std::fs::read_to_string(format!(
            "/sys/fs/cgroup/pids/steward-demo/{u}/default/cgroup.procs"
        ))
        .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while users.iter().any(|u| procs(u).trim().is_empty()) {
        assert!(Instant::now() < deadline, "servers did not all start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    child.wait()?;
    let stop = t.elapsed();
    let left = users.iter().filter(|u| !procs(u).trim().is_empty()).count();
    println!(
        "SIGTERM with 20 running servers: hub gone in {}, {left}/20 servers still running",
        ms(stop)
    );
    // Clean up: a hub on the same state re-adopts and the helper stops them.
    for u in &users {
        let _ = Command::new(exe_dir.join("steward-spawn"))
            .arg("--config")
            .arg(data.path().join("spawn.toml"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(format!("{{\"verb\":\"stop\",\"user\":\"{u}\",\"server\":\"default\",\"grace_secs\":0}}").as_bytes())?;
                c.wait()
            });
    }
    Ok(())
}
