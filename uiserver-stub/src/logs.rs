//! Job logs: byte-range reads, search, and the safe way to open a file under a run dir.
//!
//! Every open goes through [`open_in_run_dir`]: the path is canonicalised (resolving
//! every symlink) and must stay under the canonical run directory, and the final open
//! uses `O_NOFOLLOW`, so neither `..` nor a planted symlink reaches outside. Search
//! walks the `log/job` tree without following symlinks and reads each file in 1 MiB
//! chunks, line by line; nothing is ever loaded whole.

use crate::wire::{LogFile, SearchMatch, SearchResult};
use regex::bytes::{Regex, RegexBuilder};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Largest byte range one `/api/log` call returns.
pub const MAX_RANGE: u64 = 1024 * 1024;
/// Default and largest number of search matches.
pub const DEFAULT_MAX_MATCHES: usize = 100;
pub const MAX_MATCHES: usize = 1000;
/// A matching line is cut to this many bytes in the result.
pub const MAX_LINE_TEXT: usize = 1000;
const CHUNK: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Io(String),
}

/// Opens `rel` (relative, no `..`) under `run_dir`, refusing anything that resolves
/// outside it or is not a regular file.
pub fn open_in_run_dir(run_dir: &Path, rel: &Path) -> Result<File, LogError> {
    if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(LogError::Forbidden(format!(
            "{}: only plain relative paths inside the run directory are allowed",
            rel.display()
        )));
    }
    let root = run_dir.canonicalize().map_err(|_| {
        LogError::NotFound("the workflow has no run directory (never played?)".into())
    })?;
    let joined = root.join(rel);
    let canon = joined.canonicalize().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            LogError::NotFound(format!("{} does not exist", rel.display()))
        }
        _ => LogError::Io(format!("{}: {e}", rel.display())),
    })?;
    if !canon.starts_with(&root) {
        return Err(LogError::Forbidden(format!(
            "{} resolves outside the workflow's run directory",
            rel.display()
        )));
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(&canon)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => LogError::Forbidden(format!("{} is a symlink", rel.display())),
            _ => LogError::Io(format!("{}: {e}", rel.display())),
        })?;
    let meta = f
        .metadata()
        .map_err(|e| LogError::Io(format!("{}: {e}", rel.display())))?;
    if !meta.is_file() {
        return Err(LogError::Forbidden(format!(
            "{} is not a regular file",
            rel.display()
        )));
    }
    Ok(f)
}

/// Reads at most `len` bytes at `offset`; returns the bytes and the file's size.
pub fn read_range(f: &File, offset: u64, len: u64) -> Result<(Vec<u8>, u64), LogError> {
    let size = f.metadata().map_err(|e| LogError::Io(e.to_string()))?.len();
    if offset >= size {
        return Ok((Vec::new(), size));
    }
    let want = len.min(MAX_RANGE).min(size - offset) as usize;
    let mut buf = vec![0u8; want];
    let mut got = 0;
    while got < want {
        let n = f
            .read_at(&mut buf[got..], offset + got as u64)
            .map_err(|e| LogError::Io(e.to_string()))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok((buf, size))
}

#[derive(Debug, Clone)]
pub struct SearchParams {
    pub query: String,
    pub regex: bool,
    pub case_insensitive: bool,
    pub max: usize,
}

pub fn build_regex(p: &SearchParams) -> Result<Regex, LogError> {
    if p.query.is_empty() {
        return Err(LogError::BadRequest("q is empty".into()));
    }
    if p.query.len() > 1000 {
        return Err(LogError::BadRequest("q is longer than 1000 bytes".into()));
    }
    let pattern = if p.regex {
        p.query.clone()
    } else {
        regex::escape(&p.query)
    };
    RegexBuilder::new(&pattern)
        .case_insensitive(p.case_insensitive)
        .multi_line(true)
        .size_limit(4 * 1024 * 1024)
        .build()
        .map_err(|e| LogError::BadRequest(format!("invalid regex: {e}")))
}

/// Searches every job log of the workflow whose run dir is `run_dir`.
pub fn search(run_dir: &Path, p: &SearchParams) -> Result<SearchResult, LogError> {
    let re = build_regex(p)?;
    let max = p.max.clamp(1, MAX_MATCHES);
    let mut result = SearchResult {
        matches: Vec::new(),
        truncated: false,
        files_scanned: 0,
        bytes_scanned: 0,
    };
    let Ok(root) = run_dir.canonicalize() else {
        return Ok(result); // never played: nothing to search
    };
    let mut files = Vec::new();
    collect_job_logs(
        &root.join("log").join("job"),
        PathBuf::from("log/job"),
        0,
        &mut files,
    );
    files.sort();
    let mut buf = vec![0u8; CHUNK];
    for rel in files {
        let comps: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        // log/job/<cycle>/<task>/<NN>/<file>
        let [_, _, cycle, task, nn, fname] = comps.as_slice() else {
            continue;
        };
        let (Ok(job), Some(stream)) = (nn.parse::<u32>(), LogFile::parse(fname)) else {
            continue;
        };
        let Ok(f) = open_in_run_dir(&root, &rel) else {
            continue;
        };
        result.files_scanned += 1;
        let file_str = rel.to_string_lossy().into_owned();
        let stream_name = match stream {
            LogFile::Out => "out",
            LogFile::Err => "err",
            LogFile::Status => "status",
            LogFile::Activity => "activity",
        };
        let remaining = max + 1 - result.matches.len();
        let mut on_match = |line: u64, text: &[u8]| {
            let cut = &text[..text.len().min(MAX_LINE_TEXT)];
            result.matches.push(SearchMatch {
                file: file_str.clone(),
                cycle: cycle.clone(),
                task: task.clone(),
                job,
                stream: stream_name.to_string(),
                line,
                text: String::from_utf8_lossy(cut).into_owned(),
            });
        };
        let scanned = search_reader(f, &re, remaining, &mut buf, &mut on_match)
            .map_err(|e| LogError::Io(format!("{file_str}: {e}")))?;
        result.bytes_scanned += scanned;
        if result.matches.len() > max {
            result.matches.truncate(max);
            result.truncated = true;
            break;
        }
    }
    Ok(result)
}

/// Regular files under `dir` (no symlinks followed), as paths relative to the run dir.
fn collect_job_logs(dir: &Path, rel: PathBuf, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let name = e.file_name();
        if ft.is_dir() && depth < 3 {
            collect_job_logs(&e.path(), rel.join(&name), depth + 1, out);
        } else if ft.is_file() && depth == 3 {
            out.push(rel.join(&name));
        }
    }
}

