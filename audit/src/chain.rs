//! The hash chain: what a record's hash is, how `seq`/`prev`/`time`/`kind` are read
//! from a line without decoding it, and what a checkpoint signs.
//!
//! Hand-written on purpose: `verify` must hash a few hundred MB/s, so it looks at the
//! fixed canonical prefix (`{"seq":N,"prev":"<64 hex>","time":"...","kind":"..."`)
//! instead of running a JSON decoder over every line just to find two fields.

use crate::record::RecordKind;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub(crate) type Hash = [u8; 32];

/// `prev` of the very first record.
pub(crate) const GENESIS: Hash = [0u8; 32];

pub(crate) fn hash_line(line: &[u8]) -> Hash {
    Sha256::digest(line).into()
}

pub(crate) fn hex32(h: &Hash) -> String {
    hex::encode(h)
}

/// Lower-case hex digit value, or 0xff. A table because verify decodes a `prev` per line.
const HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// 64 lower-case hex digits → 32 bytes (upper case is not canonical, so refused).
pub(crate) fn parse_hex32(s: &[u8]) -> Option<Hash> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let hi = HEX[pair[0] as usize];
        let lo = HEX[pair[1] as usize];
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 0x0f);
    }
    (bad & 0xf0 == 0).then_some(out)
}

/// The chain fields of one line, read from its canonical prefix.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineHead<'a> {
    pub seq: u64,
    pub prev: Hash,
    pub time: &'a [u8],
    pub kind: RecordKind,
    /// The hub named right after `kind`, if the record names one.
    pub hub: Option<&'a [u8]>,
}

const P_SEQ: &[u8] = b"{\"seq\":";
const P_PREV: &[u8] = b",\"prev\":\"";
const P_TIME: &[u8] = b"\",\"time\":\"";
const P_KIND: &[u8] = b"\",\"kind\":\"";
const P_HUB: &[u8] = b"\",\"hub\":\"";

/// Reads the canonical prefix. The error says what is wrong, for `file:line: ...`.
pub(crate) fn parse_head(line: &[u8]) -> Result<LineHead<'_>, &'static str> {
    let rest = line
        .strip_prefix(P_SEQ)
        .ok_or("not an audit record (expected a line starting with {\"seq\":)")?;
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 19 || (digits > 1 && rest[0] == b'0') {
        return Err("not an audit record: bad sequence number");
    }
    let seq: u64 = std::str::from_utf8(&rest[..digits])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("not an audit record: bad sequence number")?;
    let rest = rest[digits..]
        .strip_prefix(P_PREV)
        .ok_or("not an audit record: \"prev\" must follow \"seq\"")?;
    if rest.len() < 64 {
        return Err("not an audit record: \"prev\" is not a SHA-256 hex digest");
    }
    let prev = parse_hex32(&rest[..64])
        .ok_or("not an audit record: \"prev\" is not a SHA-256 hex digest")?;
    let rest = rest[64..]
        .strip_prefix(P_TIME)
        .ok_or("not an audit record: \"time\" must follow \"prev\"")?;
    let tlen =
        memchr::memchr2(b'"', b'\\', rest).ok_or("not an audit record: unterminated time")?;
    if rest[tlen] != b'"' {
        return Err("not an audit record: time is not in canonical form");
    }
    let time = &rest[..tlen];
    let rest = rest[tlen..]
        .strip_prefix(P_KIND)
        .ok_or("not an audit record: \"kind\" must follow \"time\"")?;
    let klen = memchr::memchr(b'"', rest).ok_or("not an audit record: unterminated kind")?;
    let kind = RecordKind::from_bytes(&rest[..klen]).ok_or("not an audit record: unknown kind")?;
    let hub = match rest[klen..].strip_prefix(P_HUB) {
        Some(rest) => {
            let hlen = memchr::memchr2(b'"', b'\\', rest)
                .ok_or("not an audit record: unterminated hub")?;
            if rest[hlen] != b'"' || hlen == 0 {
                return Err("not an audit record: hub is not a valid hub id");
            }
            Some(&rest[..hlen])
        }
        None => None,
    };
    if line.last() != Some(&b'}') {
        return Err("not an audit record: line does not end with }");
    }
    Ok(LineHead {
        seq,
        prev,
        time,
        kind,
        hub,
    })
}

