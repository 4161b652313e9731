//! Hub-admin endpoints: list and stop servers, list and revoke sessions. Being an admin
//! grants no workflow permissions at all — only these.

use crate::http::{ApiError, ApiResult};
use crate::session::{check_csrf, session_ref, Authed, Session};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use steward_audit::{events, AuditRecord, RecordKind};
use steward_protocol::Endpoint;

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

pub async fn servers(state: web::Data<AppState>, Authed(s): Authed) -> ApiResult {
    admin(&state, s)?;
    let list: Vec<_> = state
        .servers
        .all()
        .into_iter()
        .map(|s| {
            let port = match &s.endpoint {
                Endpoint::Tcp { port, .. } => Some(*port),
                Endpoint::Unix { .. } | Endpoint::SingleUser { .. } => None,
            };
            json!({"owner": s.owner, "server": s.name, "pid": s.pid, "port": port,
                   "endpoint": s.endpoint.to_string(), "placement": s.placement.to_string(),
                   "cgroup": s.cgroup})
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "servers": list })))
}

pub async fn stop_server(
    state: web::Data<AppState>,
    owner: web::Path<String>,
    req: HttpRequest,
    Authed(s): Authed,
) -> ApiResult {
    let s = admin_changing(&state, &req, s)?;
    let owner = owner.into_inner();
    if state.servers.get(&owner).is_none() {
        return Err(ApiError::not_found(format!(
            "{owner} has no running server"
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
