//! The ssh backend against real sshd: two network-namespace hosts (tests/src/netns.rs),
//! each with its own sshd and host key, reached over the system OpenSSH with a pinned
//! known_hosts file; the helper runs there through `sudo -n` under a sudoers rule, as a
//! dedicated login account, and starts a real listening server as a test user in a
//! cgroup whose prefix names the host. The hosts share this machine's filesystem, users
//! and cgroup tree, so each host's helper config has its own cgroup prefix.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;
use steward_e2e::netns::{pid_netns_inode, Netns};
use steward_e2e::sshpool::{listen_request, sleep_request, Fixture, LOGIN, OWNER};
use steward_e2e::*;
use steward_protocol::helper::HelperErrorCode;
use steward_protocol::Placement;
use steward_spawner::{Backend, SpawnError};

/// Connects to the listener (bounded retries while it binds) and returns its greeting.
fn greet(address: &str, port: u16) -> Option<String> {
    let sa: std::net::SocketAddr = format!("{address}:{port}").parse().unwrap();
    for _ in 0..250 {
        if let Ok(mut c) = std::net::TcpStream::connect_timeout(&sa, Duration::from_millis(200)) {
            let mut s = String::new();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = c.read_to_string(&mut s);
            return Some(s.trim().to_string());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn host_of(p: &Placement) -> String {
    match p {
        Placement::Ssh { host } => host.clone(),
        other => panic!("expected an ssh placement, got {other}"),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The namespaces and the sudoers rule are machine-wide: one test at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn start_status_list_stop_over_ssh_and_readopt_after_a_restart() {
    let _s = serial();
    let Some(f) = Fixture::start("start_status_list_stop_over_ssh") else {
        return;
    };
    let rt = rt();
    let owner = nix::unistd::User::from_name(OWNER).unwrap().unwrap();
    let port = 18_731;
    let (started, decision) = rt.block_on(async {
        let b = f.backend("least_loaded");
        // Each host reports itself (its own UTS name) and its load through the helper.
        for h in &f.net.hosts {
            let st = b.host_status(&h.name).await.unwrap();
            assert_eq!(st.hostname, h.ns);
            assert!(st.cpus >= 1 && st.mem_total_bytes > 0, "{st:?}");
        }
        let r = b.start_placed(&listen_request("web", port)).await.unwrap();
        drop(b); // the hub goes away; the server must not
        r
    });
    assert!(
        decision.render().contains("winner:"),
        "{}",
        decision.render()
    );
    let host = f.net.host(&host_of(&started.placement)).clone();
    // The server runs on that host (its network namespace), as the owner.
    assert_eq!(
        greet(&host.address, port).as_deref(),
        Some(format!("{} {}", host.ns, owner.uid).as_str())
    );
    assert_eq!(
        pid_netns_inode(started.pid),
        Netns::netns_inode(&host.ns),
        "pid {} is not in {}",
        started.pid,
        host.ns
    );
    assert!(
        started
            .cgroup
            .contains(&format!("steward-e2e-ssh-{}/{OWNER}/web", host.name)),
        "{}",
        started.cgroup
    );

    rt.block_on(async {
        // A new backend, as after a hub restart: adopt, status, list, stop.
        let b = f.backend("least_loaded");
        let adopted = b
            .adopt(&started.placement, OWNER, "web", started.pid)
            .await
            .unwrap();
        assert!(adopted.running && adopted.pids.contains(&started.pid));
        let st = b.status(&started.placement, OWNER, "web").await.unwrap();
        assert!(st.running, "{st:?}");
        let hs = b.host_status(&host.name).await.unwrap();
        assert_eq!(hs.servers, 1, "{hs:?}");
        let listing = b.list().await.unwrap();
        assert!(listing.unanswered.is_empty(), "{:?}", listing.unanswered);
        let here: Vec<_> = listing
            .servers
            .iter()
            .filter(|l| l.status.server == "web")
            .collect();
        assert_eq!(
            here.len(),
            1,
            "each host sees only its own servers: {listing:?}"
        );
        assert_eq!(here[0].placement, started.placement);
        // A wrong pid is not adopted.
        let e = b
            .adopt(&started.placement, OWNER, "web", started.pid + 100_000)
            .await
            .unwrap_err();
        assert_eq!(e.reply_code(), Some(HelperErrorCode::NotFound), "{e}");
        // A placement of another backend is refused, not guessed.
        assert!(b.status(&Placement::Local, OWNER, "web").await.is_err());
        let stopped = b
            .stop(&started.placement, OWNER, "web", Some(1))
            .await
            .unwrap();
        assert!(stopped.cgroup_removed);
        let e = b
            .status(&started.placement, OWNER, "web")
            .await
            .unwrap_err();
        assert_eq!(e.reply_code(), Some(HelperErrorCode::NotFound), "{e}");
    });
    assert!(wait_until(Duration::from_secs(5), || !alive(started.pid)));
}

#[test]
fn a_host_taken_down_is_skipped_and_an_unreachable_one_is_reported() {
    let _s = serial();
    let Some(f) = Fixture::start("a_host_taken_down_is_skipped") else {
        return;
    };
    let rt = rt();
    // h9 answers on no address: unreachable from the start.
    let toml = f.pool_toml(
        "round_robin",
        "",
        &format!("[hosts.h9]\naddress = \"10.213.0.99\"\nuser = \"{LOGIN}\"\n"),
    );
    rt.block_on(async {
        let b = f.backend_with(&toml);
        let d = b.explain(OWNER).await;
        let text = d.render();
        assert!(
            text.contains("h9")
                && text.contains("excluded: down (host h9 (10.213.0.99:22) is unreachable"),
            "{text}"
        );
        let mut hosts = vec![];
        for i in 0..2 {
            let s = b.start(&sleep_request(&format!("rr{i}"))).await.unwrap();
            hosts.push(host_of(&s.placement));
        }
        hosts.sort();
        assert_eq!(hosts, ["h1", "h2"], "round robin used both live hosts");

        f.net.take_down(0);
        for i in 0..3 {
            let s = b.start(&sleep_request(&format!("after{i}"))).await.unwrap();
            assert_eq!(
                host_of(&s.placement),
                "h2",
                "new spawns go to the live host"
            );
        }
        let text = b.explain(OWNER).await.render();
        assert!(text.contains("winner: h2"), "{text}");
        assert!(
            text.contains("host h1 (10.213.0.11:22) is unreachable"),
            "{text}"
        );
        // The listing says which hosts could not be asked: their servers are unknown,
        // not gone.
        let listing = b.list().await.unwrap();
        let unanswered: Vec<String> = listing
            .unanswered
            .iter()
            .map(|u| host_of(&u.placement))
            .collect();
        assert_eq!(unanswered, ["h1", "h9"], "{listing:?}");
        assert_eq!(
            listing
                .servers
                .iter()
                .filter(|l| l.status.running && host_of(&l.placement) == "h2")
                .count(),
            4
        );
        // Drained: h2 keeps its servers but gets no new ones; with h1 down nothing is left.
        b.set_drained("h2", true).unwrap();
        let e = b.start(&sleep_request("nowhere")).await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, SpawnError::NoHost(_)), "{msg}");
        assert!(
            msg.contains("drained") && msg.contains("no host chosen"),
            "{msg}"
        );
    });
}

#[test]
fn a_changed_host_key_is_refused_and_never_accepted() {
    let _s = serial();
    let Some(f) = Fixture::start("a_changed_host_key_is_refused") else {
        return;
    };
    let rt = rt();
    let pinned = std::fs::read(&f.net.known_hosts).unwrap();
    f.net.rekey(1).unwrap();
    rt.block_on(async {
        let b = f.backend("least_loaded");
        let e = b.host_status("h2").await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, SpawnError::HostKey { .. }), "{msg}");
        assert!(msg.contains("host key of h2 (10.213.0.12:22)"), "{msg}");
        assert!(
            msg.contains(&f.net.known_hosts.display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("never auto-accepted"), "{msg}");
        // Placement skips it and says why.
        let (s, d) = b.start_placed(&sleep_request("k1")).await.unwrap();
        assert_eq!(host_of(&s.placement), "h1");
        assert!(d.render().contains("host key of h2"), "{}", d.render());
        // A stored server on h2 cannot be reached either; the error names the fault.
        let e = b
            .status(&Placement::Ssh { host: "h2".into() }, OWNER, "x")
            .await
            .unwrap_err();
        assert!(matches!(e, SpawnError::HostKey { .. }), "{e}");
    });
    assert_eq!(
        std::fs::read(&f.net.known_hosts).unwrap(),
        pinned,
        "known_hosts changed"
    );
}

#[test]
fn a_missing_helper_and_a_silent_host_are_clear_errors() {
    let _s = serial();
    let Some(f) = Fixture::start("a_missing_helper_and_a_silent_host") else {
        return;
    };
    let rt = rt();
    let missing = "/usr/libexec/steward-missing/steward-spawn";
    // A TCP listener that accepts and never speaks: ssh waits for a banner in vain.
    let silent = std::net::TcpListener::bind("10.213.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let toml = f.pool_toml("least_loaded", "", "").replace(
        "[hosts.h2]\n",
        &format!("[hosts.h2]\nhelper = \"{missing}\"\n"),
    ) + &format!(
        "[hosts.silent]\naddress = \"10.213.0.1\"\nport = {silent_port}\nuser = \"{LOGIN}\"\n"
    );
    rt.block_on(async {
        for sudo in [true, false] {
            let t = toml.replace(
                "connect_timeout_secs",
                &format!("sudo = {sudo}\nconnect_timeout_secs"),
            );
            let b = f.backend_with(&t);
            let e = b.host_status("h2").await.unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, SpawnError::HelperMissing { .. }), "{msg}");
            assert!(
                msg.contains(&format!("steward-spawn not found on host h2 at {missing}")),
                "{msg}"
            );
        }
        let b = f.backend_with(&toml);
        let e = b.host_status("silent").await.unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(
                e,
                SpawnError::HostTimeout { .. } | SpawnError::Unreachable { .. }
            ),
            "{msg}"
        );
        assert!(msg.contains("silent"), "{msg}");
        assert!(msg.contains("time") || msg.contains("within"), "{msg}");
        // Neither fault stops a start: it lands on the one good host.
        let s = b.start(&sleep_request("m1")).await.unwrap();
        assert_eq!(host_of(&s.placement), "h1");
    });
    drop(silent);
}

