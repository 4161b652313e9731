//! Helpers shared by the integration tests.
#![allow(dead_code)]

use ed25519_dalek::SigningKey;
use std::path::{Path, PathBuf};
use steward_audit::{events, AuditConfig, AuditRecord, Decision, Outcome, RecordKind};

pub fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

pub fn other_key() -> SigningKey {
    SigningKey::from_bytes(&[8u8; 32])
}

pub fn cfg(dir: &Path) -> AuditConfig {
    let mut c = AuditConfig::new(dir);
    c.signing_key = Some(key());
    c.checkpoint_every = 5;
    c
}

/// An allowed `stop` intent on alice's workflow by `actor`.
pub fn intent(actor: &str, n: u64) -> AuditRecord {
    AuditRecord {
        kind: RecordKind::Intent,
        event: events::OP.into(),
        actor: actor.into(),
        actor_addr: Some("192.0.2.7".into()),
        session: Some(format!("sess-{n}")),
        owner: Some("alice".into()),
        workflow: Some("atmosphere_stage/clouds".into()),
        task: Some(format!("{n}/climb")),
        op: Some("stop".into()),
        decision: Some(Decision::Allow),
        reason: Some("site policy: group:ops may CONTROL".into()),
        elevation: Some("execute".into()),
        elevation_deadline: Some("2026-11-23T10:29:40Z".into()),
        request_id: Some(format!("req-{n}")),
        ..Default::default()
    }
}

pub fn outcome(intent: &AuditRecord, seq: u64) -> AuditRecord {
    intent.outcome_of(seq, Outcome::Ok, None)
}

pub fn event(ev: &str, actor: &str) -> AuditRecord {
    AuditRecord::new(RecordKind::Event, ev, actor)
}

pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

pub fn write_lines(path: &Path, lines: &[String]) {
    let mut s = lines.join("\n");
    s.push('\n');
    std::fs::write(path, s).unwrap();
}

/// Copies every file of `src` into a fresh temp dir.
pub fn copy_dir(src: &Path) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), t.path().join(e.file_name())).unwrap();
    }
    let p = t.path().to_path_buf();
    (t, p)
}
