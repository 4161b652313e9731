//! Several hubs, one deployment (docs/ha.md): each hub keeps its own chain and names
//! itself in every record (`hub`, see `AuditConfig::hub_id`); each hub publishes its
//! chain's durable head (hub, seq, line hash) to the shared store; the leader signs a
//! [`DeploymentCheckpoint`] over every hub's latest head. A hub's chain that ends
//! before its head in the checkpoint had its tail deleted, even if whoever did it also
//! deleted that hub's `audit.head` files: the checkpoint lives in the database, signed.
//!
//! This module owns the checkpoint (its JSON form and the exact text that is signed),
//! how the leader builds the next one from the last one ([`DeploymentCheckpoint::next`]:
//! never forgetting a hub, never moving a head back), and [`verify_deployment`], which
//! holds every chain to it. It must not talk to the store: the hub reads and writes
//! the checkpoint, this module only says what it is and whether the chains agree.

use crate::chain::{hex32, parse_head, parse_hex32, Hash};
use crate::error::VerifyError;
use crate::record::is_canonical_time;
use crate::scan::audit_files;
use crate::verify::{verify_probing, VerifyReport};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// The longest hub id (as `[database] hub_id` allows).
pub const MAX_HUB_ID: usize = 64;

/// A hub id that can name a chain: 1 to 64 of `[A-Za-z0-9._-]`. Narrow on purpose: it
/// goes into every record's canonical prefix without escaping, and into the signed
/// checkpoint text, where a space or newline could make two checkpoints read alike.
pub fn valid_hub_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_HUB_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// One hub's chain head: the newest record it had flushed when it published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub hub: String,
    pub seq: u64,
    /// SHA-256 (hex) of that record's line.
    pub hash: String,
}

/// Version of the checkpoint format (and of the signed text).
const VERSION: u32 = 1;

/// The leader's signed statement of every hub's chain head, as stored in the
/// database (`audit_checkpoint.body`) and read by `steward audit verify --deployment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentCheckpoint {
    pub version: u32,
    /// The hub that led, and its fencing epoch, when this was written.
    pub leader: String,
    pub epoch: i64,
    /// When it was written (canonical UTC, microseconds).
    pub time: String,
    /// One per hub, sorted by hub id.
    pub heads: Vec<ChainHead>,
    /// Hex of the verifying key that signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Ed25519 signature (base64) over [`DeploymentCheckpoint::message`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

/// The checkpoint itself cannot be used: malformed, or its signature does not hold.
/// `from` names where it was read (a file, the database).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("deployment checkpoint {from}: {what}")]
pub struct CheckpointError {
    pub from: String,
    pub what: String,
}

impl CheckpointError {
    fn new(from: &str, what: impl Into<String>) -> Self {
        CheckpointError {
            from: from.to_string(),
            what: what.into(),
        }
    }
}

