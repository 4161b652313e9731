//! The helper's own configuration. It is the only source of what is allowed: nothing in
//! a request can widen it. The file, and every executable it names, must be owned by root
//! and writable by nobody else, or the helper refuses to run at all.

use crate::error::SpawnError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/steward/spawn.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelperConfig {
    /// Lowest uid a server may run as; root and system accounts stay out.
    #[serde(default = "default_min_uid")]
    pub min_uid: u32,
    /// Anchored regex every user name must match.
    #[serde(default = "default_user_pattern")]
    pub user_pattern: String,
    /// Name → absolute path. Requests name a key, never a path.
    pub executables: BTreeMap<String, PathBuf>,
    /// Environment names the hub may pass through; a trailing `*` is a prefix match.
    #[serde(default = "default_env_allow")]
    pub env_allow: Vec<String>,
    /// PATH given to every server (never the caller's).
    #[serde(default = "default_path")]
    pub path: String,
    /// Where each server's stdout/stderr go: `<log_dir>/<user>/<server>.log`.
    #[serde(default = "default_log_dir")]
    pub log_dir: PathBuf,
    #[serde(default)]
    pub cgroup: CgroupConfig,
    /// Caps on the sum of all of one user's servers (the per-user parent cgroup).
    #[serde(default)]
    pub user_limits: Limits,
    /// Machine types; `default` is used when a request names none.
    #[serde(default = "default_profiles")]
    pub profiles: BTreeMap<String, Profile>,
    /// Largest file `read_user_file` returns.
    #[serde(default = "default_max_file")]
    pub max_user_file_bytes: u64,
    /// Seconds a stop waits after SIGTERM before killing the cgroup.
    #[serde(default = "default_grace")]
    pub stop_grace_secs: u64,
    /// Slurm clusters `slurm_submit` may use, by name (`[slurm.<name>]`).
    #[serde(default)]
    pub slurm: BTreeMap<String, crate::slurm::SlurmClusterConfig>,
    /// Where servers that listen on a Unix socket (`cylc hubapp`) put it: each start
    /// makes `<runtime_dir>/<user>/` owned by the user, mode 0700, so only the owner
    /// (and root, the hub) can reach the socket. Unset: no directory is made. Must
    /// match the hub's `[singleuser] runtime_dir`.
    #[serde(default)]
    pub runtime_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CgroupConfig {
    /// `auto` (detect), `v1` or `v2`.
    #[serde(default = "default_version")]
    pub version: String,
    /// Mount point of the cgroup filesystem(s).
    #[serde(default = "default_cgroup_root")]
    pub root: PathBuf,
    /// Directory under each hierarchy that holds `<user>/<server>`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

impl Default for CgroupConfig {
    fn default() -> Self {
        CgroupConfig {
            version: default_version(),
            root: default_cgroup_root(),
            prefix: default_prefix(),
        }
    }
}

/// Resource limits; absent fields are not limited.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Bytes, or a string like "512M", "2G".
    #[serde(default, deserialize_with = "de_size")]
    pub memory: Option<u64>,
    /// CPUs (1.5 = one and a half cores).
    pub cpu: Option<f64>,
    pub pids: Option<u64>,
    /// Block-device throttles.
    #[serde(default)]
    pub io: Vec<IoLimit>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IoLimit {
    /// A block device node, e.g. "/dev/vda".
    pub device: PathBuf,
    pub read_bps: Option<u64>,
    pub write_bps: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(flatten)]
    pub limits: Limits,
    /// Informational for the hub's placement (GPUs are not fenced on this host).
    pub gpus: Option<u32>,
    /// Host names this profile may run on (empty: any).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Users or `group:<name>` that may pick this profile; empty means everyone.
    #[serde(default)]
    pub allowed: Vec<String>,
    pub description: Option<String>,
    /// Partition, account, QOS and time limit when the server is a Slurm job.
    #[serde(default)]
    pub slurm: Option<crate::slurm::SlurmProfile>,
}

fn default_min_uid() -> u32 {
    1000
}
fn default_user_pattern() -> String {
    "^[a-z_][a-z0-9_-]{0,31}$".into()
}
fn default_env_allow() -> Vec<String> {
    vec![
        "LANG".into(),
        "LC_*".into(),
        "TZ".into(),
        "STEWARD_*".into(),
    ]
}
fn default_path() -> String {
    "/usr/local/bin:/usr/bin:/bin".into()
}
fn default_log_dir() -> PathBuf {
    "/var/log/steward".into()
}
fn default_version() -> String {
    "auto".into()
}
fn default_cgroup_root() -> PathBuf {
    "/sys/fs/cgroup".into()
}
fn default_prefix() -> String {
    "steward".into()
}
fn default_max_file() -> u64 {
    1024 * 1024
}
fn default_grace() -> u64 {
    5
}
fn default_profiles() -> BTreeMap<String, Profile> {
    let mut m = BTreeMap::new();
    m.insert(
        "default".to_string(),
        Profile {
            limits: Limits {
                memory: Some(1 << 30),
                cpu: Some(1.0),
                pids: Some(512),
                io: vec![],
            },
            gpus: None,
            hosts: vec![],
            allowed: vec![],
            description: Some("one core, 1 GiB".into()),
            slurm: None,
        },
    );
    m
}

/// Parses "512M", "2G", "1048576" into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => {
                    return Err(format!(
                        "{s:?}: unknown size suffix {c:?} (use K, M, G or T)"
                    ))
                }
            };
            (&s[..i], mult)
        }
        _ => (s, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a size (e.g. 512M, 2G)"))
}

