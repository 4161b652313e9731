//! The state store's contract, held against both implementations: SQLite (embedded, one
//! hub) and a real PostgreSQL server (shared by several hubs). The PostgreSQL half also
//! proves what two hubs rely on: one winner when both start the same owner's server,
//! changes announced to the other hub, and one clock.

use std::sync::Arc;
use std::time::Duration;
use steward_e2e::postgres::Postgres;
use steward_hub::store::{
    hash_secret, AuditHeadRow, Change, Clock, Expect, InflightOp, OverviewRow, PendingSpawn,
    PostgresStore, ServerRow, Session, SessionKind, SqliteStore, Store, TokenRow,
};
use steward_protocol::{Endpoint, OpClass, Placement};

fn session(secret: &str) -> Session {
    Session {
        kind: SessionKind::Cookie {
            id_hash: hash_secret(secret),
        },
        user: "alice".into(),
        groups: vec!["ops".into()],
        class: OpClass::Execute,
        deadline: Some(1000),
        csrf: "c".into(),
        created: 1,
        last_seen: 1,
        addr: "127.0.0.1".into(),
        expiry_audited: false,
        uid: Some(1000),
    }
}

fn server(owner: &str, port: u16) -> ServerRow {
    ServerRow {
        owner: owner.into(),
        name: "default".into(),
        pid: 42,
        placement: Placement::Ssh { host: "h1".into() },
        endpoint: Endpoint::Tcp {
            host: "10.0.0.1".into(),
            port,
        },
        cgroup: "/sys/fs/cgroup/steward/x/default".into(),
        started: 5,
        epoch: 0,
        profile: None,
        hub: None,
    }
}

