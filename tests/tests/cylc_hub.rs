//! The real Cylc behind Steward (issue 22): `steward demo --cylc` plays a real
//! cylc-flow 8.7 workflow as alice and starts her unmodified `cylc hubapp`
//! (cylc-uiserver 1.10) on a visit; bob, whom alice's policy lets control it, raises
//! privileges and pauses it and holds a task through Cylc's GraphQL while a
//! subscription shows the change; carl's mutation is refused by Steward and never
//! reaches the server; the audit log holds intent and outcome with actor and owner.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use steward_e2e::cylc::{require_cylc, CylcUser, Workflow};
use steward_e2e::*;

const WF: &str = "demo-forecast";

async fn graphql(d: &Demo, c: &reqwest::Client, owner: &str, query: &str) -> (u16, Value) {
    let r = c
        .post(format!("{}/user/{owner}/cylc/graphql", d.base))
        // The Cylc UI sends no Steward CSRF header: the hub's Origin rule stands in.
        .header("origin", &d.base)
        .json(&json!({"query": query, "variables": {}}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| json!({"raw": text})),
    )
}

type Sub =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscribe(d: &Demo, owner: &str, cookie: &str, query: &str) -> Sub {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("wss://127.0.0.1:{}/user/{owner}/cylc/subscriptions", d.port)
        .into_client_request()
        .unwrap();
    let h = req.headers_mut();
    h.insert("origin", d.base.parse().unwrap());
    h.insert("cookie", cookie.parse().unwrap());
    h.insert("sec-websocket-protocol", "graphql-ws".parse().unwrap());
    let connector = tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(tls_config(&d.ca())));
    let (mut ws, resp) =
        tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector))
            .await
            .expect("subscriptions WebSocket");
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("graphql-ws")
    );
    for frame in [
        json!({"type": "connection_init", "payload": {}}),
        json!({"id": "1", "type": "start", "payload": {"query": query, "variables": {}}}),
    ] {
        ws.send(tokio_tungstenite::tungstenite::Message::text(
            frame.to_string(),
        ))
        .await
        .unwrap();
    }
    ws
}

/// Reads frames until one whose text satisfies `pred` (bounded).
async fn sub_until(ws: &mut Sub, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = vec![];
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(m))) => m,
            other => panic!("subscription ended or timed out ({other:?}); frames seen: {seen:#?}"),
        };
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            if pred(&t) {
                return t.to_string();
            }
            seen.push(t.to_string());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock)]
