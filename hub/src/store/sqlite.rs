//! [`Store`] on SQLite: one file in `data_dir`, one hub. Schema changes are numbered
//! migrations recorded in `schema_version`, so a database made by an older hub is
//! brought forward once, in a transaction, on open.
//!
//! Calls run on the caller's thread under one mutex: each is a few microseconds on a
//! WAL database, cheaper than handing it to a blocking pool.

use super::{
    seq_from_db, seq_to_db, AuditHeadRow, Change, Clock, Expect, InflightOp, OverviewRow,
    PendingSpawn, ServerRow, Session, SessionKind, Store, StoreError, TokenRow,
};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use steward_protocol::{Endpoint, OpClass, Placement};

/// How long a session row read from the database is reused. Every change the hub makes
/// clears the row at once; this only bounds how long a change made behind the hub's
/// back (by hand, in the database) goes unseen.
const SESSION_CACHE_TTL: Duration = Duration::from_secs(1);
const SESSION_CACHE_MAX: usize = 10_000;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the tables as the first hubs made them (IF NOT EXISTS: such a database has them
    // already, without a schema_version).
    "CREATE TABLE IF NOT EXISTS sessions (
        id_hash TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        groups TEXT NOT NULL,
        class TEXT NOT NULL,
        deadline INTEGER,
        csrf TEXT NOT NULL,
        created INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        addr TEXT NOT NULL,
        expiry_audited INTEGER NOT NULL DEFAULT 0
     );
     CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user);
     CREATE TABLE IF NOT EXISTS servers (
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        pid INTEGER NOT NULL,
        port INTEGER NOT NULL,
        cgroup TEXT NOT NULL,
        started INTEGER NOT NULL,
        PRIMARY KEY (owner, name)
     );
     CREATE TABLE IF NOT EXISTS api_tokens (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL,
        user TEXT NOT NULL,
        name TEXT NOT NULL,
        class TEXT NOT NULL,
        created INTEGER NOT NULL,
        expires INTEGER NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE IF NOT EXISTS overview (
        owner TEXT PRIMARY KEY,
        workflows TEXT NOT NULL,
        updated INTEGER NOT NULL
     );",
    // 2: a server is where a backend placed it and reachable at an endpoint (JSON of
    // the protocol types), not a loopback port; rows carry an epoch for conditional
    // writes. Every older row was a local server on loopback.
    "CREATE TABLE servers_v2 (
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        pid INTEGER NOT NULL,
        placement TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        cgroup TEXT NOT NULL,
        started INTEGER NOT NULL,
        epoch INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (owner, name)
     );
     INSERT INTO servers_v2 (owner, name, pid, placement, endpoint, cgroup, started, epoch)
        SELECT owner, name, pid, '{\"backend\":\"local\"}',
               json_object('kind', 'tcp', 'host', '127.0.0.1', 'port', port),
               cgroup, started, 1
        FROM servers;
     DROP TABLE servers;
     ALTER TABLE servers_v2 RENAME TO servers;",
    // 3: sessions and tokens are bound to the account's uid, not only its name. Rows
    // from before have none, so a name that has a local account no longer matches
    // them: their owners log in once more.
    "ALTER TABLE sessions ADD COLUMN uid INTEGER;
     ALTER TABLE api_tokens ADD COLUMN uid INTEGER;",
    // 4: claims on starting a server, and activity per hub (see the Store trait).
    "CREATE TABLE server_claims (
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        hub TEXT NOT NULL,
        until INTEGER NOT NULL,
        PRIMARY KEY (owner, name)
     );
     CREATE TABLE server_activity (
        owner TEXT NOT NULL,
        hub TEXT NOT NULL,
        last INTEGER NOT NULL,
        watchers INTEGER NOT NULL,
        seen INTEGER NOT NULL,
        PRIMARY KEY (owner, hub)
     );",
    // 5: starts submitted to a batch system that have not registered yet, and the
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
        since INTEGER NOT NULL,
        state TEXT NOT NULL,
        failed INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (owner, name)
     );",
    // 6: each hub's audit chain head, and the leader's signed checkpoint over all of
    // them (one row: the newest; see docs/ha.md).
    "CREATE TABLE audit_heads (
        hub TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        published INTEGER NOT NULL
     );
     CREATE TABLE audit_checkpoint (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        epoch INTEGER NOT NULL,
        leader TEXT NOT NULL,
        written INTEGER NOT NULL,
        body TEXT NOT NULL
     );",
    // 7: operations in flight (used only where several hubs share a store; kept in
    // both schemas so that the two stay alike).
    "CREATE TABLE inflight_ops (
        request_id TEXT PRIMARY KEY,
        hub TEXT NOT NULL,
        owner TEXT NOT NULL,
        intent TEXT NOT NULL,
        intent_seq INTEGER NOT NULL,
        since INTEGER NOT NULL
     );",
    // 8: the hub that started each server.
    "ALTER TABLE servers ADD COLUMN hub TEXT;",
];

