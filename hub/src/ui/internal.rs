//! The internal listener's one route (a freshly started UI server says where it
//! listens) and the public `/metrics`.

use crate::http::{ApiError, ApiResult};
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde_json::json;
use steward_protocol::bootstrap::Registration;

/// `POST /internal/register` (mutual TLS, CA-issued client certificates only).
pub async fn register(state: web::Data<AppState>, body: web::Bytes) -> ApiResult {
    let reg = serde_json::from_slice::<Registration>(&body)
        .map_err(|_| ApiError::bad_request("registration body must be a Registration JSON"))?;
    if state.servers.register(reg).await {
        Ok(HttpResponse::Ok().json(json!({ "ok": true })))
    } else {
        Err(ApiError::forbidden(
            "unknown or already used registration token",
        ))
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

/// `GET /hub/health`, for load balancers: 200 when this hub can serve (its state store
/// answers within two seconds), 503 otherwise, with why. Unauthenticated, and says
/// nothing a client could use: store kind, hub id, leadership.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let l = &state.servers.leadership;
    let store = tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await;
    let (ok, error) = match store {
        Ok(Ok(())) => (true, None),
        Ok(Err(e)) => (false, Some(e.to_string())),
        Err(_) => (
            false,
            Some("the state store did not answer within 2 s".to_string()),
        ),
    };
    let body = json!({
        "status": if ok { "ok" } else { "unavailable" },
        "store": state.store.kind(),
        "hub": l.hub(),
        "leader": l.is_leader(),
        "leader_epoch": l.epoch(),
        "error": error,
    });
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
