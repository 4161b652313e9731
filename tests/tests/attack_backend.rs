//! Attack suite, behind the hub: forged JWTs and client certificates straight at a
//! real UI server, path traversal in ids, log paths and static files, symlinks an
//! owner plants in their own directories, the privileged helper asked for what it must
//! refuse, and another local Unix user going for the UI server's port and the hub's
//! files — against one `steward demo` hub. See docs/security-attacks.md.

// The demo lock is held for the whole test, across awaits, on purpose.
#![allow(clippy::await_holding_lock)]

mod attack;

use attack::*;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use steward_e2e::*;

/// A local account that is neither a demo user nor the hub: the "other local user".
const OTHER: &str = "steward-atk1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_attacks() {
    if !require_root("backend_attacks") {
        return;
    }
    let _l = demo_lock();
    let d = Demo::start();
    let (alice, alice_csrf) = paused_forecast(&d).await;
    let ui = alice_server(&d).await;
    let mut s = Suite::new();
    s.run(
        "jwt_straight_at_the_ui_server",
        jwt_straight_at_the_ui_server(&d, &ui),
    )
    .await;
    s.run(
        "client_certificates_at_the_ui_server",
        client_certificates_at_the_ui_server(&d, &ui),
    )
    .await;
    s.run(
        "path_traversal_in_ids_and_log_paths",
        path_traversal_in_ids_and_log_paths(&d, &alice, &alice_csrf),
    )
    .await;
    s.run("static_file_traversal", static_file_traversal(&d))
        .await;
    s.run("owner_planted_symlinks", owner_planted_symlinks(&d, &alice))
        .await;
    s.run(
        "operation_smuggling_over_the_relay",
        operation_smuggling_over_the_relay(&d),
    )
    .await;
    s.run(
        "owner_controlled_content_is_inert",
        owner_controlled_content_is_inert(&d, &alice),
    )
    .await;
    s.run("helper_refuses_privilege", async {
        helper_refuses_privilege(&d)
    })
    .await;
    s.run(
        "registration_needs_a_pending_start",
        registration_needs_a_pending_start(&d),
    )
    .await;
    s.run("other_local_user_on_port_and_files", async {
        other_local_user_on_port_and_files(&d, &ui)
    })
    .await;
    s.finish();
}

/// Alice's running UI server as the hub sees it: (port, TLS name).
struct Ui {
    port: u16,
    dns: String,
    pid: u32,
}

async fn alice_server(d: &Demo) -> Ui {
    let (carl, _) = login(d, "carl").await;
    let v: Value = bare_client(d)
        .get(format!("{}/hub/api/admin/servers", d.base))
        .header("cookie", &carl)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["owner"] == "alice")
        .expect("alice's server")
        .clone();
    Ui {
        port: s["port"].as_u64().unwrap() as u16,
        pid: s["pid"].as_u64().unwrap() as u32,
        dns: steward_protocol::bootstrap::uiserver_dns_name("alice", s["server"].as_str().unwrap()),
    }
}

/// A client presenting `tls`'s identity (or none) to alice's UI server.
fn ui_client(ui: &Ui, tls: rustls::ClientConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .resolve(
            &ui.dns,
            std::net::SocketAddr::from(([127, 0, 0, 1], ui.port)),
        )
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The hub's own client identity (the test reads the CA key as root, which an attacker
/// cannot): it gets past mutual TLS, so only the token decides.
fn hub_identity(d: &Demo) -> rustls::ClientConfig {
    let ca = steward_hub::pki::ca::Ca::load_or_create(&d.data.path().join("state")).unwrap();
    (*ca.client_config().unwrap()).clone()
}

/// The hub's internal (registration) listener, from its ready line.
fn internal_addr(d: &Demo) -> String {
    let ready = d
        .proc
        .as_ref()
        .unwrap()
        .stdout_lines
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("ready on"))
        .cloned()
        .unwrap();
    ready
        .split("(internal ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("internal address in the ready line")
        .to_string()
}

/// A compromised UI server holds a client certificate from the hub's CA, so it gets past
/// the internal listener's mutual TLS (the hub's own identity stands in for it here). It
/// still cannot register a server for another owner, or one nobody started: every
/// registration must carry the one-time token of a start the hub has pending.
async fn registration_needs_a_pending_start(d: &Demo) {
    use steward_protocol::bootstrap::HUB_INTERNAL_NAME;
    let before = fingerprint(d);
    let internal: std::net::SocketAddr = internal_addr(d).parse().unwrap();
    let c = reqwest::Client::builder()
        .use_preconfigured_tls(hub_identity(d))
        .resolve(HUB_INTERNAL_NAME, internal)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!(
        "https://{HUB_INTERNAL_NAME}:{}/internal/register",
        internal.port()
    );
    let forged = |owner: &str, token: &str| {
        json!({"owner": owner, "server": "default", "pid": 1, "register_token": token,
               "endpoint": {"kind": "tcp", "host": "127.0.0.1", "port": 1}})
    };
    for (what, body, want) in [
        (
            "bob's server, a made-up token",
            forged("bob", &"0".repeat(64)),
            403,
        ),
        ("alice's server, an empty token", forged("alice", ""), 403),
        ("not a registration at all", json!({"owner": "bob"}), 400),
    ] {
        let r = c.post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), want, "{what}");
    }
    assert_unchanged(d, &before, "forged registrations");
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(owner: &str, ops: &[&str]) -> Value {
    let t = now();
    json!({"iss": "steward-hub", "aud": format!("uiserver:{owner}"), "sub": "mallory",
           "iat": t, "nbf": t - 5, "exp": t + 30,
           "jti": format!("atk-{}", rand::random::<u64>()), "ops": ops, "rid": "attack"})
}

