//! Several hubs, one deployment (issue 18): each chain names its hub, the leader signs
//! a checkpoint over every hub's durable head, and `verify --deployment` holds every
//! chain to it, so a tail deleted from one hub's log (with its `audit.head`) is found
//! and the hub named, where verifying that chain alone cannot see it.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use steward_audit::cli::{run_with, AuditCommand};
use steward_audit::{
    verify_deployment, verify_dir, AuditConfig, AuditLog, AuditRecord, ChainHead,
    DeploymentCheckpoint, DeploymentError, CURRENT_FILE, HEAD_FILE,
};

const T: &str = "2026-12-07T02:00:00.000000Z";

fn hub_cfg(dir: &Path, hub: &str) -> AuditConfig {
    let mut c = cfg(dir);
    c.hub_id = Some(hub.into());
    c
}

/// A hub's log with `n` login records, still open.
fn hub_log(root: &Path, hub: &str, n: u64) -> (AuditLog, PathBuf) {
    let dir = root.join(format!("audit-{hub}"));
    let log = AuditLog::open(hub_cfg(&dir, hub)).unwrap();
    for k in 0..n {
        log.append_blocking(event("login", &format!("user{k}")))
            .unwrap();
    }
    (log, dir)
}

fn signed(heads: Vec<ChainHead>) -> DeploymentCheckpoint {
    let mut cp = DeploymentCheckpoint::new("hub-a", 2, T, heads);
    cp.sign(&key());
    cp
}

/// Keeps only the records of `dir`'s current file with seq below `seq`.
fn cut_to_before(dir: &Path, seq: u64) {
    let path = dir.join(CURRENT_FILE);
    let kept: Vec<String> = lines(&path)
        .into_iter()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["seq"].as_u64().unwrap() < seq
        })
        .collect();
    write_lines(&path, &kept);
}

fn verify_cmd(dirs: Vec<PathBuf>, checkpoint: Option<PathBuf>) -> AuditCommand {
    AuditCommand::Verify {
        files: vec![],
        dir: None,
        key: None,
        strict: false,
        head: None,
        deployment: dirs,
        checkpoint,
        config: None,
    }
}

/// Runs `steward audit verify --deployment` in-process: (exit code, stdout, stderr).
fn run(cmd: AuditCommand, key: Option<ed25519_dalek::VerifyingKey>) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let rc = run_with(cmd, Path::new("/nonexistent"), key, &mut out, &mut err);
    (
        rc,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn every_record_names_its_hub_and_a_caller_cannot_change_it() {
    let t = tempfile::tempdir().unwrap();
    let (log, dir) = hub_log(t.path(), "hub-a", 3);
    let forged = AuditRecord {
        hub: Some("hub-b".into()),
        ..event("login", "mallory")
    };
    let seq = log.append_blocking(forged).unwrap();
    let head = log.durable_head().unwrap();
    assert_eq!((head.hub.as_str(), head.seq), ("hub-a", seq));
    drop(log);
    let all = lines(&dir.join(CURRENT_FILE));
    for l in &all {
        assert!(l.contains(",\"hub\":\"hub-a\","), "{l}");
    }
    // The published head is the line hash of the record at its seq.
    let line = all
        .iter()
        .find(|l| l.starts_with(&format!("{{\"seq\":{seq},")))
        .unwrap();
    assert_eq!(
        head.hash,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(line.as_bytes()))
    );
    let r = verify_dir(&dir, Some(&key().verifying_key())).unwrap();
    assert_eq!(r.hubs, ["hub-a"], "{r}");
    assert!(r.to_string().contains("chain of hub hub-a"), "{r}");
}

#[test]
fn a_bad_hub_id_is_refused_at_open() {
    let t = tempfile::tempdir().unwrap();
    let e = AuditLog::open(hub_cfg(t.path(), "hub a"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("hub id \"hub a\""), "{e}");
}

#[test]
fn old_logs_without_a_hub_still_verify_and_continue_under_the_hub() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("audit");
    let log = AuditLog::open(cfg(&dir)).unwrap();
    for k in 0..4 {
        log.append_blocking(event("login", &format!("old{k}")))
            .unwrap();
    }
    assert!(
        log.durable_head().is_none(),
        "no hub id, nothing to publish"
    );
    drop(log);
    let old = lines(&dir.join(CURRENT_FILE));
    assert!(old.iter().all(|l| !l.contains("\"hub\"")), "{old:?}");
    let vk = key().verifying_key();
    let r = verify_dir(&dir, Some(&vk)).unwrap();
    assert!(r.hubs.is_empty(), "{r}");

    // The upgraded hub continues the same chain, now naming itself.
    let log = AuditLog::open(hub_cfg(&dir, "hub-a")).unwrap();
    log.append_blocking(event("login", "new")).unwrap();
    let head = log.durable_head().unwrap();
    drop(log);
    let r = verify_dir(&dir, Some(&vk)).unwrap();
    assert_eq!(r.hubs, ["hub-a"], "{r}");
    assert_eq!(r.first_seq, Some(1));
    let rep = verify_deployment(&signed(vec![head]), "test", &[dir], &vk).unwrap();
    assert!(rep.is_ok(), "{rep}");
}

