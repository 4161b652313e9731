//! Who is this person? PAM against the system's own accounts.
//!
//! Every failure looks the same from outside ("invalid username or password"), whether
//! the user does not exist, the password is wrong or the account is locked, so the
//! login form cannot be used to discover accounts. The precise reason goes to the log
//! and the audit record only.

use pam_client::conv_mock::Conversation;
use pam_client::{Context, Flag};

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

/// Authenticates with PAM and checks the account; blocking (run it off the async threads).
pub fn pam_authenticate(service: &str, user: &str, password: &str) -> Result<(), AuthError> {
    let conv = Conversation::with_credentials(user, password);
    let mut ctx = Context::new(service, Some(user), conv).map_err(|e| AuthError::Unavailable {
        detail: format!("starting PAM service {service:?}: {e}"),
    })?;
    ctx.authenticate(Flag::DISALLOW_NULL_AUTHTOK)
        .map_err(|e| AuthError::Rejected {
            detail: format!("pam_authenticate: {e}"),
        })?;
    ctx.acct_mgmt(Flag::DISALLOW_NULL_AUTHTOK)
        .map_err(|e| AuthError::Rejected {
            detail: format!("pam_acct_mgmt: {e}"),
        })?;
    // Belt and braces, as sudo-rs does: a module must not have switched the user.
    match ctx.user() {
        Ok(u) if u == user => Ok(()),
        Ok(u) => Err(AuthError::Rejected {
            detail: format!("PAM changed the user from {user:?} to {u:?}"),
        }),
        Err(e) => Err(AuthError::Unavailable {
            detail: format!("reading PAM user: {e}"),
        }),
    }
}

/// Unix groups of `user` from NSS (getgrouplist), names only.
pub fn nss_groups(user: &str) -> Vec<String> {
    let Ok(Some(u)) = nix::unistd::User::from_name(user) else {
        return vec![];
    };
    let Ok(name) = std::ffi::CString::new(user) else {
        return vec![];
    };
    let mut names: Vec<String> = nix::unistd::getgrouplist(&name, u.gid)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|g| nix::unistd::Group::from_gid(g).ok().flatten())
        .map(|g| g.name)
        .collect();
    names.sort();
    names.dedup();
    names
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
