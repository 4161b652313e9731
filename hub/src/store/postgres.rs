//! [`Store`] on PostgreSQL: one database shared by every hub of a deployment.
//!
//! What differs from SQLite, and why:
//! - **No session cache.** A logout or revocation on one hub must stop the cookie on
//!   every other hub at once, so every lookup asks the database (one indexed query).
//! - **Time is the database's.** [`Store::now`] is the hub's clock plus the offset to
//!   the database clock, measured at connect and refreshed in the background, so an
//!   elevation deadline set by hub A expires at the same instant on hub B whatever
//!   their system clocks say.
//! - **Changes are announced.** Every write that another hub may have cached sends a
//!   `NOTIFY steward_changes` in the same transaction; [`PostgresStore::changes`] hands
//!   out receivers fed from a dedicated `LISTEN` connection.
//! - **Conditional writes are single statements** (`… WHERE epoch = $n`, `INSERT … ON
//!   CONFLICT DO NOTHING`), so two hubs racing to start one owner's server get exactly
//!   one row.
//!
//! Schema changes are numbered migrations recorded in `schema_version`, applied once
//! under an advisory lock so two hubs starting together do not both migrate.
//! This module must not hold policy or HTTP logic.

use super::{
    seq_from_db, seq_to_db, AuditHeadRow, Change, Clock, Expect, InflightOp, OverviewRow,
    PendingSpawn, ServerRow, Session, SessionKind, Store, StoreError, TokenRow,
};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use steward_protocol::{Endpoint, OpClass, Placement};
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls, Row};

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        groups TEXT NOT NULL,
        class TEXT NOT NULL,
        deadline BIGINT,
        csrf TEXT NOT NULL,
        created BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        addr TEXT NOT NULL,
        expiry_audited BOOLEAN NOT NULL DEFAULT FALSE,
        uid BIGINT
     );
     CREATE INDEX sessions_user ON sessions(username);
     CREATE TABLE servers (
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        pid BIGINT NOT NULL,
        placement TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        cgroup TEXT NOT NULL,
        started BIGINT NOT NULL,
        epoch BIGINT NOT NULL,
        PRIMARY KEY (owner, name)
     );
     CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL,
        username TEXT NOT NULL,
        name TEXT NOT NULL,
        class TEXT NOT NULL,
        created BIGINT NOT NULL,
        expires BIGINT NOT NULL,
        revoked BOOLEAN NOT NULL DEFAULT FALSE,
        uid BIGINT
     );
     CREATE TABLE overview (
        owner TEXT PRIMARY KEY,
        workflows TEXT NOT NULL,
        updated BIGINT NOT NULL
     );",
    // 2: claims on starting a server, activity per hub (see the Store trait), and the
    // leader's fencing epoch (see `leader.rs`).
    "CREATE TABLE server_claims (
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        hub TEXT NOT NULL,
        until BIGINT NOT NULL,
        PRIMARY KEY (owner, name)
     );
     CREATE TABLE server_activity (
        owner TEXT NOT NULL,
        hub TEXT NOT NULL,
        last BIGINT NOT NULL,
        watchers BIGINT NOT NULL,
        seen BIGINT NOT NULL,
        PRIMARY KEY (owner, hub)
     );
     CREATE TABLE leader (
        id INT PRIMARY KEY,
        epoch BIGINT NOT NULL,
        hub TEXT NOT NULL,
        since BIGINT NOT NULL
     );",
    // 3: starts submitted to a batch system that have not registered yet, and the
    // profile each server was started on.
    "ALTER TABLE servers ADD COLUMN profile TEXT;
     CREATE TABLE pending_spawns (
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        placement TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        profile TEXT,
        actor TEXT NOT NULL,
        hub TEXT NOT NULL,
        since BIGINT NOT NULL,
        state TEXT NOT NULL,
        failed BOOLEAN NOT NULL DEFAULT FALSE,
        PRIMARY KEY (owner, name)
     );",
    // 4: each hub's audit chain head, and the leader's signed checkpoint over all of
    // them (one row: the newest; see docs/ha.md).
    "CREATE TABLE audit_heads (
        hub TEXT PRIMARY KEY,
        seq BIGINT NOT NULL,
        hash TEXT NOT NULL,
        published BIGINT NOT NULL
     );
     CREATE TABLE audit_checkpoint (
        id INT PRIMARY KEY CHECK (id = 1),
        epoch BIGINT NOT NULL,
        leader TEXT NOT NULL,
        written BIGINT NOT NULL,
        body TEXT NOT NULL
     );",
    // 5: operations in flight, for the leader to reconcile those of a hub that died.
    "CREATE TABLE inflight_ops (
        request_id TEXT PRIMARY KEY,
        hub TEXT NOT NULL,
        owner TEXT NOT NULL,
        intent TEXT NOT NULL,
        intent_seq BIGINT NOT NULL,
        since BIGINT NOT NULL
     );",
    // 6: the hub that started each server.
    "ALTER TABLE servers ADD COLUMN hub TEXT;",
];