/// Why a deployment's chains do not agree with its checkpoint. Every variant names
/// the hub (or the directory) and says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeploymentError {
    /// A directory given is not there or holds no chain.
    #[error("{}: {what}", dir.display())]
    Dir { dir: PathBuf, what: String },
    /// A hub's chain does not verify on its own.
    #[error("hub {hub}: its chain in {} does not verify: {err}", dir.display())]
    Chain {
        hub: String,
        dir: PathBuf,
        err: VerifyError,
    },
    /// A hub's chain ends before the head the checkpoint signed for it.
    #[error("hub {hub}: the chain in {} ends at seq {ends}, but the deployment checkpoint ({at}) signed its head at seq {head_seq}: records were cut off the end of hub {hub}'s log", dir.display())]
    Truncated {
        hub: String,
        dir: PathBuf,
        ends: u64,
        head_seq: u64,
        at: String,
    },
    /// The record at the checkpointed seq is not the one the checkpoint signed.
    #[error("hub {hub}: the record at seq {seq} in {} is not the one the deployment checkpoint ({at}) signed (expected line hash {expected}, found {found}): hub {hub}'s log was altered or replaced", dir.display())]
    Mismatch {
        hub: String,
        dir: PathBuf,
        seq: u64,
        expected: String,
        found: String,
        at: String,
    },
    /// The checkpoint has a head for a hub whose chain was not given.
    #[error("hub {hub}: the deployment checkpoint ({at}) signed its chain up to seq {seq}, but no directory given holds a chain of hub {hub}: give that hub's audit directory (if none is left, its log was deleted)")]
    MissingChain { hub: String, seq: u64, at: String },
    /// Two directories hold a chain naming the same hub.
    #[error("hub {hub}: both {} and {} hold a chain of this hub: give each hub's audit directory once (a copy of a log is not a second hub)", first.display(), second.display())]
    DuplicateChain {
        hub: String,
        first: PathBuf,
        second: PathBuf,
    },
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl DeploymentCheckpoint {
    /// The exact bytes that are signed: a fixed, line-based text (not the JSON, whose
    /// form a reader need not reproduce), domain-separated from the per-chain
    /// checkpoints and heads so no signature can stand in for another.
    pub fn message(&self) -> Vec<u8> {
        let mut m = format!(
            "steward-audit deployment checkpoint v{}\nleader {}\nepoch {}\ntime {}\n",
            self.version, self.leader, self.epoch, self.time
        );
        for h in &self.heads {
            m.push_str(&format!("head {} {} {}\n", h.hub, h.seq, h.hash));
        }
        m.into_bytes()
    }

    /// The checkpoint over `heads` (any order; one per hub), unsigned.
    pub fn new(leader: &str, epoch: i64, time: &str, mut heads: Vec<ChainHead>) -> Self {
        heads.sort_by(|a, b| a.hub.cmp(&b.hub));
        DeploymentCheckpoint {
            version: VERSION,
            leader: leader.to_string(),
            epoch,
            time: time.to_string(),
            heads,
            key: None,
            sig: None,
        }
    }

    /// Signs it with the audit key the hubs share.
    pub fn sign(&mut self, key: &SigningKey) {
        self.key = Some(hex::encode(key.verifying_key().as_bytes()));
        self.sig = Some(b64().encode(key.sign(&self.message()).to_bytes()));
    }

    pub fn to_json(&self) -> String {
        // Plain strings and numbers: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads and checks the form (not the signature): `from` names where it came from
    /// for the error (a file, or the database).
    pub fn from_json(text: &str, from: &str) -> Result<Self, CheckpointError> {
        let cp: DeploymentCheckpoint = serde_json::from_str(text.trim())
            .map_err(|e| CheckpointError::new(from, format!("not a deployment checkpoint: {e}")))?;
        cp.check_form().map_err(|w| CheckpointError::new(from, w))?;
        Ok(cp)
    }

    /// Every field as the writer makes it, so that the signed text is unambiguous.
    fn check_form(&self) -> Result<(), String> {
        if self.version != VERSION {
            return Err(format!(
                "version {} is not one this steward reads ({VERSION}): verify with the steward that wrote it",
                self.version
            ));
        }
        if !valid_hub_id(&self.leader) {
            return Err(format!("leader {:?} is not a valid hub id", self.leader));
        }
        if !is_canonical_time(&self.time) {
            return Err(format!("time {:?} is not in canonical form", self.time));
        }
        for (i, h) in self.heads.iter().enumerate() {
            if !valid_hub_id(&h.hub) {
                return Err(format!("heads[{i}].hub {:?} is not a valid hub id", h.hub));
            }
            if parse_hex32(h.hash.as_bytes()).is_none() {
                return Err(format!(
                    "heads[{i}].hash of hub {} is not a SHA-256 hex digest",
                    h.hub
                ));
            }
            if i > 0 && self.heads[i - 1].hub >= h.hub {
                return Err(format!(
                    "heads[{i}]: hub {} is listed twice or out of order",
                    h.hub
                ));
            }
        }
        Ok(())
    }

    /// Checks the signature against `key` (the audit key of the deployment).
    pub fn check_signature(&self, key: &VerifyingKey, from: &str) -> Result<(), CheckpointError> {
        let err = |w: &str| CheckpointError::new(from, w);
        if let Some(k) = &self.key {
            if *k != hex::encode(key.as_bytes()) {
                return Err(CheckpointError::new(
                    from,
                    format!("signed by another key ({k}) than the one given: is this the deployment's audit key?"),
                ));
            }
        }
        let sig = self
            .sig
            .as_deref()
            .ok_or_else(|| err("not signed; a deployment checkpoint must be"))?;
        let sig = b64()
            .decode(sig)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or_else(|| err("sig is not a base64 Ed25519 signature"))?;
        key.verify(&self.message(), &sig)
            .map_err(|_| err("signature is not valid for this key: forged or altered"))
    }

    /// The head it signed for `hub`.
    pub fn head(&self, hub: &str) -> Option<&ChainHead> {
        self.heads.iter().find(|h| h.hub == hub)
    }

    /// The leader's next checkpoint: every hub of `prev` (already checked by the
    /// caller) and every head `published` now, each at the later seq, so a hub is never
    /// forgotten and a head never moves back even if the store's rows were rolled back.
    /// A published head behind `prev`, or at the same seq with another hash, keeps the
    /// head `prev` signed; each such conflict is returned for the caller to log (it
    /// means a chain was cut or replaced, which verify will name).
    pub fn next(
        prev: Option<&DeploymentCheckpoint>,
        published: &[ChainHead],
        leader: &str,
        epoch: i64,
        time: &str,
    ) -> (DeploymentCheckpoint, Vec<String>) {
        let mut heads: BTreeMap<String, ChainHead> = prev
            .map(|p| p.heads.iter().map(|h| (h.hub.clone(), h.clone())).collect())
            .unwrap_or_default();
        let mut conflicts = Vec::new();
        for h in published {
            if !valid_hub_id(&h.hub) || parse_hex32(h.hash.as_bytes()).is_none() {
                conflicts.push(format!(
                    "hub {:?}: the published head is malformed (seq {}, hash {:?}); left out",
                    h.hub, h.seq, h.hash
                ));
                continue;
            }
            match heads.get(&h.hub) {
                Some(old) if old.seq > h.seq => conflicts.push(format!(
                    "hub {}: published head seq {} is behind the signed seq {}: its chain was cut or replaced",
                    h.hub, h.seq, old.seq
                )),
                Some(old) if old.seq == h.seq && old.hash != h.hash => conflicts.push(format!(
                    "hub {}: published head at seq {} has hash {}, the signed one {}: its chain was replaced",
                    h.hub, h.seq, h.hash, old.hash
                )),
                _ => {
                    heads.insert(h.hub.clone(), h.clone());
                }
            }
        }
        (
            DeploymentCheckpoint::new(leader, epoch, time, heads.into_values().collect()),
            conflicts,
        )
    }

    /// Whether `other` signs the same heads (the leader writes again only on a change).
    pub fn same_heads(&self, other: &DeploymentCheckpoint) -> bool {
        self.heads == other.heads
    }

    /// `leader L, epoch E, TIME`: how errors name the checkpoint.
    fn label(&self) -> String {
        format!(
            "written {} by leader {} at epoch {}",
            self.time, self.leader, self.epoch
        )
    }
}

/// One directory's chain, as verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCheck {
    pub dir: PathBuf,
    /// The chain's own verification (None when it failed: see the failures).
    pub report: Option<VerifyReport>,
    /// The head the checkpoint signed for this chain's hub, when it matched.
    pub matched: Option<ChainHead>,
}

