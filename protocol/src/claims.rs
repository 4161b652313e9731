//! Claims of the short-lived, hub-signed JWT that accompanies every forwarded request.

use crate::Operation;
use serde::{Deserialize, Serialize};

/// Issuer of every token the hub signs.
pub const HUB_ISSUER: &str = "steward-hub";
/// Longest lifetime a UI server accepts; the hub signs far shorter ones.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 60;

/// `aud` for the UI server of `owner`: a token for one owner is useless at another's.
pub fn audience_for(owner: &str) -> String {
    format!("uiserver:{owner}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpClaims {
    pub iss: String,
    pub aud: String,
    /// The acting person (not the owner).
    pub sub: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    /// Unique per token; the UI server refuses a jti it has seen.
    pub jti: String,
    /// The operations this token authorises (usually exactly one).
    pub ops: Vec<Operation>,
    /// The workflow the token is for, when the request targets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// The hub's request id, so UI server logs join with the audit log.
    #[serde(default)]
    pub rid: String,
}
