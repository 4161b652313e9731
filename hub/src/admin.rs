//! Hub-admin endpoints: list and stop servers, list and revoke sessions. Being an admin
//! grants no workflow permissions at all — only these.

use crate::state::AppState;
use crate::web::{audit, current_session, error_json, require_csrf, session_ref};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use steward_audit::{events, AuditRecord, RecordKind};

async fn admin(state: &AppState, req: &HttpRequest) -> Result<crate::store::Session, HttpResponse> {
    let s = current_session(state, req)
        .await
        .ok_or_else(|| error_json(StatusCode::UNAUTHORIZED, "not logged in"))?;
    if !state.is_admin(&s.user) {
        return Err(error_json(StatusCode::FORBIDDEN, "hub admins only"));
    }
    Ok(s)
}

/// An admin's state-changing request: admin and CSRF checked.
async fn admin_changing(
    state: &AppState,
    req: &HttpRequest,
) -> Result<crate::store::Session, HttpResponse> {
    let s = admin(state, req).await?;
    require_csrf(req, &s)?;
    Ok(s)
}

pub async fn servers(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Err(r) = admin(&state, &req).await {
        return r;
    }
    let list: Vec<_> = state
        .servers
        .all()
        .into_iter()
        .map(|s| {
            let port = match &s.endpoint {
                steward_protocol::Endpoint::Tcp { port, .. } => Some(*port),
                steward_protocol::Endpoint::Unix { .. } => None,
            };
            json!({"owner": s.owner, "server": s.name, "pid": s.pid, "port": port,
                   "endpoint": s.endpoint.to_string(), "placement": s.placement.to_string(),
                   "cgroup": s.cgroup})
        })
        .collect();
    HttpResponse::Ok().json(json!({ "servers": list }))
}

pub async fn stop_server(
    state: web::Data<AppState>,
    req: HttpRequest,
    owner: web::Path<String>,
) -> HttpResponse {
    let s = match admin_changing(&state, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let owner = owner.into_inner();
    if state.servers.get(&owner).is_none() {
        return error_json(
            StatusCode::NOT_FOUND,
            format!("{owner} has no running server"),
        );
    }
    let result = crate::relay::stop_server_audited(
        &state,
        &owner,
        &s.user,
        Some(session_ref(&s)),
        "stopped by a hub admin",
    )
    .await;
    match result {
        Ok(()) => HttpResponse::Ok().json(json!({ "stopped": owner })),
        Err(e) => error_json(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

pub async fn sessions(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Err(r) = admin(&state, &req).await {
        return r;
    }
    let now = state.store.now();
    let list: Vec<_> = state
        .store
        .sessions()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            json!({"id": session_ref(&s), "user": s.user, "class": s.class_at(now), "created": s.created,
                   "last_seen": s.last_seen, "addr": s.addr})
        })
        .collect();
    HttpResponse::Ok().json(json!({ "sessions": list }))
}

pub async fn revoke_session(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let s = match admin_changing(&state, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = id.into_inner();
    let victims: Vec<_> = state
        .store
        .sessions()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|x| session_ref(x) == id)
        .collect();
    if victims.is_empty() {
        return error_json(StatusCode::NOT_FOUND, format!("no session {id:?}"));
    }
    for v in &victims {
        let _ = state
            .store
            .delete_session(&v.id_hash().unwrap_or_default())
            .await;
        let rec = AuditRecord {
            session: Some(session_ref(&s)),
            owner: Some(v.user.clone()),
            message: Some(format!("revoked session {id} of {}", v.user)),
            ..AuditRecord::new(RecordKind::Event, events::ADMIN, &s.user)
        };
        let _ = audit(&state, rec).await;
    }
    HttpResponse::Ok().json(json!({ "revoked": id }))
}
