//! Verifying the hub-signed JWT that must accompany every request and operation.
//!
//! The checks, in order, each with its own refusal so logs and the caller see which
//! one failed: a Bearer token is present; its header names EdDSA (the only algorithm
//! accepted — `none`, HS*, RS*, ES* are refused before any key is touched); the Ed25519
//! signature verifies with the hub's key; `iss` is the hub; `aud` is this owner's
//! server; `exp` and `nbf` hold (with a small leeway for clock skew); `exp - iat` is at
//! most 60 s; `sub` names an actor; `ops` contains the operation; `workflow`, when the
//! token carries one, is the targeted workflow; and `jti` has never been seen — the
//! jti is recorded only once every other check passed, and forgotten after `exp`.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::collections::HashMap;
use std::sync::Mutex;
use steward_protocol::claims::{audience_for, OpClaims, HUB_ISSUER, MAX_TOKEN_LIFETIME_SECS};
use steward_protocol::Operation;

/// Clock skew tolerated on `exp`/`nbf`/`iat`, in seconds.
pub const LEEWAY_SECS: u64 = 5;
/// Replay cache bound: far above what 60-second tokens at any sane rate produce.
const MAX_REPLAY_ENTRIES: usize = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing Authorization: Bearer token")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("algorithm {0} refused: only EdDSA (Ed25519) tokens are accepted")]
    Algorithm(String),
    #[error("signature does not verify with the hub's key")]
    Signature,
    #[error("token expired (exp)")]
    Expired,
    #[error("token not yet valid (nbf)")]
    NotYetValid,
    #[error("wrong issuer (iss): expected {HUB_ISSUER:?}")]
    Issuer,
    #[error("wrong audience (aud): expected {0:?}")]
    Audience(String),
    #[error("missing claim {0}")]
    MissingClaim(String),
    #[error(
        "lifetime too long or inverted: exp - iat = {0} s, at most {MAX_TOKEN_LIFETIME_SECS} s"
    )]
    Lifetime(i64),
    #[error("issued in the future (iat)")]
    IssuedInFuture,
    #[error("empty subject (sub)")]
    Subject,
    #[error("empty token id (jti)")]
    EmptyJti,
    #[error("token replayed (jti already used)")]
    Replay,
    #[error("operation {0} is not in the token's scope (ops)")]
    Scope(Operation),
    #[error("token is for workflow {token:?}, not {target:?}")]
    Workflow { token: String, target: String },
}

impl AuthError {
    /// The check that failed, as a short machine-readable word.
    pub fn check(&self) -> &'static str {
        match self {
            AuthError::Missing => "authorization",
            AuthError::Malformed(_) => "format",
            AuthError::Algorithm(_) => "alg",
            AuthError::Signature => "signature",
            AuthError::Expired => "exp",
            AuthError::NotYetValid => "nbf",
            AuthError::Issuer => "iss",
            AuthError::Audience(_) => "aud",
            AuthError::MissingClaim(_) => "claims",
            AuthError::Lifetime(_) => "lifetime",
            AuthError::IssuedInFuture => "iat",
            AuthError::Subject => "sub",
            AuthError::EmptyJti | AuthError::Replay => "jti",
            AuthError::Scope(_) => "ops",
            AuthError::Workflow { .. } => "workflow",
        }
    }

    /// 403 when the token is genuine but does not cover this; 401 otherwise.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, AuthError::Scope(_) | AuthError::Workflow { .. })
    }
}

pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    audience: String,
    seen: Mutex<HashMap<String, u64>>,
}

