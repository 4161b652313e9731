//! `verify` against every kind of tampering: edit, delete, insert, swap, tail cut,
//! mid-line cut, forged signature, a full rewrite with recomputed hashes, broken
//! rotation, garbage — and a property test that no single-byte change or cut of a
//! closed log passes.

mod common;

use common::*;
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use steward_audit::{
    events, search, verify, verify_dir, AuditConfig, AuditLog, AuditRecord, SearchFilter,
    VerifyError, CURRENT_FILE, HEAD_FILE,
};

/// A closed log: 30 records by bob, a signed checkpoint every 5 (written once, copied
/// for each test).
fn fixture() -> tempfile::TempDir {
    static MASTER: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let master = MASTER.get_or_init(build_fixture);
    copy_dir(master.path()).0
}

fn build_fixture() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let log = AuditLog::open(cfg(t.path())).unwrap();
    for k in 0..15 {
        let i = intent("bob", k);
        let s = log.append_blocking(i.clone()).unwrap();
        log.append_blocking(outcome(&i, s)).unwrap();
    }
    drop(log);
    t
}

fn check(dir: &Path) -> Result<steward_audit::VerifyReport, VerifyError> {
    verify_dir(dir, Some(&key().verifying_key()))
}

fn tampered(edit: impl FnOnce(&mut Vec<String>)) -> (tempfile::TempDir, VerifyError) {
    let t = fixture();
    let (copy, dir) = copy_dir(t.path());
    let path = dir.join(CURRENT_FILE);
    let mut l = lines(&path);
    edit(&mut l);
    write_lines(&path, &l);
    let e = check(&dir).expect_err("tampering not detected");
    assert!(e.file.ends_with(CURRENT_FILE), "{e}");
    (copy, e)
}

#[test]
fn intact_log_verifies() {
    let t = fixture();
    let r = check(t.path()).unwrap();
    // 30 records, a checkpoint after every 5 (the last one also ends the log).
    assert_eq!(r.records, 36);
    assert_eq!(r.checkpoints, 6);
    assert!(r.signatures_checked && r.head_checked);
    assert_eq!(r.unanchored_tail, 0);
}

#[test]
fn edited_field_is_reported_at_its_line() {
    let (_t, e) = tampered(|l| l[9] = l[9].replace("\"actor\":\"bob\"", "\"actor\":\"eve\""));
    assert_eq!(e.line, Some(10), "{e}");
    assert!(e.what.contains("altered"), "{e}");
}

#[test]
fn deleted_line_is_reported() {
    let (_t, e) = tampered(|l| {
        l.remove(9);
    });
    assert_eq!(e.line, Some(10), "{e}");
    assert!(e.what.contains("deleted"), "{e}");
}

#[test]
fn inserted_line_is_reported() {
    // A replayed old line.
    let (_t, e) = tampered(|l| {
        let dup = l[2].clone();
        l.insert(9, dup);
    });
    assert_eq!(e.line, Some(10), "{e}");
    // A well-formed forgery with the right seq and prev: the record after it breaks.
    let (_t, e) = tampered(|l| {
        let prev = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(l[8].as_bytes()));
        let forged = AuditRecord {
            seq: 10,
            prev,
            time: "2026-01-01T00:00:00.000000Z".into(),
            ..event(events::LOGIN, "mallory")
        };
        l.insert(9, String::from_utf8(forged.to_line()).unwrap());
    });
    assert_eq!(e.line, Some(11), "{e}");
    assert!(e.what.contains("goes back"), "{e}");
}

#[test]
fn swapped_lines_are_reported() {
    let (_t, e) = tampered(|l| l.swap(9, 10));
    assert_eq!(e.line, Some(10), "{e}");
}

#[test]
fn cut_tail_is_detected_through_the_head() {
    for cut in [1, 3, 8] {
        let (_t, e) = tampered(|l| l.truncate(l.len() - cut));
        assert!(e.what.contains("truncated"), "{e}");
    }
}

#[test]
fn cut_mid_line_is_detected() {
    let t = fixture();
    let (_c, dir) = copy_dir(t.path());
    let path = dir.join(CURRENT_FILE);
    let len = std::fs::metadata(&path).unwrap().len();
    for cut in [len - 1, len - 40, len / 2] {
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(cut).unwrap();
        let e = check(&dir).unwrap_err();
        assert!(e.what.contains("cut off"), "{e}");
        assert!(e.line.is_some());
    }
}

#[test]
fn forged_checkpoint_signature_is_detected() {
    let other = other_key();
    let (_t, e) = tampered(|l| {
        let i = l
            .iter()
            .position(|x| x.contains("\"kind\":\"checkpoint\""))
            .unwrap();
        let mut cp: AuditRecord = serde_json::from_str(&l[i]).unwrap();
        // Re-sign with another key but claim the hub's key.
        let forged = {
            use base64::Engine;
            use ed25519_dalek::Signer;
            let msg = format!(
                "steward-audit checkpoint v1\nseq {}\nsha256 {}\n",
                cp.extra["anchor_seq"],
                cp.extra["anchor_hash"].as_str().unwrap()
            );
            base64::engine::general_purpose::STANDARD.encode(other.sign(msg.as_bytes()).to_bytes())
        };
        cp.extra.insert("sig".into(), forged.into());
        l[i] = String::from_utf8(cp.to_line()).unwrap();
    });
    assert!(e.what.contains("signature"), "{e}");
    assert_eq!(e.line, Some(6));
}