/// The schema version this hub writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub struct SqliteStore {
    conn: Mutex<Connection>,
    session_cache: Mutex<HashMap<String, (Instant, Session)>>,
    clock: Clock,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn json_col<T: serde::de::DeserializeOwned>(idx: usize, text: String) -> rusqlite::Result<T> {
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(e.to_string()))
}

/// Brings the schema up to [`SCHEMA_VERSION`]; refuses a database from a newer hub.
fn migrate(conn: &mut Connection, path: &Path) -> Result<i64, StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(backend)?;
    let found: Option<i64> = conn
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .map_err(backend)?;
    let found = found.unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.display().to_string(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        tx.execute("DELETE FROM schema_version", [])
            .map_err(backend)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            params![i as i64 + 1],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
    }
    Ok(SCHEMA_VERSION)
}

/// Sessions (with their CSRF tokens) and token hashes are the hub's alone: the file is
/// created 0600 and tightened if an older hub or a copy left it readable, whatever the
/// umask or the directory's mode. SQLite gives its -wal and -shm files the same mode.
fn restrict_to_owner(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err =
        |e: std::io::Error| StoreError::Backend(format!("database file {}: {e}", path.display()));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    let mode = f.metadata().map_err(err)?.permissions().mode();
    if mode & 0o077 != 0 {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(err)?;
    }
    Ok(())
}

fn session_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
    let groups: String = r.get(2)?;
    let class: String = r.get(3)?;
    Ok(Session {
        kind: SessionKind::Cookie { id_hash: r.get(0)? },
        user: r.get(1)?,
        groups: serde_json::from_str(&groups).unwrap_or_default(),
        class: class.parse().unwrap_or(OpClass::Read),
        deadline: r.get(4)?,
        csrf: r.get(5)?,
        created: r.get(6)?,
        last_seen: r.get(7)?,
        addr: r.get(8)?,
        expiry_audited: r.get(9)?,
        uid: r.get(10)?,
    })
}

fn server_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ServerRow> {
    Ok(ServerRow {
        owner: r.get(0)?,
        name: r.get(1)?,
        pid: r.get(2)?,
        placement: json_col::<Placement>(3, r.get(3)?)?,
        endpoint: json_col::<Endpoint>(4, r.get(4)?)?,
        cgroup: r.get(5)?,
        started: r.get(6)?,
        epoch: r.get(7)?,
        profile: r.get(8)?,
        hub: r.get(9)?,
    })
}

const PENDING_COLUMNS: &str =
    "owner, name, placement, token_hash, profile, actor, hub, since, state, failed";

fn pending_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PendingSpawn> {
    Ok(PendingSpawn {
        owner: r.get(0)?,
        name: r.get(1)?,
        placement: json_col::<Placement>(2, r.get(2)?)?,
        token_hash: r.get(3)?,
        profile: r.get(4)?,
        actor: r.get(5)?,
        hub: r.get(6)?,
        since: r.get(7)?,
        state: r.get(8)?,
        failed: r.get(9)?,
    })
}

