//! HTTP clients to owners' UI servers over mutual TLS (one pooled client per server,
//! reaching it at its stored endpoint), and the overview's summary fetch.

use crate::servers::RunningServer;
use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use steward_protocol::bootstrap::uiserver_dns_name;
use steward_protocol::wire::WorkflowSummary;
use steward_protocol::Endpoint;

/// One pooled client per server (its name resolves to that server's port only).
#[derive(Default)]
pub struct UpstreamClients {
    clients: Mutex<HashMap<(String, Endpoint), reqwest::Client>>,
}

impl UpstreamClients {
    pub fn client(
        &self,
        tls: &Arc<rustls::ClientConfig>,
        s: &RunningServer,
    ) -> Result<reqwest::Client, String> {
        let key = (s.owner.clone(), s.endpoint.clone());
        if let Ok(map) = self.clients.lock() {
            if let Some(c) = map.get(&key) {
                return Ok(c.clone());
            }
        }
        let dns = uiserver_dns_name(&s.owner, &s.name);
        let builder = reqwest::Client::builder().use_preconfigured_tls((**tls).clone());
        // The URL names the server's certificate; the endpoint says where it really is.
        let builder = match &s.endpoint {
            Endpoint::Tcp { host, port } => {
                let addrs: Vec<std::net::SocketAddr> = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(|e| format!("{}: {e}", s.endpoint))?
                    .collect();
                builder.resolve_to_addrs(&dns, &addrs)
            }
            Endpoint::Unix { path } => builder.unix_socket(std::path::PathBuf::from(path)),
            Endpoint::SingleUser { .. } => {
                return Err(format!(
                    "{} is a JupyterHub single-user server, not Steward's UI server",
                    s.endpoint
                ))
            }
        };
        let client = builder
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .pool_max_idle_per_host(64)
            // Below the UI server's 5 s keep-alive, so a pooled connection is never one
            // the server is closing (a request sent on it would fail).
            .pool_idle_timeout(Duration::from_secs(4))
            .build()
            .map_err(|e| e.to_string())?;
        if let Ok(mut map) = self.clients.lock() {
            map.retain(|(o, _), _| o != &s.owner);
            map.insert(key, client.clone());
        }
        Ok(client)
    }

    /// `e` with its causes, so an operator sees "connection refused", not only
    /// "error sending request".
    pub fn describe(e: &reqwest::Error) -> String {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }

    pub fn url(s: &RunningServer, path_and_query: &str) -> String {
        let dns = uiserver_dns_name(&s.owner, &s.name);
        match &s.endpoint {
            Endpoint::Tcp { port, .. } => format!("https://{dns}:{port}{path_and_query}"),
            Endpoint::Unix { .. } | Endpoint::SingleUser { .. } => {
                format!("https://{dns}{path_and_query}")
            }
        }
    }
}

/// Fetches a server's gscan summary with a read token for `actor`.
pub async fn fetch_summary(
    relay: &super::Relay,
    server: &RunningServer,
    actor: &str,
) -> Result<Vec<WorkflowSummary>, String> {
    if let Endpoint::SingleUser { .. } = server.endpoint {
        return super::singleuser::fetch_summary(relay, server, actor).await;
    }
    let client = relay.upstream.client(&relay.servers.client_tls, server)?;
    let jwt = relay
        .signer
        .sign(crate::pki::jwt::Grant::read(
            &server.owner,
            actor,
            None,
            "overview",
        ))
        .map_err(|e| e.to_string())?;
    let resp = client
        .get(UpstreamClients::url(server, "/api/summary"))
        .bearer_auth(jwt)
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("summary: HTTP {}", resp.status()));
    }
    resp.json::<Vec<WorkflowSummary>>()
        .await
        .map_err(|e| e.to_string())
}
