//! The HTTPS + WebSocket front: authenticates every request, serves the summary,
//! workflow detail, logs and search, relays deltas, and applies operations.
//!
//! Routes (every one needs `Authorization: Bearer <hub JWT>`):
//! - `GET  /api/summary[?tasks=true]`      gscan view (`read`)
//! - `GET  /api/workflow?workflow=W`       full state of one workflow (`read`)
//! - `GET  /api/log?workflow=&cycle=&task=&job=&file=&offset=&len=`  byte range (`read`)
//! - `GET  /api/search?workflow=&q=&regex=&case_insensitive=&max=`   (`read`)
//! - `POST /api/op`  `{"id","op","target","args"}`  (the op itself)
//! - `GET  /ws`  snapshot, deltas, ops, tails (`read` to connect; each op its own token)

// Handlers' helpers return the refusal response itself as the error: it is built once
// per refused request and returned straight away, so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use crate::auth::{AuthError, Verifier};
use crate::logs::{self, LogError, SearchParams};
use crate::ops::{parse_target, perform, Target};
use crate::paths::Layout;
use crate::sched_client::Registry;
use crate::wire::{HttpOp, LogFile, TailRequest, UiClientMessage, UiServerMessage};
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::AggregatedMessage;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use steward_protocol::claims::OpClaims;
use steward_protocol::wire::{OpRequest, ServerMessage};
use steward_protocol::{Operation, TaskId, WorkflowId};
use tokio::sync::broadcast::error::RecvError;

/// Largest WebSocket frame accepted from the hub.
const MAX_WS_FRAME: usize = 256 * 1024;

pub struct AppState {
    pub reg: Arc<Registry>,
    pub verifier: Arc<Verifier>,
    /// Unix ms of the last authenticated request or WebSocket message.
    pub activity: Arc<AtomicU64>,
    pub owner: String,
}

impl AppState {
    pub fn touch(&self) {
        self.activity.store(crate::now_millis(), Ordering::Relaxed);
    }
    fn layout(&self) -> &Layout {
        &self.reg.layout
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/summary", web::get().to(summary))
        .route("/api/workflow", web::get().to(workflow_detail))
        .route("/api/log", web::get().to(log_range))
        .route("/api/search", web::get().to(search))
        .route("/api/op", web::post().to(http_op))
        .route("/ws", web::get().to(ws));
}

fn json_error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": message.into() }))
}

fn refusal(e: &AuthError) -> HttpResponse {
    let status = if e.is_forbidden() {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::UNAUTHORIZED
    };
    let mut b = HttpResponse::build(status);
    if status == StatusCode::UNAUTHORIZED {
        b.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
    }
    b.json(serde_json::json!({
        "error": format!("{}: {e}", e.check()),
        "check": e.check(),
    }))
}

fn peer(req: &HttpRequest) -> String {
    req.peer_addr().map(|a| a.to_string()).unwrap_or_default()
}

/// Checks the request's token for `op` (on `workflow`, if the request targets one).
fn authorize(
    req: &HttpRequest,
    st: &AppState,
    op: Operation,
    workflow: Option<&str>,
) -> Result<OpClaims, HttpResponse> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match Verifier::bearer(header).and_then(|t| st.verifier.verify(t, op, workflow)) {
        Ok(c) => {
            st.touch();
            tracing::debug!(actor = %c.sub, %op, path = %req.path(), rid = %c.rid, "authorized");
            Ok(c)
        }
        Err(e) => {
            tracing::warn!(
                check = e.check(),
                error = %e,
                %op,
                path = %req.path(),
                peer = %peer(req),
                "refused request"
            );
            Err(refusal(&e))
        }
    }
}

type Query = web::Query<HashMap<String, String>>;

fn flag(q: &HashMap<String, String>, k: &str) -> Result<bool, HttpResponse> {
    match q.get(k).map(String::as_str) {
        None | Some("false") | Some("0") | Some("") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(v) => Err(json_error(
            StatusCode::BAD_REQUEST,
            format!("{k}={v:?}: expected true or false"),
        )),
    }
}

fn number(q: &HashMap<String, String>, k: &str) -> Result<Option<u64>, HttpResponse> {
    q.get(k)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                json_error(
                    StatusCode::BAD_REQUEST,
                    format!("{k}={v:?}: expected a non-negative integer"),
                )
            })
        })
        .transpose()
}

