//! A real cylc-flow 8.7 workflow installed and played as a test user, driven with the
//! `cylc` CLI: the fixture the Cylc-behind-Steward tests build on, proved on its own.

use std::time::Duration;
use steward_e2e::cylc::{require_cylc, CylcUser, Workflow, SLEEPER_FLOW};

/// The scheduler and its jobs run as the owner; `cylc pause` and `cylc hold` change
/// what Cylc itself reports, and `cylc play`/`release` undo it.
#[test]
fn a_real_workflow_plays_as_its_owner_and_pause_and_hold_show_in_cylc() {
    if !require_cylc("a_real_workflow_plays_as_its_owner_and_pause_and_hold_show_in_cylc") {
        return;
    }
    let user = CylcUser::ensure("steward-cy1");
    let wf = Workflow::install_and_play(&user, "e2e-sleeper", SLEEPER_FLOW);
    let long = Duration::from_secs(90);

    let tasks = wf.wait_for(long, Workflow::tasks, |t| t.contains("1/sleeper:running"));
    assert!(!tasks.contains("(held)"), "{tasks}");
    assert_eq!(wf.status().as_deref(), Some("running"));

    // The scheduler is the owner's process, not root's.
    let pid = wf
        .scheduler_pid()
        .expect("contact file names the scheduler");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|u| u == user.uid.to_string()),
        "scheduler {pid} runs as {uid_line}, not {}",
        user.uid
    );

    user.cylc_ok(&["pause", &wf.id()]);
    wf.wait_for(long, Workflow::status, |s| s.as_deref() == Some("paused"));

    user.cylc_ok(&["hold", &format!("{}//1/sleeper", wf.id())]);
    wf.wait_for(long, Workflow::tasks, |t| {
        t.contains("1/sleeper:running (held)")
    });

    user.cylc_ok(&["release", &format!("{}//1/sleeper", wf.id())]);
    wf.wait_for(long, Workflow::tasks, |t| {
        t.contains("1/sleeper:running") && !t.contains("(held)")
    });
    // Cylc 8 resumes a paused workflow with `play`.
    user.cylc_ok(&["play", &wf.id()]);
    wf.wait_for(long, Workflow::status, |s| s.as_deref() == Some("running"));

    drop(wf);
    assert!(
        !user.home.join("cylc-run/e2e-sleeper").exists(),
        "the run directory is cleaned on drop"
    );
    assert!(
        !steward_e2e::alive(pid),
        "the scheduler {pid} is stopped on drop"
    );
}