/// What every store must do, whichever database is behind it. Returns the epoch at
/// which `hub-a` leads (for the PostgreSQL-only checks after it).
async fn contract(db: &dyn Store) -> i64 {
    // Sessions: round trip, expiry marked once, touch, delete.
    let s = session("abc");
    let id_hash = s.id_hash().unwrap().to_string();
    db.insert_session(&s).await.unwrap();
    assert_eq!(db.session(&id_hash).await.unwrap().unwrap(), s);
    assert!(db.mark_expiry_audited(&id_hash).await.unwrap());
    assert!(db.session(&id_hash).await.unwrap().unwrap().expiry_audited);
    assert!(!db.mark_expiry_audited(&id_hash).await.unwrap());
    db.touch_session(&id_hash, 77).await.unwrap();
    assert_eq!(db.session(&id_hash).await.unwrap().unwrap().last_seen, 77);
    assert_eq!(db.sessions().await.unwrap().len(), 1);
    assert!(db.delete_session(&id_hash).await.unwrap());
    assert!(db.session(&id_hash).await.unwrap().is_none());
    assert!(!db.delete_session(&id_hash).await.unwrap());

    // Servers: conditional on the epoch.
    assert_eq!(
        db.put_server(&server("alice", 1), Expect::Absent)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        db.put_server(&server("alice", 2), Expect::Absent)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        db.put_server(&server("alice", 2), Expect::Epoch(7))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        db.put_server(&server("alice", 3), Expect::Epoch(1))
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        db.put_server(&server("alice", 4), Expect::Any)
            .await
            .unwrap(),
        Some(3)
    );
    let rows = db.servers().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].placement, Placement::Ssh { host: "h1".into() });
    assert_eq!(
        rows[0].endpoint,
        Endpoint::Tcp {
            host: "10.0.0.1".into(),
            port: 4
        }
    );
    assert_eq!(rows[0].epoch, 3);
    assert!(!db
        .delete_server("alice", "default", Expect::Epoch(1))
        .await
        .unwrap());
    assert!(db
        .delete_server("alice", "default", Expect::Epoch(3))
        .await
        .unwrap());
    assert!(db.servers().await.unwrap().is_empty());

    // Tokens.
    for (id, user) in [("t1", "alice"), ("t2", "bob")] {
        db.insert_token(&TokenRow {
            id: id.into(),
            hash: hash_secret(id),
            user: user.into(),
            name: "n".into(),
            class: OpClass::Read,
            created: 1,
            expires: 10,
            revoked: false,
            uid: None,
        })
        .await
        .unwrap();
    }
    assert_eq!(db.tokens(Some("alice")).await.unwrap().len(), 1);
    assert_eq!(db.tokens(None).await.unwrap().len(), 2);
    assert!(db.revoke_token("t1").await.unwrap());
    assert!(!db.revoke_token("t1").await.unwrap());
    assert!(db.token("t1").await.unwrap().unwrap().revoked);
    assert!(db.token("nope").await.unwrap().is_none());

    // Overview.
    db.save_overview(&OverviewRow {
        owner: "alice".into(),
        workflows_json: "[1]".into(),
        updated: 5,
    })
    .await
    .unwrap();
    db.save_overview(&OverviewRow {
        owner: "alice".into(),
        workflows_json: "[2]".into(),
        updated: 6,
    })
    .await
    .unwrap();
    let o = db.overviews().await.unwrap();
    assert_eq!((o.len(), o[0].workflows_json.as_str()), (1, "[2]"));

    // Claims on starting a server: one holder until it releases or the claim expires.
    let now = db.now();
    assert_eq!(
        db.claim_server("carol", "default", "hub-a", now + 30)
            .await
            .unwrap(),
        None
    );
    assert!(db.claimed("carol", "default").await.unwrap());
    assert_eq!(
        db.claim_server("carol", "default", "hub-b", now + 30)
            .await
            .unwrap(),
        Some("hub-a".to_string()),
        "another hub's live claim is kept"
    );
    assert_eq!(
        db.claim_server("carol", "default", "hub-a", now + 40)
            .await
            .unwrap(),
        None,
        "the holder may renew"
    );
    db.release_claim("carol", "default", "hub-b").await.unwrap();
    assert!(
        db.claimed("carol", "default").await.unwrap(),
        "only the holder releases"
    );
    db.release_claim("carol", "default", "hub-a").await.unwrap();
    assert!(!db.claimed("carol", "default").await.unwrap());
    assert_eq!(
        db.claim_server("carol", "default", "hub-b", now - 1)
            .await
            .unwrap(),
        None
    );
    assert!(
        !db.claimed("carol", "default").await.unwrap(),
        "an expired claim counts for nothing"
    );
    assert_eq!(
        db.claim_server("carol", "default", "hub-a", now + 30)
            .await
            .unwrap(),
        None,
        "and is taken over"
    );
    db.release_claims("hub-b").await.unwrap();
    assert!(
        db.claimed("carol", "default").await.unwrap(),
        "another hub's claims stay"
    );
    db.release_claims("hub-a").await.unwrap();
    assert!(
        !db.claimed("carol", "default").await.unwrap(),
        "a restarted hub holds none"
    );

    // Activity: merged over hubs; watchers only from hubs that reported recently.
    db.put_activity("hub-a", now, &[("carol".into(), now - 50, 2)])
        .await
        .unwrap();
    db.put_activity(
        "hub-b",
        now,
        &[("carol".into(), now - 10, 1), ("dave".into(), now - 5, 0)],
    )
    .await
    .unwrap();
    let act = db.activity(now - 60).await.unwrap();
    assert_eq!(
        act,
        vec![
            ("carol".to_string(), now - 10, 3),
            ("dave".to_string(), now - 5, 0)
        ]
    );
    // hub-a stops watching carol: its watchers go, her last use stays.
    db.put_activity("hub-a", now + 1, &[]).await.unwrap();
    assert_eq!(
        db.activity(now - 60).await.unwrap()[0],
        ("carol".to_string(), now - 10, 1)
    );
    // A hub that stopped reporting: its watchers no longer count.
    assert_eq!(
        db.activity(now + 1).await.unwrap()[0],
        ("carol".to_string(), now - 10, 0)
    );
    // Starts queued in a batch system: stored, updated by the poll, taken exactly once.
    let queued = PendingSpawn {
        owner: "erin".into(),
        name: "default".into(),
        placement: Placement::Slurm {
            cluster: "c1".into(),
            job_id: "77".into(),
        },
        token_hash: hash_secret("erin-token"),
        profile: Some("batch".into()),
        actor: "erin".into(),
        hub: "hub-a".into(),
        since: now,
        state: "submitted".into(),
        failed: false,
    };
    db.put_pending(&queued).await.unwrap();
    assert_eq!(db.pending_spawns().await.unwrap(), vec![queued.clone()]);
    assert!(db
        .set_pending_state(&queued.token_hash, "pending (PartitionDown)", false)
        .await
        .unwrap());
    assert!(!db
        .set_pending_state(&hash_secret("nobody"), "x", true)
        .await
        .unwrap());
    let got = db.pending_spawns().await.unwrap();
    assert_eq!(
        (got[0].state.as_str(), got[0].failed),
        ("pending (PartitionDown)", false)
    );
    // A second submit for the same server replaces the first (one row per server).
    let again = PendingSpawn {
        token_hash: hash_secret("erin-token-2"),
        placement: Placement::Slurm {
            cluster: "c1".into(),
            job_id: "78".into(),
        },
        ..queued.clone()
    };
    db.put_pending(&again).await.unwrap();
    assert_eq!(db.pending_spawns().await.unwrap(), vec![again.clone()]);
    assert_eq!(db.take_pending(&queued.token_hash).await.unwrap(), None);
    assert_eq!(
        db.take_pending(&again.token_hash).await.unwrap(),
        Some(again.clone())
    );
    assert_eq!(db.take_pending(&again.token_hash).await.unwrap(), None);
    assert!(db.pending_spawns().await.unwrap().is_empty());
    // A server keeps the profile it was started on.
    let mut batch = server("erin", 4100);
    batch.profile = Some("batch".into());
    batch.hub = Some("hub-a".into());
    db.put_server(&batch, Expect::Any).await.unwrap();
    let stored = db.servers().await.unwrap();
    let erin = stored.iter().find(|s| s.owner == "erin").unwrap();
    assert_eq!(erin.profile.as_deref(), Some("batch"));
    assert_eq!(
        erin.hub.as_deref(),
        Some("hub-a"),
        "the hub that started it"
    );
    assert!(db
        .delete_server("erin", "default", Expect::Any)
        .await
        .unwrap());

    // Audit chain heads: one per hub, never moved back.
    let h = |n: u8| format!("{n:02x}").repeat(32);
    assert!(db.put_audit_head("hub-a", 5, &h(1), now).await.unwrap());
    assert!(
        db.put_audit_head("hub-a", 5, &h(1), now + 1).await.unwrap(),
        "the same head again is fine"
    );
    assert!(db.put_audit_head("hub-a", 9, &h(2), now + 2).await.unwrap());
    assert!(
        !db.put_audit_head("hub-a", 8, &h(3), now + 3).await.unwrap(),
        "a head never moves back"
    );
    assert!(
        !db.put_audit_head("hub-a", 9, &h(4), now + 3).await.unwrap(),
        "nor names another record at the same seq"
    );
    assert!(db.put_audit_head("hub-b", 1, &h(5), now).await.unwrap());
    assert_eq!(
        db.audit_heads().await.unwrap(),
        vec![
            AuditHeadRow {
                hub: "hub-a".into(),
                seq: 9,
                hash: h(2),
                published: now + 2
            },
            AuditHeadRow {
                hub: "hub-b".into(),
                seq: 1,
                hash: h(5),
                published: now
            },
        ]
    );
    assert!(
        db.put_audit_head("hub-c", u64::MAX, &h(6), now)
            .await
            .is_err(),
        "a seq the database cannot hold is an error, not a wrap"
    );

    // The deployment checkpoint: written by the leader at its epoch, never by an
    // older epoch (a deposed leader).
    assert_eq!(db.audit_checkpoint().await.unwrap(), None);
    let leading = db.leadership("hub-a");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !leading.is_leader() {
        assert!(std::time::Instant::now() < deadline, "hub-a never led");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let epoch = leading.epoch();
    assert!(epoch >= 1);
    assert!(db
        .put_audit_checkpoint("hub-a", epoch, now, "{\"n\":1}")
        .await
        .unwrap());
    assert!(db
        .put_audit_checkpoint("hub-a", epoch, now + 1, "{\"n\":2}")
        .await
        .unwrap());
    assert!(
        !db.put_audit_checkpoint("hub-a", epoch - 1, now + 2, "{\"n\":0}")
            .await
            .unwrap(),
        "an older epoch writes nothing"
    );
    assert_eq!(
        db.audit_checkpoint().await.unwrap().as_deref(),
        Some("{\"n\":2}")
    );

    // Operations in flight: noted, listed, closed exactly once.
    let op = InflightOp {
        request_id: "rid-1".into(),
        hub: "hub-a".into(),
        owner: "erin".into(),
        intent: "{\"kind\":\"intent\"}".into(),
        intent_seq: 41,
        since: now,
    };
    db.put_inflight(&op).await.unwrap();
    assert_eq!(db.inflight_ops().await.unwrap(), vec![op.clone()]);
    assert!(db.take_inflight("rid-1").await.unwrap());
    assert!(!db.take_inflight("rid-1").await.unwrap(), "closed once");
    assert!(db.inflight_ops().await.unwrap().is_empty());
    db.ping().await.unwrap();
    epoch
}

