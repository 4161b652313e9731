//! Telling the hub we are listening: POST `Registration` over mutual TLS.

use crate::tls;
use std::net::SocketAddr;
use std::time::Duration;
use steward_protocol::bootstrap::{Registration, UiServerBootstrap, HUB_INTERNAL_NAME};

/// Attempts on connection errors before giving up.
const ATTEMPTS: u32 = 5;

pub async fn register(b: &UiServerBootstrap, port: u16) -> anyhow::Result<()> {
    let addr: SocketAddr = b
        .hub_internal_addr
        .parse()
        .map_err(|e| anyhow::anyhow!("hub_internal_addr {:?}: {e}", b.hub_internal_addr))?;
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls::client_config(b)?)
        .resolve(HUB_INTERNAL_NAME, addr)
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(3))
        .build()?;
    let reg = Registration {
        owner: b.owner.clone(),
        server: b.server.clone(),
        endpoint: steward_protocol::Endpoint::loopback(port),
        pid: std::process::id(),
        register_token: b.register_token.clone(),
    };
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=ATTEMPTS {
        match client.post(&b.register_url).json(&reg).send().await {
            Ok(resp) if resp.status().is_success() => {
                tracing::info!(port, attempt, "registered with the hub");
                return Ok(());
            }
            Ok(resp) => {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                let body: String = body.chars().take(300).collect();
                anyhow::bail!("the hub refused the registration: HTTP {status}: {body}");
            }
            Err(e) if attempt < ATTEMPTS && (e.is_connect() || e.is_timeout()) => {
                tracing::warn!(attempt, error = %error_chain(&e), "registration failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                anyhow::bail!(
                    "cannot register with the hub at {} ({}): {}",
                    b.register_url,
                    addr,
                    error_chain(&e)
                )
            }
        }
    }
    unreachable!("the last attempt returns")
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}