fn sign(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let mut t = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = key.sign(t.as_bytes());
    t.push('.');
    t.push_str(&b64(&sig.to_bytes()));
    t
}

fn eddsa() -> Value {
    json!({"alg": "EdDSA", "typ": "JWT"})
}

/// Every forgery of the per-request token, with the hub's genuine client certificate so
/// that only the token is judged: `alg: none`, HS256 keyed with the hub's public key,
/// wrong aud/iss, expired, future nbf, an over-long lifetime, a replayed jti, a token
/// for another owner, a token from another hub's key, a read token used for an
/// operation. Each is refused (401/403) and alice's workflow stays paused.
async fn jwt_straight_at_the_ui_server(d: &Demo, ui: &Ui) {
    let signer = steward_hub::pki::jwt::TokenSigner::load_or_create(
        &d.data.path().join("state/jwt-ed25519.der"),
    )
    .unwrap();
    let hub_key = signer.signing_key.clone();
    let other_hub = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let c = ui_client(ui, hub_identity(d));
    let summary = format!("https://{}:{}/api/summary", ui.dns, ui.port);
    let op_url = format!("https://{}:{}/api/op", ui.dns, ui.port);

    // The genuine article works, so the refusals below are about the token.
    let good = sign(&hub_key, &eddsa(), &claims("alice", &["read"]));
    let r = c.get(&summary).bearer_auth(&good).send().await.unwrap();
    assert_eq!(r.status(), 200, "a genuine token must be accepted");
    let before = fingerprint(d);

    let read = claims("alice", &["read"]);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims("alice", &["read"]);
        f(&mut c);
        c
    };
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(read.to_string().as_bytes())
    );
    // Built by hand: Steward's jsonwebtoken provider offers no HMAC at all.
    let hs256 = {
        use hmac::Mac;
        let signed = format!(
            "{}.{}",
            b64(br#"{"typ":"JWT","alg":"HS256"}"#),
            b64(read.to_string().as_bytes())
        );
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(signer.public_pem.as_bytes()).unwrap();
        mac.update(signed.as_bytes());
        format!("{signed}.{}", b64(&mac.finalize().into_bytes()))
    };
    let forged: Vec<(&str, String)> = vec![
        ("alg none", none),
        (
            "alg none, signature kept",
            sign(&hub_key, &json!({"alg": "none"}), &read),
        ),
        ("HS256 keyed with the public key", hs256),
        (
            "wrong aud",
            sign(
                &hub_key,
                &eddsa(),
                &with(&|c| c["aud"] = json!("uiserver:*")),
            ),
        ),
        (
            "aud as a list",
            sign(
                &hub_key,
                &eddsa(),
                &with(&|c| c["aud"] = json!(["uiserver:bob", "uiserver:alice"])),
            ),
        ),
        (
            "wrong iss",
            sign(
                &hub_key,
                &eddsa(),
                &with(&|c| c["iss"] = json!("steward-hub2")),
            ),
        ),
        (
            "expired",
            sign(
                &hub_key,
                &eddsa(),
                &with(&|c| {
                    c["iat"] = json!(now() - 120);
                    c["nbf"] = json!(now() - 120);
                    c["exp"] = json!(now() - 90);
                }),
            ),
        ),
        (
            "future nbf",
            sign(
                &hub_key,
                &eddsa(),
                &with(&|c| {
                    c["nbf"] = json!(now() + 600);
                    c["exp"] = json!(now() + 630);
                }),
            ),
        ),
        (
            "hour-long lifetime",
            sign(
                &hub_key,
                &eddsa(),
                &with(&|c| c["exp"] = json!(now() + 3600)),
            ),
        ),
        (
            "no exp",
            sign(
                &hub_key,
                &eddsa(),
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
            ),
        ),
        (
            "for another owner",
            sign(&hub_key, &eddsa(), &claims("bob", &["read"])),
        ),
        (
            "another hub's key",
            sign(&other_hub, &eddsa(), &claims("alice", &["read"])),
        ),
        ("signature of another token", {
            let other = sign(&hub_key, &eddsa(), &with(&|c| c["sub"] = json!("root")));
            let (header_body, _) = other.rsplit_once('.').unwrap();
            format!("{header_body}.{}", good.rsplit_once('.').unwrap().1)
        }),
        ("empty", String::new()),
        ("garbage", "a.b.c".into()),
    ];
    for (what, token) in &forged {
        let r = c.get(&summary).bearer_auth(token).send().await.unwrap();
        assert!(
            r.status() == 401 || r.status() == 403,
            "{what}: {}",
            r.status()
        );
    }
    // Replay: the genuine token was used once above.
    let r = c.get(&summary).bearer_auth(&good).send().await.unwrap();
    assert_eq!(r.status(), 401, "replayed jti");
    // Operations: a read token, another owner's resume token, an expired resume token.
    let body = json!({"id": "atk", "op": "resume", "target": "alice_forecast"});
    for (what, token) in [
        (
            "read token for an op",
            sign(&hub_key, &eddsa(), &claims("alice", &["read"])),
        ),
        (
            "bob's resume token",
            sign(&hub_key, &eddsa(), &claims("bob", &["resume"])),
        ),
        (
            "another hub's resume token",
            sign(&other_hub, &eddsa(), &claims("alice", &["resume"])),
        ),
        (
            "resume token for another workflow",
            sign(&hub_key, &eddsa(), &{
                let mut c = claims("alice", &["resume"]);
                c["workflow"] = json!("housekeeping");
                c
            }),
        ),
    ] {
        let r = c
            .post(&op_url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            r.status() == 401 || r.status() == 403,
            "{what}: {}",
            r.status()
        );
    }
    // The WebSocket upgrade needs a token too.
    let r = c
        .get(format!("https://{}:{}/ws", ui.dns, ui.port))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "WebSocket upgrade without a token");
    assert_unchanged(d, &before, "forged JWT");
}

