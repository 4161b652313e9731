//! The second deployment: the hub runs as an unprivileged system account and reaches the
//! helper only through `sudo -n` with the shipped sudoers rule. A real PAM login, a spawn
//! through sudo, an audited operation — with no root in the hub process.

// Demo hubs reset the shared demo users, so each test holds the process-wide demo lock
// for its whole run, across awaits, on purpose.
#![allow(clippy::await_holding_lock)]

use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use steward_e2e::*;

const HUB_USER: &str = "steward-hubtest";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprivileged_hub_spawns_through_sudo() {
    if !require_root("unprivileged_hub_spawns_through_sudo") {
        return;
    }
    let _l = demo_lock();
    if nix::unistd::User::from_name(HUB_USER).unwrap().is_none() {
        sh(&format!("useradd -r -M -s /usr/sbin/nologin {HUB_USER}"));
    }
    // pam_unix checks other users' passwords only as root or with /etc/shadow readable.
    sh(&format!("usermod -aG shadow {HUB_USER}"));
    let mut d = Demo::start();
    if let Some(mut p) = d.proc.take() {
        p.interrupt();
    }
    let data = d.data.path().to_path_buf();
    // The hub account owns its state, its audit log and its TLS key; nothing else.
    for dir in ["state", "audit"] {
        let p = data.join(dir);
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        sh(&format!("chown {HUB_USER} {}", p.display()));
    }
    sh(&format!(
        "chown {HUB_USER} {}/tls {}/tls/hub.key",
        data.display(),
        data.display()
    ));
    let helper = data.join("bin/steward-spawn");
    let spawn_cfg = data.join("spawn.toml");
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../etc/sudoers.d/steward"
    ))
    .unwrap();
    let rule = shipped
        .replace("Defaults:steward ", &format!("Defaults:{HUB_USER} "))
        .replace("steward ALL=(root)", &format!("{HUB_USER} ALL=(root)"))
        .replace(
            "/usr/libexec/steward/steward-spawn",
            &helper.display().to_string(),
        )
        .replace("/etc/steward/spawn.toml", &spawn_cfg.display().to_string());
    let rule_path = format!("/etc/sudoers.d/steward-e2e-hub-{}", std::process::id());
    std::fs::write(&rule_path, &rule).unwrap();
    std::fs::set_permissions(&rule_path, std::fs::Permissions::from_mode(0o440)).unwrap();
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _guard = Remove(rule_path.clone());
    sh(&format!("visudo -cf {rule_path}"));

    let cfg = data.join("steward.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[spawner]\n", "[spawner]\nmode = \"sudo\"\n")
        .replace("prestart = [\"alice\", \"bob\", \"carl\"]", "prestart = []");
    write_root_file(&cfg, &text);
    // setpriv execs (runuser would stay as a root parent): the hub process is the account.
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args([
        &format!("--reuid={HUB_USER}"),
        &format!("--regid={HUB_USER}"),
        "--init-groups",
        "--",
    ])
    .arg(bin("steward"))
    .args(["serve", "-c"])
    .arg(&cfg)
    .env("STEWARD_LOG", "warn");
    let mut hub = Proc::spawn(cmd);
    hub.wait_for_line("ready on", Duration::from_secs(60));
    let hub_pid = hub.child.id();
    // The listening process is the hub itself, running as the hub account.
    let hub_uid = nix::unistd::User::from_name(HUB_USER)
        .unwrap()
        .unwrap()
        .uid
        .to_string();
    let status = std::fs::read_to_string(format!("/proc/{hub_pid}/status")).unwrap();
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_string();
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == hub_uid),
        "hub not unprivileged: {uid_line}"
    );

    let (c, csrf) = d.login("alice").await;
    let (_, cookie) = d.elevate(&c, &csrf, "alice", "execute").await;
    let mut w = ws_connect(
        &d.ca(),
        &format!("wss://127.0.0.1:{}/user/alice/ws", d.port),
        Some(&d.base),
        &cookie,
    )
    .await
    .expect("ws");
    ws_until(&mut w, Duration::from_secs(30), |v| v["type"] == "snapshot").await;
    ws_send(
        &mut w,
        json!({"type": "op", "id": "h1", "op": "play", "target": "housekeeping"}),
    )
    .await;
    let r = ws_until(&mut w, Duration::from_secs(30), |v| v["id"] == "h1").await;
    assert_eq!(r["ok"], true, "{r}");
    drop(w);
    let procs =
        std::fs::read_to_string("/sys/fs/cgroup/pids/steward-demo/alice/default/cgroup.procs")
            .unwrap();
    let alice_uid = nix::unistd::User::from_name("alice")
        .unwrap()
        .unwrap()
        .uid
        .to_string();
    let pid = procs.lines().next().expect("alice's server runs");
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        st.lines()
            .any(|l| l.starts_with("Uid:")
                && l.split_whitespace().nth(1) == Some(alice_uid.as_str())),
        "{st}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || d
            .audit_records()
            .iter()
            .any(|r| r["op"] == "play" && r["outcome"] == "ok")),
        "operation not audited"
    );
    hub.interrupt();
}
