//! Test harness: a test CA and certificates (rcgen), hub-signed tokens (ed25519), a
//! stand-in hub registration endpoint (mutual TLS), and clients for the real
//! `steward-uiserver` binary running with HOME in a temp dir.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::ring::default_provider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use steward_protocol::bootstrap::{
    uiserver_dns_name, Registration, UiServerBootstrap, HUB_INTERNAL_NAME,
};
use steward_protocol::claims::{audience_for, OpClaims, HUB_ISSUER};
use steward_protocol::wire::WorkflowSummary;
use steward_protocol::Operation;

pub const OWNER: &str = "alice";
pub const SERVER: &str = "main";

pub fn dns() -> String {
    uiserver_dns_name(OWNER, SERVER)
}

pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

pub struct Pki {
    pub ca_pem: String,
    pub server: Leaf,
    pub hub: Leaf,
    /// A client certificate from a different CA.
    pub rogue: Leaf,
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::CrlSign,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(p, key))
}

fn leaf(issuer: &Issuer<'static, KeyPair>, cn: &str, dns: &str) -> Leaf {
    let mut p = CertificateParams::new(vec![dns.to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, issuer).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

impl Pki {
    pub fn new() -> Pki {
        let (ca_pem, issuer) = ca("steward test CA");
        let (_, rogue_issuer) = ca("rogue CA");
        Pki {
            server: leaf(&issuer, &format!("{OWNER}/{SERVER}"), &dns()),
            hub: leaf(&issuer, "steward-hub", HUB_INTERNAL_NAME),
            rogue: leaf(&rogue_issuer, "steward-hub", HUB_INTERNAL_NAME),
            ca_pem,
        }
    }
}

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}
fn key(pem: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// Who the test client claims to be at the TLS layer.
#[derive(Clone, Copy)]
pub enum Identity {
    Hub,
    Rogue,
    Anonymous,
}

pub fn client_tls(pki: &Pki, id: Identity) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(&pki.ca_pem) {
        roots.add(c).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    match id {
        Identity::Hub => b
            .with_client_auth_cert(certs(&pki.hub.cert_pem), key(&pki.hub.key_pem))
            .unwrap(),
        Identity::Rogue => b
            .with_client_auth_cert(certs(&pki.rogue.cert_pem), key(&pki.rogue.key_pem))
            .unwrap(),
        Identity::Anonymous => b.with_no_client_auth(),
    }
}

// ------------------------------------------------------------------ tokens

pub struct Jwt {
    enc: EncodingKey,
    other: EncodingKey,
    pub public_pem: String,
}

impl Jwt {
    pub fn new() -> Jwt {
        use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
        use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
        let gen = || {
            let bytes: [u8; 32] = rand::random();
            ed25519_dalek::SigningKey::from_bytes(&bytes)
        };
        let k = gen();
        let priv_pem = k.to_pkcs8_pem(LineEnding::LF).unwrap();
        let public_pem = k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
        let other = gen().to_pkcs8_pem(LineEnding::LF).unwrap();
        Jwt {
            enc: EncodingKey::from_ed_pem(priv_pem.as_bytes()).unwrap(),
            other: EncodingKey::from_ed_pem(other.as_bytes()).unwrap(),
            public_pem,
        }
    }

    pub fn claims(ops: &[Operation], workflow: Option<&str>) -> OpClaims {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        OpClaims {
            iss: HUB_ISSUER.into(),
            aud: audience_for(OWNER),
            sub: "bob".into(),
            iat: now,
            nbf: now,
            exp: now + 30,
            jti: format!("{:032x}", rand::random::<u128>()),
            ops: ops.to_vec(),
            workflow: workflow.map(str::to_string),
            rid: "test".into(),
        }
    }

    pub fn sign(&self, c: &OpClaims) -> String {
        steward_protocol::jwt_crypto::install();
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), c, &self.enc).unwrap()
    }
    pub fn sign_with_other_key(&self, c: &OpClaims) -> String {
        steward_protocol::jwt_crypto::install();
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), c, &self.other).unwrap()
    }
    /// The classic confusion attack: HS256 keyed with the hub's *public* key.
    /// Built by hand: Steward's jsonwebtoken provider offers no HMAC at all.
    pub fn forge_hs256(&self, c: &OpClaims) -> String {
        use base64::Engine;
        use hmac::Mac;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let signed = format!(
            "{}.{}",
            b64(br#"{"typ":"JWT","alg":"HS256"}"#),
            b64(&serde_json::to_vec(c).unwrap())
        );
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(self.public_pem.as_bytes()).unwrap();
        mac.update(signed.as_bytes());
        format!("{signed}.{}", b64(&mac.finalize().into_bytes()))
    }
    pub fn token(&self, ops: &[Operation], workflow: Option<&str>) -> String {
        self.sign(&Self::claims(ops, workflow))
    }
    pub fn read(&self) -> String {
        self.token(&[Operation::Read], None)
    }
}

