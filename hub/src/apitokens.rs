//! API tokens for scripts: created by a logged-in person, shown once, stored as SHA-256,
//! always expiring, revocable. A token that can execute or write can only be made from a
//! session elevated to at least that class, and never outlives `elevation.token_max_secs`.

use crate::state::AppState;
use crate::store::{hash_secret, Session, TokenRow};
use crate::web::{audit, current_session, error_json, random_token, require_csrf};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use steward_audit::{events, AuditRecord, RecordKind};
use steward_protocol::OpClass;

pub const TOKEN_PREFIX: &str = "stw_";
/// Longest lifetime of a read-only token.
pub const READ_TOKEN_MAX_SECS: u64 = 90 * 24 * 3600;

/// Resolves `Authorization: Bearer stw_<id>_<secret>` into a session-like value.
pub async fn session_from_bearer(state: &AppState, req: &HttpRequest) -> Option<Session> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    validate(
        state,
        token,
        &req.peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default(),
    )
    .await
}

pub async fn validate(state: &AppState, token: &str, addr: &str) -> Option<Session> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let row = state.store.token(id).await.ok()??;
    let now = state.store.now();
    let hash = hash_secret(secret);
    let same = hash.len() == row.hash.len()
        && hash
            .bytes()
            .zip(row.hash.bytes())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0;
    if !same || row.revoked || now >= row.expires {
        return None;
    }
    Some(token_session(state, &row, addr))
}

fn token_session(state: &AppState, row: &TokenRow, addr: &str) -> Session {
    Session {
        kind: crate::store::SessionKind::Token { id: row.id.clone() },
        user: row.user.clone(),
        groups: state.groups_of(&row.user),
        class: row.class,
        deadline: (row.class != OpClass::Read).then_some(row.expires),
        csrf: String::new(),
        created: row.created,
        last_seen: state.store.now(),
        addr: addr.to_string(),
        expiry_audited: true,
    }
}

/// Re-checks a token-backed session (revocation, expiry) before an operation.
pub async fn revalidate(state: &AppState, s: &Session) -> Option<Session> {
    let crate::store::SessionKind::Token { id } = &s.kind else {
        return None;
    };
    let row = state.store.token(id).await.ok()??;
    if row.revoked || state.store.now() >= row.expires {
        return None;
    }
    Some(token_session(state, &row, &s.addr))
}

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
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let Some(s) = current_session(&state, &req).await else {
        return error_json(StatusCode::UNAUTHORIZED, "not logged in");
    };
    if s.is_token() {
        return error_json(StatusCode::FORBIDDEN, "tokens cannot create tokens; log in");
    }
    if let Err(r) = require_csrf(&req, &s) {
        return r;
    }
    let body: CreateBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error_json(
                StatusCode::BAD_REQUEST,
                format!("request body: {e}; expected {{\"name\", \"class\", \"expires_in_secs\"}}"),
            )
        }
    };
    if body.name.is_empty() || body.name.len() > 64 || body.name.chars().any(|c| c.is_control()) {
        return error_json(
            StatusCode::BAD_REQUEST,
            "name: 1 to 64 printable characters",
        );
    }
    let class = match body.class.as_deref().unwrap_or("read").parse::<OpClass>() {
        Ok(c) => c,
        Err(e) => return error_json(StatusCode::BAD_REQUEST, format!("class: {e}")),
    };
    if body.expires_in_secs == 0 {
        return error_json(
            StatusCode::BAD_REQUEST,
            "expires_in_secs: every token must expire",
        );
    }
    let now = state.store.now();
    let max = if class == OpClass::Read {
        READ_TOKEN_MAX_SECS
    } else {
        state.cfg.elevation.token_max_secs
    };
    if body.expires_in_secs > max {
        return error_json(
            StatusCode::BAD_REQUEST,
            format!("expires_in_secs: at most {max} for a {class} token"),
        );
    }
    if class != OpClass::Read && s.class_at(now) < class {
        return error_json(
            StatusCode::FORBIDDEN,
            format!("a {class} token can only be created from a session elevated to {class}; raise your privileges first"),
        );
    }
    let id = random_token()[..12].to_string();
    let secret = random_token();
    let row = TokenRow {
        id: id.clone(),
        hash: hash_secret(&secret),
        user: s.user.clone(),
        name: body.name.clone(),
        class,
        created: now,
        expires: now + body.expires_in_secs as i64,
        revoked: false,
    };
    if let Err(e) = state.store.insert_token(&row).await {
        return error_json(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    }
    let rec = AuditRecord {
        session: Some(crate::web::session_ref(&s)),
        elevation: Some(class.name().into()),
        message: Some(format!(
            "token {} ({}) expires in {} s",
            id, body.name, body.expires_in_secs
        )),
        ..AuditRecord::new(RecordKind::Event, events::TOKEN_CREATE, &s.user)
    }
    .with_extra("token_id", id.clone());
    if let Err(e) = audit(&state, rec).await {
        let _ = state.store.revoke_token(&id).await;
        return error_json(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("audit log unavailable, token not created: {e}"),
        );
    }
    HttpResponse::Ok().json(json!({
        "id": id,
        "token": format!("{TOKEN_PREFIX}{id}_{secret}"),
        "class": class,
        "expires": row.expires,
        "note": "shown once: store it now",
    }))
}

pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some(s) = current_session(&state, &req).await else {
        return error_json(StatusCode::UNAUTHORIZED, "not logged in");
    };
    let who = if state.is_admin(&s.user) && req.query_string().contains("all=1") {
        None
    } else {
        Some(s.user.as_str())
    };
    match state.store.tokens(who).await {
        Ok(rows) => HttpResponse::Ok().json(json!({ "tokens": rows })),
        Err(e) => error_json(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let Some(s) = current_session(&state, &req).await else {
        return error_json(StatusCode::UNAUTHORIZED, "not logged in");
    };
    if let Err(r) = require_csrf(&req, &s) {
        return r;
    }
    let id = id.into_inner();
    let Ok(Some(row)) = state.store.token(&id).await else {
        return error_json(StatusCode::NOT_FOUND, format!("no token {id:?}"));
    };
    if row.user != s.user && !state.is_admin(&s.user) {
        return error_json(StatusCode::NOT_FOUND, format!("no token {id:?}"));
    }
    let _ = state.store.revoke_token(&id).await;
    let rec = AuditRecord {
        session: Some(crate::web::session_ref(&s)),
        owner: Some(row.user.clone()),
        message: Some(format!("token {id} ({})", row.name)),
        ..AuditRecord::new(RecordKind::Event, events::TOKEN_REVOKE, &s.user)
    }
    .with_extra("token_id", id.clone());
    let _ = audit(&state, rec).await;
    HttpResponse::Ok().json(json!({ "revoked": id }))
}
