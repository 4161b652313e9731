//! HTTP routes of the public listener (`/hub/...`, `/user/<owner>/...`) and the internal
//! listener (`/internal/register`).

use crate::auth::{self, AuthError};
use crate::state::AppState;
use crate::store::{hash_secret, Session};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use steward_audit::{events, AuditRecord, RecordKind};
use steward_protocol::bootstrap::Registration;
use steward_protocol::OpClass;

pub const SESSION_COOKIE: &str = "steward_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// 256 random bits, hex: session ids, CSRF tokens, registration tokens.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

pub fn error_json(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message.into() }))
}

fn client_addr(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default()
}

fn session_cookie(id: &str) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, id.to_string())
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish()
}

/// The session behind the request's cookie, if it is live (idle and lifetime checked).
pub async fn current_session(state: &AppState, req: &HttpRequest) -> Option<Session> {
    if req.headers().contains_key("authorization") {
        return crate::apitokens::session_from_bearer(state, req).await;
    }
    let cookie = req.cookie(SESSION_COOKIE)?;
    let id_hash = hash_secret(cookie.value());
    let s = state.store.session(&id_hash).await.ok()??;
    let now = state.store.now();
    if now - s.last_seen > state.cfg.sessions.idle_secs as i64
        || now - s.created > state.cfg.sessions.lifetime_secs as i64
    {
        let _ = state.store.delete_session(&id_hash).await;
        return None;
    }
    if now - s.last_seen > 30 {
        let _ = state.store.touch_session(&id_hash, now).await;
    }
    Some(s)
}

