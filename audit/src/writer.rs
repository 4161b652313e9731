//! The writer and the syncer: a two-stage group commit.
//!
//! The writer thread owns the chain: it takes every append waiting in its queue,
//! gives each its `seq` and `prev`, serializes, hashes and renders them, and writes
//! the batch with one `write` per file. It then hands the batch (a *ticket*) to the
//! syncer thread and goes on with the next batch at once. The syncer takes every
//! ticket waiting, flushes both files (one `fdatasync` each, in parallel, so the block
//! layer merges them into about one device flush), and only then answers the appends
//! of those tickets, updates `audit.head` and forwards to syslog. So serializing the
//! next batch overlaps with flushing the previous one, and one flush covers as many
//! batches as were written while the previous flush ran.
//!
//! Failure (fail closed): a failed `write` is cut back at once to the last complete
//! line, and that batch is refused. A failed flush makes everything written since the
//! last good flush uncertain: the syncer refuses those tickets (and any that follow)
//! and raises a flag; the writer then cuts both files back to the last flushed
//! length and rewinds the chain (seq, prev, open intents) to match. Either way the
//! log reports itself unavailable until a later batch is written *and* flushed; that
//! batch starts with an `audit_resumed` record saying how long and why.

use crate::chain::{hash_line, hex32, sign_anchor, Domain, Hash};
use crate::config::{AuditClock, AuditConfig};
use crate::deployment::{valid_hub_id, MAX_HUB_ID};
use crate::error::AuditError;
use crate::head::{check_at_open, HeadAtOpen, HeadSink};
use crate::human::human_line;
use crate::record::{events, now, AuditRecord, Outcome, RecordKind, SYSTEM_ACTOR};
use crate::recovery::{
    continuation, find_line_hash, find_record, scan_file, trim_partial_tail, OpenIntents,
};
use crate::scan::rotated_files;
use crate::syslog::SyslogSender;
use crate::{CURRENT_FILE, HEAD_FILE, HUMAN_FILE};
use ed25519_dalek::SigningKey;
use std::collections::{BTreeSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the handles send the writer.
// Nearly every message is an append: boxing the record to shrink the rare checkpoint
// request would cost an allocation per record.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Msg {
    Append(AuditRecord, Reply),
    /// Checkpoint now, write the heads, then answer (see `AuditLog::checkpoint_now`).
    Checkpoint(mpsc::SyncSender<Result<(), AuditError>>),
}

pub(crate) type AppendResult = Result<u64, AuditError>;

/// Where the answer to one append goes.
pub(crate) enum Reply {
    Async(tokio::sync::oneshot::Sender<AppendResult>),
    Sync(mpsc::SyncSender<AppendResult>),
}

impl Reply {
    pub(crate) fn send(self, r: AppendResult) {
        // A caller that went away no longer needs the answer; the record is written anyway.
        match self {
            Reply::Async(tx) => {
                let _ = tx.send(r);
            }
            Reply::Sync(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) records: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) failed_commits: AtomicU64,
    pub(crate) syslog_dropped: AtomicU64,
    pub(crate) stage_micros: AtomicU64,
    pub(crate) write_micros: AtomicU64,
    pub(crate) fsync_micros: AtomicU64,
    pub(crate) fsync_max_micros: AtomicU64,
    pub(crate) head_failures: AtomicU64,
}

impl Counters {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// How often the writer looks again on its own while the log cannot be written.
const RETRY: Duration = Duration::from_millis(250);

/// Health as the handles see it. `gen` counts failures, so a flush that completes
/// after a newer failure does not declare the log healthy.
#[derive(Default)]
struct Health {
    err: Option<AuditError>,
    gen: u64,
}

/// State shared by the writer, the syncer and every `AuditLog` handle.
#[derive(Default)]
pub(crate) struct Shared {
    health: Mutex<Health>,
    pub(crate) counters: Counters,
    /// Set by the syncer when a flush failed; cleared by the writer after rewinding.
    sync_failed: Mutex<Option<AuditError>>,
    /// Highest ticket id known flushed.
    synced_id: AtomicU64,
    /// Appends the syncer refused because a flush failed (for `audit_resumed`).
    sync_refused: AtomicU64,
    /// Fault injection for tests: fail this many flushes with EIO.
    pub(crate) fail_flushes: AtomicU64,
    /// (seq, line hash) of the newest record known flushed: the chain head a hub
    /// publishes for the deployment checkpoint (never one that may still be cut back).
    pub(crate) durable: Mutex<Option<(u64, Hash)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these small locks leaves plain data behind.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn durable(&self) -> Option<(u64, Hash)> {
        *lock(&self.durable)
    }

    fn advance_durable(&self, last: (u64, Hash)) {
        let mut d = lock(&self.durable);
        if d.is_none_or(|(seq, _)| seq < last.0) {
            *d = Some(last);
        }
    }

    pub(crate) fn health(&self) -> Result<(), AuditError> {
        match &lock(&self.health).err {
            None => Ok(()),
            Some(e) => Err(e.clone()),
        }
    }

    /// Records a failure; returns its generation.
    fn fail(&self, e: &AuditError) -> u64 {
        let mut h = lock(&self.health);
        h.gen += 1;
        h.err = Some(e.clone());
        h.gen
    }