fn de_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        N(u64),
        S(String),
    }
    match Option::<Size>::deserialize(d)? {
        None => Ok(None),
        Some(Size::N(n)) => Ok(Some(n)),
        Some(Size::S(s)) => parse_size(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

impl HelperConfig {
    /// Loads and checks the config; refuses a file anyone but root could have written.
    pub fn load(path: &Path) -> Result<HelperConfig, SpawnError> {
        ensure_root_owned(path)?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| SpawnError::io(format!("reading {}", path.display()), e))?;
        let cfg = Self::parse(&text, path)?;
        for exe in cfg.executables.values() {
            ensure_root_owned(exe)?;
        }
        Ok(cfg)
    }

    /// Parses without the ownership checks (tests and `steward-spawn --check`).
    pub fn parse(text: &str, path: &Path) -> Result<HelperConfig, SpawnError> {
        let cfg: HelperConfig = toml::from_str(text).map_err(|e| SpawnError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let err = |message: String| SpawnError::Config {
            path: path.to_path_buf(),
            message,
        };
        if cfg.min_uid == 0 {
            return Err(err(
                "min_uid must be at least 1: root never gets a server".into()
            ));
        }
        regex::Regex::new(&cfg.user_pattern).map_err(|e| err(format!("user_pattern: {e}")))?;
        if !cfg.user_pattern.starts_with('^') || !cfg.user_pattern.ends_with('$') {
            return Err(err("user_pattern must be anchored with ^ and $".into()));
        }
        for (name, exe) in &cfg.executables {
            if !exe.is_absolute() {
                return Err(err(format!(
                    "executables.{name}: {} is not an absolute path",
                    exe.display()
                )));
            }
        }
        for pattern in &cfg.env_allow {
            let upper = pattern.to_ascii_uppercase();
            if upper.starts_with("LD_")
                || upper.starts_with("PYTHON")
                || upper == "PATH"
                || pattern == "*"
            {
                return Err(err(format!(
                    "env_allow: {pattern:?} may never be passed to a server (LD_*, PYTHON*, PATH and * are forbidden)"
                )));
            }
        }
        if !matches!(cfg.cgroup.version.as_str(), "auto" | "v1" | "v2") {
            return Err(err(format!(
                "cgroup.version {:?}: expected auto, v1 or v2",
                cfg.cgroup.version
            )));
        }
        if !cfg.profiles.contains_key("default") {
            return Err(err(
                "profiles: a profile named \"default\" is required".into()
            ));
        }
        for (name, p) in &cfg.profiles {
            if let Some(cpu) = p.limits.cpu {
                if !(cpu > 0.0 && cpu <= 1024.0) {
                    return Err(err(format!(
                        "profiles.{name}.cpu: {cpu} is not between 0 and 1024"
                    )));
                }
            }
            if let Some(s) = &p.slurm {
                s.validate(name).map_err(err)?;
            }
        }
        for (name, c) in &cfg.slurm {
            c.validate(name).map_err(err)?;
        }
        Ok(cfg)
    }

    /// Is `name` passed through from the hub's request?
    pub fn env_allowed(&self, name: &str) -> bool {
        if is_forbidden_env(name) {
            return false;
        }
        self.env_allow.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == p,
        })
    }
}

