//! What every HTTP handler of the hub shares: the API error type (one JSON shape, one
//! place that turns a refusal into a response) and the client address of a request.
//!
//! It must not know about sessions, policy or servers: it is the bottom layer the
//! handlers of `ui/` and `relay/` stand on.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

/// An error a handler answers with: status, a message the client can act on, and
/// optionally a `Retry-After` or a body other than `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u64>,
    pub allow: Option<&'static str>,
    /// Replaces the default `{"error": message}` body (e.g. a `denied` answer).
    pub body: Option<serde_json::Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
            allow: None,
            body: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    pub fn bad_gateway(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_GATEWAY, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 429 with `Retry-After`.
    pub fn too_many(message: impl Into<String>, retry_after: u64) -> ApiError {
        Self::new(StatusCode::TOO_MANY_REQUESTS, message).retry_after(retry_after)
    }

    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs);
        self
    }

    pub fn with_allow(mut self, methods: &'static str) -> ApiError {
        self.allow = Some(methods);
        self
    }

    pub fn with_body(mut self, body: serde_json::Value) -> ApiError {
        self.body = Some(body);
        self
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            r.insert_header(("Retry-After", secs.to_string()));
        }
        if let Some(allow) = self.allow {
            r.insert_header(("Allow", allow));
        }
        match &self.body {
            Some(body) => r.json(body),
            None => r.json(json!({ "error": self.message })),
        }
    }
}

/// What a handler returns.
pub type ApiResult<T = HttpResponse> = Result<T, ApiError>;

/// The client's IP address as text (empty when actix does not know it): the one
/// place the hub reads it, for rate limits, sessions and audit records.
pub fn peer_addr(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default()
}
