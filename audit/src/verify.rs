//! `steward audit verify`: checks that the files form one unbroken hash chain, that
//! every checkpoint anchors the chain where it says and carries a valid signature,
//! and that `audit.head` (and, when given, the head kept outside the log directory)
//! still finds the checkpoint it copies.
//!
//! Each read chunk is split between the cores; every piece is checked on its own
//! (UTF-8, canonical prefix, full decode, links between its lines, checkpoints) and
//! the pieces are stitched in order, so the first bad line is reported with its file
//! and line number exactly as a sequential pass would.

use crate::chain::{
    check_anchor_sig, hash_line, hex32, parse_head, parse_hex32, Domain, Hash, GENESIS,
};
use crate::error::VerifyError;
use crate::head::read_head;
use crate::record::{AuditRecord, RecordKind, RecordView};
use crate::recovery::anchor_of;
use crate::scan::{audit_files, read_parts};
use crate::{CURRENT_FILE, HEAD_FILE};
use ed25519_dalek::VerifyingKey;
use std::fmt;
use std::path::{Path, PathBuf};

/// What a successful verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub files: usize,
    pub records: u64,
    pub bytes: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub checkpoints: u64,
    /// True when a key was given and every checkpoint's signature was checked.
    pub signatures_checked: bool,
    /// `seq` of the last checkpoint record.
    pub last_checkpoint_seq: Option<u64>,
    /// Records after the last checkpoint: a cut of these alone is not detectable
    /// from the files (see docs/audit.md).
    pub unanchored_tail: u64,
    /// `audit.head` was found and matched.
    pub head_checked: bool,
    /// The head kept outside the log directory was given, and the log reaches it.
    pub outside_head_checked: bool,
    /// Bytes at the end of the current file that were still being written (a line
    /// not yet complete that grew while verify looked at it); not checked.
    pub in_progress_bytes: u64,
    /// The hubs the records name (`hub`), in the order they first appear: one for a
    /// hub's chain, none for a log written before hubs named their chains, and more
    /// than one only if the hub was renamed.
    pub hubs: Vec<String>,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OK: {} file(s), {} record(s), {} bytes",
            self.files, self.records, self.bytes
        )?;
        if let (Some(a), Some(b)) = (self.first_seq, self.last_seq) {
            write!(f, ", seq {a}..={b}")?;
            if a > 1 {
                write!(f, " (records before {a} are not in these files)")?;
            }
        }
        if !self.hubs.is_empty() {
            write!(f, "; chain of hub {}", self.hubs.join(", then hub "))?;
        }
        write!(f, "; {} checkpoint(s)", self.checkpoints)?;
        if self.checkpoints > 0 {
            if self.signatures_checked {
                write!(f, ", signatures valid")?;
            } else {
                write!(f, ", signatures NOT checked (no key given)")?;
            }
        }
        if self.head_checked {
            write!(f, "; {HEAD_FILE} matches")?;
        }
        if self.outside_head_checked {
            write!(f, "; the outside head file matches")?;
        }
        if self.in_progress_bytes > 0 {
            write!(
                f,
                "; {} bytes at the end were still being written (not checked)",
                self.in_progress_bytes
            )?;
        }
        if self.unanchored_tail > 0 {
            match self.last_checkpoint_seq {
                Some(c) => write!(
                    f,
                    "; unanchored tail: {} record(s) after the last checkpoint (seq {c})",
                    self.unanchored_tail
                )?,
                None => write!(
                    f,
                    "; unanchored tail: {} record(s), no checkpoint",
                    self.unanchored_tail
                )?,
            }
        }
        Ok(())
    }
}

/// Result of checking one piece of a file.
#[derive(Default)]
struct Piece {
    lines: u64,
    bytes: u64,
    /// (seq, prev) of the first line, when it parsed.
    first: Option<(u64, Hash)>,
    /// (seq, hash) of the last good line.
    last: Option<(u64, Hash)>,
    /// (line index in the piece, seq, what) of the first problem.
    error: Option<(u64, Option<u64>, String)>,
    checkpoints: u64,
    last_checkpoint: Option<u64>,
    /// Per head (`audit.head`, then the outside head): the record it anchors was
    /// seen here, Ok if its hash matched, Err(index) if not.
    head_seen: [Option<Result<(), u64>>; 2],
    /// Hubs named by the lines, each change of name once.
    hubs: Vec<Vec<u8>>,
    /// (seq, line hash) of the lines whose seq was asked for.
    probed: Vec<(u64, Hash)>,
}

