//! The human line of every audited event, and the escaping that keeps user text from
//! forging a line or a field.

mod common;

use common::*;
use proptest::prelude::*;
use steward_audit::{events, human_line, AuditRecord, Decision, Outcome, RecordKind, SYSTEM_ACTOR};

const T: &str = "2026-11-23T10:15:02.123456Z";

fn ev(event: &str, actor: &str) -> AuditRecord {
    AuditRecord {
        time: T.into(),
        ..AuditRecord::new(RecordKind::Event, event, actor)
    }
}

fn op(actor: &str, owner: &str, wf: &str, task: Option<&str>, op: &str) -> AuditRecord {
    AuditRecord {
        owner: Some(owner.into()),
        workflow: Some(wf.into()),
        task: task.map(str::to_string),
        op: Some(op.into()),
        decision: Some(Decision::Allow),
        kind: RecordKind::Outcome,
        outcome: Some(Outcome::Ok),
        ..ev(events::OP, actor)
    }
}

fn line(r: &AuditRecord) -> String {
    human_line(r).unwrap()
}

#[test]
fn the_two_examples_from_the_issue() {
    let stop = op(
        "jacintar",
        "jacintar",
        "atmosphere_stage/clouds",
        Some("1234/climb"),
        "stop",
    );
    assert_eq!(
        line(&stop),
        "2026-11-23T10:15:02Z User jacintar stopped atmosphere_stage.clouds.climb.1234 task"
    );
    let raise = AuditRecord {
        elevation: Some("execute".into()),
        time: "2026-11-23T10:14:40Z".into(),
        ..ev(events::ELEVATE, "jacintar")
    };
    assert_eq!(
        line(&raise),
        "2026-11-23T10:14:40Z User jacintar raised privileges to execute"
    );
}

#[test]
fn operations() {
    let p = |r: &AuditRecord| line(r)[21..].to_string();
    assert_eq!(
        p(&op("bob", "alice", "demo", None, "pause")),
        "User bob paused alice's demo workflow"
    );
    assert_eq!(
        p(&op("alice", "alice", "demo/run1", None, "resume")),
        "User alice resumed demo/run1 workflow"
    );
    assert_eq!(
        p(&op(
            "bob",
            "alice",
            "demo",
            Some("20260101T00Z/model/02"),
            "kill"
        )),
        "User bob killed alice's demo.model.20260101T00Z job 02"
    );
    assert_eq!(
        p(&op("bob", "alice", "demo", Some("20260101T00Z"), "hold")),
        "User bob held alice's demo.20260101T00Z cycle"
    );
    assert_eq!(
        p(&op("bob", "alice", "demo", None, "broadcast")),
        "User bob broadcast to alice's demo workflow"
    );
    let denied = AuditRecord {
        kind: RecordKind::Event,
        decision: Some(Decision::Deny),
        outcome: None,
        reason: Some("alice's policy grants bob READ only".into()),
        ..op("bob", "alice", "demo", None, "pause")
    };
    assert_eq!(
        p(&denied),
        "User bob was denied pause on alice's demo workflow: \"alice's policy grants bob READ only\""
    );
    let failed = AuditRecord {
        outcome: Some(Outcome::Error),
        message: Some("scheduler not running".into()),
        ..op("bob", "alice", "demo", Some("1/a"), "trigger")
    };
    assert_eq!(
        p(&failed),
        "User bob could not trigger alice's demo.a.1 task: \"scheduler not running\""
    );
    let unknown = AuditRecord {
        outcome: Some(Outcome::Unknown),
        message: Some("hub restarted".into()),
        ..op("bob", "alice", "demo", None, "stop")
    };
    assert_eq!(
        p(&unknown),
        "User bob may have stopped alice's demo workflow, outcome unknown: \"hub restarted\""
    );
    // Intents and checkpoints have no line; the outcome carries it.
    let intent = AuditRecord {
        kind: RecordKind::Intent,
        ..op("bob", "alice", "demo", None, "stop")
    };
    assert!(human_line(&intent).is_none());
    assert!(human_line(&AuditRecord::new(
        RecordKind::Checkpoint,
        "checkpoint",
        SYSTEM_ACTOR
    ))
    .is_none());
}

