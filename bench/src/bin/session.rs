//! Session lookup + decision per request (issues 5 and 18): what the hub does for every
//! API call and WebSocket operation before anything else — find the session by its
//! cookie hash in the state store, then decide policy ∩ elevation for one operation —
//! on SQLite (one hub) and, run as root, on PostgreSQL (a private cluster on loopback,
//! started here as the tests start it: several hubs), in the same run.
//!
//! Run: `cargo run --release -p steward-bench --bin session` (PostgreSQL only as root).

use std::time::Duration;
use std::time::Instant;
use steward_bench::*;
use steward_hub::store::{
    hash_secret, Clock, PostgresStore, Session, SessionKind, SqliteStore, Store,
};
use steward_policy::{OpClass, Operation, SitePolicy, Subject, UserPolicy};

fn main() -> anyhow::Result<()> {
    // The SQLite store answers without awaiting anything; one thread runs it as the hub
    // does. PostgreSQL's client needs a runtime with I/O.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

const SESSIONS: usize = 10_000;

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = SqliteStore::open(&dir.path().join("hub.db"), Clock::default())?;
    let n = 100_000;
    let (sl, sf) = measure(&db, n).await?;
    report("SQLite", n, sl, sf);
    if !nix::unistd::geteuid().is_root() {
        println!("PostgreSQL: skipped (run as root to start a private cluster)");
        return Ok(());
    }
    let pg = steward_e2e::postgres::Postgres::start();
    let pdb = PostgresStore::connect(&pg.url(), Clock::default()).await?;
    let pn = 20_000;
    let (pl, pf) = measure(&pdb, pn).await?;
    report("PostgreSQL", pn, pl, pf);
    println!(
        "PostgreSQL / SQLite, lookup + decision: median {:.1}x, p99 {:.1}x",
        pf.0.as_secs_f64() / sf.0.as_secs_f64(),
        pf.1.as_secs_f64() / sf.1.as_secs_f64()
    );
    for (figure, pg_v, sq_v) in [
        (
            "session lookup + decision, median (µs), PostgreSQL",
            pf.0,
            sf.0,
        ),
        (
            "session lookup + decision, p99 (µs), PostgreSQL",
            pf.1,
            sf.1,
        ),
    ] {
        append_row(serde_json::json!({
            "bench": "session",
            "figure": figure,
            "value": pg_v.as_secs_f64() * 1e6,
            "baseline": "SQLite",
            "baseline_value": sq_v.as_secs_f64() * 1e6,
            "command": "session",
        }))?;
    }
    Ok(())
}

fn report(store: &str, n: usize, lookup: (Duration, Duration), full: (Duration, Duration)) {
    println!(
        "session lookup ({store}, 10k sessions, hashed id), n={n}: median {} p99 {}",
        us(lookup.0),
        us(lookup.1)
    );
    println!(
        "session lookup + decision ({store}; 1k-entry site policy + user file), n={n}: median {} p99 {}",
        us(full.0),
        us(full.1)
    );
}

/// (median, p99) of the lookup alone and of lookup + decision, over `n` requests.
async fn measure(
    db: &dyn Store,
    n: usize,
) -> anyhow::Result<((Duration, Duration), (Duration, Duration))> {
    let sessions = SESSIONS;
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
    Ok(((lm, lp), (fm, fp)))
}
