//! `/hub/api/login|logout|me|elevate|drop`: a person's own session. Raising privileges
//! ends the current session and needs a fresh password, like sudo.

use crate::auth::{Attempt, AuthError};
use crate::http::{peer_addr, ApiError, ApiResult};
use crate::session::{deadline_rfc3339, session_cookie, session_ref, Authed, CsrfChecked};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use steward_audit::{events, AuditRecord, RecordKind};
use steward_protocol::OpClass;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
}

/// Checks a password with its limits: 429 over the limit, else the backend's answer.
async fn check_password(
    state: &AppState,
    user: &str,
    password: &str,
    addr: &str,
) -> Result<Result<Vec<String>, AuthError>, ApiError> {
    match state
        .login
        .attempt(user, password, addr, state.store.now())
        .await
    {
        Attempt::Wait(secs) => Err(ApiError::too_many(
            format!("too many failed attempts; try again in {secs} s"),
            secs,
        )),
        Attempt::Checked(result) => Ok(result),
    }
}

fn auth_status(e: &AuthError) -> StatusCode {
    match e {
        AuthError::Rejected { .. } => StatusCode::UNAUTHORIZED,
        AuthError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Login CSRF: a foreign page can make the victim's browser post a form (text/plain,
/// urlencoded, multipart) or a no-cors fetch to the login without a CORS preflight, and
/// so sign the victim into the attacker's account. Browsers send an Origin on every
/// POST, so a foreign one is refused; a form content type is refused too. Scripts send
/// no Origin and JSON (or no content type), and are unaffected.
fn login_from_this_origin(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    if let Some(o) = req.headers().get("origin") {
        let ours = state.cfg.public_origin();
        if o.to_str().ok().map(|o| o.trim_end_matches('/')) != Some(ours.as_str()) {
            return Err(ApiError::forbidden(format!(
                "login from another origin refused (only {ours} may post here)"
            )));
        }
    }
    let ctype = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ctype.split(';').next().unwrap_or("").trim();
    if !essence.is_empty() && !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("login: Content-Type {essence:?} refused; send application/json"),
        ));
    }
    Ok(())
}

pub async fn login(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> ApiResult {
    login_from_this_origin(&state, &req)?;
    let addr = peer_addr(&req);
    let body = serde_json::from_slice::<LoginBody>(&body).map_err(|_| {
        ApiError::bad_request("request body must be JSON {\"username\": ..., \"password\": ...}")
    })?;
    let result = check_password(&state, &body.username, &body.password, &addr).await?;
    let dir_groups = match result {
        Ok(g) => g,
        Err(e) => {
            state.metrics.logins.with_label_values(&["failed"]).inc();
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
            let _ = state.recorder.append(rec).await;
            return Err(ApiError::new(auth_status(&e), e.to_string()));
        }
    };
    state.metrics.logins.with_label_values(&["ok"]).inc();
    let (s, id) = state
        .sessions
        .create(&body.username, &addr, OpClass::Read, None, &dir_groups)
        .await
        .map_err(|e| ApiError::unavailable(format!("session store unavailable: {e}")))?;
    let rec = AuditRecord {
        actor_addr: Some(addr),
        session: Some(session_ref(&s)),
        elevation: Some("read".into()),
        ..AuditRecord::new(RecordKind::Event, events::LOGIN, &s.user)
    };
    if let Err(e) = state.recorder.append(rec).await {
        state.sessions.end(&s).await;
        return Err(ApiError::unavailable(format!(
            "audit log unavailable, login refused: {e}"
        )));
    }
    // Start the user's own server in the background so their first visit is fast.
    let servers = state.servers.clone();
    let owner = s.user.clone();
    actix_web::rt::spawn(async move {
        servers.ensure_audited(&owner, &owner, None).await.ok();
    });
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(&id))
        .json(json!({ "user": s.user, "csrf": s.csrf, "class": "read" })))
}

pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    CsrfChecked(s): CsrfChecked,
) -> ApiResult {
    state.sessions.end(&s).await;
    // Tokens single-user servers hold for this person go too (they cache a token's
    // user for 300 s, so the hub's relay is what enforces the logout at once).
    if let Some(su) = state.servers.singleuser() {
        su.forget_visitor(&s.user);
    }
    let rec = AuditRecord {
        actor_addr: Some(peer_addr(&req)),
        session: Some(session_ref(&s)),
        ..AuditRecord::new(RecordKind::Event, events::LOGOUT, &s.user)
    };
    let _ = state.recorder.append(rec).await;
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(""))
        .json(json!({ "ok": true })))
}

pub async fn me(state: web::Data<AppState>, Authed(s): Authed) -> ApiResult {
    if let Some(rec) = state.sessions.expiry_event(&s).await {
        let _ = state.recorder.append(rec).await;
    }
    let now = state.store.now();
    let class = s.class_at(now);
    let left = s
        .deadline
        .filter(|_| class != OpClass::Read)
        .map(|d| (d - now).max(0));
    Ok(HttpResponse::Ok().json(json!({
        "user": s.user,
        "groups": s.groups,
        "class": class,
        "deadline": deadline_rfc3339(s.deadline.filter(|_| class != OpClass::Read)),
        "seconds_left": left,
        "csrf": s.csrf,
        "admin": state.is_admin(&s.user),
        "class_ops": state.decider.class_ops("", &s, now),
    })))
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
    CsrfChecked(s): CsrfChecked,
) -> ApiResult {
    let addr = peer_addr(&req);
    let body = serde_json::from_slice::<ElevateBody>(&body)
        .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?;
    let class = match body.class.parse::<OpClass>() {
        Ok(OpClass::Read) | Err(_) => {
            return Err(ApiError::bad_request(format!(
            "class {:?}: ask for \"execute\" or \"write\" (use /hub/api/drop to go back to read)",
            body.class
        )))
        }
        Ok(c) => c,
    };
    let dir_groups = match check_password(&state, &s.user, &body.password, &addr).await? {
        Ok(groups) => groups,
        Err(e) => {
            let rec = AuditRecord {
                actor_addr: Some(addr),
                session: Some(session_ref(&s)),
                elevation: Some(class.name().into()),
                reason: Some(e.detail().to_string()),
                ..AuditRecord::new(RecordKind::Event, events::ELEVATE_REFUSED, &s.user)
            };
            let _ = state.recorder.append(rec).await;
            return Err(ApiError::new(auth_status(&e), e.to_string()));
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
    state.sessions.end(&s).await;
    let (ns, id) = state
        .sessions
        .create(&s.user, &addr, class, Some(deadline), &dir_groups)
        .await
        .map_err(|e| ApiError::unavailable(format!("session store unavailable: {e}")))?;
    let rec = AuditRecord {
        actor_addr: Some(addr),
        session: Some(session_ref(&ns)),
        elevation: Some(class.name().into()),
        elevation_deadline: deadline_rfc3339(Some(deadline)),
        ..AuditRecord::new(RecordKind::Event, events::ELEVATE, &s.user)
    };
    if let Err(e) = state.recorder.append(rec).await {
        state.sessions.end(&ns).await;
        return Err(ApiError::unavailable(format!(
            "audit log unavailable, elevation refused: {e}"
        )));
    }
    Ok(HttpResponse::Ok().cookie(session_cookie(&id)).json(json!({
        "user": ns.user, "csrf": ns.csrf, "class": class, "deadline": deadline_rfc3339(Some(deadline)), "seconds_left": secs,
    })))
}

/// Back to read-only, early: one click, new session id.
pub async fn drop_privileges(
    state: web::Data<AppState>,
    req: HttpRequest,
    CsrfChecked(s): CsrfChecked,
) -> ApiResult {
    let addr = peer_addr(&req);
    state.sessions.end(&s).await;
    let (ns, id) = state
        .sessions
        .create(&s.user, &addr, OpClass::Read, None, &s.groups)
        .await
        .map_err(|e| ApiError::unavailable(format!("session store unavailable: {e}")))?;
    let rec = AuditRecord {
        actor_addr: Some(addr),
        session: Some(session_ref(&ns)),
        elevation: Some(s.class.name().into()),
        ..AuditRecord::new(RecordKind::Event, events::DROP, &s.user)
    };
    let _ = state.recorder.append(rec).await;
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(&id))
        .json(json!({ "user": ns.user, "csrf": ns.csrf, "class": "read" })))
}
