//! JSON API for the web UI and scripts: overview, permissions, explanations, audit
//! search, and read-only HTTP requests proxied to an owner's UI server.

use crate::proxy::UpstreamClients;
use crate::servers::RunningServer;
use crate::state::AppState;
use crate::store::Session;
use crate::web::{current_session, error_json};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use steward_audit::Outcome;
use steward_protocol::wire::WorkflowSummary;
use steward_protocol::{Operation, WorkflowId};

async fn session_or_401(state: &AppState, req: &HttpRequest) -> Result<Session, HttpResponse> {
    current_session(state, req)
        .await
        .ok_or_else(|| error_json(StatusCode::UNAUTHORIZED, "not logged in"))
}

fn valid_owner(owner: &str) -> Result<(), HttpResponse> {
    if steward_protocol::ids::validate_user_name(owner) {
        Ok(())
    } else {
        Err(error_json(
            StatusCode::BAD_REQUEST,
            format!("owner {owner:?} is not a valid user name"),
        ))
    }
}

/// The caller's session, for a request about `owner`'s workflows.
async fn session_for_owner(
    state: &AppState,
    req: &HttpRequest,
    owner: &str,
) -> Result<Session, HttpResponse> {
    let s = session_or_401(state, req).await?;
    valid_owner(owner)?;
    Ok(s)
}

/// Fetches a server's gscan summary with a read token for `actor`.
pub async fn fetch_summary(
    state: &AppState,
    server: &RunningServer,
    actor: &str,
) -> Result<Vec<WorkflowSummary>, String> {
    let client = state.upstream.client(&state.servers.client_tls, server)?;
    let now = crate::tokens::jwt_now();
    let jwt = state
        .signer
        .sign(
            now,
            &server.owner,
            actor,
            vec![Operation::Read],
            None,
            "overview",
        )
        .map_err(|e| e.to_string())?;
    let resp = client
        .get(UpstreamClients::url(server, "/api/summary"))
        .bearer_auth(jwt)
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("summary: HTTP {}", resp.status()));
    }
    resp.json::<Vec<WorkflowSummary>>()
        .await
        .map_err(|e| e.to_string())
}

/// The gscan view: every workflow of every owner the user may read; live where the
/// server runs, otherwise the last known state marked stale.
pub async fn overview(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let s = match session_or_401(&state, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut owners: BTreeMap<String, (bool, Vec<WorkflowSummary>)> = BTreeMap::new();
    for row in state.store.overviews().await.unwrap_or_default() {
        if let Ok(w) = serde_json::from_str::<Vec<WorkflowSummary>>(&row.workflows_json) {
            owners.insert(row.owner, (true, w));
        }
    }
    let running = state.servers.all();
    let fetches = running.iter().map(|srv| {
        let st = state.clone();
        let actor = s.user.clone();
        async move { (srv.owner.clone(), fetch_summary(&st, srv, &actor).await) }
    });
    let now = state.store.now();
    for (owner, result) in futures_util::future::join_all(fetches).await {
        if let Ok(workflows) = result {
            if let Ok(json) = serde_json::to_string(&workflows) {
                let row = crate::store::OverviewRow {
                    owner: owner.clone(),
                    workflows_json: json,
                    updated: now,
                };
                let _ = state.store.save_overview(&row).await;
            }
            owners.insert(owner, (false, workflows));
        }
    }
    let mut out = vec![];
    for (owner, (stale, workflows)) in owners {
        let mut visible = vec![];
        for mut w in workflows {
            if owner == s.user
                || state
                    .policy_ops(&owner, &s, &w.name)
                    .await
                    .contains(Operation::Read)
            {
                w.tasks.clear();
                visible.push(w);
            }
        }
        if !visible.is_empty() {
            out.push(json!({ "owner": owner, "stale": stale, "workflows": visible }));
        }
    }
    HttpResponse::Ok().json(json!({ "owners": out }))
}

#[derive(Deserialize)]
pub struct PermQuery {
    owner: String,
    #[serde(default)]
    workflow: String,
}

/// What the session may do on one workflow right now (policy ∩ elevation), and why not.
pub async fn permitted(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<PermQuery>,
) -> HttpResponse {
    let s = match session_for_owner(&state, &req, &q.owner).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // One set computation for what is allowed; the full decision (with its reasons) only
    // for the operations that are not.
    let now = state.store.now();
    let ops = state
        .policy_ops(&q.owner, &s, &q.workflow)
        .await
        .intersect(state.class_ops(&q.owner, &s, now));
    let mut denied = BTreeMap::new();
    for op in Operation::ALL.into_iter().filter(|op| !ops.contains(*op)) {
        denied.insert(
            op.name(),
            state.effective(&q.owner, &s, &q.workflow, op).await.reason,
        );
    }
    HttpResponse::Ok().json(json!({ "ops": ops, "denied": denied }))
}

#[derive(Deserialize)]
pub struct ExplainQuery {
    owner: String,
    #[serde(default)]
    workflow: String,
    op: String,
}

/// "Why can't I?": the decision and the entries that determined it.
pub async fn explain(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<ExplainQuery>,
) -> HttpResponse {
    let s = match session_for_owner(&state, &req, &q.owner).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(op) = q.op.parse::<Operation>() else {
        return error_json(
            StatusCode::BAD_REQUEST,
            format!("op: unknown operation {:?}", q.op),
        );
    };
    let eff = state.effective(&q.owner, &s, &q.workflow, op).await;
    let mut reasons = eff.decision.reasons.clone();
    if eff.decision.allowed && !eff.allowed {
        reasons.push(eff.reason.clone());
    }
    HttpResponse::Ok().json(json!({
        "allowed": eff.allowed,
        "policy_allows": eff.decision.allowed,
        "class_needed": op.class(),
        "class_now": eff.class_now,
        "reasons": reasons,
    }))
}

#[derive(Deserialize)]
pub struct AuditQuery {
    actor: Option<String>,
    owner: Option<String>,
    workflow: Option<String>,
    op: Option<String>,
    decision: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
}

fn parse_time(
    field: &str,
    v: &Option<String>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, HttpResponse> {
    match v.as_deref().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&chrono::Utc)))
            .map_err(|e| {
                error_json(
                    StatusCode::BAD_REQUEST,
                    format!("{field}: {s:?} is not an RFC 3339 time ({e})"),
                )
            }),
    }
}