/// Why `next` cannot follow (`seq`, `hash`); `Ok(true)` when the previous record is
/// the one that was altered (the sequence continues but the hash does not).
fn link(seq: u64, hash: &Hash, next_seq: u64, next_prev: &Hash) -> Result<(), (bool, String)> {
    if next_seq == seq.wrapping_add(1) {
        if next_prev == hash {
            return Ok(());
        }
        return Err((
            true,
            format!(
                "record {seq} does not hash to the `prev` stored in record {next_seq}: it was altered (or {next_seq} was replaced)"
            ),
        ));
    }
    if next_seq <= seq {
        Err((
            false,
            format!(
                "sequence goes back from {seq} to {next_seq}: records were inserted or reordered"
            ),
        ))
    } else {
        Err((
            false,
            format!(
                "expected seq {}, found {next_seq}: {} record(s) deleted (or records reordered)",
                seq + 1,
                next_seq - seq - 1
            ),
        ))
    }
}

fn check_checkpoint(
    line: &[u8],
    seq: u64,
    prev: &Hash,
    key: Option<&VerifyingKey>,
) -> Result<(), String> {
    let rec = AuditRecord::from_line(line).map_err(|e| format!("not a valid audit record: {e}"))?;
    let a = anchor_of(&rec).ok_or("checkpoint without anchor_seq/anchor_hash")?;
    let anchor_hash = parse_hex32(a.anchor_hash.as_bytes())
        .ok_or("checkpoint anchor_hash is not a SHA-256 hex digest")?;
    if a.anchor_seq.wrapping_add(1) != seq || anchor_hash != *prev {
        return Err(format!(
            "checkpoint anchors seq {} but sits after seq {} (hash {}): forged or moved",
            a.anchor_seq,
            seq.wrapping_sub(1),
            hex32(prev)
        ));
    }
    if let Some(key) = key {
        if let Some(k) = &a.key {
            if *k != hex::encode(key.as_bytes()) {
                return Err(format!("checkpoint was signed by another key ({k})"));
            }
        }
        let sig = a
            .sig
            .as_deref()
            .ok_or("checkpoint is not signed, but a key was given")?;
        if !check_anchor_sig(key, Domain::Checkpoint, a.anchor_seq, &anchor_hash, sig) {
            return Err("checkpoint signature is not valid for this key: forged or altered".into());
        }
    }
    Ok(())
}

fn check_piece(
    data: &[u8],
    key: Option<&VerifyingKey>,
    heads: [Option<(u64, Hash)>; 2],
    probes: &[u64],
) -> Piece {
    let mut p = Piece::default();
    let mut start = 0usize;
    for nl in memchr::memchr_iter(b'\n', data) {
        let line = &data[start..nl];
        let idx = p.lines;
        let fail = |p: &mut Piece, seq: Option<u64>, what: String| {
            p.error = Some((idx, seq, what));
        };
        if line.is_empty() {
            fail(&mut p, None, "empty line".into());
            return p;
        }
        if let Err(e) = utf8(line) {
            fail(
                &mut p,
                None,
                format!("not valid UTF-8 (at byte {} of the line)", e.valid_up_to()),
            );
            return p;
        }
        let h = match parse_head(line) {
            Ok(h) => h,
            Err(w) => {
                fail(&mut p, None, w.to_string());
                return p;
            }
        };
        match p.last {
            Some((seq, hash)) => {
                if let Err((prev_altered, what)) = link(seq, &hash, h.seq, &h.prev) {
                    if prev_altered {
                        p.error = Some((idx - 1, Some(seq), what));
                    } else {
                        fail(&mut p, Some(h.seq), what);
                    }
                    return p;
                }
            }
            None => p.first = Some((h.seq, h.prev)),
        }
        if h.kind == RecordKind::Checkpoint {
            if let Err(what) = check_checkpoint(line, h.seq, &h.prev, key) {
                fail(&mut p, Some(h.seq), what);
                return p;
            }
            p.checkpoints += 1;
            p.last_checkpoint = Some(h.seq);
        } else if let Err(e) = RecordView::check(line) {
            fail(
                &mut p,
                Some(h.seq),
                format!("not a valid audit record: {e}"),
            );
            return p;
        }
        let hash = hash_line(line);
        if let Some(hub) = h.hub {
            if p.hubs.last().is_none_or(|last| last != hub) {
                p.hubs.push(hub.to_vec());
            }
        }
        if probes.contains(&h.seq) {
            p.probed.push((h.seq, hash));
        }
        for (seen, head) in p.head_seen.iter_mut().zip(heads) {
            if let Some((hs, hh)) = head {
                if hs == h.seq {
                    *seen = Some(if hh == hash { Ok(()) } else { Err(idx) });
                }
            }
        }
        p.last = Some((h.seq, hash));
        p.lines += 1;
        p.bytes += line.len() as u64 + 1;
        start = nl + 1;
    }
    p
}

