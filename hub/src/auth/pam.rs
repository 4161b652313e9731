//! PAM against the system's own accounts.

use super::{AuthError, Authenticator};
use async_trait::async_trait;
use pam_client::conv_mock::Conversation;
use pam_client::{Context, Flag};

/// The PAM backend (`auth.backend = "pam"`), with its service name.
pub struct Pam {
    pub service: String,
}

#[async_trait]
impl Authenticator for Pam {
    async fn authenticate(&self, user: &str, password: &str) -> Result<Vec<String>, AuthError> {
        let (service, u, p) = (self.service.clone(), user.to_string(), password.to_string());
        tokio::task::spawn_blocking(move || pam_authenticate(&service, &u, &p))
            .await
            .map_err(|e| AuthError::Unavailable {
                detail: e.to_string(),
            })??;
        Ok(vec![])
    }
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
