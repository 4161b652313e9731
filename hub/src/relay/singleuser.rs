//! Browsers to a JupyterHub single-user server (`cylc hubapp`) under
//! `/user/<owner>/cylc…`: Cylc's GraphQL over HTTP through the gate
//! (`cylc::graphql`), every mutation decided and audited on the one operation path,
//! subscriptions over the `graphql-ws` WebSocket as reads, and the Cylc UI's own
//! files as reads.
//!
//! What reaches the server: the request with the browser's cookies, `Authorization`
//! and XSRF header removed and a hub-issued token for (visitor, owner) put in
//! `Authorization` instead; `Host` and `Origin` as the browser sent them (the server
//! compares them on a WebSocket). What comes back: status, body and a few content
//! headers; never `Set-Cookie`. Steward's CSRF rule stands in front: a state-changing
//! request needs the session's CSRF token or an `Origin` that is this hub's (the
//! session cookie is `SameSite=Strict`; the Cylc UI sends no Steward header).

use super::op::Refusal;
use super::Relay;
use crate::cylc::answer::{self, FieldOutcome};
use crate::cylc::graphql::{self, MutationCall, Route, TaskTarget, Verdict};
use crate::http::{peer_addr, ApiError};
use crate::record::PendingOp;
use crate::servers::{RunningServer, ServerError};
use crate::session::{check_csrf, Authed, Session};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use steward_audit::Outcome;
use steward_protocol::wire::OpRequest;
use steward_protocol::Endpoint;
use tokio_tungstenite::tungstenite::Message as UpMessage;

/// Response headers of the server that reach the browser; everything else (cookies
/// above all) stays behind.
const PASSED_HEADERS: &[&str] = &[
    "content-type",
    "cache-control",
    "etag",
    "last-modified",
    "content-security-policy",
];

fn graphql_refusal(status: u16, keys: &[&str], message: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN))
        .content_type("application/json")
        .json(answer::denial(keys, message))
}

/// The `Host` the browser used (the server checks it against `Origin`).
fn public_host(relay: &Relay) -> &str {
    relay
        .public_origin
        .split_once("://")
        .map_or(relay.public_origin.as_str(), |(_, h)| h)
}

/// The owner's running single-user server, started if needed (a visit by someone who
/// may read there starts it, as for Steward's own server).
async fn server_for(
    relay: &Relay,
    owner: &str,
    session: &Session,
) -> Result<(RunningServer, String), ApiError> {
    super::http::valid_owner(owner)?;
    if !relay.decider.may_read(owner, session, "").await {
        return Err(ApiError::forbidden(format!(
            "you may not read {owner}'s workflows"
        )));
    }
    // The Cylc UI server answers queries and subscriptions for all of the owner's
    // workflows (reads are per owner there). Someone the owner's policy lets read only
    // some of them is not let in, rather than shown the rest; each `[[workflows]]`
    // pattern is decided as a workflow name (a pattern matches itself).
    if owner != session.user {
        if let Some(policy) = relay.decider.user_policy(owner).await {
            for w in policy.workflows() {
                if !relay.decider.may_read(owner, session, &w.pattern).await {
                    return Err(ApiError::forbidden(format!(
                        "{owner}'s policy lets you read only some of their workflows ({:?} is not one), and the Cylc UI would show you all of them; use Steward's own view of {owner}'s workflows",
                        w.pattern
                    )));
                }
            }
        }
    }
    let server = match relay
        .servers
        .ensure_audited(owner, &session.user, None)
        .await
    {
        Ok(s) => s.server(),
        Err(e @ ServerError::Busy) => return Err(ApiError::too_many(e.to_string(), 5)),
        Err(e) => return Err(ApiError::unavailable(e.to_string())),
    };
    let Endpoint::SingleUser { path } = &server.endpoint else {
        return Err(ApiError::not_found(format!(
            "{owner}'s server is Steward's own UI server, not a Cylc UI server: use /user/{owner}/ws"
        )));
    };
    Ok((server.clone(), path.clone()))
}

fn token_for(relay: &Relay, session: &Session, owner: &str) -> Result<String, ApiError> {
    relay
        .servers
        .singleuser()
        .and_then(|su| su.visitor_token(&session.user, owner, relay.sessions.now()))
        .ok_or_else(|| ApiError::internal("no single-user token could be issued"))
}

