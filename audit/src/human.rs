//! The human form of a record: one line per event, the way an operator reads it.
//!
//! ```text
//! 2026-11-23T10:15:02Z User jacintar stopped atmosphere_stage.clouds.climb.1234 task
//! 2026-11-23T10:14:40Z User jacintar raised privileges to execute
//! 2026-11-23T10:16:00Z User bob was denied pause on alice's demo workflow: "not granted"
//! ```
//!
//! Escaping (hand-written: no crate does "one whitespace-free token or one quoted
//! string" for log lines): every piece of user-controlled text is either a bare
//! token made only of `A-Z a-z 0-9 _ - . + / : @ ~ [ ]`, or a double-quoted string
//! whose only characters are printable ASCII, with `"` and `\` backslash-escaped and
//! everything else (control characters, newlines, any non-ASCII) written as
//! `\u{hex}`. So a line never contains a newline or a non-ASCII character, a bare
//! token never contains a space or a quote, and no value can end its field early or
//! start a new one: the text around the values is fixed by the event kind. Free text
//! (reasons, messages) is always quoted.

use crate::record::{events, AuditRecord, Outcome, RecordKind, SYSTEM_ACTOR};
use std::borrow::Cow;
use std::fmt::Write;
use steward_protocol::Operation;

fn is_bare(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'_' | b'-' | b'.' | b'+' | b'/' | b':' | b'@' | b'~' | b'[' | b']'
        )
}

/// Always a quoted string, printable ASCII only.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// A bare token when safe, else quoted.
pub(crate) fn tok(s: &str) -> Cow<'_, str> {
    if !s.is_empty() && s.bytes().all(is_bare) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(quote(s))
    }
}

fn subject(actor: &str) -> String {
    if actor.is_empty() || actor == SYSTEM_ACTOR {
        "Steward".to_string()
    } else {
        format!("User {}", tok(actor))
    }
}

fn possessive(name: &str) -> String {
    format!("{}'s", tok(name))
}

/// `2026-11-23T10:15:02Z` from the record's time.
fn seconds(time: &str) -> String {
    match crate::record::normalize_time(time) {
        Ok(t) if !time.is_empty() => format!("{}Z", &t[..19]),
        _ => tok(time).into_owned(),
    }
}

/// `alice's ` when the owner is someone other than the actor, else nothing.
fn owner_prefix(rec: &AuditRecord) -> String {
    match &rec.owner {
        Some(o) if *o != rec.actor => format!("{} ", possessive(o)),
        _ => String::new(),
    }
}

/// What an operation was done to: `atmosphere_stage.clouds.climb.1234 task`,
/// `alice's demo workflow`, `demo.climb.1234 job 02`, `demo.1234 cycle`.
fn op_target(rec: &AuditRecord) -> String {
    let owner = owner_prefix(rec);
    let Some(wf) = rec.workflow.as_deref() else {
        return match rec.task.as_deref() {
            Some(t) => format!("{owner}{} task", tok(t)),
            None => String::new(),
        };
    };
    let Some(task) = rec.task.as_deref() else {
        return format!("{owner}{} workflow", tok(wf));
    };
    let parts: Vec<&str> = task.split('/').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return format!("{owner}{} task", tok(&format!("{wf}//{task}")));
    }
    let dotted_wf = wf.replace('/', ".");
    match parts.as_slice() {
        [cycle] => format!("{owner}{} cycle", tok(&format!("{dotted_wf}.{cycle}"))),
        [cycle, name] => format!(
            "{owner}{} task",
            tok(&format!("{dotted_wf}.{name}.{cycle}"))
        ),
        [cycle, name, job] => format!(
            "{owner}{} job {}",
            tok(&format!("{dotted_wf}.{name}.{cycle}")),
            tok(job)
        ),
        _ => unreachable!("1 to 3 parts"),
    }
}

fn with_text(mut s: String, text: Option<&str>) -> String {
    if let Some(t) = text {
        s.push_str(": ");
        s.push_str(&quote(t));
    }
    s
}

fn join(a: String, b: &str) -> String {
    if b.is_empty() {
        a
    } else {
        format!("{a} {b}")
    }
}

fn op_line(rec: &AuditRecord, subj: &str) -> String {
    let target = op_target(rec);
    let op_name = rec.op.as_deref().unwrap_or("?");
    let known = op_name.parse::<Operation>().ok();
    let past = match known {
        Some(op) => op.past_tense().to_string(),
        None => format!("performed {} on", tok(op_name)),
    };
    if rec.decision == Some(crate::Decision::Deny) {
        let s = format!("{subj} was denied {}", tok(op_name));
        let s = if target.is_empty() {
            s
        } else {
            format!("{s} on {target}")
        };
        return with_text(s, rec.reason.as_deref().or(rec.message.as_deref()));
    }
    match rec.outcome {
        Some(Outcome::Error) => with_text(
            join(format!("{subj} could not {}", tok(op_name)), &target),
            rec.message.as_deref(),
        ),
        Some(Outcome::Unknown) => with_text(
            format!(
                "{}, outcome unknown",
                join(format!("{subj} may have {past}"), &target)
            ),
            rec.message.as_deref(),
        ),
        _ => join(format!("{subj} {past}"), &target),
    }
}

fn server_phrase(rec: &AuditRecord, adjective: &str) -> String {
    let owner = rec.owner.as_deref().unwrap_or(&rec.actor);
    let mut s = format!("{} {adjective}UI server", possessive(owner));
    if let Some(name) = rec.extra.get("server").and_then(|v| v.as_str()) {
        s.push(' ');
        s.push_str(&tok(name));
    }
    s
}

