//! Attack suite, browser side: cross-site WebSocket hijacking, CSRF on every
//! state-changing route, session fixation, cookie flags, old session ids after logout
//! and elevation, and open redirects — against one `steward demo` hub with real users.
//! Every attack asserts the refusal and that nothing changed (audit log, sessions,
//! workflow state); see docs/security-attacks.md.

// The demo lock is held for the whole test, across awaits, on purpose.
#![allow(clippy::await_holding_lock)]

mod attack;

use attack::*;
use serde_json::{json, Value};
use steward_e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_attacks() {
    if !require_root("web_attacks") {
        return;
    }
    let _l = demo_lock();
    let d = Demo::start();
    let (alice, alice_csrf) = paused_forecast(&d).await;
    let mut s = Suite::new();
    s.run(
        "cross_site_websocket_hijacking",
        cross_site_websocket_hijacking(&d, &alice),
    )
    .await;
    s.run(
        "csrf_on_every_state_changing_route",
        csrf_on_every_state_changing_route(&d, &alice, &alice_csrf),
    )
    .await;
    s.run("login_csrf_by_form_post", login_csrf_by_form_post(&d))
        .await;
    s.run("session_fixation", session_fixation(&d)).await;
    s.run("cookie_flags", cookie_flags(&d)).await;
    s.run("open_redirects", open_redirects(&d)).await;
    s.run(
        "other_peoples_objects",
        other_peoples_objects(&d, &alice, &alice_csrf),
    )
    .await;
    s.run(
        "logout_and_elevation_invalidate_old_session_ids",
        logout_and_elevation_invalidate_old_session_ids(&d),
    )
    .await;
    s.finish();
}

/// A page on another origin opens the relay with the victim's cookie (browsers attach
/// it to WebSocket upgrades): every Origin but the hub's own exact public origin is
/// refused before the session is even looked at.
async fn cross_site_websocket_hijacking(d: &Demo, cookie: &str) {
    let before = fingerprint(d);
    let url = format!("wss://127.0.0.1:{}/user/alice/ws", d.port);
    let other_port = if d.port == 65535 { 1 } else { d.port + 1 };
    let origins: Vec<Option<String>> = vec![
        None,
        Some("null".into()),
        Some("https://evil.example".into()),
        Some(format!("http://127.0.0.1:{}", d.port)),
        Some(format!("https://127.0.0.1:{other_port}")),
        Some("https://127.0.0.1".into()),
        Some(format!("wss://127.0.0.1:{}", d.port)),
        Some(format!("https://localhost:{}", d.port)),
        Some(format!("https://127.0.0.1:{}.evil.example", d.port)),
        Some(format!("https://evil.example/https://127.0.0.1:{}", d.port)),
        Some(format!("https://127.0.0.1:{}@evil.example", d.port)),
        Some(format!("HTTPS://127.0.0.1:{}", d.port)),
        Some(format!(
            "https://127.0.0.1:{}, https://evil.example",
            d.port
        )),
    ];
    for o in &origins {
        let status = ws_refusal(ws_connect(&d.ca(), &url, o.as_deref(), cookie).await);
        assert_eq!(status, 403, "Origin {o:?} must be refused");
    }
    // The right origin still works, so the refusals above are about the Origin.
    let ok = ws_connect(&d.ca(), &url, Some(&d.base), cookie).await;
    assert!(ok.is_ok(), "the hub's own origin: {:?}", ok.err());
    drop(ok);
    assert_unchanged(d, &before, "cross-site WebSocket");
}

