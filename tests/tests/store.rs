//! The state store's contract, held against both implementations: SQLite (embedded, one
//! hub) and a real PostgreSQL server (shared by several hubs). The PostgreSQL half also
//! proves what two hubs rely on: one winner when both start the same owner's server,
//! changes announced to the other hub, and one clock.

use std::sync::Arc;
use std::time::Duration;
use steward_e2e::postgres::Postgres;
use steward_hub::store::{
    hash_secret, Change, Clock, Expect, OverviewRow, PostgresStore, ServerRow, Session,
    SessionKind, SqliteStore, Store, TokenRow,
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
    }
}

/// What every store must do, whichever database is behind it.
async fn contract(db: &dyn Store) {
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
}

#[tokio::test]
async fn sqlite_keeps_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteStore::open(&dir.path().join("hub.db"), Clock::default()).unwrap();
    contract(&db).await;
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
    contract(a.as_ref()).await;

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
