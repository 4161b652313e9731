//! Support for benchmarks and tests: realistic records, and a fast generator of
//! large valid logs (the same canonical lines and checkpoints the writer produces,
//! written without fsync). Not part of the API.

use crate::chain::{hash_line, hex32, sign_anchor, Domain, Hash, GENESIS};
use crate::record::{
    events, format_time, AuditRecord, Decision, Outcome, RecordKind, SYSTEM_ACTOR,
};
use crate::CURRENT_FILE;
use ed25519_dalek::SigningKey;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

const USERS: [&str; 8] = [
    "jacintar", "alice", "bob", "carol", "dmitri", "eun", "farah", "gustavo",
];
const OPS: [&str; 6] = ["stop", "pause", "resume", "hold", "trigger", "kill"];

/// A realistic operation record number `i` (intent for even, outcome for odd `i`).
pub fn sample_record(i: u64) -> AuditRecord {
    let actor = USERS[(i % 7) as usize];
    let owner = USERS[((i / 7) % 8) as usize];
    let op = OPS[((i / 3) % 6) as usize];
    let base =
        chrono::DateTime::from_timestamp(1_795_000_000 + (i / 100) as i64, 0).unwrap_or_default();
    let mut r = AuditRecord {
        time: format_time(base),
        kind: if i & 1 == 0 {
            RecordKind::Intent
        } else {
            RecordKind::Outcome
        },
        event: events::OP.into(),
        actor: actor.into(),
        actor_addr: Some(format!(
            "10.1.{}.{}:5{:04}",
            i % 200,
            (i / 200) % 250,
            i % 9999
        )),
        session: Some(format!(
            "s-{:016x}",
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 8
        )),
        owner: Some(owner.into()),
        workflow: Some(format!("atmosphere_stage/run{}", i % 40)),
        task: Some(format!(
            "2026112{}T{:02}00Z/climb_{}",
            i % 10,
            i % 24,
            i % 13
        )),
        op: Some(op.into()),
        decision: Some(Decision::Allow),
        reason: Some(format!(
            "user policy of {owner}: grants CONTROL to group:ops"
        )),
        elevation: Some("execute".into()),
        elevation_deadline: Some(format_time(base + chrono::TimeDelta::minutes(15))),
        request_id: Some(format!("req-{i:012}")),
        ..Default::default()
    };
    if r.kind == RecordKind::Outcome {
        r.intent_seq = Some(i);
        r.outcome = Some(Outcome::Ok);
        r.message = Some("done".into());
    }
    r
}

/// Writes a valid log of about `target_bytes` into `dir` (rotated every
/// `rotate_bytes`, a checkpoint every `checkpoint_every` records, signed with `key`).
/// Returns (records, bytes).
pub fn generate(
    dir: &Path,
    target_bytes: u64,
    rotate_bytes: u64,
    checkpoint_every: u64,
    key: Option<&SigningKey>,
) -> io::Result<(u64, u64)> {
    std::fs::create_dir_all(dir)?;
    let mut prev: Hash = GENESIS;
    let mut seq = 1u64;
    let mut total = 0u64;
    let mut file_bytes = 0u64;
    let mut file_first = 1u64;
    let mut since_cp = 0u64;
    let mut out = BufWriter::with_capacity(1 << 20, File::create(dir.join(CURRENT_FILE))?);
    let mut line = Vec::with_capacity(4096);
    let mut i = 0u64;
    while total < target_bytes {
        let rotate = file_bytes >= rotate_bytes;
        let mut rec = if since_cp >= checkpoint_every || rotate {
            let mut c = AuditRecord {
                time: format_time(
                    chrono::DateTime::from_timestamp(1_795_000_000 + (i / 100) as i64, 0)
                        .unwrap_or_default(),
                ),
                kind: RecordKind::Checkpoint,
                event: events::CHECKPOINT.into(),
                actor: SYSTEM_ACTOR.into(),
                ..Default::default()
            };
            c.extra.insert("anchor_seq".into(), (seq - 1).into());
            c.extra.insert("anchor_hash".into(), hex32(&prev).into());
            if let Some(k) = key {
                c.extra.insert(
                    "sig".into(),
                    sign_anchor(k, Domain::Checkpoint, seq - 1, &prev).into(),
                );
                c.extra.insert(
                    "key".into(),
                    hex::encode(k.verifying_key().as_bytes()).into(),
                );
            }
            c.extra
                .insert("open_intents".into(), Vec::<u64>::new().into());
            since_cp = 0;
            c
        } else {
            i += 1;
            since_cp += 1;
            let mut r = sample_record(i);
            if r.kind == RecordKind::Outcome {
                r.intent_seq = Some(seq - 1);
            }
            r
        };
        rec.seq = seq;
        rec.prev = hex32(&prev);
        line.clear();
        serde_json::to_writer(&mut line, &rec).map_err(io::Error::other)?;
        prev = hash_line(&line);
        line.push(b'\n');
        out.write_all(&line)?;
        seq += 1;
        total += line.len() as u64;
        file_bytes += line.len() as u64;
        if rotate {
            out.flush()?;
            drop(out);
            std::fs::rename(
                dir.join(CURRENT_FILE),
                dir.join(format!("audit-{file_first:012}.jsonl")),
            )?;
            out = BufWriter::with_capacity(1 << 20, File::create(dir.join(CURRENT_FILE))?);
            file_first = seq;
            file_bytes = 0;
        }
    }
    out.flush()?;
    Ok((seq - 1, total))
}

/// A clock for `AuditConfig::clock` that moves only when told to, so a test of
/// checkpoints by time runs without waiting.
#[derive(Clone)]
pub struct ManualClock {
    base: std::time::Instant,
    offset_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock {
            base: std::time::Instant::now(),
            offset_ms: Default::default(),
        }
    }
}

impl ManualClock {
    pub fn advance(&self, d: std::time::Duration) {
        self.offset_ms
            .fetch_add(d.as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn clock(&self) -> crate::AuditClock {
        let me = self.clone();
        crate::AuditClock::from_fn(move || {
            me.base
                + std::time::Duration::from_millis(
                    me.offset_ms.load(std::sync::atomic::Ordering::SeqCst),
                )
        })
    }
}