#[test]
fn twenty_concurrent_spawns_spread_over_the_hosts() {
    let _s = serial();
    let Some(f) = Fixture::start("twenty_concurrent_spawns") else {
        return;
    };
    let rt = rt();
    rt.block_on(async {
        let b = Arc::new(f.backend("least_loaded"));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20 {
            let b = b.clone();
            tasks.spawn(async move { b.start(&sleep_request(&format!("c{i:02}"))).await });
        }
        let mut per_host = std::collections::BTreeMap::<String, usize>::new();
        while let Some(r) = tasks.join_next().await {
            let s = r.unwrap().unwrap();
            *per_host.entry(host_of(&s.placement)).or_default() += 1;
        }
        assert_eq!(per_host.values().sum::<usize>(), 20, "{per_host:?}");
        assert!(
            per_host.get("h1").copied().unwrap_or(0) >= 5
                && per_host.get("h2").copied().unwrap_or(0) >= 5,
            "least-loaded spreads concurrent starts: {per_host:?}"
        );
        let listing = b.list().await.unwrap();
        assert_eq!(
            listing.servers.iter().filter(|l| l.status.running).count(),
            20
        );
        let mut stops = tokio::task::JoinSet::new();
        for l in listing.servers {
            let b = b.clone();
            stops.spawn(async move {
                b.stop(&l.placement, &l.status.user, &l.status.server, Some(0))
                    .await
            });
        }
        while let Some(r) = stops.join_next().await {
            r.unwrap().unwrap();
        }
        assert!(b.list().await.unwrap().servers.is_empty());
    });
}

