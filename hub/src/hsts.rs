//! `Strict-Transport-Security` on every answer of the public listener.
//!
//! One middleware wraps the whole public `App`, so every route, the default 404
//! service, extractor and handler errors, redirects, static assets and WebSocket
//! upgrades carry it without each handler remembering to. It does not cover what the
//! HTTP layer answers before a request reaches the `App` (a malformed request line or
//! oversized headers get a bare 400/431 and the connection closes).

use actix_web::http::header::{HeaderValue, STRICT_TRANSPORT_SECURITY};
use actix_web::middleware::DefaultHeaders;

/// One year, the HSTS preload list's minimum. No `includeSubDomains`: the hub cannot
/// know whether sibling hosts under its domain serve HTTPS.
pub const HSTS: &str = "max-age=31536000";

/// The middleware the public `App` is wrapped in (see `app.rs`).
pub fn middleware() -> DefaultHeaders {
    DefaultHeaders::new().add((STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test, web, App, HttpResponse};

    #[actix_web::test]
    async fn every_answer_carries_hsts_errors_and_404s_too() {
        let app = test::init_service(
            App::new()
                .wrap(middleware())
                .route("/ok", web::get().to(HttpResponse::Ok))
                .route(
                    "/json",
                    web::post().to(|_: web::Json<serde_json::Value>| async { "x" }),
                )
                .route(
                    "/moved",
                    web::get().to(|| async {
                        HttpResponse::Found()
                            .insert_header(("location", "/ok"))
                            .finish()
                    }),
                ),
        )
        .await;
        for req in [
            test::TestRequest::get().uri("/ok"),
            test::TestRequest::get().uri("/moved"),
            test::TestRequest::get().uri("/no/such/route"),
            test::TestRequest::post()
                .uri("/json")
                .insert_header(("content-type", "application/json"))
                .set_payload("{not json"),
            test::TestRequest::delete().uri("/ok"),
        ] {
            let resp = test::call_service(&app, req.to_request()).await;
            assert_eq!(
                resp.headers().get(STRICT_TRANSPORT_SECURITY).unwrap(),
                HSTS,
                "status {}",
                resp.status()
            );
        }
    }
}