    fn gen(&self) -> u64 {
        lock(&self.health).gen
    }

    /// Healthy again, unless a failure newer than `gen` happened meanwhile.
    fn recover(&self, gen: u64) {
        let mut h = lock(&self.health);
        if h.gen == gen {
            h.err = None;
        }
    }
}

/// An open file and its path (for error messages), shared with the syncer.
struct Target {
    file: File,
    path: PathBuf,
}

/// One written batch on its way to durability.
struct Ticket {
    id: u64,
    files: [Arc<Target>; 2],
    replies: Vec<(Reply, u64)>,
    records: u64,
    /// (seq, line hash) of the last record of this batch, if it has any.
    last: Option<(u64, Hash)>,
    /// `audit.head` to write after the flush: (checkpoint seq, its line hash, time).
    head: Option<(u64, Hash, String)>,
    /// Records to forward to syslog after the flush: record, line, human line.
    syslog: Vec<(AuditRecord, Vec<u8>, Option<String>)>,
    /// This batch carries `audit_resumed`; once flushed the log is healthy again
    /// (if no newer failure happened: the generation it resolves).
    resolves: Option<u64>,
    barrier: Option<mpsc::SyncSender<Result<(), AuditError>>>,
}

impl Ticket {
    fn fail(self, e: &AuditError) {
        for (r, _) in self.replies {
            r.send(Err(e.clone()));
        }
        if let Some(b) = self.barrier {
            let _ = b.send(Err(e.clone()));
        }
    }
}

/// A checkpoint for `audit.head`: its seq, line hash, time.
type HeadUpdate = (u64, Hash, String);

struct Syncer {
    rx: mpsc::Receiver<Ticket>,
    shared: Arc<Shared>,
    syslog: Option<SyslogSender>,
    /// To the thread that rewrites `audit.head` (its fsync must not hold up replies).
    heads: Option<mpsc::Sender<HeadUpdate>>,
    head_thread: Option<JoinHandle<()>>,
}

/// Points the heads at the newest checkpoint it is told about (the fsyncs of the head
/// files must not hold up the replies to appends).
fn head_writer(rx: mpsc::Receiver<HeadUpdate>, sink: Arc<HeadSink>, shared: Arc<Shared>) {
    while let Ok(mut h) = rx.recv() {
        while let Ok(newer) = rx.try_recv() {
            h = newer;
        }
        // A head that could not be written stays at an older checkpoint, which is
        // safe (it only asks the log to reach that far); the counter shows it.
        if sink.write(h.0, &h.1, &h.2).is_err() {
            Counters::add(&shared.counters.head_failures, 1);
        }
    }
}

impl Syncer {
    fn run(mut self) {
        self.serve();
        // Closing: let the head writer finish, so the head is current once the log is.
        self.heads.take();
        if let Some(h) = self.head_thread.take() {
            let _ = h.join();
        }
    }

    fn serve(&mut self) {
        while let Ok(first) = self.rx.recv() {
            let mut tickets = vec![first];
            while let Ok(t) = self.rx.try_recv() {
                tickets.push(t);
            }
            let pending_failure = lock(&self.shared.sync_failed).clone();
            let result = match pending_failure {
                Some(e) => Err(e),
                None => self.flush(&tickets),
            };
            match result {
                Ok(()) => self.finish(tickets),
                Err(e) => {
                    {
                        let mut f = lock(&self.shared.sync_failed);
                        if f.is_none() {
                            *f = Some(e.clone());
                            self.shared.fail(&e);
                            Counters::add(&self.shared.counters.failed_commits, 1);
                        }
                    }
                    for t in tickets {
                        Counters::add(&self.shared.sync_refused, t.replies.len() as u64);
                        t.fail(&e);
                    }
                }
            }
        }
    }

    /// `fdatasync` of every file the tickets wrote to, all at once.
    fn flush(&self, tickets: &[Ticket]) -> Result<(), AuditError> {
        let injected = self
            .shared
            .fail_flushes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if injected {
            let e = io::Error::from_raw_os_error(libc::EIO);
            return Err(AuditError::unavailable(&tickets[0].files[0].path, &e));
        }
        let mut files: Vec<&Arc<Target>> = Vec::new();
        for t in tickets {
            for f in &t.files {
                if !files.iter().any(|g| Arc::ptr_eq(g, f)) {
                    files.push(f);
                }
            }
        }
        let t0 = Instant::now();
        let results: Vec<io::Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = files[1..]
                .iter()
                .map(|f| s.spawn(move || f.file.sync_data()))
                .collect();
            let mut out = vec![files[0].file.sync_data()];
            for h in handles {
                out.push(
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("fsync thread panicked"))),
                );
            }
            out
        });
        let took = t0.elapsed().as_micros() as u64;
        Counters::add(&self.shared.counters.fsync_micros, took);
        self.shared
            .counters
            .fsync_max_micros
            .fetch_max(took, Ordering::Relaxed);
        for (f, r) in files.iter().zip(results) {
            r.map_err(|e| AuditError::unavailable(&f.path, &e))?;
        }
        Ok(())
    }

    fn finish(&mut self, tickets: Vec<Ticket>) {
        let c = &self.shared.counters;
        Counters::add(&c.commits, 1);
        let mut head = None;
        for t in &tickets {
            Counters::add(&c.records, t.records);
            if t.head.is_some() {
                head = t.head.clone();
            }
            if let Some(last) = t.last {
                self.shared.advance_durable(last);
            }
        }
        if let Some(id) = tickets.iter().map(|t| t.id).max() {
            self.shared.synced_id.fetch_max(id, Ordering::AcqRel);
        }
        for t in tickets {
            // Forward first (the records are durable now), so a caller that sees its
            // append return also sees the syslog counters include it.
            if let Some(sys) = &mut self.syslog {
                for (rec, line, human) in &t.syslog {
                    sys.send(rec, line, human.as_deref());
                }
                c.syslog_dropped.store(sys.dropped, Ordering::Relaxed);
            }
            if let Some(gen) = t.resolves {
                self.shared.recover(gen);
            }
            for (r, seq) in t.replies {
                r.send(Ok(seq));
            }
            if let Some(b) = t.barrier {
                let _ = b.send(Ok(()));
            }
        }
        if let (Some(h), Some(tx)) = (head, &self.heads) {
            let _ = tx.send(h);
        }
    }
}

