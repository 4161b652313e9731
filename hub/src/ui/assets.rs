//! The web UI: a small single-page app (vanilla JavaScript modules, one stylesheet)
//! embedded in the binary and served under `/hub/`. There is no build step and nothing
//! is fetched from elsewhere: what is in `hub/assets/` is what the browser runs.
//!
//! Every UI response carries a strict Content-Security-Policy (no inline script or
//! style, no framing, no foreign connections), `nosniff`, `no-referrer` and cache
//! headers. Caching: every asset is served with `Cache-Control: no-cache` and a strong
//! `ETag` (SHA-256 of its bytes, computed once), so a browser revalidates on each load
//! and gets `304 Not Modified` while the binary is unchanged; a new binary is seen at
//! once. Fingerprinted file names with year-long caching would save the revalidation
//! round trip but need the module imports rewritten at build time, which is the build
//! step this UI does without.
//!
//! The pages talk to the hub's JSON API (`/hub/api/...`) and, per owner, to the
//! WebSocket relay (`/user/<owner>/ws`); see docs/ui.md.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// The policy every UI response carries. `connect-src 'self'` covers same-origin
/// `wss:` in CSP Level 3 browsers (Chromium, Firefox, Safari all implement it).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
base-uri 'none'; form-action 'self'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $ct:literal) => {
        Asset {
            name: $name,
            content_type: $ct,
            body: include_bytes!(concat!("../../assets/", $name)),
        }
    };
}

/// Everything under `/hub/static/`, by file name.
const STATIC: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("dom.js", "text/javascript; charset=utf-8"),
    asset!("session.js", "text/javascript; charset=utf-8"),
    asset!("login.js", "text/javascript; charset=utf-8"),
    asset!("overview.js", "text/javascript; charset=utf-8"),
    asset!("workflow.js", "text/javascript; charset=utf-8"),
    asset!("logs.js", "text/javascript; charset=utf-8"),
    asset!("audit.js", "text/javascript; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

const INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");

/// Strong ETags, computed once per process (the assets are constants).
fn etag(asset: &Asset) -> &'static str {
    static TAGS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        STATIC
            .iter()
            .chain(std::iter::once(&INDEX))
            .map(|a| {
                let digest = Sha256::digest(a.body);
                (a.name, format!("\"{}\"", hex::encode(&digest[..12])))
            })
            .collect()
    });
    tags.iter()
        .find(|(n, _)| *n == asset.name)
        .map(|(_, t)| t.as_str())
        .unwrap_or("\"0\"")
}

/// Headers every UI response carries, whatever its status.
fn secure(mut resp: HttpResponse) -> HttpResponse {
    let h = resp.headers_mut();
    let set = |h: &mut header::HeaderMap, k: &'static str, v: &'static str| {
        h.insert(
            header::HeaderName::from_static(k),
            HeaderValue::from_static(v),
        );
    };
    set(h, "content-security-policy", CONTENT_SECURITY_POLICY);
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    // For browsers that predate frame-ancestors.
    set(h, "x-frame-options", "DENY");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(h, "cross-origin-resource-policy", "same-origin");
    set(
        h,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    );
    resp
}

fn if_none_match(req: &HttpRequest, tag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t == tag || t.strip_prefix("W/") == Some(tag))
}

fn serve(req: &HttpRequest, asset: &Asset) -> HttpResponse {
    let tag = etag(asset);
    let mut resp = if if_none_match(req, tag) {
        HttpResponse::NotModified().finish()
    } else if req.method() == actix_web::http::Method::HEAD {
        HttpResponse::Ok().content_type(asset.content_type).finish()
    } else {
        HttpResponse::Ok()
            .content_type(asset.content_type)
            .body(asset.body)
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_static(tag));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(resp)
}

async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, &INDEX)
}

async fn static_asset(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    match STATIC.iter().find(|a| a.name == name.as_str()) {
        Some(a) => serve(&req, a),
        None => secure(
            HttpResponse::NotFound()
                .content_type("text/plain; charset=utf-8")
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .body("no such asset"),
        ),
    }
}

