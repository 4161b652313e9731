//! A UI server that lies in its registration, for the attack suite: it reads the hub's
//! bootstrap from stdin like the real one, then registers the endpoint given as its only
//! argument (`HOST:PORT` for TCP, or a path for a Unix socket) with the genuine
//! certificate and one-time token, and stays up until it is stopped.

use std::time::Duration;
use steward_protocol::bootstrap::{Registration, UiServerBootstrap, HUB_INTERNAL_NAME};
use steward_protocol::Endpoint;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let claim = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: steward-test-liar HOST:PORT|PATH"))?;
    let endpoint = match claim.rsplit_once(':') {
        Some((host, port)) => Endpoint::Tcp {
            host: host.to_string(),
            port: port.parse()?,
        },
        None => Endpoint::Unix { path: claim },
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
    let b: UiServerBootstrap = serde_json::from_str(&text)?;
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(steward_uiserver::tls::client_config(&b)?)
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
    tokio::time::sleep(Duration::from_secs(600)).await;
    Ok(())
}
