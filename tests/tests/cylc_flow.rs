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

/// The site authorization Steward writes at spawn is read by cylc-uiserver's own
/// `Authorization` exactly as Steward meant it (the real class, from the pinned venv).
#[test]
fn cylc_uiserver_reads_the_site_authorization_steward_writes() {
    use steward_hub::cylc::site_auth;
    use steward_protocol::{OpSet, Operation};
    if !require_cylc("cylc_uiserver_reads_the_site_authorization_steward_writes") {
        return;
    }
    // The owner must exist: cylc-uiserver looks up its groups.
    let owner = CylcUser::ensure("steward-cy1");
    let dir = tempfile::tempdir().unwrap();
    let visitor: OpSet = [Operation::Read, Operation::Pause, Operation::Reload]
        .into_iter()
        .collect();
    let path = site_auth::write(
        dir.path(),
        &owner.name,
        &[
            ("*".to_string(), OpSet::READ_LEVEL),
            ("nobody".to_string(), visitor),
        ],
    )
    .unwrap();
    let script = format!(
        r#"
import logging, json
from cylc.uiserver.authorise import Authorization
class NS: pass
c = NS(); c.CylcUIServer = NS()
exec(open({path:?}).read(), {{"c": c}})
a = Authorization({owner:?}, {{}}, c.CylcUIServer.site_authorization, logging.getLogger())
print(json.dumps({{u: sorted(a.get_permitted_operations(u)) for u in ["nobody", "root"]}}))
"#,
        path = path.display().to_string(),
        owner = owner.name,
    );
    let out = std::process::Command::new(steward_e2e::cylc::venv().join("bin/python"))
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        got["nobody"],
        serde_json::json!(["pause", "read", "reinstall_reload", "reload"])
    );
    assert_eq!(got["root"], serde_json::json!(["read"]));
}