#[tokio::test]
async fn sqlite_keeps_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteStore::open(&dir.path().join("hub.db"), Clock::default()).unwrap();
    assert_eq!(contract(&db).await, 1, "one hub leads at epoch 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_the_store_contract_and_serves_two_hubs() {
    if !steward_e2e::require_root("postgres_keeps_the_store_contract_and_serves_two_hubs") {
        return;
    }
    let pg = Postgres::start();
    let a = Arc::new(
        PostgresStore::connect(&pg.url(), Clock::default())
            .await
            .unwrap(),
    );
    // A second hub on the same database: the schema is already there, nothing re-run.
    let b = Arc::new(
        PostgresStore::connect(&pg.url(), Clock::default())
            .await
            .unwrap(),
    );
    assert_eq!(
        b.schema_version().await.unwrap(),
        steward_hub::store::postgres::SCHEMA_VERSION
    );
    let epoch = contract(a.as_ref()).await;
    // A hub is connected while its leadership connection is (the contract made hub-a's).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !a.hub_connected("hub-a").await.unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "hub-a never seen connected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!a.hub_connected("hub-nobody").await.unwrap());

    // Only the hub the leader row names, at its epoch, writes the checkpoint; once
    // another hub took over (a higher epoch), the old leader's writes are refused.
    assert!(!b
        .put_audit_checkpoint("hub-b", epoch, a.now(), "{\"by\":\"b\"}")
        .await
        .unwrap());
    assert!(!a
        .put_audit_checkpoint("hub-a", epoch + 1, a.now(), "{\"by\":\"a\"}")
        .await
        .unwrap());
    pg.psql(
        steward_e2e::postgres::DATABASE,
        "UPDATE leader SET epoch = epoch + 1, hub = 'hub-b'",
    );
    assert!(!a
        .put_audit_checkpoint("hub-a", epoch, a.now(), "{\"by\":\"a\"}")
        .await
        .unwrap());
    assert!(b
        .put_audit_checkpoint("hub-b", epoch + 1, a.now(), "{\"by\":\"b\"}")
        .await
        .unwrap());
    assert_eq!(
        a.audit_checkpoint().await.unwrap().as_deref(),
        Some("{\"by\":\"b\"}")
    );

    // One clock: both hubs read the database's time.
    assert!((a.now() - b.now()).abs() <= 1);
    assert!(
        (a.now()
            - std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64)
            .abs()
            <= 2
    );

    // A logout on A reaches B's change feed (B must drop anything it cached).
    let mut feed = b.changes().expect("a shared store announces changes");
    let s = session("shared");
    a.insert_session(&s).await.unwrap();
    let id_hash = s.id_hash().unwrap().to_string();
    assert!(
        b.session(&id_hash).await.unwrap().is_some(),
        "B sees A's session"
    );
    assert!(a.delete_session(&id_hash).await.unwrap());
    assert!(
        b.session(&id_hash).await.unwrap().is_none(),
        "refused on B at once"
    );
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match feed.recv().await {
                Ok(Change::Session { id_hash: h }) if h == id_hash => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    })
    .await;
    assert_eq!(got, Ok(true), "B is told of A's logout");

    // Two hubs racing to start the same owner's server: exactly one row, one winner.
    for round in 0..20u16 {
        let owner = format!("race{round}");
        let (one, two) = (server(&owner, 1), server(&owner, 2));
        let (ra, rb) = tokio::join!(
            a.put_server(&one, Expect::Absent),
            b.put_server(&two, Expect::Absent)
        );
        let winners = [ra.unwrap(), rb.unwrap()]
            .iter()
            .filter(|r| r.is_some())
            .count();
        assert_eq!(
            winners, 1,
            "round {round}: exactly one hub starts the server"
        );
    }
    assert_eq!(a.servers().await.unwrap().len(), 20);

    // Two hubs claiming the same start at once: exactly one gets it.
    for round in 0..20u16 {
        let owner = format!("claim{round}");
        let until = a.now() + 30;
        let (ra, rb) = tokio::join!(
            a.claim_server(&owner, "default", "hub-a", until),
            b.claim_server(&owner, "default", "hub-b", until)
        );
        let got = [ra.unwrap(), rb.unwrap()]
            .iter()
            .filter(|r| r.is_none())
            .count();
        assert_eq!(got, 1, "round {round}: exactly one hub holds the claim");
    }
    assert_eq!(a.kind(), "postgresql");
}

