//! The real Cylc UI server behind Steward beside the same behind JupyterHub 6.1.1 +
//! configurable-http-proxy, in one run on one machine (issue 22):
//!
//! 1. spawn-to-ready of alice's `cylc hubapp`: Steward, from the visit that starts it
//!    to the Cylc UI's page answered through the hub; JupyterHub, from
//!    `POST /hub/api/users/alice/server` to its page answered through the proxy;
//! 2. a `pause`/`resume` mutation's round trip, as alice on her own workflow (the
//!    owner: both stacks' own checks allow it), through Steward's hub (decided and
//!    audited, write-ahead) and through configurable-http-proxy.
//!
//! Both stacks run the same venv's `cylc hubapp` as alice. JupyterHub runs as root with
//! its LocalProcessSpawner (setuid to alice), the DummyAuthenticator, and the proxy
//! from npm (5.x, installed once into /var/cache/steward-bench/chp, as for the relay
//! benchmark).
//!
//! Run: `cargo build --release --workspace --bins && sudo target/release/cylc`
//! (`--spawns N`, `--mutations N`).

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use steward_bench::*;
use steward_e2e::cylc::{venv, CylcUser, Workflow};
use steward_e2e::Demo;

const WF: &str = "demo-forecast";
/// The proxy `scripts/bench-relay.sh` uses too (same directory, same major version).
const CHP_SPEC: &str = "configurable-http-proxy@5";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn chp() -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from("/var/cache/steward-bench/chp");
    let exe = dir.join("node_modules/.bin/configurable-http-proxy");
    if !exe.exists() {
        std::fs::create_dir_all(&dir)?;
        let st = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg(CHP_SPEC)
            .status()?;
        anyhow::ensure!(st.success(), "npm install configurable-http-proxy failed");
    }
    Ok(exe)
}

fn report(what: &str, v: Vec<Duration>) -> Duration {
    let n = v.len();
    let (med, p99, max) = stats(v);
    println!(
        "{what}: n={n} median {} p99 {} max {}",
        ms(med),
        ms(p99),
        ms(max)
    );
    med
}