/// Streams `r` in chunks, calling `on_match(line_number, line)` for each line that
/// matches (once per line), stopping after `limit` matches. Returns bytes read.
pub fn search_reader(
    mut r: impl Read,
    re: &Regex,
    limit: usize,
    buf: &mut Vec<u8>,
    on_match: &mut dyn FnMut(u64, &[u8]),
) -> std::io::Result<u64> {
    let mut filled = 0usize; // bytes in buf (carry + new)
    let mut line_no = 1u64; // line number of buf[0]
    let mut total = 0u64;
    let mut found = 0usize;
    loop {
        if filled == buf.len() {
            // A line longer than the buffer: search what we have as one piece.
            buf.resize(buf.len() * 2, 0);
        }
        let n = loop {
            match r.read(&mut buf[filled..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        total += n as u64;
        filled += n;
        let eof = n == 0;
        let end = if eof {
            filled
        } else {
            match memchr::memrchr(b'\n', &buf[..filled]) {
                Some(i) => i + 1,
                None if filled >= 8 * CHUNK => filled,
                None => continue,
            }
        };
        let region = &buf[..end];
        let mut pos = 0;
        let mut counted = 0;
        while pos < region.len() {
            let Some(m) = re.find_at(region, pos) else {
                break;
            };
            let ls = memchr::memrchr(b'\n', &region[..m.start()]).map_or(0, |i| i + 1);
            let ls = ls.max(pos);
            let le =
                memchr::memchr(b'\n', &region[m.start()..]).map_or(region.len(), |i| m.start() + i);
            let line = &region[ls..le];
            if m.end() > le && !re.is_match(line) {
                // The match ran across a line break; lines are matched one at a time.
                pos = le + 1;
                continue;
            }
            line_no += memchr::memchr_iter(b'\n', &region[counted..ls]).count() as u64;
            counted = ls;
            on_match(line_no, line.strip_suffix(b"\r").unwrap_or(line));
            found += 1;
            if found >= limit {
                return Ok(total);
            }
            pos = le + 1;
        }
        line_no += memchr::memchr_iter(b'\n', &region[counted..end]).count() as u64;
        buf.copy_within(end..filled, 0);
        filled -= end;
        if eof {
            return Ok(total);
        }
        if buf.len() > CHUNK && filled < CHUNK {
            buf.truncate(CHUNK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, q: &str, regex: bool, ci: bool) -> Vec<(u64, String)> {
        let re = build_regex(&SearchParams {
            query: q.into(),
            regex,
            case_insensitive: ci,
            max: 100,
        })
        .unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8]; // tiny buffer: exercises carry-over and growth
        search_reader(text.as_bytes(), &re, 100, &mut buf, &mut |l, t| {
            out.push((l, String::from_utf8_lossy(t).into_owned()))
        })
        .unwrap();
        out
    }

    #[test]
    fn finds_lines_and_numbers() {
        let text = "alpha\nbeta gamma\n\nGAMMA ray\nlast gamma";
        assert_eq!(
            run(text, "gamma", false, false),
            vec![(2, "beta gamma".into()), (5, "last gamma".into())]
        );
        assert_eq!(run(text, "gamma", false, true).len(), 3);
        assert_eq!(
            run(text, "^be.a", true, false),
            vec![(2, "beta gamma".into())]
        );
        assert_eq!(run(text, "a.b", false, false), vec![]);
        assert_eq!(run(text, "a\\sb", true, false), vec![]);
    }

    #[test]
    fn one_match_per_line() {
        assert_eq!(run("aaa\naa\n", "a", false, false).len(), 2);
    }
}