pub fn require_csrf(req: &HttpRequest, s: &Session) -> Result<(), HttpResponse> {
    // Bearer tokens are not sent by browsers on their own, so they need no CSRF token.
    if s.is_token() {
        return Ok(());
    }
    match req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        Some(t) if constant_time_eq(t.as_bytes(), s.csrf.as_bytes()) => Ok(()),
        _ => Err(error_json(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token (send the X-CSRF-Token header from /hub/api/me)",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Creates a fresh session (new id: no fixation) and returns it with its cookie value.
async fn new_session(
    state: &AppState,
    user: &str,
    addr: &str,
    class: OpClass,
    deadline: Option<i64>,
    directory_groups: &[String],
) -> Result<(Session, String), HttpResponse> {
    let id = random_token();
    let now = state.store.now();
    let s = Session {
        kind: crate::store::SessionKind::Cookie {
            id_hash: hash_secret(&id),
        },
        user: user.to_string(),
        groups: {
            let mut g = state.groups_of(user);
            g.extend(directory_groups.iter().cloned());
            g.sort();
            g.dedup();
            g
        },
        class,
        deadline,
        csrf: random_token(),
        created: now,
        last_seen: now,
        addr: addr.to_string(),
        expiry_audited: false,
    };
    state.store.insert_session(&s).await.map_err(|e| {
        error_json(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("session store unavailable: {e}"),
        )
    })?;
    Ok((s, id))
}

pub fn session_ref(s: &Session) -> String {
    // A prefix of the hash identifies the session in the audit log without revealing it.
    s.kind.reference()
}

pub fn deadline_rfc3339(deadline: Option<i64>) -> Option<String> {
    deadline
        .and_then(|d| chrono::DateTime::from_timestamp(d, 0))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Audits an event; on failure the caller decides whether to fail closed.
pub async fn audit(state: &AppState, rec: AuditRecord) -> Result<u64, steward_audit::AuditError> {
    let started = std::time::Instant::now();
    let r = state.audit.append(rec).await;
    state
        .metrics
        .audit_write_seconds
        .observe(started.elapsed().as_secs_f64());
    if let Err(e) = &r {
        state.metrics.audit_failures.inc();
        tracing::error!(error = %e, "audit log write failed");
    }
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
}

fn too_many(retry_after: u64) -> HttpResponse {
    HttpResponse::TooManyRequests()
        .insert_header(("Retry-After", retry_after.to_string()))
        .json(json!({ "error": format!("too many failed attempts; try again in {retry_after} s") }))
}

/// Rate-limited authentication: a 429 response when over the limit, else the result.
async fn authenticate_limited(
    state: &AppState,
    user: &str,
    password: &str,
    addr: &str,
) -> Result<Result<Vec<String>, AuthError>, HttpResponse> {
    let now = state.store.now();
    // Limit on the name as typed (truncated), so over-long names share one bucket.
    let key: String = user.chars().take(64).collect();
    if let Some(secs) = state.limiter.check(&key, addr, now) {
        return Err(too_many(secs));
    }
    let result = authenticate(state, user, password).await;
    match &result {
        Ok(_) => state.limiter.succeeded(&key),
        Err(AuthError::Rejected { .. }) => state.limiter.failed(&key, addr, now),
        Err(AuthError::Unavailable { .. }) => {}
    }
    Ok(result)
}

/// Checks the password with the configured backend; returns the directory's groups
/// (LDAP) to add to the NSS groups, none for PAM.
async fn authenticate(
    state: &AppState,
    user: &str,
    password: &str,
) -> Result<Vec<String>, AuthError> {
    auth::precheck(&state.user_pattern, user, password)?;
    if let (true, Some(ldap)) = (state.cfg.auth.backend == "ldap", &state.cfg.auth.ldap) {
        return crate::ldap::authenticate(ldap, user, password).await;
    }
    let service = state.cfg.auth.pam_service.clone();
    let (u, p) = (user.to_string(), password.to_string());
    tokio::task::spawn_blocking(move || auth::pam_authenticate(&service, &u, &p))
        .await
        .map_err(|e| AuthError::Unavailable {
            detail: e.to_string(),
        })??;
    Ok(vec![])
}

pub async fn login(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let addr = client_addr(&req);
    let Ok(body) = serde_json::from_slice::<LoginBody>(&body) else {
        return error_json(
            StatusCode::BAD_REQUEST,
            "request body must be JSON {\"username\": ..., \"password\": ...}",
        );
    };
    let result = match authenticate_limited(&state, &body.username, &body.password, &addr).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match result {
        Ok(dir_groups) => {
            state.metrics.logins.with_label_values(&["ok"]).inc();
            let (s, id) = match new_session(
                &state,
                &body.username,
                &addr,
                OpClass::Read,
                None,
                &dir_groups,
            )
            .await
            {
                Ok(x) => x,
                Err(resp) => return resp,
            };
            let rec = AuditRecord {
                actor_addr: Some(addr),
                session: Some(session_ref(&s)),
                elevation: Some("read".into()),
                ..AuditRecord::new(RecordKind::Event, events::LOGIN, &s.user)
            };
            if let Err(e) = audit(&state, rec).await {
                let _ = state
                    .store
                    .delete_session(&s.id_hash().unwrap_or_default())
                    .await;
                return error_json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("audit log unavailable, login refused: {e}"),
                );
            }
            // Start the user's own server in the background so their first visit is fast.
            let st = state.clone();
            let owner = s.user.clone();
            actix_web::rt::spawn(async move {
                crate::relay::ensure_server(&st, &owner, &owner).await.ok();
            });
            HttpResponse::Ok()
                .cookie(session_cookie(&id))
                .json(json!({ "user": s.user, "csrf": s.csrf, "class": "read" }))
        }
        Err(e) => {
            state.metrics.logins.with_label_values(&["failed"]).inc();
            let status = match e {
                AuthError::Rejected { .. } => StatusCode::UNAUTHORIZED,
                AuthError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            };
            // The name is attacker-controlled text; the audit log escapes it.
            let rec = AuditRecord {
                actor_addr: Some(addr),
                reason: Some(e.detail().to_string()),
                ..AuditRecord::new(
                    RecordKind::Event,
                    events::LOGIN_FAILED,
                    &body.username.chars().take(64).collect::<String>(),
                )
            };
            let _ = audit(&state, rec).await;
            error_json(status, e.to_string())
        }
    }
}

pub async fn logout(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some(s) = current_session(&state, &req).await else {
        return error_json(StatusCode::UNAUTHORIZED, "not logged in");
    };
    if let Err(r) = require_csrf(&req, &s) {
        return r;
    }
    let _ = state
        .store
        .delete_session(&s.id_hash().unwrap_or_default())
        .await;
    let rec = AuditRecord {
        actor_addr: Some(client_addr(&req)),
        session: Some(session_ref(&s)),
        ..AuditRecord::new(RecordKind::Event, events::LOGOUT, &s.user)
    };
    let _ = audit(&state, rec).await;
    let mut gone = session_cookie("");
    gone.make_removal();
    HttpResponse::Ok().cookie(gone).json(json!({ "ok": true }))
}

/// Audits the silent drop of an elapsed elevation, once per session.
pub async fn audit_expiry_once(state: &AppState, s: &Session) {
    let now = state.store.now();
    if s.class != OpClass::Read && s.deadline.is_some_and(|d| now >= d) && !s.expiry_audited {
        if let Ok(true) = state
            .store
            .mark_expiry_audited(&s.id_hash().unwrap_or_default())
            .await
        {
            let rec = AuditRecord {
                session: Some(session_ref(s)),
                elevation: Some(s.class.name().into()),
                elevation_deadline: deadline_rfc3339(s.deadline),
                ..AuditRecord::new(RecordKind::Event, events::EXPIRE, &s.user)
            };
            let _ = audit(state, rec).await;
        }
    }
}

pub async fn me(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some(s) = current_session(&state, &req).await else {
        return error_json(StatusCode::UNAUTHORIZED, "not logged in");
    };
    audit_expiry_once(&state, &s).await;
    let now = state.store.now();
    let class = s.class_at(now);
    let left = s
        .deadline
        .filter(|_| class != OpClass::Read)
        .map(|d| (d - now).max(0));
    HttpResponse::Ok().json(json!({
        "user": s.user,
        "groups": s.groups,
        "class": class,
        "deadline": deadline_rfc3339(s.deadline.filter(|_| class != OpClass::Read)),
        "seconds_left": left,
        "csrf": s.csrf,
        "admin": state.is_admin(&s.user),
        "class_ops": state.class_ops("", &s, now),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElevateBody {
    class: String,
    password: String,
    #[serde(default)]
    seconds: Option<u64>,
}

/// Raising privileges ends the current session and needs a fresh password, like sudo.
pub async fn elevate(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let Some(s) = current_session(&state, &req).await else {
        return error_json(StatusCode::UNAUTHORIZED, "not logged in");
    };
    if let Err(r) = require_csrf(&req, &s) {
        return r;
    }
    let addr = client_addr(&req);
    let body = match serde_json::from_slice::<ElevateBody>(&body) {
        Ok(b) => b,
        Err(e) => return error_json(StatusCode::BAD_REQUEST, format!("request body: {e}")),
    };
    let class = match body.class.parse::<OpClass>() {
        Ok(OpClass::Read) | Err(_) => {
            return error_json(StatusCode::BAD_REQUEST, format!("class {:?}: ask for \"execute\" or \"write\" (use /hub/api/drop to go back to read)", body.class))
        }
        Ok(c) => c,
    };
    let result = match authenticate_limited(&state, &s.user, &body.password, &addr).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let dir_groups = match result {
        Ok(groups) => groups,
        Err(e) => {
            let rec = AuditRecord {
                actor_addr: Some(addr),
                session: Some(session_ref(&s)),
                elevation: Some(class.name().into()),
                reason: Some(e.detail().to_string()),
                ..AuditRecord::new(RecordKind::Event, events::ELEVATE_REFUSED, &s.user)
            };
            let _ = audit(&state, rec).await;
            let status = if matches!(e, AuthError::Unavailable { .. }) {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::UNAUTHORIZED
            };
            return error_json(status, e.to_string());
        }
    };
    let cfg = &state.cfg.elevation;
    let group_default = s
        .groups
        .iter()
        .filter_map(|g| cfg.group_secs.get(g))
        .max()
        .copied();
    let secs = body
        .seconds
        .unwrap_or(group_default.unwrap_or(cfg.default_secs))
        .clamp(1, cfg.max_secs);
    let deadline = state.store.now() + secs as i64;
    let _ = state
        .store
        .delete_session(&s.id_hash().unwrap_or_default())
        .await;
    let (ns, id) =
        match new_session(&state, &s.user, &addr, class, Some(deadline), &dir_groups).await {
            Ok(x) => x,
            Err(r) => return r,
        };
    let rec = AuditRecord {
        actor_addr: Some(addr),
        session: Some(session_ref(&ns)),
        elevation: Some(class.name().into()),
        elevation_deadline: deadline_rfc3339(Some(deadline)),
        ..AuditRecord::new(RecordKind::Event, events::ELEVATE, &s.user)
    };
    if let Err(e) = audit(&state, rec).await {
        let _ = state
            .store
            .delete_session(&ns.id_hash().unwrap_or_default())
            .await;
        return error_json(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("audit log unavailable, elevation refused: {e}"),
        );
    }
    HttpResponse::Ok().cookie(session_cookie(&id)).json(json!({
        "user": ns.user, "csrf": ns.csrf, "class": class, "deadline": deadline_rfc3339(Some(deadline)), "seconds_left": secs,
    }))
}

/// Back to read-only, early: one click, new session id.
pub async fn drop_privileges(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some(s) = current_session(&state, &req).await else {
        return error_json(StatusCode::UNAUTHORIZED, "not logged in");
    };
    if let Err(r) = require_csrf(&req, &s) {
        return r;
    }
    let addr = client_addr(&req);
    let _ = state
        .store
        .delete_session(&s.id_hash().unwrap_or_default())
        .await;
    let (ns, id) = match new_session(&state, &s.user, &addr, OpClass::Read, None, &s.groups).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let rec = AuditRecord {
        actor_addr: Some(addr),
        session: Some(session_ref(&ns)),
        elevation: Some(s.class.name().into()),
        ..AuditRecord::new(RecordKind::Event, events::DROP, &s.user)
    };
    let _ = audit(&state, rec).await;
    HttpResponse::Ok()
        .cookie(session_cookie(&id))
        .json(json!({ "user": ns.user, "csrf": ns.csrf, "class": "read" }))
}

/// Internal listener: a freshly started UI server says where it listens.
pub async fn register(state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let Ok(reg) = serde_json::from_slice::<Registration>(&body) else {
        return error_json(
            StatusCode::BAD_REQUEST,
            "registration body must be a Registration JSON",
        );
    };
    if state.servers.register(reg) {
        HttpResponse::Ok().json(json!({ "ok": true }))
    } else {
        error_json(
            StatusCode::FORBIDDEN,
            "unknown or already used registration token",
        )
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state
        .metrics
        .running_servers
        .set(state.servers.all().len() as i64);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
