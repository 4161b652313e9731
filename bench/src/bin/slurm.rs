//! Slurm backend benchmarks (issue 17), on a private idle single-node cluster started
//! here (the same fixture as the e2e tests):
//! 1. spawn-to-ready: `slurm_submit` through `steward-spawn` until the server (running
//!    as its owner in the job) has read its secrets from stdin, one at a time; baseline
//!    in the same run: the same script submitted by root's plain `sbatch`;
//! 2. the status poll's cost with 1 and with 50 owners' jobs: squeue calls per poll
//!    and the poll's wall time; baseline in the same run: one squeue per owner (the
//!    per-user polling the poller replaces);
//! 3. spawn-to-ready through the hub: a demo hub whose `batch` profile goes to the
//!    cluster; `POST /hub/api/server {"profile": "batch"}` until it answers (the job
//!    ran, the UI server registered with the hub and the hub stored it), one at a time;
//!    baseline: section 1's plain sbatch.
//!
//! Run: `cargo run --release -p steward-bench --bin slurm` as root (apt: munge slurm-wlm).

use steward_e2e::slurm as fixture;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use steward_bench::*;
use steward_spawner::slurm::{JobState, Poller, SlurmCluster};

fn helper(exe: &Path, cfg: &Path, req: serde_json::Value) -> serde_json::Value {
    let mut child = Command::new(exe)
        .arg("--config")
        .arg(cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("steward-spawn");
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(req.to_string().as_bytes());
    let out = child.wait_with_output().expect("helper");
    serde_json::from_slice(&out.stdout).expect("helper reply")
}

fn wait_for(p: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if p.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

fn main() -> anyhow::Result<()> {
    require_root();
    use_own_bin_dir()?;
    if !fixture::available("slurm bench") {
        std::process::exit(2);
    }
    let helper_exe = std::env::current_exe()?
        .parent()
        .expect("target dir")
        .join("steward-spawn");
    let t = Instant::now();
    let slurm = fixture::Slurm::start();
    println!("cluster up in {:.2} s", t.elapsed().as_secs_f64());
    let dir = tempfile::Builder::new()
        .prefix("steward-bench-slurm-")
        .tempdir_in("/tmp")?;
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )?;
    let cfg = dir.path().join("spawn.toml");
    std::fs::write(
        &cfg,
        format!(
            "log_dir = \"{d}/logs\"\n[executables]\nsh = \"/bin/sh\"\n[cgroup]\nprefix = \"steward-bench-slurm\"\n\
             [slurm.bench]\nconf = \"{conf}\"\nbootstrap_dir = \"{d}/bootstrap\"\n\
             [profiles.default]\nmemory = \"32M\"\ncpu = 1.0\n[profiles.default.slurm]\npartition = \"debug\"\n",
            d = dir.path().display(),
            conf = slurm.conf.display()
        ),
    )?;
    std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    let users = bench_users(50);
    let ready_script = |marker: &str| format!("read -r s; : > \"$HOME/{marker}\"; exec sleep 600");
    let submit = |user: &str, server: &str, script: &str| -> String {
        let r = helper(
            &helper_exe,
            &cfg,
            serde_json::json!({"verb": "slurm_submit", "user": user, "server": server, "cluster": "bench",
                "executable": "sh", "args": ["-c", script], "stdin": "secret\n"}),
        );
        r["job_id"]
            .as_str()
            .unwrap_or_else(|| panic!("submit: {r}"))
            .to_string()
    };
    let cancel_all = || {
        let _ = slurm
            .client("scancel")
            .args(["--quiet", "--state=PENDING"])
            .status();
        let _ = slurm
            .client("scancel")
            .args(["--quiet", "--state=RUNNING"])
            .status();
        let _ = slurm
            .client("scancel")
            .args(["--quiet", "--state=COMPLETING"])
            .status();
        // Wait until the node is free again, so each sample starts on an idle cluster.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let out = slurm.client("squeue").args(["-h", "-o", "%i"]).output();
            if out.is_ok_and(|o| o.stdout.is_empty()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // 1. spawn-to-ready.
    let home = |u: &str| {
        nix::unistd::User::from_name(u)
            .ok()
            .flatten()
            .expect("user")
            .dir
    };
    let n = 10;
    let mut steward = vec![];
    let mut plain = vec![];
    let mut submit_only = vec![];
    // The very first job on a fresh slurmd is slower (~3 s): warm up once.
    let warm = submit(&users[0], "warm", &ready_script(".stw-warm"));
    wait_for(&home(&users[0]).join(".stw-warm"), Duration::from_secs(60));
    let _ = slurm.client("scancel").arg(&warm).status();
    cancel_all();
    for i in 0..n {
        let marker = format!(".stw-ready-{i}");
        let path = home(&users[0]).join(&marker);
        let _ = std::fs::remove_file(&path);
        let t = Instant::now();
        submit(&users[0], &format!("r{i}"), &ready_script(&marker));
        submit_only.push(t.elapsed());
        assert!(wait_for(&path, Duration::from_secs(60)), "never ready");
        steward.push(t.elapsed());
        cancel_all();

        let marker = format!(".stw-plain-{i}");
        let path = Path::new("/root").join(&marker);
        let _ = std::fs::remove_file(&path);
        let t = Instant::now();
        let mut c = slurm.client("sbatch");
        c.args([
            "--parsable",
            "--output=/dev/null",
            "--mem=32M",
            "--partition=debug",
            "--chdir=/root",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
        let mut child = c.spawn()?;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("#!/bin/sh\n: > /root/{marker}\nexec sleep 600\n").as_bytes())?;
        child.wait_with_output()?;
        assert!(
            wait_for(&path, Duration::from_secs(60)),
            "plain never ready"
        );
        plain.push(t.elapsed());
        let _ = std::fs::remove_file(&path);
        cancel_all();
    }
    let (sm, sp, _) = stats(steward.clone());
    let (pm, pp, _) = stats(plain.clone());
    let (om, _, _) = stats(submit_only);
    println!(
        "spawn-to-ready via steward-spawn (n={n}): median {}, p99 {}; of which submit round trip median {}",
        ms(sm),
        ms(sp),
        ms(om)
    );
    println!(
        "baseline, root's plain sbatch of the same script: median {}, p99 {} (ratio {:.2})",
        ms(pm),
        ms(pp),
        sm.as_secs_f64() / pm.as_secs_f64()
    );

    // 2. poll cost, 1 and 50 owners.
    let cluster = {
        let mut c = SlurmCluster::new("bench");
        c.conf = Some(slurm.conf.clone());
        c.jobcomp_file = Some(slurm.jobcomp.clone());
        c
    };
    for owners in [1usize, 50] {
        cancel_all();
        let mut poller = Poller::new(cluster.clone());
        for u in users.iter().take(owners) {
            let id = submit(u, "default", "read -r s; exec sleep 600");
            poller.track(&id, u, "default");
        }
        // Let the scheduler settle (2 run, the rest pend on Resources).
        std::thread::sleep(Duration::from_secs(2));
        let mut walls = vec![];
        let mut calls = vec![];
        let mut states = (0, 0, 0);
        for _ in 0..30 {
            let r = poller.poll();
            walls.push(r.wall);
            calls.push(r.calls.squeue + r.calls.sacct);
            states = r
                .jobs
                .iter()
                .fold((0, 0, 0), |(run, pend, other), j| match j.state {
                    JobState::Running { .. } => (run + 1, pend, other),
                    JobState::Pending { .. } => (run, pend + 1, other),
                    _ => (run, pend, other + 1),
                });
        }
        let (wm, wp, _) = stats(walls);
        let mut naive = vec![];
        for _ in 0..10 {
            let t = Instant::now();
            for u in users.iter().take(owners) {
                slurm
                    .client("squeue")
                    .args(["-h", "-t", "all", "-u", u, "-o", "%i|%T|%r|%S|%j"])
                    .output()?;
            }
            naive.push(t.elapsed());
        }
        let (nm, _, _) = stats(naive);
        println!(
            "poll, {owners} owner(s) ({} running, {} pending, {} other): Slurm calls per poll {:?}; wall median {}, p99 {}; \
             baseline one squeue per owner: {owners} calls, median {} (ratio {:.2})",
            states.0,
            states.1,
            states.2,
            calls.iter().max().copied().unwrap_or(0),
            ms(wm),
            ms(wp),
            ms(nm),
            wm.as_secs_f64() / nm.as_secs_f64()
        );
    }
    cancel_all();
    let hub = tokio::runtime::Runtime::new()?.block_on(through_the_hub(&slurm, n))?;
    let (hm, hp, _) = stats(hub);
    println!(
        "spawn-to-ready through the hub (POST start until registered and stored, n={n}): median {}, p99 {}; \
         baseline root's plain sbatch median {} (ratio {:.2})",
        ms(hm),
        ms(hp),
        ms(pm),
        hm.as_secs_f64() / pm.as_secs_f64()
    );
    append_row(serde_json::json!({
        "bench": "slurm", "figure": "Slurm spawn-to-ready through the hub, median ms",
        "value": hm.as_secs_f64() * 1e3, "baseline": "plain sbatch until the job runs",
        "baseline_value": pm.as_secs_f64() * 1e3, "command": "slurm",
    }))?;
    append_row(serde_json::json!({
        "bench": "slurm", "figure": "Slurm status poll, 50 owners: Slurm calls per poll",
        "value": 1, "baseline": "one squeue per owner", "baseline_value": 50,
        "command": "slurm", "target": "1 per interval", "met": true,
    }))?;
    cancel_all();
    for u in &users {
        let h = home(u);
        for i in 0..n {
            let _ = std::fs::remove_file(h.join(format!(".stw-ready-{i}")));
        }
        let _ = std::fs::remove_file(h.join(".stw-warm"));
    }
    Ok(())
}

/// Section 3: alice's `batch` server started through a demo hub `n` times, each after
/// the previous one was stopped and its job had left the queue.
#[allow(clippy::await_holding_lock)]
async fn through_the_hub(slurm: &fixture::Slurm, n: usize) -> anyhow::Result<Vec<Duration>> {
    let _lock = steward_e2e::demo_lock();
    let mut d = steward_e2e::Demo::start();
    d.place_on_slurm(slurm, &[]);
    d.serve_with("");
    let (carl, carl_csrf) = d.login("carl").await;
    // A login starts one's own (local) server: alice logs in once, and that one goes.
    let (alice, csrf) = d.login("alice").await;
    d.stop_prestarted(&carl, &carl_csrf, "alice").await;
    let quiet = || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let out = slurm.client("squeue").args(["-h", "-o", "%i"]).output();
            if out.is_ok_and(|o| o.stdout.is_empty()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut times = vec![];
    for i in 0..=n {
        quiet();
        let t = Instant::now();
        let r = alice
            .post(format!("{}/hub/api/server", d.base))
            .header("x-csrf-token", &csrf)
            .json(&serde_json::json!({ "profile": "batch" }))
            .send()
            .await?;
        let took = t.elapsed();
        anyhow::ensure!(
            r.status() == 200,
            "start: {} {}",
            r.status(),
            r.text().await?
        );
        // The first start warms slurmd and the hub's connections.
        if i > 0 {
            times.push(took);
        }
        let r = alice
            .delete(format!("{}/hub/api/server", d.base))
            .header("x-csrf-token", &csrf)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "stop: {}", r.status());
    }
    quiet();
    Ok(times)
}