impl Verifier {
    pub fn new(owner: &str, public_key_pem: &str) -> anyhow::Result<Verifier> {
        steward_protocol::jwt_crypto::install();
        let key = DecodingKey::from_ed_pem(public_key_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("jwt_public_key_pem is not an Ed25519 public key: {e}"))?;
        let audience = audience_for(owner);
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_issuer(&[HUB_ISSUER]);
        validation.set_audience(&[audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        // exp and nbf are checked in `verify_at` against its `now`, not here against the
        // system clock, so every time check uses one clock (and tests can set it).
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = LEEWAY_SECS;
        Ok(Verifier {
            key,
            validation,
            audience,
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// Extracts the token from an `Authorization` header value.
    pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
        let h = header.ok_or(AuthError::Missing)?;
        let (scheme, token) = h.trim().split_once(' ').ok_or(AuthError::Missing)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::Missing);
        }
        Ok(token.trim())
    }

    /// Verifies `token` for `op`, on `workflow` when the request targets one.
    pub fn verify(
        &self,
        token: &str,
        op: Operation,
        workflow: Option<&str>,
    ) -> Result<OpClaims, AuthError> {
        self.verify_at(token, op, workflow, crate::now_secs())
    }

    pub fn verify_at(
        &self,
        token: &str,
        op: Operation,
        workflow: Option<&str>,
        now: u64,
    ) -> Result<OpClaims, AuthError> {
        if token.len() > 16 * 1024 {
            return Err(AuthError::Malformed("token longer than 16 KiB".into()));
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Algorithm(format!("{:?}", header.alg)));
        }
        let data = jsonwebtoken::decode::<OpClaims>(token, &self.key, &self.validation)
            .map_err(|e| self.map_error(e.into_kind()))?;
        let c = data.claims;
        if c.exp.saturating_add(LEEWAY_SECS) < now {
            return Err(AuthError::Expired);
        }
        if c.nbf > now.saturating_add(LEEWAY_SECS) {
            return Err(AuthError::NotYetValid);
        }
        // In i128: `exp` and `iat` are any u64 the signer chose, and their difference in
        // i64 overflows (exp = 2^63, iat = now: a panic in a checked build).
        let lifetime = (i128::from(c.exp) - i128::from(c.iat))
            .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        if lifetime < 0 || lifetime as u64 > MAX_TOKEN_LIFETIME_SECS {
            return Err(AuthError::Lifetime(lifetime));
        }
        if c.iat > now.saturating_add(LEEWAY_SECS) {
            return Err(AuthError::IssuedInFuture);
        }
        if c.sub.trim().is_empty() {
            return Err(AuthError::Subject);
        }
        if c.jti.is_empty() {
            return Err(AuthError::EmptyJti);
        }
        if !c.ops.contains(&op) {
            return Err(AuthError::Scope(op));
        }
        if let (Some(token_wf), Some(target)) = (&c.workflow, workflow) {
            if token_wf != target {
                return Err(AuthError::Workflow {
                    token: token_wf.clone(),
                    target: target.to_string(),
                });
            }
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains_key(&c.jti) {
            return Err(AuthError::Replay);
        }
        if seen.len() >= MAX_REPLAY_ENTRIES / 2 {
            seen.retain(|_, exp| exp.saturating_add(LEEWAY_SECS) >= now);
        }
        if seen.len() >= MAX_REPLAY_ENTRIES {
            // Never forget an unexpired jti; refusing is the safe side.
            return Err(AuthError::Replay);
        }
        seen.insert(c.jti.clone(), c.exp);
        Ok(c)
    }

    fn map_error(&self, kind: ErrorKind) -> AuthError {
        match kind {
            ErrorKind::InvalidSignature => AuthError::Signature,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::Issuer,
            ErrorKind::InvalidAudience => AuthError::Audience(self.audience.clone()),
            ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim(c),
            ErrorKind::InvalidAlgorithm => AuthError::Algorithm("mismatch".into()),
            other => AuthError::Malformed(format!("{other:?}")),
        }
    }

    /// Drops jtis whose tokens have expired (called periodically).
    pub fn prune(&self, now: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, exp| exp.saturating_add(LEEWAY_SECS) >= now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
    use jsonwebtoken::{EncodingKey, Header};
    use steward_protocol::claims::OpClaims;

    const NOW: u64 = 1_900_000_000;

    fn sign(c: &OpClaims) -> (Verifier, String) {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let pem = key
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let enc = EncodingKey::from_ed_der(key.to_pkcs8_der().unwrap().as_bytes());
        steward_protocol::jwt_crypto::install();
        let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), c, &enc).unwrap();
        (Verifier::new("alice", &pem).unwrap(), token)
    }

    fn claims(iat: u64, exp: u64) -> OpClaims {
        OpClaims {
            iss: HUB_ISSUER.into(),
            aud: audience_for("alice"),
            sub: "bob".into(),
            iat,
            nbf: NOW,
            exp,
            jti: "j".into(),
            ops: vec![Operation::Pause],
            workflow: None,
            rid: String::new(),
        }
    }

    #[test]
    fn lifetimes_beyond_i64_are_refused_not_a_panic() {
        for (iat, exp) in [(NOW, 1 << 63), (NOW, u64::MAX), (u64::MAX, NOW + 10)] {
            let (v, t) = sign(&claims(iat, exp));
            let e = v.verify_at(&t, Operation::Pause, None, NOW).unwrap_err();
            assert!(
                matches!(e, AuthError::Lifetime(_) | AuthError::IssuedInFuture),
                "iat {iat} exp {exp}: {e}"
            );
        }
        let (v, t) = sign(&claims(NOW, NOW + 30));
        v.verify_at(&t, Operation::Pause, None, NOW).unwrap();
    }

    #[test]
    fn exp_and_nbf_are_judged_by_the_callers_clock() {
        let (v, t) = sign(&claims(NOW, NOW + 30));
        assert_eq!(
            v.verify_at(&t, Operation::Pause, None, NOW + 36),
            Err(AuthError::Expired)
        );
        assert_eq!(
            v.verify_at(&t, Operation::Pause, None, NOW - 6),
            Err(AuthError::NotYetValid)
        );
        assert!(v.verify_at(&t, Operation::Pause, None, NOW + 34).is_ok());
    }
}
