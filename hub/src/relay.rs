//! `/user/<owner>/ws`: the authorised WebSocket relay between a browser and an owner's
//! UI server.
//!
//! Only operation messages are parsed: each is decided (policy ∩ elevation), its intent
//! made durable in the audit log, signed with a fresh per-operation JWT and forwarded;
//! the UI server's result closes the record with the outcome. Everything else (snapshots,
//! deltas, log tails) passes through untouched unless the watcher is not the owner, in
//! which case workflows they may not read are filtered out.

use crate::ops::{finish, finish_detached, PendingOp, Refusal};
use crate::ratelimit::TokenBucket;
use crate::servers::{RunningServer, ServerError, SpawnOutcome};
use crate::state::AppState;
use crate::store::Session;
use crate::web::{audit, current_session, error_json};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use steward_audit::{events, AuditRecord, Outcome, RecordKind};
use steward_protocol::wire::{ClientMessage, OpRequest, ServerMessage};
use steward_protocol::{Operation, WorkflowId};
use tokio_tungstenite::tungstenite::Message as UpMessage;

/// Starts (or finds) the owner's server, auditing a start with the actor who caused it.
pub async fn ensure_server(
    state: &AppState,
    owner: &str,
    actor: &str,
) -> Result<RunningServer, ServerError> {
    match ensure_server_profile(state, owner, actor, None).await? {
        SpawnOutcome::AlreadyRunning(s) | SpawnOutcome::Started(s) => Ok(s),
    }
}

/// [`ensure_server`] on a chosen profile (recorded in the audit record when given). Says
/// whether it started the server: one already running may be on another profile.
pub async fn ensure_server_profile(
    state: &AppState,
    owner: &str,
    actor: &str,
    profile: Option<String>,
) -> Result<SpawnOutcome, ServerError> {
    match state.servers.ensure_profile(owner, profile.clone()).await {
        Ok(SpawnOutcome::AlreadyRunning(s)) => Ok(SpawnOutcome::AlreadyRunning(s)),
        Ok(SpawnOutcome::Started(s)) => {
            state.metrics.spawns.inc();
            let rec = AuditRecord {
                owner: Some(owner.to_string()),
                message: Some(format!("pid {} in {}", s.pid, s.cgroup)),
                ..AuditRecord::new(RecordKind::Event, events::SPAWN, actor)
            }
            .with_extra("server", s.name.clone());
            let rec = match profile {
                Some(p) => rec.with_extra("profile", p),
                None => rec,
            };
            let _ = audit(state, rec).await;
            Ok(SpawnOutcome::Started(s))
        }
        Err(e) => {
            state.metrics.spawn_failures.inc();
            let rec = AuditRecord {
                owner: Some(owner.to_string()),
                message: Some(e.to_string()),
                outcome: Some(Outcome::Error),
                ..AuditRecord::new(RecordKind::Event, events::SPAWN_FAILED, actor)
            };
            let _ = audit(state, rec).await;
            Err(e)
        }
    }
}

/// Stops an owner's server through the helper and audits who did it and why.
pub async fn stop_server_audited(
    state: &AppState,
    owner: &str,
    actor: &str,
    session: Option<String>,
    why: &str,
) -> Result<(), ServerError> {
    let result = state.servers.stop(owner).await;
    let rec = AuditRecord {
        session,
        owner: Some(owner.to_string()),
        message: Some(match &result {
            Ok(()) => why.to_string(),
            Err(e) => e.to_string(),
        }),
        ..AuditRecord::new(RecordKind::Event, events::STOP, actor)
    }
    .with_extra("server", crate::servers::DEFAULT_SERVER);
    let _ = audit(state, rec).await;
    result
}

fn origin_ok(state: &AppState, req: &HttpRequest) -> bool {
    let expected = state.cfg.public_origin();
    req.headers()
        .get("origin")
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| o.trim_end_matches('/') == expected)
}

