//! Crash recovery: a real process that dies (abort) between intent and outcome, an
//! unfinished line left by a torn write, and a corrupt tail that must stop the hub.

mod common;

use common::*;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use steward_audit::{
    events, search, verify_dir, AuditConfig, AuditError, AuditLog, Outcome, RecordKind,
    SearchFilter, CURRENT_FILE, HUMAN_FILE,
};

const ENV_DIR: &str = "STEWARD_AUDIT_CRASH_DIR";
const ENV_MODE: &str = "STEWARD_AUDIT_CRASH_MODE";

/// Not a test of its own: the body the child process runs (then it aborts).
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let mode = std::env::var(ENV_MODE).unwrap();
    let mut c = cfg(Path::new(&dir));
    if mode == "rotated" {
        c.rotate_bytes = 1500;
    }
    let log = AuditLog::open(c).unwrap();
    // A finished operation: intent + outcome.
    let done = intent("bob", 1);
    let s = log.append_blocking(done.clone()).unwrap();
    log.append_blocking(outcome(&done, s)).unwrap();
    // One in flight when the process dies.
    log.append_blocking(intent("bob", 2)).unwrap();
    if mode == "rotated" {
        for k in 0..30 {
            log.append_blocking(event(events::LOGIN, &format!("u{k}")))
                .unwrap();
        }
    }
    std::process::abort();
}

fn crash(dir: &Path, mode: &str) {
    let st = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(ENV_DIR, dir)
        .env(ENV_MODE, mode)
        .output()
        .unwrap();
    assert!(!st.status.success(), "child did not crash: {st:?}");
}

fn unknown_outcomes(dir: &Path) -> Vec<steward_audit::AuditRecord> {
    search(
        dir,
        &SearchFilter {
            kind: Some(RecordKind::Outcome),
            ..Default::default()
        },
    )
    .unwrap()
    .into_iter()
    .filter(|r| r.outcome == Some(Outcome::Unknown))
    .collect()
}

#[test]
fn intent_without_outcome_is_marked_unknown_after_a_crash() {
    let t = tempfile::tempdir().unwrap();
    crash(t.path(), "plain");
    // The intent survived the crash (it was durable before append returned).
    assert_eq!(unknown_outcomes(t.path()).len(), 0);
    let log = AuditLog::open(cfg(t.path())).unwrap();
    let unknown = unknown_outcomes(t.path());
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert_eq!(unknown[0].intent_seq, Some(3));
    assert_eq!(unknown[0].task.as_deref(), Some("2/climb"));
    assert_eq!(unknown[0].actor, "bob");
    let human = lines(&t.path().join(HUMAN_FILE));
    let last = human.last().unwrap();
    assert!(
        last.contains("User bob may have stopped alice's atmosphere_stage.clouds.climb.2 task, outcome unknown: \"no outcome was recorded"),
        "{last}"
    );
    // Only once: a second restart finds it settled.
    drop(log);
    AuditLog::open(cfg(t.path())).unwrap();
    assert_eq!(unknown_outcomes(t.path()).len(), 1);
    verify_dir(t.path(), Some(&key().verifying_key())).unwrap();
}

#[test]
fn intent_in_an_older_rotated_file_is_found_and_marked_unknown() {
    let t = tempfile::tempdir().unwrap();
    crash(t.path(), "rotated");
    assert!(steward_audit::audit_files(t.path()).unwrap().len() > 2);
    let mut c = cfg(t.path());
    c.rotate_bytes = 1500;
    let _log = AuditLog::open(c).unwrap();
    let unknown = unknown_outcomes(t.path());
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert_eq!(unknown[0].intent_seq, Some(3));
    assert_eq!(unknown[0].op.as_deref(), Some("stop"));
    verify_dir(t.path(), Some(&key().verifying_key())).unwrap();
}

#[test]
fn clean_shutdown_with_an_operation_in_flight_also_settles_it() {
    let t = tempfile::tempdir().unwrap();
    {
        let log = AuditLog::open(cfg(t.path())).unwrap();
        log.append_blocking(intent("bob", 9)).unwrap();
    }
    AuditLog::open(cfg(t.path())).unwrap();
    assert_eq!(unknown_outcomes(t.path()).len(), 1);
}

#[test]
fn unfinished_line_from_a_torn_write_is_cut_and_recorded() {
    let t = tempfile::tempdir().unwrap();
    {
        let log = AuditLog::open(AuditConfig::new(t.path())).unwrap();
        log.append_blocking(event(events::LOGIN, "bob")).unwrap();
    }
    let path = t.path().join(CURRENT_FILE);
    let good = std::fs::metadata(&path).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let torn = b"{\"seq\":3,\"prev\":\"ab";
    f.write_all(torn).unwrap();
    let mut h = std::fs::OpenOptions::new()
        .append(true)
        .open(t.path().join(HUMAN_FILE))
        .unwrap();
    h.write_all(b"2026-11-23T10:15:02Z User bo").unwrap();
    assert!(verify_dir(t.path(), None).is_err());
    let log = AuditLog::open(AuditConfig::new(t.path())).unwrap();
    let repaired = search(
        t.path(),
        &SearchFilter {
            event: Some(events::AUDIT_REPAIRED.into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(repaired.len(), 1);
    let msg = repaired[0].message.as_deref().unwrap();
    assert!(
        msg.contains(&format!("dropped {} bytes", torn.len())),
        "{msg}"
    );
    assert!(std::fs::metadata(&path).unwrap().len() > good);
    drop(log);
    verify_dir(t.path(), None).unwrap();
    let human = std::fs::read_to_string(t.path().join(HUMAN_FILE)).unwrap();
    assert!(
        !human.contains("User bo\n") && !human.contains("User bo2"),
        "{human}"
    );
    assert!(human.lines().all(|l| l.starts_with("20")), "{human}");
}

#[test]
fn corrupt_tail_refuses_to_open_and_names_the_line() {
    let t = tempfile::tempdir().unwrap();
    {
        let log = AuditLog::open(AuditConfig::new(t.path())).unwrap();
        log.append_blocking(event(events::LOGIN, "bob")).unwrap();
    }
    let path = t.path().join(CURRENT_FILE);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"not a record\n").unwrap();
    let e = AuditLog::open(AuditConfig::new(t.path())).unwrap_err();
    match &e {
        AuditError::Corrupt { line, .. } => assert_eq!(*line, 3),
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("audit.jsonl:3"), "{e}");
}
