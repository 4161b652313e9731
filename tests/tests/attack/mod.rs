//! Shared pieces of the attack suite (`attack_*.rs`): a fingerprint of everything an
//! attack must not change, and a runner that tries every attack of a file against one
//! demo hub and reports all that got through, not only the first.

#![allow(dead_code)]

use serde_json::Value;
use std::path::Path;
use steward_e2e::Demo;

/// What a refused attack must leave as it was: the durable audit records that change
/// something, every session with its class, and the owners' workflow run state.
#[derive(Debug, Clone, PartialEq)]
pub struct Fingerprint {
    pub changing_records: usize,
    pub sessions: Vec<(String, String, String)>,
    pub run_state: Vec<(String, String)>,
}

/// Audit events that only record a refusal or a look (they may appear during an attack).
const HARMLESS_EVENTS: &[&str] = &[
    "login_failed",
    "elevate_refused",
    "checkpoint",
    "expire",
    // A visit may start the owner's server; it changes no workflow.
    "spawn",
    "spawn_failed",
];

/// A record that changed something: not a refusal, not a harmless event.
pub fn is_changing(r: &Value) -> bool {
    if r["decision"] == "deny" {
        return false;
    }
    let event = r["event"].as_str().unwrap_or("");
    !HARMLESS_EVENTS.contains(&event)
}

pub fn fingerprint(d: &Demo) -> Fingerprint {
    let changing_records = d.audit_records().iter().filter(|r| is_changing(r)).count();
    let path = d.data.path().join("state/hub.db");
    // The store is async and callers may be inside a runtime: read it on a thread of its own.
    let rows = std::thread::spawn(move || {
        use steward_hub::store::Store;
        let db = steward_hub::store::SqliteStore::open(&path, Default::default()).expect("hub.db");
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(db.sessions())
            .expect("sessions")
    })
    .join()
    .expect("reading sessions");
    let mut sessions: Vec<(String, String, String)> = rows
        .into_iter()
        .map(|s| {
            let id = s.id_hash().unwrap_or_default().to_string();
            (id, s.user, s.class.name().to_string())
        })
        .collect();
    sessions.sort();
    let mut run_state = vec![];
    for user in ["alice", "bob", "carl"] {
        if let Ok(Some(u)) = nix::unistd::User::from_name(user) {
            let runs = u.dir.join(".steward/run");
            for e in std::fs::read_dir(&runs).into_iter().flatten().flatten() {
                let state = std::fs::read_to_string(e.path().join("state.json"))
                    .map(|s| workflow_states(&s))
                    .unwrap_or_default();
                run_state.push((format!("{user}/{}", e.file_name().to_string_lossy()), state));
            }
        }
    }
    run_state.sort();
    Fingerprint {
        changing_records,
        sessions,
        run_state,
    }
}

/// The parts of a scheduler's state an operation changes (paused/held/stopped), not
/// the task progress a running workflow makes on its own.
fn workflow_states(json: &str) -> String {
    let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    let held: Vec<String> = v["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["held"] == true)
        .map(|t| format!("{}/{}", t["cycle"], t["task"]))
        .collect();
    format!(
        "status={} hold_point={} broadcasts={} held={held:?}",
        v["status"], v["hold_point"], v["broadcasts"]
    )
}

/// Asserts that an attack changed nothing (the audit log may hold refusals).
pub fn assert_unchanged(d: &Demo, before: &Fingerprint, what: &str) {
    let after = fingerprint(d);
    assert_eq!(
        before.changing_records,
        after.changing_records,
        "{what}: the audit log records a change: {:#?}",
        d.audit_records()
            .iter()
            .filter(|r| is_changing(r))
            .rev()
            .take(
                after
                    .changing_records
                    .saturating_sub(before.changing_records)
            )
            .collect::<Vec<_>>()
    );
    assert_eq!(before.sessions, after.sessions, "{what}: sessions changed");
    assert_eq!(
        before.run_state, after.run_state,
        "{what}: workflow state changed"
    );
}

/// Runs named attacks in order against one hub; each failure is collected and all are
/// reported at the end, so one hole does not hide the next.
pub struct Suite {
    failures: Vec<String>,
}

impl Default for Suite {
    fn default() -> Self {
        Self::new()
    }
}

impl Suite {
    pub fn new() -> Suite {
        Suite { failures: vec![] }
    }

    pub async fn run<F: std::future::Future<Output = ()>>(&mut self, name: &str, f: F) {
        use futures_util::FutureExt;
        eprintln!("--- attack {name}");
        match std::panic::AssertUnwindSafe(f).catch_unwind().await {
            Ok(()) => eprintln!("--- refused: {name}"),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                eprintln!("--- GOT THROUGH: {name}: {msg}");
                self.failures.push(format!("{name}: {msg}"));
            }
        }
    }

    pub fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} attack(s) got through:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

