//! Shared helpers for Steward's benchmarks: percentiles and a demo-like hub in-process.

use std::time::Duration;

/// (median, p99, max) of a sample.
pub fn stats(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    if v.is_empty() {
        return (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    }
    v.sort();
    let pick = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (pick(0.5), pick(0.99), *v.last().unwrap_or(&Duration::ZERO))
}

pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

pub fn us(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

/// Creates (if missing) a Unix user for benchmarks.
pub fn ensure_user(name: &str) {
    if nix::unistd::User::from_name(name).ok().flatten().is_none() {
        let st = std::process::Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", name])
            .status()
            .expect("useradd");
        assert!(st.success(), "useradd {name}");
    }
}

pub fn require_root() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("this benchmark must run as root (it starts processes as other users)");
        std::process::exit(2);
    }
}

/// Unix users `stwb01`..`stwbNN`, created if missing.
pub fn bench_users(n: usize) -> Vec<String> {
    let users: Vec<String> = (1..=n).map(|i| format!("stwb{i:02}")).collect();
    for u in &users {
        ensure_user(u);
    }
    users
}

/// A demo data directory (users, policy, TLS, helper config) in a fresh traversable
/// temporary directory, using the binaries in `exe_dir`; returns it and its config path.
pub fn demo_data_dir(
    exe_dir: &std::path::Path,
) -> anyhow::Result<(tempfile::TempDir, std::path::PathBuf)> {
    demo_data_dir_with_credentials(exe_dir).map(|(d, c, _)| (d, c))
}

/// A demo data directory, its config file and the demo users' (name, password) pairs.
pub type DemoData = (tempfile::TempDir, std::path::PathBuf, Vec<(String, String)>);

/// [`demo_data_dir`] and the demo users' (name, password) pairs.
pub fn demo_data_dir_with_credentials(exe_dir: &std::path::Path) -> anyhow::Result<DemoData> {
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::Builder::new()
        .prefix("steward-bench-hub-")
        .tempdir_in("/tmp")?;
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o711))?;
    let opts = steward_hub::cli::demo::DemoOptions {
        data_dir: data.path().to_path_buf(),
        listen: "127.0.0.1:0".parse()?,
        credentials_file: None,
        clock_offset_file: None,
        cylc_venv: None,
        database_url: None,
    };
    let (config, creds) = steward_hub::cli::demo::prepare_from(&opts, exe_dir)?;
    Ok((data, config, creds))
}

/// Resident set size of a process, in KiB (0 if it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Starts `steward serve -c cfg` and returns it once it printed its ready line, with the
/// time that took. Its later output is drained so it never blocks on a full pipe.
pub fn start_hub(
    steward: &std::path::Path,
    cfg: &std::path::Path,
) -> (std::process::Child, Duration) {
    use std::io::BufRead;
    let t = std::time::Instant::now();
    let mut child = std::process::Command::new(steward)
        .args(["serve", "-c"])
        .arg(cfg)
        .env("STEWARD_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("steward serve");
    let out = child.stdout.take().expect("piped stdout");
    let mut lines = std::io::BufReader::new(out).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("ready on") => break,
            Some(_) => continue,
            None => panic!("hub exited before it was ready"),
        }
    }
    let ready = t.elapsed();
    std::thread::spawn(move || for _ in lines {});
    (child, ready)
}

/// Appends one summary row for `bench/run` to the file `STEWARD_BENCH_JSON` names (if
/// any): `bench`, `figure`, `value`, `command`, and optionally `baseline`,
/// `baseline_value`, `target`, `met`.
pub fn append_row(row: serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write;
    let Ok(file) = std::env::var("STEWARD_BENCH_JSON") else {
        return Ok(());
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    writeln!(f, "{row}")?;
    Ok(())
}

/// Makes the e2e fixtures (`steward_e2e::bin`) find the hub's binaries beside this
/// benchmark's (`target/<profile>/`), unless `STEWARD_BIN_DIR` says otherwise.
pub fn use_own_bin_dir() -> anyhow::Result<()> {
    if std::env::var_os("STEWARD_BIN_DIR").is_none() {
        let dir = std::env::current_exe()?
            .parent()
            .map(std::path::Path::to_path_buf)
            .ok_or_else(|| anyhow::anyhow!("no executable directory"))?;
        std::env::set_var("STEWARD_BIN_DIR", dir);
    }
    Ok(())
}
