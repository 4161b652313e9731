//! Steward as the OAuth 2 provider a JupyterHub single-user server (`cylc hubapp`)
//! logs its visitors in with: the authorization-code flow with PKCE (S256) that
//! JupyterHub 6's `HubOAuth` runs, and the user model `/hub/api/user` answers.
//!
//! The flow (docs/jupyterhub-compat.md has the exchange byte by byte):
//! 1. the browser comes to `/hub/api/oauth2/authorize?client_id&redirect_uri&
//!    response_type=code&code_challenge&code_challenge_method=S256&state`; after the
//!    hub's own login and policy check, [`Provider::authorize`] issues a code bound to
//!    the client, the redirect URI, the challenge and the visitor, and the browser is
//!    sent to `redirect_uri?code&state`;
//! 2. the server posts `client_id, client_secret, grant_type, code, redirect_uri,
//!    code_verifier` to `/hub/api/oauth2/token`: [`Provider::exchange`];
//! 3. the server asks `/hub/api/user` with the token: [`Provider::user_model`].
//!
//! `state` is the client's: the single-user server sets it in a cookie and checks it
//! on its callback (HubOAuth `check_state`), so a wrong `state` is refused there; the
//! provider passes it through unchanged.
//!
//! This module holds codes and tokens in memory, keyed by the SHA-256 of the secret so
//! a dump of the tables gives no usable secret; the hub may persist the same hashed
//! records. Time is passed in (Unix seconds) so tests move it. It does no I/O and
//! makes no policy decision: the hub calls [`Provider::authorize`] only after deciding
//! that the visitor may read the owner's workflows.
//!
//! PKCE S256 is `BASE64URL(SHA-256(verifier))` (RFC 7636 §4.2): three lines over the
//! `sha2` and `base64` crates the hub already uses, rather than the `oauth2` crate,
//! which is a client library (its provider-side use would be one helper function) and
//! pulls in an HTTP stack.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// How long a code may wait for its exchange (JupyterHub uses 5 minutes; the
/// server exchanges it within a second).
pub const CODE_TTL_SECS: i64 = 60;
/// Access token lifetime, as JupyterHub's default `oauth_token_expires_in` (14 days).
pub const TOKEN_TTL_SECS: i64 = 1_209_600;

/// The OAuth client id JupyterHub gives the default server of `owner`.
pub fn client_id_for(owner: &str) -> String {
    format!("jupyterhub-user-{owner}")
}

/// The URL prefix the owner's server lives under; every redirect must stay inside.
pub fn owner_prefix(owner: &str) -> String {
    format!("/user/{owner}/")
}

/// The redirect URI JupyterHub registers for the owner's default server.
pub fn callback_for(owner: &str) -> String {
    format!("/user/{owner}/oauth_callback")
}

fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// PKCE S256: the challenge a verifier answers.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 §4.1: 43–128 characters of `[A-Za-z0-9-._~]`.
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// A refusal, with the RFC 6749 error code the token endpoint answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("unknown client {0:?}, or its secret does not match")]
    InvalidClient(String),
    #[error("the authorization code is invalid: {0}")]
    InvalidGrant(String),
    #[error("grant_type must be authorization_code")]
    UnsupportedGrantType,
    #[error("response_type must be code")]
    UnsupportedResponseType,
    #[error("the token is unknown, revoked or expired")]
    InvalidToken,
}

impl OAuthError {
    /// The `error` field of RFC 6749 §5.2.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::UnsupportedResponseType => "unsupported_response_type",
            OAuthError::InvalidToken => "invalid_token",
        }
    }

    /// HTTP status. An unknown token at `/hub/api/user` must be 403: JupyterHub's
    /// HubAuth turns other 4xx into a 500 of the single-user server.
    pub fn status(&self) -> u16 {
        match self {
            OAuthError::InvalidClient(_) => 401,
            OAuthError::InvalidToken => 403,
            _ => 400,
        }
    }

    /// The JSON body of a token-endpoint error.
    pub fn body(&self) -> Json {
        json!({"error": self.code(), "error_description": self.to_string()})
    }
}

