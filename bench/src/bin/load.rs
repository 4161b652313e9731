//! Load (issue 19): N simulated people with real PAM sessions, each elevated, watching an
//! owner's workflows over a WebSocket and sending operations (pause/resume) against M
//! owners' UI servers for a duration. Checks: no error other than intended denials, and
//! every operation has exactly one intent and one outcome in the audit log (read after a
//! clean stop). Reports p50/p99 operation latency and the hub's CPU.
//!
//! Run as root: `steward-bench load [--users 200] [--owners 50] [--secs 600] [--interval-ms 2000]`
//! (binary `load` next to `steward`). Users `stwl001…` (actors, group steward-ops) and
//! `stwo01…` (owners, one stopped workflow `load` each, granting steward-ops CONTROL) are
//! created if missing; the soak (`--soak`) uses its own, `stsl001…`/`stso01…` under the
//! cgroup prefix `steward-soak`, so that it can run beside the test command's load.
//! With `STEWARD_BENCH_JSON=FILE` a JSON row is appended to FILE.
//!
//! `--postgres` keeps the hub's state in a private PostgreSQL (Debian's, started here);
//! `--hubs 2` runs two hubs on it behind HAProxy (TCP, health-checked), every person
//! logging in and operating through the balancer (issue 18's operations/s through two
//! hubs beside one). `--interval-ms 0` makes each person send the next operation as
//! soon as the last is answered: throughput, not a paced load.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::BufRead;
use std::sync::Arc;
use std::time::{Duration, Instant};
use steward_bench::*;

struct Args {
    users: usize,
    owners: usize,
    secs: u64,
    interval_ms: u64,
    /// Soak mode: sample hub RSS and open fds every `sample_secs`; fail on > 5 % growth
    /// after `warmup_secs`, or on leaked processes.
    soak: bool,
    sample_secs: u64,
    warmup_secs: u64,
    postgres: bool,
    hubs: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        users: 200,
        owners: 50,
        secs: 600,
        interval_ms: 2000,
        soak: false,
        sample_secs: 60,
        warmup_secs: 300,
        postgres: false,
        hubs: 1,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        if argv[i] == "--soak" {
            a.soak = true;
            i += 1;
            continue;
        }
        if argv[i] == "--postgres" {
            a.postgres = true;
            i += 1;
            continue;
        }
        let v = argv
            .get(i + 1)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| {
                eprintln!("{}: expected a number after it", argv[i]);
                std::process::exit(2)
            });
        match argv[i].as_str() {
            "--users" => a.users = v as usize,
            "--owners" => a.owners = v as usize,
            "--secs" => a.secs = v,
            "--interval-ms" => a.interval_ms = v,
            "--sample-secs" => a.sample_secs = v.max(1),
            "--warmup-secs" => a.warmup_secs = v,
            "--hubs" => a.hubs = (v as usize).clamp(1, 2),
            other => {
                eprintln!("unknown argument {other}; known: --users --owners --secs --interval-ms --soak --sample-secs --warmup-secs --postgres --hubs");
                std::process::exit(2)
            }
        }
        i += 2;
    }
    a
}

/// The users and the cgroup prefix of a run. The soak has its own, so that an hour of
/// soak and the test command's 60 s load (same machine) never share users or servers.
struct Names {
    cgroup: &'static str,
    actor: &'static str,
    owner: &'static str,
}

fn names(soak: bool) -> Names {
    if soak {
        Names {
            cgroup: "steward-soak",
            actor: "stsl",
            owner: "stso",
        }
    } else {
        Names {
            cgroup: "steward-load",
            actor: "stwl",
            owner: "stwo",
        }
    }
}

const FLOW: &str =
    "description = \"load test\"\ncycles = [\"1\"]\n\n[tasks.a]\nscript = \"sleep 1\"\n";

fn sh(cmd: &str) {
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()
        .expect("sh");
    assert!(st.success(), "{cmd}");
}

