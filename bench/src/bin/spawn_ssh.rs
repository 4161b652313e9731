//! ssh backend benchmarks (issue 17), against two network-namespace hosts with their own
//! sshd (tests/src/netns.rs), the helper run there through sudo as in production:
//! 1. baseline: a plain `ssh host true`, a fresh connection each time (no reuse);
//! 2. spawn-to-ready over the shared connection: start a listening server on a host
//!    through the pool, ready = it answers a TCP connection on the host's address;
//! 3. 20 concurrent spawns placed over the hosts, all ready.
//!
//! Run (root): `cargo build --release --workspace --bins && target/release/spawn_ssh`.

use std::sync::Arc;
use std::time::{Duration, Instant};
use steward_bench::*;
use steward_e2e::sshpool::{listen_request, Fixture, LOGIN, OWNER};
use steward_protocol::Placement;
use steward_spawner::Backend;

const N: usize = 30;

/// Polls the server's port until it answers (bounded); the time it did is "ready".
async fn wait_ready(address: &str, port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut c) = tokio::net::TcpStream::connect((address, port)).await {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 64];
            let _ = c.read(&mut buf).await;
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{address}:{port} never answered");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn host_address(f: &Fixture, p: &Placement) -> String {
    match p {
        Placement::Ssh { host } => f.net.host(host).address.clone(),
        other => panic!("not an ssh placement: {other}"),
    }
}

fn main() -> anyhow::Result<()> {
    require_root();
    // Before any thread exists: the fixture finds the helper and the listener next to
    // this binary.
    use_own_bin_dir()?;
    let f = Fixture::start("spawn_ssh bench").ok_or_else(|| anyhow::anyhow!("needs root"))?;

    // 1. Baseline: a new ssh connection per command.
    let mut plain = vec![];
    for i in 0..N {
        let h = &f.net.hosts[i % f.net.hosts.len()];
        let t = Instant::now();
        let st = std::process::Command::new("ssh")
            .args([
                "-F",
                "none",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
            ])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                f.net.known_hosts.display()
            ))
            .args(["-o", "IdentitiesOnly=yes", "-i"])
            .arg(&f.net.client_key)
            .args(["-l", LOGIN, &h.address, "true"])
            .env_clear()
            .status()?;
        plain.push(t.elapsed());
        anyhow::ensure!(st.success(), "ssh {} true failed", h.address);
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (cold, ready, replies, concurrent, spread) = rt.block_on(async {
        let b = Arc::new(f.backend("least_loaded"));
        // The first call to each host opens its shared connection.
        let t = Instant::now();
        for h in b.hosts().map(str::to_string).collect::<Vec<_>>() {
            b.host_status(&h).await?;
        }
        let cold = t.elapsed() / 2;

        // 2. Spawn-to-ready, one at a time.
        let mut ready = vec![];
        let mut replies = vec![];
        for i in 0..N {
            let port = 19_000 + i as u16;
            let t = Instant::now();
            let s = b.start(&listen_request(&format!("b{i}"), port)).await?;
            replies.push(t.elapsed());
            wait_ready(&host_address(&f, &s.placement), port).await?;
            ready.push(t.elapsed());
            b.stop(&s.placement, OWNER, &format!("b{i}"), Some(0))
                .await?;
        }

        // 3. 20 at once.
        let t = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20u16 {
            let b = b.clone();
            let port = 19_100 + i;
            tasks.spawn(async move {
                let s = b.start(&listen_request(&format!("c{i}"), port)).await?;
                Ok::<_, anyhow::Error>((s, port))
            });
        }
        let mut started = vec![];
        while let Some(r) = tasks.join_next().await {
            started.push(r??);
        }
        for (s, port) in &started {
            wait_ready(&host_address(&f, &s.placement), *port).await?;
        }
        let concurrent = t.elapsed();
        let mut spread = std::collections::BTreeMap::<String, usize>::new();
        for (s, _) in &started {
            *spread.entry(s.placement.to_string()).or_default() += 1;
            let server = s.cgroup.rsplit('/').next().unwrap_or("");
            b.stop(&s.placement, OWNER, server, Some(0)).await?;
        }
        Ok::<_, anyhow::Error>((cold, ready, replies, concurrent, spread))
    })?;

    let (pm, pp, _) = stats(plain);
    let (rm, rp, _) = stats(ready);
    let (sm, sp, _) = stats(replies);
    println!(
        "baseline: plain `ssh host true`, new connection each time, n={N}: median {} p99 {}",
        ms(pm),
        ms(pp)
    );
    println!(
        "first helper call per host (opens the shared connection): {}",
        ms(cold)
    );
    println!(
        "ssh start reply (helper exec'd the server), shared connection, n={N}: median {} p99 {}",
        ms(sm),
        ms(sp)
    );
    println!(
        "ssh spawn-to-ready (server answers TCP on its host), n={N}: median {} p99 {}",
        ms(rm),
        ms(rp)
    );
    println!(
        "ratio spawn-to-ready / plain ssh true (median): {:.2}x",
        rm.as_secs_f64() / pm.as_secs_f64()
    );
    println!(
        "20 concurrent spawns, all ready: {} spread {spread:?}",
        ms(concurrent)
    );
    Ok(())
}