#[allow(clippy::await_holding_lock)]
async fn steward_side(
    spawns: usize,
    mutations: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let _lock = steward_e2e::demo_lock();
    let d = Demo::start_with_args(&["--cylc"]);
    let alice_user = CylcUser::existing("alice");
    let wf = Workflow::adopt(&alice_user, WF);
    wf.wait_for(Duration::from_secs(120), Workflow::status, |s| {
        s.as_deref() == Some("running")
    });
    let (alice, csrf) = d.login("alice").await;
    let page = format!("{}/user/alice/cylc/", d.base);
    let mut spawn_times = vec![];
    for _ in 0..spawns {
        // Stop the server (the owner may), then time the visit that starts it again.
        let r = alice
            .delete(format!("{}/hub/api/server", d.base))
            .header("x-csrf-token", &csrf)
            .send()
            .await?;
        anyhow::ensure!(
            r.status() == 200 || r.status() == 404,
            "stop: {}",
            r.status()
        );
        let t = Instant::now();
        let r = alice.get(&page).send().await?;
        anyhow::ensure!(r.status() == 200, "page: {}", r.status());
        r.bytes().await?;
        spawn_times.push(t.elapsed());
    }
    let (_, _) = d.elevate(&alice, &csrf, "alice", "execute").await;
    let mut rtts = vec![];
    for i in 0..mutations + 2 {
        let m = if i % 2 == 0 { "pause" } else { "resume" };
        let q = format!(r#"mutation {{ {m}(workflows: ["~alice/{WF}"]) {{ result }} }}"#);
        let t = Instant::now();
        let r = alice
            .post(format!("{}/user/alice/cylc/graphql", d.base))
            .header("origin", &d.base)
            .json(&json!({ "query": q }))
            .send()
            .await?;
        let v: Value = r.json().await?;
        let took = t.elapsed();
        anyhow::ensure!(
            v["data"][m]["result"].is_array(),
            "{m} through Steward: {v}"
        );
        // The first two warm the connection pools.
        if i >= 2 {
            rtts.push(took);
        }
    }
    // The JupyterHub side starts its own: leave no server of alice's behind.
    let _ = alice
        .delete(format!("{}/hub/api/server", d.base))
        .header("x-csrf-token", &csrf)
        .send()
        .await;
    drop(wf);
    Ok((spawn_times, rtts))
}

struct JupyterHub {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for JupyterHub {
    fn drop(&mut self) {
        // SIGTERM: the hub stops its proxy; servers are stopped through the API first.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

fn start_jupyterhub(port: u16, token: &str) -> anyhow::Result<JupyterHub> {
    let dir = tempfile::Builder::new()
        .prefix("steward-bench-jh-")
        .tempdir_in("/tmp")?;
    let hub_port = steward_e2e::free_port();
    let api_port = steward_e2e::free_port();
    let venv = venv();
    let config = format!(
        r#"
c.JupyterHub.ip = '127.0.0.1'
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = '127.0.0.1'
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{api_port}'
c.ConfigurableHTTPProxy.command = [{chp:?}]
c.JupyterHub.db_url = 'sqlite:///{dir}/jupyterhub.sqlite'
c.JupyterHub.cookie_secret_file = '{dir}/cookie_secret'
c.JupyterHub.pid_file = '{dir}/jupyterhub.pid'
c.JupyterHub.authenticator_class = 'dummy'
c.DummyAuthenticator.password = 'bench-only'
c.Authenticator.allowed_users = {{'alice'}}
c.Spawner.cmd = ['{venv}/bin/cylc', 'hubapp']
c.Spawner.default_url = '/cylc'
c.Spawner.environment = {{'PATH': '{venv}/bin:/usr/bin:/bin'}}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.JupyterHub.services = [{{'name': 'bench', 'api_token': '{token}'}}]
c.JupyterHub.load_roles = [{{'name': 'bench', 'scopes': ['admin:users', 'admin:servers', 'tokens', 'access:servers'], 'services': ['bench']}}]
"#,
        chp = chp()?.display().to_string(),
        dir = dir.path().display(),
        venv = venv.display(),
    );
    let cfg = dir.path().join("jupyterhub_config.py");
    std::fs::write(&cfg, config)?;
    let child = Command::new(venv.join("bin/jupyterhub"))
        .arg("-f")
        .arg(&cfg)
        .current_dir(dir.path())
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", venv.join("bin").display()),
        )
        .stdout(std::fs::File::create(dir.path().join("hub.log"))?)
        .stderr(std::fs::File::create(dir.path().join("hub.err"))?)
        .spawn()?;
    Ok(JupyterHub { child, _dir: dir })
}

async fn jupyterhub_side(
    spawns: usize,
    mutations: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let alice_user = CylcUser::existing("alice");
    // The demo's workflow, played again for this side (the Steward side stopped it).
    steward_hub::cli::demo::play_cylc_workflow(&venv())?;
    let wf = Workflow::adopt(&alice_user, WF);
    wf.wait_for(Duration::from_secs(120), Workflow::status, |s| {
        s.as_deref() == Some("running")
    });
    let port = steward_e2e::free_port();
    let token = format!("bench{}", rand_token());
    let hub = start_jupyterhub(port, &token)?;
    let base = format!("http://127.0.0.1:{port}");
    let api = format!("{base}/hub/api");
    // Plain HTTP to JupyterHub; reqwest still wants a TLS configuration.
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let c = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let auth = format!("token {token}");
    // Up: the API answers.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = c.get(format!("{api}/")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        if Instant::now() >= deadline {
            let log = std::fs::read_to_string(hub._dir.path().join("hub.err")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            anyhow::bail!(
                "JupyterHub did not start; its log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = c
        .post(format!("{api}/users/alice"))
        .header("authorization", &auth)
        .send()
        .await?;
    anyhow::ensure!(
        r.status().is_success() || r.status() == 409,
        "create alice: {}",
        r.status()
    );
    // alice's own token: the owner on her own server, as on the Steward side.
    let r = c
        .post(format!("{api}/users/alice/tokens"))
        .header("authorization", &auth)
        .json(&json!({"note": "bench", "scopes": ["access:servers!user=alice", "read:users:name!user=alice"]}))
        .send()
        .await?;
    let v: Value = r.json().await?;
    let alice_token = v["token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no token for alice: {v}"))?
        .to_string();
    let alice_auth = format!("token {alice_token}");
    let page = format!("{base}/user/alice/cylc/");
    let mut spawn_times = vec![];
    for _ in 0..spawns {
        let t = Instant::now();
        let r = c
            .post(format!("{api}/users/alice/server"))
            .header("authorization", &auth)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "spawn: {}", r.status());
        // Ready when the page answers through the proxy.
        loop {
            let r = c
                .get(&page)
                .header("authorization", &alice_auth)
                .send()
                .await?;
            if r.status() == 200 {
                r.bytes().await?;
                break;
            }
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(120),
                "never ready: {}",
                r.status()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        spawn_times.push(t.elapsed());
        let r = c
            .delete(format!("{api}/users/alice/server"))
            .header("authorization", &auth)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "stop: {}", r.status());
        // Stopped (the spawner's stop is asynchronous behind a 202).
        let stop_deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v: Value = c
                .get(format!("{api}/users/alice"))
                .header("authorization", &auth)
                .send()
                .await?
                .json()
                .await?;
            if v["servers"].as_object().is_none_or(|s| s.is_empty()) {
                break;
            }
            anyhow::ensure!(Instant::now() < stop_deadline, "never stopped: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // One more start for the mutations.
    c.post(format!("{api}/users/alice/server"))
        .header("authorization", &auth)
        .send()
        .await?;
    let ready_deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = c
            .get(&page)
            .header("authorization", &alice_auth)
            .send()
            .await?;
        if r.status() == 200 {
            break;
        }
        anyhow::ensure!(Instant::now() < ready_deadline, "never ready for mutations");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // As the Cylc UI does in a browser: the server's `_xsrf` cookie, echoed in
    // `X-XSRFToken` (the server's XSRF check stays on here, as JupyterHub leaves it).
    let mut xsrf = None;
    for path in ["cylc/", "cylc/userprofile", "api/status"] {
        let r = c
            .get(format!("{base}/user/alice/{path}"))
            .header("authorization", &alice_auth)
            .send()
            .await?;
        for v in r.headers().get_all("set-cookie") {
            if let Some(rest) = v.to_str().ok().and_then(|v| v.strip_prefix("_xsrf=")) {
                xsrf = rest.split(';').next().map(str::to_string);
            }
        }
        if xsrf.is_some() {
            break;
        }
    }
    let xsrf = xsrf.ok_or_else(|| anyhow::anyhow!("the server set no _xsrf cookie"))?;
    let mut rtts = vec![];
    for i in 0..mutations + 2 {
        let m = if i % 2 == 0 { "pause" } else { "resume" };
        let q = format!(r#"mutation {{ {m}(workflows: ["~alice/{WF}"]) {{ result }} }}"#);
        let t = Instant::now();
        let r = c
            .post(format!("{base}/user/alice/cylc/graphql"))
            .header("authorization", &alice_auth)
            .header("x-xsrftoken", &xsrf)
            .header("cookie", format!("_xsrf={xsrf}"))
            .json(&json!({ "query": q }))
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        let took = t.elapsed();
        let v: Value = serde_json::from_str(&text).unwrap_or(json!({"raw": text}));
        anyhow::ensure!(
            v["data"][m]["result"].is_array(),
            "{m} through configurable-http-proxy: HTTP {status} {v}"
        );
        if i >= 2 {
            rtts.push(took);
        }
    }
    let _ = c
        .delete(format!("{api}/users/alice/server"))
        .header("authorization", &auth)
        .send()
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(hub);
    drop(wf);
    Ok((spawn_times, rtts))
}

fn rand_token() -> String {
    use sha2::Digest;
    let seed = format!("{:?}{}", Instant::now(), std::process::id());
    // JupyterHub refuses tokens longer than 64 characters.
    format!("{:x}", sha2::Sha256::digest(seed.as_bytes()))[..48].to_string()
}

fn main() -> anyhow::Result<()> {
    require_root();
    use_own_bin_dir()?;
    let spawns = arg("--spawns", 5);
    let mutations = arg("--mutations", 40);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (s_spawn, s_rtt) = rt.block_on(steward_side(spawns, mutations))?;
    let (j_spawn, j_rtt) = rt.block_on(jupyterhub_side(spawns, mutations))?;
    println!("# cylc hubapp (cylc-uiserver 1.10, cylc-flow 8.7) as alice, same venv, same run");
    let a = report("spawn-to-ready, Steward", s_spawn);
    let b = report(
        "spawn-to-ready, JupyterHub 6.1.1 + configurable-http-proxy",
        j_spawn,
    );
    println!(
        "spawn-to-ready ratio Steward/JupyterHub (median): {:.2}",
        a.as_secs_f64() / b.as_secs_f64()
    );
    let a = report("pause/resume round trip, Steward (decided, audited)", s_rtt);
    let b = report("pause/resume round trip, configurable-http-proxy", j_rtt);
    println!(
        "mutation round trip ratio Steward/CHP (median): {:.2}",
        a.as_secs_f64() / b.as_secs_f64()
    );
    Ok(())
}
