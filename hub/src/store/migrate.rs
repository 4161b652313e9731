//! Copying one store into another: what `steward database migrate` does when a site
//! moves from SQLite (one hub) to PostgreSQL (several). Sessions, API tokens, the server
//! registry and the last known overviews are copied as they are, through the
//! [`Store`] trait, so both ends keep their own schema and conditional-write rules.
//! The target must be empty: merging two deployments' sessions would be a guess.

use super::{Expect, Store, StoreError};

/// What was copied.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub sessions: usize,
    pub tokens: usize,
    pub servers: usize,
    /// Starts queued in a batch system, not registered yet.
    pub pending: usize,
    pub overviews: usize,
}

impl std::fmt::Display for Copied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} sessions, {} API tokens, {} servers, {} pending starts, {} overviews",
            self.sessions, self.tokens, self.servers, self.pending, self.overviews
        )
    }
}

/// Copies everything from `from` into `to`, which must hold no session, token or server.
pub async fn copy_all(from: &dyn Store, to: &dyn Store) -> Result<Copied, StoreError> {
    let (s, t, v) = (
        to.sessions().await?.len(),
        to.tokens(None).await?.len(),
        to.servers().await?.len(),
    );
    if s + t + v > 0 {
        return Err(StoreError::Backend(format!(
            "the target already holds {s} sessions, {t} API tokens and {v} servers; migrate into an empty database"
        )));
    }
    let mut copied = Copied::default();
    for session in from.sessions().await? {
        to.insert_session(&session).await?;
        copied.sessions += 1;
    }
    for token in from.tokens(None).await? {
        to.insert_token(&token).await?;
        // A new row is live; a revoked token must stay revoked.
        if token.revoked {
            to.revoke_token(&token.id).await?;
        }
        copied.tokens += 1;
    }
    for server in from.servers().await? {
        if to.put_server(&server, Expect::Absent).await?.is_none() {
            return Err(StoreError::Backend(format!(
                "server {}/{} appeared in the target while copying: is a hub running on it?",
                server.owner, server.name
            )));
        }
        copied.servers += 1;
    }
    for pending in from.pending_spawns().await? {
        to.put_pending(&pending).await?;
        copied.pending += 1;
    }
    for overview in from.overviews().await? {
        to.save_overview(&overview).await?;
        copied.overviews += 1;
    }
    Ok(copied)
}
