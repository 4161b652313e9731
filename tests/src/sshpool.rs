//! The ssh host pool the spawner's ssh tests and benchmark run against: two namespace
//! hosts ([`crate::netns`]), a dedicated login account allowed by a sudoers rule to run
//! exactly the helper with each host's config, and per-host helper configs whose cgroup
//! prefix names the host (the hosts share this machine's cgroup tree).

use crate::netns::{Netns, SudoRule};
use crate::{
    bin, ensure_user, helper_call, require_root, sh, traversable_tempdir, write_root_file,
};
use serde_json::json;
use std::path::PathBuf;
use steward_protocol::helper::StartRequest;
use steward_spawner::ssh::{SshBackend, SshPoolConfig};

/// The account the hub logs in as on every host.
pub const LOGIN: &str = "steward-sshhub";
/// The owner whose servers are started.
pub const OWNER: &str = "steward-sshu";

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub helper_configs: Vec<PathBuf>,
    _sudo: SudoRule,
    pub net: Netns,
}

impl Fixture {
    /// `None` when the test should be skipped (not root, outside CI).
    pub fn start(test: &str) -> Option<Fixture> {
        if !require_root(test) {
            return None;
        }
        if nix::unistd::User::from_name(LOGIN).unwrap().is_none() {
            sh(&format!("useradd -r -m -s /bin/sh {LOGIN}"));
        }
        ensure_user(OWNER, "not-used-for-login");
        let dir = traversable_tempdir();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut helper_configs = vec![];
        for h in ["h1", "h2"] {
            let cfg = dir.path().join(format!("spawn-{h}.toml"));
            write_root_file(
                &cfg,
                &format!(
                    r#"min_uid = 1000
log_dir = "{logs}"
[executables]
listen = "{listen}"
sleep = "/usr/bin/sleep"
uiserver = "{uiserver}"
[cgroup]
prefix = "steward-e2e-ssh-{h}"
[profiles.default]
memory = "256M"
pids = 64
"#,
                    logs = dir.path().join(format!("logs-{h}")).display(),
                    listen = bin("steward-test-listen").display(),
                    uiserver = bin("steward-uiserver").display(),
                ),
            );
            // A killed earlier run may have left servers under this host's prefix.
            cleanup_local(&cfg);
            helper_configs.push(cfg);
        }
        let sudo = SudoRule::install(
            "steward-e2e-ssh",
            LOGIN,
            &bin("steward-spawn"),
            &helper_configs,
        )
        .unwrap();
        let net = Netns::start(2, LOGIN).unwrap_or_else(|e| panic!("{test}: netns hosts: {e}"));
        Some(Fixture {
            dir,
            helper_configs,
            _sudo: sudo,
            net,
        })
    }

    /// Pool config TOML; `extra_top` goes before the tables, `hosts_extra` after them.
    pub fn pool_toml(&self, policy: &str, extra_top: &str, hosts_extra: &str) -> String {
        let mut t = format!(
            "key = \"{}\"\nknown_hosts = \"{}\"\nhelper = \"{}\"\nconnect_timeout_secs = 3\ncommand_timeout_secs = 20\n{extra_top}\n[placement]\npolicy = \"{policy}\"\n",
            self.net.client_key.display(),
            self.net.known_hosts.display(),
            bin("steward-spawn").display(),
        );
        for (h, cfg) in self.net.hosts.iter().zip(&self.helper_configs) {
            t.push_str(&format!(
                "[hosts.{}]\naddress = \"{}\"\nuser = \"{LOGIN}\"\nhelper_config = \"{}\"\n",
                h.name,
                h.address,
                cfg.display()
            ));
        }
        t.push_str(hosts_extra);
        t
    }

    /// The pool as a `[spawner.ssh]` section of the hub's own config.
    pub fn hub_section(&self, policy: &str) -> String {
        let mut out = String::new();
        let mut section = "spawner.ssh".to_string();
        for line in self.pool_toml(policy, "", "").lines() {
            match line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                Some(table) => {
                    section = format!("spawner.ssh.{table}");
                    out.push_str(&format!("[{section}]\n"));
                }
                None if section == "spawner.ssh" && out.is_empty() => {
                    out.push_str("[spawner.ssh]\n");
                    out.push_str(line);
                    out.push('\n');
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }

    pub fn backend(&self, policy: &str) -> SshBackend {
        self.backend_with(&self.pool_toml(policy, "", ""))
    }

    pub fn backend_with(&self, toml: &str) -> SshBackend {
        let cfg = SshPoolConfig::parse(toml, &self.dir.path().join("pool.toml")).unwrap();
        SshBackend::new(cfg).unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for cfg in &self.helper_configs {
            cleanup_local(cfg);
        }
    }
}

/// Stops every server under a helper config, from this (root) namespace: the hosts
/// share the cgroup tree, so this also clears what a crashed host left.
pub fn cleanup_local(cfg: &std::path::Path) {
    let (_, list) = helper_call(cfg, &json!({"verb": "list"}));
    for s in list["servers"].as_array().into_iter().flatten() {
        helper_call(
            cfg,
            &json!({"verb": "stop", "user": s["user"], "server": s["server"], "grace_secs": 0}),
        );
    }
}

/// Starts the test listener (`steward-test-listen`) on every address of the host.
pub fn listen_request(server: &str, port: u16) -> StartRequest {
    StartRequest {
        user: OWNER.into(),
        server: server.into(),
        executable: "listen".into(),
        args: vec![format!("0.0.0.0:{port}")],
        env: Default::default(),
        stdin: None,
        profile: None,
    }
}

/// Starts a `sleep` that outlives any test.
pub fn sleep_request(server: &str) -> StartRequest {
    StartRequest {
        user: OWNER.into(),
        server: server.into(),
        executable: "sleep".into(),
        args: vec!["600".into()],
        env: Default::default(),
        stdin: None,
        profile: None,
    }
}
