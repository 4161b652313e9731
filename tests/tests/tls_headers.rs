//! The hub's public listener as a TLS client sees it, against `steward demo`: only TLS
//! 1.2 and 1.3 with AEAD ciphers; `Strict-Transport-Security` on every answer
//! (pages, assets, redirects, 404s, API errors, refused WebSocket upgrades); the UI's
//! CSP and framing headers; and a certificate replaced on disk and reloaded on SIGHUP
//! without dropping a connection that is already open.

// Demo hubs reset the shared demo users, so each test holds the process-wide demo lock
// for its whole run, across awaits, on purpose.
#![allow(clippy::await_holding_lock)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;
use steward_e2e::*;

/// A hand-built ClientHello, so the test can offer what no modern TLS library will
/// send (TLS 1.0/1.1, RSA key exchange, CBC, 3DES, RC4).
fn client_hello(version: u16, suites: &[u16]) -> Vec<u8> {
    fn ext(id: u16, body: &[u8]) -> Vec<u8> {
        let mut e = id.to_be_bytes().to_vec();
        e.extend((body.len() as u16).to_be_bytes());
        e.extend(body);
        e
    }
    fn list16(items: &[u16]) -> Vec<u8> {
        let mut v = ((items.len() * 2) as u16).to_be_bytes().to_vec();
        items.iter().for_each(|i| v.extend(i.to_be_bytes()));
        v
    }
    let mut exts = vec![];
    exts.extend(ext(0x000a, &list16(&[0x001d, 0x0017]))); // supported_groups: x25519, P-256
    exts.extend(ext(0x000b, &[1, 0])); // ec_point_formats: uncompressed
    exts.extend(ext(0x000d, &list16(&[0x0403, 0x0804, 0x0401]))); // signature_algorithms
    let mut body = version.to_be_bytes().to_vec();
    body.extend([0x5a; 32]); // random
    body.push(0); // no session id
    body.extend(list16(suites));
    body.extend([1, 0]); // compression: null only
    body.extend((exts.len() as u16).to_be_bytes());
    body.extend(exts);
    let mut hs = vec![1u8]; // ClientHello
    hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend((hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    rec
}

/// Sends a ClientHello and returns the first record's type and, for an alert, its
/// description: (0x16, None) is the server going on with the handshake.
fn first_answer(port: u16, hello: &[u8]) -> (u8, Option<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(hello).unwrap();
    let mut head = [0u8; 7];
    s.read_exact(&mut head[..5])
        .expect("the hub answers a ClientHello");
    if head[0] == 0x15 {
        s.read_exact(&mut head[5..7]).unwrap();
        assert_eq!(head[5], 2, "alert level: fatal");
        (0x15, Some(head[6]))
    } else {
        (head[0], None)
    }
}

const ALERT: u8 = 0x15;
const HANDSHAKE: u8 = 0x16;
const PROTOCOL_VERSION: u8 = 70;
const HANDSHAKE_FAILURE: u8 = 40;
/// TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 and the RSA-signed twin: what the hub serves.
const GOOD: [u16; 2] = [0xc02b, 0xc02f];
/// RSA key exchange (no forward secrecy), CBC, 3DES, RC4, export-grade, NULL.
const WEAK: [u16; 9] = [
    0x002f, 0x0035, 0x003c, 0x000a, 0x0005, 0x0004, 0x0003, 0x0001, 0xc013,
];

fn client(
    ca: &std::path::Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots_of(ca))
        .with_no_client_auth()
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A kept-alive HTTPS connection to the hub, or why the handshake failed.
fn try_connect(port: u16, cfg: rustls::ClientConfig) -> std::io::Result<Tls> {
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port))?;
    sock.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

fn connect(port: u16, cfg: rustls::ClientConfig) -> Tls {
    try_connect(port, cfg).expect("TLS handshake")
}

/// One HTTP/1.1 request on `tls`, keeping the connection open; returns (status, headers).
fn get(tls: &mut Tls, path: &str) -> (u16, String) {
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
    )
    .unwrap();
    tls.flush().unwrap();
    let mut buf = vec![];
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).expect("response head");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    tls.read_exact(&mut body).unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head)
}