/// What [`verify_deployment`] found. The deployment is intact only when `failures` is
/// empty; `notes` are what an operator should know but is not a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentReport {
    pub checkpoint: DeploymentCheckpoint,
    pub chains: Vec<ChainCheck>,
    pub failures: Vec<DeploymentError>,
    pub notes: Vec<String>,
}

impl DeploymentReport {
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for DeploymentReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.chains {
            if let Some(r) = &c.report {
                write!(f, "{}: {r}", c.dir.display())?;
                if let Some(h) = &c.matched {
                    write!(
                        f,
                        "; reaches hub {}'s checkpointed head (seq {})",
                        h.hub, h.seq
                    )?;
                }
                writeln!(f)?;
            }
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        let cp = &self.checkpoint;
        if self.is_ok() {
            write!(
                f,
                "OK: deployment checkpoint {} (signature valid) covers {} hub(s); every chain reaches its signed head",
                cp.label(),
                cp.heads.len()
            )
        } else {
            write!(
                f,
                "FAILED: {} problem(s) against the deployment checkpoint {}",
                self.failures.len(),
                cp.label()
            )
        }
    }
}

/// The hub a directory's chain names, read from the first line of its newest file:
/// only to name the hub when the chain itself does not verify.
fn hub_hint(dir: &Path) -> Option<String> {
    let files = audit_files(dir).ok()?;
    for file in files.iter().rev() {
        let f = std::fs::File::open(file).ok()?;
        let mut line = Vec::new();
        BufReader::new(f).read_until(b'\n', &mut line).ok()?;
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if let Some(hub) = parse_head(&line).ok().and_then(|h| h.hub) {
            return Some(String::from_utf8_lossy(hub).into_owned());
        }
    }
    None
}