/// An outage of the log, until the `audit_resumed` record that reports it is flushed.
struct Failure {
    since: String,
    error: AuditError,
    refused: u64,
    /// Ticket that carries the `audit_resumed` record, once written.
    resume_ticket: Option<u64>,
}

/// Chain and file state before a batch, to rewind to if its flush fails.
#[derive(Clone)]
struct Mark {
    next_seq: u64,
    prev: Hash,
    since_checkpoint: u64,
    last_checkpoint_at: Instant,
    last_head: Option<HeadUpdate>,
    json_len: u64,
    human_len: u64,
}

/// A written, not yet flushed batch: how to undo it.
struct Unsynced {
    id: u64,
    before: Mark,
    opened: Vec<u64>,
    closed: Vec<u64>,
}

/// A record of the current batch: where its line is in `jbuf`, its human line.
struct Staged {
    rec: AuditRecord,
    line: std::ops::Range<usize>,
    human: Option<String>,
}

pub(crate) struct Writer {
    dir: PathBuf,
    json: Arc<Target>,
    human: Arc<Target>,
    json_len: u64,
    human_len: u64,
    /// A failed write could not be cut back yet; do it before the next write.
    dirty: bool,
    next_seq: u64,
    prev: Hash,
    file_first_seq: u64,
    file_started: chrono::DateTime<chrono::Utc>,
    since_checkpoint: u64,
    open_intents: BTreeSet<u64>,
    rotate_bytes: u64,
    rotate_secs: Option<u64>,
    checkpoint_every: u64,
    checkpoint_interval: Option<Duration>,
    clock: AuditClock,
    /// When the last checkpoint was staged (or the log opened), by `clock`.
    last_checkpoint_at: Instant,
    /// The newest checkpoint staged: what the heads point at once it is flushed.
    last_head: Option<HeadUpdate>,
    heads: Arc<HeadSink>,
    key: Option<SigningKey>,
    /// Written into every record (`AuditConfig::hub_id`).
    hub: Option<String>,
    max_batch: usize,
    failure: Option<Failure>,
    shared: Arc<Shared>,
    to_syncer: Option<mpsc::Sender<Ticket>>,
    syncer: Option<JoinHandle<()>>,
    next_ticket: u64,
    unsynced: VecDeque<Unsynced>,
    forward: bool,
    jbuf: Vec<u8>,
    hbuf: Vec<u8>,
    _lock: nix::fcntl::Flock<File>,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
}

fn target(path: &Path) -> io::Result<Arc<Target>> {
    Ok(Arc::new(Target {
        file: open_append(path)?,
        path: path.to_path_buf(),
    }))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn lock_dir(dir: &Path) -> Result<nix::fcntl::Flock<File>, AuditError> {
    let path = dir.join("audit.lock");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| AuditError::open(dir, format!("{}: {e}", path.display())))?;
    // A lock just released can look held for a moment when another thread of this
    // process forks (the child holds a copy of the descriptor until it execs), so a
    // held lock is retried for up to a second before giving up.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let e = match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(locked) => return Ok(locked),
            Err((file, errno)) => {
                f = file;
                io::Error::from(errno)
            }
        };
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) && attempt < 20 {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        return Err(AuditError::open(
            dir,
            format!(
                "another process is writing this audit log ({}: {e})",
                path.display()
            ),
        ));
    }
}

/// The outside head must be outside the log directory (else whoever rewrites the
/// directory rewrites the head too) and its directory must exist (else no head is
/// ever written and nothing says so until the log is needed).
fn check_head_place(dir: &Path, head: &Path) -> Result<(), AuditError> {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let parent = match head.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(AuditError::open(
            dir,
            format!(
                "the head file's directory {} does not exist (create it, mode 0700, or change [audit] head)",
                parent.display()
            ),
        ));
    }
    if abs(parent).starts_with(abs(dir)) {
        return Err(AuditError::open(
            dir,
            format!(
                "the head file {} must be outside the audit directory: a copy inside it is `{HEAD_FILE}` already",
                head.display()
            ),
        ));
    }
    Ok(())
}

