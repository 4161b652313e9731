//! The writer: durability contract, group commit, chain continuation, rotation,
//! checkpoints, locking, permissions.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use steward_audit::{
    events, search, verify_dir, AuditConfig, AuditError, AuditLog, AuditRecord, RecordKind,
    SearchFilter, CURRENT_FILE, HEAD_FILE, HUMAN_FILE,
};

#[tokio::test]
async fn append_returns_seq_after_record_and_human_line_are_on_disk() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("audit");
    let log = AuditLog::open(cfg(&dir)).unwrap();
    let mut i = intent("jacintar", 1234);
    i.workflow = Some("atmosphere_stage/clouds".into());
    i.owner = Some("jacintar".into());
    i.time = "2026-11-23T10:15:01Z".into();
    let s1 = log.append(i.clone()).await.unwrap();
    // Write-ahead: the intent is in the file when append returns.
    let json = lines(&dir.join(CURRENT_FILE));
    assert_eq!(json.len(), 1);
    assert!(json[0].starts_with("{\"seq\":1,\"prev\":\"0000"));
    assert!(json[0].contains("\"kind\":\"intent\""));
    // Intents have no human line; the outcome has.
    assert!(lines(&dir.join(HUMAN_FILE)).is_empty());
    let mut o = outcome(&i, s1);
    o.time = "2026-11-23T10:15:02Z".into();
    let s2 = log.append(o).await.unwrap();
    assert_eq!((s1, s2), (1, 2));
    assert_eq!(
        lines(&dir.join(HUMAN_FILE)),
        vec!["2026-11-23T10:15:02Z User jacintar stopped atmosphere_stage.clouds.climb.1234 task"]
    );
    let s3 = log
        .append_blocking(AuditRecord {
            elevation: Some("execute".into()),
            time: "2026-11-23T10:14:40.5+00:00".into(),
            ..event(events::ELEVATE, "jacintar")
        })
        .unwrap();
    assert_eq!(s3, 3);
    let recs = search(&dir, &SearchFilter::default()).unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[2].time, "2026-11-23T10:14:40.500000Z");
    assert_eq!(recs[1].intent_seq, Some(1));
    log.health().unwrap();
    drop(log);
    let report = verify_dir(&dir, Some(&key().verifying_key())).unwrap();
    // Closing wrote a final checkpoint: nothing is left unanchored.
    assert_eq!(report.records, 4);
    assert_eq!(report.unanchored_tail, 0);
    assert!(report.head_checked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_batches_concurrent_appends_into_few_fsyncs() {
    let t = tempfile::tempdir().unwrap();
    let mut c = AuditConfig::new(t.path());
    c.checkpoint_every = 0;
    let log = AuditLog::open(c).unwrap();
    let n = 2000u64;
    let mut tasks = Vec::new();
    for k in 0..n {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            log.append(intent("bob", k)).await.unwrap()
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort();
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<_>>(),
        "every append got its own seq"
    );
    let st = log.stats();
    assert_eq!(st.records, n);
    assert!(
        st.commits * 4 < n,
        "{} commits for {n} concurrent appends: not batched",
        st.commits
    );
    drop(log);
    verify_dir(t.path(), None).unwrap();
}

#[test]
fn fsync_per_record_mode_commits_each_record() {
    let t = tempfile::tempdir().unwrap();
    let mut c = AuditConfig::new(t.path());
    c.max_batch = 1;
    c.checkpoint_every = 0;
    let log = AuditLog::open(c).unwrap();
    for k in 0..20 {
        log.append_blocking(intent("bob", k)).unwrap();
    }
    assert_eq!(log.stats().commits, 20);
}

#[test]
fn reopening_continues_the_chain() {
    let t = tempfile::tempdir().unwrap();
    for round in 0..3u64 {
        let log = AuditLog::open(cfg(t.path())).unwrap();
        for k in 0..7 {
            let s = log.append_blocking(event(events::LOGIN, "carol")).unwrap();
            if k == 0 && round > 0 {
                assert!(s > 7 * round, "chain restarted at {s}");
            }
        }
    }
    let r = verify_dir(t.path(), Some(&key().verifying_key())).unwrap();
    assert_eq!(r.first_seq, Some(1));
    assert_eq!(r.unanchored_tail, 0);
    assert_eq!(r.files, 1);
}

#[test]
fn size_rotation_keeps_one_chain_across_files() {
    let t = tempfile::tempdir().unwrap();
    let mut c = cfg(t.path());
    c.rotate_bytes = 2048;
    {
        let log = AuditLog::open(c.clone()).unwrap();
        for k in 0..60 {
            log.append_blocking(intent("dmitri", k)).unwrap();
        }
    }
    // And again after a reopen.
    {
        let log = AuditLog::open(c).unwrap();
        for k in 0..20 {
            log.append_blocking(event(events::LOGOUT, &format!("u{k}")))
                .unwrap();
        }
    }
    let files = steward_audit::audit_files(t.path()).unwrap();
    assert!(files.len() > 5, "{files:?}");
    assert!(files.last().unwrap().ends_with(CURRENT_FILE));
    // Every rotated file ends with a checkpoint; the next file's first record links to it.
    for w in files.windows(2) {
        let a = lines(&w[0]);
        let b = lines(&w[1]);
        assert!(a.last().unwrap().contains("\"kind\":\"checkpoint\""));
        let last: AuditRecord = serde_json::from_str(a.last().unwrap()).unwrap();
        let first: AuditRecord = serde_json::from_str(&b[0]).unwrap();
        assert_eq!(first.seq, last.seq + 1);
        assert_eq!(
            first.prev,
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                a.last().unwrap().as_bytes()
            ))
        );
    }
    let r = verify_dir(t.path(), Some(&key().verifying_key())).unwrap();
    assert_eq!(r.files, files.len());
    // The human log rotates alongside.
    assert!(t.path().join("audit-000000000001.log").exists());
    // Search spans every file.
    let logouts = search(
        t.path(),
        &SearchFilter {
            event: Some("logout".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(logouts.len(), 20);
}

#[test]
fn time_rotation() {
    let t = tempfile::tempdir().unwrap();
    let mut c = AuditConfig::new(t.path());
    c.rotate_secs = Some(1);
    let log = AuditLog::open(c).unwrap();
    log.append_blocking(event(events::LOGIN, "eun")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    log.append_blocking(event(events::LOGOUT, "eun")).unwrap();
    drop(log);
    let files = steward_audit::audit_files(t.path()).unwrap();
    assert_eq!(files.len(), 2, "{files:?}");
    verify_dir(t.path(), None).unwrap();
}

#[test]
fn checkpoints_are_signed_every_n_records_and_head_follows() {
    let t = tempfile::tempdir().unwrap();
    let log = AuditLog::open(cfg(t.path())).unwrap();
    for k in 0..23 {
        log.append_blocking(intent("farah", k)).unwrap();
    }
    let cps: Vec<AuditRecord> = search(
        t.path(),
        &SearchFilter {
            kind: Some(RecordKind::Checkpoint),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(cps.len(), 4, "one per 5 records (sequential appends)");
    let last_cp = cps.last().unwrap();
    assert!(last_cp.extra.contains_key("sig"));
    // audit.head follows the newest checkpoint (written just after its flush).
    let start = std::time::Instant::now();
    loop {
        let head: serde_json::Value =
            serde_json::from_slice(&std::fs::read(t.path().join(HEAD_FILE)).unwrap()).unwrap();
        if head["seq"] == last_cp.seq {
            break;
        }
        assert!(start.elapsed().as_secs() < 5, "head stays at {head}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The open intents travel in the checkpoint (for crash recovery across rotation).
    assert_eq!(
        last_cp.extra["open_intents"].as_array().unwrap().len() as u64,
        last_cp.seq - 4
    );
    let r = verify_dir(t.path(), Some(&key().verifying_key())).unwrap();
    assert!(r.signatures_checked && r.head_checked);
    assert_eq!(r.unanchored_tail, r.last_seq.unwrap() - last_cp.seq);
    // Another key does not verify.
    let e = verify_dir(t.path(), Some(&other_key().verifying_key())).unwrap_err();
    assert!(e.to_string().contains("another key"), "{e}");
}

#[test]
fn invalid_records_are_refused_without_using_a_seq() {
    let t = tempfile::tempdir().unwrap();
    let log = AuditLog::open(AuditConfig::new(t.path())).unwrap();
    let bad = AuditRecord {
        time: "yesterday".into(),
        ..event(events::LOGIN, "x")
    };
    assert!(matches!(
        log.append_blocking(bad),
        Err(AuditError::InvalidRecord(_))
    ));
    let forged_cp = AuditRecord::new(RecordKind::Checkpoint, "checkpoint", "x");
    assert!(log.append_blocking(forged_cp).is_err());
    assert!(log.append_blocking(AuditRecord::default()).is_err());
    let huge = AuditRecord {
        message: Some("x".repeat(2 << 20)),
        ..event(events::ADMIN, "x")
    };
    assert!(log.append_blocking(huge).is_err());
    assert_eq!(log.append_blocking(event(events::LOGIN, "x")).unwrap(), 1);
}

#[test]
fn one_writer_per_directory() {
    let t = tempfile::tempdir().unwrap();
    let log = AuditLog::open(AuditConfig::new(t.path())).unwrap();
    let e = AuditLog::open(AuditConfig::new(t.path())).unwrap_err();
    assert!(e.to_string().contains("another process"), "{e}");
    drop(log);
    AuditLog::open(AuditConfig::new(t.path())).unwrap();
}

#[test]
fn directory_is_private() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("a/b");
    let log = AuditLog::open(AuditConfig::new(&dir)).unwrap();
    log.append_blocking(event(events::LOGIN, "x")).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(CURRENT_FILE)), 0o600);
    assert_eq!(mode(&dir.join(HUMAN_FILE)), 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_flush_refuses_its_appends_rewinds_the_chain_and_recovers() {
    let t = tempfile::tempdir().unwrap();
    let log = AuditLog::open(cfg(t.path())).unwrap();
    for k in 0..3 {
        log.append(intent("bob", k)).await.unwrap();
    }
    log.testing_fail_next_flushes(1);
    let mut tasks = Vec::new();
    for k in 100..140 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            (k, log.append(intent("carol", k)).await)
        }));
    }
    let mut refused = Vec::new();
    for t in tasks {
        let (k, r) = t.await.unwrap();
        if let Err(e) = r {
            assert_eq!(e.errno(), Some(libc::EIO), "{e}");
            refused.push(k);
        }
    }
    assert!(!refused.is_empty(), "the injected failure refused nothing");
    // The writer notices on its own (within its retry interval), rewinds, and the
    // next batch is written and flushed again.
    let start = std::time::Instant::now();
    while log.health().is_err() || start.elapsed() < std::time::Duration::from_millis(300) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "did not recover"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let s = log.append(intent("dave", 1)).await.unwrap();
    drop(log);
    verify_dir(t.path(), Some(&key().verifying_key())).unwrap();
    let all = search(t.path(), &SearchFilter::default()).unwrap();
    // None of the refused appends is in the log; every accepted one is.
    for k in &refused {
        let id = format!("req-{k}");
        assert!(
            !all.iter()
                .any(|r| r.request_id.as_deref() == Some(id.as_str())),
            "refused record {id} is in the log"
        );
    }
    let carol = all.iter().filter(|r| r.actor == "carol").count();
    assert_eq!(carol + refused.len(), 40);
    let resumed: Vec<_> = all
        .iter()
        .filter(|r| r.event == events::AUDIT_RESUMED)
        .collect();
    assert_eq!(resumed.len(), 1);
    assert!(
        resumed[0]
            .message
            .as_deref()
            .unwrap()
            .contains(&format!("{} record(s) were refused", refused.len())),
        "{:?}",
        resumed[0].message
    );
    assert!(all.iter().any(|r| r.seq == s));
}

#[test]
fn the_handle_is_cheap_to_share() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<AuditLog>();
    assert_traits::<AuditRecord>();
    assert_traits::<AuditError>();
}

#[tokio::test]
async fn a_detached_record_is_durable_once_a_later_append_returns() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("audit");
    let log = AuditLog::open(cfg(&dir)).unwrap();
    let i = intent("jacintar", 7);
    let s1 = log.append(i.clone()).await.unwrap();
    log.append_detached(outcome(&i, s1)).unwrap();
    let s3 = log.append(event(events::LOGOUT, "jacintar")).await.unwrap();
    assert_eq!(s3, 3, "the detached outcome took seq 2, in order");
    let json = lines(&dir.join(CURRENT_FILE));
    assert!(json[1].contains("\"kind\":\"outcome\""), "{}", json[1]);
    assert!(json[1].contains("\"intent_seq\":1"), "{}", json[1]);
    drop(log);
    let report = verify_dir(&dir, Some(&key().verifying_key())).unwrap();
    assert!(report.records >= 3);
}
