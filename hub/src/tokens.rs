//! Signing the short-lived JWT that accompanies every request the hub forwards.
//!
//! Ed25519 only: signing is microseconds (one token per operation is affordable) and a
//! single accepted algorithm leaves no room for algorithm confusion at the UI server.

use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer, SigningKey};
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
    Sign(#[from] serde_json::Error),
}

/// `{"alg":"EdDSA","typ":"JWT"}`, base64url: the same for every token.
const JWT_HEADER_B64: &str = "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9";

pub struct TokenSigner {
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
        let public_pem = signing_key
            .verifying_key()
            .to_public_key_pem(Default::default())
            .map_err(|e| e.to_string())?;
        Ok(TokenSigner {
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
        // Encoded here rather than by `jsonwebtoken::encode`, which rebuilds the Ed25519
        // key from DER (a second scalar multiplication) on every call: that doubled the
        // cost of each operation. The UI server still verifies with `jsonwebtoken`, and a
        // test below checks it accepts what this writes.
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut token = String::with_capacity(400);
        token.push_str(JWT_HEADER_B64);
        token.push('.');
        b64.encode_string(serde_json::to_vec(&claims)?, &mut token);
        let signature = self.signing_key.sign(token.as_bytes());
        token.push('.');
        b64.encode_string(signature.to_bytes(), &mut token);
        Ok(token)
    }
}

/// Token times come from the real clock, never the injected one: the UI server checks
/// them against its own wall clock.
pub fn jwt_now() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    #[test]
    fn jsonwebtoken_accepts_our_tokens_and_rejects_tampered_ones() {
        let signer = TokenSigner::from_key(SigningKey::from_bytes(&[7u8; 32])).unwrap();
        let token = signer
            .sign(
                jwt_now(),
                "alice",
                "bob",
                vec![Operation::Pause],
                Some("wf".into()),
                "r1",
            )
            .unwrap();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(JWT_HEADER_B64)
            .unwrap();
        assert_eq!(header, br#"{"alg":"EdDSA","typ":"JWT"}"#);
        let key = DecodingKey::from_ed_pem(signer.public_pem.as_bytes()).unwrap();
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&[audience_for("alice")]);
        v.set_issuer(&[HUB_ISSUER]);
        let claims = jsonwebtoken::decode::<OpClaims>(&token, &key, &v)
            .unwrap()
            .claims;
        assert_eq!(claims.sub, "bob");
        assert_eq!(claims.ops, vec![Operation::Pause]);
        assert_eq!(claims.workflow.as_deref(), Some("wf"));
        // One changed claim byte breaks the signature.
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&parts[1])
            .unwrap();
        let pos = payload.windows(3).position(|w| w == b"bob").unwrap();
        payload[pos] = b'c';
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload);
        assert!(jsonwebtoken::decode::<OpClaims>(&parts.join("."), &key, &v).is_err());
    }
}