async fn real_cylc_ui_server_behind_steward_every_mutation_decided_and_audited() {
    if !require_cylc("real_cylc_ui_server_behind_steward_every_mutation_decided_and_audited") {
        return;
    }
    let _l = demo_lock();
    let d = Demo::start_with_args(&["--cylc"]);
    let alice = CylcUser::existing("alice");
    // The demo played it; stopped, its jobs killed and cleaned when the test ends.
    let wf = Workflow::adopt(&alice, WF);
    let long = Duration::from_secs(90);
    wf.wait_for(long, Workflow::status, |s| s.as_deref() == Some("running"));
    let id = wf.id();

    // bob reads: the first visit starts alice's cylc hubapp, as alice, in her cgroup.
    let (bob, csrf) = d.login("bob").await;
    let page = bob
        .get(format!("{}/user/alice/cylc/", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers().get("set-cookie").is_none(),
        "the server's cookies stay behind"
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<html") || html.contains("<!DOCTYPE"),
        "{html:.300}"
    );
    let cgroup_procs =
        std::fs::read_to_string("/sys/fs/cgroup/pids/steward-demo/alice/default/cgroup.procs")
            .unwrap_or_default();
    let alice_uid = nix::unistd::User::from_name("alice")
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    let hubapp_as_alice = cgroup_procs
        .lines()
        .filter_map(|p| p.trim().parse::<u32>().ok())
        .any(|pid| {
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            cmd.contains("hubapp")
                && status.lines().any(|l| {
                    l.starts_with("Uid:")
                        && l.split_whitespace().nth(1) == Some(&alice_uid.to_string())
                })
        });
    assert!(
        hubapp_as_alice,
        "cylc hubapp runs as alice in her cgroup: {cgroup_procs}"
    );

    let (status, v) = graphql(&d, &bob, "alice", "query { workflows { id status } }").await;
    assert_eq!(status, 200, "{v}");
    assert!(
        v["data"]["workflows"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w["id"] == id.as_str())),
        "{v}"
    );

    // Not elevated: Steward refuses bob's pause before the server sees it.
    let pause = format!(r#"mutation {{ pause(workflows: ["{id}"]) {{ result }} }}"#);
    let (_, v) = graphql(&d, &bob, "alice", &pause).await;
    assert!(v["data"]["pause"].is_null(), "{v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Steward refused")),
        "{v}"
    );
    assert_eq!(wf.status().as_deref(), Some("running"));

    // The Origin rule: a cross-site POST without Steward's CSRF token never gets through.
    let r = bob
        .post(format!("{}/user/alice/cylc/graphql", d.base))
        .header("origin", "https://evil.example")
        .json(&json!({"query": pause}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "cross-site POST");

    // A subscription shows what happens next.
    let (_, cookie) = d.elevate(&bob, &csrf, "bob", "execute").await;
    let mut sub = subscribe(
        &d,
        "alice",
        &cookie,
        &format!(r#"subscription {{ workflows(ids: ["{id}"]) {{ id status }} }}"#),
    )
    .await;
    sub_until(&mut sub, long, |t| {
        t.contains("\"data\"") && t.contains("running")
    })
    .await;
    // A mutation on the subscriptions socket is refused by the hub.
    sub.send(tokio_tungstenite::tungstenite::Message::text(
        json!({"id": "2", "type": "start", "payload": {"query": pause}}).to_string(),
    ))
    .await
    .unwrap();
    sub_until(&mut sub, long, |t| {
        t.contains("\"error\"") && t.contains("\"2\"")
    })
    .await;

    let (status, v) = graphql(&d, &bob, "alice", &pause).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["data"]["pause"]["result"][0]["pause"]["result"][0]["response"][0], true,
        "{v}"
    );
    sub_until(&mut sub, long, |t| t.contains("paused")).await;
    wf.wait_for(long, Workflow::status, |s| s.as_deref() == Some("paused"));

    let hold =
        format!(r#"mutation {{ hold(workflows: ["{id}"], tasks: ["1/model"]) {{ result }} }}"#);
    let (status, v) = graphql(&d, &bob, "alice", &hold).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["errors"].is_null(), "{v}");
    // get_obs finishes, model enters the pool held (the workflow is paused, so it
    // would not run anyway): Cylc itself says so.
    wf.wait_for(Duration::from_secs(120), Workflow::tasks, |t| {
        t.contains("1/model:waiting (held")
    });

    // carl may read but not control alice's workflows: elevated or not, his resume is
    // refused by Steward with the reason, and the workflow stays paused.
    let (carl, carl_csrf) = d.login("carl").await;
    d.elevate(&carl, &carl_csrf, "carl", "execute").await;
    let resume = format!(r#"mutation {{ resume(workflows: ["{id}"]) {{ result }} }}"#);
    let (_, v) = graphql(&d, &carl, "alice", &resume).await;
    assert!(v["data"]["resume"].is_null(), "{v}");
    let msg = v["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains("Steward refused") && msg.contains("resume"),
        "{v}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        wf.status().as_deref(),
        Some("paused"),
        "carl's resume reached Cylc"
    );

    // The audit log: intent and outcome for bob's pause and hold, with actor and owner;
    // carl's denial with its reason and nothing sent.
    let records = d.audit_records();
    // An allowed operation's intent is an `intent` record; a denial is an `event`.
    let intent = |actor: &str, op: &str, decision: &str| {
        let kind = if decision == "allow" {
            "intent"
        } else {
            "event"
        };
        records.iter().find(|r| {
            r["kind"] == kind
                && r["actor"] == actor
                && r["owner"] == "alice"
                && r["op"] == op
                && r["decision"] == decision
        })
    };
    for (op, task) in [("pause", Value::Null), ("hold", json!("1/model"))] {
        let i = intent("bob", op, "allow").unwrap_or_else(|| panic!("no allowed {op} intent"));
        assert_eq!(i["workflow"], WF);
        assert_eq!(i["task"], task, "{i}");
        let rid = &i["request_id"];
        assert!(
            records.iter().any(|r| r["kind"] == "outcome"
                && r["request_id"] == *rid
                && r["outcome"] == "ok"
                && r["actor"] == "bob"
                && r["owner"] == "alice"),
            "no ok outcome for bob's {op}: {records:#?}"
        );
    }
    let denied = intent("carl", "resume", "deny").expect("carl's denial audited");
    assert!(denied["reason"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(
        !records
            .iter()
            .any(|r| r["kind"] == "outcome" && r["request_id"] == denied["request_id"]),
        "a denied mutation has no outcome: it was never sent"
    );
    drop(sub);
    drop(wf);
}
