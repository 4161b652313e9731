//! The two listeners (public HTTPS, internal mutual TLS) and their routes, the ready
//! line, and the graceful stop on SIGTERM/SIGINT.

use crate::pki::ca;
use crate::state::AppState;
use crate::ui;
use actix_web::{web as aw, App, HttpServer};

use super::Hub;

/// Runs the hub until SIGINT/SIGTERM. Prints one `ready` line on stdout when listening.
pub async fn serve(hub: Hub) -> anyhow::Result<()> {
    let state = hub.state.clone();
    let cfg = state.cfg.clone();

    let internal_listener = std::net::TcpListener::bind(cfg.internal_listen)?;
    let internal_addr = internal_listener.local_addr()?;
    state.servers.set_internal_addr(internal_addr);
    let internal_tls = state.ca.internal_server_config()?;
    let st = state.clone();
    let internal = HttpServer::new(move || {
        App::new()
            .app_data(st.clone())
            .app_data(aw::PayloadConfig::new(16 * 1024))
            .route("/internal/register", aw::post().to(ui::internal::register))
    })
    .workers(1)
    .tcp_nodelay(true)
    .disable_signals()
    .listen_rustls_0_23(internal_listener, internal_tls)?
    .run();

    // The hub API single-user servers call (plain HTTP, loopback: see config).
    let hubapi = match state.servers.singleuser().cloned() {
        Some(su) => {
            let listener = std::net::TcpListener::bind(cfg.singleuser.api_listen).map_err(|e| {
                anyhow::anyhow!("singleuser.api_listen {}: {e}", cfg.singleuser.api_listen)
            })?;
            let addr = listener.local_addr()?;
            su.set_api_url(format!("http://{addr}/hub/api"));
            let su = aw::Data::from(su);
            let st = state.clone();
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(st.clone())
                    .app_data(su.clone())
                    .app_data(aw::PayloadConfig::new(16 * 1024))
                    .configure(ui::hubapi::server_routes)
            })
            .workers(1)
            .disable_signals()
            .listen(listener)?
            .run();
            tracing::info!(%addr, "single-user hub API listening");
            Some(server)
        }
        None => None,
    };
    let hubapi_handle = hubapi.as_ref().map(|s| s.handle());
    let hubapi_task = hubapi.map(actix_web::rt::spawn);

    let cert = ca::ReloadableCert::load(&cfg.tls.cert, &cfg.tls.key)?;
    let public_tls = ca::public_server_config(cert.clone())?;
    let public_listener = std::net::TcpListener::bind(cfg.listen)?;
    let public_addr = public_listener.local_addr()?;
    let st = state.clone();
    let body_limit = cfg.limits.body_bytes;
    let public = HttpServer::new(move || {
        App::new()
            .wrap(crate::hsts::middleware())
            .app_data(st.clone())
            .app_data(st.sessions.clone())
            .app_data(st.relay.clone())
            .app_data(aw::PayloadConfig::new(body_limit))
            .configure(routes)
    })
    .workers(2)
    .shutdown_timeout(1)
    // Without it (actix's default leaves Nagle on), a relayed message written while the
    // previous one is unacknowledged waits out the browser's delayed ACK: 40 ms stalls.
    .tcp_nodelay(true)
    .disable_signals()
    .listen_rustls_0_23(public_listener, public_tls)?
    .run();

    // Installed before the ready line, so a SIGTERM right after it is a graceful stop.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    super::background::start(state.clone(), cert);
    println!("steward: ready on https://{public_addr} (internal {internal_addr})");
    tracing::info!(%public_addr, %internal_addr, "hub ready");
    crate::notify::ready(public_addr);
    let internal_handle = internal.handle();
    let public_handle = public.handle();
    // actix servers accept only while their future is polled.
    let internal_task = actix_web::rt::spawn(internal);
    let st = state.clone();
    actix_web::rt::spawn(async move {
        let signal = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        shut_down(&st, signal, &public_handle).await;
    });
    let res = public.await;
    internal_handle.stop(true).await;
    let _ = internal_task.await;
    if let (Some(h), Some(t)) = (hubapi_handle, hubapi_task) {
        h.stop(true).await;
        let _ = t.await;
    }
    res.map_err(Into::into)
}

