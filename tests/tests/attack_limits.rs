//! Attack suite, abuse and injection: oversized headers, bodies and WebSocket frames,
//! slowloris, many connections from one person, login floods and `X-Forwarded-For`
//! spoofing (each bounded, with a clear error, while the hub keeps serving others), and
//! names, ids and arguments carrying newlines, control characters, ANSI escapes and
//! megabyte lengths, which must not split or forge an audit record or a log line.
//! One `steward demo` hub, loopback only, every loop bounded.

// The demo lock is held for the whole test, across awaits, on purpose.
#![allow(clippy::await_holding_lock)]

mod attack;

use attack::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::sync::Arc;
use std::time::Duration;
use steward_e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_and_injection_attacks() {
    if !require_root("limit_and_injection_attacks") {
        return;
    }
    let _l = demo_lock();
    let d = Demo::start();
    let (alice, alice_csrf) = paused_forecast(&d).await;
    let mut s = Suite::new();
    s.run("oversized_headers", oversized_headers(&d, &alice))
        .await;
    s.run(
        "oversized_bodies",
        oversized_bodies(&d, &alice, &alice_csrf),
    )
    .await;
    s.run(
        "oversized_websocket_frames",
        oversized_websocket_frames(&d, &alice),
    )
    .await;
    s.run("deeply_nested_json", deeply_nested_json(&d, &alice))
        .await;
    s.run("slowloris", slowloris(&d)).await;
    s.run(
        "many_connections_from_one_user",
        many_connections_from_one_user(&d),
    )
    .await;
    s.run(
        "log_and_audit_injection",
        log_and_audit_injection(&d, &alice),
    )
    .await;
    // Last: they spend the failure budgets of loopback addresses.
    s.run(
        "login_flood_does_not_lock_out_others",
        login_flood_does_not_lock_out_others(&d),
    )
    .await;
    s.run(
        "x_forwarded_for_does_not_evade_address_limits",
        x_forwarded_for_does_not_evade_address_limits(&d),
    )
    .await;
    s.finish();
}

/// The hub still answers a normal request (from a fresh client).
async fn still_serving(d: &Demo, what: &str) {
    let r = bare_client(d)
        .get(format!("{}/hub/", d.base))
        .send()
        .await
        .unwrap_or_else(|e| panic!("after {what} the hub does not answer: {e}"));
    assert_eq!(r.status(), 200, "after {what}");
}

/// Reads what the server sends until it closes (or the read timeout); returns it.
fn drain(s: &mut impl Read) -> String {
    let mut out = vec![];
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 || out.len() > 1 << 20 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One 256 KiB header, and 2,000 headers: refused (431 or the connection closed), and
/// the hub goes on serving.
async fn oversized_headers(d: &Demo, alice: &str) {
    let before = fingerprint(d);
    let big = "x".repeat(256 * 1024);
    let r = bare_client(d)
        .get(format!("{}/hub/api/me", d.base))
        .header("cookie", alice)
        .header("x-big", &big)
        .send()
        .await;
    if let Ok(r) = r {
        assert!(
            r.status() == 431 || r.status() == 400 || r.status() == 413,
            "a 256 KiB header: {}",
            r.status()
        );
    }
    let dd = d.port;
    let ca = d.ca();
    let answer = tokio::task::spawn_blocking(move || {
        let d2 = DemoAddr { port: dd, ca };
        let mut s = d2.tls();
        let mut req = String::from("GET /hub/ HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for i in 0..2000 {
            req.push_str(&format!("X-H{i}: {i}\r\n"));
        }
        req.push_str("\r\n");
        let _ = s.write_all(req.as_bytes());
        drain(&mut s)
    })
    .await
    .unwrap();
    assert!(
        !answer.starts_with("HTTP/1.1 200"),
        "2,000 headers were served: {}",
        &answer[..answer.len().min(100)]
    );
    still_serving(d, "oversized headers").await;
    assert_unchanged(d, &before, "oversized headers");
}

/// What a blocking helper thread needs to open raw connections.
struct DemoAddr {
    port: u16,
    ca: std::path::PathBuf,
}

impl DemoAddr {
    fn tls(&self) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        let cfg = Arc::new(tls_config(&self.ca));
        let conn = rustls::ClientConnection::new(cfg, "127.0.0.1".try_into().unwrap()).unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        rustls::StreamOwned::new(conn, tcp)
    }
}

