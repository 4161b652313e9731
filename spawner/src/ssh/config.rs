//! The ssh host pool's configuration: which hosts, how to log in (a dedicated key, host
//! keys pinned in a known_hosts file), where the helper is on each host, and the
//! placement policy. Pure data and validation; every error names its field.

use crate::config::parse_size;
use crate::error::SpawnError;
use crate::placement::{Policy, Thresholds};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const DEFAULT_REMOTE_HELPER: &str = "/usr/local/libexec/steward/steward-spawn";
pub const DEFAULT_REMOTE_HELPER_CONFIG: &str = "/etc/steward/spawn.toml";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SshPoolConfig {
    /// Private key the hub logs in with; a key for Steward alone, never a person's.
    pub key: PathBuf,
    /// known_hosts file holding every pool host's key. `StrictHostKeyChecking=yes`:
    /// a host missing from it or with another key is refused, nothing is ever added.
    pub known_hosts: PathBuf,
    /// The helper's path on the hosts (a host may override it).
    #[serde(default = "default_helper")]
    pub helper: String,
    /// The helper config's path on the hosts (a host may override it).
    #[serde(default = "default_helper_config")]
    pub helper_config: String,
    /// Run the helper through `sudo -n` (login as an unprivileged account with the
    /// shipped sudoers rule); `false` when logging in as root with a forced command.
    #[serde(default = "default_true")]
    pub sudo: bool,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Bound on one helper call over ssh, connection included.
    #[serde(default = "default_command_timeout")]
    pub command_timeout_secs: u64,
    /// How long an idle shared connection to a host is kept open.
    #[serde(default = "default_persist")]
    pub control_persist_secs: u64,
    /// Helper calls at once per host (sshd's `MaxSessions` caps channels per connection,
    /// 10 by default: stay below it).
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Directory for the control sockets (0700, the hub's own); default: a fresh
    /// directory under the system temporary directory.
    #[serde(default)]
    pub control_dir: Option<PathBuf>,
    /// A host's status is reused for this long before placement asks it again.
    #[serde(default = "default_status_age")]
    pub status_max_age_ms: u64,
    #[serde(default)]
    pub placement: PlacementConfig,
    pub hosts: BTreeMap<String, HostConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct PlacementConfig {
    #[serde(default)]
    pub policy: Policy,
    /// Skip hosts with less available memory than this ("2G", "512M" or bytes).
    #[serde(default)]
    pub min_free_memory: Option<toml::Value>,
    /// Skip hosts already running this many Steward servers.
    #[serde(default)]
    pub max_servers: Option<u32>,
    /// Skip hosts whose 1-minute load per CPU is above this.
    #[serde(default)]
    pub max_load_per_cpu: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Address or DNS name sshd listens on; also what the hub connects a server on.
    pub address: String,
    /// Account the hub logs in as.
    #[serde(default = "default_user")]
    pub user: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub helper: Option<String>,
    pub helper_config: Option<String>,
    /// A drained host keeps its servers but gets no new ones.
    #[serde(default)]
    pub drained: bool,
}

fn default_helper() -> String {
    DEFAULT_REMOTE_HELPER.into()
}
fn default_helper_config() -> String {
    DEFAULT_REMOTE_HELPER_CONFIG.into()
}
fn default_true() -> bool {
    true
}
fn default_connect_timeout() -> u64 {
    5
}
fn default_command_timeout() -> u64 {
    30
}
fn default_persist() -> u64 {
    600
}
fn default_max_sessions() -> usize {
    8
}
fn default_status_age() -> u64 {
    2000
}
fn default_user() -> String {
    "steward".into()
}
fn default_port() -> u16 {
    22
}

/// A host name as the pool, logs and control socket names use it.
fn host_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// An address ssh gets as its destination: never starting with '-' (it would be read as
/// an option), no spaces or shell characters.
fn address_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'_'))
}

fn login_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'))
}

fn remote_path_ok(s: &str) -> bool {
    s.starts_with('/') && !s.bytes().any(|b| b.is_ascii_control())
}