/// Verifies `files` as one chain, oldest first. When the last file is `audit.jsonl`
/// and `audit.head` sits beside it, the head is checked too. With `key`, every
/// checkpoint (and the head) must carry a valid signature by it.
pub fn verify(files: &[PathBuf], key: Option<&VerifyingKey>) -> Result<VerifyReport, VerifyError> {
    verify_with_head(files, key, None)
}

/// [`verify`], and also against the head kept outside the log directory
/// (`AuditConfig::head_path`): that file must exist and be valid, and the log must
/// reach the seq it signed with that record unchanged, else records were cut off
/// the end.
pub fn verify_with_head(
    files: &[PathBuf],
    key: Option<&VerifyingKey>,
    outside_head: Option<&Path>,
) -> Result<VerifyReport, VerifyError> {
    verify_probing(files, key, outside_head, &[]).map(|(r, _)| r)
}

/// [`verify_with_head`] that also hands back the line hash of every record whose seq
/// is in `probes` (for the deployment checkpoint's heads, see `deployment.rs`).
pub(crate) fn verify_probing(
    files: &[PathBuf],
    key: Option<&VerifyingKey>,
    outside_head: Option<&Path>,
    probes: &[u64],
) -> Result<(VerifyReport, Vec<(u64, Hash)>), VerifyError> {
    let mut probed = Vec::new();
    let mut report = VerifyReport {
        files: files.len(),
        signatures_checked: key.is_some(),
        ..Default::default()
    };
    let head_path = files
        .last()
        .filter(|f| f.file_name().is_some_and(|n| n == CURRENT_FILE))
        .map(|f| f.with_file_name(HEAD_FILE))
        .filter(|p| p.exists());
    // [audit.head beside the log, the outside head]: (path, head, hash).
    let heads = [head_path.as_deref(), outside_head]
        .map(|p| p.map(|p| read_head(p, key).map(|(h, hash)| (p.to_path_buf(), h, hash))));
    let [in_dir, outside] = heads;
    let heads = [in_dir.transpose()?, outside.transpose()?];
    let head_anchor = [0, 1].map(|i| heads[i].as_ref().map(|(_, h, hash)| (h.seq, *hash)));
    let mut head_found = [false; 2];
    // (seq, hash, file index, line) of the last good record so far.
    let mut last: Option<(u64, Hash, usize, u64)> = None;
    for (fi, file) in files.iter().enumerate() {
        let mut line_base = 0u64;
        let mut file_bytes = 0u64;
        let mut failure: Option<VerifyError> = None;
        let partial = read_parts(
            file,
            |data| check_piece(data, key, head_anchor, probes),
            |piece| {
                if let Some((seq, prev)) = piece.first {
                    let link_err = match last {
                        Some((ls, lh, lfi, lline)) => {
                            link(ls, &lh, seq, &prev).err().map(|(prev_altered, what)| {
                                if prev_altered {
                                    VerifyError::at(&files[lfi], lline, Some(ls), what)
                                } else {
                                    VerifyError::at(file, line_base + 1, Some(seq), what)
                                }
                            })
                        }
                        None if seq == 1 && prev != GENESIS => Some(VerifyError::at(
                            file,
                            line_base + 1,
                            Some(seq),
                            "the first record must have an all-zero `prev`",
                        )),
                        None => None,
                    };
                    if let Some(e) = link_err {
                        failure = Some(e);
                        return false;
                    }
                    if report.first_seq.is_none() {
                        report.first_seq = Some(seq);
                    }
                }
                for (i, seen) in piece.head_seen.iter().enumerate() {
                    match seen {
                        Some(Ok(())) => head_found[i] = true,
                        Some(Err(idx)) => {
                            let name = heads[i]
                                .as_ref()
                                .map_or(String::new(), |h| head_name(i, &h.0));
                            failure = Some(VerifyError::at(
                                file,
                                line_base + idx + 1,
                                head_anchor[i].map(|h| h.0),
                                format!("record differs from the one {name} anchors: altered"),
                            ));
                            return false;
                        }
                        None => {}
                    }
                }
                for hub in &piece.hubs {
                    let hub = String::from_utf8_lossy(hub);
                    if !report.hubs.iter().any(|h| *h == hub) {
                        report.hubs.push(hub.into_owned());
                    }
                }
                probed.extend_from_slice(&piece.probed);
                report.records += piece.lines;
                report.bytes += piece.bytes;
                file_bytes += piece.bytes;
                report.checkpoints += piece.checkpoints;
                if piece.last_checkpoint.is_some() {
                    report.last_checkpoint_seq = piece.last_checkpoint;
                }
                if let Some((seq, hash)) = piece.last {
                    last = Some((seq, hash, fi, line_base + piece.lines));
                }
                if let Some((idx, seq, what)) = piece.error {
                    failure = Some(VerifyError::at(file, line_base + idx + 1, seq, what));
                    return false;
                }
                line_base += piece.lines;
                true
            },
        )
        .map_err(|e| VerifyError::file(file, e.to_string()))?;
        if let Some(e) = failure {
            return Err(e);
        }
        if partial > 0 && fi + 1 == files.len() && still_growing(file, file_bytes + partial) {
            // A running hub is writing this line right now.
            report.in_progress_bytes = partial;
        } else if partial > 0 {
            return Err(VerifyError::at(
                file,
                line_base + 1,
                None,
                format!("last line is cut off ({partial} bytes, no newline): truncated mid-line"),
            ));
        }
    }
    report.last_seq = last.map(|l| l.0);
    report.unanchored_tail = match (report.last_seq, report.last_checkpoint_seq) {
        (Some(l), Some(c)) => l - c,
        (Some(_), None) => report.records,
        _ => 0,
    };
    let ends = report.last_seq.unwrap_or(0);
    let starts = report.first_seq.unwrap_or(1);
    let file = files.last().map(PathBuf::as_path);
    for (i, head) in heads.iter().enumerate() {
        let Some((hp, h, _)) = head else {
            continue;
        };
        let file = file.unwrap_or(hp);
        if ends < h.seq {
            let what = if i == 0 {
                format!(
                    "truncated: {HEAD_FILE} names the checkpoint at seq {} (written {}) but the log ends at seq {ends}: records were cut off the end",
                    h.seq, h.time
                )
            } else {
                format!(
                    "truncated: log ends at seq {ends} but the head file {} signed seq {} (written {}): records were cut off the end",
                    hp.display(),
                    h.seq,
                    h.time
                )
            };
            return Err(VerifyError::file(file, what));
        }
        if h.seq >= starts && !head_found[i] {
            return Err(VerifyError::file(
                file,
                format!(
                    "{} names seq {} which was not found",
                    head_name(i, hp),
                    h.seq
                ),
            ));
        }
    }
    report.head_checked = heads[0].is_some() && head_found[0];
    report.outside_head_checked = heads[1].is_some() && head_found[1];
    Ok((report, probed))
}

