//! PAM login throughput (issue 5): the hub's authenticate+acct_mgmt through pam-client,
//! beside `pamtester` run directly on the same service and user (a process per login).
//!
//! Run as root: `cargo run --release -p steward-bench --bin pam`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;
use steward_bench::*;

fn main() -> anyhow::Result<()> {
    require_root();
    ensure_user("stwbench");
    let password = "bench-Password-1";
    let mut c = Command::new("chpasswd").stdin(Stdio::piped()).spawn()?;
    writeln!(c.stdin.as_mut().unwrap(), "stwbench:{password}")?;
    c.wait()?;
    if !std::path::Path::new("/etc/pam.d/steward").exists() {
        std::fs::write(
            "/etc/pam.d/steward",
            include_str!("../../../etc/pam.d/steward"),
        )?;
    }
    let n = 400;
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..n / 2 {
                    steward_hub::auth::pam_authenticate("steward", "stwbench", password)
                        .expect("pam");
                }
            });
        }
    });
    let ours = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..n / 2 {
                    let mut p = Command::new("pamtester")
                        .args(["steward", "stwbench", "authenticate", "acct_mgmt"])
                        .stdin(Stdio::piped())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("pamtester");
                    writeln!(p.stdin.as_mut().unwrap(), "{password}").unwrap();
                    assert!(p.wait().unwrap().success());
                }
            });
        }
    });
    let theirs = n as f64 / t.elapsed().as_secs_f64();
    println!("PAM logins (pam_unix, yescrypt), 2 threads, n={n}: steward {ours:.0}/s, pamtester {theirs:.0}/s, ratio {:.2}", ours / theirs);
    Ok(())
}