// ------------------------------------------------------------------ stand-in hub

pub struct TestHub {
    pub addr: SocketAddr,
    regs: std::sync::mpsc::Receiver<Registration>,
}

impl TestHub {
    /// An HTTPS endpoint with the hub's internal certificate that requires a client
    /// certificate from the test CA and records registrations.
    pub fn start(pki: &Pki) -> TestHub {
        use actix_web::{web, App, HttpResponse, HttpServer};
        let mut roots = rustls::RootCertStore::empty();
        for c in certs(&pki.ca_pem) {
            roots.add(c).unwrap();
        }
        let provider = Arc::new(default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(&pki.hub.cert_pem), key(&pki.hub.key_pem))
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<Registration>();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let tx = web::Data::new(std::sync::Mutex::new(tx));
                HttpServer::new(move || {
                    App::new().app_data(tx.clone()).route(
                        "/internal/register",
                        web::post().to(
                            |body: web::Json<Registration>,
                             tx: web::Data<
                                std::sync::Mutex<std::sync::mpsc::Sender<Registration>>,
                            >| async move {
                                let _ = tx.lock().unwrap().send(body.into_inner());
                                HttpResponse::Ok().json(json!({"ok": true}))
                            },
                        ),
                    )
                })
                .workers(1)
                .disable_signals()
                .listen_rustls_0_23(listener, cfg)
                .unwrap()
                .run()
                .await
                .unwrap();
            });
        });
        TestHub { addr, regs: rx }
    }

    pub fn bootstrap(&self, pki: &Pki, jwt: &Jwt, idle: u64, token: &str) -> UiServerBootstrap {
        UiServerBootstrap {
            owner: OWNER.into(),
            server: SERVER.into(),
            cert_pem: pki.server.cert_pem.clone(),
            key_pem: pki.server.key_pem.clone(),
            ca_pem: pki.ca_pem.clone(),
            jwt_public_key_pem: jwt.public_pem.clone(),
            register_url: format!(
                "https://{HUB_INTERNAL_NAME}:{}/internal/register",
                self.addr.port()
            ),
            hub_internal_addr: self.addr.to_string(),
            register_token: token.into(),
            idle_timeout_secs: idle,
        }
    }

    pub fn wait_registration(&self, token: &str, timeout: Duration) -> Option<Registration> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.regs.recv_timeout(left) {
                Ok(r) if r.register_token == token => return Some(r),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    }
}

// ------------------------------------------------------------------ environment

/// One owner's HOME with a hub, keys and (after `start`) a UI server.
pub struct Env {
    pub home: tempfile::TempDir,
    pub pki: Pki,
    pub jwt: Jwt,
    pub hub: TestHub,
    pub ui: Option<Ui>,
}

pub struct Ui {
    pub child: Child,
    pub port: u16,
    pub reg: Registration,
    pub log: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let pki = Pki::new();
        let hub = TestHub::start(&pki);
        Env {
            home: tempfile::tempdir().unwrap(),
            pki,
            jwt: Jwt::new(),
            hub,
            ui: None,
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn write_flow(&self, name: &str, text: &str) {
        let dir = self.home().join(".steward/workflows").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("flow.toml"), text).unwrap();
    }

