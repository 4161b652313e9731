//! The hub placing UI servers on an ssh host pool, end to end: the demo hub with two
//! network-namespace hosts (tests/src/netns.rs, real sshd, pinned host keys), each
//! running the real helper through sudo with its own config and cgroup prefix. Browsers
//! reach the servers through the hub's relay; operations are decided and audited as
//! for local ones; the servers are listed with their host, explained, drained,
//! re-adopted after a hub restart, and a host that goes down is skipped.

use serde_json::Value;
use std::time::Duration;
use steward_e2e::netns::{pid_netns_inode, Netns, SUBNET};
use steward_e2e::sshpool::Fixture;
use steward_e2e::*;

fn server_of<'a>(list: &'a Value, owner: &str) -> Option<&'a Value> {
    list["servers"]
        .as_array()?
        .iter()
        .find(|s| s["owner"] == owner)
}

/// Opens `owner`'s page as `cookie`'s user and waits for the snapshot the owner's server
/// sends through the relay.
async fn visit(d: &Demo, owner: &str, cookie: &str) -> Ws {
    let mut w = demo_ws(d, owner, cookie).await;
    let snap = ws_until(&mut w, Duration::from_secs(60), |v| v["type"] == "snapshot").await;
    assert!(
        snap["workflows"].as_array().is_some_and(|a| !a.is_empty()),
        "{owner}'s workflows through the relay: {snap}"
    );
    w
}

