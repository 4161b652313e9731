//! HTTP forwarding to an owner's UI server: read-only `GET /user/<owner>/api/...`
//! with a read token, `POST /user/<owner>/api/op` through the operation path, and a
//! refusal for every other method.

use super::op::Refusal;
use super::upstream::UpstreamClients;
use super::Relay;
use crate::http::{peer_addr, ApiError, ApiResult};
use crate::pki::jwt::Grant;
use crate::session::{Authed, CsrfChecked};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use steward_audit::Outcome;
use steward_protocol::{Operation, WorkflowId};

/// The owner in a URL must be a valid user name before anything is looked up.
pub fn valid_owner(owner: &str) -> Result<(), ApiError> {
    if steward_protocol::ids::validate_user_name(owner) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "owner {owner:?} is not a valid user name"
        )))
    }
}

#[derive(Deserialize)]
pub struct WorkflowParam {
    workflow: Option<String>,
}

/// `GET /user/<owner>/api/...`: read-only requests (logs, search, summary) forwarded to
/// the owner's server with a read token scoped to the workflow named in the query.
/// Proxied answers up to this size are buffered and sent with a Content-Length.
const SMALL_BODY: u64 = 256 * 1024;

pub async fn proxy_get(
    relay: web::Data<Relay>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    q: web::Query<WorkflowParam>,
    Authed(s): Authed,
) -> ApiResult {
    let (owner, rest) = path.into_inner();
    valid_owner(&owner)?;
    // The client that forwards resolves dot segments, so `api/../ws` would reach the UI
    // server outside its /api/: forward plain paths below /api/ only.
    if rest.split('/').any(|seg| {
        seg.to_ascii_lowercase()
            .replace("%2e", ".")
            .chars()
            .all(|c| c == '.')
    }) {
        return Err(ApiError::bad_request(format!(
            "path api/{rest}: empty, '.' and '..' segments are not forwarded"
        )));
    }
    let workflow = match q.workflow.as_deref() {
        Some(w) => match WorkflowId::parse(w, &owner) {
            Ok(id) if id.owner == owner => Some(id.name),
            Ok(_) => return Err(ApiError::bad_request("workflow: belongs to another owner")),
            Err(e) => return Err(ApiError::bad_request(format!("workflow: {e}"))),
        },
        None => None,
    };
    let readable = match &workflow {
        Some(w) => {
            relay
                .decider
                .effective(&owner, &s, w, Operation::Read, relay.sessions.now())
                .await
                .allowed
        }
        None => owner == s.user,
    };
    if !readable {
        return Err(ApiError::forbidden(format!(
            "you may not read this workflow of {owner}"
        )));
    }
    relay.servers.touch(&owner, 0);
    let server = relay
        .servers
        .ensure_audited(&owner, &s.user, None)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .server();
    let client = relay
        .upstream
        .client(&relay.servers.client_tls, &server)
        .map_err(ApiError::bad_gateway)?;
    let rid = uuid::Uuid::new_v4().simple().to_string();
    let jwt = relay
        .signer
        .sign(Grant::read(&owner, &s.user, workflow, &rid))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let pq = match req.query_string() {
        "" => format!("/api/{rest}"),
        q => format!("/api/{rest}?{q}"),
    };
    match client
        .get(UpstreamClients::url(&server, &pq))
        .bearer_auth(jwt)
        .send()
        .await
    {
        Ok(resp) => {
            let status =
                StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            // The UI server runs as the owner, who can take it over: nothing it answers
            // may become active content on the hub's origin (an HTML "log" would run
            // with the visitor's session). Only JSON and plain text go out, never
            // sniffed, and sandboxed should a browser render them anyway.
            let json = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.trim_start().starts_with("application/json"));
            let mut out = HttpResponse::build(status);
            out.content_type(if json {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            });
            out.insert_header(("x-content-type-options", "nosniff"));
            out.insert_header((
                "content-security-policy",
                "default-src 'none'; sandbox; frame-ancestors 'none'",
            ));
            // The log API's offsets and sizes; nothing else from the UI server is trusted
            // to reach the browser (no cookies, no caching or security headers).
            for (name, value) in resp.headers() {
                if let (true, Ok(v)) = (name.as_str().starts_with("x-log-"), value.to_str()) {
                    out.insert_header((name.as_str(), v));
                }
            }
            // Small answers go out whole with a length (one write, no chunk framing);
            // large ones (log ranges) stream.
            if resp.content_length().is_some_and(|n| n <= SMALL_BODY) {
                match resp.bytes().await {
                    Ok(b) => Ok(out.body(b)),
                    Err(e) => Err(ApiError::bad_gateway(format!(
                        "{owner}'s server: {}",
                        UpstreamClients::describe(&e)
                    ))),
                }
            } else {
                Ok(out.streaming(futures_util::TryStreamExt::map_err(
                    resp.bytes_stream(),
                    actix_web::error::ErrorBadGateway,
                )))
            }
        }
        Err(e) => Err(ApiError::bad_gateway(format!(
            "{owner}'s server: {}",
            UpstreamClients::describe(&e)
        ))),
    }
}

