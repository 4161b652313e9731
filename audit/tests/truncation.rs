//! Cutting records off the end of a log that has no count checkpoint yet (issue 21):
//! the head kept outside the log directory, checkpoints by time and at close, and the
//! refusal by `verify --head` and by `AuditLog::open`.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;
use steward_audit::cli::{run_with, AuditCommand};
use steward_audit::testing::ManualClock;
use steward_audit::{
    verify_dir, verify_dir_with_head, AuditConfig, AuditError, AuditLog, CURRENT_FILE, HEAD_FILE,
};

/// A log in `<tmp>/log` whose outside head is `<tmp>/state/audit.head`, with the
/// defaults the hub uses (a count checkpoint only every 1,000 records).
fn short_cfg(root: &Path) -> (AuditConfig, PathBuf) {
    let state = root.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let head = state.join("audit.head");
    let mut c = AuditConfig::new(root.join("log"));
    c.signing_key = Some(key());
    c.head_path = Some(head.clone());
    (c, head)
}

/// A log of `n` records, closed (so its end is anchored and both heads written).
fn closed_log(n: u64) -> (tempfile::TempDir, AuditConfig, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let (cfg, head) = short_cfg(t.path());
    let log = AuditLog::open(cfg.clone()).unwrap();
    append_ops(&log, n);
    drop(log);
    (t, cfg, head)
}

fn append_ops(log: &AuditLog, n: u64) {
    for k in 0..n {
        log.append_blocking(event("login", &format!("user{k}")))
            .unwrap();
    }
}

fn cut_tail(dir: &Path, n: usize) {
    let path = dir.join(CURRENT_FILE);
    let mut l = lines(&path);
    l.truncate(l.len() - n);
    write_lines(&path, &l);
}

fn head_seq(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("seq")?.as_u64()
}

/// 53 records, closed; then the last 3 lines and `audit.head` beside the log are
/// deleted (what the issue tried: it passed). The outside head still says where the
/// log ended, so verify and the next open refuse it.
#[test]
fn cut_tail_of_a_short_log_fails_against_the_outside_head() {
    let (_t, cfg, head) = closed_log(53);
    let dir = cfg.dir.clone();
    let vk = key().verifying_key();
    let ok = verify_dir_with_head(&dir, Some(&vk), Some(&head)).unwrap();
    assert!(ok.outside_head_checked && ok.head_checked, "{ok}");
    assert_eq!(ok.unanchored_tail, 0, "{ok}");

    cut_tail(&dir, 3);
    std::fs::remove_file(dir.join(HEAD_FILE)).unwrap();
    // Without the outside head the cut cannot be seen: that is the hole closed here.
    assert!(verify_dir(&dir, Some(&vk)).is_ok());
    let e = verify_dir_with_head(&dir, Some(&vk), Some(&head)).unwrap_err();
    assert!(
        e.what.contains("log ends at seq 51 but the head file") && e.what.contains("signed seq 54"),
        "{e}"
    );

    let (mut out, mut err) = (Vec::new(), Vec::new());
    let rc = run_with(
        AuditCommand::Verify {
            files: vec![],
            dir: Some(dir.clone()),
            key: None,
            strict: false,
            head: Some(head.clone()),
            deployment: vec![],
            checkpoint: None,
            config: None,
        },
        &dir,
        Some(vk),
        &mut out,
        &mut err,
    );
    assert_eq!(rc, 1);
    let err = String::from_utf8(err).unwrap();
    assert!(err.contains("log ends at seq 51"), "{err}");

    match AuditLog::open(cfg).unwrap_err() {
        AuditError::Truncated {
            log_ends, head_seq, ..
        } => assert_eq!((log_ends, head_seq), (51, 54)),
        other => panic!("expected Truncated, got {other}"),
    }
}

