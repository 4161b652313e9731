//! The cryptography `jsonwebtoken` uses in Steward: Ed25519 (EdDSA) through
//! ed25519-dalek, and nothing else.
//!
//! Why not jsonwebtoken's own `rust_crypto` provider: it compiles in the `rsa` crate,
//! which carries an open advisory (RUSTSEC-2023-0071, a timing side channel), for an
//! algorithm Steward never accepts. Hub-signed tokens are EdDSA only (DESIGN.md), so this
//! provider builds signers and verifiers for EdDSA and refuses every other algorithm;
//! JWK helpers are not offered (Steward handles no JWKs).
//!
//! Call [`install`] before the first sign or verify; it is cheap and idempotent.
//! Behind the `jwt` feature, so the privileged helper built on its own
//! (`cargo build -p steward-spawner --no-default-features`) links no JWT code.

use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::{new_error, ErrorKind, Result};
use jsonwebtoken::signature::{Error, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};

struct EdSigner(SigningKey);

impl Signer<Vec<u8>> for EdSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, Error> {
        Ok(self.0.sign(msg).to_bytes().to_vec())
    }
}

impl JwtSigner for EdSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

struct EdVerifier(VerifyingKey);

impl Verifier<Vec<u8>> for EdVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), Error> {
        self.0.verify(msg, &Signature::from_slice(signature)?)
    }
}

impl JwtVerifier for EdVerifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

fn signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if *alg != Algorithm::EdDSA || key.family() != AlgorithmFamily::Ed {
        return Err(new_error(ErrorKind::InvalidAlgorithm));
    }
    let key = SigningKey::from_pkcs8_der(key.inner()).map_err(|_| ErrorKind::InvalidEddsaKey)?;
    Ok(Box::new(EdSigner(key)))
}

fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if *alg != Algorithm::EdDSA || key.family() != AlgorithmFamily::Ed {
        return Err(new_error(ErrorKind::InvalidAlgorithm));
    }
    let raw: &[u8; 32] = key
        .as_bytes()
        .get(..32)
        .and_then(|b| b.try_into().ok())
        .ok_or(ErrorKind::InvalidEddsaKey)?;
    let key = VerifyingKey::from_bytes(raw).map_err(|_| ErrorKind::InvalidEddsaKey)?;
    Ok(Box::new(EdVerifier(key)))
}

/// Ed25519 only; see the module doc.
pub static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    jwk_utils: JwkUtils::new_unimplemented(),
};

/// Makes [`PROVIDER`] jsonwebtoken's provider for this process (a no-op once done).
pub fn install() {
    let _ = PROVIDER.install_default();
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
    use jsonwebtoken::{decode, encode, Header, Validation};

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Claims {
        sub: String,
        exp: u64,
    }

    #[test]
    fn signs_and_verifies_eddsa_and_refuses_everything_else() {
        install();
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let enc = EncodingKey::from_ed_der(key.to_pkcs8_der().unwrap().as_bytes());
        let pem = key
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let dec = DecodingKey::from_ed_pem(pem.as_bytes()).unwrap();
        let claims = Claims {
            sub: "alice".into(),
            exp: 4_000_000_000,
        };
        let token = encode(&Header::new(Algorithm::EdDSA), &claims, &enc).unwrap();
        let back = decode::<Claims>(&token, &dec, &Validation::new(Algorithm::EdDSA)).unwrap();
        assert_eq!(back.claims, claims);
        // A flipped signature byte fails.
        let mut bad = token.clone().into_bytes();
        let last = bad.len() - 2;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert!(decode::<Claims>(&bad, &dec, &Validation::new(Algorithm::EdDSA)).is_err());
        // HMAC is not offered, whatever key: no algorithm confusion can be built on it.
        let hs = EncodingKey::from_secret(pem.as_bytes());
        assert!(encode(&Header::new(Algorithm::HS256), &claims, &hs).is_err());
    }
}
