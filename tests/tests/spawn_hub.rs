//! The hub's spawn path, in-process against the real helper, as root: start timeouts
//! leave nothing behind, the spawn queue refuses past its pending limit, and an
//! OOM-kill in a server's cgroup is reported by the hub.

use std::time::Duration;
use steward_e2e::*;
use steward_hub::servers::ServerError;

/// A demo data dir whose "uiserver" is `/usr/bin/sleep 30`: it never registers.
fn never_ready_hub(
    start_timeout: u64,
    concurrency: usize,
    max_pending: usize,
) -> (tempfile::TempDir, steward_hub::config::HubConfig) {
    let data = traversable_tempdir();
    let opts = steward_hub::cli::demo::DemoOptions {
        data_dir: data.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        credentials_file: None,
        clock_offset_file: None,
        cylc_venv: None,
        database_url: None,
    };
    // The demo copies its binaries from next to the running executable: point it at ours.
    let (config_path, _) = prepare_with_bins(&opts);
    let spawn = data.path().join("spawn.toml");
    let text = std::fs::read_to_string(&spawn).unwrap().replace(
        &format!("{}/bin/steward-uiserver", data.path().display()),
        "/usr/bin/sleep",
    );
    write_root_file(&spawn, &text);
    let mut cfg = steward_hub::config::HubConfig::load(&config_path).unwrap();
    cfg.uiserver.prestart.clear();
    cfg.spawner.args = vec!["30".into()];
    cfg.spawner.start_timeout_secs = start_timeout;
    cfg.spawner.concurrency = concurrency;
    cfg.spawner.max_pending = max_pending;
    (data, cfg)
}

fn prepare_with_bins(
    opts: &steward_hub::cli::demo::DemoOptions,
) -> (std::path::PathBuf, Vec<(String, String)>) {
    steward_hub::cli::demo::prepare_from(opts, &bin_dir()).unwrap()
}

#[test]
fn start_timeout_kills_the_cgroup_and_the_queue_refuses_past_its_limit() {
    if !require_root("start_timeout") {
        return;
    }
    let _l = demo_lock();
    let (_data, cfg) = never_ready_hub(1, 1, 1);
    actix_web::rt::System::new().block_on(async move {
        let hub = steward_hub::app::build(cfg).await.unwrap();
        let state = hub.state.clone();
        actix_web::rt::spawn(async move {
            let _ = steward_hub::app::serve(hub).await;
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        // alice's start holds the only slot, bob's waits, carl's is refused at once.
        let (a, b, c) = tokio::join!(
            state.servers.ensure("alice"),
            async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                state.servers.ensure("bob").await
            },
            async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                state.servers.ensure("carl").await
            }
        );
        assert!(
            matches!(a, Err(ServerError::Timeout { .. })),
            "alice: {:?}",
            a.err()
        );
        assert!(
            matches!(b, Err(ServerError::Timeout { .. })),
            "bob: {:?}",
            b.err()
        );
        assert!(matches!(c, Err(ServerError::Busy)), "carl: {:?}", c.err());
        for u in ["alice", "bob"] {
            let dir = format!("/sys/fs/cgroup/pids/steward-demo/{u}/default");
            assert!(
                !std::path::Path::new(&dir).exists(),
                "{dir} left behind after a start timeout"
            );
            assert!(state.servers.get(u).is_none());
        }
        actix_web::rt::System::current().stop();
    });
}

/// Profiles ("machine types"): a user picks one at start; the helper enforces who may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock)]
async fn users_pick_profiles_the_helper_enforces_who_may() {
    if !require_root("profiles") {
        return;
    }
    let _l = demo_lock();
    let mut d = Demo::start();
    let spawn = d.data.path().join("spawn.toml");
    let text = std::fs::read_to_string(&spawn).unwrap()
        + "\n[profiles.big]\nmemory = \"1536M\"\ncpu = 2.0\npids = 1024\ngpus = 0\ndescription = \"two cores\"\nallowed = [\"group:steward-ops\"]\n";
    write_root_file(&spawn, &text);
    d.serve_with("");
    let start = |c: reqwest::Client, csrf: String, profile: &'static str| {
        let base = d.base.clone();
        async move {
            c.post(format!("{base}/hub/api/server"))
                .header("x-csrf-token", csrf)
                .json(&serde_json::json!({"profile": profile}))
                .send()
                .await
                .unwrap()
        }
    };
    for user in ["alice", "bob"] {
        // The hub prestarts both in the background: stop the prestarted server once the
        // hub has it (its registration may come after its process is in the cgroup).
        let (c, csrf) = d.login(user).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = c
                .delete(format!("{}/hub/api/server", d.base))
                .header("x-csrf-token", &csrf)
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{user}'s prestarted server never became stoppable: {}",
                r.status()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let r = start(c.clone(), csrf.clone(), "big").await;
        if user == "alice" {
            assert_eq!(
                r.status(),
                403,
                "alice is not in steward-ops: {:?}",
                r.text().await
            );
            let e: serde_json::Value = r.json().await.unwrap();
            assert!(
                e["error"].as_str().unwrap().contains("may not use profile"),
                "{e}"
            );
            let r = start(c.clone(), csrf.clone(), "nosuch").await;
            assert!(r.text().await.unwrap().contains("unknown profile"));
        } else {
            assert_eq!(r.status(), 200, "{:?}", r.text().await);
            let limit = std::fs::read_to_string(
                "/sys/fs/cgroup/memory/steward-demo/bob/default/memory.limit_in_bytes",
            )
            .unwrap();
            assert_eq!(limit.trim(), (1536u64 << 20).to_string());
            let r = start(c.clone(), csrf.clone(), "big").await;
            assert_eq!(r.status(), 409, "already running");
        }
    }
}