/// `POST /user/{owner}/api/op`: the HTTP twin of a WebSocket operation message, for
/// scripts. The same path decides, audits, signs and forwards it; the UI server's status
/// and `{"type":"result",..}` body come back unchanged.
pub async fn proxy_op(
    relay: web::Data<Relay>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    CsrfChecked(mut s): CsrfChecked,
) -> ApiResult {
    let owner = path.into_inner();
    valid_owner(&owner)?;
    let Some(_busy) = relay.drain.enter() else {
        return Err(ApiError::unavailable(
            "the hub is restarting; the operation was not sent. Retry shortly",
        )
        .retry_after(5));
    };
    let op: steward_protocol::wire::OpRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "request body: {e}; expected {{\"id\": ID, \"op\": OPERATION, \"target\": \"workflow[//cycle/task]\", \"args\": {{..}}}}"
        ))
    })?;
    if !relay.ops.take(&s.kind.key()) {
        return Err(ApiError::too_many(relay.ops.refusal(), 1));
    }
    let addr = peer_addr(&req);
    let auth = match relay.authorize(&owner, &mut s, &addr, op).await {
        Ok(a) => a,
        Err(Refusal::Denied { op, reason }) => {
            return Err(ApiError::forbidden(reason.clone())
                .with_body(json!({"type": "denied", "op": op, "reason": reason})))
        }
        Err(Refusal::Error(e)) => return Err(e),
    };
    relay.servers.touch(&owner, 0);
    let server = match relay.servers.ensure_audited(&owner, &s.user, None).await {
        Ok(srv) => srv.server(),
        Err(e) => {
            let msg = format!("{owner}'s server could not start: {e}");
            relay
                .recorder
                .outcome(auth.pending, Outcome::Error, Some(msg.clone()))
                .await;
            return Err(ApiError::unavailable(msg));
        }
    };
    let client = match relay.upstream.client(&relay.servers.client_tls, &server) {
        Ok(c) => c,
        Err(e) => {
            relay
                .recorder
                .outcome(auth.pending, Outcome::Error, Some(e.clone()))
                .await;
            return Err(ApiError::bad_gateway(e));
        }
    };
    let mut request = auth.request;
    let token = request.token.take().unwrap_or_default();
    let sent = client
        .post(UpstreamClients::url(&server, "/api/op"))
        .bearer_auth(token)
        .json(&request)
        .send()
        .await;
    let answer = match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            resp.bytes().await.map(|b| (status, b))
        }
        Err(e) => Err(e),
    };
    match answer {
        Ok((status, bytes)) => {
            let result: Option<steward_protocol::wire::ServerMessage> =
                serde_json::from_slice(&bytes).ok();
            let (outcome, message) = match result {
                Some(steward_protocol::wire::ServerMessage::Result { ok, message, .. }) => {
                    (if ok { Outcome::Ok } else { Outcome::Error }, message)
                }
                _ => (
                    Outcome::Error,
                    format!(
                        "server answered {status}: {}",
                        String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                    ),
                ),
            };
            relay
                .recorder
                .outcome(auth.pending, outcome, Some(message))
                .await;
            Ok(
                HttpResponse::build(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                )
                .content_type("application/json")
                .body(bytes),
            )
        }
        Err(e) => {
            // Sent but unanswered: the server may or may not have applied it.
            let msg = format!(
                "{owner}'s server did not answer: {}",
                UpstreamClients::describe(&e)
            );
            relay
                .recorder
                .outcome(auth.pending, Outcome::Unknown, Some(msg.clone()))
                .await;
            Err(ApiError::bad_gateway(msg))
        }
    }
}

/// Any other method under `/user/{owner}/api/`: the hub forwards only what it can decide
/// (reads, and operations through [`proxy_op`]); anything else would reach the owner's
/// server without a decision, so it is refused here.
pub async fn proxy_other(req: HttpRequest) -> ApiResult {
    let allow = if req.path().ends_with("/api/op") {
        "POST"
    } else {
        "GET"
    };
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not forwarded to UI servers: use GET to read, or POST /user/<owner>/api/op for an operation",
            req.method()
        ),
    )
    .with_allow(allow))
}
