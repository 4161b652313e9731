//! The helper's Slurm settings: which clusters it may submit to, and what each profile
//! asks Slurm for. Like the rest of the helper config, only root writes these; a request
//! names a cluster and a profile, never a partition, an account or a path.

use serde::Deserialize;
use std::path::PathBuf;

/// `[slurm.<cluster>]` in the helper config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlurmClusterConfig {
    /// `SLURM_CONF` for sbatch/squeue/scancel; absent means the system default.
    pub conf: Option<PathBuf>,
    /// Where `sbatch`, `squeue` and `scancel` live (must be root-owned).
    #[serde(default = "default_bin_dir")]
    pub bin_dir: PathBuf,
    /// Root-owned directory holding one 0700 directory per owner, where a submitted
    /// server's stdin secrets wait for its job to start (see `slurm::submit`). On a site
    /// whose compute nodes are other machines it must be a filesystem they mount.
    #[serde(default = "default_bootstrap_dir")]
    pub bootstrap_dir: PathBuf,
    /// Seconds a whole `slurm_submit` (or a cancel) may take; keep the hub's helper
    /// timeout above it.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

/// `[profiles.<name>.slurm]`: what a server of this profile asks Slurm for. CPUs,
/// memory and GPUs come from the profile's own `cpu`, `memory` and `gpus`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlurmProfile {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Slurm's `--time` syntax: `MM`, `HH:MM:SS`, `D-HH:MM`, …
    pub time_limit: Option<String>,
}

fn default_bin_dir() -> PathBuf {
    "/usr/bin".into()
}
fn default_bootstrap_dir() -> PathBuf {
    "/var/lib/steward/slurm-bootstrap".into()
}
fn default_timeout() -> u64 {
    30
}

/// Slurm object names (partitions, accounts, QOS): these go on sbatch's command line,
/// so keep them to characters Slurm itself uses in names.
fn slurm_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl SlurmClusterConfig {
    /// Checks one cluster table; the message names the field.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        if !slurm_name_ok(name) {
            return Err(format!(
                "slurm.{name}: a cluster name uses letters, digits, '_', '-', '.'"
            ));
        }
        for (field, p) in [
            ("bin_dir", Some(&self.bin_dir)),
            ("bootstrap_dir", Some(&self.bootstrap_dir)),
            ("conf", self.conf.as_ref()),
        ] {
            if let Some(p) = p {
                if !p.is_absolute() {
                    return Err(format!(
                        "slurm.{name}.{field}: {} is not an absolute path",
                        p.display()
                    ));
                }
            }
        }
        if self.timeout_secs == 0 || self.timeout_secs > 600 {
            return Err(format!(
                "slurm.{name}.timeout_secs: {} is not between 1 and 600",
                self.timeout_secs
            ));
        }
        Ok(())
    }
}

impl SlurmProfile {
    pub fn validate(&self, profile: &str) -> Result<(), String> {
        for (field, v) in [
            ("partition", &self.partition),
            ("account", &self.account),
            ("qos", &self.qos),
        ] {
            if let Some(v) = v {
                if !slurm_name_ok(v) {
                    return Err(format!(
                        "profiles.{profile}.slurm.{field}: {v:?} is not a Slurm name (letters, digits, '_', '-', '.')"
                    ));
                }
            }
        }
        if let Some(t) = &self.time_limit {
            let ok = !t.is_empty()
                && t.len() <= 16
                && t.bytes().next().is_some_and(|b| b.is_ascii_digit())
                && t.bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b':' | b'-'));
            if !ok {
                return Err(format!(
                    "profiles.{profile}.slurm.time_limit: {t:?} is not a Slurm time (e.g. 60, 8:00:00, 1-00:00)"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_and_times_are_refused_with_the_field() {
        let p = SlurmProfile {
            partition: Some("debug;rm".into()),
            ..Default::default()
        };
        assert!(p.validate("x").unwrap_err().contains("slurm.partition"));
        let p = SlurmProfile {
            account: Some("--uid=0".into()),
            ..Default::default()
        };
        assert!(p.validate("x").unwrap_err().contains("slurm.account"));
        let p = SlurmProfile {
            time_limit: Some("8h".into()),
            ..Default::default()
        };
        assert!(p.validate("x").unwrap_err().contains("time_limit"));
        let p = SlurmProfile {
            partition: Some("gpu-a100".into()),
            time_limit: Some("1-00:00".into()),
            ..Default::default()
        };
        p.validate("x").unwrap();
        let c = SlurmClusterConfig {
            conf: Some("slurm.conf".into()),
            bin_dir: default_bin_dir(),
            bootstrap_dir: default_bootstrap_dir(),
            timeout_secs: 30,
        };
        assert!(c.validate("main").unwrap_err().contains("slurm.main.conf"));
    }
}
