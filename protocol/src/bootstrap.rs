//! What the hub hands a freshly started UI server on its stdin, and what the UI server
//! sends back when it is ready. Secrets travel only this way: never argv, never disk.

use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
pub struct UiServerBootstrap {
    pub owner: String,
    pub server: String,
    /// PEM certificate for CN=`owner/server`, issued by the hub CA.
    pub cert_pem: String,
    /// PEM private key of that certificate.
    pub key_pem: String,
    /// PEM of the hub CA: the only issuer whose client certificates are accepted.
    pub ca_pem: String,
    /// PEM (SPKI) Ed25519 public key that verifies hub-signed JWTs.
    pub jwt_public_key_pem: String,
    /// Where to POST the registration once listening:
    /// `https://steward-hub.internal/internal/register`, reached at `hub_internal_addr`.
    pub register_url: String,
    /// Socket address of the hub's internal (mutual-TLS) listener.
    pub hub_internal_addr: String,
    /// One-time secret proving the registration comes from this spawn.
    pub register_token: String,
    /// Shut down after this long without hub activity.
    pub idle_timeout_secs: u64,
}

impl std::fmt::Debug for UiServerBootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys must never reach a log line.
        f.debug_struct("UiServerBootstrap")
            .field("owner", &self.owner)
            .field("server", &self.server)
            .field("register_url", &self.register_url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registration {
    pub owner: String,
    pub server: String,
    /// Where the server listens; the hub connects there (and checks the certificate).
    pub endpoint: crate::Endpoint,
    pub pid: u32,
    pub register_token: String,
}

/// DNS name in the hub's internal certificate; UI servers verify the hub by it.
pub const HUB_INTERNAL_NAME: &str = "steward-hub.internal";

/// DNS name in a UI server's certificate; the hub verifies the server by it, so a
/// connection meant for alice's server cannot land on bob's.
pub fn uiserver_dns_name(owner: &str, server: &str) -> String {
    format!("{server}.{owner}.uiserver.steward")
}