fn client_for(relay: &Relay, socket: &str) -> Result<reqwest::Client, ApiError> {
    let mut map = relay
        .singleuser_clients
        .lock()
        .map_err(|_| ApiError::internal("client table lock poisoned"))?;
    if let Some(c) = map.get(socket) {
        return Ok(c.clone());
    }
    // Plain HTTP on the socket; reqwest wants a TLS configuration all the same (the
    // hub installs no process-wide rustls provider), so it gets the hub's client one.
    let c = reqwest::Client::builder()
        .use_preconfigured_tls((*relay.servers.client_tls).clone())
        .unix_socket(std::path::PathBuf::from(socket))
        .timeout(std::time::Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(std::time::Duration::from_secs(4))
        .build()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    map.insert(socket.to_string(), c.clone());
    Ok(c)
}

/// `/user/<owner>/cylc` and everything below it, but the subscriptions WebSocket.
pub async fn proxy(
    relay: web::Data<Relay>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    Authed(mut session): Authed,
) -> Result<HttpResponse, ApiError> {
    let (owner, rest) = path.into_inner();
    let suffix = format!("cylc{rest}");
    if let Err(why) = plain_suffix(&suffix) {
        return Err(ApiError::bad_request(format!("path {suffix}: {why}")));
    }
    let method = req.method().as_str().to_ascii_uppercase();
    let reading = method == "GET" || method == "HEAD";
    if !reading && !relay.origin_is_ours(&req) {
        check_csrf(&req, &session)?;
    }
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    let (server, socket) = server_for(&relay, &owner, &session).await?;
    relay.servers.touch(&owner, 0);
    let route = graphql::route(&suffix);
    let calls = match route {
        Route::Subscriptions => {
            return Err(ApiError::bad_request(
                "cylc/subscriptions is a WebSocket (sub-protocol graphql-ws)",
            ))
        }
        Route::Other if reading => vec![],
        Route::Other => {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                "{method} {suffix} is not forwarded: only reads, and Cylc GraphQL at cylc/graphql"
            ),
            )
            .with_allow("GET"))
        }
        Route::Graphql | Route::GraphqlBatch => {
            let verdict = graphql::classify_http(
                &graphql::HttpRequest {
                    method: &method,
                    path_suffix: &suffix,
                    query_string: req.query_string(),
                    content_type,
                    body: &body,
                    owner: &owner,
                },
                None,
            );
            match verdict {
                Verdict::Refuse(r) => {
                    tracing::info!(owner, actor = %session.user, reason = %r.reason, "GraphQL request refused");
                    return Ok(graphql_refusal(r.status, &[], &r.reason));
                }
                Verdict::Read => vec![],
                Verdict::Decide(calls) => calls,
            }
        }
    };
    let Some(_busy) = relay.drain.enter() else {
        return Err(ApiError::unavailable(
            "the hub is restarting; the request was not sent. Retry shortly",
        )
        .retry_after(5));
    };
    let addr = peer_addr(&req);
    let mut pending: Vec<(String, PendingOp)> = vec![];
    if !calls.is_empty() {
        if !relay.ops.take(&session.kind.key()) {
            return Err(ApiError::too_many(relay.ops.refusal(), 1));
        }
        match decide_all(&relay, &owner, &mut session, &addr, &calls).await {
            Ok(p) => pending = p,
            Err(denial) => return Ok(denial),
        }
    }
    let token = token_for(&relay, &session, &owner)?;
    let client = client_for(&relay, &socket)?;
    let url = match req.query_string() {
        "" => format!("http://{}/user/{owner}/{suffix}", public_host(&relay)),
        q => format!("http://{}/user/{owner}/{suffix}?{q}", public_host(&relay)),
    };
    let mut out = client
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET),
            url,
        )
        .header("authorization", format!("token {token}"));
    for name in [
        "content-type",
        "accept",
        "origin",
        "accept-language",
        "if-none-match",
    ] {
        if let Some(v) = req.headers().get(name).and_then(|v| v.to_str().ok()) {
            out = out.header(name, v);
        }
    }
    if !reading {
        out = out.body(body.to_vec());
    }
    let sent = async {
        let resp = out.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await?;
        Ok::<_, reqwest::Error>((status, headers, bytes))
    }
    .await;
    let (status, headers, bytes) = match sent {
        Ok(x) => x,
        Err(e) => {
            let msg = format!(
                "{owner}'s Cylc UI server did not answer: {}",
                super::upstream::UpstreamClients::describe(&e)
            );
            for (_, p) in pending {
                relay
                    .recorder
                    .outcome(p, Outcome::Unknown, Some(msg.clone()))
                    .await;
            }
            if e.is_connect() {
                // It died or was culled: the next request starts a new one.
                relay.servers.forget_unreachable(&server.owner, &msg).await;
            }
            return Err(ApiError::bad_gateway(msg));
        }
    };
    if !pending.is_empty() {
        let parsed: serde_json::Value =
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        let keys: Vec<&str> = calls.iter().map(|c| c.response_key.as_str()).collect();
        let results = answer::outcomes(&parsed, &keys);
        for (key, p) in pending {
            let found = results
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, o)| o.clone());
            let (outcome, message) = match found {
                Some(FieldOutcome::Accepted { messages }) => (Outcome::Ok, messages.join("; ")),
                Some(FieldOutcome::Failed { message }) => (Outcome::Error, message),
                Some(FieldOutcome::NoAnswer { message }) => (Outcome::Unknown, message),
                None => (
                    Outcome::Unknown,
                    format!("HTTP {status}: the answer says nothing about {key}"),
                ),
            };
            relay.recorder.outcome(p, outcome, Some(message)).await;
        }
    }
    let mut resp =
        HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
    for (name, value) in headers.iter() {
        if PASSED_HEADERS.contains(&name.as_str()) {
            resp.insert_header((name.as_str(), value.as_bytes()));
        }
    }
    // A redirect may only stay inside the owner's prefix (`cylc` → `cylc/`).
    if let Some(loc) = headers.get("location").and_then(|v| v.to_str().ok()) {
        if loc.starts_with(&format!("/user/{owner}/")) && !loc.contains("//") {
            resp.insert_header(("location", loc));
        }
    }
    resp.insert_header(("x-content-type-options", "nosniff"));
    Ok(resp.body(bytes))
}

