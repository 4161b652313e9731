//! The advisories of Steward's neighbours, one attack each, named after it, against one
//! `steward demo` hub: JupyterHub, jupyter-server-proxy and sudo-rs found these holes
//! in themselves; each function tries the same pattern on Steward and asserts the
//! refusal and that nothing changed. Where the neighbour's feature has no Steward
//! counterpart, the function closes the equivalent path and says so.

// The demo lock is held for the whole test, across awaits, on purpose.
#![allow(clippy::await_holding_lock)]

mod attack;

use attack::*;
use serde_json::{json, Value};
use std::time::Duration;
use steward_e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advisories() {
    if !require_root("advisories") {
        return;
    }
    let _l = demo_lock();
    let d = Demo::start();
    let (alice, alice_csrf) = paused_forecast(&d).await;
    let mut s = Suite::new();
    s.run(
        "jupyterhub_cve_2024_28233_cookie_tossing",
        jupyterhub_cve_2024_28233_cookie_tossing(&d, &alice, &alice_csrf),
    )
    .await;
    s.run(
        "jupyterhub_cve_2024_41942_user_admin_grants_admin",
        jupyterhub_cve_2024_41942_user_admin_grants_admin(&d),
    )
    .await;
    s.run(
        "jupyterhub_cve_2026_33709_host_double_slash_redirect",
        jupyterhub_cve_2026_33709_host_double_slash_redirect(&d),
    )
    .await;
    s.run(
        "jupyterhub_cve_2026_40864_no_cors_xsrf_skip",
        jupyterhub_cve_2026_40864_no_cors_xsrf_skip(&d, &alice),
    )
    .await;
    s.run(
        "jupyterhub_cve_2026_54338_log_dos_long_user_names",
        jupyterhub_cve_2026_54338_log_dos_long_user_names(&d),
    )
    .await;
    s.run(
        "jupyterhub_cve_2026_108752_name_collisions",
        jupyterhub_cve_2026_108752_name_collisions(&d),
    )
    .await;
    s.run(
        "jupyterhub_cve_2026_40110_unanchored_origin",
        jupyterhub_cve_2026_40110_unanchored_origin(&d, &alice),
    )
    .await;
    s.run(
        "jupyter_server_proxy_cve_2024_28179_ws_upgrade_auth",
        jupyter_server_proxy_cve_2024_28179_ws_upgrade_auth(&d),
    )
    .await;
    s.run(
        "sudo_rs_cve_2023_42456_names_as_paths",
        sudo_rs_cve_2023_42456_names_as_paths(&d),
    )
    .await;
    s.run(
        "sudo_rs_ghsa_c978_wq47_pvvw_elevation_scope",
        sudo_rs_ghsa_c978_wq47_pvvw_elevation_scope(&d),
    )
    .await;
    s.finish();
}

