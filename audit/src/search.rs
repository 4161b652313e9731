//! `steward audit search` and the hub's audit API: records matching a filter.
//!
//! Fast path: a record matches `actor = bob` only if its canonical line contains
//! `"actor":"bob"` byte for byte, so each line is first tested with a substring search
//! (memchr's memmem) for every field filter, and the time range is compared on the raw
//! fixed-width `time` prefix. Only candidate lines are decoded and checked exactly.
//! Every line is still checked for UTF-8 and the canonical prefix, so garbage is
//! reported as `file:line` whether or not it would have matched.

use crate::chain::parse_head;
use crate::error::AuditError;
use crate::record::{format_time, AuditRecord, Decision, RecordKind};
use crate::scan::{audit_files, read_parts};
use chrono::{DateTime, Utc};
use memchr::memmem::Finder;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::Path;

/// Which records to return. Every set field must match exactly; `since` is
/// inclusive and `until` exclusive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchFilter {
    pub actor: Option<String>,
    pub owner: Option<String>,
    pub workflow: Option<String>,
    pub op: Option<String>,
    pub decision: Option<Decision>,
    pub event: Option<String>,
    pub kind: Option<RecordKind>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// At most this many records.
    pub limit: Option<usize>,
    /// Newest first (with `limit`: the newest `limit` records). Default: oldest first.
    #[serde(default)]
    pub newest_first: bool,
}

impl SearchFilter {
    /// True if `rec` passes every field of the filter (not `limit`).
    pub fn matches(&self, rec: &AuditRecord) -> bool {
        fn eq(want: &Option<String>, have: Option<&str>) -> bool {
            want.as_deref().is_none_or(|w| have == Some(w))
        }
        eq(&self.actor, Some(&rec.actor))
            && eq(&self.owner, rec.owner.as_deref())
            && eq(&self.workflow, rec.workflow.as_deref())
            && eq(&self.op, rec.op.as_deref())
            && eq(&self.event, Some(&rec.event))
            && self.decision.is_none_or(|d| rec.decision == Some(d))
            && self.kind.is_none_or(|k| rec.kind == k)
            && self
                .since
                .is_none_or(|s| rec.time.as_str() >= format_time(s).as_str())
            && self
                .until
                .is_none_or(|u| rec.time.as_str() < format_time(u).as_str())
    }
}

/// The filter turned into byte tests.
struct Compiled<'f> {
    filter: &'f SearchFilter,
    needles: Vec<Finder<'static>>,
    since: Option<String>,
    until: Option<String>,
}

