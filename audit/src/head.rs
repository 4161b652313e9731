//! The head: a signed copy of the newest flushed checkpoint (its seq and line hash),
//! kept in `audit.head` beside the log and, when configured, in a second file outside
//! the log directory. A log that ends before the seq a head signed had records cut off
//! its end; both `verify` and `AuditLog::open` refuse it.
//!
//! This module owns writing heads (atomically, never backwards) and reading them
//! (every field checked, the signature too when a key is given). It must not decide
//! what a mismatch means for the hub: it reports, the callers refuse.

use crate::chain::{check_anchor_sig, hex32, parse_hex32, sign_anchor, Domain, Hash, HeadFile};
use crate::error::{AuditError, VerifyError};
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Reads and checks a head file: JSON with a SHA-256 hash, and with `key` a valid
/// signature by that key. Returns the head and its hash.
pub(crate) fn read_head(
    path: &Path,
    key: Option<&VerifyingKey>,
) -> Result<(HeadFile, Hash), VerifyError> {
    let bytes = std::fs::read(path).map_err(|e| VerifyError::file(path, e.to_string()))?;
    let head: HeadFile = serde_json::from_slice(&bytes)
        .map_err(|e| VerifyError::file(path, format!("not a valid head file: {e}")))?;
    let hash = parse_hex32(head.hash.as_bytes())
        .ok_or_else(|| VerifyError::file(path, "hash is not a SHA-256 hex digest"))?;
    if let Some(key) = key {
        if let Some(k) = &head.key {
            if *k != hex::encode(key.as_bytes()) {
                return Err(VerifyError::file(
                    path,
                    format!("head was signed by another key ({k})"),
                ));
            }
        }
        let sig = head
            .sig
            .as_deref()
            .ok_or_else(|| VerifyError::file(path, "head is not signed, but a key was given"))?;
        if !check_anchor_sig(key, Domain::Head, head.seq, &hash, sig) {
            return Err(VerifyError::file(
                path,
                "head signature is not valid for this key: forged or altered",
            ));
        }
    }
    Ok((head, hash))
}

/// Writes `bytes` to `path` so that a crash leaves the old or the new content, never
/// a mix: a temporary file beside it, fsync, rename, fsync of the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let r = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Where heads go: `audit.head` in the log directory and the configured outside file.
/// Shared by the head thread (after each flush) and the writer (at `checkpoint_now`),
/// so a head is never replaced by an older one.
pub(crate) struct HeadSink {
    paths: Vec<PathBuf>,
    key: Option<SigningKey>,
    /// Highest checkpoint seq written so far.
    written: Mutex<u64>,
}

impl HeadSink {
    pub(crate) fn new(in_dir: PathBuf, outside: Option<PathBuf>, key: Option<SigningKey>) -> Self {
        HeadSink {
            paths: std::iter::once(in_dir).chain(outside).collect(),
            key,
            written: Mutex::new(0),
        }
    }

    /// Points every head at the flushed checkpoint `seq` (line hash `hash`), unless a
    /// newer one was written already. Every file is tried; the first failure is
    /// returned.
    pub(crate) fn write(&self, seq: u64, hash: &Hash, time: &str) -> io::Result<()> {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if *written >= seq {
            return Ok(());
        }
        let head = HeadFile {
            seq,
            hash: hex32(hash),
            time: time.to_string(),
            sig: self
                .key
                .as_ref()
                .map(|k| sign_anchor(k, Domain::Head, seq, hash)),
            key: self
                .key
                .as_ref()
                .map(|k| hex::encode(k.verifying_key().as_bytes())),
        };
        let mut bytes = serde_json::to_vec(&head).map_err(io::Error::other)?;
        bytes.push(b'\n');
        let mut first_err = None;
        for p in &self.paths {
            if let Err(e) = write_atomic(p, &bytes) {
                first_err.get_or_insert(io::Error::new(e.kind(), format!("{}: {e}", p.display())));
            }
        }
        match first_err {
            None => {
                *written = seq;
                Ok(())
            }
            Some(e) => Err(e),
        }
    }
}

/// What [`check_at_open`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeadAtOpen {
    /// The head file does not exist (first start with this setting, or deleted).
    Missing,
    /// The log reaches the signed seq (and the record there is unchanged, when the
    /// files still hold it).
    Matches,
}

/// The check `AuditLog::open` makes against the outside head: the head file must be
/// valid (and signed by `key`, when given), and the log must reach the seq it signed
/// with the record there unchanged. `last` is the log's last (seq, line hash);
/// `hash_at` finds an earlier record's line hash.
pub(crate) fn check_at_open(
    dir: &Path,
    path: &Path,
    key: Option<&VerifyingKey>,
    last: Option<(u64, Hash)>,
    hash_at: impl FnOnce(u64) -> Option<Hash>,
) -> Result<HeadAtOpen, AuditError> {
    if !path.exists() {
        return Ok(HeadAtOpen::Missing);
    }
    let (head, hash) = read_head(path, key).map_err(|e| {
        AuditError::open(
            dir,
            format!(
                "head file {e}; if it was damaged rather than forged, move it away and start again (a new head is written and the start records that it was missing)"
            ),
        )
    })?;
    let (last_seq, last_hash) = last.unwrap_or((0, [0; 32]));
    if last_seq < head.seq {
        return Err(AuditError::Truncated {
            dir: dir.to_path_buf(),
            head: path.to_path_buf(),
            log_ends: last_seq,
            head_seq: head.seq,
            head_time: head.time,
        });
    }
    let found = if last_seq == head.seq {
        Some(last_hash)
    } else {
        hash_at(head.seq)
    };
    if found.is_some_and(|h| h != hash) {
        return Err(AuditError::open(
            dir,
            format!(
                "the record at seq {} differs from the one the head file {} signed (written {}): the log was altered; run `steward audit verify --head {}`",
                head.seq,
                path.display(),
                head.time,
                path.display()
            ),
        ));
    }
    Ok(HeadAtOpen::Matches)
}