/// Without the hub's client certificate no request reaches the UI server at all: no
/// certificate, a self-made CA's certificate named like the hub, the public hub
/// certificate's CA. The handshake fails before any token is read.
async fn client_certificates_at_the_ui_server(d: &Demo, ui: &Ui) {
    let before = fingerprint(d);
    let hub_ca_pem = std::fs::read_to_string(d.data.path().join("state/ca.crt")).unwrap();
    let roots = {
        let mut r = rustls::RootCertStore::empty();
        r.add(rustls_pki_types::CertificateDer::from(
            steward_hub::pki::ca::pem_to_der(&hub_ca_pem).unwrap(),
        ))
        .unwrap();
        r
    };
    let builder = || {
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
    };
    // A self-made CA and a leaf that claims to be the hub.
    let self_made = {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Steward hub internal CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["steward-hub.internal".into()]).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "steward-hub");
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &issuer).unwrap();
        builder()
            .with_client_auth_cert(
                vec![cert.der().clone()],
                rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap()
    };
    let signer = steward_hub::pki::jwt::TokenSigner::load_or_create(
        &d.data.path().join("state/jwt-ed25519.der"),
    )
    .unwrap();
    for (what, tls) in [
        ("no client certificate", builder().with_no_client_auth()),
        ("a self-made client certificate", self_made),
    ] {
        let token = sign(&signer.signing_key, &eddsa(), &claims("alice", &["read"]));
        let r = ui_client(ui, tls)
            .get(format!("https://{}:{}/api/summary", ui.dns, ui.port))
            .bearer_auth(token)
            .send()
            .await;
        assert!(r.is_err(), "{what}: got {:?}", r.map(|r| r.status()));
    }
    assert_unchanged(d, &before, "client certificates");
}

