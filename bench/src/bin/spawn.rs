//! Spawning benchmarks (issue 6):
//! 1. helper round trip: `steward-spawn` start of a trivial executable, request to reply
//!    (the child has exec'd by then), beside a plain fork+exec of the same program;
//! 2. spawn-to-ready of a real uiserver through the hub's ServerManager (ready = its
//!    registration arrived), one at a time and 50 at once.
//!
//! Run: `cargo run --release -p steward-bench --bin spawn` as root.

use std::time::{Duration, Instant};
use steward_bench::*;
use steward_protocol::helper::{HelperReply, HelperRequest, StartRequest};

fn main() -> anyhow::Result<()> {
    require_root();
    let exe_dir = std::env::current_exe()?.parent().unwrap().to_path_buf();
    let dir = tempfile::Builder::new()
        .prefix("steward-bench-")
        .tempdir_in("/tmp")?;
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    ensure_user("stwbench");
    let cfg = dir.path().join("spawn.toml");
    std::fs::write(
        &cfg,
        format!(
            "log_dir = \"{}/logs\"\n[executables]\ntrue = \"/usr/bin/true\"\n[cgroup]\nprefix = \"steward-bench\"\n[profiles.default]\nmemory = \"256M\"\npids = 64\n",
            dir.path().display()
        ),
    )?;
    std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    let helper = exe_dir.join("steward-spawn");
    let client = steward_spawner::SpawnerClient::new(
        &helper,
        Some(cfg.clone()),
        steward_spawner::SpawnMode::Direct,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    // 1. Helper round trip.
    let n = 200;
    let mut helper_times = vec![];
    let mut direct_times = vec![];
    rt.block_on(async {
        for i in 0..n {
            let server = format!("rt{}", i % 8);
            let req = HelperRequest::Start(StartRequest {
                user: "stwbench".into(),
                server: server.clone(),
                executable: "true".into(),
                args: vec![],
                env: Default::default(),
                stdin: None,
                profile: None,
            });
            let t = Instant::now();
            let reply = client.call(&req).await.expect("helper");
            helper_times.push(t.elapsed());
            assert!(matches!(reply, HelperReply::Started { .. }), "{reply:?}");
            // `true` has exited; remove its (empty) cgroup so the next start is fresh.
            let _ = client
                .call(&HelperRequest::Stop {
                    user: "stwbench".into(),
                    server,
                    grace_secs: Some(0),
                })
                .await;
            let t = Instant::now();
            let st = tokio::process::Command::new("/usr/bin/true")
                .status()
                .await
                .expect("true");
            direct_times.push(t.elapsed());
            assert!(st.success());
        }
    });
    let (hm, hp, _) = stats(helper_times);
    let (dm, dp, _) = stats(direct_times);
    println!("helper round trip (start /usr/bin/true as a user in a fresh cgroup), n={n}: median {} p99 {}", ms(hm), ms(hp));
    println!(
        "baseline fork+exec /usr/bin/true from the caller, n={n}:               median {} p99 {}",
        ms(dm),
        ms(dp)
    );
    println!(
        "ratio helper/direct (median): {:.1}x",
        hm.as_secs_f64() / dm.as_secs_f64()
    );

    // 2. Spawn-to-ready through the hub's ServerManager.
    let users = bench_users(50);
    let (_data, config_path) = demo_data_dir(&exe_dir)?;
    let mut hub_cfg = steward_hub::config::HubConfig::load(&config_path)?;
    hub_cfg.uiserver.prestart.clear();
    hub_cfg.spawner.concurrency = 64;
    let sys = actix_web::rt::System::new();
    let result = sys.block_on(async move {
        let hub = steward_hub::app::build(hub_cfg).await?;
        let state = hub.state.clone();
        actix_web::rt::spawn(async move {
            let _ = steward_hub::app::serve(hub).await;
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut one = vec![];
        for u in users.iter().take(20) {
            let t = Instant::now();
            state
                .servers
                .ensure(u)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            one.push(t.elapsed());
            state
                .servers
                .stop(u)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let t = Instant::now();
        let all = futures_util::future::join_all(users.iter().map(|u| {
            let st = state.clone();
            async move { st.servers.ensure(u).await }
        }))
        .await;
        let conc = t.elapsed();
        let ok = all.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, users.len(), "some spawns failed");
        steward_hub::cli::demo::stop_all(&state).await;
        actix_web::rt::System::current().stop();
        Ok::<_, anyhow::Error>((one, conc))
    });
    let (single, concurrent) = result?;
    let (sm, sp, _) = stats(single);
    println!(
        "uiserver spawn-to-ready (registration received), one at a time, n=20: median {} p99 {}",
        ms(sm),
        ms(sp)
    );
    println!(
        "50 concurrent uiserver spawns, all ready: {}",
        ms(concurrent)
    );
    Ok(())
}