/// The schema version this hub writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The channel every hub listens on; payloads are JSON [`ChangeNote`]s.
const CHANNEL: &str = "steward_changes";

/// Key of the advisory lock taken while migrating (arbitrary, fixed: "stwd").
const MIGRATION_LOCK: i64 = 0x7374_7764;

/// How often the offset to the database clock is measured again.
const CLOCK_REFRESH: Duration = Duration::from_secs(30);

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum ChangeNote {
    Session { id_hash: String },
    Token { id: String },
    Server { owner: String, name: String },
}

impl From<ChangeNote> for Change {
    fn from(n: ChangeNote) -> Change {
        match n {
            ChangeNote::Session { id_hash } => Change::Session { id_hash },
            ChangeNote::Token { id } => Change::Token { id },
            ChangeNote::Server { owner, name } => Change::Server { owner, name },
        }
    }
}

/// A note as sent: with the sending store's origin, so that a hub does not act on its
/// own changes (it applied them already; evicting its own rows would only make it read
/// them back). A note without one (an older hub) is another hub's.
#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope {
    #[serde(default)]
    o: u64,
    #[serde(flatten)]
    note: ChangeNote,
}

fn note_json(origin: u64, n: ChangeNote) -> String {
    serde_json::to_string(&Envelope { o: origin, note: n }).unwrap_or_default()
}

pub struct PostgresStore {
    pool: Pool,
    clock: Clock,
    /// Database clock minus this host's system clock, in seconds.
    offset: Arc<AtomicI64>,
    changes: broadcast::Sender<Change>,
    /// For the leadership connection, which must not be a pooled one.
    conn_cfg: tokio_postgres::Config,
    /// Random, per store: marks the change notes this store sends.
    origin: u64,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("PostgreSQL: {e}"))
}

/// A password never reaches a log line or an error message.
pub fn redact_url(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(cfg) => {
            let hosts: Vec<String> = cfg
                .get_hosts()
                .iter()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(s) => s.clone(),
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .collect();
            format!(
                "postgresql://{}@{}/{}",
                cfg.get_user().unwrap_or("?"),
                hosts.join(","),
                cfg.get_dbname().unwrap_or("?")
            )
        }
        Err(_) => "<unparsable database url>".into(),
    }
}

