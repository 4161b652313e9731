//! Two hubs on one PostgreSQL database behind HAProxy (issue 18), all real: Debian's
//! PostgreSQL started by the test (tests/src/postgres.rs), Debian's HAProxy health-
//! checking `/hub/health` (tests/src/haproxy.rs), two `steward serve` processes with
//! the same keys and CA (copied, as an operator would) and their own audit logs.
//!
//! Proved here: a session made on one hub works on the other, and a logout on one ends
//! it on the other at once; two hubs asked at once to start an owner's server start
//! exactly one, and either relays to it; one hub leads the periodic work, and when it
//! is killed the other takes over within seconds while HAProxy keeps serving through
//! the survivor. And each hub's audit chain names its hub; the leader's signed
//! checkpoint over both chains' heads lets `steward audit verify --deployment` find a
//! tail cut off one hub's log (its `audit.head` files deleted too) and name that hub.

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use steward_e2e::haproxy::Haproxy;
use steward_e2e::postgres::Postgres;
use steward_e2e::*;

struct Hub {
    proc: Option<Proc>,
    port: u16,
    base: String,
    audit: std::path::PathBuf,
    /// Its data_dir (keys, the outside audit head).
    state: std::path::PathBuf,
    config: std::path::PathBuf,
}

/// Starts `steward serve` from the demo's config, changed for this hub.
fn start_hub(demo: &Path, id: &str, public_url: &str, url: &str) -> Hub {
    let port = free_port();
    let text = std::fs::read_to_string(demo.join("steward.toml")).unwrap();
    let data = demo.display().to_string();
    let state = demo.join(format!("state-{id}"));
    let audit = demo.join(format!("audit-{id}"));
    // Keys and CA are the deployment's: every hub has the same copy.
    std::fs::create_dir_all(&state).unwrap();
    for entry in std::fs::read_dir(demo.join("state")).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if p.is_file() && !name.starts_with("hub.db") && !name.starts_with("audit.head") {
            std::fs::copy(&p, state.join(&name)).unwrap();
        }
    }
    sh(&format!("chmod 700 {}", state.display()));
    let mut cfg = String::new();
    for line in text.lines() {
        let line = if line.starts_with("public_url =") {
            format!("public_url = \"{public_url}\"")
        } else if line.starts_with("listen =") {
            format!("listen = \"127.0.0.1:{port}\"")
        } else if line.starts_with("data_dir =") {
            format!("data_dir = \"{}\"", state.display())
        } else if line.starts_with("dir = \"") && line.contains("/audit") {
            format!("dir = \"{}\"", audit.display())
        } else if line.starts_with("prestart =") {
            // Idle servers go soon, so that a test can watch the leader cull.
            "prestart = []\ncull_idle_secs = 40".into()
        } else {
            line.to_string()
        };
        cfg.push_str(&line);
        cfg.push('\n');
    }
    cfg.push_str(&format!(
        "\n[database]\nurl = \"{url}\"\nhub_id = \"{id}\"\n"
    ));
    let path = Path::new(&data).join(format!("steward-{id}.toml"));
    write_root_file(&path, &cfg);
    let mut cmd = Command::new(bin("steward"));
    cmd.args(["serve", "-c"])
        .arg(&path)
        .env("STEWARD_LOG", "warn");
    let mut p = Proc::spawn(cmd);
    p.wait_for_line("ready on", Duration::from_secs(60));
    Hub {
        proc: Some(p),
        port,
        base: format!("https://127.0.0.1:{port}"),
        audit,
        state,
        config: path,
    }
}

