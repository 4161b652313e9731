//! Workflow operations on real task processes, through the real binary's WebSocket.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use steward_protocol::Operation as O;

const S: Duration = Duration::from_secs(1);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test]
async fn never_played_is_stopped_then_play_snapshot_and_deltas_within_100ms() {
    let mut env = Env::new();
    // `a` records (in ns) the moment just before it exits; its `succeeded` delta must
    // follow within 100 ms.
    env.write_flow(
        "demo1",
        r#"
description = "latency probe"
[tasks.a]
script = "sleep 0.3; date +%s%N > $STEWARD_WORK_DIR/end"
[tasks.b]
script = "sleep 30"
after = ["a"]
"#,
    );
    env.start(300);
    let sum = env.summary().await;
    assert_eq!(sum.len(), 1);
    assert_eq!(sum[0].state, "stopped");
    assert_eq!(sum[0].counts.get("waiting"), Some(&2));

    let mut ws = env.ws().await;
    let snap = ws.next(secs(5)).await.unwrap();
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["workflows"][0]["name"], "demo1");
    assert_eq!(snap["workflows"][0]["state"], "stopped");
    assert_eq!(snap["workflows"][0]["tasks"].as_array().unwrap().len(), 2);

    let (ok, msg) = env.op(&mut ws, O::Play, "demo1", json!({})).await;
    assert!(ok, "{msg}");
    assert!(ws.wait_workflow("demo1", "running", secs(5)).await);
    ws.wait_task("demo1", "1", "a", "running", secs(5))
        .await
        .unwrap();
    let arrived = ws
        .wait_task("demo1", "1", "a", "succeeded", secs(10))
        .await
        .unwrap();
    let arrived_wall = std::time::SystemTime::now() - arrived.elapsed();
    let end_ns: u128 = std::fs::read_to_string(env.run_dir("demo1").join("work/1/a/end"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let arrived_ns = arrived_wall
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let latency_ms = (arrived_ns.saturating_sub(end_ns)) as f64 / 1e6;
    eprintln!("task end -> delta at client: {latency_ms:.1} ms");
    assert!(latency_ms < 100.0, "delta took {latency_ms} ms");
    ws.wait_task("demo1", "1", "b", "running", secs(5))
        .await
        .unwrap();
    let sum = env.summary().await;
    assert_eq!(sum[0].state, "running");
    assert_eq!(sum[0].counts.get("running"), Some(&1));
    assert_eq!(sum[0].counts.get("succeeded"), Some(&1));
    // job.out landed where the issue says.
    let out = std::fs::read_to_string(env.job_dir("demo1", "1", "a", 1).join("job.out"));
    assert!(out.is_ok());
    let (ok, msg) = env
        .op(&mut ws, O::Stop, "demo1", json!({"mode": "now"}))
        .await;
    assert!(ok, "{msg}");
    assert!(ws.wait_workflow("demo1", "stopped", secs(10)).await);
}

#[tokio::test]
async fn pause_stops_new_submissions_and_is_visible_everywhere() {
    let mut env = Env::new();
    env.write_flow(
        "demo1",
        r#"
[tasks.a]
script = "sleep 1"
[tasks.b]
script = "echo b"
after = ["a"]
"#,
    );
    env.start(300);
    let mut ws = env.ws().await;
    let mut watcher = env.ws().await; // a second client must see the delta too
    assert!(env.op(&mut ws, O::Play, "demo1", json!({})).await.0);
    ws.wait_task("demo1", "1", "a", "running", secs(5))
        .await
        .unwrap();
    let (ok, msg) = env.op(&mut ws, O::Pause, "demo1", json!({})).await;
    assert!(ok, "{msg}");
    // Visible in the very next summary, and as a delta to every client.
    assert_eq!(env.workflow_state("demo1").await, "paused");
    assert!(watcher.wait_workflow("demo1", "paused", secs(2)).await);
    let (ok, msg) = env.op(&mut ws, O::Pause, "demo1", json!({})).await;
    assert!(!ok && msg.contains("already paused"), "{msg}");

    // `a` was running: it finishes; `b` must not be submitted while paused.
    ws.wait_task("demo1", "1", "a", "succeeded", secs(5))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !env.job_dir("demo1", "1", "b", 1).exists(),
        "b submitted while paused"
    );

    let (ok, msg) = env.op(&mut ws, O::Resume, "demo1", json!({})).await;
    assert!(ok, "{msg}");
    ws.wait_task("demo1", "1", "b", "succeeded", secs(5))
        .await
        .unwrap();
    // Everything done: the scheduler shuts down by itself, as Cylc's does.
    assert!(ws.wait_workflow("demo1", "stopped", secs(5)).await);
    let (ok, msg) = env.op(&mut ws, O::Play, "demo1", json!({})).await;
    assert!(!ok && msg.contains("already completed"), "{msg}");
    let (ok, msg) = env
        .op(&mut ws, O::Play, "demo1", json!({"fresh": true}))
        .await;
    assert!(ok, "{msg}");
    ws.wait_task("demo1", "1", "a", "running", secs(5))
        .await
        .unwrap();
    assert!(
        env.op(&mut ws, O::Stop, "demo1", json!({"mode":"kill"}))
            .await
            .0
    );
}