    pub fn run_dir(&self, wf: &str) -> PathBuf {
        self.home().join(".steward/run").join(wf)
    }

    pub fn job_dir(&self, wf: &str, cycle: &str, task: &str, job: u32) -> PathBuf {
        self.run_dir(wf)
            .join(format!("log/job/{cycle}/{task}/{job:02}"))
    }

    /// Starts the real binary, feeds the bootstrap, waits for its registration.
    pub fn start(&mut self, idle: u64) -> &Ui {
        self.start_with(idle, &[])
    }

    pub fn start_with(&mut self, idle: u64, extra_env: &[(&str, &str)]) -> &Ui {
        let token = format!("{:032x}", rand::random::<u128>());
        let b = self.hub.bootstrap(&self.pki, &self.jwt, idle, &token);
        let n = std::fs::read_dir(self.home())
            .map(|d| d.count())
            .unwrap_or(0);
        let log = self.home().join(format!("uiserver-{n}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_steward-uiserver"))
            .env_clear()
            .env("HOME", self.home())
            .env("USER", OWNER)
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            )
            .envs(extra_env.iter().copied())
            .current_dir(self.home())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        {
            let mut stdin = child.stdin.take().unwrap();
            stdin
                .write_all(serde_json::to_string(&b).unwrap().as_bytes())
                .unwrap();
        }
        let reg = match self.hub.wait_registration(&token, Duration::from_secs(20)) {
            Some(r) => r,
            None => {
                let _ = child.kill();
                panic!(
                    "no registration; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        self.ui = Some(Ui {
            child,
            port: match &reg.endpoint {
                steward_protocol::Endpoint::Tcp { port, .. } => *port,
                other => panic!("the stub registered {other}, not a loopback port"),
            },
            reg,
            log,
        });
        self.ui.as_ref().unwrap()
    }

    pub fn port(&self) -> u16 {
        self.ui.as_ref().expect("started").port
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.ui.as_ref().unwrap().log).unwrap_or_default()
    }

    pub fn kill_ui(&mut self) {
        if let Some(mut ui) = self.ui.take() {
            let _ = ui.child.kill();
            let _ = ui.child.wait();
        }
    }

    pub fn http(&self, id: Identity) -> reqwest::Client {
        reqwest::Client::builder()
            .use_preconfigured_tls(client_tls(&self.pki, id))
            .resolve(&dns(), SocketAddr::from(([127, 0, 0, 1], self.port())))
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}:{}{path}", dns(), self.port())
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut r = self.http(Identity::Hub).get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap()
    }

    pub async fn summary(&self) -> Vec<WorkflowSummary> {
        let r = self.get("/api/summary", Some(&self.jwt.read())).await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub async fn workflow_state(&self, wf: &str) -> String {
        self.summary()
            .await
            .into_iter()
            .find(|w| w.name == wf)
            .map(|w| w.state)
            .unwrap_or_default()
    }

    pub async fn ws(&self) -> Ws {
        self.ws_with(Some(&self.jwt.read())).await.unwrap()
    }

    pub async fn ws_with(
        &self,
        token: Option<&str>,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        ws_connect(&self.pki, self.port(), token, Identity::Hub).await
    }

    /// Sends an op over a fresh-token WebSocket message and waits for its result.
    pub async fn op(
        &self,
        ws: &mut Ws,
        op: Operation,
        target: &str,
        args: Value,
    ) -> (bool, String) {
        let wf = target
            .trim_start_matches('~')
            .split("//")
            .next()
            .unwrap()
            .trim_start_matches(&format!("{OWNER}/"))
            .to_string();
        let token = self.jwt.token(&[op], Some(&wf));
        ws.op_with_token(op.name(), target, args, &token).await
    }

    /// pid recorded in a job's job.status.
    pub fn job_pid(&self, wf: &str, cycle: &str, task: &str, job: u32) -> u32 {
        let s =
            std::fs::read_to_string(self.job_dir(wf, cycle, task, job).join("job.status")).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("STEWARD_JOB_PID="))
            .unwrap()
            .parse()
            .unwrap()
    }

    pub fn scheduler_pid(&self, wf: &str) -> Option<u32> {
        let s = std::fs::read_to_string(self.run_dir(wf).join("state.json")).ok()?;
        let v: Value = serde_json::from_str(&s).ok()?;
        v["scheduler_pid"].as_u64().map(|p| p as u32)
    }
}

