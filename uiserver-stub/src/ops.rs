//! Applying an operation to a target: the UI server's part (play, clean, scan, read,
//! reload of a stopped workflow) and forwarding the rest to the workflow's scheduler.

use crate::daemon;
use crate::flow::Flow;
use crate::sched_client::Registry;
use crate::state::{TaskStatus, WorkflowState};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use steward_protocol::Operation;

pub use steward_protocol::Target;

/// Parses `workflow`, `workflow//cycle[/task[/job]]`, or the same with `~owner/`, and
/// refuses a target of another owner.
pub fn parse_target(s: &str, owner: &str) -> Result<Target, String> {
    let t = Target::parse(s.trim(), owner).map_err(|e| e.to_string())?;
    if t.workflow.owner != owner {
        return Err(format!(
            "target {} belongs to ~{}, but this server serves ~{owner}",
            t.workflow, t.workflow.owner
        ));
    }
    Ok(t)
}

/// Makes sure `wf` is known (rescanning once for a workflow created since start).
pub async fn ensure_known(reg: &Arc<Registry>, wf: &str) -> Result<(), String> {
    if reg.contains(wf) {
        return Ok(());
    }
    reg.scan().await;
    if reg.contains(wf) {
        Ok(())
    } else {
        Err(format!(
            "no workflow named {wf:?} (~/.steward/workflows/{wf}/flow.toml does not exist)"
        ))
    }
}

/// Performs `op` on `target`; `Ok` = applied (message says what happened), `Err` =
/// did not apply (message says precisely why).
pub async fn perform(
    reg: &Arc<Registry>,
    op: Operation,
    target: &Target,
    args: BTreeMap<String, Value>,
) -> Result<String, String> {
    let wf = target.workflow.name.as_str();
    if op == Operation::Scan {
        let (all, new) = reg.scan().await;
        if !all.iter().any(|n| n == wf) {
            return Err(format!(
                "scanned {} workflow(s); none is named {wf:?}",
                all.len()
            ));
        }
        return Ok(format!(
            "scanned {} workflow(s){}",
            all.len(),
            if new.is_empty() {
                String::new()
            } else {
                format!("; new: {}", new.join(", "))
            }
        ));
    }
    ensure_known(reg, wf).await?;
    if op == Operation::Read {
        return Ok(format!(
            "read {target}: use /api/summary, /api/workflow or the WebSocket snapshot"
        ));
    }
    let handle = reg.handle(wf);
    match (op, handle) {
        (Operation::Clean, Some(_)) => Err(format!(
            "{wf} is running; stop it before cleaning its run directory"
        )),
        (Operation::Clean, None) => clean(reg, wf).await,
        (Operation::Play, None) => play(reg, wf, &args).await,
        (Operation::Reload, None) => {
            let flow =
                Flow::load(&reg.layout.flow_file(wf)).map_err(|e| format!("reload failed: {e}"))?;
            reg.refresh_stopped(wf);
            Ok(format!(
                "reloaded the definition of stopped workflow {wf}: {} task(s) x {} cycle(s)",
                flow.tasks.len(),
                flow.cycles.len()
            ))
        }
        (_, Some(h)) => {
            let (ok, message) = h
                .op(
                    op,
                    target.cycle.clone(),
                    target.task.clone(),
                    target.job,
                    args,
                )
                .await?;
            if ok {
                Ok(message)
            } else {
                Err(message)
            }
        }
        (_, None) => Err(format!(
            "{wf} is stopped: {op} needs a running scheduler (play it first)"
        )),
    }
}

async fn play(
    reg: &Arc<Registry>,
    wf: &str,
    args: &BTreeMap<String, Value>,
) -> Result<String, String> {
    let layout = &reg.layout;
    let flow = Flow::load(&layout.flow_file(wf)).map_err(|e| format!("cannot play {wf}: {e}"))?;
    let fresh = args.get("fresh").and_then(Value::as_bool).unwrap_or(false);
    let state_file = layout.state_file(wf);
    if fresh {
        let _ = std::fs::remove_file(&state_file);
    } else if let Some(mut s) = WorkflowState::load_stopped(&state_file) {
        s.sync_with(&flow);
        if !s.tasks.is_empty()
            && s.tasks
                .iter()
                .all(|t| matches!(t.status, TaskStatus::Succeeded | TaskStatus::Removed))
        {
            return Err(format!(
                "{wf} has already completed; play with args.fresh = true to start a new run, or clean it"
            ));
        }
    }
    daemon::spawn_scheduler(layout, wf).await?;
    let h = reg.attach(wf).await?;
    let pid = h
        .detail()
        .await
        .ok()
        .and_then(|s| s.scheduler_pid)
        .unwrap_or(0);
    Ok(format!(
        "{wf} started{}: scheduler pid {pid}",
        if fresh { " afresh" } else { "" }
    ))
}

async fn clean(reg: &Arc<Registry>, wf: &str) -> Result<String, String> {
    let layout = &reg.layout;
    let run_dir = layout.run_dir(wf);
    let meta = match std::fs::symlink_metadata(&run_dir) {
        Ok(m) => m,
        Err(_) => return Err(format!("nothing to clean: {wf} has no run directory")),
    };
    if !meta.is_dir() {
        return Err(format!(
            "{} is not a directory (a symlink?); refusing to clean it",
            run_dir.display()
        ));
    }
    // A scheduler holds this lock for its whole life; if we can take it, none runs.
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(layout.lock_file(wf))
        .map_err(|e| format!("cannot check whether a scheduler runs: {e}"))?;
    // A scheduler that has just announced `stopped` holds it a few ms longer.
    let mut lock = lock;
    let mut tries = 0;
    let _guard = loop {
        match nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(g) => break g,
            Err((f, _)) if tries < 100 => {
                lock = f;
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(_) => {
                return Err(format!(
                    "a scheduler for {wf} is still running; stop it first"
                ))
            }
        }
    };
    let runs = layout
        .runs_dir()
        .canonicalize()
        .map_err(|e| format!("cannot resolve the run directory: {e}"))?;
    let canon = run_dir
        .canonicalize()
        .map_err(|e| format!("cannot resolve the run directory: {e}"))?;
    if !canon.starts_with(&runs) || canon == runs {
        return Err(format!(
            "{} resolves outside ~/.steward/run; refusing to clean it",
            run_dir.display()
        ));
    }
    std::fs::remove_dir_all(&canon).map_err(|e| format!("clean failed: {e}"))?;
    reg.refresh_stopped(wf);
    Ok(format!("cleaned {wf}: removed {}", run_dir.display()))
}
