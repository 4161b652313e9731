//! Building the hub from its config and running both listeners until a signal.

use crate::ca::{self, Ca};
use crate::clock::Clock;
use crate::config::HubConfig;
use crate::db::Db;
use crate::servers::ServerManager;
use crate::state::AppState;
use crate::tokens::TokenSigner;
use crate::{fsutil, relay, web};
use actix_web::{web as aw, App, HttpServer};
use std::sync::Arc;
use std::time::Duration;
use steward_audit::{AuditConfig, AuditLog};
use steward_policy::{PolicyStore, StoreOptions};
use steward_spawner::SpawnerClient;

/// Loads the site policy; any error keeps the hub from starting (there is no last good one yet).
pub fn load_site_policy(path: &std::path::Path) -> anyhow::Result<PolicyStore> {
    let store = PolicyStore::new(StoreOptions::default());
    store
        .load(path)
        .map_err(|d| anyhow::anyhow!("site policy {} has errors:\n{d}", path.display()))?;
    Ok(store)
}

pub struct Hub {
    pub state: aw::Data<AppState>,
}

pub fn build(cfg: HubConfig) -> anyhow::Result<Hub> {
    fsutil::private_dir(&cfg.data_dir)
        .map_err(|e| anyhow::anyhow!("data_dir {}: {e}", cfg.data_dir.display()))?;
    let db = Arc::new(Db::open(&cfg.data_dir.join("hub.db"))?);
    let ca = Arc::new(Ca::load_or_create(&cfg.data_dir)?);
    let signer = Arc::new(TokenSigner::load_or_create(
        &cfg.data_dir.join("jwt-ed25519.der"),
    )?);
    let clock = Clock::with_offset_file(cfg.testing.clock_offset_file.clone());
    let mut spawner = SpawnerClient::new(
        cfg.spawner.helper.clone(),
        cfg.spawner.config.clone(),
        cfg.spawner.mode,
    );
    spawner.timeout = Duration::from_secs(cfg.spawner.start_timeout_secs.max(5));
    let mut servers = ServerManager::new(
        spawner.clone(),
        cfg.spawner.executable.clone(),
        Duration::from_secs(cfg.spawner.start_timeout_secs),
        cfg.uiserver.idle_timeout_secs,
        cfg.spawner.concurrency,
        cfg.spawner.max_pending,
        ca.clone(),
        signer.clone(),
        db.clone(),
    )?;
    servers.args = cfg.spawner.args.clone();
    let servers = Arc::new(servers);
    let mut audit_cfg = AuditConfig::new(cfg.audit.dir.clone());
    audit_cfg.signing_key = Some(signer.signing_key.clone());
    let audit = AuditLog::open(audit_cfg)?;
    let site = load_site_policy(&cfg.policy.site)?;
    let state = AppState::new(cfg, db, clock, signer, ca, servers, spawner, audit, site)?;
    Ok(Hub {
        state: aw::Data::new(state),
    })
}

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
            .route("/internal/register", aw::post().to(web::register))
    })
    .workers(1)
    .tcp_nodelay(true)
    .disable_signals()
    .listen_rustls_0_23(internal_listener, internal_tls)?
    .run();

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
            .app_data(aw::PayloadConfig::new(body_limit))
            .route("/hub/api/login", aw::post().to(web::login))
            .route("/hub/api/logout", aw::post().to(web::logout))
            .route("/hub/api/me", aw::get().to(web::me))
            .route("/hub/api/elevate", aw::post().to(web::elevate))
            .route("/hub/api/drop", aw::post().to(web::drop_privileges))
            .route("/metrics", aw::get().to(crate::web::metrics))
            .route("/hub/api/tokens", aw::post().to(crate::apitokens::create))
            .route("/hub/api/tokens", aw::get().to(crate::apitokens::list))
            .route(
                "/hub/api/tokens/{id}",
                aw::delete().to(crate::apitokens::revoke),
            )
            .route(
                "/hub/api/admin/servers",
                aw::get().to(crate::admin::servers),
            )
            .route(
                "/hub/api/admin/servers/{owner}/stop",
                aw::post().to(crate::admin::stop_server),
            )
            .route(
                "/hub/api/admin/sessions",
                aw::get().to(crate::admin::sessions),
            )
            .route(
                "/hub/api/admin/sessions/{id}/revoke",
                aw::post().to(crate::admin::revoke_session),
            )
            .route(
                "/hub/api/server",
                aw::post().to(crate::api::start_own_server),
            )
            .route(
                "/hub/api/server",
                aw::delete().to(crate::api::stop_own_server),
            )
            .route("/hub/api/overview", aw::get().to(crate::api::overview))
            .route("/hub/api/permitted", aw::get().to(crate::api::permitted))
            .route("/hub/api/explain", aw::get().to(crate::api::explain))
            .route("/hub/api/audit", aw::get().to(crate::api::audit_search))
            .route("/user/{owner}/ws", aw::get().to(relay::user_ws))
            .route("/user/{owner}/api/op", aw::post().to(crate::api::proxy_op))
            .route(
                "/user/{owner}/api/{rest:.*}",
                aw::get().to(crate::api::proxy_get),
            )
            .route(
                "/user/{owner}/api/{rest:.*}",
                aw::route().to(crate::api::proxy_other),
            )
            .configure(crate::ui::routes)
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
    crate::background::start(state.clone(), cert);
    println!("steward: ready on https://{public_addr} (internal {internal_addr})");
    tracing::info!(%public_addr, %internal_addr, "hub ready");
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
    state.drain.begin();
    let grace = std::time::Duration::from_secs(state.cfg.limits.shutdown_drain_secs);
    // A little over the relays' own deadline, so they audit their unanswered operations.
    let left = state
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
    if let Err(e) = crate::web::audit(state, rec).await {
        tracing::error!(error = %e, "could not record the stop in the audit log");
    }
    public.stop(true).await;
}