impl Writer {
    /// Opens the directory and the files, reads where the chain continues, and
    /// returns the recovery records to write first (repair note, unknown outcomes).
    pub(crate) fn open(cfg: AuditConfig) -> Result<(Writer, Vec<AuditRecord>), AuditError> {
        let dir = cfg.dir.clone();
        let open_err = |what: String| AuditError::open(&dir, what);
        if let Some(id) = &cfg.hub_id {
            if !valid_hub_id(id) {
                return Err(open_err(format!(
                    "hub id {id:?} cannot name an audit chain: use 1 to {MAX_HUB_ID} letters, digits, '-', '_' or '.'"
                )));
            }
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| open_err(e.to_string()))?;
        let lock_file = lock_dir(&dir)?;
        let rotated = rotated_files(&dir).map_err(|e| open_err(e.to_string()))?;
        let json_path = dir.join(CURRENT_FILE);
        let human_path = dir.join(HUMAN_FILE);

        // Intent bookkeeping starts in the newest rotated file (which ends with the
        // rotation checkpoint listing the intents still open), then the current file.
        let mut open = OpenIntents::new();
        let prev_scan = match rotated.last() {
            Some((_, p)) => Some(scan_file(p, &mut open)?),
            None => None,
        };
        let json =
            target(&json_path).map_err(|e| open_err(format!("{}: {e}", json_path.display())))?;
        let cur = scan_file(&json_path, &mut open)?;
        let mut startup = Vec::new();
        if cur.partial > 0 {
            json.file
                .set_len(cur.valid_len)
                .and_then(|_| json.file.sync_data())
                .map_err(|e| open_err(format!("cannot cut unfinished line: {e}")))?;
            startup.push(AuditRecord {
                kind: RecordKind::Event,
                event: events::AUDIT_REPAIRED.into(),
                actor: SYSTEM_ACTOR.into(),
                message: Some(format!(
                    "dropped {} bytes of an unfinished record at the end of {CURRENT_FILE} (a write cut short by a crash; never acknowledged)",
                    cur.partial
                )),
                ..Default::default()
            });
        }
        let mut human_file = open_append(&human_path)
            .map_err(|e| open_err(format!("{}: {e}", human_path.display())))?;
        trim_partial_tail(&mut human_file)
            .map_err(|e| open_err(format!("{}: {e}", human_path.display())))?;
        let human_len = human_file
            .metadata()
            .map_err(|e| open_err(e.to_string()))?
            .len();
        let human = Arc::new(Target {
            file: human_file,
            path: human_path,
        });

        let tail = if cur.last.is_some() {
            Some(&cur)
        } else {
            prev_scan.as_ref()
        };
        let (next_seq, prev) = continuation(tail);
        let since_checkpoint = tail.map_or(0, |s| s.since_checkpoint);
        if let Some(hp) = &cfg.head_path {
            check_head_place(&dir, hp)?;
            let vk = cfg.signing_key.as_ref().map(SigningKey::verifying_key);
            let last = (next_seq > 1).then_some((next_seq - 1, prev));
            let found = check_at_open(&dir, hp, vk.as_ref(), last, |seq| {
                find_line_hash(&rotated, &json_path, seq)
            })?;
            if found == HeadAtOpen::Missing && last.is_some() {
                startup.push(AuditRecord {
                    kind: RecordKind::Event,
                    event: events::AUDIT_HEAD_MISSING.into(),
                    actor: SYSTEM_ACTOR.into(),
                    message: Some(format!(
                        "the head file {} was not there, so the end of the log (seq {}) could not be checked against it; a new head is written from now on",
                        hp.display(),
                        next_seq - 1
                    )),
                    ..Default::default()
                });
            }
        }

        for (seq, rec) in &open {
            let intent = rec
                .clone()
                .or_else(|| find_record(&rotated, *seq))
                .unwrap_or_else(|| AuditRecord {
                    kind: RecordKind::Intent,
                    event: events::OP.into(),
                    actor: SYSTEM_ACTOR.into(),
                    message: Some("intent record not found".into()),
                    ..Default::default()
                });
            startup.push(intent.outcome_of(
                *seq,
                Outcome::Unknown,
                Some("no outcome was recorded before the hub stopped; the operation may or may not have taken effect".into()),
            ));
        }
        let file_first_seq = cur.first_seq.unwrap_or(next_seq);
        let file_started = cur
            .first_time
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(chrono::Utc::now);
        let syslog = match &cfg.syslog {
            Some(t) => {
                Some(SyslogSender::new(t).map_err(|e| open_err(format!("syslog socket: {e}")))?)
            }
            None => None,
        };
        let shared = Arc::new(Shared::default());
        if next_seq > 1 {
            // What is on disk at open was flushed by the process that wrote it (an
            // unfinished line was cut off above).
            shared.advance_durable((next_seq - 1, prev));
        }
        let (to_syncer, rx) = mpsc::channel();
        let (heads, head_rx) = mpsc::channel();
        let sink = Arc::new(HeadSink::new(
            dir.join(HEAD_FILE),
            cfg.head_path.clone(),
            cfg.signing_key.clone(),
        ));
        let (head_sink, head_shared) = (sink.clone(), shared.clone());
        let head_thread = std::thread::Builder::new()
            .name("steward-audit-head".into())
            .spawn(move || head_writer(head_rx, head_sink, head_shared))
            .map_err(|e| open_err(format!("cannot start head thread: {e}")))?;
        let syncer = Syncer {
            rx,
            shared: shared.clone(),
            syslog,
            heads: Some(heads),
            head_thread: Some(head_thread),
        };
        let forward = cfg.syslog.is_some();
        let syncer = std::thread::Builder::new()
            .name("steward-audit-sync".into())
            .spawn(move || syncer.run())
            .map_err(|e| open_err(format!("cannot start syncer thread: {e}")))?;
        Ok((
            Writer {
                dir,
                json,
                human,
                json_len: cur.valid_len,
                human_len,
                dirty: false,
                next_seq,
                prev,
                file_first_seq,
                file_started,
                since_checkpoint,
                open_intents: open.keys().copied().collect(),
                rotate_bytes: cfg.rotate_bytes.max(1),
                rotate_secs: cfg.rotate_secs,
                checkpoint_every: cfg.checkpoint_every,
                checkpoint_interval: cfg.checkpoint_interval,
                last_checkpoint_at: cfg.clock.now(),
                clock: cfg.clock,
                last_head: None,
                heads: sink,
                key: cfg.signing_key,
                hub: cfg.hub_id,
                max_batch: cfg.max_batch.max(1),
                failure: None,
                shared,
                to_syncer: Some(to_syncer),
                syncer: Some(syncer),
                next_ticket: 1,
                unsynced: VecDeque::new(),
                forward,
                jbuf: Vec::with_capacity(1 << 20),
                hbuf: Vec::with_capacity(1 << 19),
                _lock: lock_file,
            },
            startup,
        ))
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Writes `recs` and waits until they are flushed.
    pub(crate) fn commit_and_wait(&mut self, recs: Vec<AuditRecord>) -> Result<(), AuditError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.commit(recs, Vec::new(), Some(tx), false)?;
        let r = rx.recv().unwrap_or(Err(AuditError::Closed));
        if r.is_err() {
            self.check_sync_failure();
        }
        r
    }

