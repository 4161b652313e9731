//! Starting the UI server: bootstrap, TLS, listen, register, serve, idle shutdown.

use crate::auth::Verifier;
use crate::paths::Layout;
use crate::sched_client::Registry;
use crate::server::{configure, AppState};
use actix_web::{web, App, HttpServer};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Runs the UI server until idle shutdown (blocking).
pub fn run(bind: Option<String>) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STEWARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let b = crate::bootstrap::read_from(std::io::stdin().lock())?;
    actix_web::rt::System::new().block_on(serve(b, bind))
}

async fn serve(
    b: steward_protocol::bootstrap::UiServerBootstrap,
    bind: Option<String>,
) -> anyhow::Result<()> {
    let layout = Layout::from_env()?;
    let tls = crate::tls::server_config(&b)?;
    let verifier = Arc::new(Verifier::new(&b.owner, &b.jwt_public_key_pem)?);
    let reg = Registry::new(layout, b.owner.clone(), tokio::runtime::Handle::current());
    let (all, _) = reg.scan().await;
    tracing::info!(workflows = all.len(), "scanned workflows");

    let bind = bind.unwrap_or_else(|| "127.0.0.1:0".to_string());
    let listener = std::net::TcpListener::bind(&bind)
        .map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
    let port = listener.local_addr()?.port();
    let activity = Arc::new(AtomicU64::new(crate::now_millis()));
    let state = web::Data::new(AppState {
        reg: reg.clone(),
        verifier: verifier.clone(),
        activity: activity.clone(),
        owner: b.owner.clone(),
    });
    let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(configure))
        .workers(2)
        .shutdown_timeout(2)
        // Deltas and results go out as several small writes; with Nagle on (actix's
        // default) one can wait for the hub's delayed ACK.
        .tcp_nodelay(true)
        .disable_signals()
        .listen_rustls_0_23(listener, tls)?
        .run();
    let handle = server.handle();
    let server_task = actix_web::rt::spawn(server);
    tracing::info!(owner = %b.owner, server = %b.server, port, "listening (mutual TLS)");

    if let Err(e) = crate::register::register(&b, port).await {
        tracing::error!(error = %format!("{e:#}"), "registration failed; exiting");
        handle.stop(false).await;
        return Err(e);
    }
    // 0 disables idle shutdown.
    let idle_ms = b.idle_timeout_secs.saturating_mul(1000);
    drop(b); // the key material is no longer needed outside the TLS config

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis((idle_ms / 4).clamp(100, 1000))) => {}
            _ = sigterm.recv() => {
                tracing::info!("SIGTERM: shutting down (workflows keep running)");
                break;
            }
        }
        verifier.prune(crate::now_secs());
        let quiet = crate::now_millis().saturating_sub(activity.load(Ordering::Relaxed));
        if idle_ms > 0 && quiet >= idle_ms {
            tracing::info!(
                idle_secs = quiet / 1000,
                "no hub activity: idle shutdown (workflows keep running)"
            );
            break;
        }
    }
    handle.stop(true).await;
    let _ = server_task.await;
    Ok(())
}