/// No count checkpoint (1,000 records) is ever reached and the hub dies without
/// closing the log: the checkpoint by time still anchored the records, so cutting
/// the tail back past it is refused.
#[test]
fn tail_cut_before_any_count_checkpoint_is_caught_by_the_time_checkpoint() {
    let t = tempfile::tempdir().unwrap();
    let (mut cfg, head) = short_cfg(t.path());
    let clock = ManualClock::default();
    cfg.clock = clock.clock();
    let dir = cfg.dir.clone();
    let log = AuditLog::open(cfg.clone()).unwrap();
    append_ops(&log, 5);
    assert_eq!(
        head_seq(&head),
        None,
        "no checkpoint before a minute has passed"
    );

    // A minute passes with nothing written: the idle writer anchors the 5 records.
    clock.advance(Duration::from_secs(61));
    wait_for_head(&head, 6);
    // The next minute passes and a record comes: its batch carries the checkpoint
    // (or, if the idle writer looked first, it comes just before it).
    append_ops(&log, 3);
    clock.advance(Duration::from_secs(61));
    append_ops(&log, 1);
    let recs = lines(&dir.join(CURRENT_FILE));
    assert_eq!(recs.len(), 11, "5 + checkpoint + 4 + checkpoint");
    assert!(
        recs[9..]
            .iter()
            .any(|l| l.contains("\"kind\":\"checkpoint\"")),
        "{recs:?}"
    );
    wait_for_head(&head, 10);
    append_ops(&log, 2);

    // The hub is killed: no close, no final checkpoint.
    std::mem::forget(log);
    let (_copy, crashed) = copy_dir(&dir);
    let vk = key().verifying_key();
    assert!(verify_dir_with_head(&crashed, Some(&vk), Some(&head)).is_ok());
    // Seq 12 and 13 follow the last checkpoint: cutting them alone is the window a
    // time checkpoint leaves (at most a minute of records). Cutting past the
    // checkpoint is refused.
    cut_tail(&crashed, 4);
    std::fs::remove_file(crashed.join(HEAD_FILE)).unwrap();
    let e = verify_dir_with_head(&crashed, Some(&vk), Some(&head)).unwrap_err();
    assert!(
        e.what.contains("log ends at seq 9 but the head file"),
        "{e}"
    );
    let mut reopen = cfg;
    reopen.dir = crashed;
    assert!(matches!(
        AuditLog::open(reopen),
        Err(AuditError::Truncated { log_ends: 9, .. })
    ));
}

/// The writer updates heads on its own thread after the flush; wait (bounded) until
/// the head names `seq`.
fn wait_for_head(head: &Path, seq: u64) {
    for _ in 0..500 {
        if head_seq(head).is_some_and(|s| s >= seq) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("head never reached seq {seq} (is at {:?})", head_seq(head));
}

/// An intact log passes verify with the head; it reopens, grows and passes again;
/// `checkpoint_now` (the hub's stop) leaves no unanchored tail and a current head.
#[test]
fn valid_log_passes_and_reopens_with_the_outside_head() {
    let (_t, cfg, head) = closed_log(20);
    let dir = cfg.dir.clone();
    let vk = key().verifying_key();
    let log = AuditLog::open(cfg.clone()).unwrap();
    append_ops(&log, 7);
    log.checkpoint_now().unwrap();
    let r = verify_dir_with_head(&dir, Some(&vk), Some(&head)).unwrap();
    assert_eq!(r.unanchored_tail, 0, "{r}");
    assert_eq!(head_seq(&head), r.last_seq, "{r}");
    assert!(r.outside_head_checked && r.to_string().contains("outside head"));
    drop(log);
    assert!(verify_dir_with_head(&dir, Some(&vk), Some(&head)).is_ok());
}

/// A damaged head file is a clear error naming the file, for verify and for open;
/// a missing one is an error for verify (it was asked for) and a recorded event at
/// open (first start with the setting).
#[test]
fn corrupt_or_missing_head_file_is_reported_clearly() {
    let (_t, cfg, head) = closed_log(4);
    let dir = cfg.dir.clone();
    let vk = key().verifying_key();
    std::fs::write(&head, b"{\"seq\":\"many\"\n").unwrap();
    let e = verify_dir_with_head(&dir, Some(&vk), Some(&head)).unwrap_err();
    assert_eq!(e.file, head, "{e}");
    assert!(e.what.contains("not a valid head file"), "{e}");
    let e = AuditLog::open(cfg.clone()).unwrap_err().to_string();
    assert!(
        e.contains(&head.display().to_string()) && e.contains("move it away"),
        "{e}"
    );

    std::fs::remove_file(&head).unwrap();
    let e = verify_dir_with_head(&dir, Some(&vk), Some(&head)).unwrap_err();
    assert_eq!(e.file, head, "{e}");
    let log = AuditLog::open(cfg).unwrap();
    drop(log);
    let text = std::fs::read_to_string(dir.join(CURRENT_FILE)).unwrap();
    assert!(text.contains("\"event\":\"audit_head_missing\""), "{text}");
    assert!(verify_dir_with_head(&dir, Some(&vk), Some(&head)).is_ok());
}

/// A head path inside the log directory, or in a directory that does not exist, is
/// refused at open with the reason.
#[test]
fn head_path_inside_the_log_or_nowhere_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (mut cfg, _) = short_cfg(t.path());
    cfg.head_path = Some(cfg.dir.join("copy.head"));
    let e = AuditLog::open(cfg.clone()).unwrap_err().to_string();
    assert!(e.contains("must be outside the audit directory"), "{e}");
    cfg.head_path = Some(t.path().join("missing/audit.head"));
    let e = AuditLog::open(cfg).unwrap_err().to_string();
    assert!(e.contains("does not exist"), "{e}");
}
