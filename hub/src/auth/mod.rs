//! Who is this person? Password checks against PAM or an LDAP directory, behind one
//! [`Authenticator`] picked once at start, the failed-login limits in front of it, and
//! the NSS group lookup.
//!
//! Every failure looks the same from outside ("invalid username or password"), whether
//! the user does not exist, the password is wrong or the account is locked, so the
//! login form cannot be used to discover accounts. The precise reason goes to the log
//! and the audit record only.
//!
//! This module must not create sessions, write the audit log or know about HTTP: it
//! answers "is this the password of that user, and which directory groups do they
//! have", and "must this user or address wait".

pub mod groups;
pub mod ldap;
mod pam;
pub mod ratelimit;

pub use groups::{nss_groups, Groups};
pub use pam::{pam_authenticate, Pam};

use async_trait::async_trait;

/// What a browser is told on any authentication failure.
pub const GENERIC_FAILURE: &str = "invalid username or password";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong password, unknown user, locked account: one answer for all.
    #[error("{GENERIC_FAILURE}")]
    Rejected { detail: String },
    #[error("authentication service unavailable")]
    Unavailable { detail: String },
}

impl AuthError {
    pub fn detail(&self) -> &str {
        match self {
            AuthError::Rejected { detail } | AuthError::Unavailable { detail } => detail,
        }
    }
}

/// Longest user name and password accepted before anything reaches PAM.
pub const MAX_USER: usize = 64;
pub const MAX_PASSWORD: usize = 1024;

/// Checks shape before any backend sees the input.
pub fn precheck(user_pattern: &regex::Regex, user: &str, password: &str) -> Result<(), AuthError> {
    let reject = |detail: &str| AuthError::Rejected {
        detail: detail.to_string(),
    };
    if user.is_empty() || user.len() > MAX_USER || !user_pattern.is_match(user) {
        return Err(reject("user name does not match the configured pattern"));
    }
    if password.is_empty() {
        return Err(reject("empty password"));
    }
    if password.len() > MAX_PASSWORD {
        return Err(reject("password too long"));
    }
    if password.chars().any(|c| c == '\0') {
        return Err(reject("password contains NUL"));
    }
    Ok(())
}

/// A password backend. Returns the directory's groups of the user (added to the NSS
/// groups; none for PAM).
#[async_trait]
pub trait Authenticator: Send + Sync {
    async fn authenticate(&self, user: &str, password: &str) -> Result<Vec<String>, AuthError>;
}

/// The LDAP backend (`auth.backend = "ldap"`).
pub struct Ldap(pub ldap::LdapConfig);

#[async_trait]
impl Authenticator for Ldap {
    async fn authenticate(&self, user: &str, password: &str) -> Result<Vec<String>, AuthError> {
        ldap::authenticate(&self.0, user, password).await
    }
}

/// The answer to a login attempt made through [`Login`].
pub enum Attempt {
    /// Over the failed-login limit: wait this many seconds; the backend was not asked.
    Wait(u64),
    Checked(Result<Vec<String>, AuthError>),
}

/// Password checks with their limits: shape first, then the per-user and per-address
/// failure limits, then the backend.
pub struct Login {
    backend: Box<dyn Authenticator>,
    user_pattern: regex::Regex,
    limiter: ratelimit::FailureLimiter,
}

impl Login {
    pub fn new(
        backend: Box<dyn Authenticator>,
        user_pattern: regex::Regex,
        limiter: ratelimit::FailureLimiter,
    ) -> Login {
        Login {
            backend,
            user_pattern,
            limiter,
        }
    }

    pub async fn attempt(&self, user: &str, password: &str, addr: &str, now: i64) -> Attempt {
        // Limit on the name as typed (truncated), so over-long names share one bucket.
        let key: String = user.chars().take(64).collect();
        if let Some(secs) = self.limiter.check(&key, addr, now) {
            return Attempt::Wait(secs);
        }
        let result = match precheck(&self.user_pattern, user, password) {
            Ok(()) => self.backend.authenticate(user, password).await,
            Err(e) => Err(e),
        };
        match &result {
            Ok(_) => self.limiter.succeeded(&key, addr),
            Err(AuthError::Rejected { .. }) => self.limiter.failed(&key, addr, now),
            Err(AuthError::Unavailable { .. }) => {}
        }
        Attempt::Checked(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precheck_refuses_bad_shapes_generically() {
        let re = regex::Regex::new("^[a-z_][a-z0-9_-]{0,31}$").unwrap();
        for (u, p) in [
            ("", "pw"),
            ("Alice", "pw"),
            ("al\nice", "pw"),
            ("alice", ""),
            ("alice", "a\0b"),
            (&"a".repeat(65), "pw"),
            ("alice", &"x".repeat(2000)),
        ] {
            let e = precheck(&re, u, p).unwrap_err();
            assert_eq!(e.to_string(), GENERIC_FAILURE);
        }
        precheck(&re, "alice", "secret").unwrap();
    }
}