impl<'f> Compiled<'f> {
    fn new(filter: &'f SearchFilter) -> Compiled<'f> {
        let mut needles = Vec::new();
        let mut add = |field: &str, value: &Option<String>| {
            if let Some(v) = value {
                let json = serde_json::to_string(v).unwrap_or_default();
                needles.push(Finder::new(format!("\"{field}\":{json}").as_bytes()).into_owned());
            }
        };
        add("actor", &filter.actor);
        add("owner", &filter.owner);
        add("workflow", &filter.workflow);
        add("op", &filter.op);
        add("event", &filter.event);
        add("decision", &filter.decision.map(|d| d.name().to_string()));
        Compiled {
            filter,
            needles,
            since: filter.since.map(format_time),
            until: filter.until.map(format_time),
        }
    }
}

#[derive(Default)]
struct Piece {
    lines: u64,
    found: Vec<AuditRecord>,
    error: Option<(u64, String)>,
}

fn search_piece(data: &[u8], c: &Compiled<'_>, cap: Option<usize>) -> Piece {
    let mut p = Piece::default();
    let mut start = 0usize;
    for nl in memchr::memchr_iter(b'\n', data) {
        let line = &data[start..nl];
        start = nl + 1;
        let idx = p.lines;
        p.lines += 1;
        if let Err(e) = utf8(line) {
            p.error = Some((
                idx,
                format!("not valid UTF-8 (at byte {} of the line)", e.valid_up_to()),
            ));
            return p;
        }
        let head = match parse_head(line) {
            Ok(h) => h,
            Err(w) => {
                p.error = Some((idx, w.to_string()));
                return p;
            }
        };
        if c.since.as_ref().is_some_and(|s| head.time < s.as_bytes())
            || c.until.as_ref().is_some_and(|u| head.time >= u.as_bytes())
            || c.filter.kind.is_some_and(|k| k != head.kind)
            || !c.needles.iter().all(|f| f.find(line).is_some())
        {
            continue;
        }
        match AuditRecord::from_line(line) {
            Ok(rec) => {
                if c.filter.matches(&rec) {
                    p.found.push(rec);
                    // Oldest first: a piece never needs more than `limit` matches.
                    if cap.is_some_and(|n| p.found.len() >= n) {
                        // Lines after this are not examined; count them anyway so
                        // line numbers of later pieces stay right.
                        p.lines += memchr::memchr_iter(b'\n', &data[start..]).count() as u64;
                        return p;
                    }
                }
            }
            Err(e) => {
                p.error = Some((idx, format!("not a valid audit record: {e}")));
                return p;
            }
        }
    }
    p
}

/// Streams the records of one file matching `filter`, oldest first; `each` returns
/// false to stop. Returns false if stopped.
fn search_file(
    file: &Path,
    c: &Compiled<'_>,
    cap: Option<usize>,
    each: &mut dyn FnMut(AuditRecord) -> bool,
) -> Result<bool, AuditError> {
    let mut line_base = 0u64;
    let mut failure = None;
    let mut go_on = true;
    read_parts(
        file,
        |data| search_piece(data, c, cap),
        |piece| {
            for rec in piece.found {
                if !each(rec) {
                    go_on = false;
                    return false;
                }
            }
            if let Some((idx, what)) = piece.error {
                failure = Some(AuditError::Corrupt {
                    file: file.to_path_buf(),
                    line: line_base + idx + 1,
                    what,
                });
                return false;
            }
            line_base += piece.lines;
            true
        },
    )
    .map_err(|e| AuditError::io(file, &e))?;
    // An unfinished last line is a write in progress (or a crash the next open
    // repairs); it is not a record yet, so search skips it.
    match failure {
        Some(e) => Err(e),
        None => Ok(go_on),
    }
}

/// Calls `each` for every matching record in the log in `dir`, oldest first, until
/// it returns false (or `limit` is reached). For large results: nothing is collected.
pub fn search_each(
    dir: &Path,
    filter: &SearchFilter,
    mut each: impl FnMut(AuditRecord) -> bool,
) -> Result<(), AuditError> {
    let files = audit_files(dir).map_err(|e| AuditError::io(dir, &e))?;
    let c = Compiled::new(filter);
    let mut left = filter.limit;
    let mut f = |rec: AuditRecord| -> bool {
        if left == Some(0) {
            return false;
        }
        if let Some(n) = &mut left {
            *n -= 1;
        }
        each(rec) && left != Some(0)
    };
    for file in &files {
        if !search_file(file, &c, filter.limit, &mut f)? {
            break;
        }
    }
    Ok(())
}

/// The records of the log in `dir` that match `filter`, oldest first, or newest
/// first with `filter.newest_first` (then only as many files as needed are read).
pub fn search(dir: &Path, filter: &SearchFilter) -> Result<Vec<AuditRecord>, AuditError> {
    if filter.limit == Some(0) {
        return Ok(Vec::new());
    }
    if !filter.newest_first {
        let mut out = Vec::new();
        search_each(dir, filter, |r| {
            out.push(r);
            true
        })?;
        return Ok(out);
    }
    let files = audit_files(dir).map_err(|e| AuditError::io(dir, &e))?;
    let c = Compiled::new(filter);
    let mut out: Vec<AuditRecord> = Vec::new();
    for file in files.iter().rev() {
        let want = filter.limit.map(|n| n - out.len());
        let mut ring: VecDeque<AuditRecord> = VecDeque::new();
        search_file(file, &c, None, &mut |rec| {
            if want.is_some_and(|n| ring.len() == n) {
                ring.pop_front();
            }
            ring.push_back(rec);
            true
        })?;
        out.extend(ring.into_iter().rev());
        if filter.limit.is_some_and(|n| out.len() >= n) {
            break;
        }
    }
    Ok(out)
}

/// UTF-8 check with a fast path for the usual all-ASCII line.
fn utf8(line: &[u8]) -> Result<(), std::str::Utf8Error> {
    if line.is_ascii() {
        Ok(())
    } else {
        std::str::from_utf8(line).map(|_| ())
    }
}