/// Every route that changes state, tried the ways a foreign page could: no token, a
/// wrong one, another session's valid token, `Sec-Fetch-*` headers claiming same-origin
/// (a browser's no-cors request), and a text/plain form post carrying the real token in
/// the body or the query (a form cannot set headers). All must be 403.
async fn csrf_on_every_state_changing_route(d: &Demo, alice: &str, alice_csrf: &str) {
    let (carl, _carl_csrf) = login(d, "carl").await;
    let (_bob, bob_csrf) = login(d, "bob").await;
    // A token and a session the admin routes could act on, if the check let them.
    let tok = send_as(
        d,
        "POST",
        "/hub/api/tokens",
        alice,
        alice_csrf,
        Some(json!({"name": "victim", "class": "read", "expires_in_secs": 600})),
    )
    .await;
    assert_eq!(tok.status(), 200);
    let tok: Value = tok.json().await.unwrap();
    let token_id = tok["id"].as_str().unwrap().to_string();
    let admin_list: Value = bare_client(d)
        .get(format!("{}/hub/api/admin/sessions", d.base))
        .header("cookie", &carl)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let victim_session = admin_list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user"] == "alice")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = fingerprint(d);

    // (method, path, cookie of a session allowed to do it, JSON body)
    let routes: Vec<(&str, String, &str, Value)> = vec![
        ("POST", "/hub/api/logout".into(), alice, json!({})),
        (
            "POST",
            "/hub/api/elevate".into(),
            alice,
            json!({"class": "write", "password": d.password("alice")}),
        ),
        ("POST", "/hub/api/drop".into(), alice, json!({})),
        (
            "POST",
            "/hub/api/tokens".into(),
            alice,
            json!({"name": "csrf", "class": "read", "expires_in_secs": 600}),
        ),
        (
            "DELETE",
            format!("/hub/api/tokens/{token_id}"),
            alice,
            json!({}),
        ),
        ("POST", "/hub/api/server".into(), alice, json!({})),
        ("DELETE", "/hub/api/server".into(), alice, json!({})),
        (
            "POST",
            "/user/alice/api/op".into(),
            alice,
            json!({"id": "x", "op": "resume", "target": "alice_forecast"}),
        ),
        (
            "POST",
            "/hub/api/admin/servers/alice/stop".into(),
            &carl,
            json!({}),
        ),
        (
            "POST",
            format!("/hub/api/admin/sessions/{victim_session}/revoke"),
            &carl,
            json!({}),
        ),
    ];
    let c = bare_client(d);
    for (method, path, cookie, body) in &routes {
        let url = format!("{}{path}", d.base);
        let m: reqwest::Method = method.parse().unwrap();
        let json_req = || {
            c.request(m.clone(), &url)
                .header("cookie", *cookie)
                .header("content-type", "application/json")
                .body(body.to_string())
        };
        let attempts: Vec<(&str, reqwest::RequestBuilder)> = vec![
            ("no token", json_req()),
            (
                "wrong token",
                json_req().header("x-csrf-token", "0".repeat(64)),
            ),
            ("empty token", json_req().header("x-csrf-token", "")),
            (
                "another session's token",
                json_req().header("x-csrf-token", &bob_csrf),
            ),
            (
                "no-cors fetch",
                json_req()
                    .header("sec-fetch-mode", "no-cors")
                    .header("sec-fetch-site", "same-origin")
                    .header("origin", &d.base)
                    .header("referer", format!("{}/hub/", d.base)),
            ),
            (
                "text/plain form post",
                c.request(
                    m.clone(),
                    format!("{url}?x-csrf-token={alice_csrf}&_xsrf={alice_csrf}"),
                )
                .header("cookie", *cookie)
                .header("content-type", "text/plain")
                .header("origin", "https://evil.example")
                .body(format!("x-csrf-token={alice_csrf}&{body}")),
            ),
            (
                "urlencoded form post",
                c.request(m.clone(), &url)
                    .header("cookie", *cookie)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!("x-csrf-token={alice_csrf}&_xsrf={alice_csrf}")),
            ),
            (
                "token as a cookie (double submit)",
                c.request(m.clone(), &url)
                    .header(
                        "cookie",
                        format!("{cookie}; x-csrf-token={alice_csrf}; _xsrf={alice_csrf}"),
                    )
                    .header("content-type", "application/json")
                    .body(body.to_string()),
            ),
        ];
        for (how, req) in attempts {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 403, "{method} {path} with {how}");
        }
    }
    assert_unchanged(d, &before, "CSRF");
}

/// Login CSRF: a foreign page posts a form that logs the victim's browser into the
/// attacker's account (so the victim's later actions land there). A `text/plain` form
/// can carry a JSON-looking body; the login accepts JSON only, and no foreign Origin.
async fn login_csrf_by_form_post(d: &Demo) {
    let before = fingerprint(d);
    let body = json!({"username": "bob", "password": d.password("bob")}).to_string();
    let c = bare_client(d);
    for (ctype, origin) in [
        ("text/plain", Some("https://evil.example")),
        ("text/plain", None),
        ("application/x-www-form-urlencoded", Some("null")),
        (
            "multipart/form-data; boundary=x",
            Some("https://evil.example"),
        ),
        ("application/json", Some("https://evil.example")),
        ("application/json", Some("null")),
    ] {
        let mut req = c
            .post(format!("{}/hub/api/login", d.base))
            .header("content-type", ctype)
            .body(body.clone());
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let r = req.send().await.unwrap();
        assert!(
            set_cookie(&r).is_none(),
            "{ctype} from {origin:?} got a session"
        );
        assert!(
            r.status() == 415 || r.status() == 403,
            "{ctype} from {origin:?}: {}",
            r.status()
        );
    }
    assert_unchanged(d, &before, "login CSRF");
}

