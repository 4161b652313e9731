//! Support for Steward's end-to-end tests: real binaries, real users, real kernel.
//!
//! Tests that need root or a real service call [`require_root`]: under `CI=true` a
//! missing precondition is a failure, never a skip; a developer's non-root run skips
//! with the reason printed.

pub mod browser;

pub mod cylc;
pub mod haproxy;
pub mod netns;
pub mod postgres;
pub mod slapd;
pub mod slurm;
pub mod sshpool;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Returns false (after printing why) when the test should be skipped.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: needs root, and CI=true forbids skipping");
    }
    eprintln!("SKIPPED {test}: needs root (run the suite as root, as CI does)");
    false
}

/// Directory holding the workspace's built binaries (target/<profile>).
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("STEWARD_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

/// A free loopback port (bound and released; good enough on a test machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A root-owned temporary directory others may traverse (0711), as the demo needs.
pub fn traversable_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::Builder::new()
        .prefix("steward-e2e-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    d
}

/// A child process killed (SIGINT, then SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub stdout_lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `cmd` with stdout captured line by line (also echoed to stderr for debugging).
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(std::sync::Mutex::new(vec![]));
        let l2 = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("[child] {line}");
                l2.lock().unwrap().push(line);
            }
        });
        Proc {
            child,
            stdout_lines: lines,
        }
    }

    /// Waits until a stdout line contains `needle`.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self
                .stdout_lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("process exited with {status} before printing {needle:?}");
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn interrupt(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.interrupt();
        }
    }
}

/// The certificates in PEM text, in order.
pub fn pem_certs(pem: &str) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    use base64::Engine;
    pem.split("-----END CERTIFICATE-----")
        .filter(|b| b.contains("BEGIN CERTIFICATE"))
        .map(|b| {
            let body: String = b.lines().filter(|l| !l.starts_with("-----")).collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(body.trim())
                .unwrap();
            rustls_pki_types::CertificateDer::from(der)
        })
        .collect()
}

/// The PEM CA file at `ca` as a root store.
pub fn roots_of(ca: &Path) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for der in pem_certs(&std::fs::read_to_string(ca).unwrap()) {
        roots.add(der).unwrap();
    }
    roots
}

/// rustls client config trusting exactly the PEM CA at `ca`.
pub fn tls_config(ca: &Path) -> rustls::ClientConfig {
    let roots = roots_of(ca);
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

pub fn http_client(ca: &Path) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(ca))
        .cookie_store(true)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// GET `url` and parse the answer as JSON, whatever its status (tests assert on it).
pub async fn get_json(c: &reqwest::Client, url: String) -> serde_json::Value {
    let r = c.get(&url).send().await.unwrap();
    r.json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: the answer is not JSON: {e}"))
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket with the given Origin and Cookie headers.
pub async fn ws_connect(
    ca: &Path,
    url: &str,
    origin: Option<&str>,
    cookie: &str,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request()?;
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let connector = tokio_tungstenite::Connector::Rustls(Arc::new(tls_config(ca)));
    let (ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector)).await?;
    Ok(ws)
}

/// Reads JSON text frames until `pred` matches one (bounded by `timeout`).
pub async fn ws_until(
    ws: &mut Ws,
    timeout: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("timed out waiting for a WebSocket message");
        let msg = msg.expect("WebSocket closed").expect("WebSocket error");
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("JSON frame");
            if pred(&v) {
                return v;
            }
        }
    }
}

pub async fn ws_send(ws: &mut Ws, v: serde_json::Value) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(v.to_string()))
        .await
        .unwrap();
}