/// Names that never reach a server whatever the config says: they change how the
/// dynamic loader or an interpreter behaves, or where programs are found.
pub fn is_forbidden_env(name: &str) -> bool {
    name.starts_with("LD_")
        || name.starts_with("PYTHON")
        || name == "PATH"
        || name == "IFS"
        || name == "ENV"
        || name == "BASH_ENV"
        || name.starts_with("DYLD_")
        || name.contains('=')
        || name.is_empty()
}

/// A file (and every directory above it) must be owned by root and writable by nobody
/// else; a world-writable directory is tolerated only with the sticky bit, because then
/// only root can replace a root-owned entry in it.
pub fn ensure_root_owned(path: &Path) -> Result<(), SpawnError> {
    let unsafe_path = |p: &Path, why: String| SpawnError::Unsafe {
        path: p.to_path_buf(),
        why,
    };
    let meta = std::fs::metadata(path)
        .map_err(|e| SpawnError::io(format!("checking {}", path.display()), e))?;
    if meta.uid() != 0 {
        return Err(unsafe_path(
            path,
            format!("owned by uid {}, not root", meta.uid()),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_path(
            path,
            format!(
                "writable by group or others (mode {:o})",
                meta.mode() & 0o7777
            ),
        ));
    }
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d.as_os_str().is_empty() {
            break;
        }
        let m = std::fs::metadata(d)
            .map_err(|e| SpawnError::io(format!("checking {}", d.display()), e))?;
        let sticky = m.mode() & 0o1000 != 0;
        if m.uid() != 0 {
            return Err(unsafe_path(
                d,
                format!("directory owned by uid {}, not root", m.uid()),
            ));
        }
        if m.mode() & 0o022 != 0 && !sticky {
            return Err(unsafe_path(
                d,
                format!(
                    "directory writable by group or others (mode {:o})",
                    m.mode() & 0o7777
                ),
            ));
        }
        dir = d.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HelperConfig, SpawnError> {
        HelperConfig::parse(text, Path::new("spawn.toml"))
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("M").is_err());
    }

    #[test]
    fn minimal_config_gets_safe_defaults() {
        let cfg = parse("[executables]\nuiserver = \"/usr/bin/true\"\n").unwrap();
        assert_eq!(cfg.min_uid, 1000);
        assert!(cfg.env_allowed("LANG"));
        assert!(cfg.env_allowed("STEWARD_HUB_URL"));
        assert!(!cfg.env_allowed("LD_PRELOAD"));
        assert!(!cfg.env_allowed("PATH"));
        assert!(!cfg.env_allowed("HOME"));
    }

    #[test]
    fn dangerous_configs_are_refused_with_field_names() {
        for (text, needle) in [
            ("min_uid = 0\n[executables]\n", "min_uid"),
            ("env_allow = [\"LD_*\"]\n[executables]\n", "env_allow"),
            ("env_allow = [\"PYTHONPATH\"]\n[executables]\n", "env_allow"),
            ("[executables]\nx = \"relative/path\"\n", "executables.x"),
            ("user_pattern = \"[a-z]+\"\n[executables]\n", "anchored"),
            (
                "[executables]\n[cgroup]\nversion = \"v3\"\n",
                "cgroup.version",
            ),
            ("bogus = 1\n[executables]\n", "unknown field"),
            ("[executables]\n[profiles.big]\ncpu = 2.0\n", "default"),
            (
                "[executables]\n[slurm.main]\nbin_dir = \"bin\"\n",
                "slurm.main.bin_dir",
            ),
            (
                "[executables]\n[profiles.default.slurm]\npartition = \"a b\"\n",
                "profiles.default.slurm.partition",
            ),
            (
                "[executables]\n[profiles.default.slurm]\nnodes = 2\n",
                "unknown field",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?} gave {e}");
        }
    }

    #[test]
    fn root_ownership_check_rejects_group_writable_files() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: needs root to create root-owned files");
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = dir.path().join("spawn.toml");
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        ensure_root_owned(&f).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o664)).unwrap();
        let e = ensure_root_owned(&f).unwrap_err().to_string();
        assert!(e.contains("writable by group"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = ensure_root_owned(&f).unwrap_err().to_string();
        assert!(e.contains("directory writable"), "{e}");
    }
}