/// The forwarding client resolves dot segments and the server decodes its path, so
/// `cylc/../api/contents` (or its percent-encoded spellings) would reach the Jupyter
/// server's own API, outside Cylc's routes and the gate: only plain paths go through.
fn plain_suffix(suffix: &str) -> Result<(), &'static str> {
    let path = suffix.split(['?', '#']).next().unwrap_or("");
    let lower = path.to_ascii_lowercase();
    if path.contains('\\')
        || ["%2e", "%2f", "%5c", "%00"]
            .iter()
            .any(|e| lower.contains(e))
    {
        return Err("encoded dots, slashes or backslashes are not forwarded");
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return Err("'.' and '..' segments are not forwarded");
    }
    Ok(())
}

/// Decides every (field, workflow, task) of a mutation on the operation path, each
/// intent durable before anything is sent. All allowed: the pending records, keyed by
/// the field's response key. Any refused: the records already written are closed as
/// not sent, and the answer is the refusal in GraphQL's shape.
async fn decide_all(
    relay: &Relay,
    owner: &str,
    session: &mut Session,
    addr: &str,
    calls: &[MutationCall],
) -> Result<Vec<(String, PendingOp)>, HttpResponse> {
    let keys: Vec<&str> = calls.iter().map(|c| c.response_key.as_str()).collect();
    let mut pending = vec![];
    let mut refused: Option<(u16, String)> = None;
    'calls: for call in calls {
        for target in targets(call) {
            let req = OpRequest {
                id: uuid::Uuid::new_v4().simple().to_string(),
                op: call.op.name().to_string(),
                target,
                args: [("graphql_field".to_string(), json!(call.field))].into(),
                token: None,
            };
            match relay.authorize(owner, session, addr, req).await {
                Ok(a) => pending.push((call.response_key.clone(), a.pending)),
                Err(Refusal::Denied { op, reason }) => {
                    refused = Some((
                        200,
                        format!("Steward refused {op} ({}): {reason}", call.field),
                    ));
                    break 'calls;
                }
                Err(Refusal::Error(e)) => {
                    refused = Some((e.status.as_u16(), e.message.clone()));
                    break 'calls;
                }
            }
        }
    }
    match refused {
        None => Ok(pending),
        Some((status, message)) => {
            for (_, p) in pending {
                relay
                    .recorder
                    .outcome(
                        p,
                        Outcome::Error,
                        Some("not sent: another field of the same request was refused".into()),
                    )
                    .await;
            }
            Err(graphql_refusal(status, &keys, &message))
        }
    }
}