fn records(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

async fn health(c: &reqwest::Client, hub: &Hub) -> Value {
    get_json(c, format!("{}/hub/health", hub.base)).await
}

/// Logs in at `base` (a hub, or HAProxy) and returns (cookie, csrf).
async fn login_at(d: &Demo, base: &str, user: &str) -> (String, String) {
    login_cookie(base, &d.ca(), user, &d.password(user)).await
}

async fn get_with(d: &Demo, url: String, cookie: &str) -> reqwest::StatusCode {
    http_client(&d.ca())
        .get(url)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_share_one_postgresql_behind_haproxy() {
    if !require_root("two_hubs_share_one_postgresql_behind_haproxy") {
        return;
    }
    let _l = demo_lock();
    let mut pg = Postgres::start();
    let mut d = Demo::start();
    if let Some(mut p) = d.proc.take() {
        p.interrupt();
    }
    let lb_port = free_port();
    let public = format!("https://127.0.0.1:{lb_port}");
    let demo = d.data.path().to_path_buf();
    let mut a = start_hub(&demo, "hub-a", &public, &pg.url());
    let mut b = start_hub(&demo, "hub-b", &public, &pg.url());
    let _lb = Haproxy::start_on(lb_port, &[a.port, b.port]);
    let c = d.client();

    // Both ready on PostgreSQL; exactly one leads.
    let (ha, hb) = (health(&c, &a).await, health(&c, &b).await);
    for h in [&ha, &hb] {
        assert_eq!(h["status"], "ok", "{h}");
        assert_eq!(h["store"], "postgresql", "{h}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ha, hb) = (health(&c, &a).await, health(&c, &b).await);
        if ha["leader"].as_bool() != hb["leader"].as_bool() {
            let leading = if ha["leader"] == true { &ha } else { &hb };
            assert!(leading["leader_epoch"].as_i64().unwrap() >= 1, "{leading}");
            break;
        }
        assert!(Instant::now() < deadline, "one leader: {ha} {hb}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A session made on A works on B; a logout on A ends it on B at once.
    let (cookie, csrf) = login_at(&d, &a.base, "bob").await;
    assert_eq!(
        get_with(&d, format!("{}/hub/api/me", b.base), &cookie).await,
        200
    );
    let r = http_client(&d.ca())
        .post(format!("{}/hub/api/logout", a.base))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .header("origin", &public)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "logout on A: {}", r.status());
    assert_eq!(
        get_with(&d, format!("{}/hub/api/me", b.base), &cookie).await,
        401,
        "the logout on A reached B"
    );

    // bob watches alice's workflows through A and through B at the same moment: the
    // two hubs start exactly one server for her, and each relays to it.
    let (cookie, _) = login_at(&d, &a.base, "bob").await;
    let open = |base: String| {
        let ca = d.ca();
        let cookie = cookie.clone();
        let public = public.clone();
        async move {
            let url = format!("{}/user/alice/ws", base.replace("https://", "wss://"));
            let mut w = ws_connect(&ca, &url, Some(&public), &cookie).await.unwrap();
            ws_until(&mut w, Duration::from_secs(60), |v| v["type"] == "snapshot").await
        }
    };
    let (sa, sb) = tokio::join!(open(a.base.clone()), open(b.base.clone()));
    assert_eq!(sa["workflows"], sb["workflows"], "one server answers both");
    let spawns: Vec<Value> = [&a.audit, &b.audit]
        .iter()
        .flat_map(|dir| records(dir))
        .filter(|r| r["event"] == "spawn" && r["owner"] == "alice")
        .collect();
    assert_eq!(spawns.len(), 1, "exactly one start: {spawns:#?}");
    let procs =
        sh("cat /sys/fs/cgroup/pids/steward-demo/alice/default/cgroup.procs 2>/dev/null || true");
    assert_eq!(
        procs.lines().count(),
        1,
        "one server process for alice: {procs}"
    );

    // Through HAProxy: one login, then requests spread over both hubs all succeed; an
    // elevation made on one hub has the same deadline on the other (the database's).
    let (cookie, _) = login_at(&d, &public, "carl").await;
    for _ in 0..6 {
        assert_eq!(
            get_with(&d, format!("{public}/hub/api/me"), &cookie).await,
            200
        );
    }
    let (bob_c, bob_csrf) = {
        let c = d.client();
        let r = c
            .post(format!("{}/hub/api/login", a.base))
            .json(&serde_json::json!({"username": "bob", "password": d.password("bob")}))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        (c, v["csrf"].as_str().unwrap().to_string())
    };
    let r = bob_c
        .post(format!("{}/hub/api/elevate", a.base))
        .header("x-csrf-token", &bob_csrf)
        .json(&serde_json::json!({"class": "execute", "password": d.password("bob")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "elevate on A");
    let me_a = get_json(&bob_c, format!("{}/hub/api/me", a.base)).await;
    let me_b = get_json(&bob_c, format!("{}/hub/api/me", b.base)).await;
    assert_eq!(me_b["class"], "execute", "{me_b}");
    let (la, lb) = (
        me_a["seconds_left"].as_i64().unwrap(),
        me_b["seconds_left"].as_i64().unwrap(),
    );
    assert!((la - lb).abs() <= 1, "one deadline: {me_a} {me_b}");

    // PostgreSQL stopped: both hubs say so on /hub/health (503, why) and refuse what
    // needs the store; back: both recover by themselves.
    pg.stop();
    for hub in [&a, &b] {
        let r = c
            .get(format!("{}/hub/health", hub.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["status"], "unavailable", "{v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    }
    assert_ne!(
        get_with(&d, format!("{}/hub/api/me", a.base), &cookie).await,
        200,
        "no session can be checked without the store"
    );
    pg.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    for hub in [&a, &b] {
        loop {
            let r = c
                .get(format!("{}/hub/health", hub.base))
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "{} did not recover", hub.base);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    assert_eq!(
        get_with(&d, format!("{public}/hub/api/me"), &cookie).await,
        200,
        "sessions survive the outage"
    );
    // The leadership connection died with the database: one hub leads again.
    let deadline = Instant::now() + Duration::from_secs(15);
    let first_epoch = loop {
        let (ha, hb) = (health(&c, &a).await, health(&c, &b).await);
        let leaders = [&ha, &hb].iter().filter(|h| h["leader"] == true).count();
        if leaders == 1 {
            let leading = if ha["leader"] == true { &ha } else { &hb };
            break leading["leader_epoch"].as_i64().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "one leader after the outage: {ha} {hb}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let leader_first = if health(&c, &a).await["leader"] == true {
        "a"
    } else {
        "b"
    };

    // The leader dies: the other takes over within seconds (a higher fencing epoch) and
    // HAProxy serves everything through it.
    let (leader, survivor) = if leader_first == "a" {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    let killed_at = Instant::now();
    if let Some(mut p) = leader.proc.take() {
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let took_over = loop {
        let h = health(&c, survivor).await;
        if h["leader"] == true && h["leader_epoch"].as_i64().unwrap_or(0) > first_epoch {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "the survivor never took over: {h}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "two_hubs: the survivor leads after {:?} (epoch {})",
        killed_at.elapsed(),
        took_over["leader_epoch"]
    );
    let survivor_base = survivor.base.clone();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..6 {
        assert_eq!(
            get_with(&d, format!("{public}/hub/api/me"), &cookie).await,
            200,
            "HAProxy serves through the survivor"
        );
    }
    // The periodic work goes on there: alice's server, visited once more and then left
    // idle, is culled by the survivor.
    let (bob_cookie, _) = login_at(&d, &survivor_base, "bob").await;
    {
        let url = format!(
            "{}/user/alice/ws",
            survivor_base.replace("https://", "wss://")
        );
        let mut w = ws_connect(&d.ca(), &url, Some(&public), &bob_cookie)
            .await
            .unwrap();
        ws_until(&mut w, Duration::from_secs(60), |v| v["type"] == "snapshot").await;
    }
    let culls = || {
        records(&survivor.audit)
            .iter()
            .filter(|r| r["event"] == "cull" && r["owner"] == "alice")
            .count()
    };
    let before = culls();
    assert!(
        wait_until(Duration::from_secs(120), || culls() > before),
        "the survivor never culled alice's idle server"
    );

    // Leave no server behind.
    let (admin, admin_csrf) = {
        let c = d.client();
        let r = c
            .post(format!("{survivor_base}/hub/api/login"))
            .json(&serde_json::json!({"username": "carl", "password": d.password("carl")}))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        (c, v["csrf"].as_str().unwrap().to_string())
    };
    let _ = admin
        .post(format!("{survivor_base}/hub/api/admin/servers/alice/stop"))
        .header("x-csrf-token", admin_csrf)
        .send()
        .await;
    drop(pg);
}

/// The deployment checkpoint the leader stored, parsed (None before the first).
fn stored_checkpoint(pg: &Postgres) -> Option<Value> {
    let body = pg.psql(
        steward_e2e::postgres::DATABASE,
        "SELECT body FROM audit_checkpoint WHERE id = 1",
    );
    (!body.is_empty()).then(|| serde_json::from_str(&body).unwrap())
}

/// The seq the checkpoint signed for `hub`.
fn checkpointed_seq(cp: &Value, hub: &str) -> Option<u64> {
    cp["heads"].as_array()?.iter().find(|h| h["hub"] == hub)?["seq"].as_u64()
}

/// Waits until the stored checkpoint has every `(hub, seq)` at `seq` or later.
fn wait_for_checkpoint(pg: &Postgres, want: &[(&str, u64)]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let cp = stored_checkpoint(pg);
        if let Some(cp) = &cp {
            if want
                .iter()
                .all(|(hub, seq)| checkpointed_seq(cp, hub).is_some_and(|s| s >= *seq))
            {
                return cp.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint reaching {want:?}: {cp:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn last_seq(dir: &Path) -> u64 {
    records(dir)
        .last()
        .and_then(|r| r["seq"].as_u64())
        .expect("a chain with records")
}

/// `steward audit verify` with `args`: (success, stdout, stderr).
fn audit_verify(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let out = Command::new(bin("steward"))
        .args(["audit", "verify"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_cut_off_one_hubs_audit_log_is_named_by_the_deployment_checkpoint() {
    if !require_root("a_tail_cut_off_one_hubs_audit_log_is_named_by_the_deployment_checkpoint") {
        return;
    }
    let _l = demo_lock();
    let pg = Postgres::start();
    let mut d = Demo::start();
    if let Some(mut p) = d.proc.take() {
        p.interrupt();
    }
    let public = format!("https://127.0.0.1:{}", free_port());
    let demo = d.data.path().to_path_buf();

    // One hub on SQLite is a deployment of one: at its stop it checkpointed its own
    // chain into hub.db, and the same command verifies it.
    let (ok, out, err) = audit_verify(&[
        "-c".as_ref(),
        demo.join("steward.toml").as_os_str(),
        "--deployment".as_ref(),
        demo.join("audit").as_os_str(),
    ]);
    assert!(ok, "the SQLite demo's deployment: {out}{err}");
    assert!(
        out.contains("checkpointed head") && out.contains("covers 1 hub(s)"),
        "{out}"
    );
    let mut a = start_hub(&demo, "hub-a", &public, &pg.url());
    let mut b = start_hub(&demo, "hub-b", &public, &pg.url());

    // Both hubs write records; each chain names its own hub in every record.
    login_at(&d, &a.base, "bob").await;
    login_at(&d, &b.base, "carl").await;
    login_at(&d, &b.base, "bob").await;
    for (hub, id) in [(&a, "hub-a"), (&b, "hub-b")] {
        let recs = records(&hub.audit);
        assert!(
            recs.iter().any(|r| r["event"] == "login"),
            "{id} wrote its login: {recs:#?}"
        );
        assert!(
            recs.iter().all(|r| r["hub"] == id),
            "every record of {id}'s chain names it: {recs:#?}"
        );
    }

    // The leader checkpoints both heads; the deployment verifies.
    let (seq_a, seq_b) = (last_seq(&a.audit), last_seq(&b.audit));
    let cp = wait_for_checkpoint(&pg, &[("hub-a", seq_a), ("hub-b", seq_b)]);
    assert!(cp["sig"].as_str().is_some_and(|s| !s.is_empty()), "{cp}");
    let deployment = |dirs: &[&Path]| {
        let mut args: Vec<&std::ffi::OsStr> = vec!["-c".as_ref(), a.config.as_os_str()];
        args.push("--deployment".as_ref());
        args.extend(dirs.iter().map(|d| d.as_os_str()));
        audit_verify(&args)
    };
    let (ok, out, err) = deployment(&[&a.audit, &b.audit]);
    assert!(ok, "deployment verify: {out}{err}");
    assert!(
        out.contains("reaches hub hub-a's checkpointed head")
            && out.contains("reaches hub hub-b's checkpointed head")
            && out.contains("OK: deployment checkpoint"),
        "{out}"
    );
    // A hub's directory left out is named.
    let (ok, out, err) = deployment(&[&a.audit]);
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains("no directory given holds a chain of hub hub-b"),
        "{err}"
    );

    // Hub B stops: its last records (the stop, the final checkpoint) reach the
    // deployment checkpoint too.
    if let Some(mut p) = b.proc.take() {
        assert!(p.interrupt().success());
    }
    let end_b = last_seq(&b.audit);
    assert!(end_b > seq_b, "B wrote its stop records");
    let cp = wait_for_checkpoint(&pg, &[("hub-b", end_b)]);
    assert_eq!(checkpointed_seq(&cp, "hub-b"), Some(end_b), "{cp}");

    // An attacker on B's machine cuts the tail off B's log and deletes both of its
    // audit.head files, so B's chain on its own looks intact.
    let keep: Vec<String> = std::fs::read_to_string(b.audit.join("audit.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
                + 4
                <= end_b
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(b.audit.join("audit.jsonl"), keep.concat()).unwrap();
    std::fs::remove_file(b.audit.join("audit.head")).unwrap();
    std::fs::remove_file(b.state.join("audit.head")).unwrap();
    let (ok, out, err) = audit_verify(&["--dir".as_ref(), b.audit.as_os_str()]);
    assert!(ok, "B's cut chain passes on its own: {out}{err}");
    assert_eq!(last_seq(&b.audit), end_b - 4);

    let (ok, out, err) = deployment(&[&a.audit, &b.audit]);
    assert!(!ok, "the cut must fail the deployment: {out}{err}");
    eprintln!("two_hubs: deployment verify after the cut:\n{out}{err}");
    assert!(
        err.contains(&format!(
            "hub hub-b: the chain in {} ends at seq {}",
            b.audit.display(),
            end_b - 4
        )) && err.contains(&format!("signed its head at seq {end_b}"))
            && err.contains("records were cut off the end of hub hub-b's log"),
        "{err}"
    );
    assert!(!err.contains("hub hub-a:"), "hub A is intact: {err}");
    assert!(
        out.contains("reaches hub hub-a's checkpointed head"),
        "{out}"
    );

    if let Some(mut p) = a.proc.take() {
        p.interrupt();
    }
    drop(pg);
}

/// Hub A is SIGKILLed while an operation it forwarded waits in the UI server: the
/// session and its elevation keep working on hub B, and B (leading) closes A's
/// operation, which A will never do: an `unknown` outcome on B's chain naming A's
/// intent, then the reconciliation with the UI server's own record. The operation ran
/// once; nothing replays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_mid_operation_is_closed_and_reconciled_by_the_other() {
    if !require_root("a_hub_killed_mid_operation_is_closed_and_reconciled_by_the_other") {
        return;
    }
    let _l = demo_lock();
    let pg = Postgres::start();
    let mut d = Demo::start();
    if let Some(mut p) = d.proc.take() {
        p.interrupt();
    }
    let public = format!("https://127.0.0.1:{}", free_port());
    let demo = d.data.path().to_path_buf();
    let mut a = start_hub(&demo, "hub-a", &public, &pg.url());
    let b = start_hub(&demo, "hub-b", &public, &pg.url());

    // alice logs in and raises her privileges on A, and watches her workflows there.
    let c = d.client();
    let r = c
        .post(format!("{}/hub/api/login", a.base))
        .json(&serde_json::json!({"username": "alice", "password": d.password("alice")}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let csrf = v["csrf"].as_str().unwrap().to_string();
    let r = c
        .post(format!("{}/hub/api/elevate", a.base))
        .header("x-csrf-token", &csrf)
        .json(&serde_json::json!({"class": "execute", "password": d.password("alice")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "elevate on A");
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let ws_at = |hub: &Hub| format!("{}/user/alice/ws", hub.base.replace("https://", "wss://"));
    let mut w = ws_connect(&d.ca(), &ws_at(&a), Some(&public), &cookie)
        .await
        .unwrap();
    ws_until(&mut w, Duration::from_secs(60), |v| v["type"] == "snapshot").await;
    let r = ws_op(&mut w, "k0", "play", "alice_forecast").await;
    assert_eq!(r["type"], "result", "{r}");
    let sched = cgroup_pids("alice", "workflows");
    assert!(!sched.is_empty(), "alice_forecast's scheduler runs");

    // The scheduler is stopped, so the pause waits in the UI server; A dies with the
    // intent durable and no outcome.
    signal(&sched, nix::sys::signal::Signal::SIGSTOP);
    ws_send(
        &mut w,
        serde_json::json!({"type": "op", "id": "k1", "op": "pause", "target": "alice_forecast"}),
    )
    .await;
    let intent = || {
        records(&a.audit)
            .into_iter()
            .find(|r| r["kind"] == "intent" && r["op"] == "pause")
    };
    assert!(
        wait_until(Duration::from_secs(10), || intent().is_some()),
        "A wrote no intent"
    );
    let intent = intent().unwrap();
    let rid = intent["request_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut proc = a.proc.take().unwrap();
    let _ = proc.child.kill();
    let _ = proc.child.wait();
    drop(w);
    signal(&sched, nix::sys::signal::Signal::SIGCONT);

    // On B: the same session, the same elevation, the same workflows.
    let me = get_json(&c, format!("{}/hub/api/me", b.base)).await;
    assert_eq!(me["user"], "alice", "{me}");
    assert_eq!(me["class"], "execute", "{me}");
    let mut w = ws_connect(&d.ca(), &ws_at(&b), Some(&public), &cookie)
        .await
        .unwrap();
    ws_until(&mut w, Duration::from_secs(60), |v| v["type"] == "snapshot").await;

    // B closes A's operation: one `unknown` outcome naming A's intent, then the
    // reconciliation with what the UI server says it did.
    let closed = || {
        records(&b.audit)
            .into_iter()
            .filter(|r| r["kind"] == "outcome" && r["request_id"] == rid.as_str())
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(Duration::from_secs(60), || !closed().is_empty()),
        "B never closed A's operation {rid}"
    );
    let outcome = closed().remove(0);
    assert_eq!(outcome["outcome"], "unknown", "{outcome}");
    assert_eq!(outcome["hub"], "hub-b", "{outcome}");
    assert_eq!(outcome["extra"]["intent_hub"], "hub-a", "{outcome}");
    assert_eq!(outcome["intent_seq"], intent["seq"], "{outcome}");
    assert!(
        wait_until(Duration::from_secs(60), || d
            .server_ran("alice", &rid)
            .len()
            == 1),
        "the UI server never recorded {rid}"
    );
    let reconciled = || {
        records(&b.audit)
            .into_iter()
            .find(|r| r["event"] == "reconcile" && r["request_id"] == rid.as_str())
    };
    assert!(
        wait_until(Duration::from_secs(60), || reconciled().is_some()),
        "B did not reconcile {rid} with the UI server's record"
    );
    let rec = reconciled().unwrap();
    assert!(
        rec["outcome"] == "ok" || rec["outcome"] == "error",
        "the server's record decides: {rec}"
    );
    // Ran once, closed once, on one chain.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        d.server_ran("alice", &rid).len(),
        1,
        "the operation ran again"
    );
    assert_eq!(closed().len(), 1, "closed twice: {:?}", closed());
    assert!(records(&a.audit)
        .iter()
        .all(|r| !(r["kind"] == "outcome" && r["request_id"] == rid.as_str())));
    // A new operation through B goes through once, and leaves no note behind.
    let r = ws_op(&mut w, "k2", "resume", "alice_forecast").await;
    assert_eq!(r["type"], "result", "{r}");
}