/// Verifies every chain in `dirs` (one audit directory per hub), then holds each to
/// the head `checkpoint` signed for its hub: `from` names where the checkpoint came
/// from. Fails at once (Err) if the checkpoint's signature does not hold for `key`;
/// otherwise checks everything and lists every problem in the report.
pub fn verify_deployment(
    checkpoint: &DeploymentCheckpoint,
    from: &str,
    dirs: &[PathBuf],
    key: &VerifyingKey,
) -> Result<DeploymentReport, CheckpointError> {
    checkpoint
        .check_form()
        .map_err(|w| CheckpointError::new(from, w))?;
    checkpoint.check_signature(key, from)?;
    let at = checkpoint.label();
    let mut report = DeploymentReport {
        checkpoint: checkpoint.clone(),
        chains: Vec::new(),
        failures: Vec::new(),
        notes: Vec::new(),
    };
    // Every signed seq is looked up in every chain: a handful of numbers, and which
    // directory is whose is only known once its records are read.
    let probes: Vec<u64> = checkpoint.heads.iter().map(|h| h.seq).collect();
    // hub -> (index into report.chains, line hashes found at the probed seqs)
    let mut owners: BTreeMap<String, (usize, Vec<(u64, Hash)>)> = BTreeMap::new();
    for dir in dirs {
        if !dir.is_dir() {
            report.failures.push(DeploymentError::Dir {
                dir: dir.clone(),
                what: "not a directory (missing?): give each hub's audit directory".into(),
            });
            continue;
        }
        let verified = audit_files(dir)
            .map_err(|e| VerifyError::file(dir, e.to_string()))
            .and_then(|files| {
                if files.is_empty() {
                    Err(VerifyError::file(dir, "no audit files here"))
                } else {
                    verify_probing(&files, Some(key), None, &probes)
                }
            });
        let (chain, probed) = match verified {
            Ok(v) => v,
            Err(err) => {
                report.failures.push(DeploymentError::Chain {
                    hub: hub_hint(dir).unwrap_or_else(|| "(unnamed)".into()),
                    dir: dir.clone(),
                    err,
                });
                report.chains.push(ChainCheck {
                    dir: dir.clone(),
                    report: None,
                    matched: None,
                });
                continue;
            }
        };
        if chain.hubs.is_empty() {
            report.notes.push(format!(
                "{}: its records name no hub (written before hubs named their chains, or without a hub id): verified on its own only",
                dir.display()
            ));
        }
        let idx = report.chains.len();
        for hub in &chain.hubs {
            if let Some((other, _)) = owners.get(hub) {
                report.failures.push(DeploymentError::DuplicateChain {
                    hub: hub.clone(),
                    first: report.chains[*other].dir.clone(),
                    second: dir.clone(),
                });
            } else {
                owners.insert(hub.clone(), (idx, probed.clone()));
            }
        }
        report.chains.push(ChainCheck {
            dir: dir.clone(),
            report: Some(chain),
            matched: None,
        });
    }
    for head in &checkpoint.heads {
        let Some((idx, probed)) = owners.get(&head.hub) else {
            // A chain that failed on its own is reported by name already.
            let failed_alone = report
                .failures
                .iter()
                .any(|f| matches!(f, DeploymentError::Chain { hub, .. } if *hub == head.hub));
            if !failed_alone {
                report.failures.push(DeploymentError::MissingChain {
                    hub: head.hub.clone(),
                    seq: head.seq,
                    at: at.clone(),
                });
            }
            continue;
        };
        let chain = &mut report.chains[*idx];
        let Some(r) = &chain.report else { continue };
        let ends = r.last_seq.unwrap_or(0);
        let starts = r.first_seq.unwrap_or(1);
        if ends < head.seq {
            report.failures.push(DeploymentError::Truncated {
                hub: head.hub.clone(),
                dir: chain.dir.clone(),
                ends,
                head_seq: head.seq,
                at: at.clone(),
            });
            continue;
        }
        if head.seq < starts {
            report.notes.push(format!(
                "hub {}: the signed head (seq {}) is in files no longer in {} (they start at seq {starts}); the chain reaches past it",
                head.hub,
                head.seq,
                chain.dir.display()
            ));
            chain.matched = Some(head.clone());
            continue;
        }
        let found = probed.iter().find(|(s, _)| *s == head.seq).map(|(_, h)| *h);
        match found {
            Some(h) if hex32(&h) == head.hash => chain.matched = Some(head.clone()),
            other => report.failures.push(DeploymentError::Mismatch {
                hub: head.hub.clone(),
                dir: chain.dir.clone(),
                seq: head.seq,
                expected: head.hash.clone(),
                found: other.map_or_else(|| "no record".into(), |h| hex32(&h)),
                at: at.clone(),
            }),
        }
    }
    for (hub, (idx, _)) in &owners {
        if checkpoint.head(hub).is_none() {
            report.notes.push(format!(
                "hub {hub} ({}) is not in the checkpoint yet (a hub started after it was written?): its chain was verified on its own",
                report.chains[*idx].dir.display()
            ));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn head(hub: &str, seq: u64, fill: u8) -> ChainHead {
        ChainHead {
            hub: hub.into(),
            seq,
            hash: hex::encode([fill; 32]),
        }
    }

    const T: &str = "2026-12-07T02:00:00.000000Z";

    #[test]
    fn a_signed_checkpoint_verifies_and_any_change_breaks_it() {
        let mut cp = DeploymentCheckpoint::new(
            "hub-a",
            3,
            T,
            vec![head("hub-b", 9, 2), head("hub-a", 40, 1)],
        );
        assert_eq!(cp.heads[0].hub, "hub-a", "sorted by hub");
        cp.sign(&key());
        let vk = key().verifying_key();
        let back = DeploymentCheckpoint::from_json(&cp.to_json(), "db").unwrap();
        assert_eq!(back, cp);
        back.check_signature(&vk, "db").unwrap();
        let mut cut = back.clone();
        cut.heads[1].seq = 8;
        let e = cut.check_signature(&vk, "db").unwrap_err().to_string();
        assert!(e.contains("forged or altered"), "{e}");
        let mut dropped = back.clone();
        dropped.heads.remove(1);
        assert!(dropped.check_signature(&vk, "db").is_err());
        let mut epoch = back.clone();
        epoch.epoch = 4;
        assert!(epoch.check_signature(&vk, "db").is_err());
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        let e = back.check_signature(&other, "db").unwrap_err().to_string();
        assert!(e.contains("another key"), "{e}");
        let mut unsigned = back.clone();
        unsigned.sig = None;
        let e = unsigned.check_signature(&vk, "db").unwrap_err().to_string();
        assert!(e.contains("not signed"), "{e}");
    }

    #[test]
    fn malformed_checkpoints_are_refused_naming_the_field() {
        let mut cp = DeploymentCheckpoint::new("hub-a", 1, T, vec![head("hub-a", 1, 1)]);
        cp.sign(&key());
        let json = cp.to_json();
        for (bad, field) in [
            (
                json.replace("\"hub-a\",\"seq\"", "\"hub a\",\"seq\""),
                "heads[0].hub",
            ),
            (json.replace(&"01".repeat(32), "xyz"), "heads[0].hash"),
            (json.replace(T, "yesterday"), "time"),
            (json.replace("\"version\":1", "\"version\":9"), "version 9"),
            ("{".to_string(), "not a deployment checkpoint"),
            (String::new(), "not a deployment checkpoint"),
            (
                json.replace("\"epoch\"", "\"extra\":1,\"epoch\""),
                "unknown field",
            ),
        ] {
            let e = DeploymentCheckpoint::from_json(&bad, "cp.json")
                .unwrap_err()
                .to_string();
            assert!(e.contains("cp.json") && e.contains(field), "{e}");
        }
        let twice = DeploymentCheckpoint {
            heads: vec![head("hub-a", 1, 1), head("hub-a", 2, 1)],
            ..cp.clone()
        };
        let e = DeploymentCheckpoint::from_json(&twice.to_json(), "db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn the_next_checkpoint_keeps_every_hub_and_never_moves_a_head_back() {
        let prev = DeploymentCheckpoint::new(
            "hub-a",
            1,
            T,
            vec![
                head("hub-a", 10, 1),
                head("hub-b", 20, 2),
                head("hub-c", 5, 3),
            ],
        );
        let (next, conflicts) = DeploymentCheckpoint::next(
            Some(&prev),
            &[
                head("hub-a", 12, 4), // forward
                head("hub-b", 15, 5), // behind: rolled back or cut
                head("hub-d", 1, 6),  // new hub
                head("bad hub", 1, 6),
            ],
            "hub-b",
            2,
            T,
        );
        let seqs: Vec<(&str, u64)> = next.heads.iter().map(|h| (h.hub.as_str(), h.seq)).collect();
        assert_eq!(
            seqs,
            [("hub-a", 12), ("hub-b", 20), ("hub-c", 5), ("hub-d", 1)],
            "hub-c, which published nothing, is kept"
        );
        assert_eq!(conflicts.len(), 2, "{conflicts:?}");
        assert!(conflicts[0].contains("hub-b") && conflicts[0].contains("behind"));
        let (again, conflicts) =
            DeploymentCheckpoint::next(Some(&next), &[head("hub-a", 12, 9)], "hub-b", 2, T);
        assert!(conflicts[0].contains("replaced"), "{conflicts:?}");
        assert!(again.same_heads(&next));
        assert_eq!((next.leader.as_str(), next.epoch), ("hub-b", 2));
    }

    #[test]
    fn hub_ids() {
        for ok in ["hub-a", "a", "node1.example.org", "x_y", &"a".repeat(64)] {
            assert!(valid_hub_id(ok), "{ok}");
        }
        for bad in ["", "a b", "a\nb", "ä", "a/b", "a\"b", &"a".repeat(65)] {
            assert!(!valid_hub_id(bad), "{bad:?}");
        }
    }
}
