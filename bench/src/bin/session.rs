//! Session lookup + decision per request (issue 5): what the hub does for every API call
//! and WebSocket operation before anything else — find the session by its cookie hash in
//! SQLite, then decide policy ∩ elevation for one operation.
//!
//! Run: `cargo run --release -p steward-bench --bin session` (no root needed).

use std::time::Instant;
use steward_bench::*;
use steward_hub::store::{hash_secret, Clock, Session, SessionKind, SqliteStore, Store};
use steward_policy::{OpClass, Operation, SitePolicy, Subject, UserPolicy};

fn main() -> anyhow::Result<()> {
    // The SQLite store answers without awaiting anything; one thread runs it as the hub does.
    tokio::runtime::Builder::new_current_thread()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = SqliteStore::open(&dir.path().join("hub.db"), Clock::default())?;
    let sessions = 10_000;
    for i in 0..sessions {
        db.insert_session(&Session {
            kind: SessionKind::Cookie {
                id_hash: hash_secret(&format!("cookie-{i}")),
            },
            user: format!("user{}", i % 500),
            groups: vec!["ops".into(), format!("g{}", i % 50)],
            class: OpClass::Execute,
            deadline: Some(i64::MAX / 2),
            csrf: "x".into(),
            created: 0,
            last_seen: 0,
            addr: "127.0.0.1".into(),
            expiry_audited: false,
            uid: None,
        })
        .await?;
    }
    let mut site_src = String::from("[owners.\"*\".\"*\"]\ndefault = \"READ\"\n[owners.\"*\".\"group:ops\"]\ndefault = [\"READ\"]\nlimit = [\"READ\", \"CONTROL\", \"!clean\"]\n");
    for i in 0..1000 {
        site_src.push_str(&format!(
            "[owners.\"owner{i}\".\"user{i}\"]\ndefault = [\"READ\", \"CONTROL\"]\n"
        ));
    }
    let site = SitePolicy::parse(&site_src, "site.toml").map_err(|d| anyhow::anyhow!("{d}"))?;
    let user = UserPolicy::parse(
        "[grants]\n\"group:ops\" = [\"READ\", \"CONTROL\"]\n",
        "user.toml",
    )
    .map_err(|d| anyhow::anyhow!("{d}"))?;
    let owner = Subject {
        name: "alice".into(),
        groups: vec!["staff".into()],
    };

    let n = 100_000;
    let mut lookup_only = Vec::with_capacity(n);
    let mut full = Vec::with_capacity(n);
    for i in 0..n {
        let cookie = format!("cookie-{}", (i * 7919) % sessions);
        let t = Instant::now();
        let s = db.session(&hash_secret(&cookie)).await?.expect("session");
        lookup_only.push(t.elapsed());
        let actor = Subject {
            name: s.user.clone(),
            groups: s.groups.clone(),
        };
        let d = steward_policy::decide(
            &site,
            Some(&user),
            &owner,
            &actor,
            "forecast",
            Operation::Pause,
        );
        let allowed = d.allowed && s.class_at(1).session_ops().contains(Operation::Pause);
        full.push(t.elapsed());
        std::hint::black_box(allowed);
    }
    let (lm, lp, _) = stats(lookup_only);
    let (fm, fp, _) = stats(full);
    println!(
        "session lookup (SQLite, 10k sessions, hashed id), n={n}: median {} p99 {}",
        us(lm),
        us(lp)
    );
    println!(
        "session lookup + decision (1k-entry site policy + user file), n={n}: median {} p99 {}",
        us(fm),
        us(fp)
    );
    Ok(())
}
