//! Small helpers that know nothing of the hub's subsystems: private files written by a
//! root process, one async lock per name, random tokens.

pub mod fsutil;
pub mod keyed;

use rand::RngCore;

/// 256 random bits, hex: session ids, CSRF tokens, registration tokens.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}