/// The root helper carries no tokio code: the build installs it without the spawner's
/// `client` feature, and even the workspace build links none of it.
#[test]
fn helper_binary_links_no_tokio() {
    let out = std::process::Command::new("nm")
        .args(["--defined-only", "-C"])
        .arg(bin("steward-spawn"))
        .output()
        .expect("nm (binutils) is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let syms = String::from_utf8_lossy(&out.stdout);
    assert!(
        syms.contains("steward_spawner::helper"),
        "no symbols to check"
    );
    let tokio: Vec<&str> = syms
        .lines()
        .filter(|l| l.contains("tokio"))
        .take(5)
        .collect();
    assert!(tokio.is_empty(), "steward-spawn links tokio: {tokio:?}");
}

/// The local backend is the same trait over the helper run here (direct mode), and
/// routes by placement like the others.
#[test]
fn local_backend_behind_the_same_trait() {
    let _s = serial();
    let Some(f) = Fixture::start("local_backend_behind_the_same_trait") else {
        return;
    };
    let rt = rt();
    rt.block_on(async {
        let client = steward_spawner::SpawnerClient::new(
            bin("steward-spawn"),
            Some(f.helper_configs[0].clone()),
            steward_spawner::SpawnMode::Direct,
        );
        let backends = steward_spawner::Backends::new()
            .with(Arc::new(steward_spawner::LocalBackend::new(client)))
            .with(Arc::new(f.backend("sticky")));
        let local = backends.get("local").unwrap();
        let s = local.start(&sleep_request("loc")).await.unwrap();
        assert_eq!(s.placement, Placement::Local);
        let b = backends.for_placement(&s.placement).unwrap();
        assert_eq!(b.name(), "local");
        let st = b.adopt(&s.placement, OWNER, "loc", s.pid).await.unwrap();
        assert!(st.running);
        let listing = b.list().await.unwrap();
        assert!(listing.servers.iter().any(|l| l.status.server == "loc"));
        assert!(b
            .status(&Placement::Ssh { host: "h1".into() }, OWNER, "loc")
            .await
            .is_err());
        b.stop(&s.placement, OWNER, "loc", Some(0)).await.unwrap();
        // The ssh backend sticks an owner to one host.
        let ssh = backends.get("ssh").unwrap();
        let a = ssh.start(&sleep_request("st1")).await.unwrap();
        let c = ssh.start(&sleep_request("st2")).await.unwrap();
        assert_eq!(a.placement, c.placement, "sticky per owner");
        assert!(backends.get("slurm").is_err());
    });
}