/// The `workflow` parameter of a read: the token must allow reading that workflow,
/// and it must be one of this owner's.
fn readable_workflow(req: &HttpRequest, st: &AppState, q: &Query) -> Result<String, HttpResponse> {
    authorize(
        req,
        st,
        Operation::Read,
        q.get("workflow").map(String::as_str),
    )?;
    workflow_param(st, q)
}

/// [`readable_workflow`], and the workflow must exist (404 otherwise).
async fn known_workflow(
    req: &HttpRequest,
    st: &AppState,
    q: &Query,
) -> Result<String, HttpResponse> {
    let wf = readable_workflow(req, st, q)?;
    crate::ops::ensure_known(&st.reg, &wf)
        .await
        .map_err(|e| json_error(StatusCode::NOT_FOUND, e))?;
    Ok(wf)
}

/// The `workflow` parameter, checked against the id grammar and this owner.
fn workflow_param(st: &AppState, q: &HashMap<String, String>) -> Result<String, HttpResponse> {
    let raw = q
        .get("workflow")
        .ok_or_else(|| json_error(StatusCode::BAD_REQUEST, "missing parameter workflow"))?;
    let id = WorkflowId::parse(raw, &st.owner)
        .map_err(|e| json_error(StatusCode::BAD_REQUEST, e.to_string()))?;
    if id.owner != st.owner {
        return Err(json_error(
            StatusCode::FORBIDDEN,
            format!(
                "{id} belongs to ~{}, this server serves ~{}",
                id.owner, st.owner
            ),
        ));
    }
    Ok(id.name)
}

async fn summary(req: HttpRequest, st: web::Data<AppState>, q: Query) -> HttpResponse {
    let claims = match authorize(&req, &st, Operation::Read, None) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let with_tasks = match flag(&q, "tasks") {
        Ok(b) => b,
        Err(r) => return r,
    };
    HttpResponse::Ok().json(st.reg.summaries(claims.workflow.as_deref(), with_tasks))
}

async fn workflow_detail(req: HttpRequest, st: web::Data<AppState>, q: Query) -> HttpResponse {
    let wf = match known_workflow(&req, &st, &q).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let flow = crate::flow::Flow::load(&st.layout().flow_file(&wf));
    let state = match st.reg.handle(&wf) {
        Some(h) => match h.detail().await {
            Ok(s) => Some(s),
            Err(e) => return json_error(StatusCode::BAD_GATEWAY, e),
        },
        None => {
            crate::state::WorkflowState::load_stopped(&st.layout().state_file(&wf)).or_else(|| {
                flow.as_ref()
                    .ok()
                    .map(|f| crate::state::WorkflowState::fresh(&wf, f))
            })
        }
    };
    let (description, cycles) = match &flow {
        Ok(f) => (f.description.clone(), f.cycles.clone()),
        Err(_) => (String::new(), Vec::new()),
    };
    HttpResponse::Ok().json(serde_json::json!({
        "name": wf,
        "description": description,
        "cycles": cycles,
        "definition_error": flow.err().map(|e| e.to_string()),
        "run": state,
    }))
}