/// A registered single-user server: one per owner's running server.
#[derive(Debug, Clone)]
struct Client {
    owner: String,
    secret: [u8; 32],
    redirect_uri: String,
}

#[derive(Debug, Clone)]
struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    visitor: String,
    expires: i64,
}

/// An issued access token's record (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub visitor: String,
    pub owner: String,
    pub client_id: String,
    pub expires: i64,
}

/// The query of `/hub/api/oauth2/authorize`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AuthorizeParams {
    pub client_id: String,
    pub redirect_uri: String,
    pub response_type: String,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub state: Option<String>,
}

/// The form of `POST /hub/api/oauth2/token`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct TokenParams {
    pub client_id: String,
    #[serde(default)]
    pub client_secret: String,
    pub grant_type: String,
    pub code: String,
    pub redirect_uri: String,
    #[serde(default)]
    pub code_verifier: String,
}

/// The provider's tables. Not `Clone`: one per hub, behind the hub's lock.
#[derive(Debug, Default)]
pub struct Provider {
    clients: HashMap<String, Client>,
    codes: HashMap<[u8; 32], Code>,
    tokens: HashMap<[u8; 32], TokenRecord>,
}

impl Provider {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the owner's server at spawn; its client secret is its
    /// `JUPYTERHUB_API_TOKEN` (what HubOAuth sends). Replaces an earlier registration.
    pub fn register(&mut self, owner: &str, api_token: &str) -> String {
        let id = client_id_for(owner);
        self.clients.insert(
            id.clone(),
            Client {
                owner: owner.to_string(),
                secret: hash(api_token),
                redirect_uri: callback_for(owner),
            },
        );
        id
    }

    /// Forgets the owner's server (stopped): its codes and tokens die with it.
    pub fn unregister(&mut self, owner: &str) {
        let id = client_id_for(owner);
        self.clients.remove(&id);
        self.codes.retain(|_, c| c.client_id != id);
        self.tokens.retain(|_, t| t.client_id != id);
    }

    /// The owner of a registered client.
    pub fn client_owner(&self, client_id: &str) -> Option<&str> {
        self.clients.get(client_id).map(|c| c.owner.as_str())
    }

    /// Issues a code for `visitor` (already logged in to the hub and allowed to read
    /// `owner`'s workflows); returns the URL to redirect the browser to.
    /// `owner` is the server the browser was visiting: a client id of another owner
    /// is refused, so one server cannot collect codes meant for another.
    pub fn authorize(
        &mut self,
        p: &AuthorizeParams,
        owner: &str,
        visitor: &str,
        now: i64,
    ) -> Result<String, OAuthError> {
        if p.response_type != "code" {
            return Err(OAuthError::UnsupportedResponseType);
        }
        let client = self
            .clients
            .get(&p.client_id)
            .ok_or_else(|| OAuthError::InvalidClient(p.client_id.clone()))?;
        if client.owner != owner {
            return Err(OAuthError::InvalidRequest(format!(
                "client {:?} belongs to {:?}, not to {owner:?}",
                p.client_id, client.owner
            )));
        }
        check_redirect(&p.redirect_uri, &client.owner)?;
        if p.redirect_uri != client.redirect_uri {
            return Err(OAuthError::InvalidRequest(format!(
                "redirect_uri {:?} is not the one registered for {:?} ({:?})",
                p.redirect_uri, p.client_id, client.redirect_uri
            )));
        }
        if p.code_challenge_method.as_deref() != Some("S256") {
            return Err(OAuthError::InvalidRequest(
                "PKCE is required: code_challenge_method must be S256".into(),
            ));
        }
        let challenge = p.code_challenge.clone().unwrap_or_default();
        if challenge.len() != 43
            || URL_SAFE_NO_PAD
                .decode(&challenge)
                .map_or(true, |b| b.len() != 32)
        {
            return Err(OAuthError::InvalidRequest(
                "code_challenge must be the base64url SHA-256 of the verifier".into(),
            ));
        }
        let code = random_token();
        self.codes.insert(
            hash(&code),
            Code {
                client_id: p.client_id.clone(),
                redirect_uri: p.redirect_uri.clone(),
                challenge,
                visitor: visitor.to_string(),
                expires: now + CODE_TTL_SECS,
            },
        );
        let mut query = vec![("code", code.as_str())];
        if let Some(s) = &p.state {
            query.push(("state", s));
        }
        let q = serde_urlencoded::to_string(query)
            .map_err(|e| OAuthError::InvalidRequest(e.to_string()))?;
        Ok(format!("{}?{q}", p.redirect_uri))
    }