/// What one call is decided on: each task it names (by id), else each workflow.
fn targets(call: &MutationCall) -> Vec<String> {
    let mut out = vec![];
    for wf in &call.workflows {
        let tasks: Vec<String> = call
            .tasks
            .iter()
            .filter_map(|t| match t {
                TaskTarget::Id(id) if id.workflow == *wf => Some(match &id.task {
                    Some(task) => format!("{}//{}/{task}", wf.name, id.cycle),
                    None => format!("{}//{}", wf.name, id.cycle),
                }),
                _ => None,
            })
            .collect();
        if tasks.is_empty() {
            out.push(wf.name.clone());
        } else {
            out.extend(tasks);
        }
    }
    if out.is_empty() {
        // `scan`: the owner's run directory as a whole, decided as the owner's "".
        out.push(String::new());
    }
    out
}

/// `GET /user/<owner>/cylc/subscriptions`: the `graphql-ws` WebSocket. Every client
/// frame goes through the gate (subscriptions and queries are reads; a mutation is
/// refused with an `error` frame and never reaches the server).
pub async fn subscriptions(
    relay: web::Data<Relay>,
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<String>,
    authed: Result<Authed, ApiError>,
) -> Result<HttpResponse, actix_web::Error> {
    let owner = path.into_inner();
    relay.check_ws_origin(&req)?;
    let Authed(session) = authed?;
    let (_server, socket) = server_for(&relay, &owner, &session).await?;
    let token = token_for(&relay, &session, &owner)?;
    let upstream = connect_upstream(&relay, &owner, &socket, &token)
        .await
        .map_err(|e| ApiError::bad_gateway(format!("{owner}'s Cylc UI server: {e}")))?;
    let (response, ws_session, stream) =
        actix_ws::handle_with_protocols(&req, body, &["graphql-ws"])?;
    let max = relay.limits.ws_message_bytes;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    relay.servers.touch(&owner, 1);
    actix_web::rt::spawn(run_subscriptions(
        relay.into_inner(),
        owner,
        session,
        ws_session,
        stream,
        upstream,
    ));
    Ok(response)
}

type PlainWs = tokio_tungstenite::WebSocketStream<tokio::net::UnixStream>;

async fn connect_upstream(
    relay: &Relay,
    owner: &str,
    socket: &str,
    token: &str,
) -> Result<PlainWs, String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let io = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| format!("{socket}: {e}"))?;
    let mut req = format!(
        "ws://{}/user/{owner}/cylc/subscriptions",
        public_host(relay)
    )
    .into_client_request()
    .map_err(|e| e.to_string())?;
    let h = req.headers_mut();
    let value = |v: String| v.parse().map_err(|_| "bad header value".to_string());
    h.insert("authorization", value(format!("token {token}"))?);
    h.insert("sec-websocket-protocol", value("graphql-ws".into())?);
    h.insert("origin", value(relay.public_origin.clone())?);
    let max = relay.limits.ws_message_bytes;
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let (ws, _) = tokio_tungstenite::client_async_with_config(req, io, Some(config))
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

