//! The part of JupyterHub's hub API a single-user server (`cylc hubapp`) calls, and
//! the OAuth authorization endpoint browsers are sent to (docs/jupyterhub-compat.md).
//!
//! The servers' routes ([`server_routes`]) are served on their own plain-HTTP loopback
//! listener (`[singleuser] api_listen`); every one but the version check needs a
//! token. [`authorize`] is on the public listener, behind Steward's own login.

use crate::cylc::oauth::{self, AuthorizeParams, OAuthError, TokenParams};
use crate::http::{ApiError, ApiResult};
use crate::session::Authed;
use crate::singleuser::SingleUser;
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

/// The JupyterHub release whose protocol this is (the servers read the header).
pub const JUPYTERHUB_VERSION: &str = "6.1.1";

fn answer(status: u16, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    )
    .insert_header(("X-JupyterHub-Version", JUPYTERHUB_VERSION))
    .json(body)
}

/// JupyterHub's error shape; a server turns anything but 403 on `/user` into a 500.
fn forbidden(message: &str) -> HttpResponse {
    answer(403, json!({"status": 403, "message": message}))
}

fn oauth_error(e: OAuthError) -> HttpResponse {
    answer(e.status(), e.body())
}

/// `Authorization: token X` (what HubAuth sends) or `Bearer X`.
fn token_of(req: &HttpRequest) -> Option<String> {
    let h = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = h.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer"))
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

pub fn server_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/hub/api", web::get().to(version))
        .route("/hub/api/", web::get().to(version))
        .route("/hub/api/user", web::get().to(user))
        .route("/hub/api/users/{name}/activity", web::post().to(activity))
        .route("/hub/api/oauth2/token", web::post().to(token))
        .default_service(web::to(|| async {
            answer(
                404,
                json!({"status": 404, "message": "not part of the hub API Steward serves to single-user servers"}),
            )
        }));
}

async fn version() -> HttpResponse {
    answer(200, json!({"version": JUPYTERHUB_VERSION}))
}

/// `GET /hub/api/user`: the server's own token resolves to its owner, a visitor's
/// token to the visitor with the scopes the server checks; anything else is 403.
async fn user(
    su: web::Data<SingleUser>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> HttpResponse {
    let Some(token) = token_of(&req) else {
        return forbidden("no token: send Authorization: token <token>");
    };
    let now = state.store.now();
    let found = su.with_provider(|p| {
        if let Some(owner) = p.server_owner(&token) {
            return Some(Ok(oauth::server_model(owner)));
        }
        p.token(&token, now).ok().map(|t| Err(t.clone()))
    });
    match found.flatten() {
        Some(Ok(model)) => answer(200, model),
        Some(Err(t)) => {
            let groups = su.groups_of(&t.visitor);
            answer(200, oauth::user_model(&t.visitor, &t.owner, &groups, &t.id))
        }
        None => forbidden("unknown or expired token"),
    }
}

/// `POST /hub/api/users/<name>/activity`: the server of `<name>`, with its own token,
/// says it was used. Steward keeps its own activity from the relay, so this only checks
/// the caller and answers.
async fn activity(
    su: web::Data<SingleUser>,
    req: HttpRequest,
    name: web::Path<String>,
) -> HttpResponse {
    let owner = token_of(&req).and_then(|t| {
        su.with_provider(|p| p.server_owner(&t).map(str::to_string))
            .flatten()
    });
    match owner {
        Some(o) if o == *name => answer(200, json!({})),
        Some(o) => forbidden(&format!(
            "the server of {o} may not post activity for {name}"
        )),
        None => forbidden("unknown server token"),
    }
}

/// `POST /hub/api/oauth2/token`: the authorization-code exchange.
async fn token(
    su: web::Data<SingleUser>,
    state: web::Data<AppState>,
    form: Result<web::Form<TokenParams>, actix_web::Error>,
) -> HttpResponse {
    let form = match form {
        Ok(f) => f.into_inner(),
        Err(e) => {
            return oauth_error(OAuthError::InvalidRequest(format!(
                "the token request must be application/x-www-form-urlencoded with client_id, client_secret, grant_type, code, redirect_uri, code_verifier: {e}"
            )))
        }
    };
    let now = state.store.now();
    match su.with_provider(|p| p.exchange(&form, now)) {
        Some(Ok((_, body))) => answer(200, body),
        Some(Err(e)) => oauth_error(e),
        None => answer(500, json!({"error": "server_error"})),
    }
}

/// `GET /hub/api/oauth2/authorize` (public listener): a logged-in visitor who may read
/// the owner's workflows gets a code for the owner's server; the owner is the one
/// whose prefix the redirect URI is under, and its client id must be that owner's.
pub async fn authorize(
    state: web::Data<AppState>,
    q: Result<web::Query<AuthorizeParams>, actix_web::Error>,
    Authed(session): Authed,
) -> ApiResult {
    let Some(su) = state.servers.singleuser().cloned() else {
        return Err(ApiError::not_found(
            "no single-user servers are configured on this hub",
        ));
    };
    let q = q
        .map_err(|e| ApiError::bad_request(format!("query: {e}")))?
        .into_inner();
    let owner = q
        .redirect_uri
        .strip_prefix("/user/")
        .and_then(|r| r.split('/').next())
        .filter(|o| steward_protocol::ids::validate_user_name(o))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "redirect_uri {:?} is not under /user/<owner>/",
                q.redirect_uri
            ))
        })?
        .to_string();
    if !state.decider.may_read(&owner, &session, "").await {
        return Err(ApiError::forbidden(format!(
            "{} may not read the workflows of {owner}",
            session.user
        )));
    }
    let now = state.store.now();
    let to = su
        .with_provider(|p| p.authorize(&q, &owner, &session.user, now))
        .ok_or_else(|| ApiError::internal("the OAuth provider's lock is poisoned"))?
        .map_err(|e| ApiError::bad_request(format!("{}: {}", e.code(), e)))?;
    Ok(HttpResponse::Found()
        .insert_header(("Location", to))
        .insert_header(("Cache-Control", "no-store"))
        .finish())
}
