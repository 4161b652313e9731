//! After a crash: operations whose outcome the audit log had to record as `unknown` (the
//! hub died between forwarding and the answer) are reconciled with the UI server's own
//! record, its log of the operations it ran (`<log_dir>/<owner>/<server>.log`, one JSON
//! line per operation with the request id the hub signed). The result is one more audit
//! record, event `reconcile`, carrying the same request id and what the server says
//! happened. The `unknown` outcome is never rewritten (the log is append-only).
//!
//! Where several hubs share a store, a hub that dies does not come back to do this for
//! its own operations: each forwarded operation is noted in the store until its outcome
//! is written (`record::Recorder`), and the leader closes the notes of a hub that is no
//! longer connected ([`orphans`]): an `unknown` outcome on the leader's own chain (naming
//! the intent's hub and seq), then the same reconciliation. Exactly one hub closes a
//! note (taking it from the store is the decision). If the dead hub is restarted later,
//! its own recovery records the same operation `unknown` on its chain as well and
//! reconciles it again: two records of one operation, never two runs.
//!
//! What it must not do: run or retry anything (an operation is never sent twice), or
//! trust the server's log beyond what it claims about its own operations.

use crate::state::AppState;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use steward_audit::{AuditRecord, Outcome, RecordKind, SYSTEM_ACTOR};

pub const RECONCILE: &str = "reconcile";

/// How long a server may still be finishing an interrupted operation after the restart.
const PATIENCE: Duration = Duration::from_secs(120);

/// Unknown outcomes in the current audit file that no `reconcile` record closes yet.
fn pending(audit_dir: &Path) -> Vec<AuditRecord> {
    let text = std::fs::read_to_string(audit_dir.join("audit.jsonl")).unwrap_or_default();
    let mut open: BTreeMap<String, AuditRecord> = BTreeMap::new();
    for line in text.lines() {
        let Ok(r) = serde_json::from_str::<AuditRecord>(line) else {
            continue;
        };
        let Some(rid) = r.request_id.clone() else {
            continue;
        };
        if r.event == RECONCILE {
            open.remove(&rid);
        } else if r.kind == RecordKind::Outcome && r.outcome == Some(Outcome::Unknown) {
            open.insert(rid, r);
        }
    }
    open.into_values().collect()
}

/// The server's record of `rid`: Some(ok) when one of `owner`'s server logs has it.
fn server_record(log_dir: &Path, owner: &str, rid: &str) -> Option<bool> {
    let dir = log_dir.join(owner);
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains(rid)) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let f = &v["fields"];
            if f["rid"] == rid {
                if let Some(ok) = f["ok"].as_bool() {
                    return Some(ok);
                }
            }
        }
    }
    None
}

fn log_dir(state: &AppState) -> Option<PathBuf> {
    let path = state.cfg.spawner.config.as_ref()?;
    let text = std::fs::read_to_string(path).ok()?;
    steward_spawner::config::HelperConfig::parse(&text, path)
        .ok()
        .map(|c| c.log_dir)
}

/// Runs once at start, in the background: looks for each unknown outcome's operation in
/// its server's log until found or [`PATIENCE`] has passed, and audits what it found.
pub async fn run(state: &AppState) {
    reconcile_all(state, pending(&state.cfg.audit.dir)).await;
}

/// How long a hub must stay disconnected from the store before the leader closes its
/// operations: a moment's reconnection is not a death.
const GONE_FOR: Duration = Duration::from_secs(5);

/// Leader only, every few seconds: closes the in-flight notes of hubs that are gone
/// from the store (`suspects`: since when each was first seen gone).
pub async fn orphans(
    state: &actix_web::web::Data<AppState>,
    suspects: &mut HashMap<String, tokio::time::Instant>,
) {
    let leadership = &state.servers.leadership;
    if !leadership.is_leader() {
        return;
    }
    let Ok(ops) = state.store.inflight_ops().await else {
        return;
    };
    let me = leadership.hub().to_string();
    let mut gone: HashMap<String, bool> = HashMap::new();
    let mut closed = vec![];
    for op in ops.into_iter().filter(|op| op.hub != me) {
        let is_gone = match gone.get(&op.hub) {
            Some(g) => *g,
            None => {
                let connected = state.store.hub_connected(&op.hub).await.unwrap_or(true);
                let since = suspects.get(&op.hub).copied();
                let g = match (connected, since) {
                    (true, _) => false,
                    (false, None) => {
                        suspects.insert(op.hub.clone(), tokio::time::Instant::now());
                        false
                    }
                    (false, Some(t)) => t.elapsed() >= GONE_FOR,
                };
                if connected {
                    suspects.remove(&op.hub);
                }
                gone.insert(op.hub.clone(), g);
                g
            }
        };
        if !is_gone
            || !state
                .store
                .take_inflight(&op.request_id)
                .await
                .unwrap_or(false)
        {
            continue;
        }
        let Ok(intent) = serde_json::from_str::<AuditRecord>(&op.intent) else {
            tracing::error!(request_id = %op.request_id, hub = %op.hub, "an in-flight note holds no readable intent; not reconciled");
            continue;
        };
        let rec = intent
            .outcome_of(
                op.intent_seq,
                Outcome::Unknown,
                Some(format!(
                    "hub {} stopped while this operation was in flight; recorded by hub {me}",
                    op.hub
                )),
            )
            .with_extra("intent_hub", op.hub.clone());
        tracing::warn!(request_id = %op.request_id, hub = %op.hub, "closing an operation of a hub that is gone");
        if state.recorder.append(rec.clone()).await.is_ok() {
            closed.push(rec);
        }
    }
    if !closed.is_empty() {
        let st = state.clone();
        tokio::spawn(async move { reconcile_all(&st, closed).await });
    }
}

/// Looks each unknown outcome's operation up in its server's log until found or
/// [`PATIENCE`] has passed, and audits what it found.
async fn reconcile_all(state: &AppState, todo: Vec<AuditRecord>) {
    if todo.is_empty() {
        return;
    }
    let Some(logs) = log_dir(state) else {
        tracing::warn!(
            count = todo.len(),
            "operations with unknown outcome: no server log to reconcile them with"
        );
        return;
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut done: HashSet<String> = HashSet::new();
    loop {
        let last = tokio::time::Instant::now() >= deadline;
        for r in &todo {
            let (Some(rid), Some(owner)) = (r.request_id.as_deref(), r.owner.as_deref()) else {
                continue;
            };
            if done.contains(rid) {
                continue;
            }
            let found = server_record(&logs, owner, rid);
            if found.is_none() && !last {
                continue;
            }
            let (outcome, message) = match found {
                Some(true) => (Outcome::Ok, "the UI server's log says it ran and succeeded"),
                Some(false) => (Outcome::Error, "the UI server's log says it ran and failed"),
                None => (
                    Outcome::Unknown,
                    "the UI server's log has no record of it: it most likely never ran",
                ),
            };
            let rec = AuditRecord {
                owner: r.owner.clone(),
                workflow: r.workflow.clone(),
                task: r.task.clone(),
                op: r.op.clone(),
                request_id: Some(rid.to_string()),
                outcome: Some(outcome),
                message: Some(message.into()),
                ..AuditRecord::new(RecordKind::Event, RECONCILE, SYSTEM_ACTOR)
            }
            .with_extra("actor", r.actor.clone());
            if state.recorder.append(rec).await.is_ok() {
                done.insert(rid.to_string());
            }
        }
        if last || done.len() == todo.len() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