/// Bodies over the limit on every route that reads one: 413, nothing changed.
async fn oversized_bodies(d: &Demo, alice: &str, csrf: &str) {
    let before = fingerprint(d);
    let big = json!({"id": "b", "op": "resume", "target": "alice_forecast",
                     "args": {"x": "y".repeat(2 * 1024 * 1024)}})
    .to_string();
    for (m, path) in [
        ("POST", "/hub/api/login"),
        ("POST", "/hub/api/elevate"),
        ("POST", "/hub/api/tokens"),
        ("POST", "/hub/api/server"),
        ("POST", "/user/alice/api/op"),
    ] {
        let r = bare_client(d)
            .request(m.parse().unwrap(), format!("{}{path}", d.base))
            .header("cookie", alice)
            .header("x-csrf-token", csrf)
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await;
        // The hub may answer early and close while the client still sends.
        if let Ok(r) = r {
            assert_eq!(r.status(), 413, "{m} {path}");
            let text = r.text().await.unwrap_or_default().to_lowercase();
            assert!(
                text.contains("limit") || text.contains("too large"),
                "{m} {path}: the 413 does not say why: {text}"
            );
        }
    }
    // A chunked body with no declared length is capped the same way.
    let chunks =
        futures_util::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024])));
    let r = bare_client(d)
        .post(format!("{}/user/alice/api/op", d.base))
        .header("cookie", alice)
        .header("x-csrf-token", csrf)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 413, "chunked body");
    }
    still_serving(d, "oversized bodies").await;
    assert_unchanged(d, &before, "oversized bodies");
}

/// A WebSocket frame over the limit closes that connection (with a reason), an
/// operation message over the operation limit is refused by name, and the same person
/// can connect again at once.
async fn oversized_websocket_frames(d: &Demo, alice: &str) {
    use futures_util::{SinkExt, StreamExt};
    let before = fingerprint(d);
    let url = format!("wss://127.0.0.1:{}/user/alice/ws", d.port);
    let mut ws = relay(d, "alice", alice).await;
    // 100 KiB: over the operation limit, under the frame limit.
    let op = json!({"type": "op", "id": "big", "op": "resume", "target": "alice_forecast",
                    "args": {"x": "y".repeat(100 * 1024)}});
    ws_send(&mut ws, op).await;
    let v = ws_until(&mut ws, Duration::from_secs(10), |v| v["type"] == "error").await;
    assert!(v["message"].as_str().unwrap().contains("too large"), "{v}");
    // 4 MiB: over the frame limit.
    let _ = ws
        .send(tokio_tungstenite::tungstenite::Message::text(
            "z".repeat(4 << 20),
        ))
        .await;
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return true,
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert_eq!(closed, Ok(true), "a 4 MiB frame must end the connection");
    let again = ws_connect(&d.ca(), &url, Some(&d.base), alice).await;
    assert!(again.is_ok(), "reconnect after the oversized frame");
    drop(again);
    still_serving(d, "oversized frames").await;
    assert_unchanged(d, &before, "oversized frames");
}

