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

/// Puts a policy file back as it was, however the test ends.
struct PolicyRestore<'a>(&'a std::path::Path, String);

impl Drop for PolicyRestore<'_> {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0, &self.1);
    }
}

/// The environment of alice's `cylc hubapp` (root reads it from /proc).
fn hubapp_env(pid: u32) -> std::collections::HashMap<String, String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// The `cylc hubapp` process in alice's server cgroup running as `uid`.
fn hubapp_pid(uid: u32) -> Option<u32> {
    std::fs::read_to_string("/sys/fs/cgroup/pids/steward-demo/alice/default/cgroup.procs")
        .unwrap_or_default()
        .lines()
        .filter_map(|p| p.trim().parse::<u32>().ok())
        .find(|pid| {
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            cmd.contains("hubapp")
                && status.lines().any(|l| {
                    l.starts_with("Uid:")
                        && l.split_whitespace().nth(1) == Some(uid.to_string().as_str())
                })
        })
}

/// Ways around a body-only gate, each sent by carl (who may read alice's workflows,
/// never control them): every one is refused by the hub, in GraphQL's error shape.
async fn gate_bypasses_are_refused(d: &Demo, carl: &reqwest::Client, id: &str) {
    let m = format!(r#"mutation {{ resume(workflows: ["{id}"]) {{ result }} }}"#);
    let q = "query { workflows { id } }";
    let url = |suffix: &str| format!("{}/user/alice/cylc/{suffix}", d.base);
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let two_ops = format!(
        r#"query A {{ workflows {{ id }} }} mutation B {{ resume(workflows: ["{id}"]) {{ result }} }}"#
    );
    let aliased = format!(r#"mutation {{ ok: resume(workflows: ["{id}"]) {{ result }} }}"#);
    let tries: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "?query= in the URL overrides the body",
            carl.post(url(&format!("graphql?query={}", enc(&m))))
                .json(&json!({ "query": q })),
        ),
        (
            "a batch",
            carl.post(url("graphql/batch"))
                .json(&json!([{ "query": q }, { "query": m }])),
        ),
        (
            "another content type",
            carl.post(url("graphql"))
                .header("content-type", "text/plain")
                .body(m.clone()),
        ),
        (
            "application/graphql",
            carl.post(url("graphql"))
                .header("content-type", "application/graphql")
                .body(m.clone()),
        ),
        (
            "GET with a mutation",
            carl.get(url(&format!("graphql?query={}", enc(&m)))),
        ),
        (
            "two operations, the mutation chosen by name",
            carl.post(url("graphql"))
                .json(&json!({"query": two_ops, "operationName": "B"})),
        ),
        (
            "an aliased field",
            carl.post(url("graphql")).json(&json!({ "query": aliased })),
        ),
        (
            "a glob",
            carl.post(url("graphql")).json(
                &json!({"query": "mutation { resume(workflows: [\"~alice/*\"]) { result } }"}),
            ),
        ),
        (
            "another owner's workflow",
            carl.post(url("graphql"))
                .json(&json!({"query": "mutation { resume(workflows: [\"~bob/x\"]) { result } }"})),
        ),
    ];
    for (what, req) in tries {
        let r = req.header("origin", &d.base).send().await.unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        let refused = v["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
            && v["data"]
                .as_object()
                .is_none_or(|o| o.values().all(Value::is_null));
        assert!(refused, "{what}: HTTP {status} {v}");
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
    let alice_uid = nix::unistd::User::from_name("alice")
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    let pid = hubapp_pid(alice_uid).expect("cylc hubapp runs as alice in her cgroup");
    let env = hubapp_env(pid);
    // No TCP port, and no other local user reaches the socket.
    let socket = d.data.path().join("run/alice/default.sock");
    assert!(socket.exists(), "{}", socket.display());
    let seen_by_carl = std::process::Command::new("runuser")
        .args(["-u", "carl", "--", "stat"])
        .arg(&socket)
        .output()
        .unwrap();
    assert!(
        !seen_by_carl.status.success(),
        "carl reached alice's socket: {}",
        String::from_utf8_lossy(&seen_by_carl.stdout)
    );
    assert_eq!(
        env.get("JUPYTERHUB_SERVICE_PREFIX").map(String::as_str),
        Some("/user/alice/"),
        "{env:?}"
    );

    let (status, v) = graphql(&d, &bob, "alice", "query { workflows { id status } }").await;
    assert_eq!(status, 200, "{v}");
    assert!(
        v["data"]["workflows"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w["id"] == id.as_str())),
        "{v}"
    );

    // Nothing outside Cylc's routes: dot segments would reach Jupyter's own API (alice's
    // files), so they are refused before anything is forwarded.
    for path in [
        "cylc/../api/contents",
        "cylc/%2e%2e/api/contents",
        "cylc%2f..%2fapi/contents",
    ] {
        let url = format!("{}/user/alice/{path}", d.base);
        let r = bob.get(&url).send().await.unwrap();
        // (The client resolves some spellings itself; whatever reaches the hub, the
        // answer is a refusal, never alice's directory listing.)
        assert!(r.status().is_client_error(), "{path}: HTTP {}", r.status());
    }

    // Steward's own overview lists the real workflow, from Cylc's GraphQL.
    let ov = get_json(&bob, format!("{}/hub/api/overview", d.base)).await;
    assert!(
        ov["owners"]
            .as_array()
            .is_some_and(|o| o.iter().any(|o| o["owner"] == "alice"
                && o["workflows"].as_array().is_some_and(|w| w
                    .iter()
                    .any(|w| w["name"] == WF && w["state"] == "running")))),
        "{ov}"
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
    gate_bypasses_are_refused(&d, &carl, &id).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        wf.status().as_deref(),
        Some("paused"),
        "carl's resume reached Cylc"
    );

    oauth_flow_and_its_bad_inputs(&d, &bob, &env).await;

    // A reader whom alice's policy lets read only some of her workflows is not let
    // into the Cylc UI (it would show all of them); Steward's own view stays open.
    let policy_path = alice.home.join(".steward/policy.toml");
    let policy_file = policy_path.as_path();
    let original = std::fs::read_to_string(policy_file).unwrap();
    let restore = PolicyRestore(policy_file, original.clone());
    std::fs::write(
        policy_file,
        format!(
            "{original}\n[[workflows]]\nmatch = \"secret*\"\ngrants = {{ carl = [\"!ALL\"] }}\n"
        ),
    )
    .unwrap();
    // Past the hub's 5 s cache of user policies.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let r = carl
        .get(format!("{}/user/alice/cylc/", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let why = r.text().await.unwrap();
    assert!(why.contains("only some"), "{why}");
    let r = bob
        .get(format!("{}/user/alice/cylc/", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "bob reads all of alice's workflows");
    drop(restore);

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

/// Steward as JupyterHub's OAuth provider, against the real server's credentials: a
/// code for bob, exchanged with alice's server's secret and PKCE verifier, resolves to
/// bob at `/hub/api/user`; a replayed code, a wrong verifier, a redirect outside the
/// owner's prefix, another owner's client, a wrong `state` at the server, an unknown
/// or expired token are each refused.
async fn oauth_flow_and_its_bad_inputs(
    d: &Demo,
    bob: &reqwest::Client,
    env: &std::collections::HashMap<String, String>,
) {
    use base64::Engine;
    use sha2::Digest;
    let api = env["JUPYTERHUB_API_URL"].clone();
    let secret = env["JUPYTERHUB_API_TOKEN"].clone();
    let client_id = env["JUPYTERHUB_CLIENT_ID"].clone();
    assert_eq!(client_id, "jupyterhub-user-alice");
    let verifier = "v".repeat(64);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let authorize = |client: &str, redirect: &str| {
        let q = serde_urlencoded::to_string([
            ("client_id", client),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "s1"),
        ])
        .unwrap();
        bob.get(format!("{}/hub/api/oauth2/authorize?{q}", d.base))
    };
    let code = || async {
        // The client follows the redirect; where it lands is the server's callback.
        let r = authorize(&client_id, "/user/alice/oauth_callback")
            .send()
            .await
            .unwrap();
        let url = r.url().clone();
        assert_eq!(url.path(), "/user/alice/oauth_callback", "{url}");
        assert!(url.query_pairs().any(|(k, v)| k == "state" && v == "s1"));
        url.query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.to_string())
            .expect("a code")
    };
    let plain = reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(&d.ca()))
        .build()
        .unwrap();
    let exchange = |code: String, verifier: String| {
        plain
            .post(format!("{api}/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                serde_urlencoded::to_string([
                    ("client_id", client_id.as_str()),
                    ("client_secret", secret.as_str()),
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", "/user/alice/oauth_callback"),
                    ("code_verifier", verifier.as_str()),
                ])
                .unwrap(),
            )
            .send()
    };
    let user = |t: String| {
        plain
            .get(format!("{api}/user"))
            .header("authorization", format!("token {t}"))
            .send()
    };

    let c1 = code().await;
    let r = exchange(c1.clone(), verifier.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("x-jupyterhub-version")
            .and_then(|v| v.to_str().ok()),
        Some("6.1.1")
    );
    let token: Value = r.json().await.unwrap();
    let access = token["access_token"].as_str().unwrap().to_string();
    let r = user(access.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let model: Value = r.json().await.unwrap();
    assert_eq!(model["name"], "bob");
    assert!(
        model["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g == "steward-ops")),
        "{model}"
    );
    assert!(
        model["scopes"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s == "access:servers!server=alice/")),
        "{model}"
    );

    // A replayed code.
    let r = exchange(c1, verifier.clone()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // A wrong verifier; the code is spent by it.
    let c2 = code().await;
    assert_eq!(
        exchange(c2.clone(), "w".repeat(64)).await.unwrap().status(),
        400
    );
    assert_eq!(exchange(c2, verifier.clone()).await.unwrap().status(), 400);
    // Redirects outside the owner's prefix; another owner's client id.
    for (client, redirect) in [
        (client_id.as_str(), "/user/bob/oauth_callback"),
        (
            client_id.as_str(),
            "https://evil.example/user/alice/oauth_callback",
        ),
        (client_id.as_str(), "/user/alice/../bob/oauth_callback"),
        ("jupyterhub-user-bob", "/user/alice/oauth_callback"),
    ] {
        let r = authorize(client, redirect).send().await.unwrap();
        assert_eq!(r.status(), 400, "{client} {redirect}");
    }
    // A wrong state is the server's to refuse: its callback, straight on its socket.
    let socket = d.data.path().join("run/alice/default.sock");
    let on_socket = reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(&d.ca()))
        .unix_socket(socket)
        .build()
        .unwrap();
    let c3 = code().await;
    let r = on_socket
        .get(format!(
            "http://127.0.0.1/user/alice/oauth_callback?code={c3}&state=forged"
        ))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_client_error(),
        "the server took a forged state: {}",
        r.status()
    );
    // The whole flow as the real server runs it: unauthenticated, it sends the browser
    // to the hub's authorize (its own state and PKCE challenge, in its cookies); the hub
    // logs bob in and hands back a code; at its callback the server exchanges the code
    // with the hub itself and then knows the visitor as bob.
    let server = reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(&d.ca()))
        .unix_socket(d.data.path().join("run/alice/default.sock"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookies_of = |r: &reqwest::Response| -> Vec<String> {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next().map(str::to_string))
            .collect()
    };
    let r = server
        .get("http://127.0.0.1/user/alice/cylc/userprofile")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        302,
        "the server did not send an unknown visitor to the hub"
    );
    let to_hub = r.headers()["location"].to_str().unwrap().to_string();
    assert!(to_hub.starts_with("/hub/api/oauth2/authorize?"), "{to_hub}");
    let state_cookies = cookies_of(&r);
    assert!(!state_cookies.is_empty(), "the server set no state cookie");
    let landed = bob
        .get(format!("{}{to_hub}", d.base))
        .send()
        .await
        .unwrap()
        .url()
        .clone();
    assert_eq!(landed.path(), "/user/alice/oauth_callback", "{landed}");
    let r = server
        .get(format!(
            "http://127.0.0.1{}?{}",
            landed.path(),
            landed.query().unwrap_or_default()
        ))
        .header("cookie", state_cookies.join("; "))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        302,
        "the server's callback did not complete the exchange"
    );
    let session_cookies = cookies_of(&r);
    let r = server
        .get("http://127.0.0.1/user/alice/cylc/userprofile")
        .header("cookie", session_cookies.join("; "))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let profile: Value = r.json().await.unwrap();
    assert_eq!(profile["name"], "bob", "{profile}");

    // Unknown and expired tokens: 403 (what the server expects), never a user.
    assert_eq!(user("nope".into()).await.unwrap().status(), 403);
    d.set_clock_offset(15 * 24 * 3600);
    assert_eq!(
        user(access).await.unwrap().status(),
        403,
        "a 14-day token still worked after 15 days"
    );
    d.set_clock_offset(0);
}