/// The namespace "host" a pid runs in.
fn host_of_pid(f: &Fixture, pid: u32) -> String {
    let ino = pid_netns_inode(pid).unwrap_or_else(|| panic!("pid {pid} is not running"));
    f.net
        .hosts
        .iter()
        .find(|h| Netns::netns_inode(&h.ns) == Some(ino))
        .map(|h| h.name.clone())
        .unwrap_or_else(|| "the hub's host".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_on_an_ssh_pool_through_the_hub() {
    let Some(f) = Fixture::start("servers_on_an_ssh_pool_through_the_hub") else {
        return;
    };
    let _l = demo_lock();
    let mut d = Demo::start();
    let hub_side = format!("{SUBNET}.1");

    // The demo's config, switched to the pool: internal listener on the bridge, every
    // new server placed over ssh (round robin, so two owners land on two hosts).
    let cfg = d.data.path().join("steward.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text
        .replacen(
            "data_dir =",
            &format!("internal_listen = \"{hub_side}:0\"\ndata_dir ="),
            1,
        )
        .replacen(
            "[spawner]\n",
            &format!("[spawner]\ndefault_backend = \"ssh\"\nremote_hub_address = \"{hub_side}\"\nremote_args = [\"--bind\", \"0.0.0.0:0\"]\n"),
            1,
        );
    let pool = f
        .hub_section("round_robin")
        .replace("command_timeout_secs = 20", "command_timeout_secs = 8");
    write_root_file(&cfg, &format!("{text}\n{pool}"));
    d.serve_with("");

    // The demo prestarts alice's, bob's and carl's servers: now on the pool. carl is a
    // hub admin; alice's goes, so that bob's visit starts it again.
    let (carl, carl_csrf) = d.login("carl").await;
    let servers_url = format!("{}/hub/api/admin/servers", d.base);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let list = loop {
        let list = get_json(&carl, servers_url.clone()).await;
        if ["alice", "bob", "carl"]
            .iter()
            .all(|o| server_listed(&list, o))
        {
            break list;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "prestarts on the pool: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let hosts: std::collections::BTreeSet<&str> = ["alice", "bob", "carl"]
        .iter()
        .map(|o| server_of(&list, o).unwrap()["where"].as_str().unwrap())
        .collect();
    assert_eq!(hosts.len(), 2, "round robin uses both hosts: {list}");
    d.stop_prestarted(&carl, &carl_csrf, "alice").await;

    // bob watches alice's workflows: her server starts on a pool host, the relay reaches
    // it there, and the process runs in that host's namespace, as alice.
    let (bob_cookie, _) = login_cookie(&d.base, &d.ca(), "bob", &d.password("bob")).await;
    drop(visit(&d, "alice", &bob_cookie).await);
    let list = get_json(&carl, servers_url.clone()).await;
    let alice = server_of(&list, "alice")
        .expect("alice's server listed")
        .clone();
    assert_eq!(alice["backend"], "ssh", "{list}");
    assert_eq!(alice["state"], "running", "{list}");
    let alice_host = alice["where"].as_str().unwrap().to_string();
    let alice_pid = alice["pid"].as_u64().unwrap() as u32;
    assert_eq!(host_of_pid(&f, alice_pid), alice_host, "{list}");
    let alice_addr = &f.net.host(&alice_host).address;
    assert!(
        alice["endpoint"]
            .as_str()
            .unwrap()
            .contains(alice_addr.as_str()),
        "the hub dials the pool's address of the host it chose: {list}"
    );
    let uid = nix::unistd::User::from_name("alice").unwrap().unwrap().uid;
    let status = std::fs::read_to_string(format!("/proc/{alice_pid}/status")).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:")
            && l.split_whitespace().nth(1) == Some(&uid.to_string())),
        "alice's server runs as alice: {status}"
    );
    let cgroup = std::fs::read_to_string(format!("/proc/{alice_pid}/cgroup")).unwrap();
    assert!(
        cgroup.contains(&format!("steward-e2e-ssh-{alice_host}")),
        "in that host's cgroup prefix: {cgroup}"
    );

    // An operation on the remote server: decided, signed, forwarded, audited.
    let (alice_c, alice_csrf) = d.login("alice").await;
    let (_, alice_exec) = d.elevate(&alice_c, &alice_csrf, "alice", "execute").await;
    let mut w = visit(&d, "alice", &alice_exec).await;
    // (The demo's hub stopped its workflows when it was restarted above.)
    for (id, op) in [
        ("p0", "play"),
        ("p1", "pause"),
        ("p2", "resume"),
        ("p3", "stop"),
    ] {
        let r = ws_op(&mut w, id, op, "alice_forecast").await;
        assert_eq!(r["type"], "result", "{op}: {r}");
        assert_eq!(r["ok"], true, "{op}: {r}");
    }
    drop(w);
    wait_until(Duration::from_secs(5), || {
        d.audit_records()
            .iter()
            .any(|r| r["op"] == "resume" && r["kind"] == "outcome" && r["actor"] == "alice")
    });
    let records = d.audit_records();
    let spawn = records
        .iter()
        .rfind(|r| r["event"] == "spawn" && r["owner"] == "alice")
        .expect("the start audited");
    assert_eq!(spawn["actor"], "bob", "{spawn}");
    assert_eq!(
        spawn["extra"]["placement"],
        format!("ssh:{alice_host}"),
        "{spawn}"
    );
    for kind in ["intent", "outcome"] {
        assert!(
            records
                .iter()
                .any(|r| r["op"] == "pause" && r["kind"] == kind && r["owner"] == "alice"),
            "pause {kind} audited"
        );
    }

    // bob's prestarted server runs on its host too.
    let list = get_json(&carl, servers_url.clone()).await;
    let bob = server_of(&list, "bob").expect("bob's server").clone();
    assert_eq!(bob["backend"], "ssh");
    let bob_host = bob["where"].as_str().unwrap().to_string();
    assert_eq!(
        host_of_pid(&f, bob["pid"].as_u64().unwrap() as u32),
        bob_host
    );
    let other_host = if alice_host == "h1" { "h2" } else { "h1" }.to_string();

    // The CLI: list with backend and host, the placement explained, a host drained.
    let token = d.cli_token("carl");
    let (ok, out) = d.cli(&token, &["servers", "list"]);
    assert!(ok, "{out}");
    let alice_line = out.lines().find(|l| l.starts_with("alice")).expect(&out);
    assert!(
        alice_line.contains("ssh")
            && alice_line.contains(&alice_host)
            && alice_line.contains("running"),
        "{out}"
    );
    let (ok, out) = d.cli(
        &token,
        &["servers", "place", "--owner", "carl", "--explain"],
    );
    assert!(ok, "{out}");
    for needle in ["h1", "h2", "verdict", "next server would go to"] {
        assert!(out.contains(needle), "{needle:?} in: {out}");
    }
    let (ok, out) = d.cli(&token, &["servers", "drain", &alice_host]);
    assert!(ok, "{out}");
    let (_, out) = d.cli(
        &token,
        &["servers", "place", "--owner", "carl", "--explain"],
    );
    assert!(
        out.contains(&format!("next server would go to {other_host}")) && out.contains("drained"),
        "a drained host gets no new server: {out}"
    );
    let (ok, out) = d.cli(&token, &["servers", "drain", &alice_host, "--undo"]);
    assert!(ok, "{out}");
    let (ok, out) = d.cli(&token, &["servers", "drain", "h9"]);
    assert!(!ok && out.contains("h9"), "an unknown host is named: {out}");
    let (ok, out) = d.cli(&token, &["servers", "place", "--owner", "a/b", "--explain"]);
    assert!(!ok && out.contains("owner"), "{out}");
    assert!(d
        .audit_records()
        .iter()
        .any(|r| r["event"] == "admin"
            && r["message"].as_str().is_some_and(|m| m.contains("drained"))));

    // A hub restart re-adopts both remote servers where they run (same pids).
    d.serve_with("");
    let (carl, carl_csrf) = d.login("carl").await;
    let list = get_json(&carl, servers_url.clone()).await;
    for (owner, was) in [("alice", &alice), ("bob", &bob)] {
        let s = server_of(&list, owner).unwrap_or_else(|| panic!("{owner} re-adopted: {list}"));
        assert_eq!(s["pid"], was["pid"], "{list}");
        assert_eq!(s["where"], was["where"], "{list}");
    }
    let (bob_cookie, _) = login_cookie(&d.base, &d.ca(), "bob", &d.password("bob")).await;
    drop(visit(&d, "alice", &bob_cookie).await);
    // Adoption runs in the background after the hub is ready.
    assert!(wait_until(Duration::from_secs(30), || d
        .audit_records()
        .iter()
        .any(|r| r["event"] == "adopt" && r["owner"] == "alice")));

    // alice's host goes down (every process in it dies). Her server is not forgotten on
    // that evidence alone, but once stopped, her next server is placed on the other host.
    let down = f
        .net
        .hosts
        .iter()
        .position(|h| h.name == alice_host)
        .unwrap();
    f.net.take_down(down);
    let (ok, out) = d.cli(
        &token,
        &["servers", "place", "--owner", "alice", "--explain"],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("next server would go to {other_host}")) && out.contains("down"),
        "a host that is down is skipped and said to be: {out}"
    );
    let _ = carl
        .post(format!("{}/hub/api/admin/servers/alice/stop", d.base))
        .header("x-csrf-token", &carl_csrf)
        .send()
        .await
        .unwrap();
    drop(visit(&d, "alice", &bob_cookie).await);
    let list = get_json(&carl, servers_url.clone()).await;
    let again = server_of(&list, "alice").expect("alice's new server");
    assert_eq!(again["where"], other_host.as_str(), "{list}");
    assert_eq!(
        host_of_pid(&f, again["pid"].as_u64().unwrap() as u32),
        other_host
    );

    // The downed host comes back with another host key (reinstalled, or an impostor on
    // its address): the hub refuses it, says why, and never accepts the new key.
    let pinned = std::fs::read_to_string(&f.net.known_hosts).unwrap();
    f.net.rekey(down).unwrap();
    let (ok, out) = d.cli(
        &token,
        &["servers", "place", "--owner", "alice", "--explain"],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("next server would go to {other_host}"))
            && out.contains("does not match the key pinned"),
        "a changed host key is refused and named: {out}"
    );
    assert_eq!(
        std::fs::read_to_string(&f.net.known_hosts).unwrap(),
        pinned,
        "known_hosts unchanged"
    );

    // The helper is missing on the one host left (a botched install): a start fails
    // with a message naming the host and the path, it is audited, and nothing of
    // alice's is left started on either host.
    let _ = carl
        .post(format!("{}/hub/api/admin/servers/alice/stop", d.base))
        .header("x-csrf-token", &carl_csrf)
        .send()
        .await
        .unwrap();
    let cfg = d.data.path().join("steward.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let table = format!("[spawner.ssh.hosts.{other_host}]\n");
    assert!(text.contains(&table), "{text}");
    write_root_file(
        &cfg,
        &text.replacen(
            &table,
            &format!("{table}helper = \"/nonexistent/steward-spawn\"\n"),
            1,
        ),
    );
    d.serve_with("");
    let (carl, carl_csrf) = d.login("carl").await;
    let (alice_c, alice_csrf) = d.login("alice").await;
    let r = alice_c
        .post(format!("{}/hub/api/server", d.base))
        .header("x-csrf-token", &alice_csrf)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let message = body["error"].as_str().unwrap_or_default();
    assert_eq!(status, 403, "{body}");
    assert!(
        message.contains("steward-spawn not found on host")
            && message.contains("/nonexistent/steward-spawn")
            && message.contains("does not match the key pinned"),
        "both hosts named with why: {message}"
    );
    assert!(d
        .audit_records()
        .iter()
        .any(|r| r["event"] == "spawn_failed"
            && r["owner"] == "alice"
            && r["message"]
                .as_str()
                .is_some_and(|m| m.contains("/nonexistent/steward-spawn"))));
    let list = get_json(&carl, servers_url.clone()).await;
    assert!(server_of(&list, "alice").is_none(), "{list}");
    assert!(
        list["starting"]
            .as_array()
            .is_none_or(|a| !a.iter().any(|s| s["owner"] == "alice")),
        "{list}"
    );
    let out = std::process::Command::new("pgrep")
        .args(["-u", "alice"])
        .output()
        .unwrap();
    let on_pool: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .filter_map(|pid| {
            let ino = pid_netns_inode(pid)?;
            f.net
                .hosts
                .iter()
                .find(|h| Netns::netns_inode(&h.ns) == Some(ino))
                .map(|h| h.name.clone())
        })
        .collect();
    assert!(on_pool.is_empty(), "alice's processes left on {on_pool:?}");

    // Leave no server behind on the pool.
    for owner in ["alice", "bob", "carl"] {
        let _ = carl
            .post(format!("{}/hub/api/admin/servers/{owner}/stop", d.base))
            .header("x-csrf-token", &carl_csrf)
            .send()
            .await;
    }
}
