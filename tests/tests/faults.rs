//! Faults, broken on purpose against a running hub (black box: HTTP, WebSocket, signals,
//! files), each asserting what must hold afterwards (issue 19). Faults already proven
//! elsewhere are not repeated here:
//! * hub SIGKILLed while idle: sessions and servers back, adoption audited —
//!   `hub.rs::restart_keeps_sessions_and_readopts_servers`;
//! * a policy that parses but is invalid never takes effect —
//!   `hub.rs::bad_policy_never_takes_effect_and_good_one_reloads`;
//! * slapd down: new logins 503, existing sessions work —
//!   `hub_ldap.rs::ldap_logins_feed_directory_groups_into_policy` (the recovery is here).

// Demo hubs reset the shared demo users, so each test holds the process-wide demo lock
// for its whole run, across awaits, on purpose.
#![allow(clippy::await_holding_lock)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use steward_e2e::*;
use steward_e2e::{demo_ws as ws, ws_op as op};

/// The schedulers among a workflows cgroup's processes (the rest are short-lived jobs).
fn schedulers(owner: &str) -> Vec<i32> {
    cgroup_pids(owner, "workflows")
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("scheduler"))
        })
        .collect()
}

/// Every intent in the log has exactly one outcome (nothing lost, nothing doubled).
fn every_intent_closed_once(d: &Demo) -> Result<(), String> {
    let recs = d.audit_records();
    for i in recs.iter().filter(|r| r["kind"] == "intent") {
        let n = recs
            .iter()
            .filter(|r| r["kind"] == "outcome" && r["request_id"] == i["request_id"])
            .count();
        if n != 1 {
            return Err(format!("intent {i} has {n} outcomes"));
        }
    }
    Ok(())
}

fn assert_every_intent_closed_once(d: &Demo) {
    if let Err(e) = every_intent_closed_once(d) {
        panic!("{e}");
    }
}

