//! The UI server's token check (`steward_uiserver::auth::Verifier`) with a fixed test
//! key. Input byte 0 picks the mode: raw token text, or a header and claims (split at
//! the first NUL) that the fuzzer writes and the test key signs — so the checks after
//! the signature (lifetime, iat, sub, jti, scope, workflow, replay) see hostile claims
//! too. Never a panic; an accepted token is genuinely in scope, for this owner, short
//! lived, and refused the second time.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use steward_protocol::claims::MAX_TOKEN_LIFETIME_SECS;
use steward_protocol::Operation;
use steward_uiserver::auth::{Verifier, LEEWAY_SECS};

/// A fixed "now" (2030-03-17), so a corpus entry means the same on every run.
const NOW: u64 = 1_900_000_000;

fn key() -> &'static (SigningKey, String) {
    static K: OnceLock<(SigningKey, String)> = OnceLock::new();
    K.get_or_init(|| {
        let k = SigningKey::from_bytes(&[7u8; 32]);
        let pem = k
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap_or_else(|e| panic!("{e}"));
        (k, pem)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (k, pem) = key();
    let token = if mode & 1 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let (header, claims) = match rest.iter().position(|&b| b == 0) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (&br#"{"alg":"EdDSA","typ":"JWT"}"#[..], rest),
        };
        let signing_input = format!("{}.{}", B64.encode(header), B64.encode(claims));
        let sig = k.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(sig.to_bytes()))
    };
    let verifier = Verifier::new("alice", pem).unwrap_or_else(|e| panic!("{e}"));
    let op = Operation::ALL[usize::from((mode >> 1) & 0x3f) % Operation::ALL.len()];
    let workflow = (mode & 0x80 != 0).then_some("atmos");
    if let Ok(c) = verifier.verify_at(&token, op, workflow, NOW) {
        assert!(c.ops.contains(&op));
        assert_eq!(c.aud, "uiserver:alice");
        assert!(c.exp >= c.iat && c.exp - c.iat <= MAX_TOKEN_LIFETIME_SECS);
        assert!(c.exp + LEEWAY_SECS >= NOW && c.iat <= NOW + LEEWAY_SECS);
        assert!(
            verifier.verify_at(&token, op, workflow, NOW).is_err(),
            "replay accepted"
        );
    }
});
