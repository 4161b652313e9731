//! Hub-admin endpoints: list and stop servers, list and revoke sessions. Being an admin
//! grants no workflow permissions at all — only these.

use crate::http::{ApiError, ApiResult};
use crate::session::{check_csrf, session_ref, Authed, Session};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use steward_audit::{events, AuditRecord, RecordKind};
use steward_protocol::{Endpoint, Placement};

fn admin(state: &AppState, s: Session) -> Result<Session, ApiError> {
    if state.is_admin(&s.user) {
        Ok(s)
    } else {
        Err(ApiError::forbidden("hub admins only"))
    }
}

/// An admin's state-changing request: admin first, then CSRF (a non-admin hears why).
fn admin_changing(state: &AppState, req: &HttpRequest, s: Session) -> Result<Session, ApiError> {
    let s = admin(state, s)?;
    check_csrf(req, &s)?;
    Ok(s)
}

/// Every server this hub knows: where it runs (backend, host or job), its profile, its
/// state (`running`, `unknown` with why when its host or cluster did not answer the last
/// check; starts under way are listed apart under "starting": `starting`, or for a job
/// in a batch queue `pending` or `failed` with Slurm's reason) and since when.
pub async fn servers(state: web::Data<AppState>, Authed(s): Authed) -> ApiResult {
    admin(&state, s)?;
    // From the store: every hub's servers, not only those this hub has in memory.
    let list: Vec<_> = state
        .servers
        .known()
        .await
        .into_iter()
        .map(|s| {
            let port = match &s.endpoint {
                Endpoint::Tcp { port, .. } => Some(*port),
                Endpoint::Unix { .. } | Endpoint::SingleUser { .. } => None,
            };
            let (server_state, reason) = match state.servers.unanswered(&s.owner) {
                Some(why) => ("unknown", Some(why)),
                None => ("running", None),
            };
            json!({"owner": s.owner, "server": s.name, "pid": s.pid, "port": port,
                   "endpoint": s.endpoint.to_string(), "placement": s.placement.to_string(),
                   "backend": s.placement.backend(), "where": placed_where(&s.placement),
                   "state": server_state, "reason": reason, "since": s.started,
                   "cgroup": s.cgroup, "profile": s.profile, "hub": s.hub})
        })
        .collect();
    // Starts under way have no pid or endpoint yet: listed apart, so that every entry of
    // "servers" is a server that runs.
    let queued = state.servers.queued_all().await;
    let mut starting: Vec<_> = state
        .servers
        .starting()
        .into_iter()
        // A queued start is shown from the store, with its job and reason.
        .filter(|(owner, _, _)| !queued.iter().any(|q| &q.owner == owner))
        .map(|(owner, backend, since)| {
            json!({"owner": owner, "server": crate::servers::DEFAULT_SERVER,
                   "backend": backend, "where": "-", "state": "starting", "since": since})
        })
        .collect();
    starting.extend(queued.into_iter().map(|q| {
        json!({"owner": q.owner, "server": q.name, "backend": q.placement.backend(),
               "where": placed_where(&q.placement), "placement": q.placement.to_string(),
               "state": if q.failed { "failed" } else { "pending" }, "reason": q.state,
               "since": q.since, "profile": q.profile})
    }));
    Ok(HttpResponse::Ok().json(json!({ "servers": list, "starting": starting })))
}

/// The host or job a placement names (`-` on this machine).
fn placed_where(at: &Placement) -> String {
    match at {
        Placement::Local => "-".into(),
        Placement::Ssh { host } => host.clone(),
        Placement::Slurm { cluster, job_id } => format!("{cluster}:{job_id}"),
    }
}

#[derive(serde::Deserialize)]
pub struct PlaceQuery {
    owner: String,
}