fn json_col<T: serde::de::DeserializeOwned>(row: &Row, idx: usize) -> Result<T, StoreError> {
    let text: String = row.try_get(idx).map_err(backend)?;
    serde_json::from_str(&text).map_err(|e| backend(format!("column {idx}: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(backend)
}

fn class_of(text: &str) -> OpClass {
    // A class this hub does not know grants the least, never more.
    text.parse().unwrap_or(OpClass::Read)
}

fn uid_col(r: &Row, idx: usize) -> Result<Option<u32>, StoreError> {
    let v: Option<i64> = r.try_get(idx).map_err(backend)?;
    v.map(|u| u32::try_from(u).map_err(|_| backend(format!("uid {u} out of range"))))
        .transpose()
}

fn session_from_row(r: &Row) -> Result<Session, StoreError> {
    let groups: String = r.try_get(2).map_err(backend)?;
    let class: String = r.try_get(3).map_err(backend)?;
    Ok(Session {
        kind: SessionKind::Cookie {
            id_hash: r.try_get(0).map_err(backend)?,
        },
        user: r.try_get(1).map_err(backend)?,
        groups: serde_json::from_str(&groups).unwrap_or_default(),
        class: class_of(&class),
        deadline: r.try_get(4).map_err(backend)?,
        csrf: r.try_get(5).map_err(backend)?,
        created: r.try_get(6).map_err(backend)?,
        last_seen: r.try_get(7).map_err(backend)?,
        addr: r.try_get(8).map_err(backend)?,
        expiry_audited: r.try_get(9).map_err(backend)?,
        uid: uid_col(r, 10)?,
    })
}

fn server_from_row(r: &Row) -> Result<ServerRow, StoreError> {
    let pid: i64 = r.try_get(2).map_err(backend)?;
    Ok(ServerRow {
        owner: r.try_get(0).map_err(backend)?,
        name: r.try_get(1).map_err(backend)?,
        pid: u32::try_from(pid).map_err(|_| backend(format!("pid {pid} out of range")))?,
        placement: json_col::<Placement>(r, 3)?,
        endpoint: json_col::<Endpoint>(r, 4)?,
        cgroup: r.try_get(5).map_err(backend)?,
        started: r.try_get(6).map_err(backend)?,
        epoch: r.try_get(7).map_err(backend)?,
        profile: r.try_get(8).map_err(backend)?,
        hub: r.try_get(9).map_err(backend)?,
    })
}

const PENDING_COLUMNS: &str =
    "owner, name, placement, token_hash, profile, actor, hub, since, state, failed";

fn pending_from_row(r: &Row) -> Result<PendingSpawn, StoreError> {
    Ok(PendingSpawn {
        owner: r.try_get(0).map_err(backend)?,
        name: r.try_get(1).map_err(backend)?,
        placement: json_col::<Placement>(r, 2)?,
        token_hash: r.try_get(3).map_err(backend)?,
        profile: r.try_get(4).map_err(backend)?,
        actor: r.try_get(5).map_err(backend)?,
        hub: r.try_get(6).map_err(backend)?,
        since: r.try_get(7).map_err(backend)?,
        state: r.try_get(8).map_err(backend)?,
        failed: r.try_get(9).map_err(backend)?,
    })
}

fn token_from_row(r: &Row) -> Result<TokenRow, StoreError> {
    let class: String = r.try_get(4).map_err(backend)?;
    Ok(TokenRow {
        id: r.try_get(0).map_err(backend)?,
        hash: r.try_get(1).map_err(backend)?,
        user: r.try_get(2).map_err(backend)?,
        name: r.try_get(3).map_err(backend)?,
        class: class_of(&class),
        created: r.try_get(5).map_err(backend)?,
        expires: r.try_get(6).map_err(backend)?,
        revoked: r.try_get(7).map_err(backend)?,
        uid: uid_col(r, 8)?,
    })
}

const SESSION_COLUMNS: &str =
    "id_hash, username, groups, class, deadline, csrf, created, last_seen, addr, expiry_audited, uid";
const TOKEN_COLUMNS: &str = "id, hash, username, name, class, created, expires, revoked, uid";
const SERVER_COLUMNS: &str =
    "owner, name, pid, placement, endpoint, cgroup, started, epoch, profile, hub";

/// Database clock minus system clock, in whole seconds.
async fn measure_offset(client: &tokio_postgres::Client) -> Result<i64, StoreError> {
    let row = client
        .query_one(
            "SELECT floor(extract(epoch FROM clock_timestamp()))::bigint",
            &[],
        )
        .await
        .map_err(backend)?;
    let db: i64 = row.try_get(0).map_err(backend)?;
    Ok(db - chrono::Utc::now().timestamp())
}

/// A file holding one secret: not readable by group or others, first line only.
fn read_secret_file(path: &std::path::Path) -> Result<String, StoreError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        StoreError::Backend(format!("database.password_file {}: {e}", path.display()))
    })?;
    if meta.mode() & 0o077 != 0 {
        return Err(StoreError::Backend(format!(
            "database.password_file {}: mode {:o} lets others read it; chmod 600",
            path.display(),
            meta.mode() & 0o777
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        StoreError::Backend(format!("database.password_file {}: {e}", path.display()))
    })?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// The store `[database]` names: its url, and the password from `password_file`.
pub async fn open_configured(
    url: &str,
    password_file: Option<&std::path::Path>,
    clock: Clock,
) -> Result<PostgresStore, StoreError> {
    let password = match password_file {
        Some(path) => Some(read_secret_file(path)?),
        None => None,
    };
    PostgresStore::connect_with_password(url, password.as_deref(), clock).await
}

impl PostgresStore {
    /// Connects, migrates the schema and starts listening for other hubs' changes.
    pub async fn connect(url: &str, clock: Clock) -> Result<PostgresStore, StoreError> {
        Self::connect_with_password(url, None, clock).await
    }

    /// [`connect`](Self::connect), with the password from `[database] password_file`
    /// instead of the URL.
    pub async fn connect_with_password(
        url: &str,
        password: Option<&str>,
        clock: Clock,
    ) -> Result<PostgresStore, StoreError> {
        let mut cfg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("[database] url {}: {e}", redact_url(url))))?;
        if let Some(p) = password {
            cfg.password(p);
        }
        let mgr = Manager::from_config(
            cfg.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(16)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(backend)?;
        let store = PostgresStore {
            pool,
            clock,
            offset: Arc::new(AtomicI64::new(0)),
            changes: broadcast::channel(1024).0,
            conn_cfg: cfg.clone(),
            origin: rand::random::<u64>() | 1,
        };
        store.migrate(url).await?;
        {
            let client = store.client().await?;
            store
                .offset
                .store(measure_offset(&client).await?, Ordering::Relaxed);
        }
        store.spawn_clock_refresh();
        // A hub must not serve before it hears the others: a change announced between
        // its start and its LISTEN would be lost.
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        store.spawn_listener(cfg, ready_tx);
        match tokio::time::timeout(Duration::from_secs(10), ready_rx).await {
            Ok(Ok(())) => Ok(store),
            _ => Err(StoreError::Backend(format!(
                "PostgreSQL {}: could not LISTEN {CHANNEL} within 10 s",
                redact_url(url)
            ))),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| {
            StoreError::Backend(format!("PostgreSQL unreachable (no connection): {e}"))
        })
    }

    async fn migrate(&self, url: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // Transaction-scoped: released at commit, even if this hub dies mid-way.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(backend)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .await
            .map_err(backend)?;
        let found: Option<i64> = tx
            .query_one("SELECT MAX(version) FROM schema_version", &[])
            .await
            .map_err(backend)?
            .try_get(0)
            .map_err(backend)?;
        let found = found.unwrap_or(0);
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: redact_url(url),
                found,
                known: SCHEMA_VERSION,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.batch_execute(sql).await.map_err(backend)?;
            tx.execute("DELETE FROM schema_version", &[])
                .await
                .map_err(backend)?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&(i as i64 + 1)],
            )
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    /// The schema version recorded in the database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let v: Option<i64> = client
            .query_one("SELECT MAX(version) FROM schema_version", &[])
            .await
            .map_err(backend)?
            .try_get(0)
            .map_err(backend)?;
        Ok(v.unwrap_or(0))
    }

    fn spawn_clock_refresh(&self) {
        let pool = self.pool.clone();
        let offset = Arc::downgrade(&self.offset);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(CLOCK_REFRESH).await;
                let Some(offset) = offset.upgrade() else {
                    return;
                };
                if let Ok(client) = pool.get().await {
                    if let Ok(o) = measure_offset(&client).await {
                        offset.store(o, Ordering::Relaxed);
                    }
                }
            }
        });
    }

    /// Keeps one connection in `LISTEN steward_changes`, reconnecting with a back-off
    /// while the database is away. Every reconnect announces a change of everything
    /// (an empty session hash), since notifications sent meanwhile are lost.
    fn spawn_listener(&self, cfg: tokio_postgres::Config, ready: tokio::sync::oneshot::Sender<()>) {
        let mut ready = Some(ready);
        let tx = self.changes.clone();
        let origin = self.origin;
        // Ends with the store: the offset cell lives exactly as long as it does.
        let alive = Arc::downgrade(&self.offset);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                if alive.upgrade().is_none() {
                    return;
                }
                if let Ok((client, mut conn)) = cfg.connect(NoTls).await {
                    backoff = Duration::from_millis(100);
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
                    let listen_sql = format!("LISTEN {CHANNEL}");
                    let listening = {
                        let listen = client.batch_execute(&listen_sql);
                        // The connection must be driven while LISTEN is sent.
                        let mut listen = std::pin::pin!(listen);
                        loop {
                            tokio::select! {
                                r = &mut listen => break r.is_ok(),
                                m = messages.next() => if m.is_none() { break false },
                            }
                        }
                    };
                    if listening {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                        let _ = tx.send(Change::Session {
                            id_hash: String::new(),
                        });
                        while let Some(m) = messages.next().await {
                            match m {
                                Ok(AsyncMessage::Notification(n)) => {
                                    match serde_json::from_str::<Envelope>(n.payload()) {
                                        Ok(e) if e.o == origin => {}
                                        Ok(e) => {
                                            let _ = tx.send(e.note.into());
                                        }
                                        Err(_) => {}
                                    }
                                }
                                Ok(_) => {}
                                Err(_) => break,
                            }
                        }
                    }
                    drop(client);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
    }

    /// Runs `sql` and announces `note` to the other hubs in one transaction, so a
    /// change is never seen without its notification or the reverse.
    async fn write_and_notify(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        note: ChangeNote,
    ) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let n = tx.execute(sql, params).await.map_err(backend)?;
        if n > 0 {
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&CHANNEL, &note_json(self.origin, note)],
            )
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(n)
    }

    async fn token_rows(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<TokenRow>, StoreError> {
        let client = self.client().await?;
        let rows = client.query(sql, params).await.map_err(backend)?;
        rows.iter().map(token_from_row).collect()
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn now(&self) -> i64 {
        self.clock.now_secs() + self.offset.load(Ordering::Relaxed)
    }

    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        Some(self.changes.subscribe())
    }

    async fn insert_session(&self, s: &Session) -> Result<(), StoreError> {
        let Some(id_hash) = s.id_hash() else {
            return Err(StoreError::Backend(
                "a token session is not stored as a session".into(),
            ));
        };
        let groups = to_json(&s.groups)?;
        let client = self.client().await?;
        client
            .execute(
                &format!("INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"),
                &[&id_hash, &s.user, &groups, &s.class.name(), &s.deadline, &s.csrf, &s.created, &s.last_seen, &s.addr, &s.expiry_audited, &s.uid.map(i64::from)],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn session(&self, id_hash: &str) -> Result<Option<Session>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = $1"),
                &[&id_hash],
            )
            .await
            .map_err(backend)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn touch_session(&self, id_hash: &str, now: i64) -> Result<(), StoreError> {
        // Not announced: last_seen changes on every request and no hub caches it.
        let client = self.client().await?;
        client
            .execute(
                "UPDATE sessions SET last_seen = $2 WHERE id_hash = $1 AND last_seen < $2",
                &[&id_hash, &now],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn mark_expiry_audited(&self, id_hash: &str) -> Result<bool, StoreError> {
        let n = self
            .write_and_notify(
                "UPDATE sessions SET expiry_audited = TRUE WHERE id_hash = $1 AND NOT expiry_audited",
                &[&id_hash],
                ChangeNote::Session {
                    id_hash: id_hash.to_string(),
                },
            )
            .await?;
        Ok(n == 1)
    }

    async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        let n = self
            .write_and_notify(
                "DELETE FROM sessions WHERE id_hash = $1",
                &[&id_hash],
                ChangeNote::Session {
                    id_hash: id_hash.to_string(),
                },
            )
            .await?;
        Ok(n > 0)
    }

    async fn sessions(&self) -> Result<Vec<Session>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {SESSION_COLUMNS} FROM sessions ORDER BY created"),
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn insert_token(&self, t: &TokenRow) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                &format!("INSERT INTO api_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, FALSE, $8)"),
                &[&t.id, &t.hash, &t.user, &t.name, &t.class.name(), &t.created, &t.expires, &t.uid.map(i64::from)],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRow>, StoreError> {
        Ok(self
            .token_rows(
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"),
                &[&id],
            )
            .await?
            .into_iter()
            .next())
    }

    async fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenRow>, StoreError> {
        self.token_rows(
            &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE $1::text IS NULL OR username = $1 ORDER BY created"),
            &[&user],
        )
        .await
    }

    async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let n = self
            .write_and_notify(
                "UPDATE api_tokens SET revoked = TRUE WHERE id = $1 AND NOT revoked",
                &[&id],
                ChangeNote::Token { id: id.to_string() },
            )
            .await?;
        Ok(n > 0)
    }

    async fn servers(&self) -> Result<Vec<ServerRow>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {SERVER_COLUMNS} FROM servers ORDER BY owner, name"),
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(server_from_row).collect()
    }

    async fn put_server(&self, s: &ServerRow, expect: Expect) -> Result<Option<i64>, StoreError> {
        let placement = to_json(&s.placement)?;
        let endpoint = to_json(&s.endpoint)?;
        let pid = i64::from(s.pid);
        let sql = match expect {
            Expect::Any => format!(
                "INSERT INTO servers ({SERVER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9)
                 ON CONFLICT (owner, name) DO UPDATE SET pid = excluded.pid, placement = excluded.placement,
                   endpoint = excluded.endpoint, cgroup = excluded.cgroup, started = excluded.started,
                   epoch = servers.epoch + 1, profile = excluded.profile, hub = excluded.hub
                 RETURNING epoch"
            ),
            Expect::Absent => format!(
                "INSERT INTO servers ({SERVER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9)
                 ON CONFLICT (owner, name) DO NOTHING RETURNING epoch"
            ),
            Expect::Epoch(_) => "UPDATE servers SET pid = $3, placement = $4, endpoint = $5, cgroup = $6,
                   started = $7, profile = $8, hub = $9, epoch = epoch + 1
                 WHERE owner = $1 AND name = $2 AND epoch = $10 RETURNING epoch"
                .to_string(),
        };
        let epoch_arg = match expect {
            Expect::Epoch(e) => e,
            _ => 0,
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let row = if matches!(expect, Expect::Epoch(_)) {
            tx.query_opt(
                &sql,
                &[
                    &s.owner, &s.name, &pid, &placement, &endpoint, &s.cgroup, &s.started,
                    &s.profile, &s.hub, &epoch_arg,
                ],
            )
            .await
        } else {
            tx.query_opt(
                &sql,
                &[
                    &s.owner, &s.name, &pid, &placement, &endpoint, &s.cgroup, &s.started,
                    &s.profile, &s.hub,
                ],
            )
            .await
        }
        .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let epoch: i64 = row.try_get(0).map_err(backend)?;
        let note = note_json(
            self.origin,
            ChangeNote::Server {
                owner: s.owner.clone(),
                name: s.name.clone(),
            },
        );
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &note])
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(epoch))
    }

    async fn delete_server(
        &self,
        owner: &str,
        name: &str,
        expect: Expect,
    ) -> Result<bool, StoreError> {
        let note = ChangeNote::Server {
            owner: owner.to_string(),
            name: name.to_string(),
        };
        let n = match expect {
            Expect::Any => {
                self.write_and_notify(
                    "DELETE FROM servers WHERE owner = $1 AND name = $2",
                    &[&owner, &name],
                    note,
                )
                .await?
            }
            Expect::Absent => 0,
            Expect::Epoch(e) => {
                self.write_and_notify(
                    "DELETE FROM servers WHERE owner = $1 AND name = $2 AND epoch = $3",
                    &[&owner, &name, &e],
                    note,
                )
                .await?
            }
        };
        Ok(n > 0)
    }

    async fn put_pending(&self, p: &PendingSpawn) -> Result<(), StoreError> {
        let placement = to_json(&p.placement)?;
        let client = self.client().await?;
        client
            .execute(
                &format!(
                    "INSERT INTO pending_spawns ({PENDING_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (owner, name) DO UPDATE SET placement = excluded.placement,
                       token_hash = excluded.token_hash, profile = excluded.profile,
                       actor = excluded.actor, hub = excluded.hub, since = excluded.since,
                       state = excluded.state, failed = excluded.failed"
                ),
                &[
                    &p.owner,
                    &p.name,
                    &placement,
                    &p.token_hash,
                    &p.profile,
                    &p.actor,
                    &p.hub,
                    &p.since,
                    &p.state,
                    &p.failed,
                ],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn pending_spawns(&self) -> Result<Vec<PendingSpawn>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                &format!(
                    "SELECT {PENDING_COLUMNS} FROM pending_spawns ORDER BY since, owner, name"
                ),
                &[],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(pending_from_row)
            .collect()
    }

    async fn set_pending_state(
        &self,
        token_hash: &str,
        state: &str,
        failed: bool,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE pending_spawns SET state = $2, failed = $3 WHERE token_hash = $1",
                &[&token_hash, &state, &failed],
            )
            .await
            .map_err(backend)?;
        Ok(n > 0)
    }

    async fn take_pending(&self, token_hash: &str) -> Result<Option<PendingSpawn>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!(
                    "DELETE FROM pending_spawns WHERE token_hash = $1 RETURNING {PENDING_COLUMNS}"
                ),
                &[&token_hash],
            )
            .await
            .map_err(backend)?
            .as_ref()
            .map(pending_from_row)
            .transpose()
    }

    async fn put_inflight(&self, op: &InflightOp) -> Result<(), StoreError> {
        let seq = i64::try_from(op.intent_seq).map_err(|_| backend("intent seq out of range"))?;
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO inflight_ops (request_id, hub, owner, intent, intent_seq, since)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (request_id) DO NOTHING",
                &[
                    &op.request_id,
                    &op.hub,
                    &op.owner,
                    &op.intent,
                    &seq,
                    &op.since,
                ],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn take_inflight(&self, request_id: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM inflight_ops WHERE request_id = $1",
                &[&request_id],
            )
            .await
            .map_err(backend)?;
        Ok(n > 0)
    }

    async fn inflight_ops(&self) -> Result<Vec<InflightOp>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT request_id, hub, owner, intent, intent_seq, since FROM inflight_ops
                 ORDER BY since, request_id",
                &[],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|r| {
                let seq: i64 = r.try_get(4).map_err(backend)?;
                Ok(InflightOp {
                    request_id: r.try_get(0).map_err(backend)?,
                    hub: r.try_get(1).map_err(backend)?,
                    owner: r.try_get(2).map_err(backend)?,
                    intent: r.try_get(3).map_err(backend)?,
                    intent_seq: u64::try_from(seq)
                        .map_err(|_| backend("intent seq out of range"))?,
                    since: r.try_get(5).map_err(backend)?,
                })
            })
            .collect()
    }

    async fn hub_connected(&self, hub: &str) -> Result<bool, StoreError> {
        // Every hub holds its leadership connection for as long as it runs, named after
        // the hub (leader.rs); the kernel closes it when the process dies.
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = $1)",
                &[&super::leader::application_name(hub)],
            )
            .await
            .map_err(backend)?;
        row.try_get(0).map_err(backend)
    }

    async fn save_overview(&self, row: &OverviewRow) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO overview (owner, workflows, updated) VALUES ($1, $2, $3)
                 ON CONFLICT (owner) DO UPDATE SET workflows = excluded.workflows, updated = excluded.updated
                 WHERE overview.updated <= excluded.updated",
                &[&row.owner, &row.workflows_json, &row.updated],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn claim_server(
        &self,
        owner: &str,
        name: &str,
        hub: &str,
        until: i64,
    ) -> Result<Option<String>, StoreError> {
        let now = self.now();
        let client = self.client().await?;
        // One statement: the upsert either takes the claim or leaves the holder's, and
        // RETURNING answers only when it took it.
        let took = client
            .query_opt(
                "INSERT INTO server_claims (owner, name, hub, until) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (owner, name) DO UPDATE SET hub = excluded.hub, until = excluded.until
                 WHERE server_claims.until < $5 OR server_claims.hub = excluded.hub
                 RETURNING hub",
                &[&owner, &name, &hub, &until, &now],
            )
            .await
            .map_err(backend)?;
        if took.is_some() {
            return Ok(None);
        }
        let holder = client
            .query_opt(
                "SELECT hub FROM server_claims WHERE owner = $1 AND name = $2",
                &[&owner, &name],
            )
            .await
            .map_err(backend)?;
        Ok(Some(match holder {
            Some(r) => r.try_get(0).map_err(backend)?,
            // Released between the two statements: say so; the caller asks again.
            None => String::new(),
        }))
    }

    async fn claimed(&self, owner: &str, name: &str) -> Result<bool, StoreError> {
        let now = self.now();
        let client = self.client().await?;
        let n: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM server_claims WHERE owner = $1 AND name = $2 AND until >= $3",
                &[&owner, &name, &now],
            )
            .await
            .map_err(backend)?
            .try_get(0)
            .map_err(backend)?;
        Ok(n > 0)
    }

    async fn release_claim(&self, owner: &str, name: &str, hub: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM server_claims WHERE owner = $1 AND name = $2 AND hub = $3",
                &[&owner, &name, &hub],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn release_claims(&self, hub: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM server_claims WHERE hub = $1", &[&hub])
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn put_activity(
        &self,
        hub: &str,
        now: i64,
        rows: &[(String, i64, u32)],
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "UPDATE server_activity SET watchers = 0, seen = $2 WHERE hub = $1",
            &[&hub, &now],
        )
        .await
        .map_err(backend)?;
        for (owner, last, watchers) in rows {
            let watchers = i64::from(*watchers);
            tx.execute(
                "INSERT INTO server_activity (owner, hub, last, watchers, seen) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (owner, hub) DO UPDATE SET last = GREATEST(server_activity.last, excluded.last),
                   watchers = excluded.watchers, seen = excluded.seen",
                &[owner, &hub, last, &watchers, &now],
            )
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn activity(&self, fresh_since: i64) -> Result<Vec<(String, i64, u32)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT owner, MAX(last), SUM(CASE WHEN seen >= $1 THEN watchers ELSE 0 END)::BIGINT
                 FROM server_activity GROUP BY owner ORDER BY owner",
                &[&fresh_since],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let w: i64 = r.try_get(2).map_err(backend)?;
                Ok((
                    r.try_get(0).map_err(backend)?,
                    r.try_get(1).map_err(backend)?,
                    w.clamp(0, u32::MAX.into()) as u32,
                ))
            })
            .collect()
    }

    async fn put_audit_head(
        &self,
        hub: &str,
        seq: u64,
        hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let seq = seq_to_db(seq)?;
        let client = self.client().await?;
        let n = client
            .execute(
                "INSERT INTO audit_heads (hub, seq, hash, published) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (hub) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
                   published = excluded.published
                 WHERE audit_heads.seq < excluded.seq
                   OR (audit_heads.seq = excluded.seq AND audit_heads.hash = excluded.hash)",
                &[&hub, &seq, &hash, &now],
            )
            .await
            .map_err(backend)?;
        Ok(n == 1)
    }

    async fn audit_heads(&self) -> Result<Vec<AuditHeadRow>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT hub, seq, hash, published FROM audit_heads ORDER BY hub",
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(AuditHeadRow {
                    hub: r.try_get(0).map_err(backend)?,
                    seq: seq_from_db(r.try_get(1).map_err(backend)?)?,
                    hash: r.try_get(2).map_err(backend)?,
                    published: r.try_get(3).map_err(backend)?,
                })
            })
            .collect()
    }

    async fn put_audit_checkpoint(
        &self,
        hub: &str,
        epoch: i64,
        now: i64,
        body: &str,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // FOR SHARE: a takeover (which updates this row) waits until this write is
        // committed, so a checkpoint is never stored by a hub that no longer leads.
        let leads = tx
            .query_opt("SELECT epoch, hub FROM leader WHERE id = 1 FOR SHARE", &[])
            .await
            .map_err(backend)?
            .map(|r| -> Result<bool, StoreError> {
                let e: i64 = r.try_get(0).map_err(backend)?;
                let h: String = r.try_get(1).map_err(backend)?;
                Ok(e == epoch && h == hub)
            })
            .transpose()?
            .unwrap_or(false);
        if !leads {
            return Ok(false);
        }
        let n = tx
            .execute(
                "INSERT INTO audit_checkpoint (id, epoch, leader, written, body) VALUES (1, $1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, leader = excluded.leader,
                   written = excluded.written, body = excluded.body
                 WHERE audit_checkpoint.epoch <= excluded.epoch",
                &[&epoch, &hub, &now, &body],
            )
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(n == 1)
    }

    async fn audit_checkpoint(&self) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt("SELECT body FROM audit_checkpoint WHERE id = 1", &[])
            .await
            .map_err(backend)?
            .map(|r| r.try_get(0).map_err(backend))
            .transpose()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(backend)?;
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "postgresql"
    }

    fn leadership(&self, hub: &str) -> Arc<super::Leadership> {
        super::Leadership::contend(self.conn_cfg.clone(), hub)
    }

    async fn overviews(&self) -> Result<Vec<OverviewRow>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT owner, workflows, updated FROM overview ORDER BY owner",
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(OverviewRow {
                    owner: r.try_get(0).map_err(backend)?,
                    workflows_json: r.try_get(1).map_err(backend)?,
                    updated: r.try_get(2).map_err(backend)?,
                })
            })
            .collect()
    }
}
