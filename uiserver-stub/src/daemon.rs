//! Starting a scheduler so that it outlives the UI server.
//!
//! The UI server re-executes its own binary as `steward-uiserver scheduler --workflow
//! NAME --detach`. That fresh, still single-threaded process forks, the child calls
//! `setsid` (new session: no controlling terminal, not in the UI server's process
//! group, so signals aimed at the UI server's group miss it), forks again (so it can
//! never reacquire a terminal and is reparented away from the UI server), points its
//! stdio at /dev/null and the scheduler log, and only then starts its runtime.
//! Forking happens before any thread exists, which is what makes `fork` sound here.

use crate::paths::{create_private_dir, Layout};
use anyhow::Context;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

/// Double-forks into the background. Returns only in the grandchild.
pub fn detach(layout: &Layout, workflow: &str) -> anyhow::Result<()> {
    join_workflow_cgroups();
    let log_path = layout.scheduler_log(workflow);
    if let Some(dir) = log_path.parent() {
        create_private_dir(dir)?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let devnull = std::fs::File::open("/dev/null")?;
    // Called from `main` before any runtime or thread is started; both parents exit.
    crate::sys::fork_and_leave_parent()?;
    nix::unistd::setsid()?;
    crate::sys::fork_and_leave_parent()?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    nix::unistd::chdir(layout.home())?;
    nix::unistd::dup2(devnull.as_raw_fd(), 0)?;
    nix::unistd::dup2(log.as_raw_fd(), 1)?;
    nix::unistd::dup2(log.as_raw_fd(), 2)?;
    Ok(())
}

/// Moves this (scheduler) process into the per-user `workflows` cgroup that the spawn
/// helper delegated to the owner (`STEWARD_WORKFLOW_CGROUPS`, colon-separated), so that
/// stopping or culling the UI server — which kills the server's whole cgroup — leaves
/// workflows running. Without the variable (tests, or a site that wants workflows to
/// die with the server) the scheduler stays where it is.
fn join_workflow_cgroups() {
    let Ok(dirs) = std::env::var("STEWARD_WORKFLOW_CGROUPS") else {
        return;
    };
    let me = std::process::id().to_string();
    for dir in dirs.split(':').filter(|d| !d.is_empty()) {
        let procs = Path::new(dir).join("cgroup.procs");
        if let Err(e) = std::fs::write(&procs, &me) {
            eprintln!(
                "scheduler: cannot join {}: {e}; it stays in the server's cgroup",
                procs.display()
            );
        }
    }
}

/// Starts a detached scheduler for `workflow` and waits until its socket answers.
pub async fn spawn_scheduler(layout: &Layout, workflow: &str) -> Result<u32, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("scheduler")
        .arg("--workflow")
        .arg(workflow)
        .arg("--detach")
        .env_remove("STEWARD_UISERVER_BIND")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // The first process exits as soon as it has forked; reap it.
    let status = cmd
        .status()
        .await
        .map_err(|e| format!("cannot start the scheduler: {e}"))?;
    if !status.success() {
        return Err(format!("the scheduler launcher failed ({status})"));
    }
    let sock = layout.socket(workflow);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if sock.exists() && tokio::net::UnixStream::connect(&sock).await.is_ok() {
            let pid = read_pid(layout, workflow).unwrap_or(0);
            return Ok(pid);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "the scheduler for {workflow} did not start within 10 s; last log lines: {}",
                tail_lines(&layout.scheduler_log(workflow), 3)
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn read_pid(layout: &Layout, workflow: &str) -> Option<u32> {
    let s = std::fs::read_to_string(layout.state_file(workflow)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&s).ok()?;
    v.get("scheduler_pid")?.as_u64().map(|p| p as u32)
}

/// Last `n` lines of a (small, owner-private) log, for an error message.
pub fn tail_lines(path: &Path, n: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return "(no scheduler log)".into();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut buf = Vec::new();
    let _ = f.take(4096).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}