fn log_error(e: LogError) -> HttpResponse {
    let status = match e {
        LogError::NotFound(_) => StatusCode::NOT_FOUND,
        LogError::Forbidden(_) => StatusCode::FORBIDDEN,
        LogError::BadRequest(_) => StatusCode::BAD_REQUEST,
        LogError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    json_error(status, e.to_string())
}

/// Validates workflow/cycle/task/job/file and returns the job log path relative to
/// the run directory.
fn job_log_target(
    st: &AppState,
    wf: &str,
    cycle: &str,
    task: &str,
    job: Option<u64>,
    file: LogFile,
) -> Result<(u32, PathBuf), HttpResponse> {
    let id = format!("{wf}//{cycle}/{task}");
    TaskId::parse(&id, &st.owner)
        .map_err(|e| json_error(StatusCode::BAD_REQUEST, e.to_string()))?;
    let job = match job {
        Some(0) => {
            return Err(json_error(
                StatusCode::BAD_REQUEST,
                "job numbers start at 1",
            ))
        }
        Some(j) if j > u32::MAX as u64 => {
            return Err(json_error(StatusCode::BAD_REQUEST, "job number too large"))
        }
        Some(j) => j as u32,
        None => st
            .reg
            .task_state(wf, cycle, task)
            .and_then(|t| t.job)
            .ok_or_else(|| {
                json_error(
                    StatusCode::NOT_FOUND,
                    format!("{cycle}/{task} has no job yet (never submitted)"),
                )
            })?,
    };
    Ok((job, Layout::job_rel(cycle, task, job, file.file_name())))
}

async fn log_range(req: HttpRequest, st: web::Data<AppState>, q: Query) -> HttpResponse {
    let wf = match readable_workflow(&req, &st, &q) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (Some(cycle), Some(task)) = (q.get("cycle"), q.get("task")) else {
        return json_error(StatusCode::BAD_REQUEST, "missing parameter cycle or task");
    };
    let file = match q.get("file").map(|f| LogFile::parse(f)) {
        None => LogFile::Out,
        Some(Some(f)) => f,
        Some(None) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "file must be out, err, status or activity",
            )
        }
    };
    let (job, offset, len) = match (number(&q, "job"), number(&q, "offset"), number(&q, "len")) {
        (Ok(j), Ok(o), Ok(l)) => (j, o.unwrap_or(0), l.unwrap_or(64 * 1024)),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r,
    };
    let (job, rel) = match job_log_target(&st, &wf, cycle, task, job, file) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let run_dir = st.layout().run_dir(&wf);
    let result = web::block(move || {
        let f = logs::open_in_run_dir(&run_dir, &rel)?;
        logs::read_range(&f, offset, len)
    })
    .await;
    match result {
        Ok(Ok((bytes, size))) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .insert_header(("X-Log-Size", size.to_string()))
            .insert_header(("X-Log-Offset", offset.to_string()))
            .insert_header(("X-Log-Job", format!("{job:02}")))
            .body(bytes),
        Ok(Err(e)) => {
            if matches!(e, LogError::Forbidden(_)) {
                tracing::warn!(workflow = %wf, error = %e, "refused log path");
            }
            log_error(e)
        }
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn search(req: HttpRequest, st: web::Data<AppState>, q: Query) -> HttpResponse {
    let wf = match known_workflow(&req, &st, &q).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let Some(query) = q.get("q").cloned() else {
        return json_error(StatusCode::BAD_REQUEST, "missing parameter q");
    };
    let (regex, ci, max) = match (
        flag(&q, "regex"),
        flag(&q, "case_insensitive"),
        number(&q, "max"),
    ) {
        (Ok(r), Ok(c), Ok(m)) => (r, c, m),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r,
    };
    let params = SearchParams {
        query,
        regex,
        case_insensitive: ci,
        max: max
            .map(|m| m as usize)
            .unwrap_or(logs::DEFAULT_MAX_MATCHES)
            .min(logs::MAX_MATCHES),
    };
    let run_dir = st.layout().run_dir(&wf);
    match web::block(move || logs::search(&run_dir, &params)).await {
        Ok(Ok(r)) => HttpResponse::Ok().json(r),
        Ok(Err(e)) => log_error(e),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Validates and applies one operation; the answer is always a `Result` message.
async fn run_op(st: &AppState, req: OpRequest, token: Option<&str>, peer: &str) -> ServerMessage {
    let id = req.id.clone();
    let fail = |message: String| ServerMessage::Result {
        id: id.clone(),
        ok: false,
        message,
    };
    let Some(token) = token else {
        tracing::warn!(check = "authorization", op = %req.op, peer, "refused operation without token");
        return fail("refused: authorization: the operation carries no token (the hub signs one per operation)".into());
    };
    let op: Operation = match req.op.parse() {
        Ok(op) => op,
        Err(_) => {
            let names: Vec<&str> = Operation::ALL.iter().map(|o| o.name()).collect();
            return fail(format!(
                "unknown operation {:?} (expected one of: {})",
                req.op,
                names.join(", ")
            ));
        }
    };
    let target: Target = match parse_target(&req.target, &st.owner) {
        Ok(t) => t,
        Err(e) => return fail(format!("bad target {:?}: {e}", req.target)),
    };
    let claims = match st.verifier.verify(token, op, Some(&target.workflow.name)) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(check = e.check(), error = %e, %op, target = %target, peer, "refused operation");
            return fail(format!("refused: {}: {e}", e.check()));
        }
    };
    st.touch();
    let result = perform(&st.reg, op, &target, req.args).await;
    let (ok, message) = match result {
        Ok(m) => (true, m),
        Err(m) => (false, m),
    };
    tracing::info!(actor = %claims.sub, %op, target = %target, rid = %claims.rid, ok, message = %message, "operation");
    ServerMessage::Result { id, ok, message }
}

async fn http_op(req: HttpRequest, st: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = match Verifier::bearer(header) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(check = e.check(), error = %e, path = %req.path(), peer = %peer(&req), "refused request");
            return refusal(&e);
        }
    };
    if body.len() > steward_protocol::wire::MAX_OP_MESSAGE_BYTES {
        return json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "operation body larger than 64 KiB",
        );
    }
    let body: HttpOp = match serde_json::from_slice(&body) {
        Ok(o) => o,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("bad operation body: {e}")),
    };
    let Ok(op) = body.op.parse::<Operation>() else {
        return json_error(
            StatusCode::BAD_REQUEST,
            format!("unknown operation {:?}", body.op),
        );
    };
    let target = match parse_target(&body.target, &st.owner) {
        Ok(t) => t,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("bad target {:?}: {e}", body.target),
            )
        }
    };
    let claims = match st.verifier.verify(token, op, Some(&target.workflow.name)) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(check = e.check(), error = %e, %op, target = %target, peer = %peer(&req), "refused operation");
            return refusal(&e);
        }
    };
    st.touch();
    let (ok, message) = match perform(&st.reg, op, &target, body.args).await {
        Ok(m) => (true, m),
        Err(m) => (false, m),
    };
    tracing::info!(actor = %claims.sub, %op, target = %target, rid = %claims.rid, ok, message = %message, "operation");
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    HttpResponse::build(status).json(ServerMessage::Result {
        id: body.id,
        ok,
        message,
    })
}

