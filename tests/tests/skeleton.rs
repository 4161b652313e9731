//! The walking skeleton, end to end, as root, with real processes and a real PAM login:
//! `steward demo` → alice logs in with her Unix password → steward-spawn starts her
//! uiserver as her, in its cgroup, with a clean environment → a WebSocket through the
//! hub → she pauses her workflow → the uiserver applies it → one JSON outcome line and
//! one human line in the audit log. Every fact is checked from outside the processes.

// Demo hubs reset the shared demo users, so each test holds the process-wide demo lock
// for its whole run, across awaits, on purpose.
#![allow(clippy::await_holding_lock)]

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;
use steward_e2e::*;

fn proc_status(pid: u32) -> BTreeMap<String, String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn uiserver_pid(prefix: &str, user: &str) -> u32 {
    let procs = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/pids/{prefix}/{user}/default/cgroup.procs"
    ))
    .unwrap();
    let pids: Vec<u32> = procs
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    // The uiserver is the process whose executable is steward-uiserver and whose parent is
    // outside the cgroup (its scheduler children may share the name).
    *pids
        .iter()
        .find(|p| {
            let exe = std::fs::read_link(format!("/proc/{p}/exe")).unwrap_or_default();
            let ppid: u32 = proc_status(**p)["PPid"].parse().unwrap();
            exe.to_string_lossy().ends_with("steward-uiserver") && !pids.contains(&ppid)
        })
        .unwrap_or_else(|| panic!("no uiserver among {pids:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_login_spawn_ws_pause_audit() {
    if !require_root("demo_login_spawn_ws_pause_audit") {
        return;
    }
    let _l = demo_lock();
    reset_demo_workflows();
    let data = traversable_tempdir();
    let port = free_port();
    let creds_file = data.path().join("creds.json");
    let mut cmd = Command::new(bin("steward"));
    cmd.args([
        "demo",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(data.path())
    .arg("--credentials-file")
    .arg(&creds_file)
    .env("STEWARD_LOG", "warn");
    let mut hub = Proc::spawn(cmd);
    hub.wait_for_line("ready on", Duration::from_secs(120));
    let creds: Value =
        serde_json::from_str(&std::fs::read_to_string(&creds_file).unwrap()).unwrap();
    let password = |u: &str| -> String {
        creds["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["user"] == u)
            .unwrap()["password"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let base = format!("https://127.0.0.1:{port}");
    let ca = data.path().join("tls/ca.crt");
    let client = http_client(&ca);

    // Bad input first: wrong password and unknown user look exactly alike.
    for (user, pw) in [
        ("alice", "wrong-password"),
        ("nosuchuser", "whatever"),
        ("alice", ""),
    ] {
        let r = client
            .post(format!("{base}/hub/api/login"))
            .json(&json!({"username": user, "password": pw}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{user}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid username or password");
    }
    let r = client
        .post(format!("{base}/hub/api/login"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Real PAM login with alice's Unix password.
    let r = client
        .post(format!("{base}/hub/api/login"))
        .json(&json!({"username": "alice", "password": password("alice")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie_header = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(
            cookie_header.contains(attr),
            "cookie lacks {attr}: {cookie_header}"
        );
    }
    let login: Value = r.json().await.unwrap();
    assert_eq!(login["class"], "read");

    // Owners elevate too (sudo-like): fresh password, new session.
    let r = client
        .post(format!("{base}/hub/api/elevate"))
        .header("x-csrf-token", login["csrf"].as_str().unwrap())
        .json(&json!({"class": "execute", "password": password("alice")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_ne!(
        cookie_header.split(';').next().unwrap(),
        cookie,
        "elevation must issue a new session id"
    );

    // WebSocket through the hub; a foreign Origin is refused.
    let ws_url = format!("wss://127.0.0.1:{port}/user/alice/ws");
    let refused = ws_connect(&ca, &ws_url, Some("https://evil.example"), &cookie).await;
    assert!(refused.is_err(), "foreign origin accepted");
    let refused = ws_connect(&ca, &ws_url, None, &cookie).await;
    assert!(refused.is_err(), "missing origin accepted");
    let mut ws = ws_connect(&ca, &ws_url, Some(&base), &cookie)
        .await
        .expect("ws connect");
    let snapshot = ws_until(&mut ws, Duration::from_secs(30), |v| {
        v["type"] == "snapshot"
    })
    .await;
    let names: Vec<&str> = snapshot["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["name"].as_str())
        .collect();
    assert!(names.contains(&"alice_forecast"), "{names:?}");

    // Malformed input: an error frame, and the connection stays usable.
    ws_send(&mut ws, json!({"type": "bogus"})).await;
    let e = ws_until(&mut ws, Duration::from_secs(10), |v| v["type"] == "error").await;
    assert!(e["message"].as_str().unwrap().contains("malformed"), "{e}");
    ws_send(
        &mut ws,
        json!({"type": "op", "id": "x", "op": "pasue", "target": "alice_forecast"}),
    )
    .await;
    let e = ws_until(&mut ws, Duration::from_secs(10), |v| v["type"] == "error").await;
    assert!(
        e["message"].as_str().unwrap().contains("unknown operation"),
        "{e}"
    );
    ws_send(
        &mut ws,
        json!({"type": "op", "id": "y", "op": "pause", "target": "../etc"}),
    )
    .await;
    let e = ws_until(&mut ws, Duration::from_secs(10), |v| v["type"] == "error").await;
    assert!(e["message"].as_str().unwrap().contains("target"), "{e}");
    ws_send(&mut ws, json!({"type": "ping"})).await;
    ws_until(&mut ws, Duration::from_secs(10), |v| v["type"] == "pong").await;

    // The action: play, then pause alice's workflow.
    ws_send(
        &mut ws,
        json!({"type": "op", "id": "p1", "op": "play", "target": "alice_forecast"}),
    )
    .await;
    let res = ws_until(&mut ws, Duration::from_secs(30), |v| {
        v["type"] == "result" && v["id"] == "p1"
    })
    .await;
    assert_eq!(res["ok"], true, "{res}");
    ws_send(
        &mut ws,
        json!({"type": "op", "id": "p2", "op": "pause", "target": "alice_forecast"}),
    )
    .await;
    // The result and the state delta may come in either order.
    let (mut result_ok, mut paused_seen) = (None, false);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while result_ok.is_none() || !paused_seen {
        assert!(
            std::time::Instant::now() < deadline,
            "no result/paused delta (result {result_ok:?}, paused {paused_seen})"
        );
        let v = ws_until(&mut ws, Duration::from_secs(30), |_| true).await;
        if v["type"] == "result" && v["id"] == "p2" {
            result_ok = Some(v["ok"] == true);
            assert_eq!(v["ok"], true, "{v}");
        }
        if v["type"] == "delta" && v["workflow"] == "alice_forecast" && v["state"] == "paused" {
            paused_seen = true;
        }
    }
    // And the uiserver reports it through the hub's read-only proxy too.
    let summary: Value = get_json(&client, format!("{base}/user/alice/api/summary")).await;
    assert!(
        summary
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["name"] == "alice_forecast" && w["state"] == "paused"),
        "{summary}"
    );

    // The uiserver, seen from outside: alice's uid/gid/groups, no_new_privs, cgroup, env.
    let alice = nix::unistd::User::from_name("alice").unwrap().unwrap();
    let pid = uiserver_pid("steward-demo", "alice");
    let st = proc_status(pid);
    let uid = alice.uid.to_string();
    let gid = alice.gid.to_string();
    assert_eq!(
        st["Uid"].split_whitespace().collect::<Vec<_>>(),
        vec![uid.as_str(); 4]
    );
    assert_eq!(
        st["Gid"].split_whitespace().collect::<Vec<_>>(),
        vec![gid.as_str(); 4]
    );
    let name = std::ffi::CString::new("alice").unwrap();
    let mut want: Vec<String> = nix::unistd::getgrouplist(&name, alice.gid)
        .unwrap()
        .iter()
        .map(|g| g.to_string())
        .collect();
    let mut got: Vec<String> = st["Groups"]
        .split_whitespace()
        .map(str::to_string)
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "supplementary groups");
    assert_eq!(st["NoNewPrivs"], "1");
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for ctrl in ["memory", "pids", "freezer", "cpu"] {
        assert!(
            cgroups.lines().any(|l| l
                .split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|x| x == ctrl))
                && l.ends_with("/steward-demo/alice/default")),
            "{ctrl} not in steward-demo/alice/default: {cgroups}"
        );
    }
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let env: BTreeMap<String, String> = environ
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .filter_map(|e| {
            String::from_utf8_lossy(e)
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    assert_eq!(env["HOME"], alice.dir.to_string_lossy());
    assert_eq!(env["USER"], "alice");
    assert_eq!(env["PATH"], "/usr/local/bin:/usr/bin:/bin");
    for k in env.keys() {
        assert!(
            !k.starts_with("LD_")
                && !k.starts_with("PYTHON")
                && !k.starts_with("CARGO")
                && k != "STEWARD_LOG",
            "leaked env {k}"
        );
        assert!(
            ["HOME", "USER", "LOGNAME", "SHELL", "PATH", "LANG", "TZ"].contains(&k.as_str())
                || k.starts_with("STEWARD_")
                || k.starts_with("LC_"),
            "unexpected env {k}"
        );
    }

    // The audit log: exactly one JSON outcome and one human line for the pause. The
    // outcome is queued behind the result the browser saw: give the writer a moment.
    wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(data.path().join("audit/audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("\"kind\":\"outcome\"") && l.contains("\"op\":\"pause\""))
    });
    let jsonl = std::fs::read_to_string(data.path().join("audit/audit.jsonl")).unwrap();
    let pauses: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["op"] == "pause" && r["kind"] == "outcome")
        .collect();
    assert_eq!(pauses.len(), 1, "{pauses:?}");
    let p = &pauses[0];
    assert_eq!(p["actor"], "alice");
    assert_eq!(p["owner"], "alice");
    assert_eq!(p["workflow"], "alice_forecast");
    assert_eq!(p["outcome"], "ok");
    assert_eq!(p["decision"], "allow");
    assert_eq!(p["elevation"], "execute");
    let human = std::fs::read_to_string(data.path().join("audit/audit.log")).unwrap();
    let lines: Vec<&str> = human.lines().filter(|l| l.contains("paused")).collect();
    assert_eq!(lines.len(), 1, "{human}");
    assert!(
        lines[0].ends_with("User alice paused alice_forecast workflow"),
        "{}",
        lines[0]
    );
    assert!(
        human.lines().any(|l| l.contains("User alice logged in")),
        "{human}"
    );

    // The chain verifies.
    let out = Command::new(bin("steward"))
        .args(["audit", "verify", "--dir"])
        .arg(data.path().join("audit"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Ctrl-C stops the demo cleanly and its servers with it.
    drop(ws);
    let status = hub.interrupt();
    assert!(status.success(), "demo exited with {status}");
    let left =
        std::fs::read_to_string("/sys/fs/cgroup/pids/steward-demo/alice/default/cgroup.procs")
            .unwrap_or_default();
    assert!(
        left.trim().is_empty(),
        "processes left after Ctrl-C: {left}"
    );
}
