//! Transport and token checks against the real binary: mutual TLS, registration, and
//! every JWT refusal (each naming the failed check, each logged).

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;
use steward_protocol::claims::OpClaims;
use steward_protocol::Operation;

const FLOW: &str = r#"
[tasks.a]
script = "echo a"
"#;

#[tokio::test]
async fn registers_over_mutual_tls_with_port_and_pid() {
    let mut env = Env::new();
    env.write_flow("demo1", FLOW);
    let ui = env.start(300);
    assert_eq!(ui.reg.owner, OWNER);
    assert_eq!(ui.reg.server, SERVER);
    assert_eq!(ui.reg.pid, ui.child.id());
    assert!(matches!(ui.reg.endpoint, steward_protocol::Endpoint::Tcp { port, .. } if port > 0));
    // The key never reaches disk or the log.
    let log = env.log_text();
    assert!(!log.contains("PRIVATE KEY"), "{log}");
    assert!(!log.contains(&env.ui.as_ref().unwrap().reg.register_token));
    let files = walk(env.home());
    for f in files {
        let text = std::fs::read(&f).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&text).contains("PRIVATE KEY"),
            "{} holds a private key",
            f.display()
        );
    }
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(d) = std::fs::read_dir(p) {
        for e in d.flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.extend(walk(&e.path()));
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

#[tokio::test]
async fn tls_requires_a_client_certificate_from_the_hub_ca() {
    let mut env = Env::new();
    env.write_flow("demo1", FLOW);
    env.start(300);
    let url = env.url("/api/summary");
    let token = env.jwt.read();

    let anon = env
        .http(Identity::Anonymous)
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await;
    assert!(
        anon.is_err(),
        "no client cert must fail the handshake: {anon:?}"
    );

    let rogue = env
        .http(Identity::Rogue)
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await;
    assert!(
        rogue.is_err(),
        "a client cert from another CA must be refused: {rogue:?}"
    );

    let ws = ws_connect(
        &env.pki,
        env.port(),
        Some(&env.jwt.read()),
        Identity::Anonymous,
    )
    .await;
    assert!(ws.is_err(), "WebSocket without client cert must fail");

    let ok = env
        .http(Identity::Hub)
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

async fn refused(env: &Env, path: &str, token: Option<&str>, status: u16, check: &str) {
    let r = env.get(path, token).await;
    assert_eq!(r.status().as_u16(), status, "{path} with {token:?}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["check"], check, "{body}");
    assert!(body["error"].as_str().unwrap().starts_with(check), "{body}");
}

#[tokio::test]
async fn bad_tokens_are_refused_naming_the_check_and_logged() {
    let mut env = Env::new();
    env.write_flow("demo1", FLOW);
    env.write_flow("demo2", FLOW);
    env.start(300);
    let jwt = &env.jwt;
    let base = || Jwt::claims(&[Operation::Read], None);

    refused(&env, "/api/summary", None, 401, "authorization").await;
    refused(&env, "/api/summary", Some("not-a-jwt"), 401, "format").await;

    let mut c = base();
    c.iat -= 100;
    c.nbf -= 100;
    c.exp -= 70;
    refused(&env, "/api/summary", Some(&jwt.sign(&c)), 401, "exp").await;

    let mut c = base();
    c.aud = "uiserver:mallory".into();
    refused(&env, "/api/summary", Some(&jwt.sign(&c)), 401, "aud").await;

    let mut c = base();
    c.iss = "someone-else".into();
    refused(&env, "/api/summary", Some(&jwt.sign(&c)), 401, "iss").await;

    let mut c = base();
    c.nbf += 120;
    c.iat += 30;
    c.exp += 30;
    refused(&env, "/api/summary", Some(&jwt.sign(&c)), 401, "nbf").await;

    let mut c = base();
    c.exp = c.iat + 3600;
    refused(&env, "/api/summary", Some(&jwt.sign(&c)), 401, "lifetime").await;

    refused(
        &env,
        "/api/summary",
        Some(&jwt.forge_hs256(&base())),
        401,
        "alg",
    )
    .await;
    refused(
        &env,
        "/api/summary",
        Some(&jwt.sign_with_other_key(&base())),
        401,
        "signature",
    )
    .await;

    let mut c = base();
    c.sub = "".into();
    refused(&env, "/api/summary", Some(&jwt.sign(&c)), 401, "sub").await;

    // Replay: the same token twice.
    let t = jwt.sign(&base());
    assert_eq!(env.get("/api/summary", Some(&t)).await.status(), 200);
    refused(&env, "/api/summary", Some(&t), 401, "jti").await;

    // Scope: a pause token cannot read.
    let t = jwt.token(&[Operation::Pause], None);
    refused(&env, "/api/summary", Some(&t), 403, "ops").await;

    // Workflow: a token for demo2 cannot read demo1's logs.
    let t = jwt.token(&[Operation::Read], Some("demo2"));
    refused(
        &env,
        "/api/log?workflow=demo1&cycle=1&task=a&job=1",
        Some(&t),
        403,
        "workflow",
    )
    .await;

    // A token scoped to demo2 sees only demo2 in the summary.
    let t = jwt.token(&[Operation::Read], Some("demo2"));
    let r: Vec<Value> = env
        .get("/api/summary", Some(&t))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["name"], "demo2");

    let log = env.log_text();
    for check in [
        "authorization",
        "exp",
        "aud",
        "iss",
        "nbf",
        "alg",
        "signature",
        "jti",
        "ops",
        "workflow",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("refused request")
                    && l.contains(&format!("\"check\":\"{check}\""))),
            "no refusal logged for {check}:\n{log}"
        );
    }
}

