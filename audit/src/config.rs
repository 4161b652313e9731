//! How an audit log is kept: [`AuditConfig`], read by the handle (`log.rs`) and the
//! writer (`writer.rs`). Plain data; it opens nothing.

use crate::syslog::SyslogTarget;
use ed25519_dalek::SigningKey;
use std::fmt;
use std::path::PathBuf;

/// How the log is kept. `AuditConfig::new(dir)` gives the defaults.
#[derive(Clone)]
pub struct AuditConfig {
    /// Directory of `audit.jsonl`, `audit.log`, `audit.head` and rotated files.
    pub dir: PathBuf,
    /// Rotate once the current chain file reaches this size (default 64 MiB).
    pub rotate_bytes: u64,
    /// Rotate once the current chain file is this old (default: never by time).
    pub rotate_secs: Option<u64>,
    /// Write a checkpoint at the end of the group commit that reaches this many
    /// records since the last one (default 1000; 0: only at rotation and close).
    pub checkpoint_every: u64,
    /// The hub's key; checkpoints and `audit.head` are signed with it when set.
    pub signing_key: Option<SigningKey>,
    /// Forward durable records to syslog.
    pub syslog: Option<SyslogTarget>,
    /// Most records per group commit (default 4096). 1 means one write and fsync per
    /// record, the baseline the benchmark compares group commit with.
    pub max_batch: usize,
}

impl AuditConfig {
    pub fn new(dir: impl Into<PathBuf>) -> AuditConfig {
        AuditConfig {
            dir: dir.into(),
            rotate_bytes: 64 << 20,
            rotate_secs: None,
            checkpoint_every: 1000,
            signing_key: None,
            syslog: None,
            max_batch: 4096,
        }
    }
}

impl fmt::Debug for AuditConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditConfig")
            .field("dir", &self.dir)
            .field("rotate_bytes", &self.rotate_bytes)
            .field("rotate_secs", &self.rotate_secs)
            .field("checkpoint_every", &self.checkpoint_every)
            .field(
                "signing_key",
                &self.signing_key.as_ref().map(|k| {
                    format!(
                        "<ed25519 key {}>",
                        hex::encode(k.verifying_key().as_bytes())
                    )
                }),
            )
            .field("syslog", &self.syslog)
            .field("max_batch", &self.max_batch)
            .finish()
    }
}