/// JupyterHub CVE-2024-28233: code on a sibling host (a user's server) set cookies the
/// hub then trusted ("cookie tossing"), defeating its double-submit XSRF check. Steward's
/// CSRF token lives server-side in the session, never in a cookie, so a tossed token
/// cookie proves nothing; the session cookie is `__Host-` (a browser refuses it from
/// another host, port or scheme, or with a Domain), and a request carrying two session
/// cookies (one planted with a more specific Path) is not served as either.
async fn jupyterhub_cve_2024_28233_cookie_tossing(d: &Demo, alice: &str, alice_csrf: &str) {
    let (mallory, _) = login(d, "bob").await;
    let before = fingerprint(d);
    let c = bare_client(d);
    // A tossed token cookie and the same value in the header: refused.
    let forged = "f".repeat(64);
    let r = c
        .post(format!("{}/user/alice/api/op", d.base))
        .header(
            "cookie",
            format!("{alice}; _xsrf={forged}; x-csrf-token={forged}; csrf={forged}"),
        )
        .header("x-csrf-token", &forged)
        .json(&json!({"id": "t", "op": "resume", "target": "alice_forecast"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Two session cookies, the planted one first as a browser sends a longer Path first:
    // neither is used, so the victim's request does not run as the attacker (or vice versa).
    for cookies in [format!("{mallory}; {alice}"), format!("{alice}; {mallory}")] {
        let r = c
            .post(format!("{}/user/alice/api/op", d.base))
            .header("cookie", &cookies)
            .header("x-csrf-token", alice_csrf)
            .json(&json!({"id": "t2", "op": "resume", "target": "alice_forecast"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{cookies}");
        assert_eq!(me(d, &cookies).await.0, 401, "{cookies}");
    }
    // The old, unprefixed name is not a session cookie at all.
    let bare_value = alice.split_once('=').unwrap().1;
    assert_eq!(me(d, &format!("steward_session={bare_value}")).await.0, 401);
    assert!(alice.starts_with("__Host-"), "{alice}");
    assert_unchanged(d, &before, "cookie tossing");
}

/// JupyterHub CVE-2024-41942: a user allowed to administer users could grant the admin
/// role, to others or themselves. Steward has no user-administration role and no route
/// that changes who is an admin: the admin list is in the root-owned config only. So
/// the equivalent paths are tried: a non-admin on every admin route, guessed
/// role-granting routes, and an owner's own policy file trying to grant more than the
/// site limit (the "grant what you may not hold" pattern). And an admin gains no
/// workflow rights by being one.
async fn jupyterhub_cve_2024_41942_user_admin_grants_admin(d: &Demo) {
    let (bob, bob_csrf) = login(d, "bob").await;
    let (carl, carl_csrf) = login(d, "carl").await;
    let before = fingerprint(d);
    let c = bare_client(d);
    for (m, path) in [
        ("GET", "/hub/api/admin/servers"),
        ("GET", "/hub/api/admin/sessions"),
        ("POST", "/hub/api/admin/servers/alice/stop"),
        ("POST", "/hub/api/admin/sessions/0000000000000000/revoke"),
    ] {
        let r = c
            .request(m.parse().unwrap(), format!("{}{path}", d.base))
            .header("cookie", &bob)
            .header("x-csrf-token", &bob_csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "bob: {m} {path}");
    }
    for (who, cookie, csrf) in [("bob", &bob, &bob_csrf), ("carl", &carl, &carl_csrf)] {
        for path in [
            "/hub/api/admin/users/bob",
            "/hub/api/admin/admins",
            "/hub/api/users/bob",
            "/hub/api/admin/users/bob/admin",
        ] {
            for m in ["POST", "PUT", "PATCH"] {
                let r = c
                    .request(m.parse().unwrap(), format!("{}{path}", d.base))
                    .header("cookie", cookie.as_str())
                    .header("x-csrf-token", csrf.as_str())
                    .json(&json!({"admin": true, "roles": ["admin"], "scopes": ["admin:users"]}))
                    .send()
                    .await
                    .unwrap();
                assert!(
                    r.status() == 404 || r.status() == 405,
                    "{who}: {m} {path}: {}",
                    r.status()
                );
            }
        }
    }
    assert_eq!(me(d, &bob).await.1["admin"], false);
    // The admin, elevated, still may not pause alice's workflow: admin is not a grant.
    let (carl_x, carl_x_csrf) = elevate(d, &carl, &carl_csrf, "carl").await;
    let before_op = fingerprint(d);
    let (s, v) = op_http(
        d,
        &carl_x,
        &carl_x_csrf,
        "alice",
        "resume",
        "alice_forecast",
    )
    .await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["type"], "denied", "{v}");
    assert_unchanged(d, &before_op, "admin acting on a workflow");
    // bob (steward-ops) holds CONTROL from alice; the site limit forbids clean, and no
    // grant of alice's can lift that.
    let (bob_x, bob_x_csrf) = elevate(d, &bob, &bob_csrf, "bob").await;
    let (s, v) = op_http(d, &bob_x, &bob_x_csrf, "alice", "clean", "alice_forecast").await;
    assert_eq!(s, 403, "{v}");
    let _ = before;
}

/// JupyterHub CVE-2026-33709: `https://HOST//evil.example` reached a redirect whose
/// Location was the path itself, which a browser reads as a scheme-relative URL to
/// evil.example. Steward's only redirects go to the fixed `/hub/`; doubled slashes,
/// backslashes and their encodings reach no redirect at all.
async fn jupyterhub_cve_2026_33709_host_double_slash_redirect(d: &Demo) {
    let c = bare_client(d);
    for p in [
        "//evil.example",
        "//evil.example/",
        "//evil.example/hub",
        "//evil.example/%2e%2e/hub",
        "/hub//evil.example",
        "/hub/..//evil.example",
        "/%2fevil.example",
        "/%2F%2Fevil.example",
        "/\\\\evil.example",
        "///evil.example",
    ] {
        let r = c.get(format!("{}{p}", d.base)).send().await.unwrap();
        if let Some(loc) = r.headers().get("location") {
            assert_eq!(loc, "/hub/", "{p}");
        }
    }
}

/// JupyterHub CVE-2026-40864: the XSRF check was skipped for requests whose
/// `Sec-Fetch-Mode` said `no-cors` (or navigate), which a foreign page can send. Steward
/// never looks at `Sec-Fetch-*`: every state-changing request needs the session's token.
async fn jupyterhub_cve_2026_40864_no_cors_xsrf_skip(d: &Demo, alice: &str) {
    let before = fingerprint(d);
    let c = bare_client(d);
    for (mode, site, dest) in [
        ("no-cors", "cross-site", "empty"),
        ("no-cors", "same-origin", "empty"),
        ("navigate", "same-origin", "document"),
        ("navigate", "none", "document"),
        ("same-origin", "same-origin", "empty"),
        ("websocket", "same-origin", "websocket"),
    ] {
        for (m, path, body) in [
            (
                "POST",
                "/user/alice/api/op",
                json!({"id": "n", "op": "resume", "target": "alice_forecast"}),
            ),
            ("POST", "/hub/api/logout", json!({})),
            ("DELETE", "/hub/api/server", json!({})),
        ] {
            let r = c
                .request(m.parse().unwrap(), format!("{}{path}", d.base))
                .header("cookie", alice)
                .header("sec-fetch-mode", mode)
                .header("sec-fetch-site", site)
                .header("sec-fetch-dest", dest)
                .header("content-type", "text/plain")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{m} {path} as {mode}/{site}");
        }
    }
    assert_unchanged(d, &before, "no-cors XSRF skip");
}

/// JupyterHub CVE-2026-54338: megabyte user names were logged whole, per attempt, which
/// filled disks and memory. Steward checks a name's shape before anything else and
/// records at most 64 characters of it; bodies are capped. The log lines stay short,
/// the hub's memory stays flat, and others keep logging in.
async fn jupyterhub_cve_2026_54338_log_dos_long_user_names(d: &Demo) {
    let c = bare_client(d);
    let rss = || hub_rss_kb(d);
    let rss_before = rss();
    let audit_bytes = || {
        std::fs::metadata(d.data.path().join("audit/audit.jsonl"))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let bytes_before = audit_bytes();
    let name = "a".repeat(60_000);
    for i in 0..40 {
        let r = c
            .post(format!("{}/hub/api/login", d.base))
            .json(&json!({"username": format!("{name}{i}"), "password": "x"}))
            .send()
            .await
            .unwrap();
        assert!(
            r.status() == 401 || r.status() == 429,
            "attempt {i}: {}",
            r.status()
        );
    }
    // A name over the body limit is refused before it is even parsed.
    let r = c
        .post(format!("{}/hub/api/login", d.base))
        .json(&json!({"username": "b".repeat(2 * 1024 * 1024), "password": "x"}))
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
    let grown = audit_bytes() - bytes_before;
    assert!(
        grown < 40 * 2_000,
        "40 refused logins wrote {grown} bytes of audit log"
    );
    for line in d.human_audit().lines() {
        assert!(
            line.len() < 2_000,
            "human audit line of {} bytes",
            line.len()
        );
    }
    for r in d.audit_records() {
        assert!(
            r["actor"].as_str().unwrap_or("").len() <= 64,
            "actor recorded whole"
        );
    }
    if let (Some(a), Some(b)) = (rss_before, rss()) {
        assert!(
            b < a + 64 * 1024,
            "hub RSS grew from {a} kB to {b} kB on refused logins"
        );
    }
    // Over-long names share one bucket (the first 64 characters), so the flood cost
    // this address five failures, not forty: alice still logs in from it.
    let (_c, _) = d.login("alice").await;
}

/// Resident memory of the hub process, from /proc.
fn hub_rss_kb(d: &Demo) -> Option<u64> {
    let pid = d.proc.as_ref()?.child.id();
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// JupyterHub CVE-2026-108752: user `alice-prod` and user `alice`'s server `prod` were
/// encoded to the same name (pod, volume, URL), so one reached the other's resources.
/// Every place Steward encodes an owner and a server keeps them apart: cgroup and log
/// paths (`<user>/<server>`, `/` never in a name), the UI server's TLS name
/// (`<server>.<owner>.uiserver.steward`, `.` never in a user name), the JWT audience
/// (`uiserver:<owner>`), the store's (owner, server) key. A real `alice-prod` logs in and
/// starts her server; it lands apart from alice's and cannot act on alice's workflows.
async fn jupyterhub_cve_2026_108752_name_collisions(d: &Demo) {
    use steward_protocol::bootstrap::uiserver_dns_name;
    use steward_protocol::claims::audience_for;
    assert_ne!(
        uiserver_dns_name("alice-prod", "default"),
        uiserver_dns_name("alice", "prod")
    );
    assert_ne!(audience_for("alice-prod"), audience_for("alice"));
    // The grammar that makes the encodings injective: no separator in a user name.
    for bad in [
        "alice/prod",
        "alice.prod",
        "alice:prod",
        "../alice",
        "alice prod",
    ] {
        assert!(!steward_protocol::ids::validate_user_name(bad), "{bad}");
    }
    let w = steward_protocol::WorkflowId::parse("~alice-prod/x", "bob").unwrap();
    assert_eq!((w.owner.as_str(), w.name.as_str()), ("alice-prod", "x"));
    let w = steward_protocol::WorkflowId::parse("~alice/prod", "bob").unwrap();
    assert_eq!((w.owner.as_str(), w.name.as_str()), ("alice", "prod"));

    // At run time: alice-prod's server sits in its own cgroup and log, and alice's
    // server is untouched.
    ensure_user("alice-prod", "alice-prod-pw-7Qx");
    let (carl, _) = login(d, "carl").await;
    let servers = || async {
        let v: Value = bare_client(d)
            .get(format!("{}/hub/api/admin/servers", d.base))
            .header("cookie", &carl)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["servers"].as_array().cloned().unwrap_or_default()
    };
    let alice_before = servers()
        .await
        .into_iter()
        .find(|s| s["owner"] == "alice")
        .expect("alice's server");
    let (ap, ap_csrf) = login_cookie(&d.base, &d.ca(), "alice-prod", "alice-prod-pw-7Qx").await;
    let mut mine = None;
    for _ in 0..150 {
        mine = servers()
            .await
            .into_iter()
            .find(|s| s["owner"] == "alice-prod");
        if mine.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mine = mine.expect("alice-prod's server started at login");
    let alice_after = servers()
        .await
        .into_iter()
        .find(|s| s["owner"] == "alice")
        .unwrap();
    assert_eq!(alice_before["pid"], alice_after["pid"]);
    assert_ne!(mine["cgroup"], alice_after["cgroup"]);
    assert!(
        mine["cgroup"].as_str().unwrap().contains("/alice-prod/"),
        "{mine}"
    );
    assert_ne!(mine["port"], alice_after["port"]);
    let logs = d.data.path().join("logs");
    assert!(logs.join("alice-prod").is_dir() && logs.join("alice").is_dir());
    // alice-prod is not alice: no control of alice's workflows, even elevated.
    let before = fingerprint(d);
    let (ap_x, ap_x_csrf) = elevate_with_password(d, &ap, &ap_csrf, "alice-prod-pw-7Qx").await;
    let before_op = fingerprint(d);
    for target in ["alice_forecast", "~alice/alice_forecast"] {
        let (s, v) = op_http(d, &ap_x, &ap_x_csrf, "alice", "resume", target).await;
        assert_eq!(s, 403, "{target}: {v}");
    }
    // Her own owner path with alice's workflow named in the target: refused as foreign.
    let (s, v) = op_http(
        d,
        &ap_x,
        &ap_x_csrf,
        "alice-prod",
        "resume",
        "~alice/alice_forecast",
    )
    .await;
    assert!(s == 400 || s == 403, "{s}: {v}");
    assert_unchanged(d, &before_op, "name collision");
    let _ = before;
}

/// JupyterHub CVE-2026-40110: the allowed-origin pattern was not anchored, so
/// `https://hub.example.evil.example` (or the hub's origin inside a longer string)
/// matched. Steward compares the whole Origin with the configured public origin.
async fn jupyterhub_cve_2026_40110_unanchored_origin(d: &Demo, alice: &str) {
    let before = fingerprint(d);
    let url = format!("wss://127.0.0.1:{}/user/alice/ws", d.port);
    let o = &d.base;
    let candidates = [
        format!("{o}.evil.example"),
        format!("{o}evil.example"),
        format!("{o}0"),
        format!("https://evil.example/{o}"),
        format!("https://evil.example?{o}"),
        format!("https://x{}", o.trim_start_matches("https://")),
        format!("{o}/../evil.example"),
        format!("{o}@evil.example"),
        format!("{o}#evil"),
        format!("{o}:443"),
    ];
    for origin in &candidates {
        let status = ws_refusal(ws_connect(&d.ca(), &url, Some(origin), alice).await);
        assert_eq!(status, 403, "WebSocket Origin {origin:?}");
        let r = bare_client(d)
            .post(format!("{}/hub/api/login", d.base))
            .header("origin", origin.as_str())
            .json(&json!({"username": "bob", "password": d.password("bob")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "login Origin {origin:?}");
    }
    assert_unchanged(d, &before, "unanchored origin");
}

/// jupyter-server-proxy CVE-2024-28179: WebSocket upgrades to proxied services skipped
/// authentication. Steward authenticates the upgrade itself (cookie, then the reader's
/// right to read the owner's workflows) before any byte reaches the UI server, and the
/// UI server refuses an upgrade without a hub-signed token (see attack_uiserver.rs).
async fn jupyter_server_proxy_cve_2024_28179_ws_upgrade_auth(d: &Demo) {
    let (bob, _) = login(d, "bob").await;
    let before = fingerprint(d);
    let url = format!("wss://127.0.0.1:{}/user/alice/ws", d.port);
    for cookie in [
        "",
        "__Host-steward_session=",
        "__Host-steward_session=00",
        &format!("__Host-steward_session={}", "a".repeat(64)),
    ] {
        let status = ws_refusal(ws_connect(&d.ca(), &url, Some(&d.base), cookie).await);
        assert_eq!(status, 401, "{cookie:?}");
    }
    // Upgrade headers on the read-only proxy routes do not bypass the session check.
    let c = bare_client(d);
    for path in [
        "/user/alice/api/ws",
        "/user/alice/api/summary",
        "/user/alice/api/log",
    ] {
        let r = c
            .get(format!("{}{path}", d.base))
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("origin", &d.base)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    // No such owner: refused before anything starts.
    let url = format!("wss://127.0.0.1:{}/user/nosuchowner/ws", d.port);
    assert_eq!(
        ws_refusal(ws_connect(&d.ca(), &url, Some(&d.base), &bob).await),
        404
    );
    assert_unchanged(d, &before, "WebSocket upgrade without auth");
}

/// sudo-rs CVE-2023-42456: a user name with `../` became part of a timestamp file path,
/// letting a user create or delete files elsewhere. Steward keys elevation by the
/// session id's hash in its database, never by a path built from a name; names with
/// `/`, `..` or NUL are refused at login with the generic answer, and no file appears.
async fn sudo_rs_cve_2023_42456_names_as_paths(d: &Demo) {
    let listing = || {
        let mut v: Vec<String> = walk(d.data.path());
        v.retain(|p| !p.contains("/audit/") && !p.ends_with("-wal") && !p.ends_with("-shm"));
        v.sort();
        v
    };
    let files_before = listing();
    let before = fingerprint(d);
    for name in [
        "../../../../tmp/steward-pwn",
        "alice/../bob",
        "..",
        "alice\0",
        "/etc/shadow",
        "alice/",
        "~alice",
    ] {
        let r = bare_client(d)
            .post(format!("{}/hub/api/login", d.base))
            .json(&json!({"username": name, "password": "x"}))
            .send()
            .await
            .unwrap();
        assert!(r.status() == 401 || r.status() == 429, "{name:?}");
    }
    assert!(!std::path::Path::new("/tmp/steward-pwn").exists());
    assert_eq!(files_before, listing(), "a login attempt created files");
    assert_unchanged(d, &before, "names as paths");
}

fn walk(p: &std::path::Path) -> Vec<String> {
    let mut out = vec![];
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let path = e.path();
        out.push(path.display().to_string());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&path));
        }
    }
    out
}

/// sudo-rs GHSA-c978-wq47-pvvw: cached credentials applied more widely than the
/// authentication that created them (keyed too coarsely). Steward's elevation is a
/// property of one session: the same person's other session stays read-only, another
/// person gains nothing, and the elevated session's id dies with a drop or logout.
async fn sudo_rs_ghsa_c978_wq47_pvvw_elevation_scope(d: &Demo) {
    let (b1, b1_csrf) = login(d, "bob").await;
    let (b2, b2_csrf) = login(d, "bob").await;
    let (bx, _bx_csrf) = elevate(d, &b1, &b1_csrf, "bob").await;
    assert_eq!(me(d, &bx).await.1["class"], "execute");
    assert_eq!(me(d, &b2).await.1["class"], "read", "elevation leaked");
    let (carl, carl_csrf) = login(d, "carl").await;
    assert_eq!(me(d, &carl).await.1["class"], "read");
    let before = fingerprint(d);
    let (s, v) = op_http(d, &b2, &b2_csrf, "alice", "resume", "alice_forecast").await;
    assert_eq!(s, 403, "bob's other session acted: {v}");
    assert!(v["reason"].as_str().unwrap_or("").contains("raise"), "{v}");
    let (s, _) = op_http(d, &carl, &carl_csrf, "alice", "resume", "alice_forecast").await;
    assert_eq!(s, 403);
    // A token minted from bob's read session is read-only whatever bob's other session holds.
    let body = json!({"name": "t", "class": "execute", "expires_in_secs": 60});
    let r = send_as(d, "POST", "/hub/api/tokens", &b2, &b2_csrf, Some(body)).await;
    assert_eq!(r.status(), 403);
    assert_unchanged(d, &before, "elevation scope");

    // The uid half: a session belongs to the account that logged in, not to whoever
    // holds the name next (the name deleted, or given to another uid).
    let name = "steward-atk3";
    let pw = "atk3-Password-9";
    let _ = sh(&format!("userdel -f {name} 2>/dev/null; true"));
    let refused = |c: String| async move {
        for _ in 0..50 {
            if me(d, &c).await.0 == 401 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    };
    let first = ensure_user(name, pw).uid.as_raw();
    let (session, _) = login_cookie(&d.base, &d.ca(), name, pw).await;
    assert_eq!(me(d, &session).await.0, 200);
    sh(&format!("userdel -f {name}"));
    assert!(
        refused(session).await,
        "a session outlived its deleted account"
    );
    let free_uid = |from: u32| {
        (from..)
            .find(|u| matches!(nix::unistd::User::from_uid((*u).into()), Ok(None)))
            .unwrap()
    };
    let second = free_uid(first + 7919);
    sh(&format!(
        "useradd -M -u {second} {name} && echo {name}:{pw} | chpasswd"
    ));
    let (session, csrf) = login_cookie(&d.base, &d.ca(), name, pw).await;
    assert_eq!(me(d, &session).await.0, 200);
    // An API token is bound to the account too.
    let body = json!({"name": "t", "class": "read", "expires_in_secs": 600});
    let r = send_as(d, "POST", "/hub/api/tokens", &session, &csrf, Some(body)).await;
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let by_token = |t: String| async move {
        bare_client(d)
            .get(format!("{}/hub/api/me", d.base))
            .bearer_auth(t)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(by_token(token.clone()).await, 200);
    let third = free_uid(second + 1);
    sh(&format!("userdel -f {name}; useradd -M -u {third} {name}"));
    assert!(
        refused(session).await,
        "a session passed to another account: it logged in as uid {second}, the name is now {third}"
    );
    assert_eq!(
        by_token(token).await,
        401,
        "an API token passed to another account"
    );
    sh(&format!("userdel -f {name}"));
}
