//! The audit log handle: configuration, `append`, `health`, `stats`. The files are
//! owned by the writer (see `writer.rs`); this side only queues records and waits.
//! It depends on the writer, never the other way round: what both need (the
//! configuration) lives in `config.rs`, record checks in `record.rs`.

use crate::chain::hex32;
use crate::config::AuditConfig;
use crate::deployment::ChainHead;
use crate::error::AuditError;
use crate::record::{validate_append, AuditRecord};
use crate::writer::{Msg, Reply, Shared, Writer};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

/// Counters of the writer, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Records made durable (including checkpoints and the log's own records).
    pub records: u64,
    /// Group commits that succeeded (one flush of both files each).
    pub commits: u64,
    /// Writes or flushes that failed (their appends were refused).
    pub failed_commits: u64,
    /// Syslog messages that could not be sent.
    pub syslog_dropped: u64,
    /// Time spent serializing, hashing and rendering records (µs).
    pub stage_micros: u64,
    /// Time spent in `write` (µs).
    pub write_micros: u64,
    /// Time spent waiting for fsync (µs).
    pub fsync_micros: u64,
    /// The longest single flush (µs): the disk's worst stall seen.
    pub fsync_max_micros: u64,
    /// Head files that could not be written (each stays at an older checkpoint).
    pub head_failures: u64,
}

struct Inner {
    tx: Option<mpsc::Sender<Msg>>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    dir: PathBuf,
    hub: Option<String>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue tells the writer to write a final checkpoint and stop;
        // waiting for it means the directory lock is free once the last clone is gone.
        self.tx.take();
        let handle = self.thread.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

/// The audit log. Cheap to clone; all clones share one writer thread.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens (or creates, mode 0700) the log directory, continues the chain from the
    /// newest file, cuts off an unfinished line a crash left, writes an outcome
    /// `unknown` for every intent that has none, and starts the writer thread.
    /// Fails if the existing tail is not a valid record, if another process holds
    /// the directory, or if those recovery records cannot be written.
    pub fn open(cfg: AuditConfig) -> Result<AuditLog, AuditError> {
        let dir = cfg.dir.clone();
        let hub = cfg.hub_id.clone();
        let (mut writer, mut startup) = Writer::open(cfg)?;
        for r in &mut startup {
            validate_append(r)?;
        }
        if !startup.is_empty() {
            writer.commit_and_wait(startup)?;
        }
        let shared = writer.shared();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("steward-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| AuditError::open(&dir, format!("cannot start writer thread: {e}")))?;
        Ok(AuditLog {
            inner: Arc::new(Inner {
                tx: Some(tx),
                shared,
                thread: Mutex::new(Some(thread)),
                dir,
                hub,
            }),
        })
    }

    fn submit(&self, rec: AuditRecord, reply: Reply) -> Result<(), AuditError> {
        let tx = self.inner.tx.as_ref().ok_or(AuditError::Closed)?;
        tx.send(Msg::Append(rec, reply))
            .map_err(|_| AuditError::Closed)
    }

    /// Appends a record and resolves once it (and its human line) is on disk.
    /// Returns its sequence number. If the future is dropped after the call the
    /// record is still written.
    pub async fn append(&self, rec: AuditRecord) -> Result<u64, AuditError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(rec, Reply::Async(tx))?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// Queues a record without waiting for it to reach the disk. The writer keeps its
    /// order: once any later [`AuditLog::append`] resolves, this record is durable too.
    /// A write failure shows in [`AuditLog::health`] and fails later appends (fail
    /// closed), not here. For records whose caller must not wait, e.g. an operation's
    /// outcome after its durable intent.
    pub fn append_detached(&self, rec: AuditRecord) -> Result<(), AuditError> {
        let (tx, _rx) = tokio::sync::oneshot::channel();
        self.submit(rec, Reply::Async(tx))
    }

    /// [`AuditLog::append_detached`] that hands back the writer's answer: the record is
    /// queued in order now, and the receiver resolves once it is durable or its write
    /// failed (so the caller can try again instead of losing it).
    pub fn append_queued(
        &self,
        rec: AuditRecord,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<u64, AuditError>>, AuditError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(rec, Reply::Async(tx))?;
        Ok(rx)
    }

    /// [`AuditLog::append`] for threads that are not async.
    pub fn append_blocking(&self, rec: AuditRecord) -> Result<u64, AuditError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(rec, Reply::Sync(tx))?;
        rx.recv().map_err(|_| AuditError::Closed)?
    }

    /// Writes a signed checkpoint of everything appended so far and points the heads
    /// (`audit.head`, and `AuditConfig::head_path` when set) at it before returning.
    /// The hub calls this when it stops: a log closed this way has no unanchored
    /// tail, so cutting any record off its end is detected. (Dropping the last handle
    /// does the same; this is for a process that may exit without dropping.)
    pub fn checkpoint_now(&self) -> Result<(), AuditError> {
        let tx = self.inner.tx.as_ref().ok_or(AuditError::Closed)?;
        let (rtx, rrx) = mpsc::sync_channel(1);
        tx.send(Msg::Checkpoint(rtx))
            .map_err(|_| AuditError::Closed)?;
        rrx.recv().map_err(|_| AuditError::Closed)?
    }

    /// `Err` (with the cause) while the log cannot be written. The writer retries by
    /// itself every 250 ms and with every append, so this clears on its own.
    pub fn health(&self) -> Result<(), AuditError> {
        let dead = self
            .inner
            .thread
            .lock()
            .map_or(true, |h| h.as_ref().is_none_or(|h| h.is_finished()));
        if dead {
            return Err(AuditError::Closed);
        }
        self.inner.shared.health()
    }

    /// Writer counters since open.
    pub fn stats(&self) -> AuditStats {
        let c = &self.inner.shared.counters;
        AuditStats {
            records: c.records.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            failed_commits: c.failed_commits.load(Ordering::Relaxed),
            syslog_dropped: c.syslog_dropped.load(Ordering::Relaxed),
            stage_micros: c.stage_micros.load(Ordering::Relaxed),
            write_micros: c.write_micros.load(Ordering::Relaxed),
            fsync_micros: c.fsync_micros.load(Ordering::Relaxed),
            fsync_max_micros: c.fsync_max_micros.load(Ordering::Relaxed),
            head_failures: c.head_failures.load(Ordering::Relaxed),
        }
    }

    /// Fault injection for tests: the next `n` flushes fail with EIO.
    #[doc(hidden)]
    pub fn testing_fail_next_flushes(&self, n: u64) {
        self.inner.shared.fail_flushes.store(n, Ordering::Release);
    }

    /// This hub's chain head for the deployment checkpoint: its hub id and the seq and
    /// line hash of the newest record known flushed (so the record is on disk for
    /// `verify` to find). `None` without a hub id (`AuditConfig::hub_id`) or before
    /// the first record.
    pub fn durable_head(&self) -> Option<ChainHead> {
        let hub = self.inner.hub.clone()?;
        let (seq, hash) = self.inner.shared.durable()?;
        Some(ChainHead {
            hub,
            seq,
            hash: hex32(&hash),
        })
    }

    /// The audit directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}
