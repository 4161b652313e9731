//! The hub placing UI servers through Slurm, end to end: the demo hub with a real
//! slurmctld + slurmd + munged (tests/src/slurm.rs), servers of the `batch` and
//! `standby` profiles submitted with `sbatch` as their owner through the helper, tracked
//! by the hub's one batched poll, relayed to, listed with their job and profile,
//! re-adopted after a hub restart; a start pending in a DOWN partition shown with
//! Slurm's reason in the list and the overview, surviving a hub restart, completed when
//! the partition comes back, or cancelled; and a job over its memory request failing its
//! start within one poll with Slurm's OUT_OF_MEMORY.

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use steward_e2e::slurm::{self, Slurm};
use steward_e2e::*;

const CLUSTER: &str = "e2e";

fn entry<'a>(list: &'a Value, key: &str, owner: &str) -> Option<&'a Value> {
    list[key].as_array()?.iter().find(|s| s["owner"] == owner)
}

/// Polls the admin list until `pred` holds for it.
async fn list_until(
    d: &Demo,
    admin: &reqwest::Client,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let url = format!("{}/hub/api/admin/servers", d.base);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = get_json(admin, url.clone()).await;
        if pred(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "never {what}: {list}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn start_own(d: &Demo, c: &reqwest::Client, csrf: &str, profile: &str) -> (u16, Value) {
    let r = c
        .post(format!("{}/hub/api/server", d.base))
        .header("x-csrf-token", csrf)
        .json(&json!({ "profile": profile }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn admin_stop(d: &Demo, admin: &reqwest::Client, csrf: &str, owner: &str) {
    let r = admin
        .post(format!("{}/hub/api/admin/servers/{owner}/stop", d.base))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

/// `steward:alice:default` jobs as squeue shows them: (id, state).
fn alice_jobs(s: &Slurm) -> Vec<(String, String)> {
    let out = s
        .client("squeue")
        .args([
            "-h",
            "--states=all",
            "-n",
            "steward:alice:default",
            "-o",
            "%i %T",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (id, st) = l.trim().split_once(' ')?;
            Some((id.to_string(), st.to_string()))
        })
        .collect()
}

/// Whether a job is over for Slurm (a new submit of its server is then accepted).
fn ended(s: &Slurm, job: &str) -> bool {
    [
        "ABSENT",
        "CANCELLED",
        "COMPLETED",
        "FAILED",
        "OUT_OF_MEMORY",
        "TIMEOUT",
    ]
    .contains(&job_state(s, job).as_str())
}

fn job_state(s: &Slurm, job: &str) -> String {
    alice_jobs(s)
        .into_iter()
        .find(|(id, _)| id == job)
        .map_or("ABSENT".into(), |(_, st)| st)
}

/// alice's audit records, one line each, for failure messages.
fn audit_dump(d: &Demo) -> String {
    d.audit_records()
        .iter()
        .filter(|r| r["owner"] == "alice")
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["time"], r["event"], r["actor"], r["message"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn visit(d: &Demo, owner: &str, cookie: &str) {
    let mut w = demo_ws(d, owner, cookie).await;
    let snap = ws_until(&mut w, Duration::from_secs(60), |v| v["type"] == "snapshot").await;
    assert!(
        snap["workflows"].as_array().is_some_and(|a| !a.is_empty()),
        "{owner}'s workflows through the relay: {snap}"
    );
}

// The Slurm lock only keeps this process's tests off the one cluster (fixed ports); no
// task of this test waits for it.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_through_slurm_via_the_hub() {
    if !slurm::available("servers_through_slurm_via_the_hub") {
        return;
    }
    let _sl = slurm::lock();
    let s = Slurm::start();
    s.set_partition_up("standby", true);
    let _l = demo_lock();
    let mut d = Demo::start();
    d.place_on_slurm(&s, &[]);
    d.serve_with("");
    let (carl, carl_csrf) = d.login("carl").await;
    // A login starts one's own server (locally, on the default profile): alice logs in
    // once, here, while she has none on Slurm, and that local one is stopped.
    let (alice, alice_csrf) = d.login("alice").await;
    let (alice_cookie, _) = login_cookie(&d.base, &d.ca(), "alice", &d.password("alice")).await;
    let carl_token = d.cli_token("carl");
    d.stop_prestarted(&carl, &carl_csrf, "alice").await;

    // --- 1. A start on the `batch` profile is an sbatch as alice; it runs and registers.
    let (status, body) = start_own(&d, &alice, &alice_csrf, "batch").await;
    assert_eq!(status, 200, "{body}\n{}\n{}", audit_dump(&d), s.logs());
    let list = list_until(&d, &carl, "alice's Slurm server listed", |l| {
        entry(l, "servers", "alice").is_some()
    })
    .await;
    let srv = entry(&list, "servers", "alice").unwrap().clone();
    assert_eq!(srv["backend"], "slurm", "{srv}");
    assert_eq!(srv["profile"], "batch", "{srv}");
    assert_eq!(srv["state"], "running", "{srv}");
    let where_ = srv["where"].as_str().unwrap().to_string();
    let job = where_
        .strip_prefix(&format!("{CLUSTER}:"))
        .unwrap_or_else(|| panic!("where is {where_}"))
        .to_string();
    assert_eq!(job_state(&s, &job), "RUNNING");
    // Submitted as alice (Slurm's user), with the profile's partition.
    let out = s
        .client("squeue")
        .args(["-h", "-j", &job, "-o", "%u %P %j"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "alice debug steward:alice:default"
    );
    let (ok, text) = d.cli(&carl_token, &["servers", "list"]);
    assert!(ok, "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("alice "))
        .unwrap_or_else(|| panic!("{text}"));
    for want in ["slurm", &where_, "batch", "running"] {
        assert!(line.contains(want), "{want} not in {line:?}");
    }
    // The relay reaches it (at the node Slurm names, whatever it registered).
    visit(&d, "alice", &alice_cookie).await;
    let recs = d.audit_records();
    assert!(
        recs.iter().any(|r| r["event"] == "spawn"
            && r["owner"] == "alice"
            && r["extra"]["placement"] == format!("slurm:{CLUSTER}:{job}")),
        "submission not audited"
    );
    assert!(
        recs.iter()
            .any(|r| r["event"] == "spawn_ready" && r["owner"] == "alice"),
        "registration not audited"
    );

    // --- 2. A hub restart re-adopts the job by its id, name and user.
    d.serve_with("");
    let list = list_until(&d, &carl, "alice's server re-adopted", |l| {
        entry(l, "servers", "alice").is_some_and(|s| s["where"] == where_.as_str())
    })
    .await;
    assert_eq!(
        entry(&list, "servers", "alice").unwrap()["state"],
        "running"
    );
    assert!(wait_until(Duration::from_secs(20), || d
        .audit_records()
        .iter()
        .any(|r| r["event"] == "adopt" && r["owner"] == "alice")));
    let (alice_cookie, _) = login_cookie(&d.base, &d.ca(), "alice", &d.password("alice")).await;
    visit(&d, "alice", &alice_cookie).await;
    assert_eq!(
        job_state(&s, &job),
        "RUNNING",
        "the restart left the job alone"
    );

    // --- 3. Stopping it cancels the job.
    let (carl, carl_csrf) = d.login("carl").await;
    admin_stop(&d, &carl, &carl_csrf, "alice").await;
    assert!(
        wait_until(Duration::from_secs(30), || ended(&s, &job)),
        "job {job} still {}",
        job_state(&s, &job)
    );
    let list = get_json(&carl, format!("{}/hub/api/admin/servers", d.base)).await;
    assert!(entry(&list, "servers", "alice").is_none(), "{list}");

    // --- 4. Pending: the `standby` partition is DOWN. The start is accepted, queued,
    // listed with Slurm's reason, and the overview marks alice.
    s.set_partition_up("standby", false);
    let (status, body) = start_own(&d, &alice, &alice_csrf, "standby").await;
    assert_eq!(status, 202, "{body}\n{}", audit_dump(&d));
    assert_eq!(body["queued"], true, "{body}");
    let list = list_until(&d, &carl, "alice pending with a reason", |l| {
        entry(l, "starting", "alice").is_some_and(|e| {
            e["state"] == "pending"
                && e["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("PartitionDown"))
        })
    })
    .await;
    let pending = entry(&list, "starting", "alice").unwrap().clone();
    assert_eq!(pending["profile"], "standby", "{pending}");
    assert_eq!(pending["backend"], "slurm", "{pending}");
    let pending_where = pending["where"].as_str().unwrap().to_string();
    let pending_job = pending_where
        .strip_prefix(&format!("{CLUSTER}:"))
        .unwrap()
        .to_string();
    assert_eq!(job_state(&s, &pending_job), "PENDING");
    let (ok, text) = d.cli(&carl_token, &["servers", "list"]);
    assert!(
        ok && text.lines().any(|l| l.starts_with("alice ")
            && l.contains("pending")
            && l.contains("PartitionDown")),
        "{text}"
    );
    let overview = get_json(&alice, format!("{}/hub/api/overview", d.base)).await;
    let marked = overview["owners"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(overview["queued"].as_array().into_iter().flatten())
        .any(|o| {
            o["owner"] == "alice" && (o["server"]["state"] == "pending" || o["state"] == "pending")
        });
    assert!(
        marked,
        "the overview does not mark alice pending: {overview}"
    );
    assert_eq!(
        alice_jobs(&s)
            .iter()
            .filter(|(_, st)| st == "PENDING")
            .count(),
        1,
        "one queued job"
    );

    // --- 5. The queued start survives a hub restart and completes when Slurm runs it:
    // the registration reaches the restarted hub, which finds the start in its store.
    d.serve_with("");
    let (carl, carl_csrf) = d.login("carl").await;
    list_until(&d, &carl, "alice still pending after the restart", |l| {
        entry(l, "starting", "alice").is_some_and(|e| {
            e["where"] == pending_where.as_str()
                && e["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("PartitionDown"))
        })
    })
    .await;
    s.set_partition_up("standby", true);
    let list = list_until(&d, &carl, "the queued start running", |l| {
        entry(l, "servers", "alice").is_some()
    })
    .await;
    let srv = entry(&list, "servers", "alice").unwrap();
    assert_eq!(srv["where"], pending_where.as_str(), "{srv}");
    assert_eq!(srv["profile"], "standby", "{srv}");
    assert!(entry(&list, "starting", "alice").is_none(), "{list}");
    let (alice_cookie, _) = login_cookie(&d.base, &d.ca(), "alice", &d.password("alice")).await;
    visit(&d, "alice", &alice_cookie).await;
    admin_stop(&d, &carl, &carl_csrf, "alice").await;
    assert!(wait_until(Duration::from_secs(30), || ended(
        &s,
        &pending_job
    )));

    // --- 6. A queued start can be cancelled: scancel, gone from the list, audited.
    s.set_partition_up("standby", false);
    let (status, body) = start_own(&d, &alice, &alice_csrf, "standby").await;
    assert_eq!(status, 202, "{body}");
    let list = list_until(&d, &carl, "alice queued again", |l| {
        entry(l, "starting", "alice").is_some_and(|e| e["state"] == "pending")
    })
    .await;
    let cancel_where = entry(&list, "starting", "alice").unwrap()["where"]
        .as_str()
        .unwrap()
        .to_string();
    let cancel_job = cancel_where.rsplit(':').next().unwrap().to_string();
    admin_stop(&d, &carl, &carl_csrf, "alice").await;
    assert!(
        wait_until(Duration::from_secs(30), || ended(&s, &cancel_job)),
        "job {cancel_job} still pending"
    );
    let list = get_json(&carl, format!("{}/hub/api/admin/servers", d.base)).await;
    assert!(entry(&list, "starting", "alice").is_none(), "{list}");
    assert!(d.audit_records().iter().any(|r| r["event"] == "stop"
        && r["owner"] == "alice"
        && r["actor"] == "carl"
        && r["outcome"] != "error"));
    s.set_partition_up("standby", true);

    // --- 7. A server over its memory request (256M; it holds 400M before it
    // registers) is killed by Slurm: the start fails at the next poll with Slurm's
    // reason, not at the start timeout, and the failure is audited.
    d.place_on_slurm(&s, &["--ballast-mib", "400"]);
    d.serve_with("");
    let (status, body) = start_own(&d, &alice, &alice_csrf, "batch").await;
    let message = body["error"].as_str().unwrap_or_default().to_string();
    assert_eq!(status, 403, "{body}");
    assert!(
        message.contains("OUT_OF_MEMORY") && message.contains("before its server registered"),
        "{message}"
    );
    assert!(d
        .audit_records()
        .iter()
        .any(|r| r["event"] == "spawn_failed"
            && r["owner"] == "alice"
            && r["extra"]["oom_killed"] == true
            && r["message"]
                .as_str()
                .is_some_and(|m| m.contains("OUT_OF_MEMORY"))));
    let (carl, _) = d.login("carl").await;
    let list = get_json(&carl, format!("{}/hub/api/admin/servers", d.base)).await;
    assert!(entry(&list, "servers", "alice").is_none(), "{list}");
    assert!(entry(&list, "starting", "alice").is_none(), "{list}");
}

// See servers_through_slurm_via_the_hub.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_faults_through_the_hub() {
    if !slurm::available("slurm_faults_through_the_hub") {
        return;
    }
    let _sl = slurm::lock();
    let s = Slurm::start();
    let _l = demo_lock();
    let mut d = Demo::start();
    d.place_on_slurm(&s, &[]);
    d.serve_with("");
    let (carl, carl_csrf) = d.login("carl").await;
    let (alice, alice_csrf) = d.login("alice").await;
    d.stop_prestarted(&carl, &carl_csrf, "alice").await;
    let listed = |l: &Value| {
        entry(l, "servers", "alice").is_some() || entry(l, "starting", "alice").is_some()
    };

    // --- sbatch refuses the job (a partition that does not exist): a clear, audited
    // failure, nothing queued.
    let (status, body) = start_own(&d, &alice, &alice_csrf, "nowhere").await;
    let message = body["error"].as_str().unwrap_or_default();
    assert_eq!(status, 403, "{body}");
    assert!(message.contains("Invalid partition"), "{message}");
    assert!(d
        .audit_records()
        .iter()
        .any(|r| r["event"] == "spawn_failed"
            && r["owner"] == "alice"
            && r["message"]
                .as_str()
                .is_some_and(|m| m.contains("Invalid partition"))));
    let list = get_json(&carl, format!("{}/hub/api/admin/servers", d.base)).await;
    assert!(!listed(&list), "{list}");
    assert!(alice_jobs(&s).is_empty(), "{:?}", alice_jobs(&s));

    // --- slurmctld down: the running server is "unknown" with why, never gone; it is
    // still relayed to; a start meanwhile fails clearly and queues nothing.
    let (status, body) = start_own(&d, &alice, &alice_csrf, "batch").await;
    assert_eq!(status, 200, "{body}\n{}", audit_dump(&d));
    let list = list_until(&d, &carl, "alice running", |l| {
        entry(l, "servers", "alice").is_some()
    })
    .await;
    let job = entry(&list, "servers", "alice").unwrap()["where"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    s.stop_controller();
    let list = list_until(&d, &carl, "alice unknown", |l| {
        entry(l, "servers", "alice").is_some_and(|e| e["state"] == "unknown")
    })
    .await;
    let reason = entry(&list, "servers", "alice").unwrap()["reason"].clone();
    assert!(
        reason.as_str().is_some_and(|r| r.contains("squeue")),
        "{reason}"
    );
    // Three more polls: still there, still unknown.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let list = get_json(&carl, format!("{}/hub/api/admin/servers", d.base)).await;
    assert_eq!(
        entry(&list, "servers", "alice").unwrap()["state"],
        "unknown",
        "{list}"
    );
    let (alice_cookie, _) = login_cookie(&d.base, &d.ca(), "alice", &d.password("alice")).await;
    visit(&d, "alice", &alice_cookie).await;
    let (bob, bob_csrf) = d.login("bob").await;
    d.stop_prestarted(&carl, &carl_csrf, "bob").await;
    let (status, body) = start_own(&d, &bob, &bob_csrf, "batch").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|m| m.contains("unavailable") || m.contains("controller")),
        "{body}"
    );
    let list = get_json(&carl, format!("{}/hub/api/admin/servers", d.base)).await;
    assert!(entry(&list, "starting", "bob").is_none(), "{list}");
    s.start_controller()
        .unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
    list_until(&d, &carl, "alice running again", |l| {
        entry(l, "servers", "alice").is_some_and(|e| e["state"] == "running")
    })
    .await;

    // --- The job cancelled behind the hub's back: gone once Slurm confirms it; the hub
    // forgets the server and records why.
    let out = s.client("scancel").arg(&job).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    list_until(&d, &carl, "alice's cancelled job forgotten", |l| !listed(l)).await;
    assert!(
        d.audit_records().iter().any(|r| r["event"] == "stop"
            && r["owner"] == "alice"
            && r["actor"] == "@steward"
            && r["message"]
                .as_str()
                .is_some_and(|m| m.contains(&job) && m.contains("CANCELLED"))),
        "{}",
        audit_dump(&d)
    );
    // The next start is a new job.
    let (status, body) = start_own(&d, &alice, &alice_csrf, "batch").await;
    assert_eq!(status, 200, "{body}");
    admin_stop(&d, &carl, &carl_csrf, "alice").await;
}