    pub(crate) fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        loop {
            let mut wants_head = None;
            match rx.recv_timeout(RETRY) {
                Ok(Msg::Append(rec, reply)) => batch.push((rec, reply)),
                Ok(Msg::Checkpoint(tx)) => wants_head = Some(tx),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            while batch.len() < self.max_batch && wants_head.is_none() {
                match rx.try_recv() {
                    Ok(Msg::Append(rec, reply)) => batch.push((rec, reply)),
                    Ok(Msg::Checkpoint(tx)) => wants_head = Some(tx),
                    Err(_) => break,
                }
            }
            let idle = batch.is_empty();
            self.process(&mut batch);
            if let Some(tx) = wants_head {
                let _ = tx.send(self.checkpoint_now());
            } else if idle && self.interval_due() && self.can_checkpoint() {
                // Records were written, then nothing for a while: anchor them now
                // rather than with the next append, whenever that comes.
                let _ = self.commit(Vec::new(), Vec::new(), None, true);
            }
        }
        // Anchor everything written so far so that a cut of the tail is detectable,
        // and wait for the syncer to answer everything.
        self.check_sync_failure();
        if self.can_checkpoint() {
            let _ = self.barrier_commit(true);
        }
        self.to_syncer.take();
        if let Some(h) = self.syncer.take() {
            let _ = h.join();
        }
    }

    fn process(&mut self, batch: &mut Vec<(AuditRecord, Reply)>) {
        self.check_sync_failure();
        self.settle_failure();
        let mut recs = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for (mut rec, reply) in batch.drain(..) {
            match crate::record::validate_append(&mut rec) {
                Ok(()) => {
                    recs.push(rec);
                    replies.push(reply);
                }
                Err(e) => reply.send(Err(e)),
            }
        }
        if recs.is_empty() && !self.needs_resume() {
            return;
        }
        let n = recs.len() as u64;
        // max_batch 1 is the fsync-per-record baseline: wait for each flush.
        let (tx, rx) = mpsc::sync_channel(1);
        let wait = self.max_batch == 1 && !recs.is_empty();
        let written = self
            .commit(recs, replies, wait.then_some(tx), false)
            .is_ok();
        if written && wait && rx.recv().unwrap_or(Err(AuditError::Closed)).is_err() {
            self.check_sync_failure();
        }
        if !written {
            if let Some(f) = &mut self.failure {
                f.refused += n;
            }
        }
    }

    /// A checkpoint is due by time (records were written since the last one is left
    /// to the caller).
    fn interval_due(&self) -> bool {
        self.checkpoint_interval.is_some_and(|d| {
            self.clock
                .now()
                .saturating_duration_since(self.last_checkpoint_at)
                >= d
        })
    }

    /// Records wait for a checkpoint and the log is writable.
    fn can_checkpoint(&self) -> bool {
        self.failure.is_none() && self.since_checkpoint > 0 && self.next_seq > 1
    }

