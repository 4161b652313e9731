//! `/hub/api/tokens`: create (shown once), list and revoke API tokens.

use crate::http::{ApiError, ApiResult};
use crate::session::{session_ref, Authed, CsrfChecked};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use steward_audit::{events, AuditRecord, RecordKind};
use steward_protocol::OpClass;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    name: String,
    #[serde(default)]
    class: Option<String>,
    expires_in_secs: u64,
}

pub async fn create(
    state: web::Data<AppState>,
    body: web::Bytes,
    authed: Result<Authed, ApiError>,
    req: HttpRequest,
) -> ApiResult {
    let Authed(s) = authed?;
    // Checked before CSRF, as a token session carries none and must hear why it failed.
    if s.is_token() {
        return Err(ApiError::forbidden("tokens cannot create tokens; log in"));
    }
    crate::session::check_csrf(&req, &s)?;
    let body: CreateBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "request body: {e}; expected {{\"name\", \"class\", \"expires_in_secs\"}}"
        ))
    })?;
    let class = body
        .class
        .as_deref()
        .unwrap_or("read")
        .parse::<OpClass>()
        .map_err(|e| ApiError::bad_request(format!("class: {e}")))?;
    let issued = state
        .sessions
        .issue_token(
            &s,
            &body.name,
            class,
            body.expires_in_secs,
            state.cfg.elevation.token_max_secs,
        )
        .await?;
    let id = issued.row.id.clone();
    let rec = AuditRecord {
        session: Some(session_ref(&s)),
        elevation: Some(class.name().into()),
        message: Some(format!(
            "token {} ({}) expires in {} s",
            id, body.name, body.expires_in_secs
        )),
        ..AuditRecord::new(RecordKind::Event, events::TOKEN_CREATE, &s.user)
    }
    .with_extra("token_id", id.clone());
    if let Err(e) = state.recorder.append(rec).await {
        state.sessions.revoke_token(&id).await;
        return Err(ApiError::unavailable(format!(
            "audit log unavailable, token not created: {e}"
        )));
    }
    Ok(HttpResponse::Ok().json(json!({
        "id": id,
        "token": issued.token,
        "class": class,
        "expires": issued.row.expires,
        "note": "shown once: store it now",
    })))
}

pub async fn list(state: web::Data<AppState>, req: HttpRequest, Authed(s): Authed) -> ApiResult {
    let who = if state.is_admin(&s.user) && req.query_string().contains("all=1") {
        None
    } else {
        Some(s.user.as_str())
    };
    let rows = state.sessions.tokens(who).await?;
    Ok(HttpResponse::Ok().json(json!({ "tokens": rows })))
}

pub async fn revoke(
    state: web::Data<AppState>,
    id: web::Path<String>,
    CsrfChecked(s): CsrfChecked,
) -> ApiResult {
    let id = id.into_inner();
    let row = match state.sessions.token(&id).await {
        Some(row) if row.user == s.user || state.is_admin(&s.user) => row,
        _ => return Err(ApiError::not_found(format!("no token {id:?}"))),
    };
    state.sessions.revoke_token(&id).await;
    let rec = AuditRecord {
        session: Some(session_ref(&s)),
        owner: Some(row.user.clone()),
        message: Some(format!("token {id} ({})", row.name)),
        ..AuditRecord::new(RecordKind::Event, events::TOKEN_REVOKE, &s.user)
    }
    .with_extra("token_id", id.clone());
    let _ = state.recorder.append(rec).await;
    Ok(HttpResponse::Ok().json(json!({ "revoked": id })))
}
