//! A lying UI server for the attack suite. It reads the hub's bootstrap from stdin like
//! the real one and holds the genuine certificate and one-time token, then lies:
//!
//! - `steward-test-liar register HOST:PORT|PATH`: registers that endpoint instead of
//!   where it listens (it listens nowhere), then stays up until stopped;
//! - `steward-test-liar answers`: serves the hub over mutual TLS as the real server
//!   does and registers truthfully, but answers every operation with a result for an
//!   id nobody sent, then the real result twice (`ok`, then `not ok`), and its
//!   snapshot names a workflow the visitor may not be allowed to read.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actix_ws::AggregatedMessage;
use futures_util::StreamExt;
use std::time::Duration;
use steward_protocol::bootstrap::{Registration, UiServerBootstrap, HUB_INTERNAL_NAME};
use steward_protocol::wire::{ServerMessage, WorkflowSummary};
use steward_protocol::Endpoint;

/// The workflows the liar claims; the second is not one of the owner's real ones.
pub const CLAIMED: [&str; 2] = ["alice_forecast", "liar_secret"];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
    let b: UiServerBootstrap = serde_json::from_str(&text)?;
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["register", claim] => actix_web::rt::System::new().block_on(register_lie(b, claim)),
        ["answers"] => actix_web::rt::System::new().block_on(lie_in_answers(b)),
        _ => anyhow::bail!("usage: steward-test-liar register HOST:PORT|PATH | answers"),
    }
}

async fn register(b: &UiServerBootstrap, endpoint: Endpoint) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(steward_uiserver::tls::client_config(b)?)
        .resolve(HUB_INTERNAL_NAME, b.hub_internal_addr.parse()?)
        .timeout(Duration::from_secs(10))
        .build()?;
    let reg = Registration {
        owner: b.owner.clone(),
        server: b.server.clone(),
        endpoint,
        pid: std::process::id(),
        register_token: b.register_token.clone(),
    };
    let resp = client.post(&b.register_url).json(&reg).send().await?;
    eprintln!("steward-test-liar: the hub answered {}", resp.status());
    Ok(())
}

async fn register_lie(b: UiServerBootstrap, claim: &str) -> anyhow::Result<()> {
    let endpoint = match claim.rsplit_once(':') {
        Some((host, port)) => Endpoint::Tcp {
            host: host.to_string(),
            port: port.parse()?,
        },
        None => Endpoint::Unix {
            path: claim.to_string(),
        },
    };
    register(&b, endpoint).await?;
    tokio::time::sleep(Duration::from_secs(600)).await;
    Ok(())
}

async fn lie_in_answers(b: UiServerBootstrap) -> anyhow::Result<()> {
    let tls = steward_uiserver::tls::server_config(&b)?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(|| App::new().route("/ws", web::get().to(ws)))
        .workers(1)
        .disable_signals()
        .listen_rustls_0_23(listener, tls)?
        .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    register(&b, Endpoint::loopback(port)).await?;
    tokio::time::sleep(Duration::from_secs(600)).await;
    handle.stop(false).await;
    Ok(())
}

fn frame(m: &ServerMessage) -> String {
    serde_json::to_string(m).unwrap_or_default()
}

async fn ws(req: HttpRequest, body: web::Payload) -> actix_web::Result<HttpResponse> {
    let (resp, mut session, stream) = actix_ws::handle(&req, body)?;
    let mut stream = stream.aggregate_continuations();
    actix_web::rt::spawn(async move {
        let workflows = CLAIMED
            .iter()
            .map(|name| WorkflowSummary {
                name: name.to_string(),
                state: "running".into(),
                counts: Default::default(),
                tasks: vec![],
            })
            .collect();
        let _ = session
            .text(frame(&ServerMessage::Snapshot { workflows }))
            .await;
        while let Some(Ok(msg)) = stream.next().await {
            let AggregatedMessage::Text(text) = msg else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if v["type"] != "op" {
                continue;
            }
            let id = v["id"].as_str().unwrap_or_default().to_string();
            let result = |id: &str, ok: bool| {
                frame(&ServerMessage::Result {
                    id: id.to_string(),
                    ok,
                    message: format!("the liar says {ok}"),
                })
            };
            for f in [
                result("never-asked", true),
                result(&id, true),
                result(&id, false),
            ] {
                if session.text(f).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(resp)
}