fn token_phrase(rec: &AuditRecord) -> String {
    let name = rec
        .extra
        .get("token")
        .and_then(|v| v.as_str())
        .unwrap_or("?");
    let mut s = format!("API token {}", tok(name));
    if let Some(o) = rec.owner.as_deref().filter(|o| *o != rec.actor) {
        s.push_str(" for ");
        s.push_str(&tok(o));
    }
    s
}

/// Appends `, failed: "msg"` / `, outcome unknown: "msg"` for events that carry an outcome.
fn outcome_suffix(s: String, rec: &AuditRecord) -> String {
    match rec.outcome {
        Some(Outcome::Error) => with_text(format!("{s}, failed"), rec.message.as_deref()),
        Some(Outcome::Unknown) => {
            with_text(format!("{s}, outcome unknown"), rec.message.as_deref())
        }
        _ => s,
    }
}

/// The human line for a record, or `None` for intents and checkpoints (the outcome
/// of an intent gets the line). Pure: the same record always gives the same line.
pub fn human_line(rec: &AuditRecord) -> Option<String> {
    if matches!(rec.kind, RecordKind::Intent | RecordKind::Checkpoint) {
        return None;
    }
    let subj = subject(&rec.actor);
    let elev = rec.elevation.as_deref().unwrap_or("read");
    let failed = rec.outcome == Some(Outcome::Error);
    let body = match rec.event.as_str() {
        events::OP => op_line(rec, &subj),
        events::LOGIN => {
            let mut s = format!("{subj} logged in");
            if let Some(a) = &rec.actor_addr {
                s = format!("{s} from {}", tok(a));
            }
            outcome_suffix(s, rec)
        }
        events::LOGIN_FAILED => {
            let mut s = format!("{subj} failed to log in");
            if let Some(a) = &rec.actor_addr {
                s = format!("{s} from {}", tok(a));
            }
            with_text(s, rec.reason.as_deref().or(rec.message.as_deref()))
        }
        events::LOGOUT => outcome_suffix(format!("{subj} logged out"), rec),
        events::ELEVATE => {
            outcome_suffix(format!("{subj} raised privileges to {}", tok(elev)), rec)
        }
        events::DROP => format!("{}'s privileges dropped to {}", subj, tok(elev)),
        events::EXPIRE => format!("{}'s privileges expired, back to {}", subj, tok(elev)),
        events::ELEVATE_REFUSED => with_text(
            format!(
                "{subj} was refused privileges to {}",
                tok(rec.elevation.as_deref().unwrap_or("?"))
            ),
            rec.reason.as_deref().or(rec.message.as_deref()),
        ),
        events::SPAWN if failed => with_text(
            format!("{subj} could not start {}", server_phrase(rec, "")),
            rec.message.as_deref(),
        ),
        events::SPAWN => outcome_suffix(format!("{subj} started {}", server_phrase(rec, "")), rec),
        events::SPAWN_FAILED => with_text(
            format!("{subj} could not start {}", server_phrase(rec, "")),
            rec.message.as_deref().or(rec.reason.as_deref()),
        ),
        events::SPAWN_READY => with_text(
            format!("{} is ready", server_phrase(rec, "")),
            rec.message.as_deref(),
        ),
        events::STOP => outcome_suffix(format!("{subj} stopped {}", server_phrase(rec, "")), rec),
        events::CULL => with_text(
            format!("{subj} culled {}", server_phrase(rec, "idle ")),
            rec.message.as_deref().or(rec.reason.as_deref()),
        ),
        events::ADOPT => outcome_suffix(
            format!("{subj} adopted {}", server_phrase(rec, "running ")),
            rec,
        ),
        events::HUB_STOP => with_text(
            format!("{subj} stopped the hub, leaving UI servers running"),
            rec.message.as_deref(),
        ),
        events::POLICY_RELOAD if failed => with_text(
            format!("{subj} could not reload the policy, keeping the last good one"),
            rec.message.as_deref(),
        ),
        events::POLICY_RELOAD => outcome_suffix(format!("{subj} reloaded the policy"), rec),
        events::TOKEN_CREATE => {
            outcome_suffix(format!("{subj} created {}", token_phrase(rec)), rec)
        }
        events::TOKEN_REVOKE => {
            outcome_suffix(format!("{subj} revoked {}", token_phrase(rec)), rec)
        }
        events::ADMIN => {
            let s = format!("{subj} performed admin action");
            let s = with_text(s, rec.message.as_deref().or(rec.op.as_deref()));
            outcome_suffix(
                s,
                &AuditRecord {
                    message: None,
                    ..rec.clone()
                },
            )
        }
        events::AUDIT_RESUMED => with_text(
            "Steward audit log is writable again".to_string(),
            rec.message.as_deref(),
        ),
        events::AUDIT_REPAIRED => with_text(
            "Steward audit log repaired at open".to_string(),
            rec.message.as_deref(),
        ),
        events::AUDIT_HEAD_MISSING => with_text(
            "Steward audit head file missing at open".to_string(),
            rec.message.as_deref(),
        ),
        other => {
            let mut s = format!("{subj} event {}", tok(other));
            let target = op_target(rec);
            if !target.is_empty() {
                s = format!("{s} on {target}");
            }
            let s = with_text(s, rec.message.as_deref());
            outcome_suffix(
                s,
                &AuditRecord {
                    message: None,
                    ..rec.clone()
                },
            )
        }
    };
    Some(format!("{} {body}", seconds(&rec.time)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_is_printable_ascii() {
        assert_eq!(tok("bob"), "bob");
        assert_eq!(tok("a b"), "\"a b\"");
        assert_eq!(tok(""), "\"\"");
        assert_eq!(quote("x\n\"é\\"), "\"x\\u{a}\\\"\\u{e9}\\\\\"");
    }
}
