//! `/user/<owner>/ws`: the authorised WebSocket relay between a browser and an owner's
//! UI server.
//!
//! Only operation messages are parsed: each is decided (policy ∩ elevation), its intent
//! made durable in the audit log, signed with a fresh per-operation JWT and forwarded;
//! the UI server's result closes the record with the outcome. Everything else (snapshots,
//! deltas, log tails) passes through untouched unless the watcher is not the owner, in
//! which case workflows they may not read are filtered out.

use super::op::Refusal;
use super::Relay;
use crate::http::{peer_addr, ApiError};
use crate::pki::jwt::Grant;
use crate::record::PendingOp;
use crate::servers::ServerError;
use crate::session::{Authed, Session};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use steward_audit::Outcome;
use steward_protocol::wire::{ClientMessage, OpRequest, ServerMessage};
use steward_protocol::WorkflowId;
use tokio_tungstenite::tungstenite::Message as UpMessage;

/// `GET /user/<owner>/ws`: checks Origin, session and owner, takes a connection slot,
/// starts the owner's server if needed, connects to it and hands both ends to the relay.
pub async fn user_ws(
    relay: web::Data<Relay>,
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<String>,
    authed: Result<Authed, ApiError>,
) -> Result<HttpResponse, actix_web::Error> {
    let owner = path.into_inner();
    relay.check_ws_origin(&req)?;
    let Authed(session) = authed?;
    if !steward_protocol::ids::validate_user_name(&owner)
        || nix::unistd::User::from_name(&owner)
            .ok()
            .flatten()
            .is_none()
    {
        return Err(ApiError::not_found(format!("no such owner {owner:?}")).into());
    }
    if !relay.ws_slots.take(&session.user) {
        return Err(ApiError::too_many(
            format!(
                "too many open connections: at most {} per person; close other tabs or windows",
                relay.ws_slots.max()
            ),
            10,
        )
        .into());
    }
    // From here on the slot is released when this function returns early or the relay ends.
    let slot = WsSlot {
        relay: relay.clone().into_inner(),
        user: session.user.clone(),
        armed: true,
    };
    // Visiting starts the owner's server only for someone who may read something there.
    if !relay.decider.may_read(&owner, &session, "").await {
        return Err(ApiError::forbidden(format!("you may not read {owner}'s workflows")).into());
    }
    let server = match relay
        .servers
        .ensure_audited(&owner, &session.user, None)
        .await
    {
        Ok(s) => s.server(),
        Err(e @ ServerError::Busy) => return Err(ApiError::too_many(e.to_string(), 5).into()),
        Err(e) => return Err(ApiError::unavailable(e.to_string()).into()),
    };
    let rid = uuid::Uuid::new_v4().simple().to_string();
    let read_token = || {
        relay
            .signer
            .sign(Grant::read(&owner, &session.user, None, &rid))
            .map_err(|e| ApiError::internal(e.to_string()))
    };
    let max = relay.limits.ws_message_bytes;
    let upstream = match relay.servers.connect_ws(&server, &read_token()?, max).await {
        Ok(ws) => ws,
        Err(first) => {
            // The server may have died or been culled since we last saw it: start afresh once.
            tracing::info!(owner, error = %first, "server unreachable; respawning");
            relay
                .servers
                .forget_unreachable(&owner, &first.to_string())
                .await;
            let server = match relay
                .servers
                .ensure_audited(&owner, &session.user, None)
                .await
            {
                Ok(s) => s.server(),
                Err(e) => return Err(ApiError::unavailable(e.to_string()).into()),
            };
            match relay.servers.connect_ws(&server, &read_token()?, max).await {
                Ok(ws) => ws,
                Err(e) => return Err(ApiError::bad_gateway(e.to_string()).into()),
            }
        }
    };
    let (response, ws_session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    let addr = peer_addr(&req);
    let mut slot = slot;
    slot.armed = false;
    actix_web::rt::spawn(run(
        relay.into_inner(),
        owner,
        session,
        addr,
        ws_session,
        stream,
        upstream,
    ));
    Ok(response)
}

/// Gives a WebSocket slot back if the upgrade fails before the relay starts.
struct WsSlot {
    relay: Arc<Relay>,
    user: String,
    armed: bool,
}

impl Drop for WsSlot {
    fn drop(&mut self) {
        if self.armed {
            self.relay.ws_slots.release(&self.user);
        }
    }
}

/// One relayed connection.
struct Conn {
    relay: Arc<Relay>,
    owner: String,
    session: Session,
    addr: String,
    pending: HashMap<String, PendingOp>,
    /// Set on SIGTERM: no new operations; the relay ends once `pending` is empty.
    draining: bool,
}

async fn send_browser(ws: &mut actix_ws::Session, msg: &ServerMessage) -> bool {
    match serde_json::to_string(msg) {
        Ok(t) => ws.text(t).await.is_ok(),
        Err(_) => false,
    }
}

async fn run(
    relay: Arc<Relay>,
    owner: String,
    session: Session,
    addr: String,
    mut ws: actix_ws::Session,
    mut stream: actix_ws::AggregatedMessageStream,
    upstream: crate::servers::UpstreamWs,
) {
    let relay_for_guard = relay.clone();
    // Registered even when the hub is already draining: this relay then just ends at once.
    let _busy = relay_for_guard.drain.enter();
    let mut shutdown = relay.drain.subscribe();
    let (mut up_tx, mut up_rx) = upstream.split();
    let mut r = Conn {
        relay,
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
                let grace = std::time::Duration::from_secs(r.relay.limits.shutdown_drain_secs);
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
        r.relay
            .recorder
            .outcome(p, Outcome::Unknown, Some(why.into()))
            .await;
    }
    r.relay.metrics.open_websockets.dec();
    r.relay.ws_slots.release(&r.session.user);
    r.relay.servers.touch(&r.owner, -1);
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

impl Conn {
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
            if !self
                .relay
                .decider
                .may_read(&self.owner, &self.session, &workflow.name)
                .await
            {
                return err(format!("tail: you may not read {}", workflow.name));
            }
        }
        self.relay.servers.touch(&self.owner, 0);
        Some(Forward::Upstream(text.to_string()))
    }

    async fn operation(&mut self, req: OpRequest) -> Forward {
        let id = req.id.clone();
        if !self.relay.ops.take(&self.session.kind.key()) {
            tracing::warn!(user = %self.session.user, owner = %self.owner, "operation rate limit hit");
            return Forward::Browser(ServerMessage::Error {
                id: Some(id),
                message: self.relay.ops.refusal(),
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
        match self
            .relay
            .authorize(&self.owner, &mut self.session, &self.addr, req)
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
            Err(Refusal::Error(e)) => Forward::Browser(ServerMessage::Error {
                id: Some(id),
                message: e.message,
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
                // Only the answer to an operation this relay forwarded, and only the
                // first: a server cannot answer for operations the hub decided itself
                // (a denial) or never saw, nor take back its answer.
                let p = self.pending.remove(id)?;
                let outcome = if ok { Outcome::Ok } else { Outcome::Error };
                self.relay
                    .recorder
                    .outcome_detached(p, outcome, Some(message.clone()));
                Some(text.to_string())
            }
            ServerMessage::Snapshot { workflows } => {
                let mut visible = vec![];
                for w in workflows {
                    if self
                        .relay
                        .decider
                        .may_read(&self.owner, &self.session, &w.name)
                        .await
                    {
                        visible.push(w);
                    }
                }
                serde_json::to_string(&ServerMessage::Snapshot { workflows: visible }).ok()
            }
            ServerMessage::Delta { ref workflow, .. } => {
                let ok = self
                    .relay
                    .decider
                    .may_read(&self.owner, &self.session, workflow)
                    .await;
                ok.then(|| text.to_string())
            }
            _ => Some(text.to_string()),
        }
    }
}