/// `..`, encoded and Unicode look-alikes in workflow ids, task ids, cycle points, job
/// numbers and log file names — through the hub's HTTP proxy, its WebSocket relay and
/// its operation route, and with a genuine token straight at the UI server. Refused
/// with 400/403/404, never a file's content.
async fn path_traversal_in_ids_and_log_paths(d: &Demo, alice: &str, alice_csrf: &str) {
    let before = fingerprint(d);
    let c = bare_client(d);
    let bad = [
        "..",
        "../..",
        "../../../../etc",
        "%2e%2e",
        "%2e%2e%2f%2e%2e",
        "..%2f..%2fetc",
        "%252e%252e",
        "\u{2025}",
        "\u{ff0e}\u{ff0e}",
        "%c0%ae%c0%ae",
        "alice_forecast/../../..",
        "alice_forecast/..",
        ".hidden",
        "/etc",
        "~bob/bob_forecast",
        "a\u{0}b",
    ];
    let enc = |s: &str| s.replace('\u{0}', "%00");
    let leaked = |body: &str| body.contains("root:") || body.contains("[tasks.");
    for b in bad {
        for q in [
            format!("workflow={}&cycle=1&task=fetch_obs&job=1", enc(b)),
            format!(
                "workflow=alice_forecast&cycle={}&task=fetch_obs&job=1",
                enc(b)
            ),
            format!("workflow=alice_forecast&cycle=1&task={}&job=1", enc(b)),
            format!(
                "workflow=alice_forecast&cycle=1&task=fetch_obs&job={}",
                enc(b)
            ),
            format!(
                "workflow=alice_forecast&cycle=1&task=fetch_obs&job=1&file={}",
                enc(b)
            ),
        ] {
            for api in ["log", "search", "workflow"] {
                let r = c
                    .get(format!("{}/user/alice/api/{api}?{q}&q=root", d.base))
                    .header("cookie", alice)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                assert!(
                    [400, 403, 404].contains(&status) || !leaked(&body),
                    "{api}?{q}: {status} {body}"
                );
                if status == 200 {
                    assert!(!leaked(&body), "{api}?{q}: {body}");
                }
            }
        }
        // As an operation target, over HTTP and as a task id.
        for target in [
            b.to_string(),
            format!("alice_forecast//{b}/fetch_obs"),
            format!("alice_forecast//1/{b}"),
        ] {
            let (s, v) = op_http(d, alice, alice_csrf, "alice", "hold", &target).await;
            assert!(s == 400 || s == 403 || s == 404, "{target:?}: {s} {v}");
        }
    }
    // Over the WebSocket relay: ops and log tails with hostile ids.
    let mut ws = relay(d, "alice", alice).await;
    for (i, b) in [
        "..",
        "../../etc",
        "alice_forecast/..",
        "\u{2025}",
        "~bob/bob_forecast",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("p{i}");
        ws_send(
            &mut ws,
            json!({"type": "op", "id": id, "op": "hold", "target": format!("{b}//1/x")}),
        )
        .await;
        let v = ws_until(&mut ws, Duration::from_secs(10), |v| v["id"] == id).await;
        assert!(v["type"] == "error" || v["type"] == "denied", "{b}: {v}");
        let tid = format!("t{i}");
        ws_send(
            &mut ws,
            json!({"type": "tail", "id": tid, "workflow": b, "cycle": "1", "task": "fetch_obs"}),
        )
        .await;
        let v = ws_until(&mut ws, Duration::from_secs(10), |v| v["id"] == tid).await;
        assert_eq!(v["type"], "error", "tail {b}: {v}");
    }
    drop(ws);
    // Dot segments in the proxied path, sent raw (clients would remove them): the hub
    // forwards below the UI server's /api/ only. (Before the fix these reached the UI
    // server's /ws handler with a read token.)
    for p in [
        "/user/alice/api/../ws?workflow=alice_forecast",
        "/user/alice/api/../../ws?workflow=alice_forecast",
        "/user/alice/api/%2e%2e/ws?workflow=alice_forecast",
        "/user/alice/api/.%2e/ws?workflow=alice_forecast",
        "/user/alice/api//ws?workflow=alice_forecast",
    ] {
        let answer = raw_get(d, p, alice);
        let status = answer.split_whitespace().nth(1).unwrap_or("").to_string();
        // Refused by the hub itself (its JSON error), not by the UI server's /ws.
        assert_eq!(status, "400", "{p}: {answer}");
        assert!(
            answer.contains("segments are not forwarded"),
            "{p}: {answer}"
        );
    }
    assert_unchanged(d, &before, "path traversal");
}

/// A GET sent byte for byte (no client-side path normalisation); returns the answer.
fn raw_get(d: &Demo, path: &str, cookie: &str) -> String {
    use std::io::{Read, Write};
    let cfg = Arc::new(tls_config(&d.ca()));
    let conn = rustls::ClientConnection::new(cfg, "127.0.0.1".try_into().unwrap()).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n",
        d.port
    )
    .unwrap();
    let mut out = vec![];
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The embedded UI files: no traversal, encoded or not, reaches the disk.
async fn static_file_traversal(d: &Demo) {
    let c = bare_client(d);
    for p in [
        "/hub/static/..%2F..%2F..%2Fetc%2Fpasswd",
        "/hub/static/%2e%2e/%2e%2e/etc/passwd",
        "/hub/static/..%5C..%5Cetc%5Cpasswd",
        "/hub/static/%252e%252e%252fsrc%252fui.rs",
        "/hub/static/%c0%ae%c0%ae%c0%af",
        "/hub/static/\u{2025}/etc/passwd",
        "/hub/static/app.js%00.html",
        "/hub/static/",
        "/hub/static/.",
        "/hub/%2e%2e/hub/static/app.js",
        "/hub/../../../../etc/passwd",
        "/hub/static/../../Cargo.toml",
    ] {
        let r = c.get(format!("{}{p}", d.base)).send().await.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert!(
            !body.contains("root:") && !body.contains("[package]") && !body.contains("fn "),
            "{p}: {status}: {}",
            &body[..body.len().min(200)]
        );
        assert!(
            status == 404 || status == 400 || (status == 200 && !body.is_empty()),
            "{p}: {status}"
        );
    }
}