/// Stops accepting, lets operations in flight finish (their outcomes audited), then stops
/// the listeners. UI servers keep running; the next hub re-adopts them.
async fn shut_down(state: &AppState, signal: &str, public: &actix_web::dev::ServerHandle) {
    tracing::info!(
        signal,
        "stopping: no new connections; draining operations in flight"
    );
    public.pause().await;
    state.relay.drain.begin();
    let grace = std::time::Duration::from_secs(state.cfg.limits.shutdown_drain_secs);
    // A little over the relays' own deadline, so they audit their unanswered operations.
    let left = state
        .relay
        .drain
        .wait_idle(grace + std::time::Duration::from_millis(500))
        .await;
    if left > 0 {
        tracing::warn!(left, "drain deadline passed; stopping anyway");
    }
    // The log writes in order: once this record is durable, so is every outcome the
    // relays queued without waiting.
    let rec = steward_audit::AuditRecord {
        message: Some(format!("{signal}; operations in flight drained")),
        ..steward_audit::AuditRecord::new(
            steward_audit::RecordKind::Event,
            steward_audit::events::HUB_STOP,
            steward_audit::SYSTEM_ACTOR,
        )
    };
    if let Err(e) = state.recorder.append(rec).await {
        tracing::error!(error = %e, "could not record the stop in the audit log");
    }
    // A signed head over the last record, so nothing written before the stop can be cut.
    if let Err(e) = state.recorder.checkpoint_now().await {
        tracing::error!(error = %e, "could not checkpoint the audit log at stop");
    }
    // ...and the deployment's checkpoint reaches it (every hub's chain, docs/ha.md).
    super::chains::at_stop(state).await;
    public.stop(true).await;
}

/// Every route of the public listener, in one place.
fn routes(cfg: &mut aw::ServiceConfig) {
    use crate::relay::{http as fwd, ws};
    use crate::ui::{account, admin, api, internal, tokens};
    cfg.route("/hub/api/login", aw::post().to(account::login))
        .route("/hub/api/logout", aw::post().to(account::logout))
        .route("/hub/api/me", aw::get().to(account::me))
        .route("/hub/api/elevate", aw::post().to(account::elevate))
        .route("/hub/api/drop", aw::post().to(account::drop_privileges))
        .route("/metrics", aw::get().to(internal::metrics))
        .route("/hub/health", aw::get().to(internal::health))
        .route("/hub/api/tokens", aw::post().to(tokens::create))
        .route("/hub/api/tokens", aw::get().to(tokens::list))
        .route("/hub/api/tokens/{id}", aw::delete().to(tokens::revoke))
        .route("/hub/api/admin/servers", aw::get().to(admin::servers))
        .route(
            "/hub/api/admin/servers/{owner}/stop",
            aw::post().to(admin::stop_server),
        )
        .route(
            "/hub/api/admin/placement",
            aw::get().to(admin::explain_placement),
        )
        .route(
            "/hub/api/admin/hosts/{host}/drain",
            aw::post().to(admin::drain_host),
        )
        .route("/hub/api/admin/sessions", aw::get().to(admin::sessions))
        .route(
            "/hub/api/admin/sessions/{id}/revoke",
            aw::post().to(admin::revoke_session),
        )
        .route("/hub/api/server", aw::post().to(api::start_own_server))
        .route("/hub/api/server", aw::delete().to(api::stop_own_server))
        .route("/hub/api/overview", aw::get().to(api::overview))
        .route("/hub/api/permitted", aw::get().to(api::permitted))
        .route("/hub/api/explain", aw::get().to(api::explain))
        .route("/hub/api/audit", aw::get().to(api::audit_search))
        .route(
            "/hub/api/oauth2/authorize",
            aw::get().to(ui::hubapi::authorize),
        )
        .route(
            "/user/{owner}/cylc/subscriptions",
            aw::get().to(crate::relay::singleuser::subscriptions),
        )
        .route(
            "/user/{owner}/cylc{rest:.*}",
            aw::route().to(crate::relay::singleuser::proxy),
        )
        .route("/user/{owner}/ws", aw::get().to(ws::user_ws))
        .route("/user/{owner}/api/op", aw::post().to(fwd::proxy_op))
        .route("/user/{owner}/api/{rest:.*}", aw::get().to(fwd::proxy_get))
        .route(
            "/user/{owner}/api/{rest:.*}",
            aw::route().to(fwd::proxy_other),
        )
        .configure(crate::ui::assets::routes);
}
