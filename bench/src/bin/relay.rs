//! Relay benchmarks (issue 8): HTTP and WebSocket traffic through the hub beside the same
//! UI server reached directly and through configurable-http-proxy (CHP) 5.x, all in one
//! run; WebSocket operations per second and their p99 at 1,000/s; 10,000 idle WebSockets.
//!
//! Run as root: `sudo scripts/bench-relay.sh` (release build, installs CHP from npm).
//! `STEWARD_BENCH_CHP=/path/to/configurable-http-proxy` names the CHP executable; without
//! it the CHP columns are skipped. `STEWARD_BENCH_HAPROXY=/usr/sbin/haproxy` adds two
//! floors measured in the same run: HAProxy copying bytes (TCP mode, TLS end to end) and
//! HAProxy terminating and re-encrypting TLS, both deciding and signing nothing.
//! `STEWARD_BENCH_SECS` sets each measurement's length (default 4 s),
//! `STEWARD_BENCH_IDLE_WS` the idle connection count (default 10,000).
//!
//! Every path carries the same request to the same server: `GET /api/summary` with a
//! fresh single-use JWT (on every path but the hub's, the client signs it with the hub's
//! key, which is what the hub does per request), and `{"type":"ping","data":..}` echoed
//! by the UI server as `pong` for WebSocket round trips.

use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use steward_bench::*;
use steward_hub::pki::jwt::{Grant, TokenSigner};
use steward_protocol::bootstrap::uiserver_dns_name;
use steward_protocol::Operation;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Path {
    Direct,
    Hub,
    Chp,
    /// HAProxy copying bytes (TCP mode): TLS stays end to end between the client and
    /// the UI server, so this is what one more process and two more loopback hops cost,
    /// with no TLS, no parsing and no decisions.
    HaproxyTcp,
    /// HAProxy terminating TLS and re-encrypting to the UI server with a client
    /// certificate, as the hub does, but deciding, signing and recording nothing.
    HaproxyTls,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Direct => "direct",
            Path::Hub => "hub",
            Path::Chp => "CHP",
            Path::HaproxyTcp => "HAProxy TCP",
            Path::HaproxyTls => "HAProxy TLS",
        }
    }
}

struct Env {
    hub_port: u16,
    hub_origin: String,
    /// Trusts the hub's public certificate (also served by CHP).
    public_tls: Arc<rustls::ClientConfig>,
    /// alice's session cookie, elevated to execute.
    cookie: String,
    up_port: u16,
    up_dns: String,
    /// The hub's client identity towards UI servers.
    up_tls: Arc<rustls::ClientConfig>,
    signer: TokenSigner,
    chp_port: Option<u16>,
    /// HAProxy's TCP-mode and TLS-terminating ports.
    haproxy_ports: Option<(u16, u16)>,
}

impl Env {
    fn read_token(&self) -> String {
        let rid = format!("bench-{}", rand_id());
        self.signer
            .sign(Grant::read("alice", "alice", None, &rid))
            .expect("sign")
    }