/// The owner plants symlinks in their own run and workflow directories pointing at
/// another user's private file and at /etc/shadow. The UI server (running as the
/// owner) refuses to follow them out of the run directory, and nothing root can read
/// but the owner cannot ever comes back through the hub.
async fn owner_planted_symlinks(d: &Demo, alice: &str) {
    let alice_u = nix::unistd::User::from_name("alice").unwrap().unwrap();
    let bob_u = nix::unistd::User::from_name("bob").unwrap().unwrap();
    let secret = bob_u.dir.join("attack-secret.txt");
    std::fs::write(&secret, "BOBS-SECRET\n").unwrap();
    sh(&format!("chown bob {0}; chmod 600 {0}", secret.display()));
    let run = alice_u.dir.join(".steward/run/alice_forecast");
    let jobs = run.join("log/job/1/fetch_obs");
    std::fs::create_dir_all(&jobs).unwrap();
    // job 07: its job.out is a link to /etc/shadow; job 08 is a link to bob's home;
    // job 09's job.err to bob's secret.
    let j7 = jobs.join("07");
    std::fs::create_dir_all(&j7).unwrap();
    let _ = std::fs::remove_file(j7.join("job.out"));
    std::os::unix::fs::symlink("/etc/shadow", j7.join("job.out")).unwrap();
    let _ = std::fs::remove_file(jobs.join("08"));
    std::os::unix::fs::symlink(&bob_u.dir, jobs.join("08")).unwrap();
    let j9 = jobs.join("09");
    std::fs::create_dir_all(&j9).unwrap();
    let _ = std::fs::remove_file(j9.join("job.err"));
    std::os::unix::fs::symlink(&secret, j9.join("job.err")).unwrap();
    // A workflow whose definition is /etc/shadow, one that is bob's secret.
    let wfs = alice_u.dir.join(".steward/workflows");
    for (name, target) in [
        ("atk_shadow", Path::new("/etc/shadow")),
        ("atk_bob", secret.as_path()),
    ] {
        let dir = wfs.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join("flow.toml"));
        std::os::unix::fs::symlink(target, dir.join("flow.toml")).unwrap();
    }
    sh(&format!(
        "chown -hR alice {} {}/atk_shadow {}/atk_bob",
        run.join("log").display(),
        wfs.display(),
        wfs.display()
    ));
    let before = fingerprint(d);
    let c = bare_client(d);
    let leaked = |b: &str| {
        b.contains("root:") || b.contains("BOBS-SECRET") || b.contains("$y$") || b.contains("$6$")
    };
    for q in [
        "workflow=alice_forecast&cycle=1&task=fetch_obs&job=7",
        "workflow=alice_forecast&cycle=1&task=fetch_obs&job=8",
        "workflow=alice_forecast&cycle=1&task=fetch_obs&job=8&file=err",
        "workflow=alice_forecast&cycle=1&task=fetch_obs&job=9&file=err",
    ] {
        let r = c
            .get(format!("{}/user/alice/api/log?{q}", d.base))
            .header("cookie", alice)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert!(!leaked(&body), "{q}: {body}");
        assert!(status == 403 || status == 404, "{q}: {status} {body}");
    }
    for q in [
        "workflow=alice_forecast&q=root&regex=false",
        "workflow=alice_forecast&q=BOBS&regex=false",
    ] {
        let r = c
            .get(format!("{}/user/alice/api/search?{q}", d.base))
            .header("cookie", alice)
            .send()
            .await
            .unwrap();
        let body = r.text().await.unwrap();
        assert!(!leaked(&body), "search {q}: {body}");
    }
    for wf in ["atk_shadow", "atk_bob"] {
        let r = c
            .get(format!("{}/user/alice/api/workflow?workflow={wf}", d.base))
            .header("cookie", alice)
            .send()
            .await
            .unwrap();
        let body = r.text().await.unwrap();
        assert!(!leaked(&body), "{wf}: {body}");
    }
    let r = c
        .get(format!("{}/hub/api/overview", d.base))
        .header("cookie", alice)
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(!leaked(&body), "overview: {body}");
    for name in ["atk_shadow", "atk_bob"] {
        let _ = std::fs::remove_dir_all(wfs.join(name));
    }
    for j in ["07", "08", "09"] {
        let p = jobs.join(j);
        let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir_all(&p));
    }
    let _ = std::fs::remove_file(&secret);
    assert_unchanged(d, &before, "planted symlinks");
}