async fn workflow_state(d: &Demo, cookie: &str, owner: &str, wf: &str) -> String {
    let mut w = ws(d, owner, cookie).await;
    let snap = ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
    snap["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == wf)
        .map(|x| x["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_hub_mid_operation_leaves_one_unknown_outcome_and_no_rerun() {
    if !require_root("sigkill_hub_mid_op") {
        return;
    }
    let _l = demo_lock();
    let mut d = Demo::start();
    let (alice, csrf) = d.login("alice").await;
    let (_, cookie) = d.elevate(&alice, &csrf, "alice", "execute").await;
    let mut w = ws(&d, "alice", &cookie).await;
    ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
    let r = op(&mut w, "k0", "play", "alice_forecast").await;
    assert_eq!(r["type"], "result", "{r}");
    let sched = cgroup_pids("alice", "workflows");
    assert!(!sched.is_empty(), "alice_forecast's scheduler runs");
    let server_before = cgroup_pids("alice", "default");

    // The scheduler is stopped, so the pause waits in the UI server; the hub dies with the
    // intent durable and no outcome.
    signal(&sched, nix::sys::signal::Signal::SIGSTOP);
    ws_send(
        &mut w,
        json!({"type": "op", "id": "k1", "op": "pause", "target": "alice_forecast"}),
    )
    .await;
    let intent = |d: &Demo| {
        d.audit_records().into_iter().find(|r| {
            r["kind"] == "intent" && r["op"] == "pause" && r["workflow"] == "alice_forecast"
        })
    };
    assert!(
        wait_until(Duration::from_secs(10), || intent(&d).is_some()),
        "the intent was not written before forwarding"
    );
    let rid = intent(&d).unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(w);
    d.restart(true);
    signal(&sched, nix::sys::signal::Signal::SIGCONT);

    // Sessions and servers are back.
    let me = d
        .client()
        .get(format!("{}/hub/api/me", d.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "session lost across SIGKILL");
    let mut w = ws(&d, "alice", &cookie).await;
    ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
    assert_eq!(
        cgroup_pids("alice", "default"),
        server_before,
        "server not adopted"
    );
    // The interrupted operation has exactly one outcome, `unknown`.
    let outcomes: Vec<Value> = d
        .audit_records()
        .into_iter()
        .filter(|r| r["kind"] == "outcome" && r["request_id"] == rid.as_str())
        .collect();
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0]["outcome"], "unknown", "{outcomes:?}");
    // The UI server's own record says what really happened, exactly once: the hub did
    // not replay the operation.
    assert!(
        wait_until(Duration::from_secs(30), || !d
            .server_ran("alice", &rid)
            .is_empty()),
        "the UI server never recorded the operation {rid}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ran = d.server_ran("alice", &rid);
    assert_eq!(ran.len(), 1, "ran more than once: {ran:?}");
    eprintln!("the UI server's record of {rid}: {}", ran[0]);
    // The hub reconciles the unknown outcome with that record (a `reconcile` event).
    let reconciled = |d: &Demo| {
        d.audit_records()
            .into_iter()
            .find(|r| r["event"] == "reconcile" && r["request_id"] == rid.as_str())
    };
    assert!(
        wait_until(Duration::from_secs(30), || reconciled(&d).is_some()),
        "the unknown outcome was not reconciled with the UI server's record"
    );
    let rec = reconciled(&d).unwrap();
    let ran_ok = serde_json::from_str::<Value>(&ran[0]).unwrap()["fields"]["ok"] == true;
    assert_eq!(
        rec["outcome"],
        if ran_ok { "ok" } else { "error" },
        "{rec} vs {ran:?}"
    );
    // A new operation goes through once.
    let r = op(&mut w, "k2", "resume", "alice_forecast").await;
    assert_eq!(r["type"], "result", "{r}");
    wait_until(Duration::from_secs(5), || {
        d.audit_records()
            .iter()
            .any(|r| r["kind"] == "outcome" && r["op"] == "resume")
    });
    assert_every_intent_closed_once(&d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_ui_server_is_marked_and_respawned_and_a_killed_scheduler_shows_stopped() {
    if !require_root("sigkill_uiserver") {
        return;
    }
    let _l = demo_lock();
    let d = Demo::start();
    let (alice, csrf) = d.login("alice").await;
    let (_, cookie) = d.elevate(&alice, &csrf, "alice", "execute").await;
    let mut w = ws(&d, "alice", &cookie).await;
    ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
    let r = op(&mut w, "u0", "play", "alice_forecast").await;
    assert_eq!(r["type"], "result", "{r}");
    drop(w);
    let sched = schedulers("alice");
    assert!(!sched.is_empty());
    let server = cgroup_pids("alice", "default");
    assert!(!server.is_empty());
    let spawns = || {
        d.audit_records()
            .iter()
            .filter(|r| r["event"] == "spawn" && r["owner"] == "alice")
            .count()
    };
    let spawns_before = spawns();

    signal(&server, nix::sys::signal::Signal::SIGKILL);
    // The hub notices on its own and says so.
    assert!(
        wait_until(Duration::from_secs(30), || d.audit_records().iter().any(
            |r| {
                r["event"] == "stop"
                    && r["owner"] == "alice"
                    && r["message"].as_str().unwrap_or("").contains("exited")
            }
        )),
        "the dead server was not marked: {:#?}",
        d.audit_records()
            .iter()
            .filter(|r| r["owner"] == "alice" && r["kind"] == "event")
            .map(|r| format!("{} {} {}", r["event"], r["actor"], r["message"]))
            .collect::<Vec<_>>()
    );
    let (carl, _) = d.login("carl").await;
    let servers = get_json(&carl, format!("{}/hub/api/admin/servers", d.base)).await;
    assert!(
        !servers["servers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["owner"] == "alice"),
        "a dead server is still listed: {servers}"
    );
    // The next visit starts a new one; the workflow never stopped.
    assert_eq!(
        workflow_state(&d, &cookie, "alice", "alice_forecast").await,
        "running"
    );
    assert_eq!(spawns(), spawns_before + 1);
    let new_server = cgroup_pids("alice", "default");
    assert!(!new_server.is_empty() && new_server != server);
    for p in &sched {
        assert!(alive(*p as u32), "scheduler {p} died with the UI server");
    }

    // A SIGKILLed scheduler: the workflow is shown stopped, not running.
    signal(&sched, nix::sys::signal::Signal::SIGKILL);
    let mut state = String::new();
    for _ in 0..50 {
        state = workflow_state(&d, &cookie, "alice", "alice_forecast").await;
        if state == "stopped" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(state, "stopped");
}

/// The demo's helper, replaced by `script` until dropped.
struct FakeHelper {
    path: PathBuf,
    real: PathBuf,
}

impl FakeHelper {
    fn install(d: &Demo, script: &str) -> FakeHelper {
        use std::os::unix::fs::PermissionsExt;
        let path = d.data.path().join("bin/steward-spawn");
        let real = d.data.path().join("bin/steward-spawn.real");
        if !real.exists() {
            std::fs::rename(&path, &real).unwrap();
        }
        let tmp = d.data.path().join("bin/.fake");
        std::fs::write(&tmp, script).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        FakeHelper { path, real }
    }
}

impl Drop for FakeHelper {
    fn drop(&mut self) {
        let _ = std::fs::rename(&self.real, &self.path);
    }
}

fn nothing_half_started(owner: &str) {
    for ctl in ["pids", "memory"] {
        let procs = std::fs::read_to_string(format!(
            "/sys/fs/cgroup/{ctl}/steward-demo/{owner}/default/cgroup.procs"
        ))
        .unwrap_or_default();
        assert!(
            procs.trim().is_empty(),
            "{ctl} cgroup of {owner} holds {procs}"
        );
    }
    let out = std::process::Command::new("pgrep")
        .args(["-u", owner, "-f", "steward-uiserver"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "a UI server of {owner} runs: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_or_hanging_helper_fails_the_spawn_cleanly() {
    if !require_root("helper_crash_hang") {
        return;
    }
    let _l = demo_lock();
    let d = Demo::start();
    let (carl, carl_csrf) = d.login("carl").await;
    let (bob, _) = d.login("bob").await;
    let servers_url = format!("{}/hub/api/admin/servers", d.base);
    let bob_listed = |v: &Value| server_listed(v, "bob");
    d.stop_prestarted(&carl, &carl_csrf, "bob").await;
    let url = format!("{}/user/bob/api/summary", d.base);

    for (what, script) in [
        ("crash", "#!/bin/sh\nkill -SEGV $$\n"),
        // A distinctive duration, to find a leftover sleeper.
        ("hang", "#!/bin/sh\nexec sleep 3017\n"),
    ] {
        let fake = FakeHelper::install(&d, script);
        let r = bob.get(&url).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert!(
            (500..=504).contains(&status),
            "{what}: visit answered {status} {body}"
        );
        assert!(
            body.contains("start") || body.contains("helper") || body.contains("server"),
            "{what}: unclear error {body}"
        );
        assert!(!bob_listed(&get_json(&carl, servers_url.clone()).await));
        nothing_half_started("bob");
        // The hub's background status checks hang on the helper too; each is killed at
        // the helper timeout (30 s), so none may outlive it.
        let hung = || {
            std::process::Command::new("pgrep")
                .args(["-f", "sleep 3017"])
                .output()
                .map(|o| !o.stdout.is_empty())
                .unwrap_or(false)
        };
        drop(fake);
        assert!(
            wait_until(Duration::from_secs(45), || !hung()),
            "{what}: a hung helper was left running past the timeout"
        );
        assert!(
            d.audit_records().iter().any(|r| r["owner"] == "bob"
                && (r["event"] == "spawn_failed"
                    || (r["event"] == "spawn" && r["outcome"] == "error"))),
            "{what}: the failed spawn is not audited"
        );
    }
    // With the real helper back, the next visit works.
    assert_eq!(bob.get(&url).send().await.unwrap().status(), 200);
    assert!(bob_listed(&get_json(&carl, servers_url.clone()).await));
}

/// A tiny tmpfs mounted over a directory until dropped.
struct TinyFs(PathBuf);

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn fill(dir: &Path) {
    // dd stops at ENOSPC; its failure is the point.
    let _ = std::process::Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", dir.join("filler").display()))
        .args(["bs=4k", "status=none"])
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_audit_disk_refuses_operations_loses_nothing_and_recovers() {
    if !require_root("audit_disk_full") {
        return;
    }
    let _l = demo_lock();
    let mut tiny: Option<TinyFs> = None;
    let mut d = Demo::start();
    // Move the audit log onto a 2 MiB tmpfs under the hub (restarted as `steward serve`).
    if let Some(mut p) = d.proc.take() {
        p.interrupt();
    }
    let audit = d.data.path().join("audit");
    let saved = d.data.path().join("audit.orig");
    std::fs::rename(&audit, &saved).unwrap();
    std::fs::create_dir(&audit).unwrap();
    sh(&format!(
        "mount -t tmpfs -o size=2m,mode=0700 steward-faults-audit {}",
        audit.display()
    ));
    tiny = tiny.or(Some(TinyFs(audit.clone())));
    sh(&format!("cp -a {}/. {}/", saved.display(), audit.display()));
    d.serve_with("");

    let (alice, csrf) = d.login("alice").await;
    let (_, cookie) = d.elevate(&alice, &csrf, "alice", "execute").await;
    let mut w = ws(&d, "alice", &cookie).await;
    ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
    let r = op(&mut w, "f0", "play", "alice_forecast").await;
    assert_eq!(r["type"], "result", "{r}");

    fill(&audit);
    // The last pages of the log files may still hold a few records: operations go
    // through until a write fails, and from then on every one is refused.
    let refused_msg = |r: &Value| {
        r["type"] == "error"
            && r["message"]
                .as_str()
                .unwrap_or("")
                .contains("audit log unavailable")
    };
    let mut accepted = 0;
    let mut first_refusal = None;
    for i in 0..200 {
        let r = op(&mut w, &format!("f{i}"), "pause", "alice_forecast").await;
        if refused_msg(&r) {
            first_refusal = Some(i);
            break;
        }
        assert_eq!(r["type"], "result", "{r}");
        accepted += 1;
    }
    assert!(
        first_refusal.is_some(),
        "a full disk never refused an operation"
    );
    for i in 0..5 {
        let r = op(&mut w, &format!("r{i}"), "pause", "alice_forecast").await;
        assert!(refused_msg(&r), "an operation went through unaudited: {r}");
    }

    // Space comes back: operations work again without a restart.
    std::fs::remove_file(audit.join("filler")).unwrap();
    let mut back = None;
    for i in 0..60 {
        let r = op(&mut w, &format!("g{i}"), "pause", "alice_forecast").await;
        if r["type"] == "result" {
            back = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(back.is_some(), "operations refused after space returned");
    // An outcome that hit the full disk is written again once there is space (the hub
    // retries every second).
    assert!(
        wait_until(Duration::from_secs(15), || every_intent_closed_once(&d)
            .is_ok()),
        "an accepted operation's outcome was not written after space returned"
    );
    drop(w);
    // A clean stop flushes every queued record; then nothing is lost: every intent that
    // was accepted has exactly one outcome, and no refused operation left an intent.
    if let Some(mut p) = d.proc.take() {
        p.interrupt();
    }
    assert_every_intent_closed_once(&d);
    let recs = d.audit_records();
    let pauses = recs
        .iter()
        .filter(|r| r["kind"] == "intent" && r["op"] == "pause")
        .count();
    assert_eq!(
        pauses,
        accepted + 1,
        "exactly the accepted pauses have an intent"
    );
    let verify = std::process::Command::new(bin("steward"))
        .args(["audit", "verify", "--dir"])
        .arg(&audit)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "audit chain broken: {} {}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    drop(d);
    drop(tiny);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slapd_down_then_back_logins_recover() {
    use steward_e2e::slapd::{self, Slapd, SlapdOptions};
    if !require_root("slapd_back") || !slapd::available("slapd_back") {
        return;
    }
    let _l = demo_lock();
    let mut s = Slapd::start(SlapdOptions::default());
    let mut d = Demo::start();
    d.serve_with(&format!(
        "\n[auth]\nbackend = \"ldap\"\n[auth.ldap]\nurl = \"{}\"\nca_file = \"{}\"\nuser_dn_template = \"{}\"\ngroup_base = \"{}\"\n",
        s.ldaps_url,
        s.ca_file.display(),
        slapd::USER_DN_TEMPLATE,
        slapd::GROUPS
    ));
    let login = |user: &'static str| {
        let c = d.client();
        let url = format!("{}/hub/api/login", d.base);
        async move {
            let r = c
                .post(url)
                .json(&json!({"username": user, "password": slapd::password_of(user)}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (c, status, body)
        }
    };
    let (dave, status, _) = login("dave").await;
    assert_eq!(status, 200);
    s.kill();
    let (_, status, body) = login("alice").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "authentication service unavailable");
    let me = dave
        .get(format!("{}/hub/api/me", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    s.revive();
    let mut ok = false;
    for _ in 0..20 {
        let (_, status, _) = login("alice").await;
        if status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ok, "logins did not recover when slapd came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_or_half_written_policy_keeps_the_last_good_one() {
    if !require_root("corrupt_policy") {
        return;
    }
    let _l = demo_lock();
    let d = Demo::start();
    let site = d.data.path().join("policy/site.toml");
    let good = std::fs::read_to_string(&site).unwrap();
    let (bob, _) = d.login("bob").await;
    let bob_sees_alice = || async {
        let ov: Value = get_json(&bob, format!("{}/hub/api/overview", d.base)).await;
        ov["owners"]
            .as_array()
            .is_some_and(|a| a.iter().any(|o| o["owner"] == "alice"))
    };
    // The overview lists owners whose server runs: the demo prestarts alice's.
    let mut up = false;
    for _ in 0..60 {
        if bob_sees_alice().await {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(up, "bob never saw alice's workflows");
    let errors = || {
        d.audit_records()
            .iter()
            .filter(|r| r["event"] == "policy_reload" && r["outcome"] == "error")
            .count()
    };
    let pid = nix::unistd::Pid::from_raw(d.proc.as_ref().unwrap().child.id() as i32);
    // Cut in the middle of the last section's array: what a writer killed mid-write leaves.
    let cut = good
        .rfind("CONTROL")
        .expect("the demo policy grants CONTROL")
        + 3;
    let cases: [(&str, Vec<u8>); 4] = [
        ("half-written", good.as_bytes()[..cut].to_vec()),
        ("empty", Vec::new()),
        ("binary garbage", vec![0xff, 0x00, 0xfe, b'[', 0x80, b'\n']),
        (
            "cut inside a string",
            b"[owners.\"*\".\"*\"]\ndefault = \"RE".to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        let before = errors();
        std::fs::write(&site, &bytes).unwrap();
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
        assert!(
            wait_until(Duration::from_secs(15), || errors() > before),
            "{what}: the failed reload was not audited"
        );
        assert!(
            bob_sees_alice().await,
            "{what}: the last good policy is not in force"
        );
    }
    // The good file again: reloaded, still in force.
    std::fs::write(&site, &good).unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    assert!(wait_until(Duration::from_secs(15), || d
        .audit_records()
        .iter()
        .any(|r| r["event"] == "policy_reload" && r["outcome"] == "ok")));
    assert!(bob_sees_alice().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_jumps_during_an_elevation_do_not_move_its_deadline() {
    if !require_root("clock_jumps") {
        return;
    }
    let _l = demo_lock();
    let d = Demo::start();
    let (alice, csrf) = d.login("alice").await;
    let (_, cookie) = d.elevate(&alice, &csrf, "alice", "execute").await;
    let me = || async { get_json(&alice, format!("{}/hub/api/me", d.base)).await };
    let first = me().await;
    let deadline = first["deadline"].clone();
    let granted = first["seconds_left"].as_i64().unwrap();
    assert!(granted > 120, "{first}");
    let mut w = ws(&d, "alice", &cookie).await;
    ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;

    // Forward, still inside: same deadline, still allowed.
    d.set_clock_offset(granted / 2);
    let m = me().await;
    assert_eq!(m["class"], "execute", "{m}");
    assert_eq!(m["deadline"], deadline, "{m}");
    let r = op(&mut w, "c1", "play", "alice_forecast").await;
    assert_eq!(r["type"], "result", "{r}");
    // Back, before the elevation began: same deadline (never a new one).
    d.set_clock_offset(-granted);
    let m = me().await;
    assert_eq!(m["class"], "execute", "{m}");
    assert_eq!(m["deadline"], deadline, "{m}");
    // Forward past the deadline: expired, operations denied.
    d.set_clock_offset(granted + 60);
    let m = me().await;
    assert_eq!(m["class"], "read", "{m}");
    let r = op(&mut w, "c2", "pause", "alice_forecast").await;
    assert_eq!(r["type"], "denied", "{r}");
    // Back before the deadline again: an elevation that has expired stays expired.
    d.set_clock_offset(0);
    let m = me().await;
    assert_eq!(m["class"], "read", "an expired elevation came back: {m}");
    let r = op(&mut w, "c3", "pause", "alice_forecast").await;
    assert_eq!(r["type"], "denied", "an expired elevation came back: {r}");
    assert_eq!(
        d.audit_records()
            .iter()
            .filter(|r| r["event"] == "expire" && r["actor"] == "alice")
            .count(),
        1
    );
}