// ------------------------------------------------------------------ WebSocket

async fn ws(
    req: HttpRequest,
    body: web::Payload,
    st: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let claims = match authorize(&req, &st, Operation::Read, None) {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let (resp, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream
        .max_frame_size(MAX_WS_FRAME)
        .aggregate_continuations()
        .max_continuation_size(MAX_WS_FRAME);
    tracing::info!(actor = %claims.sub, rid = %claims.rid, peer = %peer(&req), "websocket opened");
    actix_web::rt::spawn(ws_session(
        st.into_inner(),
        claims,
        session,
        stream,
        peer(&req),
    ));
    Ok(resp)
}

fn frame(msg: &impl serde::Serialize) -> String {
    serde_json::to_string(msg).unwrap_or_default()
}

async fn ws_session(
    st: Arc<AppState>,
    claims: OpClaims,
    mut session: actix_ws::Session,
    mut stream: actix_ws::AggregatedMessageStream,
    peer: String,
) {
    let only = claims.workflow.clone();
    let mut updates = st.reg.updates.subscribe();
    let snapshot = |st: &AppState| {
        frame(&ServerMessage::Snapshot {
            workflows: st.reg.summaries(only.as_deref(), true),
        })
    };
    if session.text(snapshot(&st)).await.is_err() {
        return;
    }
    let mut tails: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        tokio::select! {
            msg = stream.recv() => {
                let Some(Ok(msg)) = msg else { break };
                match msg {
                    AggregatedMessage::Text(text) => {
                        st.touch();
                        if !handle_text(&st, &claims, &mut session, &text, &mut tails, &peer).await {
                            break;
                        }
                    }
                    AggregatedMessage::Ping(b) => {
                        st.touch();
                        if session.pong(&b).await.is_err() {
                            break;
                        }
                    }
                    AggregatedMessage::Pong(_) => st.touch(),
                    AggregatedMessage::Binary(_) => {
                        let m = frame(&ServerMessage::Error { id: None, message: "binary frames are not accepted; send JSON text".into() });
                        if session.text(m).await.is_err() { break; }
                    }
                    AggregatedMessage::Close(_) => break,
                }
            }
            u = updates.recv() => {
                let first = match u {
                    Ok(u) => u,
                    // Fell behind the channel: a fresh snapshot replaces the missed deltas.
                    Err(RecvError::Lagged(_)) => {
                        if session.text(snapshot(&st)).await.is_err() { break; }
                        continue;
                    }
                    Err(RecvError::Closed) => break,
                };
                // Take whatever else is already queued: when this client is behind,
                // runs of deltas go out as one frame, so it catches up instead of
                // falling further behind.
                let mut batch = vec![first];
                let mut lagged = false;
                while batch.len() < 1024 {
                    match updates.try_recv() {
                        Ok(u) => batch.push(u),
                        Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                            lagged = true;
                            break;
                        }
                        Err(_) => break,
                    }
                }
                batch.retain(|u| only.as_deref().is_none_or(|o| o == &*u.workflow));
                if lagged || batch.iter().any(|u| u.frame.is_none()) {
                    // The registry view already includes every queued change.
                    if session.text(snapshot(&st)).await.is_err() { break; }
                    continue;
                }
                if send_deltas(&mut session, &batch).await.is_err() {
                    break;
                }
            }
        }
    }
    for (_, t) in tails {
        t.abort();
    }
    let _ = session.close(None).await;
    tracing::info!(actor = %claims.sub, peer = %peer, "websocket closed");
}