/// Mode bits of a path (without following a final symlink).
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

/// The `name=value` pair of the session cookie in a response's Set-Cookie, if any.
pub fn set_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("steward_session"))
        .map(str::to_string)
}

/// A client with no cookie jar: each request carries exactly the headers given.
pub fn bare_client(d: &Demo) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(steward_e2e::tls_config(&d.ca()))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The HTTP status a refused WebSocket upgrade got (0 when it was accepted or failed
/// without an HTTP answer).
pub fn ws_refusal(r: Result<steward_e2e::Ws, tokio_tungstenite::tungstenite::Error>) -> u16 {
    match r {
        Ok(_) => 0,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("upgrade failed without an HTTP answer: {e}"),
    }
}

/// Logs `user` in with a bare client; returns (cookie pair, csrf).
pub async fn login(d: &Demo, user: &str) -> (String, String) {
    steward_e2e::login_cookie(&d.base, &d.ca(), user, &d.password(user)).await
}

/// Elevates the session behind `cookie`; returns (new cookie pair, new csrf).
pub async fn elevate(d: &Demo, cookie: &str, csrf: &str, user: &str) -> (String, String) {
    elevate_with_password(d, cookie, csrf, &d.password(user)).await
}

/// [`elevate`] for an account that is not a demo user.
pub async fn elevate_with_password(
    d: &Demo,
    cookie: &str,
    csrf: &str,
    password: &str,
) -> (String, String) {
    let body = serde_json::json!({"class": "execute", "password": password});
    let r = send_as(d, "POST", "/hub/api/elevate", cookie, csrf, Some(body)).await;
    assert_eq!(r.status(), 200, "elevate");
    let c = set_cookie(&r).unwrap();
    let pair = c.split(';').next().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    (pair, v["csrf"].as_str().unwrap().to_string())
}

/// An operation over HTTP (`POST /user/<owner>/api/op`); returns (status, body).
pub async fn op_http(
    d: &Demo,
    cookie: &str,
    csrf: &str,
    owner: &str,
    op: &str,
    target: &str,
) -> (u16, Value) {
    let body = serde_json::json!({"id": format!("{op}-{target}"), "op": op, "target": target});
    let path = format!("/user/{owner}/api/op");
    let r = send_as(d, "POST", &path, cookie, csrf, Some(body)).await;
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// `/hub/api/me` with this cookie: (status, body).
pub async fn me(d: &Demo, cookie: &str) -> (u16, Value) {
    let r = bare_client(d)
        .get(format!("{}/hub/api/me", d.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// Plays then pauses alice's forecast as alice: a workflow with state to protect, which
/// no refused attack may change. Returns alice's elevated (cookie, csrf).
pub async fn paused_forecast(d: &Demo) -> (String, String) {
    let (c, csrf) = login(d, "alice").await;
    let (c, csrf) = elevate(d, &c, &csrf, "alice").await;
    for op in ["play", "pause"] {
        let (s, v) = op_http(d, &c, &csrf, "alice", op, "alice_forecast").await;
        assert_eq!(s, 200, "{op}: {v}");
        assert_eq!(v["ok"], true, "{op}: {v}");
    }
    // The outcome records are written behind the answer.
    steward_e2e::wait_until(std::time::Duration::from_secs(10), || {
        d.audit_records()
            .iter()
            .filter(|r| r["op"] == "pause" && r["kind"] == "outcome")
            .count()
            == 1
    });
    (c, csrf)
}

/// Opens `owner`'s relay from the hub's own origin and waits for the first snapshot.
pub async fn relay(d: &Demo, owner: &str, cookie: &str) -> steward_e2e::Ws {
    let url = format!("wss://127.0.0.1:{}/user/{owner}/ws", d.port);
    let mut ws = steward_e2e::ws_connect(&d.ca(), &url, Some(&d.base), cookie)
        .await
        .expect("relay");
    steward_e2e::ws_until(&mut ws, std::time::Duration::from_secs(30), |v| {
        v["type"] == "snapshot"
    })
    .await;
    ws
}

/// A request as a logged-in browser page sends it: the session cookie and its CSRF token.
pub async fn send_as(
    d: &Demo,
    method: &str,
    path: &str,
    cookie: &str,
    csrf: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = bare_client(d)
        .request(method.parse().unwrap(), format!("{}{path}", d.base))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}