    /// The token exchange. A code is consumed by its first presentation, right or
    /// wrong, so a replayed or guessed code never works twice.
    pub fn exchange(&mut self, p: &TokenParams, now: i64) -> Result<(String, Json), OAuthError> {
        if p.grant_type != "authorization_code" {
            return Err(OAuthError::UnsupportedGrantType);
        }
        let client = self
            .clients
            .get(&p.client_id)
            .ok_or_else(|| OAuthError::InvalidClient(p.client_id.clone()))?;
        if hash(&p.client_secret) != client.secret {
            return Err(OAuthError::InvalidClient(p.client_id.clone()));
        }
        let owner = client.owner.clone();
        let code = self
            .codes
            .remove(&hash(&p.code))
            .ok_or_else(|| OAuthError::InvalidGrant("unknown or already used".into()))?;
        if now >= code.expires {
            return Err(OAuthError::InvalidGrant("expired".into()));
        }
        if code.client_id != p.client_id {
            return Err(OAuthError::InvalidGrant(format!(
                "it was issued to another client ({:?})",
                code.client_id
            )));
        }
        check_redirect(&p.redirect_uri, &owner)?;
        if code.redirect_uri != p.redirect_uri {
            return Err(OAuthError::InvalidGrant(
                "redirect_uri differs from the authorization request's".into(),
            ));
        }
        if !valid_verifier(&p.code_verifier) || s256_challenge(&p.code_verifier) != code.challenge {
            return Err(OAuthError::InvalidGrant(
                "code_verifier does not answer the code_challenge".into(),
            ));
        }
        let token = random_token();
        let record = TokenRecord {
            id: format!("o{}", &hex::encode(hash(&token))[..12]),
            visitor: code.visitor,
            owner: owner.clone(),
            client_id: p.client_id.clone(),
            expires: now + TOKEN_TTL_SECS,
        };
        let scope = token_scopes(&owner).join(" ");
        self.tokens.insert(hash(&token), record);
        let body = json!({
            "access_token": token,
            "expires_in": TOKEN_TTL_SECS,
            "token_type": "Bearer",
            "scope": scope,
        });
        Ok((token, body))
    }

    /// Issues a token for `visitor` on `owner`'s registered server without a code: the
    /// hub's relay puts it in `Authorization` for a visitor it has already
    /// authenticated and let through, so the browser never holds it. The server need
    /// not be registered here: one a restarted hub adopted is not, and its visitors'
    /// tokens still resolve (the server only asks `/hub/api/user` about them).
    pub fn mint(&mut self, visitor: &str, owner: &str, now: i64) -> Option<String> {
        let client_id = client_id_for(owner);
        let token = random_token();
        self.tokens.insert(
            hash(&token),
            TokenRecord {
                id: format!("o{}", &hex::encode(hash(&token))[..12]),
                visitor: visitor.to_string(),
                owner: owner.to_string(),
                client_id,
                expires: now + TOKEN_TTL_SECS,
            },
        );
        Some(token)
    }