    /// Anchors everything written so far with a flushed checkpoint and writes the
    /// heads before returning (for `AuditLog::checkpoint_now`, called at hub stop).
    fn checkpoint_now(&mut self) -> Result<(), AuditError> {
        self.check_sync_failure();
        self.settle_failure();
        if let Some(f) = &self.failure {
            return Err(f.error.clone());
        }
        if self.can_checkpoint() {
            self.barrier_commit(true)?;
        }
        match &self.last_head {
            Some((seq, hash, time)) => self
                .heads
                .write(*seq, hash, time)
                .map_err(|e| AuditError::io(&self.dir, &e)),
            None => Ok(()),
        }
    }

    fn rotation_due(&self) -> bool {
        self.json_len > 0
            && (self.json_len >= self.rotate_bytes
                || self.rotate_secs.is_some_and(|s| {
                    (chrono::Utc::now() - self.file_started).num_seconds() >= s as i64
                }))
    }

    fn mark(&self) -> Mark {
        Mark {
            next_seq: self.next_seq,
            prev: self.prev,
            since_checkpoint: self.since_checkpoint,
            last_checkpoint_at: self.last_checkpoint_at,
            last_head: self.last_head.clone(),
            json_len: self.json_len,
            human_len: self.human_len,
        }
    }

    fn restore(&mut self, m: Mark) {
        self.next_seq = m.next_seq;
        self.prev = m.prev;
        self.since_checkpoint = m.since_checkpoint;
        self.last_checkpoint_at = m.last_checkpoint_at;
        self.last_head = m.last_head;
        self.json_len = m.json_len;
        self.human_len = m.human_len;
    }

    /// Stages one record: sets seq/prev, serializes, hashes, renders the human line.
    fn stage(
        &mut self,
        mut rec: AuditRecord,
        staged: &mut Vec<Staged>,
        opened: &mut Vec<u64>,
        closed: &mut Vec<u64>,
    ) {
        rec.seq = self.next_seq;
        rec.prev = hex32(&self.prev);
        // Like seq and prev, the hub is the log's to set: a caller cannot put a record
        // into another hub's name.
        rec.hub.clone_from(&self.hub);
        let start = self.jbuf.len();
        // Writing plain data into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.jbuf, &rec);
        let end = self.jbuf.len();
        self.prev = hash_line(&self.jbuf[start..end]);
        self.jbuf.push(b'\n');
        self.next_seq += 1;
        let human = human_line(&rec);
        if let Some(h) = &human {
            self.hbuf.extend_from_slice(h.as_bytes());
            self.hbuf.push(b'\n');
        }
        match rec.kind {
            RecordKind::Intent => {
                self.open_intents.insert(rec.seq);
                opened.push(rec.seq);
            }
            RecordKind::Outcome => {
                if let Some(i) = rec.intent_seq {
                    if self.open_intents.remove(&i) {
                        closed.push(i);
                    }
                }
            }
            _ => {}
        }
        if rec.kind == RecordKind::Checkpoint {
            self.since_checkpoint = 0;
        } else {
            self.since_checkpoint += 1;
        }
        staged.push(Staged {
            rec,
            line: start..end,
            human,
        });
    }

    fn checkpoint_record(&self) -> AuditRecord {
        let anchor_seq = self.next_seq - 1;
        let mut rec = AuditRecord {
            time: now(),
            kind: RecordKind::Checkpoint,
            event: events::CHECKPOINT.into(),
            actor: SYSTEM_ACTOR.into(),
            ..Default::default()
        };
        rec.extra.insert("anchor_seq".into(), anchor_seq.into());
        rec.extra
            .insert("anchor_hash".into(), hex32(&self.prev).into());
        if let Some(k) = &self.key {
            rec.extra.insert(
                "sig".into(),
                sign_anchor(k, Domain::Checkpoint, anchor_seq, &self.prev).into(),
            );
            rec.extra.insert(
                "key".into(),
                hex::encode(k.verifying_key().as_bytes()).into(),
            );
        }
        rec.extra.insert(
            "open_intents".into(),
            self.open_intents
                .iter()
                .copied()
                .collect::<Vec<u64>>()
                .into(),
        );
        rec
    }

    fn fail(&mut self, e: &AuditError) -> u64 {
        self.settle_failure();
        match &mut self.failure {
            Some(f) => f.error = e.clone(),
            None => {
                self.failure = Some(Failure {
                    since: now(),
                    error: e.clone(),
                    refused: 0,
                    resume_ticket: None,
                })
            }
        }
        self.shared.fail(e)
    }

    /// Ends the outage once the `audit_resumed` record reporting it is flushed.
    fn settle_failure(&mut self) {
        let synced = self.shared.synced_id.load(Ordering::Acquire);
        if self
            .failure
            .as_ref()
            .and_then(|f| f.resume_ticket)
            .is_some_and(|id| id <= synced)
        {
            self.failure = None;
        }
    }

    /// The outage still needs its `audit_resumed` record written.
    fn needs_resume(&self) -> bool {
        self.failure
            .as_ref()
            .is_some_and(|f| f.resume_ticket.is_none())
    }

