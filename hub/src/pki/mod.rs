//! The hub's keys and what it signs with them: the CA that issues each UI server's
//! certificate and the hub's own TLS identities ([`ca`]), the Ed25519 JWT that goes
//! with every forwarded request ([`jwt`]), and the separate key that signs audit
//! checkpoints ([`audit_key`]), so either key can be rotated alone.
//!
//! This module must not decide what a token grants (the caller says) nor do network
//! I/O.

pub mod ca;
pub mod jwt;

use crate::util::fsutil;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use std::path::Path;

/// File name (in `data_dir`) of the key that signs forwarded-request JWTs.
pub const JWT_KEY_FILE: &str = "jwt-ed25519.der";
/// File name (in `data_dir`) of the key that signs audit checkpoints and `audit.head`.
pub const AUDIT_KEY_FILE: &str = "audit-ed25519.der";

#[derive(Debug, thiserror::Error)]
#[error("signing key {path}: {message}")]
pub struct KeyError {
    pub path: String,
    pub message: String,
}

/// Loads an Ed25519 key (PKCS#8 DER) from `path`, creating it (0600) when missing.
/// A hub upgraded from one key for both uses finds its audit key missing and makes one
/// here: checkpoints from then on are signed with it (docs/audit.md, key rotation).
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, KeyError> {
    let key_err = |message: String| KeyError {
        path: path.display().to_string(),
        message,
    };
    if path.exists() {
        return load_key(path);
    }
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let der = key.to_pkcs8_der().map_err(|e| key_err(e.to_string()))?;
    fsutil::write_private(path, der.as_bytes()).map_err(|e| key_err(e.to_string()))?;
    Ok(key)
}

/// Loads an existing Ed25519 key (PKCS#8 DER); never creates one (for work that must
/// sign with the key the hub started with, not a new one if the file went away).
pub fn load_key(path: &Path) -> Result<SigningKey, KeyError> {
    let key_err = |message: String| KeyError {
        path: path.display().to_string(),
        message,
    };
    let der = std::fs::read(path).map_err(|e| key_err(e.to_string()))?;
    SigningKey::from_pkcs8_der(&der).map_err(|e| key_err(e.to_string()))
}

/// The audit checkpoint key of a hub whose data lives in `data_dir`.
pub fn audit_key(data_dir: &Path) -> Result<SigningKey, KeyError> {
    load_or_create_key(&data_dir.join(AUDIT_KEY_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_keys_are_separate_files_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let jwt = jwt::TokenSigner::load_or_create(&dir.path().join(JWT_KEY_FILE)).unwrap();
        let audit = audit_key(dir.path()).unwrap();
        assert_ne!(jwt.signing_key.to_bytes(), audit.to_bytes());
        // A deployment that only had the JWT key gets an audit key and keeps the JWT key.
        std::fs::remove_file(dir.path().join(AUDIT_KEY_FILE)).unwrap();
        let again = jwt::TokenSigner::load_or_create(&dir.path().join(JWT_KEY_FILE)).unwrap();
        assert_eq!(again.signing_key.to_bytes(), jwt.signing_key.to_bytes());
        let new_audit = audit_key(dir.path()).unwrap();
        assert_ne!(new_audit.to_bytes(), audit.to_bytes());
        assert_eq!(
            audit_key(dir.path()).unwrap().to_bytes(),
            new_audit.to_bytes()
        );
    }
}
