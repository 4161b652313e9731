//! `steward.toml`: everything a site admin sets. Unknown keys are errors (a typo must not
//! silently leave a default in place), and every error names the file, line and field.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use steward_spawner::SpawnMode;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        field: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// The URL browsers use; WebSocket Origins must match it.
    pub public_url: String,
    /// Where the public HTTPS listener binds.
    pub listen: SocketAddr,
    /// The internal mutual-TLS listener UI servers register with (port 0 = any).
    #[serde(default = "default_internal_listen")]
    pub internal_listen: SocketAddr,
    /// SQLite database, CA and signing keys live here (0700).
    pub data_dir: PathBuf,
    pub tls: TlsConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    pub policy: PolicyConfig,
    pub spawner: SpawnerConfig,
    #[serde(default)]
    pub elevation: ElevationConfig,
    #[serde(default)]
    pub sessions: SessionConfig,
    pub audit: AuditSection,
    /// Where sessions, tokens and the server registry live: SQLite in `data_dir` (the
    /// default), or a PostgreSQL database shared by several hubs.
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub uiserver: UiServerConfig,
    /// Servers that are JupyterHub single-user servers (`cylc hubapp`).
    #[serde(default)]
    pub singleuser: SingleUserConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Hub admins: may stop servers and read every audit record, nothing more.
    #[serde(default)]
    pub admins: Vec<String>,
    #[serde(default)]
    pub testing: TestingConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default = "default_backend")]
    pub backend: String,
    #[serde(default = "default_pam_service")]
    pub pam_service: String,
    #[serde(default = "default_user_pattern")]
    pub user_pattern: String,
    /// Failed logins allowed per user name from one address within `failure_window_secs`
    /// (ten times as many from all addresses together: see `auth::ratelimit`).
    #[serde(default = "default_per_user")]
    pub max_failures_per_user: usize,
    /// Failed logins allowed per client address within `failure_window_secs`.
    #[serde(default = "default_per_addr")]
    pub max_failures_per_address: usize,
    #[serde(default = "default_window")]
    pub failure_window_secs: u64,
    /// Settings of the LDAP backend (required when `backend = "ldap"`).
    #[serde(default)]
    pub ldap: Option<crate::ldap::LdapConfig>,
}

fn default_per_user() -> usize {
    5
}
fn default_per_addr() -> usize {
    20
}
fn default_window() -> u64 {
    300
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            backend: default_backend(),
            pam_service: default_pam_service(),
            user_pattern: default_user_pattern(),
            max_failures_per_user: default_per_user(),
            max_failures_per_address: default_per_addr(),
            failure_window_secs: default_window(),
            ldap: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The site policy (root-owned).
    pub site: PathBuf,
    /// Path of each owner's policy, relative to their home, read as the owner.
    #[serde(default = "default_user_policy")]
    pub user_file: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpawnerConfig {
    pub helper: PathBuf,
    pub config: Option<PathBuf>,
    #[serde(default = "default_mode")]
    pub mode: SpawnMode,
    /// Key in the helper's executable allow-list.
    #[serde(default = "default_executable")]
    pub executable: String,
    /// Arguments for that executable.
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default = "default_start_timeout")]
    pub start_timeout_secs: u64,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default = "default_pending")]
    pub max_pending: usize,
    /// Where a start goes when its profile is not in `profile_backends`: `local` (this
    /// machine, through `helper`) or `ssh` (the `[spawner.ssh]` pool).
    #[serde(default = "default_backend_name")]
    pub default_backend: String,
    /// Per helper profile, the backend its servers are placed on (`{ big = "ssh" }`).
    #[serde(default)]
    pub profile_backends: std::collections::BTreeMap<String, String>,
    /// The address the pool's hosts reach this hub's internal listener at (its port is
    /// the listener's): a server placed on another host registers there.
    #[serde(default)]
    pub remote_hub_address: Option<String>,
    /// Arguments for servers placed on another host instead of `args`: the server must
    /// listen where the hub can reach it (the built-in one: `["--bind", "0.0.0.0:0"]`;
    /// mutual TLS still admits only this hub).
    #[serde(default)]
    pub remote_args: Option<Vec<String>>,
    /// The ssh host pool (`[spawner.ssh]`, with `[spawner.ssh.hosts.NAME]` tables).
    #[serde(default)]
    pub ssh: Option<steward_spawner::ssh::SshPoolConfig>,
    /// The Slurm cluster the hub submits to and polls (`[spawner.slurm]`; `name` must
    /// be a `[slurm.<name>]` table of the helper config).
    #[serde(default)]
    pub slurm: Option<steward_spawner::slurm::SlurmCluster>,
}