async fn run_subscriptions(
    relay: std::sync::Arc<Relay>,
    owner: String,
    session: Session,
    mut browser: actix_ws::Session,
    mut from_browser: actix_ws::AggregatedMessageStream,
    upstream: PlainWs,
) {
    let (mut up_tx, mut up_rx) = upstream.split();
    loop {
        tokio::select! {
            msg = from_browser.next() => {
                let Some(Ok(msg)) = msg else { break };
                match msg {
                    actix_ws::AggregatedMessage::Text(text) => {
                        if relay.sessions.refresh(&session).await.is_none() {
                            let _ = browser.text(json!({"type": "connection_error", "payload": {"message": "your session has ended; log in again"}}).to_string()).await;
                            break;
                        }
                        match graphql::classify_ws(&text, &owner, None) {
                            Verdict::Read => {
                                if up_tx.send(UpMessage::text(text.to_string())).await.is_err() {
                                    break;
                                }
                            }
                            Verdict::Refuse(r) => {
                                let id = serde_json::from_str::<serde_json::Value>(&text)
                                    .ok()
                                    .and_then(|v| v.get("id").cloned())
                                    .unwrap_or(serde_json::Value::Null);
                                let frame = json!({"type": "error", "id": id, "payload": {"message": r.reason}});
                                if browser.text(frame.to_string()).await.is_err() {
                                    break;
                                }
                            }
                            Verdict::Decide(_) => break,
                        }
                    }
                    actix_ws::AggregatedMessage::Ping(p) => {
                        let _ = browser.pong(&p).await;
                    }
                    actix_ws::AggregatedMessage::Close(_) => break,
                    actix_ws::AggregatedMessage::Binary(_) => {
                        let _ = browser.text(json!({"type": "connection_error", "payload": {"message": "graphql-ws frames are text"}}).to_string()).await;
                        break;
                    }
                    actix_ws::AggregatedMessage::Pong(_) => {}
                }
            }
            msg = up_rx.next() => {
                match msg {
                    Some(Ok(UpMessage::Text(t))) => {
                        relay.servers.touch(&owner, 0);
                        if browser.text(t.to_string()).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(UpMessage::Ping(p))) => {
                        let _ = up_tx.send(UpMessage::Pong(p)).await;
                    }
                    Some(Ok(UpMessage::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                }
            }
        }
    }
    relay.servers.touch(&owner, -1);
    let _ = up_tx.send(UpMessage::Close(None)).await;
    let _ = browser.close(None).await;
}

/// The overview's summary of a single-user server's workflows, asked of its GraphQL
/// as `actor` (a read: Cylc's `workflows` query with each one's state totals).
pub async fn fetch_summary(
    relay: &Relay,
    server: &RunningServer,
    actor: &str,
) -> Result<Vec<steward_protocol::wire::WorkflowSummary>, String> {
    let Endpoint::SingleUser { path } = &server.endpoint else {
        return Err("not a single-user server".into());
    };
    let token = relay
        .servers
        .singleuser()
        .and_then(|su| su.visitor_token(actor, &server.owner, relay.sessions.now()))
        .ok_or("no single-user token could be issued")?;
    let client = client_for(relay, path).map_err(|e| e.message)?;
    let resp = client
        .post(format!(
            "http://{}/user/{}/cylc/graphql",
            public_host(relay),
            server.owner
        ))
        .header("authorization", format!("token {token}"))
        .json(&json!({"query": "query { workflows { name status stateTotals } }"}))
        .timeout(std::time::Duration::from_secs(3))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("summary: HTTP {}", resp.status()));
    }
    let v: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    Ok(summaries(&v))
}

/// Cylc's `workflows` answer as Steward's summaries (unknown shapes are skipped: the
/// answer comes from the owner's process).
fn summaries(v: &serde_json::Value) -> Vec<steward_protocol::wire::WorkflowSummary> {
    v["data"]["workflows"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .filter_map(|w| {
                    Some(steward_protocol::wire::WorkflowSummary {
                        name: w["name"].as_str()?.to_string(),
                        state: w["status"].as_str().unwrap_or("unknown").to_string(),
                        counts: w["stateTotals"]
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .filter_map(|(k, n)| Some((k.clone(), n.as_u64()? as u32)))
                                    .filter(|(_, n)| *n > 0)
                                    .collect()
                            })
                            .unwrap_or_default(),
                        tasks: vec![],
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_are_forwarded() {
        for ok in [
            "cylc",
            "cylc/",
            "cylc/graphql",
            "cylc/assets/index-1.js",
            "cylc/a..b/x?q=../x",
        ] {
            assert!(plain_suffix(ok).is_ok(), "{ok}");
        }
        for bad in [
            "cylc/../api/contents",
            "cylc/./graphql",
            "cylc/..",
            "cylc/%2e%2e/api/contents",
            "cylc/%2E./api",
            "cylc%2f..%2fapi",
            "cylc/..%5capi",
            "cylc/x\\..\\api",
            "cylc/%00",
        ] {
            assert!(plain_suffix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cylc_workflows_become_summaries_and_odd_answers_are_skipped() {
        let v = json!({"data": {"workflows": [
            {"name": "demo-forecast", "status": "paused", "stateTotals": {"running": 1, "waiting": 2, "failed": 0}},
            {"status": "running"},
            {"name": "w2"}
        ]}});
        let s = summaries(&v);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "demo-forecast");
        assert_eq!(s[0].state, "paused");
        assert_eq!(s[0].counts.get("waiting"), Some(&2));
        assert!(!s[0].counts.contains_key("failed"));
        assert_eq!(s[1].state, "unknown");
        assert!(summaries(&json!({"errors": []})).is_empty());
        assert!(summaries(&json!(null)).is_empty());
    }
}