#[tokio::test]
async fn kill_and_stop_now_kill_real_processes() {
    let mut env = Env::new();
    env.write_flow(
        "demo1",
        r#"
[tasks.sleeper]
script = "sleep 60"
[tasks.other]
script = "sleep 60"
"#,
    );
    env.start(300);
    let mut ws = env.ws().await;
    assert!(env.op(&mut ws, O::Play, "demo1", json!({})).await.0);
    ws.wait_task("demo1", "1", "sleeper", "running", secs(5))
        .await
        .unwrap();
    let pid = env.job_pid("demo1", "1", "sleeper", 1);
    assert!(pid_alive(pid));

    let (ok, msg) = env
        .op(&mut ws, O::Kill, "demo1//1/sleeper", json!({}))
        .await;
    assert!(ok, "{msg}");
    ws.wait_task("demo1", "1", "sleeper", "failed", secs(5))
        .await
        .unwrap();
    assert!(!pid_alive(pid), "job process {pid} survived kill");
    let status =
        std::fs::read_to_string(env.job_dir("demo1", "1", "sleeper", 1).join("job.status"))
            .unwrap();
    assert!(status.contains("STEWARD_JOB_EXIT=KILLED"), "{status}");
    let (ok, msg) = env
        .op(&mut ws, O::Kill, "demo1//1/sleeper", json!({}))
        .await;
    assert!(!ok && msg.contains("nothing to kill"), "{msg}");

    // Poll reports the live process.
    let (ok, msg) = env.op(&mut ws, O::Poll, "demo1//1/other", json!({})).await;
    assert!(ok && msg.contains("process alive"), "{msg}");

    let other = env.job_pid("demo1", "1", "other", 1);
    let sched = env.scheduler_pid("demo1").unwrap();
    let (ok, msg) = env
        .op(&mut ws, O::Stop, "demo1", json!({"mode": "now"}))
        .await;
    assert!(ok, "{msg}");
    assert!(ws.wait_workflow("demo1", "stopped", secs(10)).await);
    assert!(
        wait_until(secs(5), || !pid_alive(other)).await,
        "stop now left job {other}"
    );
    assert!(
        wait_until(secs(5), || !pid_alive(sched)).await,
        "scheduler {sched} still there"
    );
    let (ok, msg) = env.op(&mut ws, O::Stop, "demo1", json!({})).await;
    assert!(!ok && msg.contains("is stopped"), "{msg}");
}