pub async fn user_ws(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    let owner = path.into_inner();
    if !origin_ok(&state, &req) {
        return Ok(error_json(
            StatusCode::FORBIDDEN,
            "WebSocket Origin missing or not this hub's public URL",
        ));
    }
    let Some(session) = current_session(&state, &req).await else {
        return Ok(error_json(StatusCode::UNAUTHORIZED, "not logged in"));
    };
    if !steward_protocol::ids::validate_user_name(&owner)
        || nix::unistd::User::from_name(&owner)
            .ok()
            .flatten()
            .is_none()
    {
        return Ok(error_json(
            StatusCode::NOT_FOUND,
            format!("no such owner {owner:?}"),
        ));
    }
    if !state.take_ws_slot(&session.user) {
        return Ok(HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", "10"))
            .json(serde_json::json!({"error": format!(
                "too many open connections: at most {} per person; close other tabs or windows",
                state.cfg.limits.ws_per_user
            )})));
    }
    // From here on the slot is released when this function returns early or the relay ends.
    let slot = WsSlot {
        state: state.clone().into_inner(),
        user: session.user.clone(),
        armed: true,
    };
    // Visiting starts the owner's server only for someone who may read something there.
    if owner != session.user
        && !state
            .policy_ops(&owner, &session, "")
            .await
            .contains(Operation::Read)
    {
        return Ok(error_json(
            StatusCode::FORBIDDEN,
            format!("you may not read {owner}'s workflows"),
        ));
    }
    let server = match ensure_server(&state, &owner, &session.user).await {
        Ok(s) => s,
        Err(ServerError::Busy) => {
            return Ok(HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", "5"))
                .json(serde_json::json!({"error": ServerError::Busy.to_string()})))
        }
        Err(e) => return Ok(error_json(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    };
    let rid = uuid::Uuid::new_v4().simple().to_string();
    let now = crate::tokens::jwt_now();
    let jwt = state
        .signer
        .sign(
            now,
            &owner,
            &session.user,
            vec![Operation::Read],
            None,
            &rid,
        )
        .map_err(actix_web::error::ErrorInternalServerError)?;
    let max = state.cfg.limits.ws_message_bytes;
    let upstream = match state.servers.connect_ws(&server, &jwt, max).await {
        Ok(ws) => ws,
        Err(first) => {
            // The server may have died or been culled since we last saw it: start afresh once.
            tracing::info!(owner, error = %first, "server unreachable; respawning");
            state.servers.forget(&owner).await;
            let server = match ensure_server(&state, &owner, &session.user).await {
                Ok(s) => s,
                Err(e) => return Ok(error_json(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
            };
            match state
                .servers
                .connect_ws(&server, &jwt_again(&state, &owner, &session, &rid)?, max)
                .await
            {
                Ok(ws) => ws,
                Err(e) => return Ok(error_json(StatusCode::BAD_GATEWAY, e.to_string())),
            }
        }
    };
    let (response, ws_session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    let addr = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let mut slot = slot;
    slot.armed = false;
    actix_web::rt::spawn(relay(
        state.into_inner(),
        owner,
        session,
        addr,
        ws_session,
        stream,
        upstream,
    ));
    Ok(response)
}

fn jwt_again(
    state: &AppState,
    owner: &str,
    s: &Session,
    rid: &str,
) -> Result<String, actix_web::Error> {
    let now = crate::tokens::jwt_now();
    state
        .signer
        .sign(now, owner, &s.user, vec![Operation::Read], None, rid)
        .map_err(actix_web::error::ErrorInternalServerError)
}

/// Gives a WebSocket slot back if the upgrade fails before the relay starts.
struct WsSlot {
    state: std::sync::Arc<AppState>,
    user: String,
    armed: bool,
}

impl Drop for WsSlot {
    fn drop(&mut self) {
        if self.armed {
            self.state.release_ws_slot(&self.user);
        }
    }
}

struct Relay {
    state: std::sync::Arc<AppState>,
    owner: String,
    session: Session,
    addr: String,
    pending: HashMap<String, PendingOp>,
    op_bucket: TokenBucket,
    /// Set on SIGTERM: no new operations; the relay ends once `pending` is empty.
    draining: bool,
}

async fn send_browser(ws: &mut actix_ws::Session, msg: &ServerMessage) -> bool {
    match serde_json::to_string(msg) {
        Ok(t) => ws.text(t).await.is_ok(),
        Err(_) => false,
    }
}

async fn relay(
    state: std::sync::Arc<AppState>,
    owner: String,
    session: Session,
    addr: String,
    mut ws: actix_ws::Session,
    mut stream: actix_ws::AggregatedMessageStream,
    upstream: crate::servers::UpstreamWs,
) {
    let state_for_guard = state.clone();
    // Registered even when the hub is already draining: this relay then just ends at once.
    let _busy = state_for_guard.drain.enter();
    let mut shutdown = state.drain.subscribe();
    let (mut up_tx, mut up_rx) = upstream.split();
    let mut r = Relay {
        op_bucket: TokenBucket::full(state.cfg.limits.ops_per_sec),
        state,
        owner,
        session,
        addr,
        pending: HashMap::new(),
        draining: false,
    };
    let far_future = tokio::time::Instant::now() + std::time::Duration::from_secs(86400 * 365);
    let drain_deadline = tokio::time::sleep_until(far_future);
    tokio::pin!(drain_deadline);
    let mut ended_by_drain = false;
    loop {
        if r.draining && r.pending.is_empty() {
            ended_by_drain = true;
            break;
        }
        tokio::select! {
            changed = shutdown.wait_for(|d| *d), if !r.draining => {
                if changed.is_err() { continue; }
                r.draining = true;
                let grace = std::time::Duration::from_secs(r.state.cfg.limits.shutdown_drain_secs);
                drain_deadline.as_mut().reset(tokio::time::Instant::now() + grace);
            }
            _ = &mut drain_deadline => {
                ended_by_drain = true;
                break;
            }
            msg = stream.recv() => {
                let Some(msg) = msg else { break };
                match msg {
                    Ok(actix_ws::AggregatedMessage::Text(text)) => {
                        match r.handle_browser(&text).await {
                            Forward::Upstream(t) => {
                                if up_tx.send(UpMessage::text(t)).await.is_err() { break; }
                            }
                            Forward::Browser(m) => {
                                if !send_browser(&mut ws, &m).await { break; }
                            }
                        }
                    }
                    Ok(actix_ws::AggregatedMessage::Binary(_)) => {
                        let m = ServerMessage::Error { id: None, message: "binary frames are not accepted; send JSON text".into() };
                        if !send_browser(&mut ws, &m).await { break; }
                    }
                    Ok(actix_ws::AggregatedMessage::Ping(p)) => {
                        if ws.pong(&p).await.is_err() { break; }
                    }
                    Ok(actix_ws::AggregatedMessage::Pong(_)) => {}
                    Ok(actix_ws::AggregatedMessage::Close(_)) => break,
                    Err(e) => {
                        let m = ServerMessage::Error { id: None, message: format!("WebSocket protocol error: {e}") };
                        let _ = send_browser(&mut ws, &m).await;
                        break;
                    }
                }
            }
            msg = up_rx.next() => {
                let Some(Ok(msg)) = msg else { break };
                match msg {
                    UpMessage::Text(t) => {
                        if let Some(out) = r.handle_server(t.as_str()).await {
                            if ws.text(out).await.is_err() { break; }
                        }
                    }
                    UpMessage::Close(_) => break,
                    _ => {}
                }
            }
        }
    }
    // Operations forwarded but never answered: their outcome is unknown.
    let why = if ended_by_drain {
        "the hub shut down before the server answered"
    } else {
        "connection closed before the server answered"
    };
    for (_, p) in r.pending.drain() {
        finish(&r.state, p, Outcome::Unknown, Some(why.into())).await;
    }
    r.state.metrics.open_websockets.dec();
    r.state.release_ws_slot(&r.session.user);
    r.state.touch(&r.owner, -1);
    // 1012 (service restart) tells the page to reconnect, which reaches the next hub.
    let close = ended_by_drain.then(|| actix_ws::CloseReason {
        code: actix_ws::CloseCode::Restart,
        description: Some("hub restarting; reconnect".into()),
    });
    let _ = ws.close(close).await;
    let _ = up_tx.close().await;
}

/// `{"type":"ping"...}` with no second `"type"` key, so the UI server cannot read it as
/// anything else. It carries no token: even a disguised operation would be refused there.
fn is_plain_ping(text: &str) -> bool {
    const PREFIX: &str = "{\"type\":\"ping\"";
    text.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.starts_with([',', '}']) && !rest.contains("\"type\""))
}

enum Forward {
    Upstream(String),
    Browser(ServerMessage),
}

impl Relay {
    async fn handle_browser(&mut self, text: &str) -> Forward {
        // Pings are the only browser traffic that is not an operation and may be large
        // (round-trip checks): pass them on without building a parse tree.
        if is_plain_ping(text) {
            return Forward::Upstream(text.to_string());
        }
        if text.len() > steward_protocol::wire::MAX_OP_MESSAGE_BYTES {
            return Forward::Browser(ServerMessage::Error {
                id: None,
                message: "message too large".into(),
            });
        }
        if let Some(fwd) = self.log_tail(text).await {
            return fwd;
        }
        let msg: ClientMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                return Forward::Browser(ServerMessage::Error {
                    id: None,
                    message: format!("malformed message: {e}; expected {{\"type\":\"op\",\"id\":..,\"op\":..,\"target\":..}} or {{\"type\":\"ping\"}}"),
                })
            }
        };
        match msg {
            // Not plain (e.g. fields reordered): forward the canonical form.
            ping @ ClientMessage::Ping { .. } => {
                Forward::Upstream(serde_json::to_string(&ping).unwrap_or_default())
            }
            ClientMessage::Op(op) => self.operation(op).await,
        }
    }

    /// `tail`/`untail` (follow a job log live): read-only, so they need read permission
    /// on the workflow and no audit record; they ride on the connection's read token.
    async fn log_tail(&mut self, text: &str) -> Option<Forward> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let kind = v.get("type")?.as_str()?;
        if kind != "tail" && kind != "untail" {
            return None;
        }
        let id = v.get("id").and_then(|i| i.as_str()).map(str::to_string);
        if kind == "tail" {
            let err = |message: String| {
                Some(Forward::Browser(ServerMessage::Error {
                    id: id.clone(),
                    message,
                }))
            };
            if v.get("token").is_some() {
                return err("tail: the hub sets tokens; do not send one".into());
            }
            let Some(wf) = v.get("workflow").and_then(|w| w.as_str()) else {
                return err("tail: workflow is required".into());
            };
            let workflow = match WorkflowId::parse(wf, &self.owner) {
                Ok(w) if w.owner == self.owner => w,
                Ok(_) => return err("tail: workflow belongs to another owner".into()),
                Err(e) => return err(format!("tail: workflow: {e}")),
            };
            if self.session.user != self.owner
                && !self
                    .state
                    .policy_ops(&self.owner, &self.session, &workflow.name)
                    .await
                    .contains(Operation::Read)
            {
                return err(format!("tail: you may not read {}", workflow.name));
            }
        }
        self.state.touch(&self.owner, 0);
        Some(Forward::Upstream(text.to_string()))
    }

    async fn operation(&mut self, req: OpRequest) -> Forward {
        let id = req.id.clone();
        if !self.op_bucket.take(self.state.cfg.limits.ops_per_sec) {
            tracing::warn!(user = %self.session.user, owner = %self.owner, "operation rate limit hit");
            return Forward::Browser(ServerMessage::Error {
                id: Some(id),
                message: format!(
                    "too many operations: at most {} per second on one connection; slow down",
                    self.state.cfg.limits.ops_per_sec
                ),
            });
        }
        if self.draining {
            return Forward::Browser(ServerMessage::Error {
                id: Some(id),
                message: "the hub is restarting; the operation was not sent. Send it again once reconnected".into(),
            });
        }
        if self.pending.contains_key(&req.id) {
            return Forward::Browser(ServerMessage::Error {
                id: Some(id.clone()),
                message: format!("an operation with id {id:?} is still in flight"),
            });
        }
        match crate::ops::authorize(&self.state, &self.owner, &mut self.session, &self.addr, req)
            .await
        {
            Ok(auth) => {
                self.pending.insert(id, auth.pending);
                Forward::Upstream(
                    serde_json::to_string(&ClientMessage::Op(auth.request)).unwrap_or_default(),
                )
            }
            Err(Refusal::Denied { op, reason }) => {
                Forward::Browser(ServerMessage::Denied { id, op, reason })
            }
            Err(Refusal::Error { message, .. }) => Forward::Browser(ServerMessage::Error {
                id: Some(id),
                message,
            }),
        }
    }

    /// Returns the text to send to the browser (None: drop it).
    async fn handle_server(&mut self, text: &str) -> Option<String> {
        // Cheap pre-check: only results and (for non-owners) state need parsing.
        let is_result = text.contains("\"result\"");
        let filter = self.session.user != self.owner;
        if !is_result && !filter {
            return Some(text.to_string());
        }
        let msg: ServerMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            // Log chunks of a tail this watcher was allowed to start pass through.
            Err(_) if text.starts_with("{\"type\":\"log") => return Some(text.to_string()),
            Err(_) => return if filter { None } else { Some(text.to_string()) },
        };
        match msg {
            ServerMessage::Result {
                ref id,
                ok,
                ref message,
            } => {
                if let Some(p) = self.pending.remove(id) {
                    let outcome = if ok { Outcome::Ok } else { Outcome::Error };
                    finish_detached(&self.state, p, outcome, Some(message.clone()));
                }
                Some(text.to_string())
            }
            ServerMessage::Snapshot { workflows } => {
                let mut visible = vec![];
                for w in workflows {
                    if self
                        .state
                        .policy_ops(&self.owner, &self.session, &w.name)
                        .await
                        .contains(Operation::Read)
                    {
                        visible.push(w);
                    }
                }
                serde_json::to_string(&ServerMessage::Snapshot { workflows: visible }).ok()
            }
            ServerMessage::Delta { ref workflow, .. } => {
                let ok = self
                    .state
                    .policy_ops(&self.owner, &self.session, workflow)
                    .await
                    .contains(Operation::Read);
                ok.then(|| text.to_string())
            }
            _ => Some(text.to_string()),
        }
    }
}
