//! `search` (library and CLI) and the `verify` CLI: filters, ordering, limits, output
//! forms, exit codes.

mod common;

use clap::Parser;
use common::*;
use steward_audit::cli::{load_verifying_key, parse_time, run_with, AuditCommand};
use steward_audit::{
    events, search, AuditLog, AuditRecord, Decision, RecordKind, SearchFilter, CURRENT_FILE,
};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: AuditCommand,
}

fn at(mut r: AuditRecord, minute: u32) -> AuditRecord {
    r.time = format!("2026-11-23T10:{minute:02}:00Z");
    r
}

/// bob and carol act on alice's and dmitri's workflows, one denial, logins.
fn fixture() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let log = AuditLog::open(cfg(t.path())).unwrap();
    for (m, (actor, owner, wf, op)) in [
        ("bob", "alice", "demo", "pause"),
        ("carol", "alice", "demo", "stop"),
        ("bob", "dmitri", "atmos/run1", "trigger"),
        ("carol \"the admin\"", "dmitri", "atmos/run1", "hold"),
    ]
    .into_iter()
    .enumerate()
    {
        let m = m as u32;
        let i = at(
            AuditRecord {
                owner: Some(owner.into()),
                workflow: Some(wf.into()),
                op: Some(op.into()),
                ..intent(actor, m.into())
            },
            m,
        );
        let s = log.append_blocking(i.clone()).unwrap();
        log.append_blocking(at(outcome(&i, s), m)).unwrap();
    }
    log.append_blocking(at(
        AuditRecord {
            decision: Some(Decision::Deny),
            owner: Some("alice".into()),
            workflow: Some("demo".into()),
            op: Some("clean".into()),
            reason: Some("not granted".into()),
            ..event(events::OP, "bob")
        },
        10,
    ))
    .unwrap();
    // A record whose `extra` mentions bob: must not match --actor bob.
    let mut tricky = at(event(events::ADMIN, "carol"), 11);
    tricky
        .extra
        .insert("note".into(), serde_json::json!({"actor": "bob"}));
    log.append_blocking(tricky).unwrap();
    log.append_blocking(at(event(events::LOGIN, "bob"), 12))
        .unwrap();
    t
}

fn count(dir: &std::path::Path, f: SearchFilter) -> usize {
    search(dir, &f).unwrap().len()
}

#[test]
fn filters_match_exactly() {
    let t = fixture();
    let d = t.path();
    let f = SearchFilter::default;
    assert_eq!(
        count(
            d,
            SearchFilter {
                actor: Some("bob".into()),
                ..f()
            }
        ),
        6
    );
    assert_eq!(
        count(
            d,
            SearchFilter {
                actor: Some("carol \"the admin\"".into()),
                ..f()
            }
        ),
        2
    );
    assert_eq!(
        count(
            d,
            SearchFilter {
                owner: Some("alice".into()),
                ..f()
            }
        ),
        5
    );
    assert_eq!(
        count(
            d,
            SearchFilter {
                workflow: Some("atmos/run1".into()),
                ..f()
            }
        ),
        4
    );
    assert_eq!(
        count(
            d,
            SearchFilter {
                op: Some("stop".into()),
                ..f()
            }
        ),
        2
    );
    assert_eq!(
        count(
            d,
            SearchFilter {
                decision: Some(Decision::Deny),
                ..f()
            }
        ),
        1
    );
    assert_eq!(
        count(
            d,
            SearchFilter {
                event: Some("login".into()),
                ..f()
            }
        ),
        1
    );
    assert_eq!(
        count(
            d,
            SearchFilter {
                kind: Some(RecordKind::Intent),
                ..f()
            }
        ),
        4
    );
    let since = parse_time("2026-11-23T10:01:00Z", chrono::Utc::now()).unwrap();
    let until = parse_time("2026-11-23T10:03:00Z", chrono::Utc::now()).unwrap();
    assert_eq!(
        count(
            d,
            SearchFilter {
                since: Some(since),
                until: Some(until),
                ..f()
            }
        ),
        4,
        "since inclusive, until exclusive"
    );
    assert_eq!(
        count(
            d,
            SearchFilter {
                actor: Some("bob".into()),
                owner: Some("alice".into()),
                ..f()
            }
        ),
        3
    );
    assert_eq!(
        count(
            d,
            SearchFilter {
                actor: Some("nobody".into()),
                ..f()
            }
        ),
        0
    );
}

