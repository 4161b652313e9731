//! Signing the short-lived JWT that accompanies every request the hub forwards.
//!
//! Ed25519 only: signing is microseconds (one token per operation is affordable) and a
//! single accepted algorithm leaves no room for algorithm confusion at the UI server.

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::path::Path;
use steward_protocol::claims::{audience_for, OpClaims, HUB_ISSUER};
use steward_protocol::Operation;

/// Lifetime of a forwarded-request token: long enough for one hop, short enough that a
/// leaked token is useless almost at once.
pub const TOKEN_LIFETIME_SECS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("signing key {path}: {message}")]
    Key { path: String, message: String },
    #[error("signing a token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

pub struct TokenSigner {
    encoding: EncodingKey,
    pub signing_key: SigningKey,
    pub public_pem: String,
}

impl TokenSigner {
    /// Loads the hub's Ed25519 key from `path` (PKCS#8 DER), creating it on first start.
    pub fn load_or_create(path: &Path) -> Result<TokenSigner, TokenError> {
        let key_err = |message: String| TokenError::Key {
            path: path.display().to_string(),
            message,
        };
        let signing_key = if path.exists() {
            let der = std::fs::read(path).map_err(|e| key_err(e.to_string()))?;
            SigningKey::from_pkcs8_der(&der).map_err(|e| key_err(e.to_string()))?
        } else {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let der = key.to_pkcs8_der().map_err(|e| key_err(e.to_string()))?;
            crate::fsutil::write_private(path, der.as_bytes())
                .map_err(|e| key_err(e.to_string()))?;
            key
        };
        Self::from_key(signing_key).map_err(|e| key_err(e.to_string()))
    }

    pub fn from_key(signing_key: SigningKey) -> Result<TokenSigner, String> {
        let der = signing_key.to_pkcs8_der().map_err(|e| e.to_string())?;
        let public_pem = signing_key
            .verifying_key()
            .to_public_key_pem(Default::default())
            .map_err(|e| e.to_string())?;
        Ok(TokenSigner {
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            signing_key,
            public_pem,
        })
    }

    /// Signs a token for `actor` acting on `owner`'s server.
    pub fn sign(
        &self,
        now: u64,
        owner: &str,
        actor: &str,
        ops: Vec<Operation>,
        workflow: Option<String>,
        request_id: &str,
    ) -> Result<String, TokenError> {
        let claims = OpClaims {
            iss: HUB_ISSUER.into(),
            aud: audience_for(owner),
            sub: actor.into(),
            iat: now,
            nbf: now.saturating_sub(5),
            exp: now + TOKEN_LIFETIME_SECS,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            ops,
            workflow,
            rid: request_id.into(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims,
            &self.encoding,
        )?)
    }
}

/// Token times come from the real clock, never the injected one: the UI server checks
/// them against its own wall clock.
pub fn jwt_now() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64
}
