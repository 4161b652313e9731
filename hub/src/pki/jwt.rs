//! Signing the short-lived JWT that accompanies every request the hub forwards.
//!
//! Ed25519 only: signing is microseconds (one token per operation is affordable) and a
//! single accepted algorithm leaves no room for algorithm confusion at the UI server.

use base64::Engine;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::{Signer, SigningKey};
use std::path::Path;
use steward_protocol::claims::{audience_for, OpClaims, HUB_ISSUER};
use steward_protocol::Operation;

/// Lifetime of a forwarded-request token: long enough for one hop, short enough that a
/// leaked token is useless almost at once.
pub const TOKEN_LIFETIME_SECS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Key(#[from] super::KeyError),
    #[error("signing a token: {0}")]
    Sign(#[from] serde_json::Error),
}

/// What one token lets `actor` do on `owner`'s server.
pub struct Grant<'a> {
    pub owner: &'a str,
    pub actor: &'a str,
    pub ops: Vec<Operation>,
    /// The one workflow it is for (None: any of the owner's, read-only uses).
    pub workflow: Option<String>,
    /// Ties the UI server's log line to the hub's audit record.
    pub request_id: &'a str,
}

impl<'a> Grant<'a> {
    /// Read access for a connection or a read request.
    pub fn read(
        owner: &'a str,
        actor: &'a str,
        workflow: Option<String>,
        request_id: &'a str,
    ) -> Self {
        Grant {
            owner,
            actor,
            ops: vec![Operation::Read],
            workflow,
            request_id,
        }
    }
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
        let signing_key = super::load_or_create_key(path)?;
        Self::from_key(signing_key).map_err(|message| {
            TokenError::Key(super::KeyError {
                path: path.display().to_string(),
                message,
            })
        })
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

    /// The one place the hub signs a forwarded-request token: `grant`, valid from now
    /// for [`TOKEN_LIFETIME_SECS`], single use (fresh `jti`).
    pub fn sign(&self, grant: Grant<'_>) -> Result<String, TokenError> {
        let now = jwt_now();
        let claims = OpClaims {
            iss: HUB_ISSUER.into(),
            aud: audience_for(grant.owner),
            sub: grant.actor.into(),
            iat: now,
            nbf: now.saturating_sub(5),
            exp: now + TOKEN_LIFETIME_SECS,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            ops: grant.ops,
            workflow: grant.workflow,
            rid: grant.request_id.into(),
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
fn jwt_now() -> u64 {
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
            .sign(Grant {
                owner: "alice",
                actor: "bob",
                ops: vec![Operation::Pause],
                workflow: Some("wf".into()),
                request_id: "r1",
            })
            .unwrap();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(JWT_HEADER_B64)
            .unwrap();
        assert_eq!(header, br#"{"alg":"EdDSA","typ":"JWT"}"#);
        steward_protocol::jwt_crypto::install();
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