impl SshPoolConfig {
    /// Parses and validates; errors carry `origin` (the file) and the field.
    pub fn parse(text: &str, origin: &Path) -> Result<SshPoolConfig, SpawnError> {
        let cfg: SshPoolConfig = toml::from_str(text).map_err(|e| SpawnError::Config {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        cfg.validate().map_err(|message| SpawnError::Config {
            path: origin.to_path_buf(),
            message,
        })?;
        Ok(cfg)
    }

    /// Checks every field; the error names the first bad one (`hosts.h1.address: …`).
    /// A caller that embeds this table in a larger file prefixes its own section name.
    pub fn validate(&self) -> Result<(), String> {
        if !self.key.is_absolute() {
            return Err(format!(
                "key: {} is not an absolute path",
                self.key.display()
            ));
        }
        if !self.known_hosts.is_absolute() {
            return Err(format!(
                "known_hosts: {} is not an absolute path",
                self.known_hosts.display()
            ));
        }
        if !remote_path_ok(&self.helper) {
            return Err(format!("helper: {:?} is not an absolute path", self.helper));
        }
        if !remote_path_ok(&self.helper_config) {
            return Err(format!(
                "helper_config: {:?} is not an absolute path",
                self.helper_config
            ));
        }
        for (field, v) in [
            ("connect_timeout_secs", self.connect_timeout_secs),
            ("command_timeout_secs", self.command_timeout_secs),
            ("control_persist_secs", self.control_persist_secs),
        ] {
            if v == 0 || v > 86_400 {
                return Err(format!("{field}: {v} is not between 1 and 86400"));
            }
        }
        if !(1..=64).contains(&self.max_sessions) {
            return Err(format!(
                "max_sessions: {} is not between 1 and 64 (sshd allows 10 by default)",
                self.max_sessions
            ));
        }
        if let Some(dir) = &self.control_dir {
            // Unix socket paths are limited to 108 bytes; leave room for the file name.
            if !dir.is_absolute() || dir.as_os_str().len() > 60 {
                return Err(format!(
                    "control_dir: {} must be an absolute path of at most 60 bytes",
                    dir.display()
                ));
            }
        }
        self.thresholds()?;
        if self.hosts.is_empty() {
            return Err("hosts: the pool has no hosts; add [hosts.NAME] tables".into());
        }
        for (name, h) in &self.hosts {
            if !host_name_ok(name) {
                return Err(format!(
                    "hosts.{name}: host names use letters, digits, '-', '_', '.' (at most 64)"
                ));
            }
            if !address_ok(&h.address) {
                return Err(format!(
                    "hosts.{name}.address: {:?} is not a host name or IP address",
                    h.address
                ));
            }
            if !login_ok(&h.user) {
                return Err(format!(
                    "hosts.{name}.user: {:?} is not a valid login name",
                    h.user
                ));
            }
            if h.port == 0 {
                return Err(format!("hosts.{name}.port: 0 is not a port"));
            }
            for (field, v) in [("helper", &h.helper), ("helper_config", &h.helper_config)] {
                if let Some(p) = v {
                    if !remote_path_ok(p) {
                        return Err(format!(
                            "hosts.{name}.{field}: {p:?} is not an absolute path"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The placement thresholds in the units the placement module uses.
    pub fn thresholds(&self) -> Result<Thresholds, String> {
        let p = &self.placement;
        let min_free_memory = match &p.min_free_memory {
            None => None,
            Some(toml::Value::Integer(n)) if *n >= 0 => Some(*n as u64),
            Some(toml::Value::String(s)) => {
                Some(parse_size(s).map_err(|e| format!("placement.min_free_memory: {e}"))?)
            }
            Some(other) => {
                return Err(format!(
                    "placement.min_free_memory: {other} is not a size (e.g. \"2G\")"
                ))
            }
        };
        let max_load_per_cpu_milli = match p.max_load_per_cpu {
            None => None,
            Some(v) if v.is_finite() && v > 0.0 && v <= 1000.0 => Some((v * 1000.0).round() as u64),
            Some(v) => {
                return Err(format!(
                    "placement.max_load_per_cpu: {v} is not between 0 and 1000"
                ))
            }
        };
        if p.max_servers == Some(0) {
            return Err("placement.max_servers: 0 would exclude every host".into());
        }
        Ok(Thresholds {
            min_free_memory,
            max_servers: p.max_servers,
            max_load_per_cpu_milli,
        })
    }

    pub fn helper_for(&self, host: &str) -> &str {
        self.hosts
            .get(host)
            .and_then(|h| h.helper.as_deref())
            .unwrap_or(&self.helper)
    }

    pub fn helper_config_for(&self, host: &str) -> &str {
        self.hosts
            .get(host)
            .and_then(|h| h.helper_config.as_deref())
            .unwrap_or(&self.helper_config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
key = "/etc/steward/ssh/id_ed25519"
known_hosts = "/etc/steward/ssh/known_hosts"
[placement]
policy = "sticky"
min_free_memory = "2G"
max_servers = 40
max_load_per_cpu = 1.5
[hosts.h1]
address = "10.213.0.11"
[hosts.h2]
address = "login2.example.org"
user = "stwhub"
port = 2222
helper = "/opt/steward/steward-spawn"
drained = true
"#;

    fn parse(text: &str) -> Result<SshPoolConfig, SpawnError> {
        SshPoolConfig::parse(text, Path::new("steward.toml"))
    }

    #[test]
    fn a_good_pool_parses_with_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.hosts["h1"].user, "steward");
        assert_eq!(c.hosts["h1"].port, 22);
        assert!(c.sudo);
        assert!(c.hosts["h2"].drained);
        assert_eq!(c.helper_for("h1"), DEFAULT_REMOTE_HELPER);
        assert_eq!(c.helper_for("h2"), "/opt/steward/steward-spawn");
        assert_eq!(c.helper_config_for("h2"), DEFAULT_REMOTE_HELPER_CONFIG);
        let t = c.thresholds().unwrap();
        assert_eq!(t.min_free_memory, Some(2 << 30));
        assert_eq!(t.max_servers, Some(40));
        assert_eq!(t.max_load_per_cpu_milli, Some(1500));
        assert_eq!(c.placement.policy, Policy::Sticky);
    }

    #[test]
    fn bad_pools_are_refused_naming_the_field() {
        let cases = [
            (
                GOOD.replace("10.213.0.11", "-oProxyCommand=x"),
                "hosts.h1.address",
            ),
            (GOOD.replace("10.213.0.11", "a b"), "hosts.h1.address"),
            (GOOD.replace("\"stwhub\"", "\"Root;\""), "hosts.h2.user"),
            (GOOD.replace("2222", "0"), "hosts.h2.port"),
            (GOOD.replace("2222", "70000"), "port"),
            (
                GOOD.replace("/opt/steward", "opt/steward"),
                "hosts.h2.helper",
            ),
            (GOOD.replace("/etc/steward/ssh/id_ed25519", "id"), "key"),
            (
                GOOD.replace("/etc/steward/ssh/known_hosts", "kh"),
                "known_hosts",
            ),
            (
                GOOD.replace("\"2G\"", "\"2Q\""),
                "placement.min_free_memory",
            ),
            (GOOD.replace("1.5", "-1.0"), "placement.max_load_per_cpu"),
            (
                GOOD.replace("max_servers = 40", "max_servers = 0"),
                "placement.max_servers",
            ),
            (GOOD.replace("\"sticky\"", "\"random\""), "policy"),
            (GOOD.replace("[hosts.h1]", "[hosts.\"h 1\"]"), "hosts.h 1"),
            (
                GOOD.replace("drained = true", "drained = true\nbogus = 1"),
                "bogus",
            ),
            (
                GOOD.replace("[placement]", "max_sessions = 100\n[placement]"),
                "max_sessions",
            ),
            (
                GOOD.replace("[placement]", "connect_timeout_secs = 0\n[placement]"),
                "connect_timeout_secs",
            ),
        ];
        for (text, needle) in cases {
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains(needle), "expected {needle:?} in: {e}");
            assert!(e.contains("steward.toml"), "{e}");
        }
        let e = parse("key = \"/k\"\nknown_hosts = \"/kh\"\n[hosts]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("hosts: the pool has no hosts"), "{e}");
    }
}