    /// Cuts both files back to their last good length.
    fn truncate_back(&mut self) -> Result<(), AuditError> {
        self.json
            .file
            .set_len(self.json_len)
            .map_err(|e| AuditError::unavailable(&self.json.path, &e))?;
        self.human
            .file
            .set_len(self.human_len)
            .map_err(|e| AuditError::unavailable(&self.human.path, &e))?;
        self.dirty = false;
        Ok(())
    }

    /// If a flush failed: wait until the syncer has answered every ticket, then cut
    /// the files back to what was flushed and rewind the chain to match.
    fn check_sync_failure(&mut self) {
        let Some(err) = lock(&self.shared.sync_failed).clone() else {
            return;
        };
        // The syncer refuses every ticket while the flag is up; an empty barrier
        // ticket comes back once all earlier ones have been answered.
        if let Some(tx) = &self.to_syncer {
            let (btx, brx) = mpsc::sync_channel(1);
            let barrier = Ticket {
                id: 0,
                files: [self.json.clone(), self.human.clone()],
                replies: Vec::new(),
                records: 0,
                last: None,
                head: None,
                syslog: Vec::new(),
                resolves: None,
                barrier: Some(btx),
            };
            if tx.send(barrier).is_ok() {
                let _ = brx.recv();
            }
        }
        let synced = self.shared.synced_id.load(Ordering::Acquire);
        while self.unsynced.front().is_some_and(|u| u.id <= synced) {
            self.unsynced.pop_front();
        }
        if let Some(first) = self.unsynced.front() {
            let before = first.before.clone();
            for u in self.unsynced.iter().rev() {
                for s in &u.opened {
                    self.open_intents.remove(s);
                }
                self.open_intents.extend(u.closed.iter().copied());
            }
            self.restore(before);
        }
        self.unsynced.clear();
        self.dirty = true;
        let _ = self.truncate_back();
        // The gap is reported by the next successful batch (again, if the record
        // that reported an earlier one was just cut back).
        self.settle_failure();
        let refused = self.shared.sync_refused.swap(0, Ordering::AcqRel);
        let f = self.failure.get_or_insert_with(|| Failure {
            since: now(),
            error: err.clone(),
            refused: 0,
            resume_ticket: None,
        });
        f.error = err;
        f.refused += refused;
        f.resume_ticket = None;
        *lock(&self.shared.sync_failed) = None;
    }

