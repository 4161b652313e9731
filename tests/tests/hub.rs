//! The hub end to end, as root, against `steward demo`: policy ∩ elevation on every
//! operation, expiry through the injected clock, sessions, CSRF, rate limits, tokens,
//! admin commands, restarts with adoption, policy reloads.

// Demo hubs reset the shared demo users, so each test holds the process-wide demo lock
// for its whole run, across awaits, on purpose.
#![allow(clippy::await_holding_lock)]

use serde_json::{json, Value};
use std::time::Duration;
use steward_e2e::*;
use steward_e2e::{demo_ws as ws, ws_op as op};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_and_elevation_decide_every_operation() {
    if !require_root("policy_and_elevation") {
        return;
    }
    let _l = demo_lock();
    let d = Demo::start();

    // bob, read-only: sees alice's workflows, may not pause them yet.
    let (bob_cookie, bob_csrf) = login_cookie(&d.base, &d.ca(), "bob", &d.password("bob")).await;
    let mut w = ws(&d, "alice", &bob_cookie).await;
    let snap = ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
    assert!(
        snap["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "alice_forecast"),
        "{snap}"
    );
    let r = op(&mut w, "b1", "pause", "alice_forecast").await;
    assert_eq!(r["type"], "denied", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("raise your privileges"),
        "{r}"
    );
    drop(w);

    // bob elevated: alice granted steward-ops CONTROL, the site caps it without clean.
    let (bob, csrf) = d.login("bob").await;
    let (_, bob_exec) = d.elevate(&bob, &csrf, "bob", "execute").await;
    // steward-ops has a per-group elevation of 30 minutes instead of the default 15.
    let me: Value = get_json(&bob, format!("{}/hub/api/me", d.base)).await;
    let left = me["seconds_left"].as_i64().unwrap();
    assert!((1700..=1800).contains(&left), "bob's elevation: {me}");
    let mut w = ws(&d, "alice", &bob_exec).await;
    ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
    let r = op(&mut w, "b2", "play", "housekeeping").await;
    assert_eq!(r["type"], "result", "{r}");
    let r = op(&mut w, "b3", "pause", "housekeeping").await;
    assert_eq!(r["type"], "result", "{r}");
    assert_eq!(r["ok"], true, "{r}");
    let r = op(&mut w, "b4", "clean", "housekeeping").await;
    assert_eq!(r["type"], "denied", "clean is outside the site limit: {r}");
    let r = op(&mut w, "b5", "broadcast", "housekeeping").await;
    assert_eq!(r["type"], "denied", "{r}");
    // A target on another owner's server is refused before any decision.
    let r = op(&mut w, "b6", "pause", "~carl/housekeeping").await;
    assert_eq!(r["type"], "error", "{r}");
    drop(w);
    let _ = bob_csrf;

    // carl is elevated but alice granted him nothing beyond READ.
    let (carl, csrf) = d.login("carl").await;
    let (_, carl_exec) = d.elevate(&carl, &csrf, "carl", "execute").await;
    let mut w = ws(&d, "alice", &carl_exec).await;
    ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
    let r = op(&mut w, "c1", "pause", "alice_forecast").await;
    assert_eq!(r["type"], "denied", "{r}");
    drop(w);

    // /hub/api/permitted matches: bob (execute) may pause but not clean, with reasons.
    let p: Value = get_json(
        &bob,
        format!(
            "{}/hub/api/permitted?owner=alice&workflow=housekeeping",
            d.base
        ),
    )
    .await;
    let ops: Vec<&str> = p["ops"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    assert!(
        ops.contains(&"pause") && ops.contains(&"read") && !ops.contains(&"clean"),
        "{p}"
    );
    assert!(p["denied"]["clean"].as_str().is_some(), "{p}");
    let e: Value = get_json(
        &carl,
        format!(
            "{}/hub/api/explain?owner=alice&workflow=alice_forecast&op=pause",
            d.base
        ),
    )
    .await;
    assert_eq!(e["allowed"], false, "{e}");
    assert!(!e["reasons"].as_array().unwrap().is_empty(), "{e}");

    // Expiry: alice elevates, time moves an hour, her next pause is refused, once audited.
    let (alice, csrf) = d.login("alice").await;
    let (_, alice_exec) = d.elevate(&alice, &csrf, "alice", "execute").await;
    let mut w = ws(&d, "alice", &alice_exec).await;
    ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
    let me: Value = get_json(&alice, format!("{}/hub/api/me", d.base)).await;
    assert_eq!(me["class"], "execute");
    assert!(me["seconds_left"].as_i64().unwrap() > 800, "{me}");
    d.set_clock_offset(3600);
    let r = op(&mut w, "a1", "pause", "alice_forecast").await;
    assert_eq!(r["type"], "denied", "expired elevation must not act: {r}");
    let r = op(&mut w, "a2", "hold", "alice_forecast//1/fetch_obs").await;
    assert_eq!(r["type"], "denied", "{r}");
    let me: Value = get_json(&alice, format!("{}/hub/api/me", d.base)).await;
    assert_eq!(me["class"], "read", "{me}");
    d.set_clock_offset(0);

    // Outcomes are queued behind the result the browser sees: give the writer a moment.
    wait_until(Duration::from_secs(5), || {
        d.audit_records()
            .iter()
            .any(|r| r["actor"] == "bob" && r["op"] == "pause" && r["kind"] == "outcome")
    });
    let records = d.audit_records();
    let expiries = records
        .iter()
        .filter(|r| r["event"] == "expire" && r["actor"] == "alice")
        .count();
    assert_eq!(expiries, 1, "expiry audited exactly once");
    let denied = |actor: &str, opn: &str| {
        records
            .iter()
            .any(|r| r["actor"] == actor && r["op"] == opn && r["decision"] == "deny")
    };
    assert!(
        denied("bob", "pause")
            && denied("bob", "clean")
            && denied("carl", "pause")
            && denied("alice", "pause")
    );
    assert!(records.iter().any(|r| r["actor"] == "bob"
        && r["op"] == "pause"
        && r["kind"] == "outcome"
        && r["outcome"] == "ok"
        && r["elevation"] == "execute"));
    let human = d.human_audit();
    assert!(
        human.contains("User bob raised privileges to execute"),
        "{human}"
    );
    assert!(
        human.contains("User bob paused alice's housekeeping workflow"),
        "{human}"
    );
    assert!(
        human.contains("User bob was denied clean on alice's housekeeping workflow"),
        "{human}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_need_csrf_and_limit_logins_and_end_idle_or_logged_out() {
    if !require_root("sessions_csrf_limits") {
        return;
    }
    let _l = demo_lock();
    let d = Demo::start();
    let (alice, csrf) = d.login("alice").await;

    // CSRF on every state-changing request.
    let r = alice
        .post(format!("{}/hub/api/elevate", d.base))
        .json(&json!({"class": "execute", "password": d.password("alice")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = alice
        .post(format!("{}/hub/api/elevate", d.base))
        .header("x-csrf-token", "forged")
        .json(&json!({"class": "execute", "password": d.password("alice")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Bad input on login: all the generic 401 (or 400 for a body that is not JSON at all).
    for (u, p) in [
        ("alice\u{7}", "x"),
        (&*"a".repeat(300), "x"),
        ("alice", &*"p".repeat(5000)),
        ("ALICE", "x"),
    ] {
        let r = d
            .client()
            .post(format!("{}/hub/api/login", d.base))
            .json(&json!({"username": u, "password": p}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{u:?}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"],
            "invalid username or password"
        );
    }
    let r = d
        .client()
        .post(format!("{}/hub/api/login", d.base))
        .header("content-type", "application/json")
        .body(vec![0xff, 0xfe, b'{'])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Rate limit per user name: the 6th failure within the window is a 429 with Retry-After,
    // and then even the right password waits.
    for i in 0..5 {
        let r = d
            .client()
            .post(format!("{}/hub/api/login", d.base))
            .json(&json!({"username": "carl", "password": format!("wrong{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = d
        .client()
        .post(format!("{}/hub/api/login", d.base))
        .json(&json!({"username": "carl", "password": d.password("carl")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 300);
    d.set_clock_offset(400);
    // After the window the right password works again.
    let _carl = d.login("carl").await;

    // Idle sessions end: eight idle hours later the cookie is dead (time moved, not slept).
    let (idle, _) = d.login("bob").await;
    assert_eq!(
        idle.get(format!("{}/hub/api/me", d.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    d.set_clock_offset(400 + 9 * 3600);
    assert_eq!(
        idle.get(format!("{}/hub/api/me", d.base))
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "idle session survived"
    );
    d.set_clock_offset(400);

    // Logout revokes on the server: the old cookie is dead.
    let r = alice
        .post(format!("{}/hub/api/logout", d.base))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        alice
            .get(format!("{}/hub/api/me", d.base))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    let metrics = d
        .client()
        .get(format!("{}/metrics", d.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for m in [
        "steward_logins_total",
        "steward_spawns_total",
        "steward_audit_write_seconds",
        "steward_running_servers",
        "steward_policy_reload_errors_total",
    ] {
        assert!(metrics.contains(m), "{m} missing from /metrics");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_are_hashed_bounded_by_elevation_and_revocable() {
    if !require_root("api_tokens") {
        return;
    }
    let _l = demo_lock();
    let d = Demo::start();
    let (alice, csrf) = d.login("alice").await;
    // The demo starts every server in the background; wait until bob's and carl's answer,
    // so alice has other owners' workflows to see.
    for owner in ["bob", "carl"] {
        let (cookie, _) = login_cookie(&d.base, &d.ca(), owner, &d.password(owner)).await;
        let mut w = ws(&d, owner, &cookie).await;
        ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
    }

    // Tokens: read token works as Bearer; an execute token needs an elevated session.
    let r = alice
        .post(format!("{}/hub/api/tokens", d.base))
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "t", "class": "execute", "expires_in_secs": 600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "execute token from a read session");
    let r = alice
        .post(format!("{}/hub/api/tokens", d.base))
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "t", "class": "read"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "expiry is required");
    let r = alice
        .post(format!("{}/hub/api/tokens", d.base))
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "ro", "class": "read", "expires_in_secs": 600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let token = t["token"].as_str().unwrap().to_string();
    let bare = d.client();
    let r = bare
        .get(format!("{}/hub/api/overview", d.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ov: Value = r.json().await.unwrap();
    assert!(
        ov["owners"].as_array().unwrap().len() >= 2,
        "alice sees others' workflows: {ov}"
    );
    // Stored hashed: the secret is nowhere in the database.
    let db = match &d.pg {
        Some(pg) => pg
            .psql(steward_e2e::postgres::DATABASE, "SELECT * FROM api_tokens")
            .into_bytes(),
        None => std::fs::read(d.data.path().join("state/hub.db")).unwrap(),
    };
    assert!(!db.is_empty());
    let secret = token.rsplit('_').next().unwrap();
    assert!(
        !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "token stored in clear"
    );
    let (csrf2, _) = d.elevate(&alice, &csrf, "alice", "execute").await;
    let r = alice
        .post(format!("{}/hub/api/tokens", d.base))
        .header("x-csrf-token", &csrf2)
        .json(&json!({"name": "x", "class": "execute", "expires_in_secs": 100000}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        400,
        "an execute token may not outlive the maximum elevation"
    );
    let r = alice
        .post(format!("{}/hub/api/tokens", d.base))
        .header("x-csrf-token", &csrf2)
        .json(&json!({"name": "x", "class": "execute", "expires_in_secs": 600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = alice
        .delete(format!(
            "{}/hub/api/tokens/{}",
            d.base,
            t["id"].as_str().unwrap()
        ))
        .header("x-csrf-token", &csrf2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = bare
        .get(format!("{}/hub/api/overview", d.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "revoked token still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_stop_servers_but_not_workflows_and_the_cli_uses_tokens() {
    if !require_root("admin_and_cli") {
        return;
    }
    let _l = demo_lock();
    let d = Demo::start();
    let (alice, csrf) = d.login("alice").await;
    let (carl, carl_csrf) = d.login("carl").await;
    // A visit makes sure alice's server is up (her login starts it in the background).
    let (visitor, _) = login_cookie(&d.base, &d.ca(), "bob", &d.password("bob")).await;
    let mut w = ws(&d, "alice", &visitor).await;
    ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
    drop(w);
    // An overview while it runs leaves alice's last known state for when it is stopped.
    let _: Value = get_json(&carl, format!("{}/hub/api/overview", d.base)).await;

    // Admin: carl may list and stop servers; alice may not; admins gain no workflow rights.
    let r = alice
        .get(format!("{}/hub/api/admin/servers", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let servers: Value = get_json(&carl, format!("{}/hub/api/admin/servers", d.base)).await;
    assert!(
        servers["servers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["owner"] == "alice"),
        "{servers}"
    );
    // alice's forecast runs; stopping her server must not stop it.
    let (_csrf3, alice_cookie) = d.elevate(&alice, &csrf, "alice", "execute").await;
    let mut w = ws(&d, "alice", &alice_cookie).await;
    ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
    let r = op(&mut w, "play", "play", "alice_forecast").await;
    assert_eq!(r["ok"], true, "{r}");
    drop(w);
    let workflow_procs = || {
        std::fs::read_to_string("/sys/fs/cgroup/pids/steward-demo/alice/workflows/cgroup.procs")
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(10), || !workflow_procs()
            .trim()
            .is_empty()),
        "scheduler not in the workflows cgroup"
    );
    let r = carl
        .post(format!("{}/hub/api/admin/servers/alice/stop", d.base))
        .header("x-csrf-token", &carl_csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        std::fs::read_to_string("/sys/fs/cgroup/pids/steward-demo/alice/default/cgroup.procs")
            .unwrap_or_default()
            .trim()
            .is_empty()
    );
    let sched: Vec<u32> = workflow_procs()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    assert!(
        !sched.is_empty() && sched.iter().all(|p| alive(*p)),
        "the workflow died with its server"
    );
    // The overview still lists alice's workflows, from the last known state.
    let ov: Value = get_json(&carl, format!("{}/hub/api/overview", d.base)).await;
    let a = ov["owners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["owner"] == "alice")
        .expect("alice in overview");
    assert_eq!(a["stale"], true, "{a}");
    // And the next visit starts it again transparently.
    let (bob_cookie, _) = login_cookie(&d.base, &d.ca(), "bob", &d.password("bob")).await;
    let mut w = ws(&d, "alice", &bob_cookie).await;
    ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
    drop(w);

    // The CLI talks to the running hub with a token.
    let cli_token = d.cli_token("carl");
    let (ok, out) = d.cli(&cli_token, &["servers", "list"]);
    assert!(ok && out.contains("alice"), "{out}");
    let (ok, out) = d.cli(&cli_token, &["scan"]);
    assert!(ok && out.contains("alice_forecast"), "{out}");
    let (_, out) = d.cli(&cli_token, &["sessions", "list"]);
    assert!(out.contains("bob"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_sessions_and_readopts_servers() {
    if !require_root("restart_adopt") {
        return;
    }
    let _l = demo_lock();
    let mut d = Demo::start();
    let (cookie, _) = login_cookie(&d.base, &d.ca(), "alice", &d.password("alice")).await;
    let mut w = ws(&d, "alice", &cookie).await;
    ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
    drop(w);
    let procs = || {
        std::fs::read_to_string("/sys/fs/cgroup/pids/steward-demo/alice/default/cgroup.procs")
            .unwrap_or_default()
    };
    let before = procs();
    assert!(!before.trim().is_empty());

    for kill in [true, false] {
        // A SIGKILLed (or interrupted-then-restarted) hub finds alice's server again.
        if !kill {
            // SIGINT stops the demo's servers by design; start them again first.
        }
        d.restart(kill);
        let c = d.client();
        let r = c
            .get(format!("{}/hub/api/me", d.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "session lost across restart (kill={kill})");
        let mut w = ws(&d, "alice", &cookie).await;
        ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
        drop(w);
        if kill {
            assert_eq!(procs(), before, "server not adopted after SIGKILL");
            // Adoption is the leader's, which a hub on PostgreSQL becomes a moment
            // after it is ready.
            assert!(
                wait_until(Duration::from_secs(15), || d
                    .audit_records()
                    .iter()
                    .any(|r| r["event"] == "adopt" && r["owner"] == "alice")),
                "adoption not audited"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_policy_never_takes_effect_and_good_one_reloads() {
    if !require_root("policy_reload") {
        return;
    }
    let _l = demo_lock();
    let d = Demo::start();
    let site = d.data.path().join("policy/site.toml");
    let good = std::fs::read_to_string(&site).unwrap();
    std::fs::write(&site, "[owners.\"*\".\"*\"]\ndefault = []\n").unwrap();
    let pid = d.proc.as_ref().unwrap().child.id() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || d
            .audit_records()
            .iter()
            .any(|r| r["event"] == "policy_reload" && r["outcome"] == "error")),
        "failed reload not audited"
    );
    // The last good policy stays: bob still reads alice's workflows.
    // (A hub on PostgreSQL prestarts the demo's servers a moment after it is ready,
    // once it leads: the overview may need a few seconds to show them.)
    let (bob, _) = d.login("bob").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ov: Value = get_json(&bob, format!("{}/hub/api/overview", d.base)).await;
        let shown = ov["owners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["owner"] == "alice");
        if shown {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{ov}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let metrics = d
        .client()
        .get(format!("{}/metrics", d.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("steward_policy_reload_errors_total") && !l.ends_with(" 0")),
        "{metrics}"
    );

    // A good file that lets bob read nothing of others takes effect on its own (file watch).
    std::fs::write(
        &site,
        good.replace("default = \"READ\"", "default = \"!ALL\"")
            .replace("default = [\"READ\"]", "default = [\"!ALL\"]"),
    )
    .unwrap();
    let gone = wait_until(Duration::from_secs(15), || {
        d.audit_records()
            .iter()
            .filter(|r| r["event"] == "policy_reload" && r["outcome"] == "ok")
            .count()
            >= 1
    });
    assert!(gone, "good policy not reloaded");
    let ov: Value = get_json(&bob, format!("{}/hub/api/overview", d.base)).await;
    assert!(
        !ov["owners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["owner"] == "alice"),
        "{ov}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_kill_in_a_server_cgroup_is_reported() {
    if !require_root("oom_report") {
        return;
    }
    let _l = demo_lock();
    let d = Demo::start();
    let (cookie, _) = login_cookie(&d.base, &d.ca(), "bob", &d.password("bob")).await;
    let mut w = ws(&d, "bob", &cookie).await;
    ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
    drop(w);
    // Something in bob's server cgroup grows past the profile's 1 GiB limit.
    let cg = "/sys/fs/cgroup/memory/steward-demo/bob/default/cgroup.procs";
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {cg} && head -c 1400000000 /dev/zero | tail -n1 > /dev/null"
        ))
        .status()
        .unwrap();
    assert!(!status.success(), "the hog was not killed");
    let reported = wait_until(Duration::from_secs(30), || {
        d.audit_records()
            .iter()
            .any(|r| r["owner"] == "bob" && r["extra"]["oom_killed"] == true)
    });
    assert!(reported, "the hub did not report the OOM kill");
    assert!(
        d.human_audit().contains("out of memory"),
        "{}",
        d.human_audit()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_and_operation_limits_give_clear_errors() {
    if !require_root("limits") {
        return;
    }
    let _l = demo_lock();
    let mut d = Demo::start();
    d.serve_with("\n[limits]\nws_per_user = 2\nops_per_sec = 5\n");
    let (cookie, _) = login_cookie(&d.base, &d.ca(), "bob", &d.password("bob")).await;
    let mut a = ws(&d, "alice", &cookie).await;
    let _b = ws(&d, "carl", &cookie).await;
    let third = ws_connect(
        &d.ca(),
        &format!("wss://127.0.0.1:{}/user/alice/ws", d.port),
        Some(&d.base),
        &cookie,
    )
    .await;
    match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 429),
        other => panic!("third connection: {:?}", other.map(|_| ())),
    }
    ws_until(&mut a, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
    // A burst beyond 2 × 5 operations: the excess gets a clear error, the connection stays.
    for i in 0..20 {
        ws_send(
            &mut a,
            json!({"type": "op", "id": format!("r{i}"), "op": "pause", "target": "alice_forecast"}),
        )
        .await;
    }
    let limited = ws_until(&mut a, Duration::from_secs(30), |v| {
        v["type"] == "error"
            && v["message"]
                .as_str()
                .unwrap_or("")
                .contains("too many operations")
    })
    .await;
    assert!(
        limited["message"]
            .as_str()
            .unwrap()
            .contains("5 per second"),
        "{limited}"
    );
    ws_send(&mut a, json!({"type": "ping"})).await;
    ws_until(&mut a, Duration::from_secs(10), |v| v["type"] == "pong").await;
    // Closing one connection frees its slot.
    drop(a);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _c = ws(&d, "alice", &cookie).await;
}

/// POSTs an operation to `/user/{owner}/api/op`; returns (status, body).
async fn http_op(
    d: &Demo,
    c: &reqwest::Client,
    csrf: &str,
    owner: &str,
    body: Value,
) -> (u16, Value) {
    let r = c
        .post(format!("{}/user/{owner}/api/op", d.base))
        .header("x-csrf-token", csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The outcome record that closes the intent with this request id, if any.
fn outcome_of(d: &Demo, op: &str, workflow: &str) -> Vec<Value> {
    let recs = d.audit_records();
    let intents: Vec<&Value> = recs
        .iter()
        .filter(|r| r["kind"] == "intent" && r["op"] == op && r["workflow"] == workflow)
        .collect();
    intents
        .iter()
        .filter_map(|i| {
            recs.iter()
                .find(|r| r["kind"] == "outcome" && r["request_id"] == i["request_id"])
                .cloned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_operations_take_the_decided_audited_path() {
    if !require_root("http_ops") {
        return;
    }
    let _l = demo_lock();
    let mut d = Demo::start();
    // `steward serve`, not the demo: on SIGTERM it leaves the servers running.
    d.serve_with("");
    let (alice, csrf) = d.login("alice").await;
    let (csrf, _cookie) = d.elevate(&alice, &csrf, "alice", "execute").await;

    // An operation over HTTP takes the same path as one over the WebSocket.
    let (status, body) = http_op(
        &d,
        &alice,
        &csrf,
        "alice",
        json!({"id": "h1", "op": "play", "target": "alice_forecast"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "result", "{body}");
    assert_eq!(body["ok"], true, "{body}");
    let played = outcome_of(&d, "play", "alice_forecast");
    assert_eq!(played.len(), 1, "one intent, one outcome: {played:?}");
    assert_eq!(played[0]["outcome"], "ok");

    // Bad requests name what is wrong; nothing is forwarded or left half-recorded.
    let (status, body) = http_op(&d, &alice, &csrf, "alice", json!({"id": "h2"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("request body"),
        "{body}"
    );
    let (status, body) = http_op(
        &d,
        &alice,
        &csrf,
        "alice",
        json!({"id": "h3", "op": "pauze", "target": "alice_forecast"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("op: unknown operation"),
        "{body}"
    );
    let (status, body) = http_op(
        &d,
        &alice,
        &csrf,
        "alice",
        json!({"id": "h4", "op": "pause", "target": "alice_forecast", "token": "x"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().starts_with("token:"),
        "{body}"
    );
    let (status, _) = http_op(
        &d,
        &alice,
        "wrong",
        "alice",
        json!({"id": "h5", "op": "pause", "target": "alice_forecast"}),
    )
    .await;
    assert_eq!(status, 403, "CSRF is required for HTTP operations");
    // Methods the hub cannot decide never reach the server.
    let r = alice
        .put(format!("{}/user/alice/api/op", d.base))
        .header("x-csrf-token", &csrf)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let r = alice
        .delete(format!("{}/user/alice/api/summary", d.base))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    // A person without the permission is denied, and it is audited.
    let (bob, bob_csrf) = d.login("bob").await;
    let (status, body) = http_op(
        &d,
        &bob,
        &bob_csrf,
        "alice",
        json!({"id": "h6", "op": "stop", "target": "alice_forecast"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "denied", "{body}");
    assert!(d
        .audit_records()
        .iter()
        .any(|r| r["actor"] == "bob" && r["op"] == "stop" && r["decision"] == "deny"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_operations_in_flight_and_leaves_servers_running() {
    if !require_root("drain") {
        return;
    }
    let _l = demo_lock();
    let mut d = Demo::start();
    // `steward serve`, not the demo: on SIGTERM it leaves the servers running.
    d.serve_with("");
    let (alice, csrf) = d.login("alice").await;
    let (csrf, cookie) = d.elevate(&alice, &csrf, "alice", "execute").await;

    // The workflow must run for its scheduler to hold an operation.
    let (status, body) = http_op(
        &d,
        &alice,
        &csrf,
        "alice",
        json!({"id": "h1", "op": "play", "target": "alice_forecast"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // SIGTERM while an operation is in flight: the workflow's scheduler is stopped
    // (SIGSTOP), so a `pause` sent to it waits until it is continued. The hub takes no
    // new operation, waits for the answer, audits it, closes the WebSocket with 1012
    // (restart) and exits, leaving alice's server and workflows running.
    let mut w = ws(&d, "alice", &cookie).await;
    ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
    let server_pid: i32 =
        std::fs::read_to_string("/sys/fs/cgroup/pids/steward-demo/alice/default/cgroup.procs")
            .unwrap()
            .lines()
            .next()
            .expect("alice's server runs")
            .parse()
            .unwrap();
    let workflow_pids: Vec<i32> =
        std::fs::read_to_string("/sys/fs/cgroup/pids/steward-demo/alice/workflows/cgroup.procs")
            .unwrap()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect();
    assert!(!workflow_pids.is_empty(), "alice_forecast's scheduler runs");
    let signal_all = |sig| {
        for p in &workflow_pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), sig);
        }
    };
    signal_all(nix::sys::signal::Signal::SIGSTOP);
    ws_send(
        &mut w,
        json!({"type": "op", "id": "slow", "op": "pause", "target": "alice_forecast"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let hub = d.proc.as_mut().unwrap();
    let hub_pid = nix::unistd::Pid::from_raw(hub.child.id() as i32);
    nix::sys::signal::kill(hub_pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    ws_send(
        &mut w,
        json!({"type": "op", "id": "late", "op": "hold", "target": "alice_forecast"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal_all(nix::sys::signal::Signal::SIGCONT);
    let mut late_refused = false;
    let mut slow_result = None;
    let close_code = loop {
        use futures_util::StreamExt;
        let msg = tokio::time::timeout(Duration::from_secs(15), w.next())
            .await
            .expect("relay neither answered nor closed");
        match msg {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["id"] == "late" {
                    assert_eq!(v["type"], "error", "{v}");
                    assert!(v["message"].as_str().unwrap().contains("restarting"), "{v}");
                    late_refused = true;
                }
                if v["id"] == "slow" && v["type"] == "result" {
                    slow_result = Some(v);
                }
            }
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f))) => {
                break f.map(|f| u16::from(f.code))
            }
            Some(Ok(_)) => {}
            other => panic!("connection ended without a close frame: {other:?}"),
        }
    };
    assert!(
        late_refused,
        "an operation sent while draining must be refused"
    );
    let slow = slow_result.expect("the operation in flight was answered before the close");
    assert_eq!(slow["ok"], true, "{slow}");
    assert_eq!(close_code, Some(1012));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Ok(Some(s)) = hub.child.try_wait() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "hub did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "hub exit: {status}");
    let paused = outcome_of(&d, "pause", "alice_forecast");
    assert_eq!(paused.len(), 1, "{paused:?}");
    assert_eq!(
        paused[0]["outcome"], "ok",
        "drained, not unknown: {paused:?}"
    );
    assert!(
        !d.audit_records()
            .iter()
            .any(|r| r["op"] == "hold" && r["kind"] == "intent"),
        "the refused late operation must not be recorded as sent"
    );
    assert!(
        alive(server_pid as u32),
        "SIGTERM must leave servers running"
    );
    // The next hub re-adopts it and serves the same session.
    d.proc = None;
    d.serve_with("");
    let r = d
        .client()
        .get(format!("{}/hub/api/me", d.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server_pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Must-haves of issue 8 not covered above: concurrent visitors wait on one spawn, not
/// several; a server with no watcher and no activity for `cull_idle_secs` (1 h by
/// default) is stopped and audited, and the next visit starts it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_visitors_share_one_spawn_and_idle_servers_are_culled() {
    if !require_root("one_spawn_and_culling") {
        return;
    }
    let _l = demo_lock();
    let d = Demo::start();
    let (carl, carl_csrf) = d.login("carl").await;
    let (bob, _) = d.login("bob").await;
    let servers_url = format!("{}/hub/api/admin/servers", d.base);
    let bob_running = |v: &Value| server_listed(v, "bob");
    // The demo prestarts bob's server; stop it so that the visits below must start it.
    d.stop_prestarted(&carl, &carl_csrf, "bob").await;
    let bob_spawns = || {
        d.audit_records()
            .iter()
            .filter(|r| r["event"] == "spawn" && r["owner"] == "bob")
            .count()
    };
    let before = bob_spawns();

    // Eight visits at once: every one is answered, by a single new server.
    let url = format!("{}/user/bob/api/summary", d.base);
    let visits = (0..8).map(|_| {
        let (bob, url) = (bob.clone(), url.clone());
        tokio::spawn(async move { bob.get(url).send().await.unwrap().status() })
    });
    for v in futures_util::future::join_all(visits).await {
        assert_eq!(v.unwrap(), 200);
    }
    assert_eq!(
        bob_spawns(),
        before + 1,
        "concurrent visitors started more than one server"
    );

    // Two hours later nobody has watched or used it: the next cull pass (every 30 s)
    // stops it and says so in the audit log.
    d.set_clock_offset(2 * 3600);
    assert!(
        wait_until(Duration::from_secs(60), || d
            .audit_records()
            .iter()
            .any(|r| r["event"] == "cull" && r["owner"] == "bob")),
        "idle server not culled"
    );
    assert!(!bob_running(&get_json(&carl, servers_url.clone()).await));
    assert!(
        std::fs::read_to_string("/sys/fs/cgroup/pids/steward-demo/bob/default/cgroup.procs")
            .unwrap_or_default()
            .trim()
            .is_empty(),
        "culled server still has processes"
    );
    // The next visit starts it again, transparently.
    assert_eq!(bob.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(bob_spawns(), before + 2);
    d.set_clock_offset(0);
}