    fn http_client(&self, path: Path) -> reqwest::Client {
        let b = reqwest::Client::builder()
            .http1_only()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(30));
        // The URL names `host(path)`; resolving it to loopback only matters where that
        // is the UI server's certificate name.
        b.use_preconfigured_tls((**self.tls(path)).clone())
            .resolve(
                self.host(path),
                std::net::SocketAddr::from(([127, 0, 0, 1], self.port(path))),
            )
            .build()
            .expect("client")
    }

    /// Whom a client on `path` talks TLS to: the UI server itself (with the hub's
    /// client identity) where TLS is end to end, the hub's public certificate where a
    /// proxy terminates it.
    fn tls(&self, path: Path) -> &Arc<rustls::ClientConfig> {
        match path {
            Path::Direct | Path::HaproxyTcp => &self.up_tls,
            Path::Hub | Path::Chp | Path::HaproxyTls => &self.public_tls,
        }
    }

    /// Where a client on `path` connects.
    fn port(&self, path: Path) -> u16 {
        match path {
            Path::Direct => self.up_port,
            Path::Hub => self.hub_port,
            Path::Chp => self.chp_port.expect("chp"),
            Path::HaproxyTcp => self.haproxy_ports.expect("haproxy").0,
            Path::HaproxyTls => self.haproxy_ports.expect("haproxy").1,
        }
    }

    /// The host a client names in its URL: the UI server's own certificate name where
    /// TLS reaches the UI server, the hub's public address where a proxy terminates it.
    fn host(&self, path: Path) -> &str {
        match path {
            Path::Direct | Path::HaproxyTcp => &self.up_dns,
            Path::Hub | Path::Chp | Path::HaproxyTls => "127.0.0.1",
        }
    }

    /// `https://host:port` plus the hub's route to alice's server, before `/api/..`
    /// or `/ws`.
    fn base(&self, path: Path) -> String {
        let prefix = if path == Path::Hub { "/user/alice" } else { "" };
        format!("{}:{}{prefix}", self.host(path), self.port(path))
    }

    fn summary_url(&self, path: Path) -> String {
        format!("https://{}/api/summary", self.base(path))
    }

    async fn ws(&self, path: Path) -> anyhow::Result<Ws> {
        let port = self.port(path);
        let tls = self.tls(path).clone();
        let mut req = format!("wss://{}/ws", self.base(path)).into_client_request()?;
        let h = req.headers_mut();
        match path {
            Path::Hub => {
                h.insert("cookie", self.cookie.parse()?);
                h.insert("origin", self.hub_origin.parse()?);
            }
            _ => {
                h.insert(
                    "authorization",
                    format!("Bearer {}", self.read_token()).parse()?,
                );
            }
        }
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        tcp.set_nodelay(true)?;
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(4 << 20))
            .max_frame_size(Some(4 << 20));
        let (ws, _) = tokio_tungstenite::client_async_tls_with_config(
            req,
            tcp,
            Some(config),
            Some(tokio_tungstenite::Connector::Rustls(tls)),
        )
        .await?;
        Ok(ws)
    }
}

/// `STEWARD_BENCH_ONLY=http,ws,ops,idle` runs a subset (default: all).
fn wanted(section: &str) -> bool {
    std::env::var("STEWARD_BENCH_ONLY")
        .map(|v| v.split(',').any(|s| s.trim() == section))
        .unwrap_or(true)
}

fn rand_id() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed) ^ ((std::process::id() as u64) << 40)
}