/// Runs a command and returns stdout, panicking with stderr on failure.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates (if missing) a Unix user with this password; returns its passwd entry.
pub fn ensure_user(name: &str, password: &str) -> nix::unistd::User {
    // Two tests of one binary creating the same user at once race in useradd (one saw
    // a half-made account); one at a time per process.
    static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = CREATING.lock().unwrap_or_else(|e| e.into_inner());
    if nix::unistd::User::from_name(name).unwrap().is_none() {
        let out = Command::new("useradd")
            .args(["-m", "-s", "/bin/bash", name])
            .output()
            .unwrap();
        assert!(
            out.status.success() || String::from_utf8_lossy(&out.stderr).contains("already exists"),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut child = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        writeln!(child.stdin.as_mut().unwrap(), "{name}:{password}").unwrap();
    }
    assert!(child.wait().unwrap().success(), "chpasswd {name}");
    let user = nix::unistd::User::from_name(name).unwrap().unwrap();
    // A home left by an earlier account of the same name (deleted and created again,
    // e.g. on a machine whose /home outlived its /etc/passwd) belongs to a stale uid:
    // `useradd -m` keeps it as it is, and the new account could not write there.
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata(&user.dir).is_ok_and(|m| m.uid() != user.uid.as_raw()) {
        sh(&format!(
            "chown -R {}:{} '{}'",
            user.uid,
            user.gid,
            user.dir.display()
        ));
    }
    user
}

/// Writes a root-owned, world-readable file (mode 0644) in a directory made traversable.
pub fn write_root_file(path: &Path, content: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// Runs `steward-spawn --config CONFIG` with `request` on stdin; returns (exit code, reply).
pub fn helper_call(config: &Path, request: &serde_json::Value) -> (i32, serde_json::Value) {
    use std::io::Write;
    let mut child = Command::new(bin("steward-spawn"))
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // The helper may refuse (and exit) before reading its request: EPIPE is fine here.
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes());
    let out = child.wait_with_output().unwrap();
    let reply = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "helper reply {:?}: {e}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code().unwrap_or(-1), reply)
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Demo hubs reset the demo users' passwords when they start, so tests in one binary
/// that use them take turns.
pub fn demo_lock() -> DemoLock {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    // The demo users' passwords, homes and workflows are machine-wide, so test binaries
    // of different crates (or checkouts) running at once must take turns too.
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/steward-e2e-demo.lock")
        .expect("opening /tmp/steward-e2e-demo.lock");
    let file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("locking /tmp/steward-e2e-demo.lock");
    DemoLock {
        _file: file,
        _guard: guard,
    }
}

/// Held while a test uses the machine-wide demo users: one process and one thread at a time.
pub struct DemoLock {
    _file: nix::fcntl::Flock<std::fs::File>,
    _guard: std::sync::MutexGuard<'static, ()>,
}

/// A `steward demo` hub on a free port in its own data directory.
pub struct Demo {
    pub proc: Option<Proc>,
    pub port: u16,
    pub base: String,
    pub data: tempfile::TempDir,
    pub creds: serde_json::Value,
    pub clock_file: PathBuf,
    /// Extra `steward demo` arguments (e.g. `--cylc`), kept for restarts.
    pub args: Vec<String>,
    /// With `STEWARD_TEST_DATABASE=postgresql`: this demo's own PostgreSQL server (a
    /// fresh one per demo, so no test sees another's sessions or servers).
    pub pg: Option<postgres::Postgres>,
}

/// Whether the demo hubs of this run keep their state in PostgreSQL
/// (`STEWARD_TEST_DATABASE=postgresql`) rather than SQLite.
pub fn demo_on_postgresql() -> bool {
    std::env::var("STEWARD_TEST_DATABASE").is_ok_and(|v| v == "postgresql")
}

impl Demo {
    pub fn start() -> Demo {
        Self::start_with_args(&[])
    }

    /// A demo started with extra `steward demo` arguments.
    pub fn start_with_args(args: &[&str]) -> Demo {
        reset_demo_workflows();
        let data = traversable_tempdir();
        let port = free_port();
        let clock_file = data.path().join("clock-offset");
        std::fs::write(&clock_file, "0").unwrap();
        let mut d = Demo {
            proc: None,
            port,
            base: format!("https://127.0.0.1:{port}"),
            data,
            creds: serde_json::Value::Null,
            clock_file,
            args: args.iter().map(|a| a.to_string()).collect(),
            pg: demo_on_postgresql().then(postgres::Postgres::start),
        };
        d.launch();
        d
    }

    fn launch(&mut self) {
        let creds_file = self.data.path().join("creds.json");
        let _ = std::fs::remove_file(&creds_file);
        let mut cmd = Command::new(bin("steward"));
        cmd.args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{}", self.port),
            "--data-dir",
        ])
        .arg(self.data.path())
        .arg("--credentials-file")
        .arg(&creds_file)
        .arg("--clock-offset-file")
        .arg(&self.clock_file)
        .args(&self.args)
        .args(
            self.pg
                .iter()
                .flat_map(|pg| ["--database-url".to_string(), pg.url()]),
        )
        .env(
            "STEWARD_LOG",
            std::env::var("STEWARD_TEST_HUB_LOG").unwrap_or_else(|_| "warn".into()),
        );
        let mut p = Proc::spawn(cmd);
        p.wait_for_line("ready on", Duration::from_secs(120));
        self.creds = serde_json::from_str(&std::fs::read_to_string(&creds_file).unwrap()).unwrap();
        self.proc = Some(p);
    }

    /// Stops the hub (SIGINT, or SIGKILL when `kill`) and starts it again on the same data.
    pub fn restart(&mut self, kill: bool) {
        if let Some(mut p) = self.proc.take() {
            if kill {
                let _ = p.child.kill();
                let _ = p.child.wait();
            } else {
                p.interrupt();
            }
        }
        self.launch();
    }

    pub fn password(&self, user: &str) -> String {
        self.creds["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["user"] == user)
            .unwrap()["password"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn ca(&self) -> PathBuf {
        self.data.path().join("tls/ca.crt")
    }

    pub fn client(&self) -> reqwest::Client {
        http_client(&self.ca())
    }

    pub fn set_clock_offset(&self, secs: i64) {
        std::fs::write(&self.clock_file, secs.to_string()).unwrap();
    }

    pub fn audit_records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.data.path().join("audit/audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn human_audit(&self) -> String {
        std::fs::read_to_string(self.data.path().join("audit/audit.log")).unwrap_or_default()
    }

    /// Logs in; returns (client with the cookie, csrf).
    pub async fn login(&self, user: &str) -> (reqwest::Client, String) {
        let c = self.client();
        let r = c
            .post(format!("{}/hub/api/login", self.base))
            .json(&serde_json::json!({"username": user, "password": self.password(user)}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login {user}");
        let v: serde_json::Value = r.json().await.unwrap();
        (c, v["csrf"].as_str().unwrap().to_string())
    }

    /// Elevates the client's session; returns (new csrf, cookie header value).
    pub async fn elevate(
        &self,
        c: &reqwest::Client,
        csrf: &str,
        user: &str,
        class: &str,
    ) -> (String, String) {
        let r = c
            .post(format!("{}/hub/api/elevate", self.base))
            .header("x-csrf-token", csrf)
            .json(&serde_json::json!({"class": class, "password": self.password(user)}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "elevate {user}");
        let cookie = r
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let v: serde_json::Value = r.json().await.unwrap();
        (v["csrf"].as_str().unwrap().to_string(), cookie)
    }
}

/// The `__Host-steward_session=...` cookie pair a client would send (from a login response).
pub async fn login_cookie(base: &str, ca: &Path, user: &str, password: &str) -> (String, String) {
    let r = http_client(ca)
        .post(format!("{base}/hub/api/login"))
        .json(&serde_json::json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let v: serde_json::Value = r.json().await.unwrap();
    (cookie, v["csrf"].as_str().unwrap().to_string())
}

/// Stops workflows a previous demo left running and forgets their runs, so each test
/// starts from never-played workflows.
pub fn reset_demo_workflows() {
    for user in ["alice", "bob", "carl"] {
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", user, "-f", "steward-uiserver"])
            .status();
        if let Ok(Some(u)) = nix::unistd::User::from_name(user) {
            let _ = std::fs::remove_dir_all(u.dir.join(".steward/run"));
        }
    }
}

impl Demo {
    /// Restarts the hub as `steward serve` on the demo's config with `extra` TOML appended
    /// (e.g. an `[auth]` section), keeping users, passwords and state.
    pub fn serve_with(&mut self, extra: &str) {
        if let Some(mut p) = self.proc.take() {
            p.interrupt();
        }
        let cfg = self.data.path().join("steward.toml");
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        text.push_str(extra);
        write_root_file(&cfg, &text);
        let mut cmd = Command::new(bin("steward"));
        cmd.args(["serve", "-c"])
            .arg(&cfg)
            .env("STEWARD_LOG", "warn");
        let mut p = Proc::spawn(cmd);
        p.wait_for_line("ready on", Duration::from_secs(60));
        self.proc = Some(p);
    }
}

impl Demo {
    /// An API token for `user`, made by `steward token create` with the demo password.
    pub fn cli_token(&self, user: &str) -> String {
        let out = Command::new(bin("steward"))
            .args([
                "token", "create", "--user", user, "--name", "cli", "--url", &self.base,
            ])
            .arg("--ca")
            .arg(self.ca())
            .env("STEWARD_PASSWORD", self.password(user))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "token create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Runs `steward ARGS` against this hub with `token`: (succeeded, stdout + stderr).
    pub fn cli(&self, token: &str, args: &[&str]) -> (bool, String) {
        let out = Command::new(bin("steward"))
            .args(args)
            .args(["--url", &self.base, "--ca"])
            .arg(self.ca())
            .env("STEWARD_TOKEN", token)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

/// Opens `owner`'s WebSocket on a demo hub with the hub's own Origin and this cookie.
pub async fn demo_ws(d: &Demo, owner: &str, cookie: &str) -> Ws {
    ws_connect(
        &d.ca(),
        &format!("wss://127.0.0.1:{}/user/{owner}/ws", d.port),
        Some(&d.base),
        cookie,
    )
    .await
    .expect("ws")
}

/// Sends an op and returns the answer for it (result, denied or error).
pub async fn ws_op(ws: &mut Ws, id: &str, op: &str, target: &str) -> serde_json::Value {
    ws_send(
        ws,
        serde_json::json!({"type": "op", "id": id, "op": op, "target": target}),
    )
    .await;
    ws_until(ws, Duration::from_secs(60), |v| {
        v["id"] == id && ["result", "denied", "error"].contains(&v["type"].as_str().unwrap_or(""))
    })
    .await
}

/// Whether an `/hub/api/admin/servers` answer lists a running server of `owner`.
pub fn server_listed(v: &serde_json::Value, owner: &str) -> bool {
    v["servers"]
        .as_array()
        .is_some_and(|a| a.iter().any(|s| s["owner"] == owner))
}

impl Demo {
    /// Waits for `owner`'s prestarted server, then stops it through the admin API (as
    /// the admin logged in on `admin`), so that the next visit must start it.
    pub async fn stop_prestarted(&self, admin: &reqwest::Client, csrf: &str, owner: &str) {
        let url = format!("{}/hub/api/admin/servers", self.base);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server_listed(&get_json(admin, url.clone()).await, owner) {
            assert!(Instant::now() < deadline, "{owner}'s server never started");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let r = admin
            .post(format!("{}/hub/api/admin/servers/{owner}/stop", self.base))
            .header("x-csrf-token", csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(!server_listed(&get_json(admin, url).await, owner));
    }
}

impl Demo {
    /// Switches the demo's helper and hub configs so that the `batch`, `standby` and
    /// `nowhere` (a partition Slurm does not have) profiles go to the cluster `s` as
    /// `e2e` (every other start stays local); servers there get `remote_args`. Takes
    /// effect at the next `serve_with`.
    pub fn place_on_slurm(&self, s: &slurm::Slurm, remote_args: &[&str]) {
        let data = self.data.path();
        let spawn = data.join("spawn.toml");
        let text = std::fs::read_to_string(&spawn).unwrap();
        let text = match text.find("\n# --- slurm e2e") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        write_root_file(
            &spawn,
            &format!(
                r#"{text}
# --- slurm e2e
[slurm.e2e]
conf = "{conf}"
bootstrap_dir = "{data}/slurm-bootstrap"
timeout_secs = 20
[profiles.batch]
memory = "256M"
cpu = 1.0
[profiles.batch.slurm]
partition = "debug"
time_limit = "30"
[profiles.standby]
memory = "256M"
cpu = 1.0
[profiles.standby.slurm]
partition = "standby"
[profiles.nowhere]
memory = "256M"
[profiles.nowhere.slurm]
partition = "nosuch"
"#,
                conf = s.conf.display(),
                data = data.display()
            ),
        );
        let cfg = data.join("steward.toml");
        let text = std::fs::read_to_string(&cfg).unwrap();
        let text = match text.find("\n# --- slurm e2e") {
            Some(i) => text[..i]
                .lines()
                .filter(|l| !l.starts_with("remote_args = "))
                .map(|l| format!("{l}\n"))
                .collect(),
            // A fixed internal port: a job queued before a hub restart registers after it.
            None => text
                .replacen(
                    "[spawner]\n",
                    "[spawner]\nremote_hub_address = \"127.0.0.1\"\nstart_timeout_secs = 20\n",
                    1,
                )
                .replacen(
                    "data_dir =",
                    &format!(
                        "internal_listen = \"127.0.0.1:{}\"\ndata_dir =",
                        free_port()
                    ),
                    1,
                ),
        };
        // alice's servers are the test's to start: no prestart racing its stops.
        let text = text.replace(
            "prestart = [\"alice\", \"bob\", \"carl\"]",
            "prestart = [\"bob\", \"carl\"]",
        );
        let args: Vec<String> = remote_args.iter().map(|a| format!("{a:?}")).collect();
        write_root_file(
            &cfg,
            &format!(
                r#"{text}
# --- slurm e2e
[spawner.profile_backends]
batch = "slurm"
standby = "slurm"
nowhere = "slurm"
[spawner.slurm]
name = "e2e"
conf = "{conf}"
jobcomp_file = "{jobcomp}"
timeout_secs = 5
poll_secs = 2
"#,
                conf = s.conf.display(),
                jobcomp = s.jobcomp.display(),
            )
            .replace(
                "start_timeout_secs = 20\n",
                &format!(
                    "start_timeout_secs = 20\nremote_args = [{}]\n",
                    args.join(", ")
                ),
            ),
        );
    }
}

/// The pids in one of an owner's demo cgroups (v1 pids controller, prefix `steward-demo`;
/// `group` is `default` for the UI server, `workflows` for the schedulers).
pub fn cgroup_pids(owner: &str, group: &str) -> Vec<i32> {
    std::fs::read_to_string(format!(
        "/sys/fs/cgroup/pids/steward-demo/{owner}/{group}/cgroup.procs"
    ))
    .unwrap_or_default()
    .lines()
    .filter_map(|l| l.parse().ok())
    .collect()
}

pub fn signal(pids: &[i32], sig: nix::sys::signal::Signal) {
    for p in pids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), sig);
    }
}

impl Demo {
    /// The UI server's own log lines recording that it ran the operation with this id.
    pub fn server_ran(&self, owner: &str, rid: &str) -> Vec<String> {
        let dir = self.data.path().join("logs").join(owner);
        let mut out = vec![];
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            // One JSON line per event; an operation it ran has `rid` and `ok` fields.
            out.extend(
                text.lines()
                    .filter(|l| {
                        serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| {
                            v["fields"]["rid"] == rid && v["fields"]["ok"].is_boolean()
                        })
                    })
                    .map(String::from),
            );
        }
        out
    }
}