#[test]
fn two_chains_verify_against_the_checkpoint_and_a_deleted_tail_is_named() {
    let t = tempfile::tempdir().unwrap();
    let (a, dir_a) = hub_log(t.path(), "hub-a", 12);
    let (b, dir_b) = hub_log(t.path(), "hub-b", 30);
    let cp = signed(vec![a.durable_head().unwrap(), b.durable_head().unwrap()]);
    let b_head = cp.head("hub-b").unwrap().seq;
    assert!(b_head >= 30, "{cp:?}");
    // Both hubs go on writing after the checkpoint: heads past it are fine.
    a.append_blocking(event("login", "later")).unwrap();
    drop((a, b));
    let vk = key().verifying_key();
    let dirs = vec![dir_a.clone(), dir_b.clone()];
    let rep = verify_deployment(&cp, "test", &dirs, &vk).unwrap();
    assert!(rep.is_ok(), "{rep}");
    assert!(rep.chains.iter().all(|c| c.matched.is_some()), "{rep}");
    let text = rep.to_string();
    assert!(
        text.starts_with(&format!("{}: OK", dir_a.display())),
        "{text}"
    );
    assert!(text.contains("OK: deployment checkpoint"), "{text}");

    // The same through the command, with the checkpoint in a file.
    let cp_file = t.path().join("checkpoint.json");
    std::fs::write(&cp_file, cp.to_json()).unwrap();
    let (rc, out, err) = run(verify_cmd(dirs.clone(), Some(cp_file.clone())), Some(vk));
    assert_eq!(rc, 0, "{out}{err}");
    assert!(
        out.contains("reaches hub hub-b's checkpointed head"),
        "{out}"
    );

    // An attacker on hub B's machine deletes the tail of its log and its audit.head.
    cut_to_before(&dir_b, b_head - 5);
    std::fs::remove_file(dir_b.join(HEAD_FILE)).unwrap();
    // On its own the shortened chain is intact: only the checkpoint can tell.
    verify_dir(&dir_b, Some(&vk)).unwrap();
    let rep = verify_deployment(&cp, "test", &dirs, &vk).unwrap();
    assert!(!rep.is_ok());
    match rep.failures.as_slice() {
        [DeploymentError::Truncated {
            hub,
            ends,
            head_seq,
            dir,
            ..
        }] => {
            assert_eq!(hub, "hub-b");
            assert_eq!((*ends, *head_seq), (b_head - 6, b_head));
            assert_eq!(dir, &dir_b);
        }
        other => panic!("expected one Truncated failure, got {other:?}"),
    }
    let (rc, out, err) = run(verify_cmd(dirs, Some(cp_file)), Some(vk));
    assert_eq!(rc, 1, "{out}{err}");
    assert!(
        err.contains("hub hub-b: the chain in") && err.contains("records were cut off the end"),
        "{err}"
    );
    assert!(out.contains("FAILED: 1 problem(s)"), "{out}");
}

#[test]
fn a_replaced_chain_with_another_record_at_the_signed_seq_is_named() {
    let t = tempfile::tempdir().unwrap();
    let (b, dir_b) = hub_log(t.path(), "hub-b", 10);
    let cp = signed(vec![b.durable_head().unwrap()]);
    drop(b);
    // A whole new, longer, internally valid chain of "hub-b" in its place.
    std::fs::remove_dir_all(&dir_b).unwrap();
    let (b, _) = hub_log(t.path(), "hub-b", 25);
    drop(b);
    let vk = key().verifying_key();
    verify_dir(&dir_b, Some(&vk)).unwrap();
    let rep = verify_deployment(&cp, "test", std::slice::from_ref(&dir_b), &vk).unwrap();
    match rep.failures.as_slice() {
        [DeploymentError::Mismatch { hub, seq, .. }] => {
            assert_eq!((hub.as_str(), *seq), ("hub-b", cp.heads[0].seq));
        }
        other => panic!("expected one Mismatch, got {other:?}"),
    }
    assert!(rep.failures[0].to_string().contains("altered or replaced"));
}