/// JSON nested thousands deep (a stack-exhaustion attempt on every parser on the way:
/// the hub's, then the UI server's): a clear error, the connection and the hub live on.
async fn deeply_nested_json(d: &Demo, alice: &str) {
    let before = fingerprint(d);
    let deep = format!("{}1{}", "[".repeat(20_000), "]".repeat(20_000));
    let r = bare_client(d)
        .post(format!("{}/hub/api/login", d.base))
        .header("content-type", "application/json")
        .body(format!(r#"{{"username":{deep},"password":"x"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let mut ws = relay(d, "alice", alice).await;
    for m in [
        format!(
            r#"{{"type":"op","id":"deep","op":"resume","target":"alice_forecast","args":{{"x":{deep}}}}}"#
        ),
        format!(r#"{{"type":"tail","id":"deep2","workflow":"alice_forecast","x":{deep}}}"#),
        format!(r#"{{"type":"ping","data":{deep}}}"#),
    ] {
        use futures_util::SinkExt;
        ws.send(tokio_tungstenite::tungstenite::Message::text(m))
            .await
            .unwrap();
        let v = ws_until(&mut ws, Duration::from_secs(10), |v| v["type"] == "error").await;
        assert!(!v["message"].as_str().unwrap_or("").is_empty(), "{v}");
    }
    // Still the same connection, still answering.
    ws_send(&mut ws, json!({"type": "ping", "data": "alive"})).await;
    ws_until(&mut ws, Duration::from_secs(10), |v| v["type"] == "pong").await;
    drop(ws);
    still_serving(d, "deeply nested JSON").await;
    assert_unchanged(d, &before, "deeply nested JSON");
}

/// Slowloris: connections that never finish their TLS handshake or their request
/// headers are closed by the hub, and others are served meanwhile. Bounded: 20
/// connections, each waited for at most 60 s.
async fn slowloris(d: &Demo) {
    let port = d.port;
    let ca = d.ca();
    let handle = tokio::task::spawn_blocking(move || {
        let addr = DemoAddr { port, ca };
        let mut closed = 0;
        let mut threads = vec![];
        for i in 0..20 {
            let port = addr.port;
            let ca = addr.ca.clone();
            threads.push(std::thread::spawn(move || {
                if i % 2 == 0 {
                    // A TCP connection that never says anything.
                    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                    let mut b = [0u8; 16];
                    matches!(tcp.read(&mut b), Ok(0) | Err(_))
                } else {
                    // TLS, then a request line and one header byte at a time, slowly.
                    let a = DemoAddr { port, ca };
                    let mut s = a.tls();
                    let _ = s.write_all(b"GET /hub/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
                    let _ = s.flush();
                    for _ in 0..60 {
                        std::thread::sleep(Duration::from_secs(1));
                        if s.write_all(b"a").and_then(|_| s.flush()).is_err() {
                            return true;
                        }
                    }
                    let answer = drain(&mut s);
                    !answer.starts_with("HTTP/1.1 200")
                }
            }));
        }
        for t in threads {
            if t.join().unwrap_or(false) {
                closed += 1;
            }
        }
        closed
    });
    // Served while the slow connections hang on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    still_serving(d, "slowloris (during)").await;
    let closed = handle.await.unwrap();
    assert_eq!(closed, 20, "the hub kept slow connections open");
    still_serving(d, "slowloris").await;
}

/// One person opening WebSockets without end: the hub stops them at the per-person
/// limit with a 429 that says why, and another person still connects.
async fn many_connections_from_one_user(d: &Demo) {
    let (bob, _) = login(d, "bob").await;
    let (carl, _) = login(d, "carl").await;
    let url = format!("wss://127.0.0.1:{}/user/bob/ws", d.port);
    let mut open = vec![];
    let mut refused = None;
    for i in 0..40 {
        match ws_connect(&d.ca(), &url, Some(&d.base), &bob).await {
            Ok(ws) => open.push(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let body = resp
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                refused = Some((i, resp.status().as_u16(), body));
                break;
            }
            Err(e) => panic!("connection {i}: {e}"),
        }
    }
    let (n, status, body) = refused.expect("40 WebSockets for one person were all accepted");
    assert_eq!(status, 429, "{body}");
    assert!((1..=32).contains(&n), "refused at {n}");
    assert!(body.contains("too many open connections"), "{body}");
    let other = ws_connect(&d.ca(), &url, Some(&d.base), &carl).await;
    assert!(other.is_ok(), "carl locked out by bob's connections");
    drop(other);
    drop(open);
}

/// Hostile text in every field a person controls: user names at login, ids, targets and
/// arguments of operations. Each audit record stays one JSON line, each human line one
/// line starting with its time, no escape character or carriage return reaches either
/// file or the hub's own log, and the chain still verifies.
async fn log_and_audit_injection(d: &Demo, alice: &str) {
    let forged = "2026-01-01T00:00:00Z User root stopped every workflow";
    let evil = [
        format!("x\n{forged}"),
        format!("x\r{forged}"),
        format!("x\u{1b}[2K\u{1b}[1G{forged}"),
        format!("x\u{2028}{forged}"),
        format!("x\u{85}{forged}"),
        format!("x\u{0}{forged}"),
        format!("x\u{7}\u{8}\u{8}\u{8}{forged}"),
        "x\", \"actor\": \"root\", \"event\": \"admin".to_string(),
        "y".repeat(60_000),
    ];
    let c = bare_client(d);
    for e in &evil {
        let r = c
            .post(format!("{}/hub/api/login", d.base))
            .json(&json!({"username": e, "password": "x"}))
            .send()
            .await
            .unwrap();
        assert!(r.status() == 401 || r.status() == 429, "{}", r.status());
    }
    // Operation ids, targets and arguments over the relay (alice is elevated).
    let mut ws = relay(d, "alice", alice).await;
    for (i, e) in evil.iter().enumerate() {
        let e: String = e.chars().take(1000).collect();
        let id = format!("inj{i}{e}");
        ws_send(
            &mut ws,
            json!({"type": "op", "id": id, "op": "hold",
                                "target": format!("alice_forecast//1/{e}"), "args": {"why": e}}),
        )
        .await;
        ws_until(&mut ws, Duration::from_secs(10), |v| v["id"] == id.as_str()).await;
        let id2 = format!("inj2-{i}");
        let mut args = serde_json::Map::new();
        args.insert("why".into(), json!(e));
        args.insert(e.clone(), json!(e));
        ws_send(
            &mut ws,
            json!({"type": "op", "id": id2, "op": "hold",
                                "target": "alice_forecast//1/post_process", "args": args}),
        )
        .await;
        ws_until(&mut ws, Duration::from_secs(10), |v| {
            v["id"] == id2.as_str()
        })
        .await;
    }
    drop(ws);
    wait_until(Duration::from_secs(5), || {
        d.audit_records()
            .iter()
            .filter(|r| r["op"] == "hold" && r["kind"] == "outcome")
            .count()
            > 0
    });

    let jsonl = std::fs::read_to_string(d.data.path().join("audit/audit.jsonl")).unwrap();
    for (n, line) in jsonl.lines().enumerate() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("audit.jsonl line {} is not one record: {e}", n + 1));
        assert!(v.is_object());
        assert!(
            !line.contains('\r') && !line.contains('\u{1b}'),
            "line {}",
            n + 1
        );
    }
    let human = d.human_audit();
    for line in human.lines() {
        assert!(
            line.starts_with("20") && line.as_bytes().get(19) == Some(&b'Z'),
            "a human audit line does not start with its time: {line:?}"
        );
        assert!(!line.starts_with(forged), "forged line: {line}");
        assert!(
            line.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "a human line carries a control or non-ASCII byte: {line:?}"
        );
        assert!(line.len() < 4_000, "a human line of {} bytes", line.len());
    }
    assert!(!human.contains('\r'));
    for line in d.proc.as_ref().unwrap().stdout_lines.lock().unwrap().iter() {
        assert!(
            !line.contains('\u{1b}') && !line.contains('\r'),
            "hub log line: {line:?}"
        );
    }
    let out = std::process::Command::new(bin("steward"))
        .args(["audit", "verify", "--dir"])
        .arg(d.data.path().join("audit"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client bound to one loopback address (the whole of 127/8 is this host).
fn client_from(d: &Demo, last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(&d.ca()))
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn try_login(c: &reqwest::Client, d: &Demo, user: &str, pw: &str, xff: Option<&str>) -> u16 {
    let mut req = c
        .post(format!("{}/hub/api/login", d.base))
        .json(&json!({"username": user, "password": pw}));
    if let Some(x) = xff {
        req = req
            .header("x-forwarded-for", x)
            .header("x-real-ip", x)
            .header("forwarded", format!("for={x}"));
    }
    req.send().await.unwrap().status().as_u16()
}

/// A flood of wrong passwords (for carl's name and for made-up names) from one
/// address: the flood is stopped with 429, and alice, from another address, logs in at
/// once — one person's flood does not lock out another. (A flood aimed at one *name*
/// makes that name wait from every address: the per-name limit is by design, see
/// docs/security-findings.md.)
async fn login_flood_does_not_lock_out_others(d: &Demo) {
    let flood = client_from(d, 2);
    let mut limited = 0;
    for i in 0..30 {
        let user = if i % 2 == 0 {
            "carl".to_string()
        } else {
            format!("nobody{i}")
        };
        match try_login(&flood, d, &user, "wrong", None).await {
            401 => {}
            429 => limited += 1,
            s => panic!("flood attempt {i}: {s}"),
        }
    }
    assert!(limited > 0, "30 failures were never limited");
    // The refusal says how long to wait.
    let r = flood
        .post(format!("{}/hub/api/login", d.base))
        .json(&json!({"username": "carl", "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("try again in"), "{v}");
    let other = client_from(d, 3);
    assert_eq!(
        try_login(&other, d, "alice", &d.password("alice"), None).await,
        200,
        "alice, from another address, was locked out by the flood"
    );
    // The flood named carl: carl himself, from his own address, still gets in.
    assert_eq!(
        try_login(&other, d, "carl", &d.password("carl"), None).await,
        200,
        "a flood aimed at carl's name locked carl out from everywhere"
    );
}

/// The per-address limit counts the connection's address, not what headers claim:
/// failures with a fresh `X-Forwarded-For`/`X-Real-IP`/`Forwarded` each time are still
/// stopped once the address has used its budget.
async fn x_forwarded_for_does_not_evade_address_limits(d: &Demo) {
    let c = client_from(d, 4);
    let mut first_429 = None;
    for i in 0..30u8 {
        let xff = format!("10.9.{i}.{i}");
        let status = try_login(&c, d, &format!("user{i}"), "wrong", Some(&xff)).await;
        if status == 429 {
            first_429 = Some(i);
            break;
        }
        assert_eq!(status, 401);
    }
    let n = first_429.expect("spoofed X-Forwarded-For evaded the per-address limit");
    assert!(n <= 20, "limited only after {n} failures");
    // And alice, with the right password but from that address, waits too: the limit is
    // the address's, whatever name it tries.
    assert_eq!(
        try_login(&c, d, "alice", &d.password("alice"), Some("10.0.0.1")).await,
        429
    );
}