/// Sends queued deltas, merging each run of consecutive deltas of one workflow.
async fn send_deltas(
    session: &mut actix_ws::Session,
    batch: &[crate::sched_client::Update],
) -> Result<(), actix_ws::Closed> {
    let mut i = 0;
    while i < batch.len() {
        let wf = &batch[i].workflow;
        let mut j = i + 1;
        while j < batch.len() && batch[j].workflow == *wf {
            j += 1;
        }
        if j - i == 1 {
            if let Some(f) = &batch[i].frame {
                session.text(f.clone()).await?;
            }
        } else {
            session
                .text(crate::sched_client::Update::merge(wf, &batch[i..j]))
                .await?;
        }
        i = j;
    }
    Ok(())
}

/// Handles one text frame; false = the connection is gone.
async fn handle_text(
    st: &Arc<AppState>,
    claims: &OpClaims,
    session: &mut actix_ws::Session,
    text: &str,
    tails: &mut HashMap<String, tokio::task::JoinHandle<()>>,
    peer: &str,
) -> bool {
    let msg: UiClientMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            let m = frame(&ServerMessage::Error {
                id: None,
                message: format!("malformed message: {e}"),
            });
            return session.text(m).await.is_ok();
        }
    };
    match msg {
        UiClientMessage::Ping { data } => session
            .text(frame(&ServerMessage::Pong { data }))
            .await
            .is_ok(),
        UiClientMessage::Op(req) => {
            // Ops run concurrently so a slow one (play) does not hold up deltas.
            let st = Arc::clone(st);
            let mut s = session.clone();
            let peer = peer.to_string();
            actix_web::rt::spawn(async move {
                let token = req.token.clone();
                let reply = run_op(&st, req, token.as_deref(), &peer).await;
                let _ = s.text(frame(&reply)).await;
            });
            true
        }
        UiClientMessage::Untail { id } => {
            if let Some(t) = tails.remove(&id) {
                t.abort();
                session
                    .text(frame(&UiServerMessage::LogEnd {
                        id,
                        offset: 0,
                        reason: "untail".into(),
                    }))
                    .await
                    .is_ok()
            } else {
                let m = frame(&ServerMessage::Error {
                    id: Some(id),
                    message: "no such tail".into(),
                });
                session.text(m).await.is_ok()
            }
        }
        UiClientMessage::Tail(req) => {
            let id = req.id.clone();
            match start_tail(st, claims, session.clone(), req, peer) {
                Ok(handle) => {
                    tails.retain(|_, t| !t.is_finished());
                    if let Some(old) = tails.insert(id, handle) {
                        old.abort();
                    }
                    true
                }
                Err(message) => {
                    let m = frame(&ServerMessage::Error {
                        id: Some(id),
                        message,
                    });
                    session.text(m).await.is_ok()
                }
            }
        }
    }
}