/// bob (read-only) hides an operation inside the messages the relay forwards without
/// a decision — log tails and pings — with duplicate `type` keys (which one wins
/// depends on the parser), a `\u0074ype` escape, or a token of his own. The hub's
/// decision is not bypassed: nothing is done to alice's workflow and no operation is
/// recorded as allowed.
async fn operation_smuggling_over_the_relay(d: &Demo) {
    let (bob, _) = login(d, "bob").await;
    let before = fingerprint(d);
    let mut ws = relay(d, "alice", &bob).await;
    let op = r#""id":"s","op":"resume","target":"alice_forecast""#;
    let smuggled = [
        format!(
            r#"{{"type":"op",{op},"type":"tail","workflow":"alice_forecast","cycle":"1","task":"fetch_obs"}}"#
        ),
        format!(
            r#"{{"type":"tail","workflow":"alice_forecast","cycle":"1","task":"fetch_obs","type":"op",{op}}}"#
        ),
        format!(r#"{{"type":"ping","type":"op",{op}}}"#),
        format!(r#"{{"type":"ping","t":1,"type":"op",{op}}}"#),
        format!(r#"{{"type":"op","type":"ping",{op}}}"#),
        format!(r#"{{"type":"op",{op},"token":"forged"}}"#),
        format!(r#"{{"type":"untail",{op},"type":"op"}}"#),
    ];
    for m in &smuggled {
        use futures_util::SinkExt;
        ws.send(tokio_tungstenite::tungstenite::Message::text(m.clone()))
            .await
            .unwrap();
    }
    // Give the UI server time to act on anything that got through, then look.
    ws_send(&mut ws, json!({"type": "ping", "data": "after"})).await;
    let mut seen = vec![];
    let mut deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(Ok(msg))) =
        tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut ws)).await
    {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
            if v["type"] == "result" {
                seen.push(v);
            } else if v["type"] == "pong" && v["data"] == "after" {
                // Everything sent before has been read; operations run concurrently, so
                // allow a moment for their answers.
                deadline = deadline.min(tokio::time::Instant::now() + Duration::from_secs(1));
            }
        }
    }
    assert!(
        seen.iter().all(|v| v["ok"] != true),
        "a smuggled operation ran: {seen:?}"
    );
    drop(ws);
    assert!(
        !d.audit_records()
            .iter()
            .any(|r| r["actor"] == "bob" && r["op"] == "resume" && r["decision"] == "allow"),
        "a smuggled operation was allowed"
    );
    assert_unchanged(d, &before, "operation smuggling");
}

/// A compromised UI server: the owner can take over their own server (it runs as them),
/// and every job log is theirs to write. What the hub relays from it must never become
/// active content on the hub's origin, where it would run with the visitor's session
/// (and CSRF token). A log full of HTML, read by bob, comes back as plain text, never
/// sniffed, sandboxed; JSON answers stay JSON. (The hub fixes the content type itself,
/// so a server that claims `text/html` gets the same treatment.)
async fn owner_controlled_content_is_inert(d: &Demo, alice: &str) {
    let alice_u = nix::unistd::User::from_name("alice").unwrap().unwrap();
    let job = alice_u
        .dir
        .join(".steward/run/alice_forecast/log/job/1/fetch_obs/10");
    std::fs::create_dir_all(&job).unwrap();
    std::fs::write(
        job.join("job.out"),
        "<!doctype html><html><body><script>fetch('/hub/api/me')</script></body></html>\n",
    )
    .unwrap();
    sh(&format!(
        "chown -R alice {}",
        alice_u
            .dir
            .join(".steward/run/alice_forecast/log")
            .display()
    ));
    let (bob, _) = login(d, "bob").await;
    let before = fingerprint(d);
    let r = bare_client(d)
        .get(format!(
            "{}/user/alice/api/log?workflow=alice_forecast&cycle=1&task=fetch_obs&job=10",
            d.base
        ))
        .header("cookie", &bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "text/plain; charset=utf-8");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("sandbox") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(r.text().await.unwrap().contains("<script>"));
    let r = bare_client(d)
        .get(format!("{}/user/alice/api/summary", d.base))
        .header("cookie", alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    std::fs::remove_dir_all(&job).unwrap();
    assert_unchanged(d, &before, "owner-controlled content");
}

/// The privileged helper, asked directly with the demo's own config: uid 0 and system
/// accounts, names with `/` or `..`, executables outside the allow-list (by name and by
/// path), an injected uid field, and an environment carrying LD_PRELOAD,
/// LD_LIBRARY_PATH and PYTHONPATH. Nothing starts; the one allowed start runs with a
/// clean environment.
fn helper_refuses_privilege(d: &Demo) {
    let cfg = d.data.path().join("spawn.toml");
    let refused = |req: Value, why: &str| {
        let (code, reply) = helper_call(&cfg, &req);
        assert_eq!(reply["reply"], "error", "{why}: {req} -> {reply}");
        assert_ne!(code, 0, "{why}");
    };
    let start = |user: &str, server: &str, exe: &str| json!({"verb": "start", "user": user, "server": server, "executable": exe});
    refused(start("root", "x", "uiserver"), "uid 0");
    refused(start("daemon", "x", "uiserver"), "system uid");
    refused(start("bin", "x", "uiserver"), "system uid");
    refused(start("sshd", "x", "uiserver"), "system account");
    // Refused by rule, not by the accident of nobody's home not existing.
    let (_, reply) = helper_call(&cfg, &start("nobody", "x", "uiserver"));
    assert_eq!(reply["reply"], "error", "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .unwrap_or("")
            .contains("overflow uid"),
        "nobody: {reply}"
    );
    for user in [
        "alice/../root",
        "../root",
        "alice/x",
        "alice\0",
        "",
        "ALICE",
        "..",
    ] {
        refused(start(user, "x", "uiserver"), "bad user name");
    }
    for server in [
        "../x",
        "a/b",
        "..",
        ".",
        "",
        "x\0",
        "../../../../etc/cron.d/x",
    ] {
        refused(start("alice", server, "uiserver"), "bad server name");
    }
    for exe in [
        "/bin/sh",
        "sh",
        "../bin/sh",
        "/usr/bin/env",
        &format!("{}/bin/steward-uiserver", d.data.path().display()),
        "uiserver/../sh",
    ] {
        refused(
            start("alice", "atk", exe),
            "executable outside the allow-list",
        );
    }
    refused(
        json!({"verb": "start", "user": "alice", "server": "atk", "executable": "uiserver", "uid": 0}),
        "injected uid",
    );
    refused(
        json!({"verb": "read_user_file", "user": "root", "path": ".bashrc"}),
        "read as root",
    );
    refused(
        json!({"verb": "read_user_file", "user": "alice", "path": "../bob/.steward/policy.toml"}),
        "read another's file",
    );
    // An allowed start with a hostile environment: the loader and Python variables do
    // not reach the process.
    let (code, reply) = helper_call(
        &cfg,
        &json!({"verb": "start", "user": "alice", "server": "atkenv", "executable": "uiserver",
                "env": {"LD_PRELOAD": "/tmp/evil.so", "LD_LIBRARY_PATH": "/tmp", "PYTHONPATH": "/tmp",
                        "PYTHONSTARTUP": "/tmp/x.py", "LD_AUDIT": "/tmp/a.so", "BASH_ENV": "/tmp/x"}}),
    );
    if code == 0 && reply["reply"] == "started" {
        let pid = reply["pid"].as_u64().unwrap() as u32;
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let environ = String::from_utf8_lossy(&environ);
        helper_call(
            &cfg,
            &json!({"verb": "stop", "user": "alice", "server": "atkenv", "grace_secs": 0}),
        );
        for var in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "LD_AUDIT",
            "BASH_ENV",
        ] {
            assert!(
                !environ.contains(&format!("{var}=")),
                "{var} reached the server: {environ}"
            );
        }
    } else {
        assert_eq!(reply["reply"], "error", "{reply}");
    }
}

/// Another local user (not the owner, not root): connects to alice's UI server port
/// (mutual TLS turns them away), and tries the hub's state directory, keys, database,
/// audit log and TLS key (modes forbid it). Checked both by mode bits and by really
/// trying as that user with `runuser`.
fn other_local_user_on_port_and_files(d: &Demo, ui: &Ui) {
    ensure_user(OTHER, "atk1-unused-pw-9");
    let root = d.data.path();
    let private = [
        root.join("state"),
        root.join("state/ca.key"),
        root.join("state/jwt-ed25519.der"),
        root.join("state/hub.db"),
        root.join("audit"),
        root.join("audit/audit.jsonl"),
        root.join("audit/audit.log"),
        root.join("tls/hub.key"),
    ];
    for p in &private {
        let m = mode(p);
        assert_eq!(
            m & 0o077,
            0,
            "{} is mode {m:o}: others may reach it",
            p.display()
        );
    }
    let as_other = |cmd: &str| {
        std::process::Command::new("runuser")
            .args(["-u", OTHER, "--", "sh", "-c", cmd])
            .output()
            .unwrap()
    };
    for p in &private {
        let out = as_other(&format!("cat '{}' || ls '{}'", p.display(), p.display()));
        assert!(!out.status.success(), "{OTHER} read {}", p.display());
        assert!(
            out.stdout.is_empty(),
            "{OTHER} got bytes of {}",
            p.display()
        );
    }
    // Server logs: root's, readable by no other account.
    for p in [root.join("logs/alice"), root.join("logs/alice/default.log")] {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(
            m.mode() & 0o007,
            0,
            "{} is mode {:o}",
            p.display(),
            m.mode()
        );
        assert_eq!(m.gid(), 0, "{} is in a user's group", p.display());
        let out = as_other(&format!("cat '{}'", p.display()));
        assert!(out.stdout.is_empty(), "{OTHER} read {}", p.display());
    }
    // The helper is no door: not setuid, not writable but by root.
    let helper = root.join("bin/steward-spawn");
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&helper).unwrap();
        assert_eq!(m.uid(), 0);
        assert_eq!(m.mode() & 0o6022, 0, "steward-spawn mode {:o}", m.mode());
    }
    let out = as_other(&format!(
        "echo '{{\"verb\":\"list\"}}' | {} --config {}",
        helper.display(),
        root.join("spawn.toml").display()
    ));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("\"servers\""),
        "{OTHER} listed servers through the helper: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The UI server's command line (world-readable in /proc) carries no secret: the key,
    // certificate and registration token come over its stdin.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", ui.pid)).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).to_lowercase();
    for secret in ["private key", "begin ", "token", "secret", "password"] {
        assert!(
            !cmdline.contains(secret),
            "UI server command line: {cmdline}"
        );
    }
    // The hub's internal (registration) listener: a local user cannot register a fake
    // server without a certificate from the hub's CA.
    let internal = internal_addr(d);
    let out = as_other(&format!(
        "curl -sk --max-time 10 -o /dev/null -w '%{{http_code}}' -X POST -d '{{}}' https://{internal}/internal/register"
    ));
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !out.status.success() && (code.is_empty() || code == "000"),
        "{OTHER} reached the internal listener: rc {:?} code {code}",
        out.status.code()
    );
    // The UI server's port: no client certificate, no way in.
    let out = as_other(&format!(
        "curl -sk --max-time 10 -o /dev/null -w '%{{http_code}}' https://127.0.0.1:{}/api/summary",
        ui.port
    ));
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !out.status.success() && (code.is_empty() || code == "000"),
        "{OTHER} reached alice's UI server: rc {:?} code {code}",
        out.status.code()
    );
}