/// What placing `owner`'s next server on the ssh pool would choose now, and why: every
/// host asked afresh; nothing is reserved or started.
pub async fn explain_placement(
    state: web::Data<AppState>,
    q: web::Query<PlaceQuery>,
    Authed(s): Authed,
) -> ApiResult {
    admin(&state, s)?;
    let pool = state
        .servers
        .ssh
        .as_ref()
        .ok_or_else(|| ApiError::not_found("no ssh pool is configured ([spawner.ssh])"))?;
    if !steward_protocol::ids::validate_user_name(&q.owner) {
        return Err(ApiError::bad_request(format!(
            "owner: {:?} is not a user name",
            q.owner
        )));
    }
    let d = pool.explain(&q.owner).await;
    Ok(HttpResponse::Ok().json(json!({
        "owner": d.owner, "policy": d.policy.as_str(),
        "winner": d.winner, "why": d.why, "table": d.render(),
    })))
}

#[derive(serde::Deserialize)]
pub struct DrainBody {
    #[serde(default = "yes")]
    drained: bool,
}

fn yes() -> bool {
    true
}

/// Drains (or undrains) a pool host: no new servers there; running ones stay.
pub async fn drain_host(
    state: web::Data<AppState>,
    host: web::Path<String>,
    req: HttpRequest,
    body: Option<web::Json<DrainBody>>,
    Authed(s): Authed,
) -> ApiResult {
    let s = admin_changing(&state, &req, s)?;
    let pool = state
        .servers
        .ssh
        .as_ref()
        .ok_or_else(|| ApiError::not_found("no ssh pool is configured ([spawner.ssh])"))?;
    let host = host.into_inner();
    let drained = body.is_none_or(|b| b.drained);
    pool.set_drained(&host, drained)
        .map_err(|e| ApiError::not_found(e.to_string()))?;
    let rec = AuditRecord {
        session: Some(session_ref(&s)),
        message: Some(format!(
            "host {host} {}",
            if drained { "drained" } else { "undrained" }
        )),
        ..AuditRecord::new(RecordKind::Event, events::ADMIN, &s.user)
    }
    .with_extra("host", host.clone());
    let _ = state.recorder.append(rec).await;
    Ok(HttpResponse::Ok().json(json!({ "host": host, "drained": drained })))
}

pub async fn stop_server(
    state: web::Data<AppState>,
    owner: web::Path<String>,
    req: HttpRequest,
    Authed(s): Authed,
) -> ApiResult {
    let s = admin_changing(&state, &req, s)?;
    let owner = owner.into_inner();
    if !state.servers.has_server_or_queued(&owner).await {
        return Err(ApiError::not_found(format!(
            "{owner} has no running or queued server"
        )));
    }
    state
        .servers
        .stop_audited(
            &owner,
            &s.user,
            Some(session_ref(&s)),
            "stopped by a hub admin",
        )
        .await
        .map_err(|e| ApiError::bad_gateway(e.to_string()))?;
    Ok(HttpResponse::Ok().json(json!({ "stopped": owner })))
}

pub async fn sessions(state: web::Data<AppState>, Authed(s): Authed) -> ApiResult {
    admin(&state, s)?;
    let now = state.store.now();
    let list: Vec<_> = state
        .sessions
        .all()
        .await
        .into_iter()
        .map(|s| {
            json!({"id": session_ref(&s), "user": s.user, "class": s.class_at(now), "created": s.created,
                   "last_seen": s.last_seen, "addr": s.addr})
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "sessions": list })))
}

pub async fn revoke_session(
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
    Authed(s): Authed,
) -> ApiResult {
    let s = admin_changing(&state, &req, s)?;
    let id = id.into_inner();
    let victims: Vec<_> = state
        .sessions
        .all()
        .await
        .into_iter()
        .filter(|x| session_ref(x) == id)
        .collect();
    if victims.is_empty() {
        return Err(ApiError::not_found(format!("no session {id:?}")));
    }
    for v in &victims {
        state.sessions.end(v).await;
        let rec = AuditRecord {
            session: Some(session_ref(&s)),
            owner: Some(v.user.clone()),
            message: Some(format!("revoked session {id} of {}", v.user)),
            ..AuditRecord::new(RecordKind::Event, events::ADMIN, &s.user)
        };
        let _ = state.recorder.append(rec).await;
    }
    Ok(HttpResponse::Ok().json(json!({ "revoked": id })))
}