#[tokio::test]
async fn websocket_upgrade_and_ops_need_tokens() {
    let mut env = Env::new();
    env.write_flow("demo1", FLOW);
    env.write_flow("demo2", FLOW);
    env.start(300);

    // Upgrade without a token, or with a non-read token: refused with 401/403.
    match env.ws_with(None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        Err(e) => panic!("unexpected error {e:?}"),
        Ok(_) => panic!("upgrade without token accepted"),
    }
    let t = env.jwt.token(&[Operation::Pause], None);
    match env.ws_with(Some(&t)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        Err(e) => panic!("unexpected error {e:?}"),
        Ok(_) => panic!("upgrade with pause-only token accepted"),
    }

    let mut ws = env.ws().await;
    let snap = ws.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(snap["type"], "snapshot");

    // An op without a token, with the wrong scope, for the wrong workflow, replayed.
    ws.send(&json!({"type":"op","id":"x1","op":"pause","target":"demo1"}))
        .await;
    let (_, r) = ws
        .wait_for(Duration::from_secs(5), |v| v["id"] == "x1")
        .await
        .unwrap();
    assert_eq!(r["ok"], false);
    assert!(
        r["message"].as_str().unwrap().contains("authorization"),
        "{r}"
    );

    let wrong_op = env.jwt.token(&[Operation::Read], Some("demo1"));
    let (ok, msg) = ws
        .op_with_token("pause", "demo1", json!({}), &wrong_op)
        .await;
    assert!(!ok && msg.starts_with("refused: ops"), "{msg}");

    let wrong_wf = env.jwt.token(&[Operation::Pause], Some("demo2"));
    let (ok, msg) = ws
        .op_with_token("pause", "demo1", json!({}), &wrong_wf)
        .await;
    assert!(!ok && msg.starts_with("refused: workflow"), "{msg}");

    let good = env.jwt.token(&[Operation::Read], Some("demo1"));
    let (ok, _) = ws.op_with_token("read", "demo1", json!({}), &good).await;
    assert!(ok);
    let (ok, msg) = ws.op_with_token("read", "demo1", json!({}), &good).await;
    assert!(!ok && msg.starts_with("refused: jti"), "{msg}");

    let mut c: OpClaims = Jwt::claims(&[Operation::Pause], Some("demo1"));
    c.exp = c.iat - 10;
    let (ok, msg) = ws
        .op_with_token("pause", "demo1", json!({}), &env.jwt.sign(&c))
        .await;
    assert!(!ok && msg.starts_with("refused: "), "{msg}");

    // Malformed frames get an error frame and the connection stays open.
    ws.send_text("{not json").await;
    let (_, e) = ws
        .wait_for(Duration::from_secs(5), |v| v["type"] == "error")
        .await
        .unwrap();
    assert!(e["id"].is_null());
    ws.send(&json!({"type":"bogus"})).await;
    ws.wait_for(Duration::from_secs(5), |v| v["type"] == "error")
        .await
        .unwrap();
    ws.send(&json!({"type":"ping"})).await;
    ws.wait_for(Duration::from_secs(5), |v| v["type"] == "pong")
        .await
        .unwrap();
    // A ping's data comes back unchanged (round-trip checks through the hub).
    ws.send(&json!({"type":"ping","data":"x\"y"})).await;
    let pong = ws
        .wait_for(Duration::from_secs(5), |v| {
            v["type"] == "pong" && !v["data"].is_null()
        })
        .await
        .expect("a pong carrying the ping's data");
    assert_eq!(pong.1["data"], "x\"y");

    let log = env.log_text();
    assert!(log.contains("refused operation"), "{log}");
}

#[tokio::test]
async fn registration_failure_exits_non_zero_with_a_clear_error() {
    let env = Env::new();
    // Point the bootstrap at a port nobody listens on.
    let mut b = env.hub.bootstrap(&env.pki, &env.jwt, 300, "t");
    b.hub_internal_addr = "127.0.0.1:9".into();
    b.register_url = "https://steward-hub.internal:9/internal/register".into();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_steward-uiserver"))
        .env_clear()
        .env("HOME", env.home())
        .env("PATH", "/usr/bin:/bin")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&b).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot register with the hub"), "{err}");
    assert!(!err.contains("PRIVATE KEY"));
}