/// A local UI server that registers an endpoint off this host (with its genuine
/// certificate and one-time token) is refused: the start fails naming why, the server
/// is stopped with its whole cgroup, and the hub never stores or dials that address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_lying_in_its_registration() {
    if !require_root("a_server_lying_in_its_registration") {
        return;
    }
    let _l = demo_lock();
    let mut d = Demo::start();
    for (claim, why) in [
        ("10.0.0.9:4000", "which is not on this host"),
        ("hub-db.example.org:5432", "which is not on this host"),
        ("relative/ui.sock", "which is not an absolute socket path"),
    ] {
        serve_liar(&mut d, &["register", claim]);
        let (alice, csrf) = d.login("alice").await;
        let r = alice
            .post(format!("{}/hub/api/server", d.base))
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert!(
            !status.is_success() && body["error"].as_str().is_some_and(|e| e.contains(why)),
            "{claim}: {status} {body}"
        );
        let (carl, _) = d.login("carl").await;
        let list = get_json(&carl, format!("{}/hub/api/admin/servers", d.base)).await;
        assert!(!server_listed(&list, "alice"), "{claim}: {list}");
        let failed = d
            .audit_records()
            .into_iter()
            .rfind(|r| r["event"] == "spawn_failed" && r["owner"] == "alice")
            .expect("the refused start is audited");
        assert!(
            failed["message"].as_str().unwrap().contains(claim),
            "{failed}"
        );
        // alice's liar is gone with its cgroup. (Logging carl in starts his, which is
        // refused the same way, on its own time: only alice's are counted. The bracket
        // keeps pgrep from matching the shell that runs it.)
        let left = sh("pgrep -u alice -f '[s]teward-test-liar' || true");
        assert!(
            left.trim().is_empty(),
            "{claim}: alice's liar is still running: {left}"
        );
    }
}

