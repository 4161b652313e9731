//! Reading chain files fast: which files make up a log, and a chunked reader that
//! hands runs of complete lines to all cores and gives the results back in file order.
//!
//! Hand-written rather than rayon: the whole need is "split a buffer at newlines,
//! run one closure per piece on scoped threads", which std covers in a page.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::CURRENT_FILE;

/// Bytes read at a time.
const BLOCK: usize = 4 << 20;
/// Work is handed out in pieces of about this size, so a thread that the scheduler
/// parks does not hold up the others for long.
const PIECE: usize = 512 << 10;
/// Rotated files `audit-<first seq>.jsonl`, in chain order.
pub(crate) fn rotated_files(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(num) = name
            .strip_prefix("audit-")
            .and_then(|r| r.strip_suffix(".jsonl"))
        else {
            continue;
        };
        if let Ok(seq) = num.parse::<u64>() {
            out.push((seq, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Every chain file of the log in `dir`, oldest first: the rotated files by their
/// first sequence number, then `audit.jsonl`.
pub fn audit_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = rotated_files(dir)?.into_iter().map(|(_, p)| p).collect();
    let current = dir.join(CURRENT_FILE);
    if current.exists() {
        files.push(current);
    }
    Ok(files)
}

pub(crate) fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
}

fn fill(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Splits `data` (complete lines) into pieces of about `size` bytes at newlines.
fn split_lines(data: &[u8], size: usize) -> Vec<std::ops::Range<usize>> {
    let mut parts = Vec::with_capacity(data.len() / size.max(1) + 1);
    let mut start = 0;
    while start < data.len() {
        let target = start + size;
        let end = if target >= data.len() {
            data.len()
        } else {
            match memchr::memchr(b'\n', &data[target..]) {
                Some(p) => target + p + 1,
                None => data.len(),
            }
        };
        parts.push(start..end);
        start = end;
    }
    parts
}

/// Reads `path`, hands runs of complete lines to `work` on all cores, and each
/// result to `sink` in file order; `sink` returns false to stop early. Returns the
/// number of bytes after the last newline (an unfinished last line), which are not
/// handed to `work`.
///
/// One thread reads; the workers take pieces as they come (so a descheduled worker
/// delays only its own piece); the calling thread puts results back in order.
pub(crate) fn read_parts<R, W, S>(path: &Path, work: W, mut sink: S) -> io::Result<u64>
where
    R: Send,
    W: Fn(&[u8]) -> R + Sync,
    S: FnMut(R) -> bool,
{
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc, Mutex};

    let mut file = File::open(path)?;
    let nworkers = threads();
    let stop = AtomicBool::new(false);
    type Piece = (usize, Arc<Vec<u8>>, std::ops::Range<usize>);
    let (piece_tx, piece_rx) = mpsc::sync_channel::<Piece>(4 * nworkers + 8);
    let piece_rx = Mutex::new(piece_rx);
    let (res_tx, res_rx) = mpsc::channel::<(usize, R)>();
    std::thread::scope(|s| {
        let reader = s.spawn(|| -> io::Result<u64> {
            let piece_tx = piece_tx;
            let mut carry: Vec<u8> = Vec::new();
            let mut index = 0usize;
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Ok(0);
                }
                let mut buf = std::mem::take(&mut carry);
                let have = buf.len();
                buf.resize(have + BLOCK, 0);
                let n = fill(&mut file, &mut buf[have..])?;
                buf.truncate(have + n);
                let eof = n == 0;
                let complete = match memchr::memrchr(b'\n', &buf) {
                    Some(p) => p + 1,
                    None if eof => return Ok(buf.len() as u64),
                    None => {
                        carry = buf;
                        continue;
                    }
                };
                carry = buf[complete..].to_vec();
                buf.truncate(complete);
                let buf = Arc::new(buf);
                for range in split_lines(&buf, PIECE) {
                    if piece_tx.send((index, buf.clone(), range)).is_err() {
                        return Ok(0);
                    }
                    index += 1;
                }
                if eof {
                    return Ok(carry.len() as u64);
                }
            }
        });
        for _ in 0..nworkers {
            let res_tx = res_tx.clone();
            let (piece_rx, work, stop) = (&piece_rx, &work, &stop);
            s.spawn(move || loop {
                let next = piece_rx.lock().map(|rx| rx.recv());
                let Ok(Ok((i, buf, range))) = next else {
                    return;
                };
                if stop.load(Ordering::Relaxed) {
                    continue;
                }
                if res_tx.send((i, work(&buf[range]))).is_err() {
                    return;
                }
            });
        }
        drop(res_tx);
        let mut pending = BTreeMap::new();
        let mut next = 0usize;
        for (i, r) in res_rx.iter() {
            if stop.load(Ordering::Relaxed) {
                continue;
            }
            pending.insert(i, r);
            while let Some(r) = pending.remove(&next) {
                next += 1;
                if !sink(r) {
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
        let partial = reader
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        Ok(if stop.load(Ordering::Relaxed) {
            0
        } else {
            partial
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_lines_whole() {
        let data = b"a\nbb\nccc\ndddd\n";
        for n in 1..20 {
            let parts: Vec<&[u8]> = split_lines(data, n).into_iter().map(|r| &data[r]).collect();
            assert_eq!(parts.concat(), data.to_vec());
            assert!(parts.iter().all(|p| p.ends_with(b"\n")));
        }
    }

    #[test]
    fn pieces_come_back_in_order_with_the_partial_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut data = Vec::new();
        for i in 0..300_000u32 {
            data.extend_from_slice(format!("{i}\n").as_bytes());
        }
        data.extend_from_slice(b"tail");
        std::fs::write(&path, &data).unwrap();
        let mut seen = Vec::new();
        let partial = read_parts(
            &path,
            |p| p.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count(),
            |n| {
                seen.push(n);
                true
            },
        )
        .unwrap();
        assert_eq!(partial, 4);
        assert_eq!(seen.iter().sum::<usize>(), 300_000);
        let mut stopped = 0;
        read_parts(
            &path,
            |_| (),
            |_| {
                stopped += 1;
                stopped < 2
            },
        )
        .unwrap();
        assert_eq!(stopped, 2);
    }
}
