//! The audit record and its canonical line form.
//!
//! A record serializes to exactly one JSON object on one line, fields in the order
//! declared here (`seq`, `prev`, `time`, `kind` first), absent options left out,
//! `extra` sorted by key. The chain hashes those exact bytes, and `verify` reads
//! `seq`/`prev`/`time`/`kind` from the fixed prefix without a full decode.

use crate::error::AuditError;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The actor of records the hub writes on its own behalf (culling, adopting, policy
/// reloads at start). Not a valid user name, so no user can be mistaken for it.
pub const SYSTEM_ACTOR: &str = "@steward";

/// What a record is in the write-ahead protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// Written (durably) before an operation is forwarded. No human line.
    Intent,
    /// The result of an intent; `intent_seq` names it.
    Outcome,
    /// Something that happened at once: a login, a denied operation, a spawn.
    #[default]
    Event,
    /// Signed anchor of the chain written by the log itself. No human line.
    Checkpoint,
}

impl RecordKind {
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Intent => "intent",
            RecordKind::Outcome => "outcome",
            RecordKind::Event => "event",
            RecordKind::Checkpoint => "checkpoint",
        }
    }

    pub(crate) fn from_bytes(b: &[u8]) -> Option<RecordKind> {
        match b {
            b"intent" => Some(RecordKind::Intent),
            b"outcome" => Some(RecordKind::Outcome),
            b"event" => Some(RecordKind::Event),
            b"checkpoint" => Some(RecordKind::Checkpoint),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    pub fn name(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

impl std::str::FromStr for Decision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(Decision::Allow),
            "deny" => Ok(Decision::Deny),
            other => Err(format!(
                "unknown decision {other:?}: expected allow or deny"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Error,
    /// The hub stopped between intent and outcome; written on restart.
    Unknown,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Unknown => "unknown",
        }
    }
}

/// Event names the hub uses in [`AuditRecord::event`]. Each has a human form in
/// [`crate::human_line`]; any other name still gets a generic, escaped line.
pub mod events {
    pub const OP: &str = "op";
    pub const LOGIN: &str = "login";
    pub const LOGIN_FAILED: &str = "login_failed";
    pub const LOGOUT: &str = "logout";
    pub const ELEVATE: &str = "elevate";
    pub const DROP: &str = "drop";
    pub const EXPIRE: &str = "expire";
    pub const ELEVATE_REFUSED: &str = "elevate_refused";
    pub const SPAWN: &str = "spawn";
    pub const STOP: &str = "stop";
    pub const CULL: &str = "cull";
    pub const ADOPT: &str = "adopt";
    pub const SPAWN_FAILED: &str = "spawn_failed";
    /// A start submitted to a batch system (Slurm) whose server registered: it runs.
    pub const SPAWN_READY: &str = "spawn_ready";
    pub const POLICY_RELOAD: &str = "policy_reload";
    pub const TOKEN_CREATE: &str = "token_create";
    pub const TOKEN_REVOKE: &str = "token_revoke";
    pub const ADMIN: &str = "admin";
    /// The hub stopped on a signal after draining the operations in flight.
    pub const HUB_STOP: &str = "hub_stop";
    /// Written by the log itself.
    pub const CHECKPOINT: &str = "checkpoint";
    /// Written by the log when it writes again after a failure; says for how long and why.
    pub const AUDIT_RESUMED: &str = "audit_resumed";
    /// Written by the log at open when it dropped an unfinished line left by a crash.
    pub const AUDIT_REPAIRED: &str = "audit_repaired";
    /// At open: the head file outside the log directory was missing, so the log's end
    /// could not be checked against it.
    pub const AUDIT_HEAD_MISSING: &str = "audit_head_missing";
}

/// One audit record. `seq` and `prev` are always set by the log; `time` is set by the
/// log when empty, otherwise normalized to UTC with microseconds (`...:02.123456Z`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    #[serde(default)]
    pub seq: u64,
    #[serde(default)]
    pub prev: String,
    #[serde(default)]
    pub time: String,
    #[serde(default)]
    pub kind: RecordKind,
    /// The hub whose chain this record is in (`AuditConfig::hub_id`), set by the log
    /// like `seq` and `prev`. Right after `kind`, so `verify` reads it from the line's
    /// prefix; absent in logs written before hubs named their chains (and without a
    /// hub id), which verify as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    #[serde(default)]
    pub event: String,
    #[serde(default)]
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_addr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Workflow name without the owner (`atmosphere_stage/clouds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// `cycle`, `cycle/task` or `cycle/task/job`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Elevation class of the session: `read`, `execute` or `write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elevation: Option<String>,
    /// RFC 3339 deadline of the elevation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elevation_deadline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// On outcome records: the `seq` of the intent this is the outcome of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent_seq: Option<u64>,
    /// Anything else worth keeping: policy file hashes, token names, server names,
    /// and on checkpoints the anchor and signature.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl AuditRecord {
    /// A record of `kind` and `event` by `actor`; fill the rest with struct update syntax.
    pub fn new(kind: RecordKind, event: &str, actor: &str) -> AuditRecord {
        AuditRecord {
            kind,
            event: event.to_string(),
            actor: actor.to_string(),
            ..AuditRecord::default()
        }
    }

    /// The outcome record of this intent, which was written as `intent_seq`: the same
    /// who/what/where, `kind = outcome`, a fresh time.
    pub fn outcome_of(
        &self,
        intent_seq: u64,
        outcome: Outcome,
        message: Option<String>,
    ) -> AuditRecord {
        AuditRecord {
            seq: 0,
            prev: String::new(),
            time: String::new(),
            kind: RecordKind::Outcome,
            outcome: Some(outcome),
            message,
            intent_seq: Some(intent_seq),
            ..self.clone()
        }
    }

    /// Adds one `extra` entry (builder style).
    pub fn with_extra(mut self, key: &str, value: impl Into<serde_json::Value>) -> AuditRecord {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// The canonical line, without the newline.
    pub fn to_line(&self) -> Vec<u8> {
        // Serializing plain strings, numbers and `serde_json::Value`s cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses one line (without the newline).
    pub fn from_line(line: &[u8]) -> Result<AuditRecord, serde_json::Error> {
        serde_json::from_slice(line)
    }

    /// The time as `DateTime<Utc>`, if it parses.
    pub fn parsed_time(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.time)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// A string checked for type (and UTF-8) but not kept: validation without allocation.
#[derive(Default)]
struct AnyStr;

impl<'de> Deserialize<'de> for AnyStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = AnyStr;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<AnyStr, E> {
                Ok(AnyStr)
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON object with string keys and any values, checked but not kept.
#[derive(Default)]
struct AnyMap;

impl<'de> Deserialize<'de> for AnyMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = AnyMap;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<AnyMap, A::Error> {
                while m.next_entry::<AnyStr, serde::de::IgnoredAny>()?.is_some() {}
                Ok(AnyMap)
            }
        }
        d.deserialize_map(V)
    }
}

/// The shape of [`AuditRecord`] with nothing kept: `verify` checks every line is a
/// well-formed record without allocating. Must accept exactly what `AuditRecord` does.
#[derive(Deserialize)]
#[allow(dead_code)]
pub(crate) struct RecordView {
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    prev: AnyStr,
    #[serde(default)]
    time: AnyStr,
    #[serde(default)]
    kind: RecordKind,
    #[serde(default)]
    hub: Option<AnyStr>,
    #[serde(default)]
    event: AnyStr,
    #[serde(default)]
    actor: AnyStr,
    #[serde(default)]
    actor_addr: Option<AnyStr>,
    #[serde(default)]
    session: Option<AnyStr>,
    #[serde(default)]
    owner: Option<AnyStr>,
    #[serde(default)]
    workflow: Option<AnyStr>,
    #[serde(default)]
    task: Option<AnyStr>,
    #[serde(default)]
    op: Option<AnyStr>,
    #[serde(default)]
    decision: Option<Decision>,
    #[serde(default)]
    reason: Option<AnyStr>,
    #[serde(default)]
    elevation: Option<AnyStr>,
    #[serde(default)]
    elevation_deadline: Option<AnyStr>,
    #[serde(default)]
    request_id: Option<AnyStr>,
    #[serde(default)]
    outcome: Option<Outcome>,
    #[serde(default)]
    message: Option<AnyStr>,
    #[serde(default)]
    intent_seq: Option<u64>,
    #[serde(default)]
    extra: AnyMap,
}

impl RecordView {
    pub(crate) fn check(line: &[u8]) -> Result<(), serde_json::Error> {
        serde_json::from_slice::<RecordView>(line).map(|_| ())
    }
}

/// The canonical time form: UTC, microseconds, `Z`. Fixed width, so string order is
/// time order (search compares the raw bytes).
pub(crate) fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn now() -> String {
    format_time(Utc::now())
}

pub(crate) fn is_canonical_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 27
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            26 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Empty → now; canonical → as is; any other RFC 3339 time → converted; else an error.
pub(crate) fn normalize_time(s: &str) -> Result<String, AuditError> {
    if s.is_empty() {
        return Ok(now());
    }
    if is_canonical_time(s) {
        return Ok(s.to_string());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| format_time(t.with_timezone(&Utc)))
        .map_err(|e| AuditError::InvalidRecord(format!("time {s:?} is not RFC 3339: {e}")))
}

/// Largest record line accepted (a guard against a runaway `extra`).
const MAX_LINE: usize = 1 << 20;

/// Checks a record handed to `append`: not a checkpoint (only the log writes
/// those), an event name, a canonical time, and a line no longer than [`MAX_LINE`].
pub(crate) fn validate_append(rec: &mut AuditRecord) -> Result<(), AuditError> {
    if rec.kind == RecordKind::Checkpoint {
        return Err(AuditError::InvalidRecord(
            "checkpoint records are written by the log itself".into(),
        ));
    }
    if rec.event.is_empty() {
        return Err(AuditError::InvalidRecord("event is empty".into()));
    }
    rec.time = normalize_time(&rec.time)?;
    // Cheap bound first (escaping grows text at most 6x); serialize only if close.
    let text: usize = [&rec.event, &rec.actor]
        .into_iter()
        .chain(
            [
                &rec.actor_addr,
                &rec.session,
                &rec.owner,
                &rec.workflow,
                &rec.task,
                &rec.op,
                &rec.reason,
                &rec.elevation,
                &rec.elevation_deadline,
                &rec.request_id,
                &rec.message,
            ]
            .into_iter()
            .flatten(),
        )
        .map(|s| s.len())
        .sum();
    let extra = if rec.extra.is_empty() {
        0
    } else {
        serde_json::to_vec(&rec.extra).map_or(0, |v| v.len())
    };
    if text * 6 + extra + 1024 <= MAX_LINE {
        return Ok(());
    }
    let approx = rec.to_line().len();
    if approx > MAX_LINE {
        return Err(AuditError::InvalidRecord(format!(
            "record is {approx} bytes, more than {MAX_LINE}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_line_has_fixed_prefix_and_omits_empty_fields() {
        let r = AuditRecord {
            seq: 7,
            prev: "ab".repeat(32),
            time: "2026-11-23T10:15:02.000000Z".into(),
            kind: RecordKind::Intent,
            event: "op".into(),
            actor: "bob".into(),
            ..Default::default()
        };
        let line = String::from_utf8(r.to_line()).unwrap();
        assert!(line.starts_with(&format!(
            "{{\"seq\":7,\"prev\":\"{}\",\"time\":\"2026-11-23T10:15:02.000000Z\",\"kind\":\"intent\",",
            "ab".repeat(32)
        )));
        assert!(!line.contains("owner"));
        assert_eq!(AuditRecord::from_line(line.as_bytes()).unwrap(), r);
    }

    #[test]
    fn times_are_normalized() {
        assert_eq!(
            normalize_time("2026-11-23T11:15:02+01:00").unwrap(),
            "2026-11-23T10:15:02.000000Z"
        );
        assert!(normalize_time("yesterday").is_err());
        assert!(is_canonical_time(&now()));
    }
}