/// A session id the attacker chose (planted in the victim's browser before login) is
/// never adopted: login issues a fresh id and the planted one stays unknown.
async fn session_fixation(d: &Demo) {
    let planted = "ab".repeat(32);
    let r = bare_client(d)
        .post(format!("{}/hub/api/login", d.base))
        .header("cookie", format!("__Host-steward_session={planted}"))
        .json(&json!({"username": "bob", "password": d.password("bob")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let issued = set_cookie(&r).unwrap();
    assert!(!issued.contains(&planted), "{issued}");
    let (status, _) = me(d, &format!("__Host-steward_session={planted}")).await;
    assert_eq!(status, 401, "the planted id must not be a session");
    let pair = issued.split(';').next().unwrap();
    assert_eq!(me(d, pair).await.0, 200);
}

/// The session cookie: Secure, HttpOnly, SameSite=Strict, Path=/, no Domain (so no
/// sibling host receives it), and the logout answer removes it.
async fn cookie_flags(d: &Demo) {
    let r = bare_client(d)
        .post(format!("{}/hub/api/login", d.base))
        .json(&json!({"username": "bob", "password": d.password("bob")}))
        .send()
        .await
        .unwrap();
    let c = set_cookie(&r).unwrap();
    let attrs: Vec<String> = c
        .split(';')
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for want in ["secure", "httponly", "samesite=strict", "path=/"] {
        assert!(attrs.iter().any(|a| a == want), "{want} missing: {c}");
    }
    assert!(!attrs.iter().any(|a| a.starts_with("domain")), "{c}");
    let pair = c.split(';').next().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    let out = bare_client(d)
        .post(format!("{}/hub/api/logout", d.base))
        .header("cookie", &pair)
        .header("x-csrf-token", v["csrf"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    let gone = set_cookie(&out).unwrap().to_ascii_lowercase();
    assert!(
        gone.contains("max-age=0") || gone.contains("expires=thu, 01 jan 1970"),
        "{gone}"
    );
}

/// Every redirect the hub makes (`/` and `/hub` to `/hub/`) goes to a fixed local
/// path, whatever the request carries; no path, query or Host turns into a Location
/// elsewhere, and no encoded CR/LF splits a header.
async fn open_redirects(d: &Demo) {
    let before = fingerprint(d);
    let c = bare_client(d);
    let evil = [
        "//evil.example",
        "/\\evil.example",
        "https:evil.example",
        "%2F%2Fevil.example",
        "https://evil.example",
        "javascript:alert(1)",
        "%0d%0aLocation:%20https://evil.example",
        "/%0d%0aSet-Cookie:%20__Host-steward_session=x",
    ];
    let mut paths = vec![
        "//evil.example".to_string(),
        "//evil.example/hub".to_string(),
        "//evil.example/%2e%2e".to_string(),
        "/\\evil.example".to_string(),
        "/%5Cevil.example".to_string(),
        "/%2F%2Fevil.example".to_string(),
        "/hub//evil.example".to_string(),
        "/hub/%0d%0aLocation:%20https://evil.example".to_string(),
        "/https:evil.example".to_string(),
        "/javascript:alert(1)".to_string(),
    ];
    for e in evil {
        for p in ["/", "/hub", "/hub/", "/hub/api/login"] {
            for param in ["next", "redirect", "redirect_uri", "return_to", "url"] {
                paths.push(format!("{p}?{param}={e}"));
            }
        }
    }
    for p in &paths {
        let r = c.get(format!("{}{p}", d.base)).send().await.unwrap();
        if r.status().is_redirection() {
            let loc = r.headers().get("location").unwrap().to_str().unwrap();
            assert_eq!(loc, "/hub/", "{p} redirects to {loc}");
        }
        for (k, v) in r.headers() {
            let v = String::from_utf8_lossy(v.as_bytes());
            assert!(!v.contains("evil"), "{p}: header {k}: {v}");
        }
        assert_eq!(
            r.headers().get_all("set-cookie").iter().count(),
            0,
            "{p} set a cookie"
        );
    }
    // A forged Host header does not make the redirect absolute.
    let r = c
        .get(format!("{}/hub", d.base))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    if r.status().is_redirection() {
        assert_eq!(r.headers()["location"], "/hub/");
    }
    assert_unchanged(d, &before, "open redirect");
}

/// Logout, elevation and drop each end the old session: its id opens nothing any more
/// (API, WebSocket, operation), and only the new id works.
async fn logout_and_elevation_invalidate_old_session_ids(d: &Demo) {
    let (a, csrf_a) = login(d, "alice").await;
    let (b, csrf_b) = elevate(d, &a, &csrf_a, "alice").await;
    let ws_url = format!("wss://127.0.0.1:{}/user/alice/ws", d.port);
    assert_eq!(me(d, &a).await.0, 401, "pre-elevation id still valid");
    assert_eq!(
        ws_refusal(ws_connect(&d.ca(), &ws_url, Some(&d.base), &a).await),
        401
    );
    let (s, _) = op_http(d, &a, &csrf_a, "alice", "resume", "alice_forecast").await;
    assert_eq!(s, 401, "old id must not act");
    assert_eq!(me(d, &b).await.1["class"], "execute");

    // Drop: back to read on a new id, the elevated one is gone.
    let r = send_as(d, "POST", "/hub/api/drop", &b, &csrf_b, None).await;
    assert_eq!(r.status(), 200);
    let c = set_cookie(&r)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf_c = r.json::<Value>().await.unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(me(d, &b).await.0, 401, "elevated id survived the drop");
    let (s, _) = op_http(d, &b, &csrf_b, "alice", "resume", "alice_forecast").await;
    assert_eq!(s, 401);
    assert_eq!(me(d, &c).await.1["class"], "read");

    // Logout: the id is revoked server-side, not only removed from the browser.
    let r = send_as(d, "POST", "/hub/api/logout", &c, &csrf_c, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(me(d, &c).await.0, 401, "logged-out id still valid");
    assert_eq!(
        ws_refusal(ws_connect(&d.ca(), &ws_url, Some(&d.base), &c).await),
        401
    );
    let records = d.audit_records();
    assert!(records
        .iter()
        .any(|r| r["event"] == "logout" && r["actor"] == "alice"));
}

/// Objects that belong to someone else, named by id: bob's API token (revoking it,
/// using it is his), the audit records of alice's workflows and logins (searching as
/// bob), bob's own server (stopping it as alice), and admin listings. Refused, and
/// bob's token keeps working.
async fn other_peoples_objects(d: &Demo, alice: &str, alice_csrf: &str) {
    let (bob, bob_csrf) = login(d, "bob").await;
    let c = bare_client(d);
    let body = json!({"name": "bobs", "class": "read", "expires_in_secs": 600});
    let t: Value = send_as(d, "POST", "/hub/api/tokens", &bob, &bob_csrf, Some(body))
        .await
        .json()
        .await
        .unwrap();
    let (id, secret) = (
        t["id"].as_str().unwrap().to_string(),
        t["token"].as_str().unwrap().to_string(),
    );
    let before = fingerprint(d);
    let path = format!("/hub/api/tokens/{id}");
    let r = send_as(d, "DELETE", &path, alice, alice_csrf, None).await;
    assert_eq!(r.status(), 404, "alice revoked bob's token");
    let listed: Value = c
        .get(format!("{}/hub/api/tokens", d.base))
        .header("cookie", alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !listed.to_string().contains(&id),
        "alice lists bob's token: {listed}"
    );
    let r = c
        .get(format!("{}/hub/api/me", d.base))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "bob's token stopped working");
    // A token with a right id and a wrong secret, or a truncated one, is nobody.
    let wrong = format!("{}x", &secret[..secret.len() - 1]);
    for t in [wrong.as_str(), &secret[..secret.len() / 2]] {
        let r = c
            .get(format!("{}/hub/api/me", d.base))
            .bearer_auth(t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    // Audit: bob may not search alice's workflows, and his own search shows no record
    // of alice's logins or addresses.
    let r = c
        .get(format!("{}/hub/api/audit?owner=alice", d.base))
        .header("cookie", &bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    for q in ["", "?actor=alice", "?owner=", "?actor=alice&owner=bob"] {
        let v: Value = c
            .get(format!("{}/hub/api/audit{q}", d.base))
            .header("cookie", &bob)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for r in v["records"].as_array().unwrap() {
            assert!(
                r["owner"] == "bob" || r["actor"] == "bob",
                "bob sees {r} with {q:?}"
            );
        }
    }
    // Admin listings are the admin's.
    for path in ["/hub/api/admin/sessions", "/hub/api/admin/servers"] {
        let r = c
            .get(format!("{}{path}", d.base))
            .header("cookie", alice)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    assert_unchanged(d, &before, "other people's objects");
}