fn setup_owner(name: &str) {
    ensure_user(name);
    let u = nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .expect("owner exists");
    let dir = u.dir.join(".steward");
    std::fs::create_dir_all(dir.join("workflows/load")).expect("mkdir");
    std::fs::write(dir.join("workflows/load/flow.toml"), FLOW).expect("flow");
    std::fs::write(
        dir.join("policy.toml"),
        "[grants]\n\"group:steward-ops\" = [\"READ\", \"CONTROL\"]\n",
    )
    .expect("policy");
    sh(&format!("chown -R {name}: {}", dir.display()));
}

fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime), counted from after the command name.
    f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
}

fn tls(ca: &std::path::Path) -> rustls::ClientConfig {
    let pem = std::fs::read(ca).expect("ca");
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(c.expect("ca pem")).expect("ca cert");
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("tls")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    results: u64,
    denied: u64,
    errors: Vec<String>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    require_root();
    let a = parse_args();
    let exe_dir = std::env::current_exe()?
        .parent()
        .expect("exe dir")
        .to_path_buf();
    // Preparing resets the demo users' passwords: take the lock the end-to-end tests
    // hold while they use them (tests/src/lib.rs, `demo_lock`).
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/steward-e2e-demo.lock")?;
    let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("locking /tmp/steward-e2e-demo.lock: {e}"))?;
    let (data, cfg, _) = demo_data_dir_with_credentials(&exe_dir)?;
    drop(lock);
    // A fixed port, so that `public_url` (the origin WebSockets must come from) is right.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut text = std::fs::read_to_string(&cfg)?
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
        .replace("prestart = [\"alice\", \"bob\", \"carl\"]", "prestart = []")
        + "\n[limits]\nws_per_user = 64\n";
    anyhow::ensure!(a.hubs == 1 || a.postgres, "--hubs 2 needs --postgres");
    let pg = a.postgres.then(steward_e2e::postgres::Postgres::start);
    if let Some(pg) = &pg {
        text += &format!(
            "\n[database]\nurl = \"{}\"\nhub_id = \"load-a\"\n",
            pg.url()
        );
    }
    // With two hubs, `port` is the balancer's (public_url); each hub listens on its own.
    let hub_ports: Vec<u16> = match a.hubs {
        1 => vec![port],
        _ => vec![free_port()?, free_port()?],
    };
    let listen_line = format!("listen = \"127.0.0.1:{port}\"");
    anyhow::ensure!(
        text.contains(&listen_line),
        "the demo config has no {listen_line}"
    );
    std::fs::write(
        &cfg,
        text.replace(
            &listen_line,
            &format!("listen = \"127.0.0.1:{}\"", hub_ports[0]),
        ),
    )?;
    // Its own cgroup prefix: a hub cleans up cgroups under its prefix that it does not
    // know, and must not take the demo hubs' (end-to-end tests running meanwhile).
    let spawn_toml = data.path().join("spawn.toml");
    let st = std::fs::read_to_string(&spawn_toml)?;
    std::fs::write(
        &spawn_toml,
        st.replace(
            "prefix = \"steward-demo\"",
            &format!("prefix = \"{}\"", names(a.soak).cgroup),
        ),
    )?;

    let names = names(a.soak);
    let owners: Vec<String> = (1..=a.owners)
        .map(|i| format!("{}{i:02}", names.owner))
        .collect();
    for o in &owners {
        setup_owner(o);
    }
    let actors: Vec<String> = (1..=a.users)
        .map(|i| format!("{}{i:03}", names.actor))
        .collect();
    let password = "load-bench-pw-1";
    let mut pw = String::new();
    for u in &actors {
        ensure_user(u);
        pw.push_str(&format!("{u}:{password}\n"));
    }
    let mut child = std::process::Command::new("chpasswd")
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    use std::io::Write;
    child
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(pw.as_bytes())?;
    assert!(child.wait()?.success(), "chpasswd");
    for u in &actors {
        sh(&format!("usermod -aG steward-ops {u}"));
    }

    let steward = exe_dir.join("steward");
    let mut hubs = vec![spawn_hub(&steward, &cfg)?];
    let mut audit_dirs = vec![data.path().join("audit")];
    let _balancer = if a.hubs == 2 {
        // The second hub: the first one's keys and CA (copied once it made them, as an
        // operator would), its own data_dir, audit log and id.
        let state_b = data.path().join("state-b");
        std::fs::create_dir_all(&state_b)?;
        for e in std::fs::read_dir(data.path().join("state"))?.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if e.path().is_file() && !name.starts_with("hub.db") && !name.starts_with("audit.head")
            {
                std::fs::copy(e.path(), state_b.join(&name))?;
            }
        }
        std::fs::set_permissions(
            &state_b,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        let audit_b = data.path().join("audit-b");
        let cfg_b = data.path().join("steward-b.toml");
        let text_a = std::fs::read_to_string(&cfg)?;
        let text_b = text_a
            .replace(
                &format!("listen = \"127.0.0.1:{}\"", hub_ports[0]),
                &format!("listen = \"127.0.0.1:{}\"", hub_ports[1]),
            )
            .replace(
                &format!("data_dir = \"{}\"", data.path().join("state").display()),
                &format!("data_dir = \"{}\"", state_b.display()),
            )
            .replace(
                &format!("dir = \"{}\"", data.path().join("audit").display()),
                &format!("dir = \"{}\"", audit_b.display()),
            )
            .replace("hub_id = \"load-a\"", "hub_id = \"load-b\"");
        anyhow::ensure!(
            text_b.contains("state-b") && text_b.contains("audit-b"),
            "could not derive the second hub's config"
        );
        std::fs::write(&cfg_b, text_b)?;
        hubs.push(spawn_hub(&steward, &cfg_b)?);
        audit_dirs.push(audit_b);
        Some(steward_e2e::haproxy::Haproxy::start_on(port, &hub_ports))
    } else {
        None
    };
    let base = format!("https://127.0.0.1:{port}");
    let hub_pids: Vec<u32> = hubs.iter().map(|h| h.id()).collect();
    let hub_pid = hub_pids[0];
    let ca = data.path().join("tls/ca.crt");
    let tls = Arc::new(tls(&ca));

    // Real sessions: PAM login and PAM elevation for every person, a few at a time.
    let t_login = Instant::now();
    let mut sessions = vec![];
    for chunk in actors.chunks(8) {
        let logins = chunk.iter().map(|u| {
            let (base, tls, u) = (base.clone(), tls.clone(), u.clone());
            async move {
                let c = reqwest::Client::builder()
                    .use_preconfigured_tls((*tls).clone())
                    .cookie_store(true)
                    .build()?;
                let r = c
                    .post(format!("{base}/hub/api/login"))
                    .json(&json!({"username": u, "password": password}))
                    .send()
                    .await?;
                anyhow::ensure!(r.status() == 200, "login {u}: {}", r.status());
                let v: Value = r.json().await?;
                let r = c
                    .post(format!("{base}/hub/api/elevate"))
                    .header("x-csrf-token", v["csrf"].as_str().unwrap_or(""))
                    .json(&json!({"class": "execute", "password": password}))
                    .send()
                    .await?;
                anyhow::ensure!(r.status() == 200, "elevate {u}: {}", r.status());
                let cookie = r
                    .headers()
                    .get("set-cookie")
                    .and_then(|h| h.to_str().ok())
                    .and_then(|h| h.split(';').next())
                    .unwrap_or("")
                    .to_string();
                Ok::<_, anyhow::Error>(cookie)
            }
        });
        for r in futures_util::future::join_all(logins).await {
            sessions.push(r?);
        }
    }
    let login_time = t_login.elapsed();

    // (seconds since start, RSS KiB, open fds) of the hub, every `sample_secs`.
    let samples = Arc::new(std::sync::Mutex::new(Vec::<(u64, u64, usize)>::new()));
    let sampler = {
        let (samples, every, total) = (samples.clone(), a.sample_secs, a.secs);
        std::thread::spawn(move || {
            let mut t = 0;
            while t + every <= total {
                std::thread::sleep(Duration::from_secs(every));
                t += every;
                let fds = std::fs::read_dir(format!("/proc/{hub_pid}/fd"))
                    .map(|d| d.count())
                    .unwrap_or(0);
                let rss = rss_kib(hub_pid);
                eprintln!("sample t={t}s hub RSS {rss} KiB, {fds} open fds");
                samples
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((t, rss, fds));
            }
        })
    };
    let host = base.trim_start_matches("https://").to_string();
    let deadline = Instant::now() + Duration::from_secs(a.secs);
    let cpu0: u64 = hub_pids.iter().map(|p| cpu_ticks(*p)).sum();
    let t0 = Instant::now();
    let tasks = sessions.into_iter().enumerate().map(|(i, cookie)| {
        let owner = owners[i % owners.len()].clone();
        let (tls, host) = (tls.clone(), host.clone());
        let interval = Duration::from_millis(a.interval_ms);
        tokio::spawn(async move {
            let mut t = Tally::default();
            use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
            let mut req = match format!("wss://{host}/user/{owner}/ws").into_client_request() {
                Ok(r) => r,
                Err(e) => {
                    t.errors.push(e.to_string());
                    return t;
                }
            };
            let origin = format!("https://{host}");
            req.headers_mut()
                .insert("origin", origin.parse().expect("origin"));
            req.headers_mut()
                .insert("cookie", cookie.parse().expect("cookie"));
            let conn = tokio_tungstenite::connect_async_tls_with_config(
                req,
                None,
                false,
                Some(tokio_tungstenite::Connector::Rustls(tls)),
            )
            .await;
            let mut ws = match conn {
                Ok((ws, _)) => ws,
                Err(e) => {
                    t.errors.push(format!("ws {owner}: {e}"));
                    return t;
                }
            };
            // Spread the first operations over one interval.
            tokio::time::sleep(interval.mul_f64((i % 97) as f64 / 97.0)).await;
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let id = format!("{i}-{n}");
                let opn = if n % 2 == 1 { "pause" } else { "resume" };
                let sent = Instant::now();
                let msg = json!({"type": "op", "id": id, "op": opn, "target": "load"});
                if let Err(e) = ws.send(Message::text(msg.to_string())).await {
                    t.errors.push(format!("send: {e}"));
                    return t;
                }
                loop {
                    let m = tokio::time::timeout(Duration::from_secs(60), ws.next()).await;
                    let v: Value = match m {
                        Ok(Some(Ok(Message::Text(s)))) => {
                            serde_json::from_str(s.as_str()).unwrap_or(Value::Null)
                        }
                        Ok(Some(Ok(_))) => continue,
                        other => {
                            t.errors
                                .push(format!("ws {owner} after {n} operations: {other:?}"));
                            return t;
                        }
                    };
                    if v["id"] != id.as_str() {
                        continue; // snapshots and deltas: the watching part
                    }
                    match v["type"].as_str() {
                        Some("result") => {
                            t.results += 1;
                            t.latencies.push(sent.elapsed());
                        }
                        Some("denied") => t.denied += 1,
                        _ => t.errors.push(v.to_string()),
                    }
                    break;
                }
                tokio::time::sleep(interval).await;
            }
            let _ = ws.close(None).await;
            t
        })
    });
    let mut all = Tally::default();
    for t in futures_util::future::join_all(tasks).await {
        let t = t?;
        all.latencies.extend(t.latencies);
        all.results += t.results;
        all.denied += t.denied;
        all.errors.extend(t.errors);
    }
    let wall = t0.elapsed();
    let cpu1: u64 = hub_pids.iter().map(|p| cpu_ticks(*p)).sum();
    let cpu = (cpu1 - cpu0) as f64 / 100.0 / wall.as_secs_f64() * 100.0;
    let rss: u64 = hub_pids.iter().map(|p| rss_kib(*p)).sum();
    let _ = sampler.join();
    let mut soak_failures = vec![];
    if a.soak {
        let s = samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let after: Vec<_> = s.iter().filter(|x| x.0 > a.warmup_secs).collect();
        match (after.first(), after.last()) {
            (Some(b), Some(l)) if after.len() >= 2 => {
                let grow = |x: f64, y: f64| if x > 0.0 { (y - x) / x * 100.0 } else { 0.0 };
                let (g_rss, g_fd) = (grow(b.1 as f64, l.1 as f64), grow(b.2 as f64, l.2 as f64));
                println!(
                    "soak: after warm-up ({} s) hub RSS {} -> {} KiB ({g_rss:+.1} %), fds {} -> {} ({g_fd:+.1} %)",
                    a.warmup_secs, b.1, l.1, b.2, l.2
                );
                if g_rss > 5.0 {
                    soak_failures.push(format!("hub RSS grew {g_rss:.1} %"));
                }
                if g_fd > 5.0 {
                    soak_failures.push(format!("hub open fds grew {g_fd:.1} %"));
                }
            }
            _ => soak_failures.push("fewer than two samples after warm-up".to_string()),
        }
        // Leaks: at most the server in each owner's server cgroup, no helper left.
        for o in &owners {
            let procs = std::fs::read_to_string(format!(
                "/sys/fs/cgroup/pids/{}/{o}/default/cgroup.procs",
                names.cgroup
            ))
            .unwrap_or_default();
            let n = procs.lines().count();
            if n > 1 {
                soak_failures.push(format!("{o}'s server cgroup holds {n} processes"));
            }
            let cgs = std::fs::read_dir(format!("/sys/fs/cgroup/pids/{}/{o}", names.cgroup))
                .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
                .unwrap_or(0);
            if cgs > 2 {
                soak_failures.push(format!("{o} has {cgs} cgroups (leaked)"));
            }
        }
        let helpers = std::process::Command::new("pgrep")
            .args([
                "-f",
                &data.path().join("bin/steward-spawn").display().to_string(),
            ])
            .output()?;
        if !helpers.stdout.is_empty() {
            soak_failures.push("helper processes left running".into());
        }
    }
    for hub in &mut hubs {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(hub.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        hub.wait()?;
    }

    // Every operation: exactly one intent and one outcome (over every hub's log, rotated
    // files included: a long run rotates it).
    let mut audit = String::new();
    for dir in &audit_dirs {
        for file in steward_audit::audit_files(dir)? {
            audit += &std::fs::read_to_string(file)?;
        }
    }
    let recs: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|r: &Value| {
            r["actor"]
                .as_str()
                .is_some_and(|a| a.starts_with(names.actor))
        })
        .collect();
    let mut intents = std::collections::HashMap::new();
    let mut outcomes = std::collections::HashMap::new();
    for r in &recs {
        let rid = r["request_id"].as_str().unwrap_or("").to_string();
        match r["kind"].as_str() {
            Some("intent") => *intents.entry(rid).or_insert(0u32) += 1,
            Some("outcome") => *outcomes.entry(rid).or_insert(0u32) += 1,
            _ => {}
        }
    }
    let unmatched = intents
        .iter()
        .filter(|(k, n)| **n != 1 || outcomes.get(*k) != Some(&1))
        .count()
        + outcomes
            .keys()
            .filter(|k| !intents.contains_key(*k))
            .count();
    let (p50, p99, max) = stats(all.latencies.clone());
    let p50ms = p50.as_secs_f64() * 1e3;
    let p99ms = p99.as_secs_f64() * 1e3;
    println!(
        "load: {} users ({} PAM logins+elevations in {:.1} s), {} owners, {:.0} s: {} operations ({:.1}/s), {} denied, {} errors; latency p50 {} p99 {} max {}; hub CPU {:.0} % of one core, RSS {:.1} MiB; audit: {} intents, {} outcomes, {} not exactly one each",
        a.users,
        a.users,
        login_time.as_secs_f64(),
        a.owners,
        wall.as_secs_f64(),
        all.results,
        all.results as f64 / wall.as_secs_f64(),
        all.denied,
        all.errors.len(),
        ms(p50),
        ms(p99),
        ms(max),
        cpu,
        rss as f64 / 1024.0,
        intents.len(),
        outcomes.len(),
        unmatched
    );
    for e in all.errors.iter().take(10) {
        eprintln!("error: {e}");
    }
    if let Ok(file) = std::env::var("STEWARD_BENCH_JSON") {
        let row = json!({
            "bench": "load",
            "figure": "operation latency p99 (ms)",
            "value": p99ms,
            "p50_ms": p50ms,
            "hub_cpu_pct": cpu,
            "ops": all.results,
            "ops_per_sec": all.results as f64 / wall.as_secs_f64(),
            "hubs": a.hubs,
            "store": if a.postgres { "postgresql" } else { "sqlite" },
            "command": format!("load --users {} --owners {} --secs {}{}{}", a.users, a.owners, a.secs,
                if a.postgres { " --postgres" } else { "" },
                if a.hubs > 1 { " --hubs 2" } else { "" }),
        });
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)?;
        writeln!(f, "{row}")?;
    }
    // Stop the owners' servers the hub left running (SIGTERM keeps them by design).
    for o in &owners {
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-u", o, "-f", "steward-uiserver"])
            .status();
    }
    for f in &soak_failures {
        eprintln!("soak: FAILED: {f}");
    }
    let failed = !soak_failures.is_empty()
        || !all.errors.is_empty()
        || unmatched != 0
        || intents.len() as u64 != all.results
        || all.results == 0;
    if failed {
        eprintln!(
            "load: FAILED (errors {}, unmatched {unmatched}, intents {} vs results {})",
            all.errors.len(),
            intents.len(),
            all.results
        );
        for r in audit
            .lines()
            .filter(|l| l.contains("\"event\":\"stop\"") || l.contains("\"event\":\"cull\""))
            .filter(|l| l.contains(&format!("\"owner\":\"{}", names.owner)))
            .take(5)
        {
            eprintln!("hub audit: {r}");
        }
        // What the first owner's server said last, to find out why connections ended.
        if let Some(o) = owners.first() {
            for e in std::fs::read_dir(data.path().join("logs").join(o))
                .into_iter()
                .flatten()
                .flatten()
            {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let lines: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.contains("\"operation\"") && !l.contains("authorized"))
                    .collect();
                for l in lines.iter().rev().take(8).rev() {
                    eprintln!("{o}'s server: {l}");
                }
            }
        }
        drop(data);
        std::process::exit(1);
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `steward serve -c cfg`, once it said it is ready (its output is drained after).
fn spawn_hub(
    steward: &std::path::Path,
    cfg: &std::path::Path,
) -> anyhow::Result<std::process::Child> {
    let mut hub = std::process::Command::new(steward)
        .args(["serve", "-c"])
        .arg(cfg)
        .env(
            "STEWARD_LOG",
            std::env::var("STEWARD_LOG").unwrap_or_else(|_| "error".into()),
        )
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut lines = std::io::BufReader::new(hub.stdout.take().expect("stdout")).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("ready on") => break,
            Some(_) => continue,
            None => anyhow::bail!("hub ({}) exited before it was ready", cfg.display()),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok(hub)
}