#[tokio::test]
async fn stop_clean_waits_for_running_jobs() {
    let mut env = Env::new();
    env.write_flow(
        "demo1",
        r#"
[tasks.a]
script = "sleep 1; echo finished"
[tasks.b]
script = "echo b"
after = ["a"]
"#,
    );
    env.start(300);
    let mut ws = env.ws().await;
    assert!(env.op(&mut ws, O::Play, "demo1", json!({})).await.0);
    ws.wait_task("demo1", "1", "a", "running", secs(5))
        .await
        .unwrap();
    let (ok, msg) = env
        .op(&mut ws, O::Stop, "demo1", json!({"mode": "bogus"}))
        .await;
    assert!(!ok && msg.contains("unknown stop mode"), "{msg}");
    let (ok, msg) = env.op(&mut ws, O::Stop, "demo1", json!({})).await;
    assert!(ok && msg.contains("waiting for 1"), "{msg}");
    assert!(ws.wait_workflow("demo1", "stopping", secs(2)).await);
    ws.wait_task("demo1", "1", "a", "succeeded", secs(5))
        .await
        .unwrap();
    assert!(ws.wait_workflow("demo1", "stopped", secs(5)).await);
    assert!(!env.job_dir("demo1", "1", "b", 1).exists());
    let out = std::fs::read_to_string(env.job_dir("demo1", "1", "a", 1).join("job.out")).unwrap();
    assert_eq!(out, "finished\n");
}

#[tokio::test]
async fn trigger_with_edited_env_hold_release_and_broadcast() {
    let mut env = Env::new();
    env.write_flow(
        "demo1",
        r#"
cycles = ["1", "2"]
[env]
GREETING = "from-flow"
[tasks.gate]
script = "true"
ext_trigger = "go"
[tasks.hello]
script = 'echo "GREETING=$GREETING COLOUR=${COLOUR:-none}"'
after = ["gate"]
"#,
    );
    env.start(300);
    let mut ws = env.ws().await;
    assert!(env.op(&mut ws, O::Play, "demo1", json!({})).await.0);

    // Trigger ignores prerequisites and takes an edited environment for this job only.
    let (ok, msg) = env
        .op(
            &mut ws,
            O::Trigger,
            "demo1//1/hello",
            json!({"env": {"GREETING": "edited"}}),
        )
        .await;
    assert!(ok, "{msg}");
    ws.wait_task("demo1", "1", "hello", "succeeded", secs(5))
        .await
        .unwrap();
    let out =
        std::fs::read_to_string(env.job_dir("demo1", "1", "hello", 1).join("job.out")).unwrap();
    assert_eq!(out, "GREETING=edited COLOUR=none\n");

    // Hold 2/hello, then let its prerequisite through: it must stay held.
    let (ok, msg) = env.op(&mut ws, O::Hold, "demo1//2/hello", json!({})).await;
    assert!(ok, "{msg}");
    ws.wait_task("demo1", "2", "hello", "held", secs(2))
        .await
        .unwrap();
    let (ok, msg) = env
        .op(&mut ws, O::Release, "demo1//2/gate", json!({}))
        .await;
    assert!(!ok && msg.contains("not held"), "{msg}");

    // Broadcast a setting for future jobs, then open the gate.
    let (ok, msg) = env
        .op(
            &mut ws,
            O::Broadcast,
            "demo1//2",
            json!({"env": {"COLOUR": "blue"}}),
        )
        .await;
    assert!(ok, "{msg}");
    let (ok, msg) = env
        .op(&mut ws, O::ExtTrigger, "demo1//2", json!({"message": "go"}))
        .await;
    assert!(ok, "{msg}");
    ws.wait_task("demo1", "2", "gate", "succeeded", secs(5))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !env.job_dir("demo1", "2", "hello", 1).exists(),
        "held task ran"
    );

    let (ok, msg) = env
        .op(&mut ws, O::Release, "demo1//2/hello", json!({}))
        .await;
    assert!(ok, "{msg}");
    ws.wait_task("demo1", "2", "hello", "succeeded", secs(5))
        .await
        .unwrap();
    let out =
        std::fs::read_to_string(env.job_dir("demo1", "2", "hello", 1).join("job.out")).unwrap();
    assert_eq!(out, "GREETING=from-flow COLOUR=blue\n");

    let (ok, msg) = env
        .op(
            &mut ws,
            O::ExtTrigger,
            "demo1",
            json!({"message": "nobody waits"}),
        )
        .await;
    assert!(!ok && msg.contains("no task"), "{msg}");
    assert!(
        env.op(&mut ws, O::Stop, "demo1", json!({"mode": "now"}))
            .await
            .0
    );
}