/// The backends the hub can place a server on.
pub const BACKENDS: &[&str] = &["local", "ssh", "slurm"];

impl SpawnerConfig {
    /// Whether any start can go to `backend`.
    pub fn uses(&self, backend: &str) -> bool {
        self.default_backend == backend || self.profile_backends.values().any(|b| b == backend)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElevationConfig {
    #[serde(default = "default_elevation_secs")]
    pub default_secs: u64,
    #[serde(default = "default_elevation_max")]
    pub max_secs: u64,
    /// Whether owners must elevate to act on their own workflows (sudo-like: yes).
    #[serde(default = "yes")]
    pub owners_must_elevate: bool,
    /// Longest lifetime of an API token that can execute or write.
    #[serde(default = "default_elevation_max")]
    pub token_max_secs: u64,
    /// Per-group overrides of the default duration: `{ ops = 1800 }`.
    #[serde(default)]
    pub group_secs: std::collections::BTreeMap<String, u64>,
}

impl Default for ElevationConfig {
    fn default() -> Self {
        ElevationConfig {
            default_secs: default_elevation_secs(),
            max_secs: default_elevation_max(),
            owners_must_elevate: true,
            token_max_secs: default_elevation_max(),
            group_secs: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    #[serde(default = "default_idle")]
    pub idle_secs: u64,
    #[serde(default = "default_lifetime")]
    pub lifetime_secs: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            idle_secs: default_idle(),
            lifetime_secs: default_lifetime(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgresql://user@host:port/dbname` (libpq form also accepted); absent means
    /// SQLite at `<data_dir>/hub.db`.
    #[serde(default)]
    pub url: Option<String>,
    /// A file holding the database password alone (mode 0600), so the URL in this
    /// world-readable-by-group file carries none.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// This hub's name among the hubs sharing the database (audit chains, the server
    /// registry's owning hub, logs); default: the host name.
    #[serde(default)]
    pub hub_id: Option<String>,
}

impl DatabaseConfig {
    /// The hub id: configured, or the host name.
    pub fn hub_id(&self) -> String {
        self.hub_id.clone().unwrap_or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "hub".into())
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    pub dir: PathBuf,
    /// The last signed checkpoint's head, kept outside `dir` so that cutting records off
    /// the end of the log is refused at start and by `steward audit verify`. Default:
    /// `<data_dir>/audit.head`.
    #[serde(default)]
    pub head: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiServerConfig {
    /// The UI server shuts itself down after this long without hub activity.
    #[serde(default = "default_ui_idle")]
    pub idle_timeout_secs: u64,
    /// The hub stops a server nobody watched or used for this long (workflows keep running).
    #[serde(default = "default_ui_idle")]
    pub cull_idle_secs: u64,
    /// Owners whose servers start with the hub (so the overview is full from the start).
    #[serde(default)]
    pub prestart: Vec<String>,
    /// Start a server on a visit only when the visitor is its owner.
    #[serde(default)]
    pub spawn_requires_owner: bool,
    /// The helper profile of servers started on a visit (and at prestart); empty: the
    /// helper's `default`. A site that runs the real Cylc UI names its
    /// `[singleuser] profiles` entry here.
    #[serde(default)]
    pub default_profile: String,
}

/// The server kind `jupyterhub-singleuser`: any single-user server that speaks
/// JupyterHub's protocol, `cylc hubapp` being the one tested. Servers started on one
/// of `profiles` get the `JUPYTERHUB_*` environment, listen on a Unix socket in
/// `runtime_dir`, and reach the hub's API at `api_listen`; every other profile starts
/// Steward's own UI server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SingleUserConfig {
    /// Helper profiles (from spawn.toml) whose servers are of this kind.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Key into the helper's `[executables]` (e.g. `cylc` = the venv's `bin/cylc`).
    #[serde(default = "default_su_executable")]
    pub executable: String,
    /// Arguments before Steward's own (`--ServerApp.sock=…` and the rest).
    #[serde(default = "default_su_args")]
    pub args: Vec<String>,
    /// Extra environment for the server (the helper's `env_allow` still filters it;
    /// Steward's own `JUPYTERHUB_*` and `CYLC_SITE_CONF_PATH` win over these).
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Same as the helper's `runtime_dir`: sockets are `<runtime_dir>/<owner>/<server>.sock`.
    #[serde(default = "default_runtime_dir")]
    pub runtime_dir: PathBuf,
    /// Where each server's Cylc site configuration is written
    /// (`<site_conf_dir>/<owner>/uiserver/jupyter_config.py`, root's, world-readable),
    /// passed as `CYLC_SITE_CONF_PATH`.
    #[serde(default = "default_site_conf_dir")]
    pub site_conf_dir: PathBuf,
    /// The hub API single-user servers call (plain HTTP; loopback only: every call but
    /// the version check needs a token). Port 0 picks one.
    #[serde(default = "default_api_listen")]
    pub api_listen: SocketAddr,
}

impl Default for SingleUserConfig {
    fn default() -> Self {
        SingleUserConfig {
            profiles: vec![],
            executable: default_su_executable(),
            args: default_su_args(),
            env: Default::default(),
            runtime_dir: default_runtime_dir(),
            site_conf_dir: default_site_conf_dir(),
            api_listen: default_api_listen(),
        }
    }
}

impl SingleUserConfig {
    pub fn is_singleuser(&self, profile: Option<&str>) -> bool {
        profile.is_some_and(|p| self.profiles.iter().any(|q| q == p))
    }
}

fn default_su_executable() -> String {
    "cylc".into()
}
fn default_su_args() -> Vec<String> {
    vec!["hubapp".into()]
}
fn default_runtime_dir() -> PathBuf {
    PathBuf::from("/run/steward")
}
fn default_site_conf_dir() -> PathBuf {
    PathBuf::from("/run/steward-cylc-site")
}
fn default_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}

impl Default for UiServerConfig {
    fn default() -> Self {
        UiServerConfig {
            idle_timeout_secs: default_ui_idle(),
            cull_idle_secs: default_ui_idle(),
            prestart: vec![],
            spawn_requires_owner: false,
            default_profile: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default = "default_ws_message")]
    pub ws_message_bytes: usize,
    #[serde(default = "default_body")]
    pub body_bytes: usize,
    /// Open WebSockets one person may hold at once.
    #[serde(default = "default_ws_per_user")]
    pub ws_per_user: usize,
    /// Operations one connection may send per second (bursts of twice that).
    #[serde(default = "default_ops_per_sec")]
    pub ops_per_sec: u32,
    /// On SIGTERM, how long operations already sent to a UI server may take to answer
    /// before the hub exits anyway (their outcome is then audited as unknown).
    #[serde(default = "default_drain_secs")]
    pub shutdown_drain_secs: u64,
}

fn default_drain_secs() -> u64 {
    10
}

fn default_ws_per_user() -> usize {
    32
}
fn default_ops_per_sec() -> u32 {
    20
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            ws_message_bytes: default_ws_message(),
            body_bytes: default_body(),
            ws_per_user: default_ws_per_user(),
            ops_per_sec: default_ops_per_sec(),
            shutdown_drain_secs: default_drain_secs(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestingConfig {
    /// A file holding a number of seconds added to the wall clock. Only for tests that
    /// must move time (elevation expiry) without sleeping; never set it in production.
    pub clock_offset_file: Option<PathBuf>,
}

fn default_internal_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}
fn default_backend() -> String {
    "pam".into()
}
fn default_pam_service() -> String {
    "steward".into()
}
fn default_user_pattern() -> String {
    "^[a-z_][a-z0-9_-]{0,31}$".into()
}
fn default_user_policy() -> String {
    ".steward/policy.toml".into()
}
fn default_backend_name() -> String {
    "local".into()
}
fn default_mode() -> SpawnMode {
    SpawnMode::Direct
}
fn default_executable() -> String {
    "uiserver".into()
}
fn default_start_timeout() -> u64 {
    30
}
fn default_concurrency() -> usize {
    8
}
fn default_pending() -> usize {
    64
}
fn default_elevation_secs() -> u64 {
    15 * 60
}
fn default_elevation_max() -> u64 {
    60 * 60
}
fn yes() -> bool {
    true
}
fn default_idle() -> u64 {
    8 * 3600
}
fn default_lifetime() -> u64 {
    24 * 3600
}
fn default_ui_idle() -> u64 {
    3600
}
fn default_ws_message() -> usize {
    1024 * 1024
}
fn default_body() -> usize {
    64 * 1024
}

impl HubConfig {
    pub fn load(path: &Path) -> Result<HubConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<HubConfig, ConfigError> {
        let cfg: HubConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let invalid = |field, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            message,
        };
        if !(cfg.public_url.starts_with("https://") || cfg.public_url.starts_with("http://")) {
            return Err(invalid(
                "public_url",
                format!("{:?} must start with https://", cfg.public_url),
            ));
        }
        match (cfg.auth.backend.as_str(), &cfg.auth.ldap) {
            ("pam", _) => {}
            ("ldap", Some(ldap)) => ldap.validate().map_err(|e| invalid("auth.ldap", e))?,
            ("ldap", None) => {
                return Err(invalid(
                    "auth.ldap",
                    "backend = \"ldap\" needs an [auth.ldap] section".into(),
                ))
            }
            (other, _) => {
                return Err(invalid(
                    "auth.backend",
                    format!("{other:?}: supported backends are \"pam\" and \"ldap\""),
                ))
            }
        }
        regex::Regex::new(&cfg.auth.user_pattern)
            .map_err(|e| invalid("auth.user_pattern", e.to_string()))?;
        if cfg.elevation.default_secs == 0 || cfg.elevation.default_secs > cfg.elevation.max_secs {
            return Err(invalid(
                "elevation.default_secs",
                format!(
                    "{} must be between 1 and elevation.max_secs ({})",
                    cfg.elevation.default_secs, cfg.elevation.max_secs
                ),
            ));
        }
        if !cfg.singleuser.api_listen.ip().is_loopback() {
            return Err(invalid(
                "singleuser.api_listen",
                format!(
                    "{} is not a loopback address: the single-user servers' API is plain HTTP and must not leave this host",
                    cfg.singleuser.api_listen
                ),
            ));
        }
        if !cfg.uiserver.default_profile.is_empty()
            && cfg
                .uiserver
                .default_profile
                .contains(|c: char| c.is_whitespace() || c == '/')
        {
            return Err(invalid(
                "uiserver.default_profile",
                format!("{:?} is not a profile name", cfg.uiserver.default_profile),
            ));
        }
        cfg.check_backends(&invalid)?;
        if let Some(url) = &cfg.database.url {
            if !(url.starts_with("postgresql://") || url.starts_with("postgres://")) {
                return Err(invalid(
                    "database.url",
                    format!(
                        "{}: only PostgreSQL is supported (postgresql://…); leave it out for SQLite in data_dir",
                        crate::store::postgres::redact_url(url)
                    ),
                ));
            }
            url.parse::<tokio_postgres::Config>().map_err(|e| {
                invalid(
                    "database.url",
                    format!("{}: {e}", crate::store::postgres::redact_url(url)),
                )
            })?;
        } else if cfg.database.password_file.is_some() {
            return Err(invalid(
                "database.password_file",
                "given without database.url".into(),
            ));
        }
        if let Some(id) = &cfg.database.hub_id {
            if id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                return Err(invalid(
                    "database.hub_id",
                    format!("{id:?}: letters, digits, '-', '_', '.' (at most 64)"),
                ));
            }
        }
        if cfg.spawner.concurrency == 0 {
            return Err(invalid("spawner.concurrency", "must be at least 1".into()));
        }
        Ok(cfg)
    }

    /// Every backend named exists and is configured; a pool's hosts can reach the hub.
    fn check_backends(
        &self,
        invalid: &dyn Fn(&'static str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let sp = &self.spawner;
        let known = |b: &str| BACKENDS.contains(&b);
        if !known(&sp.default_backend) {
            return Err(invalid(
                "spawner.default_backend",
                format!(
                    "{:?}: the hub places servers with {}",
                    sp.default_backend,
                    BACKENDS.join(", ")
                ),
            ));
        }
        if let Some((p, b)) = sp.profile_backends.iter().find(|(_, b)| !known(b)) {
            return Err(invalid(
                "spawner.profile_backends",
                format!(
                    "{p} = {b:?}: the hub places servers with {}",
                    BACKENDS.join(", ")
                ),
            ));
        }
        if let Some(pool) = &sp.ssh {
            pool.validate().map_err(|e| invalid("spawner.ssh", e))?;
        }
        if let Some(cluster) = &sp.slurm {
            cluster
                .validate()
                .map_err(|e| invalid("spawner.slurm", e))?;
        }
        if sp.uses("slurm") {
            if sp.slurm.is_none() {
                return Err(invalid(
                    "spawner.slurm",
                    "a backend is \"slurm\" but there is no [spawner.slurm] cluster".into(),
                ));
            }
            // Compute nodes may be this very host (a one-node cluster): the address
            // must be one they reach, which may be loopback there.
            match sp.remote_hub_address.as_deref() {
                None => return Err(invalid(
                    "spawner.remote_hub_address",
                    "servers started through Slurm register with the hub: give the address compute nodes reach this hub at".into(),
                )),
                Some(a) if a.parse::<std::net::IpAddr>().is_err() => return Err(invalid(
                    "spawner.remote_hub_address",
                    format!("{a:?} is not an IP address"),
                )),
                Some(_) => {}
            }
            if self.internal_listen.port() == 0 {
                return Err(invalid(
                    "internal_listen",
                    format!(
                        "{}: port 0 changes at every hub start, but a job queued in Slurm registers whenever Slurm runs it, possibly after a restart: give a fixed port",
                        self.internal_listen
                    ),
                ));
            }
        }
        if !sp.uses("ssh") {
            return Ok(());
        }
        if sp.ssh.is_none() {
            return Err(invalid(
                "spawner.ssh",
                "a backend is \"ssh\" but there is no [spawner.ssh] pool".into(),
            ));
        }
        match sp.remote_hub_address.as_deref() {
            None => Err(invalid(
                "spawner.remote_hub_address",
                "servers on the ssh pool register with the hub: give the address its hosts reach this hub at".into(),
            )),
            Some(a) if a.parse::<std::net::IpAddr>().is_err() => Err(invalid(
                "spawner.remote_hub_address",
                format!("{a:?} is not an IP address"),
            )),
            Some(_) if self.internal_listen.ip().is_loopback() => Err(invalid(
                "internal_listen",
                format!(
                    "{} is a loopback address, which servers on the ssh pool cannot reach: listen on spawner.remote_hub_address (or 0.0.0.0)",
                    self.internal_listen
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Where the audit log's signed head is kept (outside the audit directory).
    pub fn audit_head(&self) -> PathBuf {
        self.audit
            .head
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.head"))
    }

    /// `scheme://host[:port]` of the public URL: the only Origin a WebSocket may carry.
    pub fn public_origin(&self) -> String {
        let url = self.public_url.trim_end_matches('/');
        match url.find("://") {
            Some(i) => match url[i + 3..].find('/') {
                Some(j) => url[..i + 3 + j].to_string(),
                None => url.to_string(),
            },
            None => url.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
public_url = "https://127.0.0.1:8443/"
listen = "127.0.0.1:8443"
data_dir = "/var/lib/steward"
[tls]
cert = "/etc/steward/tls/hub.crt"
key = "/etc/steward/tls/hub.key"
[policy]
site = "/etc/steward/policy.toml"
[spawner]
helper = "/usr/local/libexec/steward/steward-spawn"
[audit]
dir = "/var/log/steward/audit"
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let cfg = HubConfig::parse(MINIMAL, Path::new("steward.toml")).unwrap();
        assert_eq!(cfg.elevation.default_secs, 900);
        assert!(cfg.elevation.owners_must_elevate);
        assert_eq!(cfg.public_origin(), "https://127.0.0.1:8443");
        assert_eq!(cfg.spawner.mode, SpawnMode::Direct);
    }

    #[test]
    fn errors_name_file_and_field() {
        let bad = MINIMAL.replace("[audit]", "[audit]\ndirr = 1");
        let e = HubConfig::parse(&bad, Path::new("steward.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("steward.toml") && e.contains("dirr"), "{e}");
        let bad = format!("{MINIMAL}\n[elevation]\ndefault_secs = 99999\n");
        let e = HubConfig::parse(&bad, Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("elevation.default_secs"), "{e}");
        let bad = MINIMAL.replace("listen = \"127.0.0.1:8443\"", "listen = \"nope\"");
        let e = HubConfig::parse(&bad, Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen"), "{e}");
    }

    #[test]
    fn placement_settings_are_checked_naming_the_field() {
        let pool = "\n[spawner.ssh]\nkey = \"/k\"\nknown_hosts = \"/kh\"\n[spawner.ssh.hosts.h1]\naddress = \"10.213.0.2\"\n";
        let with = |spawner_extra: &str, top: &str, tail: &str| {
            let text = MINIMAL
                .replace(
                    "steward-spawn\"\n",
                    &format!("steward-spawn\"\n{spawner_extra}\n"),
                )
                .replace("data_dir =", &format!("{top}\ndata_dir ="));
            HubConfig::parse(&format!("{text}{tail}"), Path::new("s.toml"))
        };
        let good = with(
            "default_backend = \"ssh\"\nremote_hub_address = \"10.213.0.1\"",
            "internal_listen = \"0.0.0.0:0\"",
            pool,
        )
        .unwrap();
        assert_eq!(good.spawner.default_backend, "ssh");
        let cluster = "\n[spawner.slurm]\nname = \"c1\"\nconf = \"/etc/slurm/slurm.conf\"\n";
        let good = with(
            "remote_hub_address = \"10.1.0.1\"\n[spawner.profile_backends]\nbatch = \"slurm\"",
            "internal_listen = \"0.0.0.0:8444\"",
            cluster,
        )
        .unwrap();
        assert_eq!(good.spawner.slurm.as_ref().unwrap().poll_secs, 10);
        let slurm_ok = "default_backend = \"slurm\"\nremote_hub_address = \"10.1.0.1\"";
        let cases = [
            (
                "default_backend = \"slurm\"",
                "",
                "",
                "no [spawner.slurm] cluster",
            ),
            (
                "default_backend = \"slurm\"",
                "internal_listen = \"0.0.0.0:8444\"",
                cluster,
                "spawner.remote_hub_address",
            ),
            (
                slurm_ok,
                "internal_listen = \"0.0.0.0:0\"",
                cluster,
                "give a fixed port",
            ),
            (
                slurm_ok,
                "internal_listen = \"0.0.0.0:8444\"",
                &format!("{cluster}poll_secs = 0\n"),
                "spawner.slurm: poll_secs",
            ),
            (
                slurm_ok,
                "internal_listen = \"0.0.0.0:8444\"",
                &cluster.replace("/etc/slurm/slurm.conf", "slurm.conf"),
                "spawner.slurm: conf",
            ),
            (
                slurm_ok,
                "internal_listen = \"0.0.0.0:8444\"",
                &format!("{cluster}partition = \"debug\"\n"),
                "partition",
            ),
            (
                "default_backend = \"cloud\"",
                "",
                "",
                "spawner.default_backend",
            ),
            (
                "[spawner.profile_backends]\nbig = \"k8s\"",
                "",
                "",
                "spawner.profile_backends",
            ),
            ("default_backend = \"ssh\"", "", "", "no [spawner.ssh] pool"),
            (
                "default_backend = \"ssh\"",
                "",
                pool,
                "spawner.remote_hub_address",
            ),
            (
                "default_backend = \"ssh\"\nremote_hub_address = \"hub.example\"",
                "internal_listen = \"0.0.0.0:0\"",
                pool,
                "is not an IP address",
            ),
            (
                "default_backend = \"ssh\"\nremote_hub_address = \"10.213.0.1\"",
                "",
                pool,
                "internal_listen",
            ),
            (
                "",
                "",
                &pool.replace("10.213.0.2", "-oProxyCommand=x"),
                "spawner.ssh: hosts.h1.address",
            ),
        ];
        for (spawner_extra, top, tail, needle) in cases {
            let e = with(spawner_extra, top, tail).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("s.toml"), "{needle}: {e}");
        }
    }
}