#[test]
fn a_missing_or_doubled_chain_and_a_bad_directory_are_named() {
    let t = tempfile::tempdir().unwrap();
    let (a, dir_a) = hub_log(t.path(), "hub-a", 3);
    let (b, dir_b) = hub_log(t.path(), "hub-b", 3);
    let cp = signed(vec![a.durable_head().unwrap(), b.durable_head().unwrap()]);
    drop((a, b));
    let vk = key().verifying_key();
    let gone = t.path().join("no-such-dir");
    let rep = verify_deployment(&cp, "test", &[dir_a.clone(), gone.clone()], &vk).unwrap();
    let msgs: Vec<String> = rep.failures.iter().map(ToString::to_string).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(msgs[0].contains(&gone.display().to_string()) && msgs[0].contains("not a directory"));
    assert!(
        matches!(&rep.failures[1], DeploymentError::MissingChain { hub, .. } if hub == "hub-b"),
        "{msgs:?}"
    );
    assert!(msgs[1].contains("no directory given holds a chain of hub hub-b"));

    let (_copy, copy_of_a) = copy_dir(&dir_a);
    let rep = verify_deployment(&cp, "test", &[dir_a, dir_b, copy_of_a], &vk).unwrap();
    assert!(
        matches!(rep.failures.as_slice(), [DeploymentError::DuplicateChain { hub, .. }] if hub == "hub-a"),
        "{rep}"
    );
}

#[test]
fn a_chain_that_does_not_verify_on_its_own_is_named_by_its_hub() {
    let t = tempfile::tempdir().unwrap();
    let (b, dir_b) = hub_log(t.path(), "hub-b", 8);
    let cp = signed(vec![b.durable_head().unwrap()]);
    drop(b);
    let path = dir_b.join(CURRENT_FILE);
    let mut l = lines(&path);
    l[2] = l[2].replace("user2", "userX");
    write_lines(&path, &l);
    let vk = key().verifying_key();
    let rep = verify_deployment(&cp, "test", &[dir_b], &vk).unwrap();
    match rep.failures.as_slice() {
        [DeploymentError::Chain { hub, err, .. }] => {
            assert_eq!(hub, "hub-b");
            assert_eq!(err.line, Some(3), "{err}");
        }
        other => panic!("expected one Chain failure, got {other:?}"),
    }
}

#[test]
fn a_forged_unreadable_or_unsigned_checkpoint_fails_clearly() {
    let t = tempfile::tempdir().unwrap();
    let (a, dir_a) = hub_log(t.path(), "hub-a", 3);
    let head = a.durable_head().unwrap();
    drop(a);
    let vk = key().verifying_key();
    let dirs = vec![dir_a];
    let file = t.path().join("cp.json");

    // Someone with write access to the database moves hub-a's head back: the
    // signature no longer holds.
    let mut cp = signed(vec![head.clone()]);
    cp.heads[0].seq -= 1;
    std::fs::write(&file, cp.to_json()).unwrap();
    let (rc, _, err) = run(verify_cmd(dirs.clone(), Some(file.clone())), Some(vk));
    assert_eq!(rc, 1);
    assert!(
        err.contains(&format!("deployment checkpoint {}", file.display()))
            && err.contains("forged or altered"),
        "{err}"
    );

    // Signed with a key that is not the deployment's.
    let mut cp = DeploymentCheckpoint::new("hub-a", 1, T, vec![head]);
    cp.sign(&other_key());
    std::fs::write(&file, cp.to_json()).unwrap();
    let (rc, _, err) = run(verify_cmd(dirs.clone(), Some(file.clone())), Some(vk));
    assert_eq!(rc, 1);
    assert!(err.contains("signed by another key"), "{err}");

    // Garbage, a missing file, no key, no checkpoint at all: clear words, no panic.
    std::fs::write(&file, "\u{0}garbage").unwrap();
    let (rc, _, err) = run(verify_cmd(dirs.clone(), Some(file.clone())), Some(vk));
    assert_eq!(rc, 1);
    assert!(err.contains("not a deployment checkpoint"), "{err}");
    let missing = t.path().join("missing.json");
    let (rc, _, err) = run(verify_cmd(dirs.clone(), Some(missing.clone())), Some(vk));
    assert_eq!(rc, 2);
    assert!(
        err.contains(&format!(
            "cannot read the deployment checkpoint {}",
            missing.display()
        )),
        "{err}"
    );
    let (rc, _, err) = run(verify_cmd(dirs.clone(), Some(file)), None);
    assert_eq!(rc, 2);
    assert!(err.contains("--key"), "{err}");
    let (rc, _, err) = run(verify_cmd(dirs, None), Some(vk));
    assert_eq!(rc, 2);
    assert!(err.contains("-c steward.toml --deployment"), "{err}");
}
