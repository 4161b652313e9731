//! The one path of an operation, whether it came as a WebSocket message or as
//! `POST /user/<owner>/api/op`. Each step is one call into one module, in this order,
//! and no step goes back to a module already left:
//!
//! 1. parse — [`parse`] here (the target through `steward_protocol::Target`);
//! 2. session refresh — `session::Sessions::refresh` (also returns an elevation expiry
//!    to audit);
//! 3. decide — `decide::Decider::effective`;
//! 4. audit intent — `record::Recorder::intent` (the expiry, then the decision; a denial
//!    ends here);
//! 5. sign — `pki::jwt::TokenSigner::sign`;
//! 6. forward — the caller (`ws` or `http`), to the UI server;
//! 7. outcome — `record::Recorder::outcome[_detached]` with the server's answer.

use super::Relay;
use crate::http::ApiError;
use crate::pki::jwt::Grant;
use crate::record::PendingOp;
use crate::session::{deadline_rfc3339, session_ref, Session};
use steward_audit::{events, AuditRecord, Decision as AuditDecision, Outcome, RecordKind};
use steward_protocol::wire::OpRequest;
use steward_protocol::{Operation, Target};

/// An operation whose intent is on disk and which is signed, ready to forward.
pub struct Authorized {
    pub request: OpRequest,
    pub pending: PendingOp,
}

/// Why an operation was not forwarded.
pub enum Refusal {
    /// Policy or elevation said no (already audited).
    Denied { op: String, reason: String },
    /// The request itself, the session or the audit log was not in a state to go on.
    Error(ApiError),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::Error(e)
    }
}

/// A well-formed operation for `owner`'s server.
pub struct Parsed {
    pub op: Operation,
    pub target: Target,
}

/// Step 1: checks the request's shape and that its target is `owner`'s.
pub fn parse(req: &OpRequest, owner: &str) -> Result<Parsed, ApiError> {
    if req.id.is_empty() || req.id.len() > 128 {
        return Err(ApiError::bad_request(
            "id: an operation id must be 1 to 128 characters",
        ));
    }
    if req.token.is_some() {
        return Err(ApiError::bad_request(
            "token: the hub signs operations; do not send a token",
        ));
    }
    let op: Operation = req.op.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "op: unknown operation {:?}; known: {}",
            req.op,
            Operation::ALL.map(|o| o.name()).join(", ")
        ))
    })?;
    let target = Target::parse(&req.target, owner)
        .map_err(|e| ApiError::bad_request(format!("target: {e}")))?;
    if target.workflow.owner != owner {
        return Err(ApiError::bad_request(format!(
            "target belongs to {}, but this request is for {owner}'s server",
            target.workflow.owner
        )));
    }
    Ok(Parsed { op, target })
}

impl Relay {
    /// Steps 1 to 5 for `req` to `owner`'s server on behalf of `session` (updated in
    /// place with its current state). The caller forwards and closes the record.
    pub async fn authorize(
        &self,
        owner: &str,
        session: &mut Session,
        addr: &str,
        mut req: OpRequest,
    ) -> Result<Authorized, Refusal> {
        let Parsed { op, target } = parse(&req, owner)?;
        let (fresh, expiry) = self
            .sessions
            .refresh(session)
            .await
            .ok_or_else(|| ApiError::unauthorized("your session has ended; log in again"))?;
        *session = fresh;
        let now = self.sessions.now();
        let eff = self
            .decider
            .effective(owner, session, &target.workflow.name, op, now)
            .await;
        let rid = uuid::Uuid::new_v4().simple().to_string();
        let record = AuditRecord {
            actor_addr: Some(addr.to_string()),
            session: Some(session_ref(session)),
            owner: Some(owner.to_string()),
            workflow: Some(target.workflow.name.clone()),
            task: target.task_path(),
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
        // Write-ahead: the intent is durable before anything reaches the server.
        let pending = match self.recorder.intent(expiry, record, eff.allowed).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Err(Refusal::Denied {
                    op: op.name().into(),
                    reason: eff.reason,
                })
            }
            Err(e) if eff.allowed => {
                return Err(ApiError::unavailable(format!(
                    "audit log unavailable ({e}); operation refused until it can be written"
                ))
                .into())
            }
            Err(e) => {
                return Err(ApiError::unavailable(format!(
                    "audit log unavailable ({e}); operation refused"
                ))
                .into())
            }
        };
        let signed = self.signer.sign(Grant {
            owner,
            actor: &session.user,
            ops: vec![op],
            workflow: Some(target.workflow.name),
            request_id: &rid,
        });
        match signed {
            Ok(token) => {
                req.token = Some(token);
                Ok(Authorized {
                    request: req,
                    pending,
                })
            }
            Err(e) => {
                self.recorder
                    .outcome(pending, Outcome::Error, Some(e.to_string()))
                    .await;
                Err(ApiError::internal(format!("signing failed: {e}")).into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: &str, op: &str, target: &str) -> OpRequest {
        serde_json::from_value(serde_json::json!({"id": id, "op": op, "target": target})).unwrap()
    }

    #[test]
    fn parse_refuses_bad_ids_ops_and_other_owners_targets() {
        let p = parse(&req("1", "pause", "forecast//1/model"), "alice")
            .ok()
            .unwrap();
        assert_eq!(p.op, Operation::Pause);
        assert_eq!(p.target.task_path().as_deref(), Some("1/model"));
        for (r, want) in [
            (req("", "pause", "forecast"), "id:"),
            (req("1", "fly", "forecast"), "op: unknown operation"),
            (req("1", "pause", "~bob/forecast"), "belongs to bob"),
            (req("1", "pause", "fore cast"), "target:"),
        ] {
            let e = parse(&r, "alice").err().unwrap();
            assert_eq!(e.status, actix_web::http::StatusCode::BAD_REQUEST);
            assert!(e.message.contains(want), "{}", e.message);
        }
    }
}