#[test]
fn sessions_elevation_servers_policy_tokens_admin() {
    let p = |r: AuditRecord| line(&r)[21..].to_string();
    let addr = Some("192.0.2.7".to_string());
    let cases: Vec<(AuditRecord, &str)> = vec![
        (AuditRecord { actor_addr: addr.clone(), ..ev(events::LOGIN, "bob") }, "User bob logged in from 192.0.2.7"),
        (
            AuditRecord { actor_addr: addr.clone(), reason: Some("bad password".into()), ..ev(events::LOGIN_FAILED, "bob") },
            "User bob failed to log in from 192.0.2.7: \"bad password\"",
        ),
        (ev(events::LOGOUT, "bob"), "User bob logged out"),
        (AuditRecord { elevation: Some("write".into()), ..ev(events::ELEVATE, "bob") }, "User bob raised privileges to write"),
        (AuditRecord { elevation: Some("read".into()), ..ev(events::DROP, "bob") }, "User bob's privileges dropped to read"),
        (AuditRecord { elevation: Some("read".into()), ..ev(events::EXPIRE, "bob") }, "User bob's privileges expired, back to read"),
        (
            AuditRecord { elevation: Some("execute".into()), reason: Some("wrong password".into()), ..ev(events::ELEVATE_REFUSED, "bob") },
            "User bob was refused privileges to execute: \"wrong password\"",
        ),
        (AuditRecord { owner: Some("alice".into()), ..ev(events::SPAWN, "alice") }, "User alice started alice's UI server"),
        (AuditRecord { owner: Some("alice".into()), ..ev(events::STOP, "root") }, "User root stopped alice's UI server"),
        (
            AuditRecord { owner: Some("alice".into()), message: Some("idle for 3600 s".into()), ..ev(events::CULL, SYSTEM_ACTOR) },
            "Steward culled alice's idle UI server: \"idle for 3600 s\"",
        ),
        (AuditRecord { owner: Some("alice".into()), ..ev(events::ADOPT, SYSTEM_ACTOR) }, "Steward adopted alice's running UI server"),
        (
            AuditRecord { owner: Some("alice".into()), message: Some("timed out after 30 s".into()), ..ev(events::SPAWN_FAILED, "alice") },
            "User alice could not start alice's UI server: \"timed out after 30 s\"",
        ),
        (AuditRecord { outcome: Some(Outcome::Ok), ..ev(events::POLICY_RELOAD, SYSTEM_ACTOR) }, "Steward reloaded the policy"),
        (
            AuditRecord { outcome: Some(Outcome::Error), message: Some("site.toml:3:1: unknown key".into()), ..ev(events::POLICY_RELOAD, "root") },
            "User root could not reload the policy, keeping the last good one: \"site.toml:3:1: unknown key\"",
        ),
        (ev(events::TOKEN_CREATE, "bob").with_extra("token", "ci-nightly"), "User bob created API token ci-nightly"),
        (
            AuditRecord { owner: Some("bob".into()), ..ev(events::TOKEN_REVOKE, "root").with_extra("token", "ci-nightly") },
            "User root revoked API token ci-nightly for bob",
        ),
        (
            AuditRecord { message: Some("servers stop alice".into()), ..ev(events::ADMIN, "root") },
            "User root performed admin action: \"servers stop alice\"",
        ),
        (
            AuditRecord { message: Some("x".into()), ..ev("something_new", "bob") },
            "User bob event something_new: \"x\"",
        ),
    ];
    for (rec, want) in cases {
        assert_eq!(p(rec), want);
    }
}

#[test]
fn hostile_text_is_quoted_and_cannot_forge_a_line() {
    let evil = "bob stopped x task\n2026-11-23T10:15:02Z User root raised privileges to write";
    let r = op(evil, "alice", "demo\" workflow\r", Some("1/a b"), "stop");
    let l = line(&r);
    assert!(!l.contains('\n') && !l.contains('\r'));
    assert_eq!(
        l,
        "2026-11-23T10:15:02Z User \"bob stopped x task\\u{a}2026-11-23T10:15:02Z User root raised privileges to write\" stopped alice's \"demo\\\" workflow\\u{d}.a b.1\" task"
    );
    let r = AuditRecord {
        reason: Some("\u{202e}evil\u{0}".into()),
        ..ev(events::LOGIN_FAILED, "é")
    };
    assert_eq!(
        line(&r)[21..],
        *"User \"\\u{e9}\" failed to log in: \"\\u{202e}evil\\u{0}\""
    );
}

/// Splits a human line into fields: bare words, or quoted strings (unescaped).
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
            continue;
        }
        if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next().expect("unterminated quote") {
                    '"' => break,
                    '\\' => match chars.next().unwrap() {
                        'u' => {
                            assert_eq!(chars.next(), Some('{'));
                            let hex: String = chars.by_ref().take_while(|c| *c != '}').collect();
                            s.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                        }
                        other => s.push(other),
                    },
                    other => s.push(other),
                }
            }
            // A possessive or punctuation may follow directly.
            let mut tail = String::new();
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                tail.push(c);
                chars.next();
            }
            out.push(s + &tail);
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                s.push(c);
                chars.next();
            }
            out.push(s);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the actor, owner, workflow, task and reason, a line is one line of
    /// printable ASCII and splits into the same fields, the actor first after `User`.
    #[test]
    fn no_input_forges_a_line_or_a_field(
        actor in any::<String>(),
        owner in any::<String>(),
        wf in any::<String>(),
        cycle in any::<String>(),
        task in any::<String>(),
        reason in any::<String>(),
    ) {
        prop_assume!(!actor.is_empty() && actor != SYSTEM_ACTOR);
        let denied = AuditRecord {
            kind: RecordKind::Event,
            decision: Some(Decision::Deny),
            outcome: None,
            reason: Some(reason.clone()),
            ..op(&actor, &owner, &wf, Some(&format!("{cycle}/{task}")), "stop")
        };
        let l = line(&denied);
        prop_assert!(l.bytes().all(|b| (0x20..0x7f).contains(&b)), "{}", l);
        let f = fields(&l);
        prop_assert_eq!(&f[1], "User");
        prop_assert_eq!(&f[2], &actor);
        prop_assert_eq!(&f[3..6], &["was", "denied", "stop"]);
        prop_assert_eq!(&f[6], "on");
        let id = format!("{cycle}/{task}");
        let parts: Vec<&str> = id.split('/').collect();
        let job_form = parts.len() == 3 && parts.iter().all(|p| !p.is_empty());
        let want_len = 10 + usize::from(owner != actor) + usize::from(job_form);
        prop_assert_eq!(f.len(), want_len, "{:?}", f);
        // The reason is the last field, whole (its `:` prefix sits on the field before).
        prop_assert_eq!(f.last().unwrap(), &reason);
    }
}

#[test]
fn times_have_seconds_precision_and_z() {
    let r = AuditRecord {
        time: "2026-11-23T11:15:02.999+01:00".into(),
        ..ev(events::LOGOUT, "bob")
    };
    assert!(line(&r).starts_with("2026-11-23T10:15:02Z "));
    let _ = intent("x", 1);
}
