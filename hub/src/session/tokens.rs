//! API tokens for scripts: created by a logged-in person, shown once, stored as SHA-256,
//! always expiring, revocable. A token that can execute or write can only be made from a
//! session elevated to at least that class, and never outlives `elevation.token_max_secs`.

use super::{Session, SessionKind, Sessions};
use crate::http::ApiError;
use crate::store::{hash_secret, TokenRow};
use crate::util::random_token;
use steward_protocol::OpClass;
use subtle::ConstantTimeEq;

pub const TOKEN_PREFIX: &str = "stw_";
/// Longest lifetime of a read-only token.
pub const READ_TOKEN_MAX_SECS: u64 = 90 * 24 * 3600;

/// A token just made: its row and the secret text shown once.
pub struct Issued {
    pub row: TokenRow,
    pub token: String,
}

fn token_session(sessions: &Sessions, row: &TokenRow, addr: &str) -> Session {
    Session {
        kind: SessionKind::Token { id: row.id.clone() },
        user: row.user.clone(),
        groups: sessions.groups.of(&row.user),
        class: row.class,
        deadline: (row.class != OpClass::Read).then_some(row.expires),
        csrf: String::new(),
        created: row.created,
        last_seen: sessions.store.now(),
        addr: addr.to_string(),
        expiry_audited: true,
        uid: row.uid,
    }
}

/// Resolves `stw_<id>_<secret>` into a session-like value.
pub async fn validate(sessions: &Sessions, token: &str, addr: &str) -> Option<Session> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let row = sessions.store.token(id).await.ok()??;
    let now = sessions.store.now();
    let same: bool = hash_secret(secret)
        .as_bytes()
        .ct_eq(row.hash.as_bytes())
        .into();
    if !same || row.revoked || now >= row.expires {
        return None;
    }
    let s = token_session(sessions, &row, addr);
    sessions.same_account(&s).then_some(s)
}

/// Re-checks a token (revocation, expiry) before an operation.
pub async fn revalidate(sessions: &Sessions, id: &str, addr: &str) -> Option<Session> {
    let row = sessions.store.token(id).await.ok()??;
    if row.revoked || sessions.store.now() >= row.expires {
        return None;
    }
    let s = token_session(sessions, &row, addr);
    sessions.same_account(&s).then_some(s)
}

impl Sessions {
    /// Makes a token for the session's user after checking name, class and lifetime.
    pub async fn issue_token(
        &self,
        s: &Session,
        name: &str,
        class: OpClass,
        expires_in_secs: u64,
        token_max_secs: u64,
    ) -> Result<Issued, ApiError> {
        if s.is_token() {
            return Err(ApiError::forbidden("tokens cannot create tokens; log in"));
        }
        if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
            return Err(ApiError::bad_request("name: 1 to 64 printable characters"));
        }
        if expires_in_secs == 0 {
            return Err(ApiError::bad_request(
                "expires_in_secs: every token must expire",
            ));
        }
        let now = self.store.now();
        let max = if class == OpClass::Read {
            READ_TOKEN_MAX_SECS
        } else {
            token_max_secs
        };
        if expires_in_secs > max {
            return Err(ApiError::bad_request(format!(
                "expires_in_secs: at most {max} for a {class} token"
            )));
        }
        if class != OpClass::Read && s.class_at(now) < class {
            return Err(ApiError::forbidden(format!(
                "a {class} token can only be created from a session elevated to {class}; raise your privileges first"
            )));
        }
        let id = random_token()[..12].to_string();
        let secret = random_token();
        let row = TokenRow {
            id: id.clone(),
            hash: hash_secret(&secret),
            user: s.user.clone(),
            name: name.to_string(),
            class,
            created: now,
            expires: now + expires_in_secs as i64,
            revoked: false,
            uid: s.uid,
        };
        self.store
            .insert_token(&row)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        Ok(Issued {
            row,
            token: format!("{TOKEN_PREFIX}{id}_{secret}"),
        })
    }

    /// Tokens of `user`, or everyone's when None.
    pub async fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenRow>, ApiError> {
        self.store
            .tokens(user)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))
    }

    pub async fn token(&self, id: &str) -> Option<TokenRow> {
        self.store.token(id).await.ok().flatten()
    }

    pub async fn revoke_token(&self, id: &str) -> bool {
        self.store.revoke_token(id).await.unwrap_or(false)
    }
}