#[tokio::test]
async fn set_outputs_message_remove_and_reload() {
    let mut env = Env::new();
    env.write_flow(
        "demo1",
        r#"
[tasks.blocked]
script = "true"
ext_trigger = "never"
[tasks.after_blocked]
script = "echo ran"
after = ["blocked"]
[tasks.talker]
script = "sleep 30"
outputs = ["ready"]
[tasks.on_ready]
script = "echo ready-seen"
after = ["talker:ready"]
[tasks.doomed]
script = "sleep 30"
"#,
    );
    env.start(300);
    let mut ws = env.ws().await;
    assert!(env.op(&mut ws, O::Play, "demo1", json!({})).await.0);

    // set: mark a task's output complete; downstream runs.
    let (ok, msg) = env
        .op(
            &mut ws,
            O::Set,
            "demo1//1/blocked",
            json!({"outputs": ["bogus"]}),
        )
        .await;
    assert!(!ok && msg.contains("no output"), "{msg}");
    let (ok, msg) = env
        .op(
            &mut ws,
            O::Set,
            "demo1//1/blocked",
            json!({"outputs": ["succeeded"]}),
        )
        .await;
    assert!(ok, "{msg}");
    ws.wait_task("demo1", "1", "blocked", "succeeded", secs(2))
        .await
        .unwrap();
    ws.wait_task("demo1", "1", "after_blocked", "succeeded", secs(5))
        .await
        .unwrap();
    assert!(
        !env.job_dir("demo1", "1", "blocked", 1).exists(),
        "set must not run the job"
    );

    // message: appended to the job's activity log; a custom output completes.
    ws.wait_task("demo1", "1", "talker", "running", secs(5))
        .await
        .unwrap();
    let (ok, msg) = env
        .op(
            &mut ws,
            O::Message,
            "demo1//1/talker",
            json!({"message": "ready", "severity": "INFO"}),
        )
        .await;
    assert!(ok && msg.contains("output \"ready\" completed"), "{msg}");
    ws.wait_task("demo1", "1", "on_ready", "succeeded", secs(5))
        .await
        .unwrap();
    let act = std::fs::read_to_string(
        env.job_dir("demo1", "1", "talker", 1)
            .join("job-activity.log"),
    )
    .unwrap();
    assert!(act.contains("INFO - ready"), "{act}");

    // remove: kills the running job and takes the task out.
    ws.wait_task("demo1", "1", "doomed", "running", secs(5))
        .await
        .unwrap();
    let pid = env.job_pid("demo1", "1", "doomed", 1);
    let (ok, msg) = env
        .op(&mut ws, O::Remove, "demo1//1/doomed", json!({}))
        .await;
    assert!(ok, "{msg}");
    ws.wait_task("demo1", "1", "doomed", "removed", secs(2))
        .await
        .unwrap();
    assert!(wait_until(secs(5), || !pid_alive(pid)).await);

    // reload: a new task appears (full snapshot) and runs.
    env.write_flow(
        "demo1",
        r#"
[tasks.blocked]
script = "true"
ext_trigger = "never"
[tasks.after_blocked]
script = "echo ran"
after = ["blocked"]
[tasks.talker]
script = "sleep 30"
outputs = ["ready"]
[tasks.on_ready]
script = "echo ready-seen"
after = ["talker:ready"]
[tasks.doomed]
script = "sleep 30"
[tasks.newcomer]
script = "echo new"
"#,
    );
    let (ok, msg) = env.op(&mut ws, O::Reload, "demo1", json!({})).await;
    assert!(ok, "{msg}");
    ws.wait_task("demo1", "1", "newcomer", "succeeded", secs(5))
        .await
        .unwrap();
    std::fs::write(
        env.home().join(".steward/workflows/demo1/flow.toml"),
        "[tasks.x]\nscript=''\n",
    )
    .unwrap();
    let (ok, msg) = env.op(&mut ws, O::Reload, "demo1", json!({})).await;
    assert!(
        !ok && msg.contains("keeping the running definition") && msg.contains("script is empty"),
        "{msg}"
    );
    assert!(
        env.op(&mut ws, O::Stop, "demo1", json!({"mode": "now"}))
            .await
            .0
    );
}