async fn to_hub() -> HttpResponse {
    secure(
        HttpResponse::Found()
            .insert_header((header::LOCATION, "/hub/"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
    )
}

/// Mounted on the public listener by `app::serve`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(to_hub))
        .route("/hub", web::get().to(to_hub))
        .route("/hub/", web::get().to(index))
        .route("/hub/", web::head().to(index))
        .route("/hub/static/{name}", web::get().to(static_asset))
        .route("/hub/static/{name}", web::head().to(static_asset));
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test as aw_test, App};

    fn header<'a>(resp: &'a actix_web::dev::ServiceResponse, k: &str) -> &'a str {
        resp.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[actix_web::test]
    async fn index_and_assets_carry_security_and_cache_headers() {
        let app = aw_test::init_service(App::new().configure(routes)).await;
        let mut uris = vec!["/hub/".to_string()];
        uris.extend(STATIC.iter().map(|a| format!("/hub/static/{}", a.name)));
        for uri in uris {
            let resp =
                aw_test::call_service(&app, aw_test::TestRequest::get().uri(&uri).to_request())
                    .await;
            assert_eq!(resp.status(), 200, "{uri}");
            let csp = header(&resp, "content-security-policy");
            for part in [
                "default-src 'none'",
                "script-src 'self'",
                "style-src 'self'",
                "frame-ancestors 'none'",
                "base-uri 'none'",
                "form-action 'self'",
            ] {
                assert!(csp.contains(part), "{uri}: CSP lacks {part}: {csp}");
            }
            assert!(!csp.contains("unsafe"), "{uri}: {csp}");
            assert_eq!(header(&resp, "x-content-type-options"), "nosniff");
            assert_eq!(header(&resp, "referrer-policy"), "no-referrer");
            assert_eq!(header(&resp, "cache-control"), "no-cache");
            let tag = header(&resp, "etag").to_string();
            assert!(tag.starts_with('"') && tag.len() > 10, "{uri}: {tag}");
            // Revalidation: the same tag answers 304 with the same headers and no body.
            let again = aw_test::call_service(
                &app,
                aw_test::TestRequest::get()
                    .uri(&uri)
                    .insert_header(("if-none-match", tag.as_str()))
                    .to_request(),
            )
            .await;
            assert_eq!(again.status(), 304, "{uri}");
            assert!(header(&again, "content-security-policy").contains("frame-ancestors"));
            let body = aw_test::read_body(again).await;
            assert!(body.is_empty());
        }
    }

    #[actix_web::test]
    async fn content_types_redirects_and_unknown_assets() {
        let app = aw_test::init_service(App::new().configure(routes)).await;
        let resp = aw_test::call_service(
            &app,
            aw_test::TestRequest::get()
                .uri("/hub/static/app.js")
                .to_request(),
        )
        .await;
        assert_eq!(
            header(&resp, "content-type"),
            "text/javascript; charset=utf-8"
        );
        for uri in ["/", "/hub"] {
            let resp =
                aw_test::call_service(&app, aw_test::TestRequest::get().uri(uri).to_request())
                    .await;
            assert_eq!(resp.status(), 302, "{uri}");
            assert_eq!(header(&resp, "location"), "/hub/");
        }
        for uri in [
            "/hub/static/nope.js",
            "/hub/static/..%2Fsrc%2Fui.rs",
            "/hub/static/index.html",
        ] {
            let resp =
                aw_test::call_service(&app, aw_test::TestRequest::get().uri(uri).to_request())
                    .await;
            assert_eq!(resp.status(), 404, "{uri}");
            assert!(header(&resp, "content-security-policy").contains("default-src 'none'"));
        }
    }

    /// The CSP forbids inline script and style; this keeps the assets honest about it
    /// (the browser test also records any violation the page reports).
    #[test]
    fn assets_use_no_inline_script_or_style() {
        let html = std::str::from_utf8(INDEX.body).unwrap();
        for bad in [
            " style=",
            " onclick=",
            " onload=",
            " onsubmit=",
            "<style",
            "javascript:",
        ] {
            assert!(!html.contains(bad), "index.html contains {bad:?}");
        }
        let scripts = html.matches("<script").count();
        let with_src = html
            .matches("<script type=\"module\" src=\"/hub/static/")
            .count();
        assert_eq!(
            scripts, with_src,
            "every <script> must load a same-origin file"
        );
        for a in STATIC.iter().filter(|a| a.name.ends_with(".js")) {
            let js = std::str::from_utf8(a.body).unwrap();
            for bad in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "eval(",
                "new Function",
                ".style.",
            ] {
                assert!(!js.contains(bad), "{} uses {bad}", a.name);
            }
            // Every relative module import names an embedded asset.
            for line in js.lines().filter(|l| l.starts_with("import ")) {
                let spec = line.rsplit("from ").next().unwrap_or("");
                let spec = spec.trim_matches(|c| c == '\'' || c == '"' || c == ';' || c == ' ');
                let file = spec.trim_start_matches("./");
                assert!(
                    STATIC.iter().any(|s| s.name == file),
                    "{} imports {spec}, which is not embedded",
                    a.name
                );
            }
        }
    }
}