fn token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    let class: String = r.get(4)?;
    Ok(TokenRow {
        id: r.get(0)?,
        hash: r.get(1)?,
        user: r.get(2)?,
        name: r.get(3)?,
        class: class.parse().unwrap_or(OpClass::Read),
        created: r.get(5)?,
        expires: r.get(6)?,
        revoked: r.get(7)?,
        uid: r.get(8)?,
    })
}

const TOKEN_COLUMNS: &str = "id, hash, user, name, class, created, expires, revoked, uid";
const SERVER_COLUMNS: &str =
    "owner, name, pid, placement, endpoint, cgroup, started, epoch, profile, hub";

impl SqliteStore {
    pub fn open(path: &Path, clock: Clock) -> Result<SqliteStore, StoreError> {
        restrict_to_owner(path)?;
        let mut conn = Connection::open(path).map_err(backend)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             PRAGMA busy_timeout=5000;",
        )
        .map_err(backend)?;
        migrate(&mut conn, path)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            session_cache: Mutex::new(HashMap::new()),
            clock,
        })
    }

    /// The schema version recorded in the database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.with(|c| c.query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0)))
    }

    /// Runs `f` on the connection and the session cache together: readers fill the
    /// cache and writers clear it under the same lock, so a stale row cannot be cached
    /// after a write.
    fn with_cache<T>(
        &self,
        f: impl FnOnce(
            &Connection,
            &mut HashMap<String, (Instant, Session)>,
        ) -> Result<T, rusqlite::Error>,
    ) -> Result<T, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let mut cache = self.session_cache.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn, &mut cache).map_err(backend)
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        f(&conn).map_err(backend)
    }

    fn token_rows(&self, sql: &str, arg: Option<&str>) -> Result<Vec<TokenRow>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(sql)?;
            let rows = stmt.query_map(params![arg], token_from_row)?;
            rows.collect()
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn now(&self) -> i64 {
        self.clock.now_secs()
    }

    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }

    async fn insert_session(&self, s: &Session) -> Result<(), StoreError> {
        let Some(id_hash) = s.id_hash() else {
            return Err(StoreError::Backend(
                "a token session is not stored as a session".into(),
            ));
        };
        let groups = to_json(&s.groups)?;
        self.with_cache(|c, cache| {
            cache.remove(id_hash);
            c.execute(
                "INSERT INTO sessions (id_hash, user, groups, class, deadline, csrf, created, last_seen, addr, expiry_audited, uid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![id_hash, s.user, groups, s.class.name(), s.deadline, s.csrf, s.created, s.last_seen, s.addr, s.expiry_audited, s.uid],
            )
            .map(|_| ())
        })
    }

    /// Looked up on every request and every operation, so rows are kept in memory for
    /// [`SESSION_CACHE_TTL`]; every write below clears the row it changes.
    async fn session(&self, id_hash: &str) -> Result<Option<Session>, StoreError> {
        self.with_cache(|c, cache| {
            if let Some((at, s)) = cache.get(id_hash) {
                if at.elapsed() < SESSION_CACHE_TTL {
                    return Ok(Some(s.clone()));
                }
            }
            let row = c
                .prepare_cached(
                    "SELECT id_hash, user, groups, class, deadline, csrf, created, last_seen, addr, expiry_audited, uid
                     FROM sessions WHERE id_hash = ?1",
                )?
                .query_row(params![id_hash], session_from_row)
                .optional()?;
            match &row {
                Some(s) => {
                    if cache.len() >= SESSION_CACHE_MAX {
                        cache.clear();
                    }
                    cache.insert(id_hash.to_string(), (Instant::now(), s.clone()));
                }
                None => {
                    cache.remove(id_hash);
                }
            }
            Ok(row)
        })
    }

    async fn touch_session(&self, id_hash: &str, now: i64) -> Result<(), StoreError> {
        self.with_cache(|c, cache| {
            cache.remove(id_hash);
            c.execute(
                "UPDATE sessions SET last_seen = ?2 WHERE id_hash = ?1",
                params![id_hash, now],
            )
            .map(|_| ())
        })
    }

    async fn mark_expiry_audited(&self, id_hash: &str) -> Result<bool, StoreError> {
        self.with_cache(|c, cache| {
            cache.remove(id_hash);
            c.execute(
                "UPDATE sessions SET expiry_audited = 1 WHERE id_hash = ?1 AND expiry_audited = 0",
                params![id_hash],
            )
            .map(|n| n == 1)
        })
    }

    async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        self.with_cache(|c, cache| {
            cache.remove(id_hash);
            c.execute("DELETE FROM sessions WHERE id_hash = ?1", params![id_hash])
                .map(|n| n > 0)
        })
    }

    async fn sessions(&self) -> Result<Vec<Session>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id_hash, user, groups, class, deadline, csrf, created, last_seen, addr, expiry_audited, uid
                 FROM sessions ORDER BY created",
            )?;
            let rows = stmt.query_map([], session_from_row)?;
            rows.collect()
        })
    }

    async fn insert_token(&self, t: &TokenRow) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO api_tokens (id, hash, user, name, class, created, expires, revoked, uid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8)",
                params![t.id, t.hash, t.user, t.name, t.class.name(), t.created, t.expires, t.uid],
            )
            .map(|_| ())
        })
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRow>, StoreError> {
        Ok(self
            .token_rows(
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"),
                Some(id),
            )?
            .into_iter()
            .next())
    }

    async fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenRow>, StoreError> {
        self.token_rows(
            &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE ?1 IS NULL OR user = ?1 ORDER BY created"),
            user,
        )
    }

    async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE api_tokens SET revoked = 1 WHERE id = ?1 AND revoked = 0",
                params![id],
            )
            .map(|n| n > 0)
        })
    }

    async fn servers(&self) -> Result<Vec<ServerRow>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {SERVER_COLUMNS} FROM servers ORDER BY owner, name"
            ))?;
            let rows = stmt.query_map([], server_from_row)?;
            rows.collect()
        })
    }

    async fn put_server(&self, s: &ServerRow, expect: Expect) -> Result<Option<i64>, StoreError> {
        let placement = to_json(&s.placement)?;
        let endpoint = to_json(&s.endpoint)?;
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction().map_err(backend)?;
        let current: Option<i64> = tx
            .query_row(
                "SELECT epoch FROM servers WHERE owner = ?1 AND name = ?2",
                params![s.owner, s.name],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        let holds = match expect {
            Expect::Any => true,
            Expect::Absent => current.is_none(),
            Expect::Epoch(e) => current == Some(e),
        };
        if !holds {
            return Ok(None);
        }
        let epoch = current.unwrap_or(0) + 1;
        tx.execute(
            "INSERT INTO servers (owner, name, pid, placement, endpoint, cgroup, started, epoch, profile, hub)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(owner, name) DO UPDATE SET pid = excluded.pid, placement = excluded.placement,
               endpoint = excluded.endpoint, cgroup = excluded.cgroup, started = excluded.started,
               epoch = excluded.epoch, profile = excluded.profile, hub = excluded.hub",
            params![s.owner, s.name, s.pid, placement, endpoint, s.cgroup, s.started, epoch, s.profile, s.hub],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(Some(epoch))
    }

    async fn delete_server(
        &self,
        owner: &str,
        name: &str,
        expect: Expect,
    ) -> Result<bool, StoreError> {
        self.with(|c| match expect {
            Expect::Any => c
                .execute(
                    "DELETE FROM servers WHERE owner = ?1 AND name = ?2",
                    params![owner, name],
                )
                .map(|n| n > 0),
            Expect::Absent => Ok(false),
            Expect::Epoch(e) => c
                .execute(
                    "DELETE FROM servers WHERE owner = ?1 AND name = ?2 AND epoch = ?3",
                    params![owner, name, e],
                )
                .map(|n| n > 0),
        })
    }

    async fn put_pending(&self, p: &PendingSpawn) -> Result<(), StoreError> {
        let placement = to_json(&p.placement)?;
        self.with(|c| {
            c.execute(
                &format!(
                    "INSERT OR REPLACE INTO pending_spawns ({PENDING_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    p.owner,
                    p.name,
                    placement,
                    p.token_hash,
                    p.profile,
                    p.actor,
                    p.hub,
                    p.since,
                    p.state,
                    p.failed
                ],
            )
            .map(|_| ())
        })
    }

    async fn pending_spawns(&self) -> Result<Vec<PendingSpawn>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {PENDING_COLUMNS} FROM pending_spawns ORDER BY since, owner, name"
            ))?;
            let rows = stmt.query_map([], pending_from_row)?;
            rows.collect()
        })
    }

    async fn set_pending_state(
        &self,
        token_hash: &str,
        state: &str,
        failed: bool,
    ) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE pending_spawns SET state = ?2, failed = ?3 WHERE token_hash = ?1",
                params![token_hash, state, failed],
            )
            .map(|n| n > 0)
        })
    }

    async fn take_pending(&self, token_hash: &str) -> Result<Option<PendingSpawn>, StoreError> {
        self.with(|c| {
            c.query_row(
                &format!(
                    "DELETE FROM pending_spawns WHERE token_hash = ?1 RETURNING {PENDING_COLUMNS}"
                ),
                params![token_hash],
                pending_from_row,
            )
            .optional()
        })
    }

    async fn put_inflight(&self, op: &InflightOp) -> Result<(), StoreError> {
        let seq = i64::try_from(op.intent_seq)
            .map_err(|_| StoreError::Backend("intent seq out of range".into()))?;
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO inflight_ops (request_id, hub, owner, intent, intent_seq, since)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![op.request_id, op.hub, op.owner, op.intent, seq, op.since],
            )
            .map(|_| ())
        })
    }

    async fn take_inflight(&self, request_id: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM inflight_ops WHERE request_id = ?1",
                params![request_id],
            )
            .map(|n| n > 0)
        })
    }

    async fn inflight_ops(&self) -> Result<Vec<InflightOp>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT request_id, hub, owner, intent, intent_seq, since FROM inflight_ops
                 ORDER BY since, request_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(InflightOp {
                    request_id: r.get(0)?,
                    hub: r.get(1)?,
                    owner: r.get(2)?,
                    intent: r.get(3)?,
                    intent_seq: r.get::<_, i64>(4)?.max(0) as u64,
                    since: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    async fn hub_connected(&self, _hub: &str) -> Result<bool, StoreError> {
        Ok(true)
    }

    async fn save_overview(&self, row: &OverviewRow) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO overview (owner, workflows, updated) VALUES (?1, ?2, ?3)
                 ON CONFLICT(owner) DO UPDATE SET workflows = excluded.workflows, updated = excluded.updated",
                params![row.owner, row.workflows_json, row.updated],
            )
            .map(|_| ())
        })
    }

    async fn overviews(&self) -> Result<Vec<OverviewRow>, StoreError> {
        self.with(|c| {
            let mut stmt =
                c.prepare("SELECT owner, workflows, updated FROM overview ORDER BY owner")?;
            let rows = stmt.query_map([], |r| {
                Ok(OverviewRow {
                    owner: r.get(0)?,
                    workflows_json: r.get(1)?,
                    updated: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }

    async fn claim_server(
        &self,
        owner: &str,
        name: &str,
        hub: &str,
        until: i64,
    ) -> Result<Option<String>, StoreError> {
        let now = self.now();
        self.with(|c| {
            c.execute(
                "INSERT INTO server_claims (owner, name, hub, until) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (owner, name) DO UPDATE SET hub = excluded.hub, until = excluded.until
                 WHERE server_claims.until < ?5 OR server_claims.hub = excluded.hub",
                params![owner, name, hub, until, now],
            )?;
            let holder: String = c.query_row(
                "SELECT hub FROM server_claims WHERE owner = ?1 AND name = ?2",
                params![owner, name],
                |r| r.get(0),
            )?;
            Ok((holder != hub).then_some(holder))
        })
    }

    async fn claimed(&self, owner: &str, name: &str) -> Result<bool, StoreError> {
        let now = self.now();
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM server_claims WHERE owner = ?1 AND name = ?2 AND until >= ?3",
                params![owner, name, now],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
        })
    }

    async fn release_claim(&self, owner: &str, name: &str, hub: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM server_claims WHERE owner = ?1 AND name = ?2 AND hub = ?3",
                params![owner, name, hub],
            )
            .map(|_| ())
        })
    }

    async fn release_claims(&self, hub: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute("DELETE FROM server_claims WHERE hub = ?1", params![hub])
                .map(|_| ())
        })
    }

    async fn put_activity(
        &self,
        hub: &str,
        now: i64,
        rows: &[(String, i64, u32)],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction().map_err(backend)?;
        // Owners this hub no longer serves keep their last use, not their watchers.
        tx.execute(
            "UPDATE server_activity SET watchers = 0, seen = ?2 WHERE hub = ?1",
            params![hub, now],
        )
        .map_err(backend)?;
        for (owner, last, watchers) in rows {
            tx.execute(
                "INSERT INTO server_activity (owner, hub, last, watchers, seen) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (owner, hub) DO UPDATE SET last = MAX(server_activity.last, excluded.last),
                   watchers = excluded.watchers, seen = excluded.seen",
                params![owner, hub, last, watchers, now],
            )
            .map_err(backend)?;
        }
        tx.commit().map_err(backend)
    }

    async fn activity(&self, fresh_since: i64) -> Result<Vec<(String, i64, u32)>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT owner, MAX(last), SUM(CASE WHEN seen >= ?1 THEN watchers ELSE 0 END)
                 FROM server_activity GROUP BY owner ORDER BY owner",
            )?;
            let rows = stmt.query_map(params![fresh_since], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get::<_, i64>(2)?.clamp(0, u32::MAX.into()) as u32,
                ))
            })?;
            rows.collect()
        })
    }

    async fn put_audit_head(
        &self,
        hub: &str,
        seq: u64,
        hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let seq = seq_to_db(seq)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO audit_heads (hub, seq, hash, published) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (hub) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
                   published = excluded.published
                 WHERE audit_heads.seq < excluded.seq
                   OR (audit_heads.seq = excluded.seq AND audit_heads.hash = excluded.hash)",
                params![hub, seq, hash, now],
            )
            .map(|n| n == 1)
        })
    }

    async fn audit_heads(&self) -> Result<Vec<AuditHeadRow>, StoreError> {
        let rows: Vec<(String, i64, String, i64)> = self.with(|c| {
            let mut stmt =
                c.prepare("SELECT hub, seq, hash, published FROM audit_heads ORDER BY hub")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(hub, seq, hash, published)| {
                Ok(AuditHeadRow {
                    hub,
                    seq: seq_from_db(seq)?,
                    hash,
                    published,
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
        // One hub, always leader (epoch 1): only the epoch order is left to check.
        self.with(|c| {
            c.execute(
                "INSERT INTO audit_checkpoint (id, epoch, leader, written, body) VALUES (1, ?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, leader = excluded.leader,
                   written = excluded.written, body = excluded.body
                 WHERE audit_checkpoint.epoch <= excluded.epoch",
                params![epoch, hub, now, body],
            )
            .map(|n| n == 1)
        })
    }

    async fn audit_checkpoint(&self) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            c.query_row("SELECT body FROM audit_checkpoint WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| c.query_row("SELECT 1", [], |_| Ok(())))
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn leadership(&self, hub: &str) -> std::sync::Arc<super::Leadership> {
        super::Leadership::sole(hub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::hash_secret;

    fn open(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&dir.path().join("hub.db"), Clock::default()).unwrap()
    }

    #[tokio::test]
    async fn sessions_round_trip_and_expire_to_read() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let id_hash = hash_secret("abc");
        let s = Session {
            kind: SessionKind::Cookie {
                id_hash: id_hash.clone(),
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
        };
        db.insert_session(&s).await.unwrap();
        let back = db.session(&id_hash).await.unwrap().unwrap();
        assert_eq!(back, s);
        assert_eq!(back.class_at(999), OpClass::Execute);
        assert_eq!(back.class_at(1000), OpClass::Read);
        assert!(db.mark_expiry_audited(&id_hash).await.unwrap());
        // Every write is seen at once by the next read, cache or not.
        assert!(db.session(&id_hash).await.unwrap().unwrap().expiry_audited);
        assert!(!db.mark_expiry_audited(&id_hash).await.unwrap());
        db.touch_session(&id_hash, 77).await.unwrap();
        assert_eq!(db.session(&id_hash).await.unwrap().unwrap().last_seen, 77);
        assert!(db.delete_session(&id_hash).await.unwrap());
        assert!(db.session(&id_hash).await.unwrap().is_none());
    }

    fn row(port: u16) -> ServerRow {
        ServerRow {
            owner: "alice".into(),
            name: "default".into(),
            pid: 42,
            placement: Placement::Local,
            endpoint: Endpoint::loopback(port),
            cgroup: "/sys/fs/cgroup/steward/alice/default".into(),
            started: 5,
            epoch: 0,
            profile: None,
            hub: None,
        }
    }

    #[tokio::test]
    async fn server_writes_are_conditional_on_the_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        assert_eq!(
            db.put_server(&row(1), Expect::Absent).await.unwrap(),
            Some(1)
        );
        // A second starter loses: the row exists.
        assert_eq!(db.put_server(&row(2), Expect::Absent).await.unwrap(), None);
        assert_eq!(
            db.put_server(&row(2), Expect::Epoch(7)).await.unwrap(),
            None
        );
        assert_eq!(
            db.put_server(&row(3), Expect::Epoch(1)).await.unwrap(),
            Some(2)
        );
        let rows = db.servers().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].endpoint, Endpoint::loopback(3));
        assert_eq!(rows[0].epoch, 2);
        // Forgetting what was read at epoch 1 must not remove the newer server.
        assert!(!db
            .delete_server("alice", "default", Expect::Epoch(1))
            .await
            .unwrap());
        assert!(db
            .delete_server("alice", "default", Expect::Epoch(2))
            .await
            .unwrap());
        assert!(db.servers().await.unwrap().is_empty());
        assert!(db.changes().is_none(), "one hub: no change feed");
    }

    #[tokio::test]
    async fn a_database_of_an_older_hub_is_migrated_and_keeps_its_servers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        {
            // The schema as hubs before schema_version wrote it, with a running server.
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.execute(
                "INSERT INTO servers (owner, name, pid, port, cgroup, started) VALUES ('bob', 'default', 7, 4711, '/cg', 9)",
                [],
            )
            .unwrap();
        }
        let db = SqliteStore::open(&path, Clock::default()).unwrap();
        assert_eq!(db.schema_version().unwrap(), SCHEMA_VERSION);
        let rows = db.servers().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].endpoint, Endpoint::loopback(4711));
        assert_eq!(rows[0].placement, Placement::Local);
        assert_eq!((rows[0].pid, rows[0].epoch), (7, 1));
        drop(db);
        // Opening again runs nothing twice.
        let db = SqliteStore::open(&path, Clock::default()).unwrap();
        assert_eq!(db.servers().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_database_of_a_newer_hub_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        drop(open(&dir));
        Connection::open(&path)
            .unwrap()
            .execute("UPDATE schema_version SET version = 99", [])
            .unwrap();
        let e = SqliteStore::open(&path, Clock::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("hub.db") && e.contains("99"), "{e}");
    }

    #[tokio::test]
    async fn tokens_by_user_or_all() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
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
        assert!(db.token("t1").await.unwrap().unwrap().revoked);
    }
}