fn secs() -> Duration {
    Duration::from_secs_f64(
        std::env::var("STEWARD_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(4.0),
    )
}

/// `conns` keep-alive connections issuing requests back to back for `dur`:
/// (requests per second, median latency, errors).
async fn http_load(
    env: &Arc<Env>,
    path: Path,
    conns: usize,
    dur: Duration,
) -> (f64, Duration, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = vec![];
    for _ in 0..conns {
        let env = env.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let client = env.http_client(path);
            let url = env.summary_url(path);
            let mut lat = vec![];
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let req = client.get(&url);
                let req = match path {
                    Path::Hub => req.header("cookie", &env.cookie),
                    _ => req.bearer_auth(env.read_token()),
                };
                let failure = match req.send().await {
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(_) => {
                            lat.push((Instant::now(), t.elapsed()));
                            None
                        }
                        Err(e) => Some(e.to_string()),
                    },
                    Ok(r) => Some(format!(
                        "{} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )),
                    Err(e) => Some(format!("{e:?}")),
                };
                if let Some(f) = failure {
                    if errors == 0 {
                        eprintln!("{}: first failed request: {f}", path.name());
                    }
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    // Warm-up: connections and TLS sessions are set up before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    tokio::time::sleep(dur).await;
    let end = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let elapsed = end - start;
    let mut all = vec![];
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("task");
        all.extend(
            l.into_iter()
                .filter(|(done, _)| *done >= start && *done <= end)
                .map(|(_, lat)| lat),
        );
        errors += e;
    }
    let n = all.len();
    let (p50, _, _) = stats(all);
    (n as f64 / elapsed.as_secs_f64(), p50, errors)
}

fn ping_message(size: usize) -> String {
    let empty = r#"{"type":"ping","data":""}"#.len();
    format!(
        r#"{{"type":"ping","data":"{}"}}"#,
        "x".repeat(size.saturating_sub(empty))
    )
}

/// Sends `msg` and waits for the pong that echoes it.
async fn round_trip(ws: &mut Ws, msg: &str) -> anyhow::Result<()> {
    ws.send(Message::text(msg)).await?;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .map_err(|_| anyhow::anyhow!("no pong within 10 s"))?;
        match next {
            Some(Ok(Message::Text(t))) if t.as_str().starts_with(r#"{"type":"pong""#) => {
                anyhow::ensure!(
                    t.len() == msg.len(),
                    "pong of {} bytes for {}",
                    t.len(),
                    msg.len()
                );
                return Ok(());
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("connection closed"),
        }
    }
}

/// `conns` WebSockets doing ping/pong round trips of `size` bytes back to back for
/// `dur`: round trips per second and the median round trip.
async fn ws_load(
    env: &Arc<Env>,
    path: Path,
    conns: usize,
    size: usize,
    dur: Duration,
) -> (f64, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let msg = Arc::new(ping_message(size));
    let mut tasks = vec![];
    for _ in 0..conns {
        let env = env.clone();
        let stop = stop.clone();
        let msg = msg.clone();
        tasks.push(tokio::spawn(async move {
            let mut ws = env.ws(path).await.expect("ws connect");
            // The first round trip also swallows the snapshot sent on connect.
            round_trip(&mut ws, &msg).await.expect("first round trip");
            let mut lat = vec![];
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                round_trip(&mut ws, &msg).await.expect("round trip");
                lat.push((Instant::now(), t.elapsed()));
            }
            let _ = ws.close(None).await;
            lat
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    tokio::time::sleep(dur).await;
    let end = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let elapsed = end - start;
    let mut all = vec![];
    for t in tasks {
        all.extend(
            t.await
                .expect("task")
                .into_iter()
                .filter(|(done, _)| *done >= start && *done <= end)
                .map(|(_, lat)| lat),
        );
    }
    let n = all.len();
    let (p50, _, _) = stats(all);
    (n as f64 / elapsed.as_secs_f64(), p50)
}

/// An operation message; `env` signs it for the direct path (the hub signs its own).
fn signed_op(env: &Env, path: Path, id: &str) -> String {
    match path {
        Path::Hub => op_message(id),
        _ => {
            let token = env
                .signer
                .sign(Grant {
                    owner: "alice",
                    actor: "alice",
                    ops: vec![Operation::Pause],
                    workflow: Some("housekeeping".into()),
                    request_id: id,
                })
                .expect("sign");
            format!(
                r#"{{"type":"op","id":"{id}","op":"pause","target":"housekeeping","token":"{token}"}}"#
            )
        }
    }
}

fn op_message(id: &str) -> String {
    // Pausing a workflow that is not running: the UI server checks the token (signature,
    // audience, op, workflow, replay) and answers at once without a scheduler round trip,
    // so the figure is the hub's pipeline, not the scheduler's.
    format!(r#"{{"type":"op","id":"{id}","op":"pause","target":"housekeeping"}}"#)
}

fn is_answer(t: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(t).ok()?;
    match v["type"].as_str()? {
        "result" | "denied" | "error" => v["id"].as_str().map(str::to_string),
        _ => None,
    }
}

/// Operations over `conns` hub WebSockets, each with `window` in flight, for `dur`:
/// operations answered per second.
async fn ops_throughput(env: &Arc<Env>, conns: usize, window: usize, dur: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = vec![];
    for c in 0..conns {
        let env = env.clone();
        let stop = stop.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut ws = env.ws(Path::Hub).await.expect("ws connect");
            let mut n = 0u64;
            for _ in 0..window {
                n += 1;
                ws.send(Message::text(op_message(&format!("{c}-{n}"))))
                    .await
                    .expect("send");
            }
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    if let Some(id) = is_answer(t.as_str()) {
                        assert!(
                            t.as_str().contains("\"result\""),
                            "operation {id} not relayed: {t}"
                        );
                        done.fetch_add(1, Ordering::Relaxed);
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        n += 1;
                        ws.send(Message::text(op_message(&format!("{c}-{n}"))))
                            .await
                            .expect("send");
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start_count = done.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(dur).await;
    let count = done.load(Ordering::Relaxed) - start_count;
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    count as f64 / elapsed.as_secs_f64()
}

/// Operations sent at `rate` per second in total over `conns` connections for `dur`,
/// each timed from send to its result: (median, p99, max, count).
async fn ops_latency(
    env: &Arc<Env>,
    path: Path,
    conns: usize,
    rate: f64,
    dur: Duration,
) -> (Duration, Duration, Duration, usize) {
    let per_conn = Duration::from_secs_f64(conns as f64 / rate);
    let mut tasks = vec![];
    for c in 0..conns {
        let env = env.clone();
        tasks.push(tokio::spawn(async move {
            let ws = env.ws(path).await.expect("ws connect");
            let (mut tx, mut rx) = ws.split();
            let sent: Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>> =
                Default::default();
            let sent2 = sent.clone();
            let reader = tokio::spawn(async move {
                let mut lat = vec![];
                while let Some(Ok(m)) = rx.next().await {
                    if let Message::Text(t) = m {
                        if let Some(id) = is_answer(t.as_str()) {
                            let t0 = sent2.lock().unwrap().remove(&id);
                            if let Some(t0) = t0 {
                                lat.push(t0.elapsed());
                            }
                            if id == "last" {
                                break;
                            }
                        }
                    }
                }
                lat
            });
            // Stagger connections so sends spread evenly over each period.
            tokio::time::sleep(per_conn.mul_f64(c as f64 / conns as f64)).await;
            let mut tick = tokio::time::interval(per_conn);
            let end = Instant::now() + dur;
            let mut n = 0u64;
            while Instant::now() < end {
                tick.tick().await;
                n += 1;
                let id = format!("{c}-{n}");
                let msg = signed_op(&env, path, &id);
                sent.lock().unwrap().insert(id, Instant::now());
                tx.send(Message::text(msg)).await.expect("send");
            }
            let msg = signed_op(&env, path, "last");
            sent.lock().unwrap().insert("last".into(), Instant::now());
            tx.send(Message::text(msg)).await.expect("send");
            let lat = reader.await.expect("reader");
            let _ = tx.close().await;
            lat
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let n = all.len();
    let (p50, p99, max) = stats(all);
    (p50, p99, max, n)
}

fn raise_fd_limit() {
    use nix::sys::resource::{setrlimit, Resource};
    // Children (the hub, and through the helper the UI server) inherit it.
    if setrlimit(Resource::RLIMIT_NOFILE, 200_000, 200_000).is_err() {
        // A container may forbid raising the hard limit even to root: use all of it.
        let raised = nix::sys::resource::getrlimit(Resource::RLIMIT_NOFILE)
            .and_then(|(_, hard)| setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map(|_| hard));
        match raised {
            Ok(hard) => eprintln!("open-file limit: {hard} (the hard limit; 200,000 refused)"),
            Err(e) => eprintln!("cannot raise the open-file limit: {e}"),
        }
    }
}

/// Makes the UI server's certificate name resolve to loopback, so CHP can verify it as
/// JupyterHub's internal SSL does; the line is removed again by [`unmap_host`].
fn map_host(name: &str) -> anyhow::Result<()> {
    let hosts = std::fs::read_to_string("/etc/hosts")?;
    let line = format!("127.0.0.1 {name} {HOSTS_MARK}");
    if !hosts.lines().any(|l| l == line) {
        std::fs::write("/etc/hosts", format!("{}\n{line}\n", hosts.trim_end()))?;
    }
    Ok(())
}

const HOSTS_MARK: &str = "# steward relay benchmark";

fn unmap_host() {
    if let Ok(hosts) = std::fs::read_to_string("/etc/hosts") {
        let kept: Vec<&str> = hosts.lines().filter(|l| !l.ends_with(HOSTS_MARK)).collect();
        let _ = std::fs::write("/etc/hosts", kept.join("\n") + "\n");
    }
}

fn start_chp(
    chp: &std::path::Path,
    env_dir: &std::path::Path,
    up_dns: &str,
    up_port: u16,
    data: &std::path::Path,
) -> anyhow::Result<(std::process::Child, u16)> {
    // Removed again by `Baselines` once CHP has started, here if it does not.
    map_host(up_dns)?;
    let port = free_port();
    let api_port = free_port();
    let mut child = std::process::Command::new(chp)
        .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
        .args(["--api-ip", "127.0.0.1", "--api-port", &api_port.to_string()])
        .args(["--default-target", &format!("https://{up_dns}:{up_port}")])
        .arg("--ssl-cert")
        .arg(data.join("tls/hub.crt"))
        .arg("--ssl-key")
        .arg(data.join("tls/hub.key"))
        .arg("--client-ssl-cert")
        .arg(env_dir.join("proxy-client.crt"))
        .arg("--client-ssl-key")
        .arg(env_dir.join("proxy-client.key"))
        .arg("--client-ssl-ca")
        .arg(env_dir.join("internal-ca.crt"))
        .args(["--log-level", "error"])
        .env("CONFIGPROXY_AUTH_TOKEN", "bench")
        .stdout(std::process::Stdio::null())
        .spawn()
        .inspect_err(|_| unmap_host())?;
    wait_listening(&mut child, port, "CHP").inspect_err(|_| unmap_host())?;
    Ok((child, port))
}

/// The baseline proxies that started. Dropping it stops them and removes CHP's
/// `/etc/hosts` line, so an error anywhere in the run leaves neither behind.
#[derive(Default)]
struct Baselines {
    chp: Option<(std::process::Child, u16)>,
    haproxy: Option<(std::process::Child, (u16, u16))>,
}

impl Drop for Baselines {
    fn drop(&mut self) {
        if let Some((c, _)) = &mut self.chp {
            let _ = c.kill();
            let _ = c.wait();
            unmap_host();
        }
        if let Some((c, _)) = &mut self.haproxy {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts the baseline proxy whose executable the environment variable `var` names. One
/// that is not configured or fails to start is reported and skipped, so the hub and its
/// servers are still measured and stopped.
fn start_baseline<T>(
    var: &str,
    what: &str,
    start: impl FnOnce(&std::path::Path) -> anyhow::Result<T>,
) -> Option<T> {
    let Some(exe) = std::env::var_os(var) else {
        eprintln!("{var} not set: skipping {what}");
        return None;
    };
    start(std::path::Path::new(&exe))
        .map_err(|e| eprintln!("skipping {what}: {e:#}"))
        .ok()
}

/// A baseline proxy's identity towards the UI server (`proxy-client.crt`/`.key`, and
/// both in `proxy-client.pem`): a certificate from the hub's internal CA, which the UI
/// server requires of every client; and that CA (`internal-ca.crt`) to verify it by.
fn proxy_identity(env_dir: &std::path::Path, data: &std::path::Path) -> anyhow::Result<()> {
    let ca = steward_hub::pki::ca::Ca::load_or_create(&data.join("state"))?;
    let id = ca.issue_uiserver("bench", "proxy")?;
    std::fs::write(env_dir.join("proxy-client.crt"), &id.cert_pem)?;
    std::fs::write(env_dir.join("proxy-client.key"), &id.key_pem)?;
    std::fs::write(
        env_dir.join("proxy-client.pem"),
        format!("{}{}", id.cert_pem, id.key_pem),
    )?;
    std::fs::write(env_dir.join("internal-ca.crt"), &ca.ca_pem)?;
    Ok(())
}

fn wait_listening(child: &mut std::process::Child, port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("{what} exited ({status}) before listening on port {port}");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("{what} did not start listening on port {port} within 20 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// HAProxy with two front ends to the same UI server: TCP mode (bytes copied, TLS end
/// to end) and HTTP mode terminating TLS with the hub's certificate and re-encrypting
/// with a client certificate. Two threads, like the hub's two workers.
fn start_haproxy(
    haproxy: &std::path::Path,
    env_dir: &std::path::Path,
    up_dns: &str,
    up_port: u16,
    data: &std::path::Path,
) -> anyhow::Result<(std::process::Child, (u16, u16))> {
    let public_pem = env_dir.join("haproxy-public.pem");
    std::fs::write(
        &public_pem,
        std::fs::read_to_string(data.join("tls/hub.crt"))?
            + &std::fs::read_to_string(data.join("tls/hub.key"))?,
    )?;
    let (tcp_port, tls_port) = (free_port(), free_port());
    let cfg = format!(
        "global
    nbthread 2
    # Far above the benchmark's 64 connections, and within a 20,000 open-file limit.
    maxconn 4000
defaults
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
frontend tcp_in
    mode tcp
    bind 127.0.0.1:{tcp_port}
    default_backend tcp_up
backend tcp_up
    mode tcp
    server up 127.0.0.1:{up_port}
frontend tls_in
    mode http
    bind 127.0.0.1:{tls_port} ssl crt {public}
    default_backend tls_up
backend tls_up
    mode http
    http-reuse always
    server up 127.0.0.1:{up_port} ssl verify required ca-file {ca} verifyhost {up_dns} sni str({up_dns}) crt {client}
",
        public = public_pem.display(),
        ca = env_dir.join("internal-ca.crt").display(),
        client = env_dir.join("proxy-client.pem").display(),
    );
    let cfg_path = env_dir.join("haproxy.cfg");
    std::fs::write(&cfg_path, cfg)?;
    let mut child = std::process::Command::new(haproxy)
        .arg("-db")
        .arg("-f")
        .arg(&cfg_path)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    wait_listening(&mut child, tcp_port, "HAProxy")?;
    wait_listening(&mut child, tls_port, "HAProxy")?;
    Ok((child, (tcp_port, tls_port)))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Records in the current audit file and every rotated one (`audit-<seq>.jsonl`): a
/// long operation run rotates the log at 64 MiB.
fn audit_record_count(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("audit") && name.ends_with(".jsonl")
        })
        .filter_map(|e| std::fs::read(e.path()).ok())
        .map(|bytes| bytes.iter().filter(|&&b| b == b'\n').count())
        .sum()
}

fn public_tls(ca_pem: &std::path::Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca_pem)? {
        roots.add(c?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

async fn login(
    base: &str,
    tls: &Arc<rustls::ClientConfig>,
    user: &str,
    pw: &str,
) -> anyhow::Result<(String, String)> {
    let c = reqwest::Client::builder()
        .use_preconfigured_tls((**tls).clone())
        .build()?;
    let r = c
        .post(format!("{base}/hub/api/login"))
        .json(&serde_json::json!({"username": user, "password": pw}))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "login {user}: {}", r.status());
    let cookie = set_cookie(&r)?;
    let v: serde_json::Value = r.json().await?;
    let csrf = v["csrf"].as_str().unwrap_or_default().to_string();
    Ok((cookie, csrf))
}

fn set_cookie(r: &reqwest::Response) -> anyhow::Result<String> {
    Ok(r.headers()
        .get("set-cookie")
        .ok_or_else(|| anyhow::anyhow!("no session cookie"))?
        .to_str()?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string())
}

/// The median rate and the median p50 over several rounds.
fn median_round(rounds: impl Iterator<Item = (f64, Duration)>) -> (f64, Duration) {
    let (mut rates, mut lats): (Vec<f64>, Vec<Duration>) = rounds.unzip();
    rates.sort_by(|a, b| a.total_cmp(b));
    lats.sort();
    (
        rates.get(rates.len() / 2).copied().unwrap_or(0.0),
        lats.get(lats.len() / 2).copied().unwrap_or_default(),
    )
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}×", a / b)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    require_root();
    raise_fd_limit();
    let exe_dir = std::env::current_exe()?
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no exe dir"))?
        .to_path_buf();
    let steward = exe_dir.join("steward");
    let (data, cfg, creds) = demo_data_dir_with_credentials(&exe_dir)?;
    let pw = |u: &str| {
        creds
            .iter()
            .find(|(n, _)| n == u)
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    };
    let idle_target: usize = std::env::var("STEWARD_BENCH_IDLE_WS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let hub_port = free_port();
    let text = std::fs::read_to_string(&cfg)?
        .replace("127.0.0.1:0", &format!("127.0.0.1:{hub_port}"))
        .replace(
            "prestart = [\"alice\", \"bob\", \"carl\"]",
            "prestart = [\"alice\"]",
        )
        + &format!(
            "\n[limits]\nops_per_sec = 1000000\nws_per_user = {}\n",
            idle_target + 1000
        );
    std::fs::write(&cfg, text)?;
    // The UI server holds one connection per hub WebSocket: give it room for the idle test.
    let spawn_cfg = data.path().join("spawn.toml");
    let spawn_text = std::fs::read_to_string(&spawn_cfg)?.replace(
        "memory = \"1G\"\ncpu = 1.0\npids = 512",
        "memory = \"2G\"\ncpu = 2.0\npids = 512",
    );
    std::fs::write(&spawn_cfg, spawn_text)?;

    let (mut hub, _) = start_hub(&steward, &cfg);
    let base = format!("https://127.0.0.1:{hub_port}");
    let public_tls = public_tls(&data.path().join("tls/ca.crt"))?;

    // alice, elevated to execute (for the operation benchmarks).
    let (cookie, csrf) = login(&base, &public_tls, "alice", &pw("alice")).await?;
    let c = reqwest::Client::builder()
        .use_preconfigured_tls((*public_tls).clone())
        .build()?;
    let r = c
        .post(format!("{base}/hub/api/elevate"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&serde_json::json!({"class": "execute", "password": pw("alice")}))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "elevate: {}", r.status());
    let cookie = set_cookie(&r)?;

    // Where alice's server listens (admin API, as carl).
    let (carl, _) = login(&base, &public_tls, "carl", &pw("carl")).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (up_port, up_name) = loop {
        let v: serde_json::Value = c
            .get(format!("{base}/hub/api/admin/servers"))
            .header("cookie", &carl)
            .send()
            .await?
            .json()
            .await?;
        let found = v["servers"].as_array().and_then(|a| {
            a.iter().find(|s| s["owner"] == "alice").map(|s| {
                (
                    s["port"].as_u64().unwrap_or(0) as u16,
                    s["server"].as_str().unwrap_or("default").to_string(),
                )
            })
        });
        if let Some(f) = found {
            break f;
        }
        anyhow::ensure!(Instant::now() < deadline, "alice's server did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let state_dir = data.path().join("state");
    let ca = steward_hub::pki::ca::Ca::load_or_create(&state_dir)?;
    let signer = TokenSigner::load_or_create(&state_dir.join("jwt-ed25519.der"))?;
    let work = tempfile::tempdir()?;
    let up_tls = ca.client_config()?;
    let up_dns = uiserver_dns_name("alice", &up_name);
    proxy_identity(work.path(), data.path())?;
    let baselines = Baselines {
        chp: start_baseline(
            "STEWARD_BENCH_CHP",
            "the configurable-http-proxy baseline",
            |exe| start_chp(exe, work.path(), &up_dns, up_port, data.path()),
        ),
        haproxy: start_baseline(
            "STEWARD_BENCH_HAPROXY",
            "the HAProxy floor baselines",
            |exe| start_haproxy(exe, work.path(), &up_dns, up_port, data.path()),
        ),
    };
    let env = Arc::new(Env {
        hub_port,
        hub_origin: base.clone(),
        public_tls,
        cookie,
        up_port,
        up_dns,
        up_tls,
        signer,
        chp_port: baselines.chp.as_ref().map(|(_, p)| *p),
        haproxy_ports: baselines.haproxy.as_ref().map(|(_, p)| *p),
    });
    let mut paths = vec![Path::Direct, Path::Hub];
    if baselines.chp.is_some() {
        paths.push(Path::Chp);
    }
    if baselines.haproxy.is_some() {
        paths.extend([Path::HaproxyTcp, Path::HaproxyTls]);
    }
    let dur = secs();
    println!(
        "machine: {} cores; load average {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    // HTTP: throughput at 64 connections, latency at 1. Three rounds, paths interleaved.
    for conns in [64usize, 1].into_iter().filter(|_| wanted("http")) {
        let mut results: Vec<Vec<(f64, Duration, u64)>> = vec![vec![]; paths.len()];
        for _ in 0..3 {
            for (i, p) in paths.iter().enumerate() {
                results[i].push(http_load(&env, *p, conns, dur).await);
            }
        }
        let med = |v: &Vec<(f64, Duration, u64)>| {
            let (rate, p50) = median_round(v.iter().map(|r| (r.0, r.1)));
            (rate, p50, v.iter().map(|r| r.2).sum::<u64>())
        };
        let direct = med(&results[0]);
        for (i, p) in paths.iter().enumerate() {
            let m = med(&results[i]);
            println!(
                "HTTP GET /api/summary, {conns} conn: {:>11} {:>9.0} req/s ({} of direct), p50 {} (+{}), errors {}",
                p.name(),
                m.0,
                ratio(m.0, direct.0),
                us(m.1),
                us(m.1.saturating_sub(direct.1)),
                m.2
            );
        }
    }

    // WebSocket ping/pong (not operations): 100 B and 64 KiB, 1 and 16 connections.
    for size in [100usize, 64 * 1024].into_iter().filter(|_| wanted("ws")) {
        for conns in [1usize, 16] {
            let mut results: Vec<Vec<(f64, Duration)>> = vec![vec![]; paths.len()];
            for _ in 0..3 {
                for (i, p) in paths.iter().enumerate() {
                    results[i].push(ws_load(&env, *p, conns, size, dur).await);
                }
            }
            let med = |v: &Vec<(f64, Duration)>| median_round(v.iter().copied());
            let direct = med(&results[0]);
            for (i, p) in paths.iter().enumerate() {
                let m = med(&results[i]);
                println!(
                    "WebSocket {size} B round trips, {conns} conn: {:>11} {:>8.0}/s ({} of direct), p50 {}",
                    p.name(),
                    m.0,
                    ratio(m.0, direct.0),
                    us(m.1)
                );
            }
        }
    }

    // Operations through the hub (parse, decide, durable intent, sign, relay, outcome).
    let audit_before = audit_record_count(&data.path().join("audit"));
    for (conns, window) in [(16usize, 4usize), (64, 4)]
        .into_iter()
        .filter(|_| wanted("ops"))
    {
        let rate = ops_throughput(&env, conns, window, dur).await;
        println!("WebSocket operations through the hub, {conns} conn × {window} in flight: {rate:.0} ops/s");
    }
    for path in [Path::Direct, Path::Hub]
        .into_iter()
        .filter(|_| wanted("ops"))
    {
        let (p50, p99, max, n) = ops_latency(&env, path, 10, 1000.0, Duration::from_secs(10)).await;
        println!(
            "WebSocket operations at 1,000/s (10 conn, 10 s, n={n}): {:>6} p50 {} p99 {} max {}",
            path.name(),
            ms(p50),
            ms(p99),
            ms(max)
        );
    }
    let audit_after = audit_record_count(&data.path().join("audit"));
    println!(
        "audit records written during the operation runs: {}",
        audit_after.saturating_sub(audit_before)
    );

    // Idle WebSockets: each one is a browser connection plus a relay to the UI server.
    let idle_target = if wanted("idle") { idle_target } else { 0 };
    let rss_before = rss_kib(hub.id());
    let t = Instant::now();
    let mut idle = Vec::with_capacity(idle_target);
    let mut failures = 0usize;
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut pending = futures_util::stream::FuturesUnordered::new();
    for _ in 0..idle_target {
        let env = env.clone();
        let sem = sem.clone();
        pending.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.ok()?;
            env.ws(Path::Hub).await.ok()
        }));
    }
    while let Some(r) = pending.next().await {
        match r {
            Ok(Some(ws)) => idle.push(ws),
            _ => failures += 1,
        }
    }
    let opened = t.elapsed();
    if idle_target > 0 {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let hub_rss = rss_kib(hub.id());
    let up_pid: u32 =
        std::fs::read_to_string("/sys/fs/cgroup/pids/steward-demo/alice/default/cgroup.procs")?
            .lines()
            .next()
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
    println!(
        "{} idle WebSockets through the hub ({failures} failed) opened in {:.1} s: hub RSS {:.0} MiB (before {:.0} MiB); alice's UI server RSS {:.0} MiB",
        idle.len(),
        opened.as_secs_f64(),
        hub_rss as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        rss_kib(up_pid) as f64 / 1024.0
    );
    drop(idle);

    drop(baselines);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(hub.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    hub.wait()?;
    // Stop the servers and workflows the benchmark's hub left running (logging in as
    // carl for the admin API starts his server too).
    for (user, server) in ["alice", "carl"]
        .into_iter()
        .flat_map(|u| [(u, "default"), (u, "workflows")])
    {
        let _ = std::process::Command::new(data.path().join("bin/steward-spawn"))
            .arg("--config")
            .arg(&spawn_cfg)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                if let Some(mut i) = c.stdin.take() {
                    i.write_all(format!("{{\"verb\":\"stop\",\"user\":\"{user}\",\"server\":\"{server}\",\"grace_secs\":0}}").as_bytes())?;
                }
                c.wait()
            });
    }
    Ok(())
}