/// Audit search: owners see actions on their own workflows, admins see everything.
pub async fn audit_search(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<AuditQuery>,
) -> HttpResponse {
    let s = match session_or_401(&state, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let admin = state.is_admin(&s.user);
    let owner = match (&q.owner, admin) {
        (Some(o), true) if !o.is_empty() => Some(o.clone()),
        (_, true) => None,
        (Some(o), false) if !o.is_empty() && o != &s.user => {
            return error_json(
                StatusCode::FORBIDDEN,
                "only hub admins may search actions on other owners' workflows",
            )
        }
        (_, false) => Some(s.user.clone()),
    };
    let decision = match q.decision.as_deref().filter(|d| !d.is_empty()) {
        None => None,
        Some("allow") => Some(steward_audit::Decision::Allow),
        Some("deny") => Some(steward_audit::Decision::Deny),
        Some(other) => {
            return error_json(
                StatusCode::BAD_REQUEST,
                format!("decision: {other:?} must be allow or deny"),
            )
        }
    };
    let filter = steward_audit::SearchFilter {
        actor: q.actor.clone().filter(|x| !x.is_empty()),
        owner,
        workflow: q.workflow.clone().filter(|x| !x.is_empty()),
        op: q.op.clone().filter(|x| !x.is_empty()),
        decision,
        since: match parse_time("since", &q.since) {
            Ok(t) => t,
            Err(r) => return r,
        },
        until: match parse_time("until", &q.until) {
            Ok(t) => t,
            Err(r) => return r,
        },
        limit: Some(q.limit.unwrap_or(200).min(5000)),
        newest_first: true,
        ..Default::default()
    };
    let dir = state.cfg.audit.dir.clone();
    let result = tokio::task::spawn_blocking(move || steward_audit::search(&dir, &filter)).await;
    match result {
        Ok(Ok(records)) => {
            let human: Vec<String> = records
                .iter()
                .filter_map(steward_audit::human_line)
                .collect();
            HttpResponse::Ok().json(json!({ "records": records, "human": human }))
        }
        Ok(Err(e)) => error_json(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("audit search failed: {e}"),
        ),
        Err(e) => error_json(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
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
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    q: web::Query<WorkflowParam>,
) -> HttpResponse {
    let s = match session_or_401(&state, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (owner, rest) = path.into_inner();
    if let Err(r) = valid_owner(&owner) {
        return r;
    }
    let workflow = match q.workflow.as_deref() {
        Some(w) => match WorkflowId::parse(w, &owner) {
            Ok(id) if id.owner == owner => Some(id.name),
            Ok(_) => {
                return error_json(
                    StatusCode::BAD_REQUEST,
                    "workflow: belongs to another owner",
                )
            }
            Err(e) => return error_json(StatusCode::BAD_REQUEST, format!("workflow: {e}")),
        },
        None => None,
    };
    let readable = match &workflow {
        Some(w) => {
            state
                .effective(&owner, &s, w, Operation::Read)
                .await
                .allowed
        }
        None => owner == s.user,
    };
    if !readable {
        return error_json(
            StatusCode::FORBIDDEN,
            format!("you may not read this workflow of {owner}"),
        );
    }
    state.touch(&owner, 0);
    let server = match crate::relay::ensure_server(&state, &owner, &s.user).await {
        Ok(srv) => srv,
        Err(e) => return error_json(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let client = match state.upstream.client(&state.servers.client_tls, &server) {
        Ok(c) => c,
        Err(e) => return error_json(StatusCode::BAD_GATEWAY, e),
    };
    let now = crate::tokens::jwt_now();
    let rid = uuid::Uuid::new_v4().simple().to_string();
    let jwt = match state
        .signer
        .sign(now, &owner, &s.user, vec![Operation::Read], workflow, &rid)
    {
        Ok(t) => t,
        Err(e) => return error_json(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
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
            let ctype = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_string();
            let mut out = HttpResponse::build(status);
            out.content_type(ctype);
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
                    Ok(b) => out.body(b),
                    Err(e) => error_json(
                        StatusCode::BAD_GATEWAY,
                        format!("{owner}'s server: {}", UpstreamClients::describe(&e)),
                    ),
                }
            } else {
                out.streaming(futures_util::TryStreamExt::map_err(
                    resp.bytes_stream(),
                    actix_web::error::ErrorBadGateway,
                ))
            }
        }
        Err(e) => error_json(
            StatusCode::BAD_GATEWAY,
            format!("{owner}'s server: {}", UpstreamClients::describe(&e)),
        ),
    }
}

/// `POST /user/{owner}/api/op`: the HTTP twin of a WebSocket operation message, for
/// scripts. The same path decides, audits, signs and forwards it; the UI server's status
/// and `{"type":"result",..}` body come back unchanged.
pub async fn proxy_op(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let mut s = match session_or_401(&state, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = crate::web::require_csrf(&req, &s) {
        return r;
    }
    let owner = path.into_inner();
    if let Err(r) = valid_owner(&owner) {
        return r;
    }
    let Some(_busy) = state.drain.enter() else {
        return HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "5"))
            .json(json!({"error": "the hub is restarting; the operation was not sent. Retry shortly"}));
    };
    let op: steward_protocol::wire::OpRequest = match serde_json::from_slice(&body) {
        Ok(o) => o,
        Err(e) => {
            return error_json(
                StatusCode::BAD_REQUEST,
                format!(
                    "request body: {e}; expected {{\"id\": ID, \"op\": OPERATION, \"target\": \"workflow[//cycle/task]\", \"args\": {{..}}}}"
                ),
            )
        }
    };
    let rate = state.cfg.limits.ops_per_sec;
    let allowed = {
        let mut buckets = state
            .http_op_buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // One bucket per session that ever sent an operation: forget the full ones
        // now and then, or the map grows with every session.
        if buckets.len() >= 1024 {
            buckets.retain(|_, b| !b.refilled_completely());
        }
        buckets
            .entry(s.kind.key())
            .or_insert_with(|| crate::ratelimit::TokenBucket::full(rate))
            .take(rate)
    };
    if !allowed {
        return HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", "1"))
            .json(json!({"error": format!("too many operations: at most {rate} per second per session; slow down")}));
    }
    let addr = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let auth = match crate::ops::authorize(&state, &owner, &mut s, &addr, op).await {
        Ok(a) => a,
        Err(crate::ops::Refusal::Denied { op, reason }) => {
            return HttpResponse::Forbidden()
                .json(json!({"type": "denied", "op": op, "reason": reason}))
        }
        Err(crate::ops::Refusal::Error { status, message }) => return error_json(status, message),
    };
    state.touch(&owner, 0);
    let server = match crate::relay::ensure_server(&state, &owner, &s.user).await {
        Ok(srv) => srv,
        Err(e) => {
            let msg = format!("{owner}'s server could not start: {e}");
            crate::ops::finish(&state, auth.pending, Outcome::Error, Some(msg.clone())).await;
            return error_json(StatusCode::SERVICE_UNAVAILABLE, msg);
        }
    };
    let client = match state.upstream.client(&state.servers.client_tls, &server) {
        Ok(c) => c,
        Err(e) => {
            crate::ops::finish(&state, auth.pending, Outcome::Error, Some(e.clone())).await;
            return error_json(StatusCode::BAD_GATEWAY, e);
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
            crate::ops::finish(&state, auth.pending, outcome, Some(message)).await;
            HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY))
                .content_type("application/json")
                .body(bytes)
        }
        Err(e) => {
            // Sent but unanswered: the server may or may not have applied it.
            let msg = format!(
                "{owner}'s server did not answer: {}",
                UpstreamClients::describe(&e)
            );
            crate::ops::finish(&state, auth.pending, Outcome::Unknown, Some(msg.clone())).await;
            error_json(StatusCode::BAD_GATEWAY, msg)
        }
    }
}

/// Any other method under `/user/{owner}/api/`: the hub forwards only what it can decide
/// (reads, and operations through [`proxy_op`]); anything else would reach the owner's
/// server without a decision, so it is refused here.
pub async fn proxy_other(req: HttpRequest) -> HttpResponse {
    let allow = if req.path().ends_with("/api/op") {
        "POST"
    } else {
        "GET"
    };
    HttpResponse::MethodNotAllowed()
        .insert_header(("Allow", allow))
        .json(json!({"error": format!(
            "{} is not forwarded to UI servers: use GET to read, or POST /user/<owner>/api/op for an operation",
            req.method()
        )}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    #[serde(default)]
    profile: Option<String>,
}

/// `POST /hub/api/server {profile}`: start your own server on a chosen profile.
pub async fn start_own_server(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let s = match session_or_401(&state, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = crate::web::require_csrf(&req, &s) {
        return r;
    }
    let body: StartBody = match serde_json::from_slice(if body.is_empty() { b"{}" } else { &body })
    {
        Ok(b) => b,
        Err(e) => {
            return error_json(
                StatusCode::BAD_REQUEST,
                format!("request body: {e}; expected {{\"profile\": NAME}}"),
            )
        }
    };
    if let Some(srv) = state.servers.get(&s.user) {
        return error_json(
            StatusCode::CONFLICT,
            format!("your server is already running (pid {}); stop it first (DELETE /hub/api/server) to pick another profile", srv.pid),
        );
    }
    let profile = body.profile.unwrap_or_else(|| "default".into());
    match crate::relay::ensure_server_profile(&state, &s.user, &s.user, Some(profile.clone())).await
    {
        Ok(crate::servers::SpawnOutcome::Started(_)) => {
            HttpResponse::Ok().json(json!({ "started": true, "profile": profile }))
        }
        // Started by someone else (a visit, a prestart) since the check above.
        Ok(crate::servers::SpawnOutcome::AlreadyRunning(srv)) => error_json(
            StatusCode::CONFLICT,
            format!("your server is already running (pid {}); stop it first (DELETE /hub/api/server) to pick another profile", srv.pid),
        ),
        Err(crate::servers::ServerError::Busy) => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", "5"))
            .json(json!({ "error": crate::servers::ServerError::Busy.to_string() })),
        Err(e) => error_json(StatusCode::FORBIDDEN, e.to_string()),
    }
}

/// `DELETE /hub/api/server`: stop your own server (your workflows keep running).
pub async fn stop_own_server(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let s = match session_or_401(&state, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = crate::web::require_csrf(&req, &s) {
        return r;
    }
    if state.servers.get(&s.user).is_none() {
        return error_json(StatusCode::NOT_FOUND, "your server is not running");
    }
    let result =
        crate::relay::stop_server_audited(&state, &s.user, &s.user, None, "stopped by its owner")
            .await;
    match result {
        Ok(()) => HttpResponse::Ok().json(json!({ "stopped": true })),
        Err(e) => error_json(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}