/// Restarts the demo hub with every server started as `steward-test-liar ARGS` (and no
/// prestarts).
fn serve_liar(d: &mut Demo, args: &[&str]) {
    let spawn_cfg = d.data.path().join("spawn.toml");
    let text = std::fs::read_to_string(&spawn_cfg).unwrap();
    if !text.contains("liar = ") {
        let text = text.replacen(
            "[executables]\n",
            &format!(
                "[executables]\nliar = \"{}\"\n",
                bin("steward-test-liar").display()
            ),
            1,
        );
        write_root_file(&spawn_cfg, &text);
    }
    let hub_cfg = d.data.path().join("steward.toml");
    let original = d.data.path().join("steward.toml.orig");
    if !original.exists() {
        std::fs::copy(&hub_cfg, &original).unwrap();
    }
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    let text = std::fs::read_to_string(&original)
        .unwrap()
        .replacen(
            "[spawner]\n",
            &format!(
                "[spawner]\nexecutable = \"liar\"\nargs = [{}]\n",
                args.join(", ")
            ),
            1,
        )
        .replace("prestart = [\"alice\", \"bob\", \"carl\"]", "prestart = []");
    write_root_file(&hub_cfg, &text);
    d.serve_with("");
}

/// A UI server lying in its answers cannot write the audit trail or reach the browser
/// beyond its own word: a result for an operation the hub never forwarded, or a second
/// result for one already answered, is dropped (no outcome, nothing relayed); the one
/// real result makes exactly one outcome. (What it claims about its own owner's
/// workflows is the owner's word, shown only on that owner's page and still filtered
/// by each visitor's read right, as for an honest server.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_lying_in_its_answers() {
    if !require_root("a_server_lying_in_its_answers") {
        return;
    }
    let _l = demo_lock();
    let mut d = Demo::start();
    serve_liar(&mut d, &["answers"]);
    let (alice, csrf) = d.login("alice").await;
    let (_, alice_exec) = d.elevate(&alice, &csrf, "alice", "execute").await;
    let mut w = demo_ws(&d, "alice", &alice_exec).await;
    let snap = ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
    assert_eq!(snap["workflows"].as_array().unwrap().len(), 2, "{snap}");
    ws_send(
        &mut w,
        json!({"type": "op", "id": "p1", "op": "pause", "target": "alice_forecast"}),
    )
    .await;
    // Everything the browser gets in the next two seconds.
    let mut frames = vec![];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(Ok(m))) =
        tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut w)).await
    {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
            frames.push(serde_json::from_str::<Value>(t.as_str()).unwrap());
        }
    }
    let results: Vec<&Value> = frames.iter().filter(|f| f["type"] == "result").collect();
    assert_eq!(
        results.len(),
        1,
        "one result reaches the browser: {frames:?}"
    );
    assert_eq!(results[0]["id"], "p1");
    assert_eq!(results[0]["ok"], true);
    wait_until(Duration::from_secs(5), || {
        d.audit_records()
            .iter()
            .any(|r| r["op"] == "pause" && r["kind"] == "outcome")
    });
    std::thread::sleep(Duration::from_millis(500));
    let records = d.audit_records();
    let of_kind = |kind: &str| {
        records
            .iter()
            .filter(|r| r["op"] == "pause" && r["kind"] == kind)
            .count()
    };
    assert_eq!(
        (of_kind("intent"), of_kind("outcome")),
        (1, 1),
        "{records:#?}"
    );
    assert!(
        !records
            .iter()
            .any(|r| r.to_string().contains("never-asked")),
        "no record of the forged result"
    );
    let outcome = records
        .iter()
        .find(|r| r["op"] == "pause" && r["kind"] == "outcome")
        .unwrap();
    assert_eq!(outcome["outcome"], "ok", "{outcome}");
}
