//! What `AuditLog::open` learns from the files already on disk: where the chain
//! continues (next `seq`, hash of the last line), whether a crash left an unfinished
//! line, and which intents never got an outcome.

use crate::chain::{hash_line, parse_head, Anchor, Hash, GENESIS};
use crate::error::AuditError;
use crate::record::{AuditRecord, RecordKind};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// What a scan of one chain file found.
#[derive(Debug, Default)]
pub(crate) struct FileScan {
    /// (seq, hash) of the last complete line.
    pub last: Option<(u64, Hash)>,
    pub first_seq: Option<u64>,
    pub first_time: Option<String>,
    /// Length up to and including the last newline.
    pub valid_len: u64,
    /// Bytes after the last newline (an unfinished write).
    pub partial: u64,
    /// Records after the last checkpoint in this file (all records if none).
    pub since_checkpoint: u64,
}

/// Open intents: seq → the intent record when we have read it.
pub(crate) type OpenIntents = BTreeMap<u64, Option<AuditRecord>>;

fn corrupt(path: &Path, line: u64, what: impl Into<String>) -> AuditError {
    AuditError::Corrupt {
        file: path.to_path_buf(),
        line,
        what: what.into(),
    }
}

/// Reads a chain file line by line, updating `open` (intents add, outcomes remove,
/// checkpoints replace the set with the one they carry).
pub(crate) fn scan_file(path: &Path, open: &mut OpenIntents) -> Result<FileScan, AuditError> {
    let file = File::open(path).map_err(|e| AuditError::io(path, &e))?;
    let mut rd = BufReader::with_capacity(1 << 20, file);
    let mut scan = FileScan::default();
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = rd
            .read_until(b'\n', &mut buf)
            .map_err(|e| AuditError::io(path, &e))?;
        if n == 0 {
            break;
        }
        if buf.last() != Some(&b'\n') {
            scan.partial = n as u64;
            break;
        }
        line_no += 1;
        let line = &buf[..buf.len() - 1];
        let head = parse_head(line).map_err(|w| corrupt(path, line_no, w))?;
        if let Some((seq, _)) = scan.last {
            if head.seq != seq + 1 {
                return Err(corrupt(
                    path,
                    line_no,
                    format!(
                        "sequence {} follows {seq}; run `steward audit verify`",
                        head.seq
                    ),
                ));
            }
        }
        if scan.first_seq.is_none() {
            scan.first_seq = Some(head.seq);
            scan.first_time = Some(String::from_utf8_lossy(head.time).into_owned());
        }
        scan.last = Some((head.seq, hash_line(line)));
        scan.valid_len += n as u64;
        scan.since_checkpoint += 1;
        match head.kind {
            RecordKind::Event => {}
            kind => {
                let rec = AuditRecord::from_line(line).map_err(|e| {
                    corrupt(path, line_no, format!("not a valid audit record: {e}"))
                })?;
                match kind {
                    RecordKind::Intent => {
                        open.insert(rec.seq, Some(rec));
                    }
                    RecordKind::Outcome => {
                        if let Some(i) = rec.intent_seq {
                            open.remove(&i);
                        }
                    }
                    _ => {
                        scan.since_checkpoint = 0;
                        let listed: Vec<u64> = rec
                            .extra
                            .get("open_intents")
                            .and_then(|v| serde_json::from_value(v.clone()).ok())
                            .unwrap_or_default();
                        let mut next = OpenIntents::new();
                        for s in listed {
                            next.insert(s, open.remove(&s).flatten());
                        }
                        *open = next;
                    }
                }
            }
        }
    }
    Ok(scan)
}

/// Finds the record with `seq` in the rotated files (each named by its first seq).
pub(crate) fn find_record(rotated: &[(u64, PathBuf)], seq: u64) -> Option<AuditRecord> {
    let (_, path) = rotated.iter().rev().find(|(first, _)| *first <= seq)?;
    find_line(path, seq).and_then(|line| AuditRecord::from_line(&line).ok())
}

/// The line of record `seq` in one chain file.
fn find_line(path: &Path, seq: u64) -> Option<Vec<u8>> {
    let file = File::open(path).ok()?;
    let needle = format!("{{\"seq\":{seq},");
    for line in BufReader::new(file).split(b'\n') {
        let line = line.ok()?;
        if line.starts_with(needle.as_bytes()) {
            return Some(line);
        }
    }
    None
}

/// The line hash of record `seq`, in the current file or the rotated one that holds
/// it; `None` when no file has it (pruned).
pub(crate) fn find_line_hash(rotated: &[(u64, PathBuf)], current: &Path, seq: u64) -> Option<Hash> {
    find_line(current, seq)
        .or_else(|| {
            let (_, path) = rotated.iter().rev().find(|(first, _)| *first <= seq)?;
            find_line(path, seq)
        })
        .map(|l| hash_line(&l))
}

/// Where the chain continues after the files on disk.
pub(crate) fn continuation(scan: Option<&FileScan>) -> (u64, Hash) {
    match scan.and_then(|s| s.last) {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS),
    }
}

/// Removes bytes after the last newline; returns how many were removed.
pub(crate) fn trim_partial_tail(file: &mut File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk[..n])?;
        if let Some(pos) = memchr::memrchr(b'\n', &chunk[..n]) {
            let keep = start + pos as u64 + 1;
            if keep < len {
                file.set_len(keep)?;
                file.sync_data()?;
            }
            return Ok(len - keep);
        }
        end = start;
    }
    if len > 0 {
        file.set_len(0)?;
        file.sync_data()?;
    }
    Ok(len)
}

/// The anchor a checkpoint record carries.
pub(crate) fn anchor_of(rec: &AuditRecord) -> Option<Anchor> {
    serde_json::from_value(serde_json::Value::Object(
        rec.extra
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    ))
    .ok()
}
