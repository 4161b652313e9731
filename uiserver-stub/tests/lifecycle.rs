//! Process lifecycle: schedulers outlive the UI server and are re-attached; the UI
//! server shuts itself down when the hub is idle, and stays up while it pings.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};
use steward_protocol::Operation as O;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const FLOW: &str = r#"
cycles = { from = 1, to = 50 }
runahead = 1
[tasks.step]
script = "sleep 0.3; echo step $STEWARD_CYCLE"
after = ["step[-1]"]
"#;

#[tokio::test]
async fn scheduler_survives_the_uiserver_and_a_new_one_reattaches() {
    let mut env = Env::new();
    env.write_flow("demo1", FLOW);
    env.start(300);
    let mut ws = env.ws().await;
    assert!(env.op(&mut ws, O::Play, "demo1", json!({})).await.0);
    ws.wait_task("demo1", "2", "step", "running", secs(10))
        .await
        .unwrap();
    let sched = env.scheduler_pid("demo1").unwrap();
    drop(ws);

    // The UI server crashes (SIGKILL): the scheduler and its jobs keep going.
    env.kill_ui();
    let before = std::fs::read_dir(env.run_dir("demo1").join("log/job"))
        .unwrap()
        .count();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(pid_alive(sched), "scheduler died with the UI server");
    let after = std::fs::read_dir(env.run_dir("demo1").join("log/job"))
        .unwrap()
        .count();
    assert!(
        after > before,
        "no progress while the UI server was down ({before} -> {after})"
    );

    // A new UI server finds it running and streams its deltas again.
    env.start(300);
    let sum = env.summary().await;
    assert_eq!(sum[0].state, "running");
    let mut ws = env.ws().await;
    let snap = ws.next(secs(5)).await.unwrap();
    assert_eq!(snap["workflows"][0]["state"], "running");
    let next = after + 1;
    ws.wait_task("demo1", &next.to_string(), "step", "succeeded", secs(10))
        .await
        .expect("no deltas after re-attach");
    // Ops reach it too.
    let (ok, msg) = env.op(&mut ws, O::Pause, "demo1", json!({})).await;
    assert!(ok, "{msg}");
    assert_eq!(env.workflow_state("demo1").await, "paused");
    assert!(
        env.op(&mut ws, O::Stop, "demo1", json!({"mode": "now"}))
            .await
            .0
    );
    assert!(ws.wait_workflow("demo1", "stopped", secs(10)).await);
    assert!(wait_until(secs(5), || !pid_alive(sched)).await);
}

#[tokio::test]
async fn idle_uiserver_shuts_down_but_workflows_keep_running() {
    let mut env = Env::new();
    env.write_flow("demo1", FLOW);
    env.start(2);
    let mut ws = env.ws().await;
    assert!(env.op(&mut ws, O::Play, "demo1", json!({})).await.0);
    let sched = env.scheduler_pid("demo1").unwrap();

    // Pings over an open WebSocket keep it up well past the idle timeout.
    let start = Instant::now();
    while start.elapsed() < secs(4) {
        ws.send(&json!({"type": "ping"})).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let child = &mut env.ui.as_mut().unwrap().child;
    assert!(
        child.try_wait().unwrap().is_none(),
        "shut down despite pings"
    );

    // Silence: it exits on its own within the timeout (plus a check interval).
    let quiet = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(quiet.elapsed() < secs(10), "did not shut down when idle");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(
        quiet.elapsed() >= Duration::from_millis(1500),
        "shut down too early"
    );
    assert!(env.log_text().contains("idle shutdown"));
    assert!(
        pid_alive(sched),
        "the workflow must outlive the idle UI server"
    );
}