/// `steward database migrate`: a SQLite hub's state copied into an empty PostgreSQL
/// database named by the config, every row as it was; a second run refuses to merge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steward_database_migrate_copies_sqlite_into_postgresql() {
    if !steward_e2e::require_root("steward_database_migrate_copies_sqlite_into_postgresql") {
        return;
    }
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("state");
    std::fs::create_dir_all(&data).unwrap();
    let sqlite = SqliteStore::open(&data.join("hub.db"), Clock::default()).unwrap();
    contract(&sqlite).await;
    sqlite.insert_session(&session("migrated")).await.unwrap();
    sqlite
        .put_server(&server("migrated-owner", 4242), Expect::Any)
        .await
        .unwrap();
    let queued = PendingSpawn {
        owner: "migrated-queued".into(),
        name: "default".into(),
        placement: Placement::Slurm {
            cluster: "c1".into(),
            job_id: "9".into(),
        },
        token_hash: hash_secret("migrated-token"),
        profile: None,
        actor: "migrated-queued".into(),
        hub: "hub-a".into(),
        since: 1,
        state: "pending (Priority)".into(),
        failed: false,
    };
    sqlite.put_pending(&queued).await.unwrap();
    let before = (
        sqlite.sessions().await.unwrap(),
        sqlite.tokens(None).await.unwrap(),
        sqlite.servers().await.unwrap(),
        sqlite.overviews().await.unwrap(),
    );
    assert!(!before.0.is_empty() && !before.1.is_empty() && !before.2.is_empty());
    drop(sqlite);
    let pw = dir.path().join("db-password");
    std::fs::write(&pw, format!("{}\n", pg.password)).unwrap();
    let cfg = dir.path().join("steward.toml");
    let url_without_password = format!(
        "postgresql://{}@127.0.0.1:{}/{}",
        steward_e2e::postgres::SUPERUSER,
        pg.port,
        steward_e2e::postgres::DATABASE
    );
    std::fs::write(
        &cfg,
        format!(
            "public_url = \"https://127.0.0.1:8443\"\nlisten = \"127.0.0.1:8443\"\ndata_dir = \"{}\"\n[tls]\ncert = \"/c\"\nkey = \"/k\"\n[policy]\nsite = \"/p\"\n[spawner]\nhelper = \"/h\"\n[audit]\ndir = \"/a\"\n[database]\nurl = \"{url_without_password}\"\npassword_file = \"{}\"\n",
            data.display(),
            pw.display()
        ),
    )
    .unwrap();
    let migrate = || {
        std::process::Command::new(steward_e2e::bin("steward"))
            .args(["database", "migrate", "-c"])
            .arg(&cfg)
            .output()
            .unwrap()
    };
    // A password file others can read is refused, naming it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = migrate();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("password_file") && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = migrate();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("sessions") && !said.contains(&pg.password),
        "{said}"
    );
    let to = PostgresStore::connect(&pg.url(), Clock::default())
        .await
        .unwrap();
    assert_eq!(to.sessions().await.unwrap(), before.0);
    assert_eq!(to.tokens(None).await.unwrap(), before.1);
    let servers = to.servers().await.unwrap();
    assert_eq!(servers.len(), before.2.len());
    for (got, want) in servers.iter().zip(&before.2) {
        assert_eq!(
            (&got.owner, &got.placement, &got.endpoint, got.pid),
            (&want.owner, &want.placement, &want.endpoint, want.pid)
        );
    }
    assert_eq!(to.overviews().await.unwrap(), before.3);
    assert_eq!(to.pending_spawns().await.unwrap(), vec![queued]);
    let again = migrate();
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && err.contains("migrate into an empty database"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_is_a_clear_error_and_recovers_by_itself() {
    if !steward_e2e::require_root("postgres_down_is_a_clear_error_and_recovers_by_itself") {
        return;
    }
    let mut pg = Postgres::start();
    let db = PostgresStore::connect(&pg.url(), Clock::default())
        .await
        .unwrap();
    db.insert_session(&session("before")).await.unwrap();
    pg.stop();
    let e = db
        .session(&hash_secret("before"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("PostgreSQL"), "{e}");
    assert!(db.ping().await.is_err());
    // Nothing half-written: a failed insert leaves no row once the database is back.
    assert!(db.insert_session(&session("during")).await.is_err());
    pg.resume();
    let back = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if db.ping().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(back.is_ok(), "the store reconnects by itself");
    assert!(db.session(&hash_secret("before")).await.unwrap().is_some());
    assert!(db.session(&hash_secret("during")).await.unwrap().is_none());

    // A URL that cannot be parsed names the key and never echoes the password.
    let e = PostgresStore::connect(
        "postgresql://u:secretpw@127.0.0.1:notaport/x",
        Clock::default(),
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("[database] url") && !e.contains("secretpw"),
        "{e}"
    );
}