#[tokio::test]
async fn every_operation_has_an_effect_or_a_precise_error() {
    let mut env = Env::new();
    env.write_flow(
        "demo1",
        r#"
cycles = ["1", "2"]
runahead = 1
[tasks.a]
script = "sleep 30"
"#,
    );
    env.start(300);
    let mut ws = env.ws().await;

    // On a stopped workflow: scheduler ops say precisely why they do not apply.
    let (ok, msg) = env.op(&mut ws, O::Pause, "demo1", json!({})).await;
    assert_eq!(
        (ok, msg.as_str()),
        (
            false,
            "demo1 is stopped: pause needs a running scheduler (play it first)"
        )
    );
    let (ok, msg) = env.op(&mut ws, O::Clean, "demo1", json!({})).await;
    assert_eq!(
        (ok, msg.as_str()),
        (false, "nothing to clean: demo1 has no run directory")
    );
    let (ok, msg) = env.op(&mut ws, O::Pause, "nosuch", json!({})).await;
    assert!(!ok && msg.contains("no workflow named \"nosuch\""), "{msg}");

    assert!(env.op(&mut ws, O::Play, "demo1", json!({})).await.0);
    ws.wait_task("demo1", "1", "a", "running", secs(5))
        .await
        .unwrap();

    // The precise error the issue names.
    let (ok, msg) = env
        .op(&mut ws, O::ReleaseHoldPoint, "demo1", json!({}))
        .await;
    assert_eq!(
        (ok, msg.as_str()),
        (
            false,
            "demo1 has no hold point to release (set one with set_hold_point)"
        )
    );

    // Every one of the 22, with a sensible target: each answers, and says what it did.
    let cases: Vec<(O, &str, serde_json::Value, bool, &str)> = vec![
        (O::Read, "demo1", json!({}), true, "read"),
        (O::Scan, "demo1", json!({}), true, "scanned 1 workflow"),
        (
            O::SetHoldPoint,
            "demo1",
            json!({"point": "1"}),
            true,
            "hold point set to 1",
        ),
        (
            O::SetHoldPoint,
            "demo1",
            json!({"point": "9"}),
            false,
            "not one of demo1's cycles",
        ),
        (
            O::ReleaseHoldPoint,
            "demo1",
            json!({}),
            true,
            "hold point 1 released",
        ),
        (
            O::SetVerbosity,
            "demo1",
            json!({"level": "debug"}),
            true,
            "INFO -> DEBUG",
        ),
        (
            O::SetVerbosity,
            "demo1",
            json!({"level": "loud"}),
            false,
            "unknown level",
        ),
        (
            O::SetGraphWindowExtent,
            "demo1",
            json!({"extent": 3}),
            true,
            "1 -> 3",
        ),
        (
            O::SetGraphWindowExtent,
            "demo1",
            json!({}),
            false,
            "needs args.extent",
        ),
        (O::Hold, "demo1", json!({}), false, "needs a task id"),
        (O::Hold, "demo1//2/a", json!({}), true, "held 2/a"),
        (O::Release, "demo1//2/a", json!({}), true, "released 2/a"),
        (
            O::Hold,
            "demo1//1/a",
            json!({}),
            false,
            "hold applies to waiting tasks",
        ),
        (O::Poll, "demo1//1/a", json!({}), true, "process alive"),
        (O::Poll, "demo1//2/a", json!({}), false, "never submitted"),
        (
            O::Message,
            "demo1//1/a",
            json!({"message": "hello there"}),
            true,
            "message recorded",
        ),
        (
            O::Message,
            "demo1//1/a",
            json!({}),
            false,
            "needs args.message",
        ),
        (
            O::Broadcast,
            "demo1",
            json!({"env": {"X": "1"}}),
            true,
            "broadcast X to all cycles",
        ),
        (
            O::Broadcast,
            "demo1",
            json!({"env": {"1BAD": "1"}}),
            false,
            "not a valid environment variable name",
        ),
        (
            O::Broadcast,
            "demo1",
            json!({"clear": true}),
            true,
            "cleared broadcasts",
        ),
        (
            O::ExtTrigger,
            "demo1",
            json!({"message": "x"}),
            false,
            "no task in demo1 is waiting",
        ),
        (
            O::Trigger,
            "demo1//1/a",
            json!({}),
            false,
            "already running",
        ),
        (
            O::Trigger,
            "demo1//1/nosuch",
            json!({}),
            false,
            "has no task \"nosuch\"",
        ),
        (
            O::Trigger,
            "demo1//7/a",
            json!({}),
            false,
            "not one of demo1's cycles",
        ),
        (
            O::Set,
            "demo1//2/a",
            json!({"outputs": ["succeeded"]}),
            true,
            "set outputs succeeded on 2/a",
        ),
        (
            O::Set,
            "demo1//1/a",
            json!({"prerequisites": ["zzz"]}),
            false,
            "has no prerequisite",
        ),
        (O::Kill, "demo1//2/a", json!({}), false, "nothing to kill"),
        (O::Remove, "demo1//2/a", json!({}), true, "removed 2/a"),
        (O::Reload, "demo1", json!({}), true, "reloaded flow.toml"),
        (
            O::Clean,
            "demo1",
            json!({}),
            false,
            "running; stop it before cleaning",
        ),
        (O::Play, "demo1", json!({}), false, "already running"),
        (O::Resume, "demo1", json!({}), false, "not paused"),
        (O::Pause, "demo1", json!({}), true, "paused"),
        (O::Play, "demo1", json!({}), true, "resumed"),
        (O::Kill, "demo1//1/a/01", json!({}), true, "killed 1/a/01"),
        (O::Stop, "demo1", json!({"mode": "clean"}), true, "stopping"),
    ];
    for (op, target, args, want_ok, want) in cases {
        let (ok, msg) = env.op(&mut ws, op, target, args).await;
        assert_eq!(ok, want_ok, "{op} {target}: {msg}");
        assert!(msg.contains(want), "{op} {target}: {msg:?} lacks {want:?}");
    }
    assert!(ws.wait_workflow("demo1", "stopped", secs(10)).await);
    // set_verbosity took effect: the scheduler log has DEBUG lines.
    let slog = std::fs::read_to_string(env.run_dir("demo1").join("log/scheduler/log")).unwrap();
    assert!(slog.contains(" DEBUG - "), "{slog}");
    let (ok, msg) = env.op(&mut ws, O::Clean, "demo1", json!({})).await;
    assert!(ok, "{msg}");
    assert!(!env.run_dir("demo1").exists(), "clean left the run dir");
    assert_eq!(env.workflow_state("demo1").await, "stopped");

    // Malformed ids are rejected clearly.
    for bad in [
        "demo1//1/../x",
        "~bob/demo1",
        "demo1//",
        "../etc",
        "demo1//1/a/notanumber",
    ] {
        let token = env.jwt.token(&[O::Hold], Some("demo1"));
        let (ok, msg) = ws.op_with_token("hold", bad, json!({}), &token).await;
        assert!(!ok && msg.starts_with("bad target"), "{bad}: {msg}");
    }
    let token = env.jwt.token(&[O::Hold], Some("demo1"));
    let (ok, msg) = ws.op_with_token("hodl", "demo1", json!({}), &token).await;
    assert!(!ok && msg.contains("unknown operation \"hodl\""), "{msg}");
}

#[tokio::test]
async fn http_op_endpoint_applies_ops_too() {
    let mut env = Env::new();
    env.write_flow("demo1", "[tasks.a]\nscript = \"sleep 30\"\n");
    env.start(300);
    let c = env.http(Identity::Hub);
    let post = |op: O, body: serde_json::Value| {
        let token = env.jwt.token(&[op], Some("demo1"));
        c.post(env.url("/api/op"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let r = post(O::Play, json!({"id": "1", "op": "play", "target": "demo1"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let r = post(
        O::Pause,
        json!({"id": "2", "op": "pause", "target": "~alice/demo1"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(env.workflow_state("demo1").await, "paused");
    let r = post(
        O::Pause,
        json!({"id": "3", "op": "pause", "target": "demo1"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 409);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["type"], "result");
    assert!(v["message"].as_str().unwrap().contains("already paused"));
    // Token scope is enforced here as well.
    let r = post(O::Read, json!({"id": "4", "op": "stop", "target": "demo1"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = post(
        O::Stop,
        json!({"id": "5", "op": "stop", "target": "demo1", "args": {"mode": "now"}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let _ = S;
}