fn start_tail(
    st: &Arc<AppState>,
    conn_claims: &OpClaims,
    session: actix_ws::Session,
    req: TailRequest,
    peer: &str,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let wf = WorkflowId::parse(&req.workflow, &st.owner).map_err(|e| e.to_string())?;
    if wf.owner != st.owner {
        return Err(format!("{wf} belongs to another owner"));
    }
    let wf = wf.name;
    match &req.token {
        Some(t) => {
            st.verifier
                .verify(t, Operation::Read, Some(&wf))
                .map_err(|e| {
                    tracing::warn!(check = e.check(), error = %e, peer, "refused tail");
                    format!("refused: {}: {e}", e.check())
                })?;
        }
        None => {
            if conn_claims.workflow.as_deref().is_some_and(|w| w != wf) {
                return Err(format!(
                    "refused: workflow: this connection's token is for workflow {:?}",
                    conn_claims.workflow.as_deref().unwrap_or_default()
                ));
            }
        }
    }
    let id = format!("{wf}//{}/{}", req.cycle, req.task);
    TaskId::parse(&id, &st.owner).map_err(|e| e.to_string())?;
    let job = match req.job {
        Some(0) => return Err("job numbers start at 1".into()),
        Some(j) => j,
        None => st
            .reg
            .task_state(&wf, &req.cycle, &req.task)
            .and_then(|t| t.job)
            .ok_or_else(|| format!("{}/{} has no job yet", req.cycle, req.task))?,
    };
    let rel = Layout::job_rel(&req.cycle, &req.task, job, req.file.file_name());
    let st = Arc::clone(st);
    Ok(actix_web::rt::spawn(tail_loop(
        st, session, req, wf, job, rel,
    )))
}

/// Follows a job log: sends what is there, then new bytes every 100 ms while the job
/// runs; ends with `log_end` once the job is over and the file is read to its end.
async fn tail_loop(
    st: Arc<AppState>,
    mut session: actix_ws::Session,
    req: TailRequest,
    wf: String,
    job: u32,
    rel: PathBuf,
) {
    let run_dir = st.layout().run_dir(&wf);
    let running = |st: &AppState| {
        st.reg
            .task_state(&wf, &req.cycle, &req.task)
            .is_some_and(|t| t.job == Some(job) && t.state == "running")
    };
    let end = |offset: u64, reason: String| {
        frame(&UiServerMessage::LogEnd {
            id: req.id.clone(),
            offset,
            reason,
        })
    };
    let mut waited = Duration::ZERO;
    let file = loop {
        match logs::open_in_run_dir(&run_dir, &rel) {
            Ok(f) => break f,
            Err(LogError::NotFound(_)) if running(&st) && waited < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                waited += Duration::from_millis(100);
            }
            Err(e) => {
                let _ = session.text(end(req.offset, e.to_string())).await;
                return;
            }
        }
    };
    let mut offset = req.offset; // next byte to send
    let mut carry: Vec<u8> = Vec::new(); // bytes read but not sent (split UTF-8)
    let mut last_pass = false;
    loop {
        let (bytes, _) = match logs::read_range(&file, offset + carry.len() as u64, 64 * 1024) {
            Ok(x) => x,
            Err(e) => {
                let _ = session.text(end(offset, e.to_string())).await;
                return;
            }
        };
        if !bytes.is_empty() {
            carry.extend_from_slice(&bytes);
            let (text, used) = utf8_prefix(&carry, false);
            if used > 0 {
                let m = frame(&UiServerMessage::Log {
                    id: req.id.clone(),
                    offset,
                    data: text,
                });
                if session.text(m).await.is_err() {
                    return;
                }
                offset += used as u64;
                carry.drain(..used);
            }
            continue;
        }
        if running(&st) {
            last_pass = false;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        if !last_pass {
            // The job may have written its last bytes just before it ended.
            last_pass = true;
            continue;
        }
        if !carry.is_empty() {
            let (text, used) = utf8_prefix(&carry, true);
            let _ = session
                .text(frame(&UiServerMessage::Log {
                    id: req.id.clone(),
                    offset,
                    data: text,
                }))
                .await;
            offset += used as u64;
        }
        let _ = session.text(end(offset, "job is not running".into())).await;
        return;
    }
}

/// The longest prefix of `b` that is whole UTF-8 (invalid bytes replaced); with
/// `all`, everything. Returns the text and how many bytes it covers.
fn utf8_prefix(b: &[u8], all: bool) -> (String, usize) {
    match std::str::from_utf8(b) {
        Ok(s) => (s.to_string(), b.len()),
        Err(e) => match e.error_len() {
            // Invalid bytes in the middle: send them replaced, with what precedes.
            Some(n) => {
                let used = e.valid_up_to() + n;
                (String::from_utf8_lossy(&b[..used]).into_owned(), used)
            }
            // Incomplete character at the end: keep it for the next read.
            None if !all => {
                let used = e.valid_up_to();
                (String::from_utf8_lossy(&b[..used]).into_owned(), used)
            }
            None => (String::from_utf8_lossy(b).into_owned(), b.len()),
        },
    }
}