/// What a checkpoint (and `audit.head`) signs: every record up to `anchor_seq`,
/// whose line hashes to `anchor_hash`. Domain-separated so the key's signature
/// cannot be replayed as anything else.
pub(crate) fn anchor_message(domain: Domain, anchor_seq: u64, anchor_hash: &Hash) -> Vec<u8> {
    let what = match domain {
        Domain::Checkpoint => "checkpoint",
        Domain::Head => "head",
    };
    format!(
        "steward-audit {what} v1\nseq {anchor_seq}\nsha256 {}\n",
        hex32(anchor_hash)
    )
    .into_bytes()
}

/// Which kind of anchor a signature is for (checkpoint records and `audit.head` are
/// signed under different labels so neither can be passed off as the other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Domain {
    Checkpoint,
    Head,
}

pub(crate) fn sign_anchor(
    key: &SigningKey,
    domain: Domain,
    anchor_seq: u64,
    anchor_hash: &Hash,
) -> String {
    let sig = key.sign(&anchor_message(domain, anchor_seq, anchor_hash));
    base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())
}

pub(crate) fn check_anchor_sig(
    key: &VerifyingKey,
    domain: Domain,
    anchor_seq: u64,
    anchor_hash: &Hash,
    sig_b64: &str,
) -> bool {
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(sig_b64) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(&bytes) else {
        return false;
    };
    key.verify(&anchor_message(domain, anchor_seq, anchor_hash), &sig)
        .is_ok()
}

/// The checkpoint fields kept in a checkpoint record's `extra`, and in `audit.head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Anchor {
    /// Last record covered (the record just before the checkpoint).
    pub anchor_seq: u64,
    /// SHA-256 of that record's line.
    pub anchor_hash: String,
    /// Ed25519 signature (base64) over [`anchor_message`]; absent without a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
    /// Hex of the verifying key that signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Contents of `audit.head`: the newest checkpoint record's own `seq` and line hash
/// (so the head anchors everything up to and including that checkpoint), signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HeadFile {
    pub seq: u64,
    pub hash: String,
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_canonical_prefix_and_rejects_junk() {
        let line = format!(
            "{{\"seq\":12,\"prev\":\"{}\",\"time\":\"2026-01-01T00:00:00.000000Z\",\"kind\":\"outcome\",\"event\":\"op\"}}",
            "0f".repeat(32)
        );
        let h = parse_head(line.as_bytes()).unwrap();
        assert_eq!(h.seq, 12);
        assert_eq!(h.prev, [0x0f; 32]);
        assert_eq!(h.kind, RecordKind::Outcome);
        assert_eq!(h.time, b"2026-01-01T00:00:00.000000Z");
        for bad in [
            "",
            "{",
            "{\"seq\":",
            "{\"seq\":01,\"prev\":\"\"}",
            "{\"seq\":1,\"prev\":\"zz\"}",
            "\u{0}\u{1}garbage",
            "{\"seq\":99999999999999999999,\"prev\":\"00\"}",
        ] {
            assert!(parse_head(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let upper = line.replace(&"0f".repeat(32), &"0F".repeat(32));
        assert!(parse_head(upper.as_bytes()).is_err());
        assert_eq!(h.hub, None, "a record of an old log names no hub");
        let named = line.replace(
            "\"kind\":\"outcome\"",
            "\"kind\":\"outcome\",\"hub\":\"hub-a\"",
        );
        assert_eq!(
            parse_head(named.as_bytes()).unwrap().hub,
            Some(&b"hub-a"[..])
        );
        for bad in ["\"hub\":\"\"", "\"hub\":\"a\\\"b\""] {
            let l = line.replace(
                "\"kind\":\"outcome\"",
                &format!("\"kind\":\"outcome\",{bad}"),
            );
            assert!(parse_head(l.as_bytes()).is_err(), "{l}");
        }
    }
}