/// How an error names head `i`: `audit.head`, or the outside head file by path.
fn head_name(i: usize, path: &Path) -> String {
    if i == 0 {
        HEAD_FILE.to_string()
    } else {
        format!("the head file {}", path.display())
    }
}

/// True if `file` grows past `seen` bytes within a moment: the unfinished last line is
/// a write in progress, not a cut.
fn still_growing(file: &Path, seen: u64) -> bool {
    for _ in 0..10 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        if std::fs::metadata(file).is_ok_and(|m| m.len() > seen) {
            return true;
        }
    }
    false
}

/// Verifies every file of the log in `dir` (see [`audit_files`]).
pub fn verify_dir(dir: &Path, key: Option<&VerifyingKey>) -> Result<VerifyReport, VerifyError> {
    verify_dir_with_head(dir, key, None)
}

/// [`verify_dir`], and against the outside head (see [`verify_with_head`]).
pub fn verify_dir_with_head(
    dir: &Path,
    key: Option<&VerifyingKey>,
    outside_head: Option<&Path>,
) -> Result<VerifyReport, VerifyError> {
    let files = audit_files(dir).map_err(|e| VerifyError::file(dir, e.to_string()))?;
    if files.is_empty() {
        return Err(VerifyError::file(dir, "no audit files here"));
    }
    verify_with_head(&files, key, outside_head)
}

/// UTF-8 check with a fast path for the usual all-ASCII line.
fn utf8(line: &[u8]) -> Result<(), std::str::Utf8Error> {
    if line.is_ascii() {
        Ok(())
    } else {
        std::str::from_utf8(line).map(|_| ())
    }
}
