//! One path for every operation a person asks for, whether it arrives as a WebSocket
//! message or as `POST /user/<owner>/api/op`: validate, re-read the session, decide
//! (policy ∩ elevation), make the intent durable, sign a single-use JWT. The caller
//! forwards the signed request and closes the record with [`finish`].

use crate::db::Session;
use crate::state::AppState;
use crate::web::{audit, deadline_rfc3339, session_ref};
use actix_web::http::StatusCode;
use steward_audit::{events, AuditRecord, Decision as AuditDecision, Outcome, RecordKind};
use steward_protocol::wire::OpRequest;
use steward_protocol::{Operation, TaskId, WorkflowId};

/// An operation whose intent is on disk and which is signed, ready to forward.
pub struct Authorized {
    pub request: OpRequest,
    pub pending: PendingOp,
}

/// What is needed to write the outcome record of a forwarded operation.
pub struct PendingOp {
    intent: AuditRecord,
    intent_seq: u64,
}

impl PendingOp {
    fn outcome(self, outcome: Outcome, message: Option<String>) -> AuditRecord {
        self.intent.outcome_of(self.intent_seq, outcome, message)
    }
}

/// Why an operation was not forwarded.
pub enum Refusal {
    /// Policy or elevation said no (already audited).
    Denied { op: String, reason: String },
    /// The request itself, the session or the audit log was not in a state to go on.
    Error { status: StatusCode, message: String },
}

fn error(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal::Error {
        status,
        message: message.into(),
    }
}

/// Splits `target` into the workflow and, for a task target, `cycle/task[/job]`.
fn parse_target(target: &str, owner: &str) -> Result<(WorkflowId, Option<String>), String> {
    if target.contains("//") {
        let t = TaskId::parse(target, owner).map_err(|e| format!("target: {e}"))?;
        let task = t.path();
        Ok((t.workflow, Some(task)))
    } else {
        WorkflowId::parse(target, owner)
            .map(|w| (w, None))
            .map_err(|e| format!("target: {e}"))
    }
}

/// Re-reads the session: it may have been revoked or its elevation may have expired
/// since the connection opened.
fn fresh_session(state: &AppState, session: &Session) -> Option<Session> {
    if session.id_hash.starts_with("token:") {
        crate::apitokens::revalidate(state, session)
    } else {
        state.db.session(&session.id_hash).ok().flatten()
    }
}

/// Decides, audits and signs `req` for `owner`'s server on behalf of `session`
/// (updated in place with its current state).
pub async fn authorize(
    state: &AppState,
    owner: &str,
    session: &mut Session,
    addr: &str,
    mut req: OpRequest,
) -> Result<Authorized, Refusal> {
    if req.id.is_empty() || req.id.len() > 128 {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "id: an operation id must be 1 to 128 characters",
        ));
    }
    if req.token.is_some() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "token: the hub signs operations; do not send a token",
        ));
    }
    let op: Operation = req.op.parse().map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            format!(
                "op: unknown operation {:?}; known: {}",
                req.op,
                Operation::ALL.map(|o| o.name()).join(", ")
            ),
        )
    })?;
    let (workflow, task) =
        parse_target(&req.target, owner).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    if workflow.owner != owner {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "target belongs to {}, but this request is for {owner}'s server",
                workflow.owner
            ),
        ));
    }
    *session = fresh_session(state, session).ok_or_else(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "your session has ended; log in again",
        )
    })?;
    crate::web::audit_expiry_once(state, session).await;
    let eff = state.effective(owner, session, &workflow.name, op).await;
    let rid = uuid::Uuid::new_v4().simple().to_string();
    let record = AuditRecord {
        actor_addr: Some(addr.to_string()),
        session: Some(session_ref(session)),
        owner: Some(owner.to_string()),
        workflow: Some(workflow.name.clone()),
        task,
        op: Some(op.name().into()),
        decision: Some(if eff.allowed {
            AuditDecision::Allow
        } else {
            AuditDecision::Deny
        }),
        reason: Some(eff.reason.clone()),
        elevation: Some(eff.class_now.name().into()),
        elevation_deadline: deadline_rfc3339(session.deadline),
        request_id: Some(rid.clone()),
        ..AuditRecord::new(RecordKind::Intent, events::OP, &session.user)
    };
    if !eff.allowed {
        let rec = AuditRecord {
            kind: RecordKind::Event,
            ..record
        };
        if let Err(e) = audit(state, rec).await {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("audit log unavailable ({e}); operation refused"),
            ));
        }
        return Err(Refusal::Denied {
            op: op.name().into(),
            reason: eff.reason,
        });
    }
    // Write-ahead: the intent is durable before anything reaches the server.
    let intent_seq = audit(state, record.clone()).await.map_err(|e| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("audit log unavailable ({e}); operation refused until it can be written"),
        )
    })?;
    let pending = PendingOp {
        intent: record,
        intent_seq,
    };
    let signed = state.signer.sign(
        crate::tokens::jwt_now(),
        owner,
        &session.user,
        vec![op],
        Some(workflow.name),
        &rid,
    );
    match signed {
        Ok(token) => {
            req.token = Some(token);
            Ok(Authorized {
                request: req,
                pending,
            })
        }
        Err(e) => {
            finish(state, pending, Outcome::Error, Some(e.to_string())).await;
            Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("signing failed: {e}"),
            ))
        }
    }
}

/// Queues the outcome record without waiting for the disk, so a result reaches the
/// browser one flush sooner. Only the intent must be durable before forwarding (write-
/// ahead); an outcome lost to a crash is reported as unknown at the next start, and the
/// shutdown path waits for every queued record (see `app::shut_down`).
pub fn finish_detached(
    state: &AppState,
    pending: PendingOp,
    outcome: Outcome,
    message: Option<String>,
) {
    let rec = pending.outcome(outcome, message);
    let log = state.audit.clone();
    let queued = state.audit.append_queued(rec.clone());
    if queued.is_err() {
        state.metrics.audit_failures.inc();
    }
    // An outcome that cannot be written now (disk full) is kept and written once the log
    // works again: an operation that ran must not end with its intent alone.
    actix_web::rt::spawn(async move {
        if let Ok(rx) = queued {
            if let Ok(Ok(_)) = rx.await {
                return;
            }
        }
        tracing::error!("audit log write failed (operation outcome); retrying");
        for _ in 0..OUTCOME_RETRIES {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            if log.append(rec.clone()).await.is_ok() {
                tracing::info!("operation outcome written after a retry");
                return;
            }
        }
        tracing::error!(
            request_id = rec.request_id.as_deref().unwrap_or(""),
            "operation outcome not written; the next start records it as unknown"
        );
    });
}

/// How many times (once a second) an outcome is retried while the log cannot be written.
const OUTCOME_RETRIES: u32 = 3600;

/// Writes the outcome record that closes a forwarded operation's intent.
pub async fn finish(
    state: &AppState,
    pending: PendingOp,
    outcome: Outcome,
    message: Option<String>,
) {
    let _ = audit(state, pending.outcome(outcome, message)).await;
}