    /// Writes a checkpoint (forced) or nothing, and waits until all is flushed.
    fn barrier_commit(&mut self, checkpoint: bool) -> Result<(), AuditError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.write_batch(Vec::new(), Vec::new(), Some(tx), checkpoint)?;
        let r = rx.recv().unwrap_or(Err(AuditError::Closed));
        if r.is_err() {
            self.check_sync_failure();
        }
        r
    }

    /// Rotates when due, then writes the batch (see `write_batch`).
    fn commit(
        &mut self,
        recs: Vec<AuditRecord>,
        replies: Vec<Reply>,
        barrier: Option<mpsc::SyncSender<Result<(), AuditError>>>,
        checkpoint: bool,
    ) -> Result<(), AuditError> {
        if self.rotation_due() {
            if let Err(e) = self.rotate() {
                self.fail(&e);
                for r in replies {
                    r.send(Err(e.clone()));
                }
                if let Some(b) = barrier {
                    let _ = b.send(Err(e.clone()));
                }
                return Err(e);
            }
        }
        self.write_batch(recs, replies, barrier, checkpoint)
    }

    /// Stages `recs` (after an `audit_resumed` record if the log was failing, and
    /// followed by a checkpoint when one is due or `checkpoint` is set), writes them
    /// to both files, and hands them to the syncer — or, if the write fails, cuts the
    /// files back and refuses them all.
    fn write_batch(
        &mut self,
        recs: Vec<AuditRecord>,
        replies: Vec<Reply>,
        barrier: Option<mpsc::SyncSender<Result<(), AuditError>>>,
        checkpoint: bool,
    ) -> Result<(), AuditError> {
        let before = self.mark();
        let t0 = Instant::now();
        let mut opened = Vec::new();
        let mut closed = Vec::new();
        let mut staged = Vec::with_capacity(recs.len() + 2);
        self.jbuf.clear();
        self.hbuf.clear();
        let mut resolves = None;
        if let Some(f) = self.failure.as_ref().filter(|f| f.resume_ticket.is_none()) {
            let rec = AuditRecord {
                time: now(),
                kind: RecordKind::Event,
                event: events::AUDIT_RESUMED.into(),
                actor: SYSTEM_ACTOR.into(),
                message: Some(format!(
                    "the audit log could not be written from {} until now ({}); {} record(s) were refused and their operations not performed",
                    f.since, f.error, f.refused
                )),
                ..Default::default()
            };
            resolves = Some(self.shared.gen());
            self.stage(rec, &mut staged, &mut opened, &mut closed);
        }
        let first_user = staged.len();
        for rec in recs {
            self.stage(rec, &mut staged, &mut opened, &mut closed);
        }
        let n_user = staged.len() - first_user;
        let mut head = None;
        let due = self.checkpoint_every > 0 && self.since_checkpoint >= self.checkpoint_every;
        if (due || checkpoint || self.interval_due())
            && self.next_seq > 1
            && self.since_checkpoint > 0
        {
            let rec = self.checkpoint_record();
            let time = rec.time.clone();
            self.stage(rec, &mut staged, &mut opened, &mut closed);
            head = Some((self.next_seq - 1, self.prev, time));
            self.last_checkpoint_at = self.clock.now();
            self.last_head = head.clone();
        }
        Counters::add(
            &self.shared.counters.stage_micros,
            t0.elapsed().as_micros() as u64,
        );
        if let Err(e) = self.write() {
            self.restore(before);
            for s in opened {
                self.open_intents.remove(&s);
            }
            self.open_intents.extend(closed);
            self.fail(&e);
            Counters::add(&self.shared.counters.failed_commits, 1);
            for r in replies {
                r.send(Err(e.clone()));
            }
            if let Some(b) = barrier {
                let _ = b.send(Err(e.clone()));
            }
            return Err(e);
        }
        let id = self.next_ticket;
        self.next_ticket += 1;
        if resolves.is_some() {
            if let Some(f) = &mut self.failure {
                f.resume_ticket = Some(id);
            }
        }
        let seqs = staged[first_user..first_user + n_user]
            .iter()
            .map(|s| s.rec.seq);
        let replies: Vec<(Reply, u64)> = replies.into_iter().zip(seqs).collect();
        let syslog = if self.forward {
            staged
                .into_iter()
                .map(|s| {
                    let line = self.jbuf[s.line.clone()].to_vec();
                    (s.rec, line, s.human)
                })
                .collect()
        } else {
            Vec::new()
        };
        let ticket = Ticket {
            id,
            files: [self.json.clone(), self.human.clone()],
            replies,
            records: memchr::memchr_iter(b'\n', &self.jbuf).count() as u64,
            last: (!self.jbuf.is_empty()).then_some((self.next_seq - 1, self.prev)),
            head,
            syslog,
            resolves,
            barrier,
        };
        let synced = self.shared.synced_id.load(Ordering::Acquire);
        while self.unsynced.front().is_some_and(|u| u.id <= synced) {
            self.unsynced.pop_front();
        }
        self.unsynced.push_back(Unsynced {
            id,
            before,
            opened,
            closed,
        });
        match &self.to_syncer {
            Some(tx) => {
                if let Err(mpsc::SendError(t)) = tx.send(ticket) {
                    t.fail(&AuditError::Closed);
                }
            }
            None => ticket.fail(&AuditError::Closed),
        }
        Ok(())
    }

    /// One `write` per file; on failure both files are cut back to the last good length.
    fn write(&mut self) -> Result<(), AuditError> {
        if self.dirty {
            self.truncate_back()?;
        }
        if self.jbuf.is_empty() {
            return Ok(());
        }
        let t0 = Instant::now();
        let r = (&self.json.file)
            .write_all(&self.jbuf)
            .map_err(|e| AuditError::unavailable(&self.json.path, &e))
            .and_then(|_| {
                (&self.human.file)
                    .write_all(&self.hbuf)
                    .map_err(|e| AuditError::unavailable(&self.human.path, &e))
            });
        Counters::add(
            &self.shared.counters.write_micros,
            t0.elapsed().as_micros() as u64,
        );
        match r {
            Ok(()) => {
                self.json_len += self.jbuf.len() as u64;
                self.human_len += self.hbuf.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Nothing of a failed batch may stay: a later good write would
                // otherwise follow a partial line. If cutting back fails too, it is
                // tried again before the next write.
                self.dirty = true;
                let _ = self.truncate_back();
                Err(e)
            }
        }
    }

    /// Ends the current file with a checkpoint and starts a new one; the chain goes
    /// on. Everything written is flushed first, so the renamed file is complete.
    fn rotate(&mut self) -> Result<(), AuditError> {
        self.barrier_commit(true)?;
        let stem = format!("audit-{:012}", self.file_first_seq);
        let rotated_json = self.dir.join(format!("{stem}.jsonl"));
        let rotated_human = self.dir.join(format!("{stem}.log"));
        if rotated_json.exists() {
            return Err(AuditError::Unavailable {
                path: rotated_json,
                cause: "cannot rotate: file exists".into(),
                errno: None,
            });
        }
        let json_path = self.json.path.clone();
        let human_path = self.human.path.clone();
        std::fs::rename(&json_path, &rotated_json)
            .map_err(|e| AuditError::unavailable(&json_path, &e))?;
        let human_moved = std::fs::rename(&human_path, &rotated_human).is_ok();
        let new_json = match target(&json_path).and_then(|t| sync_dir(&self.dir).map(|_| t)) {
            Ok(t) => t,
            Err(e) => {
                // Put the old file back so the chain keeps one current file.
                let _ = std::fs::rename(&rotated_json, &json_path);
                if human_moved {
                    let _ = std::fs::rename(&rotated_human, &human_path);
                }
                return Err(AuditError::unavailable(&json_path, &e));
            }
        };
        self.json = new_json;
        self.json_len = 0;
        if human_moved {
            if let Ok(h) = target(&human_path) {
                self.human = h;
                self.human_len = 0;
            }
        }
        let _ = sync_dir(&self.dir);
        self.file_first_seq = self.next_seq;
        self.file_started = chrono::Utc::now();
        Ok(())
    }
}