    /// The owner whose server holds this API token (its `JUPYTERHUB_API_TOKEN`).
    pub fn server_owner(&self, api_token: &str) -> Option<&str> {
        let h = hash(api_token);
        self.clients
            .values()
            .find(|c| c.secret == h)
            .map(|c| c.owner.as_str())
    }

    /// The record of a live token.
    pub fn token(&self, token: &str, now: i64) -> Result<&TokenRecord, OAuthError> {
        match self.tokens.get(&hash(token)) {
            Some(t) if now < t.expires => Ok(t),
            _ => Err(OAuthError::InvalidToken),
        }
    }

    /// `/hub/api/user` for an OAuth token: the visitor, with the scopes the owner's
    /// server checks. `groups` are the visitor's (the hub looks them up).
    pub fn user_model(&self, token: &str, groups: &[String], now: i64) -> Result<Json, OAuthError> {
        let t = self.token(token, now)?;
        Ok(user_model(&t.visitor, &t.owner, groups, &t.id))
    }

    /// Revokes every token of `visitor` (logout) and returns how many.
    pub fn revoke_visitor(&mut self, visitor: &str) -> usize {
        let before = self.tokens.len();
        self.tokens.retain(|_, t| t.visitor != visitor);
        before - self.tokens.len()
    }

    /// Drops expired codes and tokens.
    pub fn purge(&mut self, now: i64) {
        self.codes.retain(|_, c| now < c.expires);
        self.tokens.retain(|_, t| now < t.expires);
    }
}

/// A redirect must be a path inside the owner's prefix: no scheme, no host, no `..`,
/// no `//` (which browsers read as another host).
fn check_redirect(uri: &str, owner: &str) -> Result<(), OAuthError> {
    let prefix = owner_prefix(owner);
    let path = uri.split(['?', '#']).next().unwrap_or("");
    if !uri.starts_with(&prefix)
        || path.contains("//")
        || path.split('/').any(|s| s == ".." || s == ".")
        || uri.contains(['\\', '\r', '\n'])
    {
        return Err(OAuthError::InvalidRequest(format!(
            "redirect_uri {uri:?} is outside {prefix}"
        )));
    }
    Ok(())
}

/// The scopes a visitor's token for `owner`'s server carries (as JupyterHub 6 words
/// them in the token answer).
pub fn token_scopes(owner: &str) -> Vec<String> {
    vec![
        "read:users:name!user".to_string(),
        "read:users:groups!user".to_string(),
        format!("access:servers!server={owner}/"),
    ]
}

/// JupyterHub's user model as `/hub/api/user` answers it for a visitor's token.
pub fn user_model(visitor: &str, owner: &str, groups: &[String], token_id: &str) -> Json {
    let mut scopes = vec![
        format!("access:servers!server={owner}/"),
        format!("read:users:groups!user={visitor}"),
        format!("read:users:name!user={visitor}"),
    ];
    scopes.sort();
    json!({
        "name": visitor,
        "kind": "user",
        "admin": false,
        "groups": groups,
        "user_info": null,
        "token_id": token_id,
        "session_id": null,
        "scopes": scopes,
    })
}

/// The model for the server's own `JUPYTERHUB_API_TOKEN` (it asks at start and when
/// it posts activity): the owner, with the scopes JupyterHub 6 gives a server token.
pub fn server_model(owner: &str) -> Json {
    let mut scopes = vec![
        format!("access:servers!server={owner}/"),
        format!("read:users:groups!user={owner}"),
        format!("read:users:name!user={owner}"),
        format!("users:activity!server={owner}/"),
    ];
    scopes.sort();
    json!({
        "name": owner,
        "kind": "user",
        "admin": false,
        "groups": [],
        "user_info": null,
        "token_id": null,
        "session_id": null,
        "scopes": scopes,
    })
}

#[cfg(test)]
mod tests;