impl Drop for Env {
    /// Schedulers and jobs are detached by design: reap them so tests leave nothing.
    fn drop(&mut self) {
        self.kill_ui();
        let runs = self.home().join(".steward/run");
        let Ok(dirs) = std::fs::read_dir(&runs) else {
            return;
        };
        for d in dirs.flatten() {
            let Ok(s) = std::fs::read_to_string(d.path().join("state.json")) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(&s) else {
                continue;
            };
            if let Some(p) = v["scheduler_pid"].as_u64() {
                let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
            }
            for t in v["tasks"].as_array().into_iter().flatten() {
                if let Some(p) = t["pid"].as_u64() {
                    let _ = killpg(Pid::from_raw(p as i32), Signal::SIGKILL);
                }
            }
        }
    }
}

pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub async fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    f()
}

// ------------------------------------------------------------------ WebSocket client

pub struct Ws {
    sink: futures_util::stream::SplitSink<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        tokio_tungstenite::tungstenite::Message,
    >,
    rx: tokio::sync::mpsc::UnboundedReceiver<(Instant, Value)>,
    /// Every message received, in order; waits search from `cursor`.
    log: Vec<(Instant, Value)>,
    cursor: usize,
    next_id: u64,
}

pub async fn ws_connect(
    pki: &Pki,
    port: u16,
    token: Option<&str>,
    id: Identity,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut req = format!("wss://{}:{port}/ws", dns()).into_client_request()?;
    if let Some(t) = token {
        req.headers_mut()
            .insert("Authorization", format!("Bearer {t}").parse().unwrap());
    }
    let (ws, _) = tokio_tungstenite::client_async_tls_with_config(
        req,
        stream,
        None,
        Some(tokio_tungstenite::Connector::Rustls(Arc::new(client_tls(
            pki, id,
        )))),
    )
    .await?;
    let (sink, mut stream) = ws.split();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                if let Ok(v) = serde_json::from_str::<Value>(t.as_str()) {
                    if tx.send((Instant::now(), v)).is_err() {
                        break;
                    }
                }
            }
        }
    });
    Ok(Ws {
        sink,
        rx,
        log: Vec::new(),
        cursor: 0,
        next_id: 1,
    })
}

impl Ws {
    pub async fn send_text(&mut self, text: &str) {
        self.sink
            .send(tokio_tungstenite::tungstenite::Message::Text(text.into()))
            .await
            .unwrap();
    }

    pub async fn send(&mut self, v: &Value) {
        self.send_text(&v.to_string()).await;
    }