#[test]
fn limit_and_order() {
    let t = fixture();
    let bob = |limit, newest_first| SearchFilter {
        actor: Some("bob".into()),
        limit,
        newest_first,
        ..Default::default()
    };
    let first2 = search(t.path(), &bob(Some(2), false)).unwrap();
    assert_eq!(first2.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
    let last2 = search(t.path(), &bob(Some(2), true)).unwrap();
    assert_eq!(last2[0].event, "login");
    assert_eq!(last2[1].decision, Some(Decision::Deny));
    let all_newest = search(t.path(), &bob(None, true)).unwrap();
    assert_eq!(all_newest.len(), 6);
    assert!(all_newest.windows(2).all(|w| w[0].seq > w[1].seq));
    assert!(search(t.path(), &bob(Some(0), true)).unwrap().is_empty());
}

fn run(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let mut argv = vec!["steward-audit"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(
        cli.cmd,
        dir,
        Some(key().verifying_key()),
        &mut out,
        &mut err,
    );
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn cli_search_human_and_json() {
    let t = fixture();
    let (code, out, _) = run(&["search", "--actor", "bob", "--owner", "alice"], t.path());
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "2026-11-23T10:00:00Z User bob paused alice's demo.climb.0 task\n\
         2026-11-23T10:10:00Z User bob was denied clean on alice's demo workflow: \"not granted\"\n"
    );
    let (code, out, _) = run(&["search", "--op", "stop", "--json"], t.path());
    assert_eq!(code, 0);
    let file = lines(&t.path().join(CURRENT_FILE));
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), 2);
    assert!(
        got.iter().all(|l| file.iter().any(|f| f == l)),
        "JSON output is the chain line"
    );
    let (code, out, _) = run(
        &["search", "--decision", "deny", "--newest", "--limit", "1"],
        t.path(),
    );
    assert_eq!((code, out.lines().count()), (0, 1));
    let (code, _, err) = run(&["search", "--since", "last tuesday"], t.path());
    assert_eq!(code, 2);
    assert!(err.contains("cannot read time"), "{err}");
    assert!(Cli::try_parse_from(["x", "search", "--decision", "maybe"]).is_err());
    assert!(Cli::try_parse_from(["x", "search", "--human", "--json"]).is_err());
}

#[test]
fn cli_verify_exit_codes_and_first_bad_line() {
    let t = fixture();
    let (code, out, _) = run(&["verify"], t.path());
    assert_eq!(code, 0);
    assert!(out.starts_with("OK: 1 file(s)"), "{out}");
    assert!(out.contains("signatures valid"), "{out}");
    // The closed log is fully anchored; while open, --strict fails on records after
    // the last checkpoint.
    assert_eq!(run(&["verify", "--strict"], t.path()).0, 0);
    {
        let log = AuditLog::open(cfg(t.path())).unwrap();
        log.append_blocking(event(events::LOGOUT, "bob")).unwrap();
        let (code, out, err) = run(&["verify", "--strict"], t.path());
        assert_eq!(code, 1, "{out}{err}");
        assert!(err.contains("not anchored"), "{err}");
    }

    let path = t.path().join(CURRENT_FILE);
    let mut l = lines(&path);
    l[3] = l[3].replace("\"op\":\"trigger\"", "\"op\":\"read\"");
    l[2] = l[2].replace("\"op\":\"stop\"", "\"op\":\"read\"");
    write_lines(&path, &l);
    let (code, out, err) = run(&["verify"], t.path());
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("audit.jsonl:3 (seq 3): record 3 does not hash"),
        "{err}"
    );
    assert!(err.contains("line 3: \"{\\\"seq\\\":3,"), "{err}");
    // Explicit files.
    let p = path.to_str().unwrap();
    let (code, _, _) = run(&["verify", p], t.path());
    assert_eq!(code, 1);
    let (code, _, err) = run(&["verify", "--dir", "/nonexistent/steward"], t.path());
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/steward"), "{err}");
}

#[test]
fn verify_key_files() {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let t = tempfile::tempdir().unwrap();
    let k = key();
    let want = k.verifying_key();
    let p = t.path().join("k");
    let pem = want
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap();
    std::fs::write(&p, pem).unwrap();
    assert_eq!(load_verifying_key(&p).unwrap(), want);
    let pem = k
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap();
    std::fs::write(&p, pem.as_bytes()).unwrap();
    assert_eq!(load_verifying_key(&p).unwrap(), want);
    std::fs::write(&p, hex::encode(want.as_bytes())).unwrap();
    assert_eq!(load_verifying_key(&p).unwrap(), want);
    std::fs::write(&p, "nonsense").unwrap();
    assert!(load_verifying_key(&p).is_err());
}

#[test]
fn time_forms() {
    let now = parse_time("2026-11-23T12:00:00Z", chrono::Utc::now()).unwrap();
    let p = |s| parse_time(s, now).unwrap().to_rfc3339();
    assert_eq!(p("2026-11-23"), "2026-11-23T00:00:00+00:00");
    assert_eq!(p("2026-11-23T10:00:00"), "2026-11-23T10:00:00+00:00");
    assert_eq!(p("2026-11-23T11:00:00+01:00"), "2026-11-23T10:00:00+00:00");
    assert_eq!(p("2h"), "2026-11-23T10:00:00+00:00");
    assert_eq!(p("30m"), "2026-11-23T11:30:00+00:00");
    assert_eq!(p("1d"), "2026-11-22T12:00:00+00:00");
    assert!(parse_time("2x", now).is_err());
}