#[test]
fn only_tls_1_2_and_1_3_with_aead_ciphers() {
    if !require_root("only_tls_1_2_and_1_3_with_aead_ciphers") {
        return;
    }
    let _l = demo_lock();
    let d = Demo::start();

    // The hand-built hello is a valid one: with a modern suite at TLS 1.2 the hub goes on.
    assert_eq!(
        first_answer(d.port, &client_hello(0x0303, &GOOD)),
        (HANDSHAKE, None)
    );
    // TLS 1.0 and 1.1 are refused outright, whatever the cipher.
    for version in [0x0301, 0x0302] {
        let all: Vec<u16> = GOOD.iter().chain(WEAK.iter()).copied().collect();
        assert_eq!(
            first_answer(d.port, &client_hello(version, &all)),
            (ALERT, Some(PROTOCOL_VERSION)),
            "version {version:#06x}"
        );
    }
    // TLS 1.2 offering only weak suites finds nothing in common.
    assert_eq!(
        first_answer(d.port, &client_hello(0x0303, &WEAK)),
        (ALERT, Some(HANDSHAKE_FAILURE))
    );

    // A real client limited to 1.2, then to 1.3, is served, with AEAD suites only.
    for (versions, want) in [
        (
            &[&rustls::version::TLS12][..],
            rustls::ProtocolVersion::TLSv1_2,
        ),
        (
            &[&rustls::version::TLS13][..],
            rustls::ProtocolVersion::TLSv1_3,
        ),
    ] {
        let mut tls = connect(d.port, client(&d.ca(), versions));
        assert_eq!(tls.conn.protocol_version(), Some(want));
        let suite = format!("{:?}", tls.conn.negotiated_cipher_suite().unwrap().suite());
        assert!(
            suite.contains("GCM") || suite.contains("CHACHA20_POLY1305"),
            "{suite}"
        );
        assert!(
            suite.starts_with("TLS13_") || suite.contains("ECDHE"),
            "{suite}"
        );
        let (status, head) = get(&mut tls, "/hub/");
        assert_eq!(status, 200, "{head}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_on_every_answer_and_ui_security_headers_kept() {
    if !require_root("hsts_on_every_answer") {
        return;
    }
    let _l = demo_lock();
    let d = Demo::start();
    let c = d.client();
    let no_redirect = reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(&d.ca()))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (alice, csrf) = d.login("alice").await;
    let b = &d.base;
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        ("UI page", c.get(format!("{b}/hub/")), 200),
        ("redirect", no_redirect.get(format!("{b}/")), 302),
        ("static 404", c.get(format!("{b}/hub/static/nope.js")), 404),
        ("route 404", c.get(format!("{b}/no/such/page")), 404),
        ("unauthenticated API", c.get(format!("{b}/hub/api/me")), 401),
        ("metrics", c.get(format!("{b}/metrics")), 0),
        (
            "malformed login",
            c.post(format!("{b}/hub/api/login"))
                .header("content-type", "application/json")
                .body("{not json"),
            400,
        ),
        (
            "wrong password",
            c.post(format!("{b}/hub/api/login"))
                .json(&serde_json::json!({"username": "alice", "password": "wrong"})),
            4,
        ),
        ("CSRF missing", alice.post(format!("{b}/hub/api/logout")), 4),
        (
            "authenticated API",
            alice.get(format!("{b}/hub/api/me")),
            200,
        ),
        (
            "logout",
            alice
                .post(format!("{b}/hub/api/logout"))
                .header("x-csrf-token", &csrf),
            200,
        ),
        (
            "WebSocket upgrade, no session",
            c.get(format!("{b}/user/alice/ws"))
                .header("connection", "Upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                .header("origin", b),
            4,
        ),
    ];
    let mut assets = vec![];
    for (what, req, want) in cases {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        match want {
            0 => {}
            4 => assert!((400..500).contains(&status), "{what}: {status}"),
            _ => assert_eq!(status, want, "{what}"),
        }
        assert_eq!(
            r.headers()
                .get("strict-transport-security")
                .map(|v| v.to_str().unwrap().to_string()),
            Some(steward_hub::hsts::HSTS.to_string()),
            "{what} ({status}) has no Strict-Transport-Security"
        );
        if what == "UI page" {
            let html = r.text().await.unwrap();
            assets.extend(
                html.split('"')
                    .filter(|s| s.starts_with("/hub/static/"))
                    .map(str::to_string),
            );
        }
    }
    assert!(!assets.is_empty(), "the UI page links no static assets");

    // Static assets: HSTS, and the UI's own CSP and framing rules, kept.
    for path in assets.iter().map(String::as_str).chain(["/hub/"]) {
        let r = c.get(format!("{b}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = |k: &str| {
            r.headers()
                .get(k)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            h("strict-transport-security"),
            steward_hub::hsts::HSTS,
            "{path}"
        );
        let csp = h("content-security-policy");
        assert_eq!(csp, steward_hub::ui::CONTENT_SECURITY_POLICY, "{path}");
        for directive in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "connect-src 'self'",
        ] {
            assert!(
                csp.contains(directive),
                "{path}: CSP {csp:?} lacks {directive}"
            );
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(h("x-frame-options"), "DENY", "{path}");
        assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
    }
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_open_connections() {
    if !require_root("sighup_reloads_the_certificate") {
        return;
    }
    let _l = demo_lock();
    let d = Demo::start();
    let tls_dir = d.data.path().join("tls");
    let old_cert = pem_certs(&std::fs::read_to_string(tls_dir.join("hub.crt")).unwrap());

    // A connection opened on the old certificate, kept alive across the reload.
    let mut open = connect(d.port, tls_config(&d.ca()));
    assert_eq!(open.conn.peer_certificates().unwrap()[0], old_cert[0]);
    assert_eq!(get(&mut open, "/hub/").0, 200);

    // A new key and certificate from a new CA, written over the files the config names.
    let (cert, key, ca) =
        steward_hub::pki::ca::self_signed_public(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap();
    let new_ca = tls_dir.join("ca-new.crt");
    std::fs::write(&new_ca, &ca).unwrap();
    std::fs::write(tls_dir.join("hub.key"), &key).unwrap();
    std::fs::write(tls_dir.join("hub.crt"), &cert).unwrap();
    let new_cert = pem_certs(&cert);
    assert_ne!(new_cert[0], old_cert[0]);

    let pid = nix::unistd::Pid::from_raw(d.proc.as_ref().unwrap().child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    // The reload is asynchronous: new connections see the new certificate once it is in.
    // The open connection is used meanwhile, so it also works during the reload (and
    // never sits idle past the hub's keep-alive timeout).
    let mut seen = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            assert_eq!(get(&mut open, "/hub/").0, 200, "the open connection broke");
            match try_connect(d.port, tls_config(&new_ca)) {
                Ok(mut fresh) => {
                    seen = fresh.conn.peer_certificates().map(|c| c[0].clone());
                    get(&mut fresh, "/hub/").0 == 200
                }
                Err(_) => false,
            }
        }),
        "no connection with the new certificate"
    );
    assert_eq!(seen.as_ref(), Some(&new_cert[0]));
    // A client that trusts only the old CA is now refused: the old certificate is gone.
    assert!(
        try_connect(d.port, tls_config(&d.ca())).is_err(),
        "the old certificate is still served"
    );

    // The connection opened before the reload still works, on its old certificate.
    for _ in 0..3 {
        assert_eq!(get(&mut open, "/hub/").0, 200);
    }
    assert_eq!(open.conn.peer_certificates().unwrap()[0], old_cert[0]);
}