    /// The first message at or after the cursor satisfying `pred`, with its arrival
    /// time; the cursor moves to it (the same message may satisfy the next wait too,
    /// as one delta can carry several changes).
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        pred: impl FnMut(&Value) -> bool,
    ) -> Option<(Instant, Value)> {
        self.find(timeout, pred, true).await
    }

    async fn find(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
        advance: bool,
    ) -> Option<(Instant, Value)> {
        let mut i = self.cursor;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while i < self.log.len() {
                if pred(&self.log[i].1) {
                    if advance {
                        self.cursor = i;
                    }
                    return Some(self.log[i].clone());
                }
                i += 1;
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(m)) => self.log.push(m),
                _ => return None,
            }
        }
    }

    /// Moves the cursor one past its current message.
    pub fn clear_through_cursor(&mut self) {
        self.cursor = (self.cursor + 1).min(self.log.len());
    }

    /// Moves the cursor past every message received so far.
    pub fn clear(&mut self) {
        while let Ok(m) = self.rx.try_recv() {
            self.log.push(m);
        }
        self.cursor = self.log.len();
    }

    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        self.wait_for(timeout, |_| true).await.map(|(_, v)| v)
    }

    pub async fn op_with_token(
        &mut self,
        op: &str,
        target: &str,
        args: Value,
        token: &str,
    ) -> (bool, String) {
        let id = format!("op{}", self.next_id);
        self.next_id += 1;
        self.send(&json!({"type":"op","id":id,"op":op,"target":target,"args":args,"token":token}))
            .await;
        // Results do not move the cursor: deltas may arrive before the result.
        let (_, v) = self
            .find(
                Duration::from_secs(30),
                |v| v["type"] == "result" && v["id"] == id,
                false,
            )
            .await
            .unwrap_or_else(|| panic!("no result for {op} {target}"));
        (
            v["ok"].as_bool().unwrap(),
            v["message"].as_str().unwrap().to_string(),
        )
    }

    fn drain(&mut self) {
        while let Ok(m) = self.rx.try_recv() {
            self.log.push(m);
        }
    }

    /// The latest state of `cycle/task` (or of the workflow, with `task == None`) in
    /// all messages received so far, with the index of the message that said so.
    fn latest(&self, wf: &str, cycle_task: Option<(&str, &str)>) -> Option<(usize, String)> {
        for (i, (_, v)) in self.log.iter().enumerate().rev() {
            let entry = match v["type"].as_str() {
                Some("delta") if v["workflow"] == wf => match cycle_task {
                    None => v["state"].as_str().map(str::to_string),
                    Some((c, t)) => v["tasks"]
                        .as_array()
                        .and_then(|ts| ts.iter().rev().find(|x| x["cycle"] == c && x["task"] == t))
                        .and_then(|x| x["state"].as_str().map(str::to_string)),
                },
                Some("snapshot") => v["workflows"]
                    .as_array()
                    .and_then(|ws| ws.iter().find(|w| w["name"] == wf))
                    .and_then(|w| match cycle_task {
                        None => w["state"].as_str().map(str::to_string),
                        Some((c, t)) => w["tasks"]
                            .as_array()
                            .and_then(|ts| ts.iter().find(|x| x["cycle"] == c && x["task"] == t))
                            .and_then(|x| x["state"].as_str().map(str::to_string)),
                    }),
                _ => None,
            };
            if let Some(s) = entry {
                return Some((i, s));
            }
        }
        None
    }

    /// Waits until `cycle/task` of `wf` is in `state`: already (latest message about
    /// it), or in a later delta/snapshot. Returns the arrival time of that message.
    pub async fn wait_task(
        &mut self,
        wf: &str,
        cycle: &str,
        task: &str,
        state: &str,
        timeout: Duration,
    ) -> Option<Instant> {
        self.drain();
        if let Some((i, s)) = self.latest(wf, Some((cycle, task))) {
            if s == state {
                return Some(self.log[i].0);
            }
        }
        self.wait_for(timeout, |v| {
            let tasks = match v["type"].as_str() {
                Some("delta") if v["workflow"] == wf => v["tasks"].as_array().cloned(),
                Some("snapshot") => v["workflows"]
                    .as_array()
                    .and_then(|ws| ws.iter().find(|w| w["name"] == wf))
                    .and_then(|w| w["tasks"].as_array().cloned()),
                _ => None,
            };
            tasks
                .into_iter()
                .flatten()
                .any(|t| t["cycle"] == cycle && t["task"] == task && t["state"] == state)
        })
        .await
        .map(|(t, _)| t)
    }

    /// Waits until the workflow is in `state` (already, or in a later message).
    pub async fn wait_workflow(&mut self, wf: &str, state: &str, timeout: Duration) -> bool {
        self.drain();
        if self.latest(wf, None).is_some_and(|(_, s)| s == state) {
            return true;
        }
        self.wait_for(timeout, |v| match v["type"].as_str() {
            Some("delta") => v["workflow"] == wf && v["state"] == state,
            Some("snapshot") => v["workflows"]
                .as_array()
                .is_some_and(|ws| ws.iter().any(|w| w["name"] == wf && w["state"] == state)),
            _ => false,
        })
        .await
        .is_some()
    }
}