#[test]
fn full_rewrite_with_recomputed_hashes_is_caught_by_the_signatures() {
    let (_t, e) = tampered(|l| {
        let mut prev = "0".repeat(64);
        for (i, line) in l.iter_mut().enumerate() {
            let mut r: AuditRecord = serde_json::from_str(line).unwrap();
            if i == 2 {
                r.actor = "someone_else".into();
            }
            if r.kind == steward_audit::RecordKind::Checkpoint {
                r.extra.insert("anchor_hash".into(), prev.clone().into());
            }
            r.prev = prev;
            *line = String::from_utf8(r.to_line()).unwrap();
            prev = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(line.as_bytes()));
        }
    });
    assert_eq!(e.line, Some(6), "first checkpoint after the edit: {e}");
    assert!(e.what.contains("signature"), "{e}");
}

#[test]
fn forged_head_is_detected() {
    let t = fixture();
    let (_c, dir) = copy_dir(t.path());
    let head = dir.join(HEAD_FILE);
    let text = std::fs::read_to_string(&head).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["seq"] = (v["seq"].as_u64().unwrap() - 1).into();
    std::fs::write(&head, v.to_string()).unwrap();
    let e = check(&dir).unwrap_err();
    assert!(e.what.contains("head signature"), "{e}");
}

fn rotated_fixture() -> (tempfile::TempDir, Vec<PathBuf>) {
    let t = tempfile::tempdir().unwrap();
    let mut c = cfg(t.path());
    c.rotate_bytes = 3000;
    let log = AuditLog::open(c).unwrap();
    for k in 0..40 {
        log.append_blocking(intent("bob", k)).unwrap();
    }
    drop(log);
    let files = steward_audit::audit_files(t.path()).unwrap();
    assert!(files.len() >= 4);
    (t, files)
}

#[test]
fn cut_of_a_middle_file_breaks_the_chain_into_the_next_file() {
    let (_t, files) = rotated_fixture();
    let mid = &files[1];
    let mut l = lines(mid);
    l.truncate(l.len() - 2);
    write_lines(mid, &l);
    let e = verify(&files, Some(&key().verifying_key())).unwrap_err();
    assert_eq!(e.file, files[2], "{e}");
    assert_eq!(e.line, Some(1), "{e}");
    assert!(e.what.contains("deleted"), "{e}");
}

#[test]
fn deleted_middle_file_is_detected() {
    let (t, files) = rotated_fixture();
    std::fs::remove_file(&files[1]).unwrap();
    let e = check(t.path()).unwrap_err();
    assert_eq!(e.file, files[2], "{e}");
}

#[test]
fn garbage_and_non_utf8_are_errors_with_file_and_line_not_panics() {
    let t = fixture();
    let (_c, dir) = copy_dir(t.path());
    let path = dir.join(CURRENT_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    // Line 4 gets a byte that is not UTF-8.
    let start = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(2)
        .unwrap()
        .0
        + 30;
    bytes[start] = 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let e = check(&dir).unwrap_err();
    assert_eq!(e.line, Some(4), "{e}");
    assert!(e.what.contains("UTF-8"), "{e}");
    let s = search(&dir, &SearchFilter::default()).unwrap_err();
    assert!(
        s.to_string().contains("audit.jsonl:4: not valid UTF-8"),
        "{s}"
    );

    let junk = dir.join("junk.jsonl");
    for content in [
        &b"hello world\n"[..],
        b"\x00\x01\x02\n",
        b"{\"seq\":1}\n",
        b"[1,2,3]\n",
        b"\n\n",
        b"{\"seq\":1,\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"time\":\"x\",\"kind\":\"event\",\"event\":1}\n",
    ] {
        std::fs::write(&junk, content).unwrap();
        let e = verify(std::slice::from_ref(&junk), None).unwrap_err();
        assert_eq!((e.file.as_path(), e.line), (junk.as_path(), Some(1)), "{e}");
    }
    assert!(verify(&[dir.join("missing.jsonl")], None).is_err());
}

#[test]
fn without_the_key_signatures_are_not_checked_and_the_report_says_so() {
    let t = fixture();
    let r = verify_dir(t.path(), None).unwrap();
    assert!(!r.signatures_checked);
    assert!(r.to_string().contains("NOT checked"), "{r}");
}

#[test]
fn unanchored_tail_is_reported() {
    let t = tempfile::tempdir().unwrap();
    let log = AuditLog::open(cfg(t.path())).unwrap();
    for _ in 0..7 {
        log.append_blocking(event(events::LOGIN, "bob")).unwrap();
    }
    // While the log is open, records after the last checkpoint are not anchored.
    let r = check(t.path()).unwrap();
    assert_eq!(r.unanchored_tail, 2);
    assert!(r.to_string().contains("unanchored tail: 2"), "{r}");
    drop(log);
    let _ = AuditConfig::new(t.path());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_byte_change_or_cut_of_a_closed_log_passes(pos in 0.0f64..1.0, byte in any::<u8>(), cut in 0usize..200, mode in 0u8..3) {
        let t = fixture();
        let path = t.path().join(CURRENT_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let i = ((bytes.len() - 1) as f64 * pos) as usize;
        match mode {
            0 => {
                prop_assume!(bytes[i] != byte);
                bytes[i] = byte;
            }
            1 => {
                let end = (i + cut + 1).min(bytes.len());
                bytes.drain(i..end);
            }
            _ => bytes.truncate(i),
        }
        std::fs::write(&path, &bytes).unwrap();
        prop_assert!(check(t.path()).is_err());
        // search never panics either.
        let _ = search(t.path(), &SearchFilter::default());
    }
}
