//! How an audit log is kept: [`AuditConfig`], read by the handle (`log.rs`) and the
//! writer (`writer.rs`). Plain data; it opens nothing.

use crate::syslog::SyslogTarget;
use ed25519_dalek::SigningKey;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The monotonic time the writer reads to decide when a checkpoint is due by time.
/// [`AuditClock::system`] in the hub; tests move a clock of their own instead of
/// waiting (see `steward_audit::testing::ManualClock`).
#[derive(Clone)]
pub struct AuditClock(Arc<dyn Fn() -> Instant + Send + Sync>);

impl AuditClock {
    pub fn system() -> AuditClock {
        AuditClock(Arc::new(Instant::now))
    }

    pub fn from_fn(f: impl Fn() -> Instant + Send + Sync + 'static) -> AuditClock {
        AuditClock(Arc::new(f))
    }

    pub(crate) fn now(&self) -> Instant {
        (self.0)()
    }
}

impl fmt::Debug for AuditClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditClock")
    }
}

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
    /// records since the last one (default 1000; 0: only by time, at rotation and
    /// at close).
    pub checkpoint_every: u64,
    /// Also write one once this long has passed since the last checkpoint and records
    /// were written since (default 60 s; `None`: by count only). A short log is thus
    /// anchored within a minute, not only after `checkpoint_every` records.
    pub checkpoint_interval: Option<Duration>,
    /// The signed head kept OUTSIDE `dir` (e.g. `/var/lib/steward/audit.head`): written
    /// atomically after every flushed checkpoint and at close. When set,
    /// [`crate::AuditLog::open`] refuses a log that ends before the seq it signed
    /// (records cut off the end), and `steward audit verify --head` checks the same.
    /// Outside the directory so that whoever can rewrite the log directory does not
    /// by that alone also rewrite the head.
    pub head_path: Option<PathBuf>,
    /// The hub whose chain this is (`[database] hub_id`): written into every record,
    /// so that each chain of a deployment names its hub and `steward audit verify
    /// --deployment` can hold it to that hub's head in the leader's checkpoint. `None`
    /// writes records without it, as before. 1 to 64 of `[A-Za-z0-9._-]`.
    pub hub_id: Option<String>,
    /// Clock for `checkpoint_interval`.
    pub clock: AuditClock,
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
            checkpoint_interval: Some(Duration::from_secs(60)),
            head_path: None,
            hub_id: None,
            clock: AuditClock::system(),
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
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("head_path", &self.head_path)
            .field("hub_id", &self.hub_id)
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
