//! The hub's SQLite state: sessions and servers (tokens and the overview cache join them
//! as they land). Session ids are stored hashed, so a copy of the database holds no
//! usable session.

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use steward_protocol::OpClass;

/// How long a session row read from the database is reused. Every change the hub makes
/// clears the row at once; this only bounds how long a change made behind the hub's
/// back (by hand, in the database) goes unseen.
const SESSION_CACHE_TTL: Duration = Duration::from_secs(1);
const SESSION_CACHE_MAX: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database lock poisoned")]
    Poisoned,
    #[error("database file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

pub struct Db {
    conn: Mutex<Connection>,
    session_cache: Mutex<HashMap<String, (Instant, Session)>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id_hash: String,
    pub user: String,
    pub groups: Vec<String>,
    /// The class granted at elevation; read when not elevated.
    pub class: OpClass,
    /// Unix seconds when an elevated class drops back to read.
    pub deadline: Option<i64>,
    pub csrf: String,
    pub created: i64,
    pub last_seen: i64,
    pub addr: String,
    /// Set once the expiry of this session's elevation has been audited.
    pub expiry_audited: bool,
}

impl Session {
    /// The class in force at `now`: an elapsed deadline silently means read.
    pub fn class_at(&self, now: i64) -> OpClass {
        match self.deadline {
            // Once the hub has seen the deadline pass (and audited it), a clock stepped
            // back must not bring the elevation back.
            Some(d) if now >= d || self.expiry_audited => OpClass::Read,
            _ => self.class,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRow {
    pub owner: String,
    pub name: String,
    pub pid: u32,
    pub port: u16,
    pub cgroup: String,
    pub started: i64,
}

/// Sessions (with their CSRF tokens) and token hashes are the hub's alone: the file is
/// created 0600 and tightened if an older hub or a copy left it readable, whatever the
/// umask or the directory's mode. SQLite gives its -wal and -shm files the same mode.
fn restrict_to_owner(path: &Path) -> Result<(), DbError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |source| DbError::File {
        path: path.display().to_string(),
        source,
    };
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

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Db {
    pub fn open(path: &Path) -> Result<Db, DbError> {
        restrict_to_owner(path)?;
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS sessions (
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
        )?;
        Ok(Db {
            conn: Mutex::new(conn),
            session_cache: Mutex::new(HashMap::new()),
        })
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
    ) -> Result<T, DbError> {
        let conn = self.conn.lock().map_err(|_| DbError::Poisoned)?;
        let mut cache = self.session_cache.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&conn, &mut cache)?)
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, DbError> {
        let conn = self.conn.lock().map_err(|_| DbError::Poisoned)?;
        Ok(f(&conn)?)
    }

    pub fn insert_session(&self, s: &Session) -> Result<(), DbError> {
        let groups = serde_json::to_string(&s.groups).unwrap_or_else(|_| "[]".into());
        self.with_cache(|c, cache| {
            cache.remove(&s.id_hash);
            c.execute(
                "INSERT INTO sessions (id_hash, user, groups, class, deadline, csrf, created, last_seen, addr, expiry_audited)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![s.id_hash, s.user, groups, s.class.name(), s.deadline, s.csrf, s.created, s.last_seen, s.addr, s.expiry_audited],
            )
            .map(|_| ())
        })
    }

    /// Looked up on every request and every operation, so rows are kept in memory for
    /// [`SESSION_CACHE_TTL`]; every write below clears the row it changes.
    pub fn session(&self, id_hash: &str) -> Result<Option<Session>, DbError> {
        self.with_cache(|c, cache| {
            if let Some((at, s)) = cache.get(id_hash) {
                if at.elapsed() < SESSION_CACHE_TTL {
                    return Ok(Some(s.clone()));
                }
            }
            let row = c.prepare_cached(
                "SELECT id_hash, user, groups, class, deadline, csrf, created, last_seen, addr, expiry_audited
                 FROM sessions WHERE id_hash = ?1",
            )?
            .query_row(
                params![id_hash],
                |r| {
                    let groups: String = r.get(2)?;
                    let class: String = r.get(3)?;
                    Ok(Session {
                        id_hash: r.get(0)?,
                        user: r.get(1)?,
                        groups: serde_json::from_str(&groups).unwrap_or_default(),
                        class: class.parse().unwrap_or(OpClass::Read),
                        deadline: r.get(4)?,
                        csrf: r.get(5)?,
                        created: r.get(6)?,
                        last_seen: r.get(7)?,
                        addr: r.get(8)?,
                        expiry_audited: r.get(9)?,
                    })
                },
            )
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

    pub fn touch_session(&self, id_hash: &str, now: i64) -> Result<(), DbError> {
        self.with_cache(|c, cache| {
            cache.remove(id_hash);
            c.execute(
                "UPDATE sessions SET last_seen = ?2 WHERE id_hash = ?1",
                params![id_hash, now],
            )
            .map(|_| ())
        })
    }

    /// Marks the expiry audited; returns false if another request already did.
    pub fn mark_expiry_audited(&self, id_hash: &str) -> Result<bool, DbError> {
        self.with_cache(|c, cache| {
            cache.remove(id_hash);
            c.execute(
                "UPDATE sessions SET expiry_audited = 1 WHERE id_hash = ?1 AND expiry_audited = 0",
                params![id_hash],
            )
            .map(|n| n == 1)
        })
    }

    pub fn delete_session(&self, id_hash: &str) -> Result<bool, DbError> {
        self.with_cache(|c, cache| {
            cache.remove(id_hash);
            c.execute("DELETE FROM sessions WHERE id_hash = ?1", params![id_hash])
                .map(|n| n > 0)
        })
    }

    pub fn upsert_server(&self, s: &ServerRow) -> Result<(), DbError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO servers (owner, name, pid, port, cgroup, started) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(owner, name) DO UPDATE SET pid = excluded.pid, port = excluded.port,
                   cgroup = excluded.cgroup, started = excluded.started",
                params![s.owner, s.name, s.pid, s.port, s.cgroup, s.started],
            )
            .map(|_| ())
        })
    }

    pub fn delete_server(&self, owner: &str, name: &str) -> Result<(), DbError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM servers WHERE owner = ?1 AND name = ?2",
                params![owner, name],
            )
            .map(|_| ())
        })
    }

    pub fn servers(&self) -> Result<Vec<ServerRow>, DbError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT owner, name, pid, port, cgroup, started FROM servers ORDER BY owner, name",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(ServerRow {
                    owner: r.get(0)?,
                    name: r.get(1)?,
                    pid: r.get(2)?,
                    port: r.get(3)?,
                    cgroup: r.get(4)?,
                    started: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRow {
    pub id: String,
    #[serde(skip)]
    pub hash: String,
    pub user: String,
    pub name: String,
    pub class: OpClass,
    pub created: i64,
    pub expires: i64,
    pub revoked: bool,
}

impl Db {
    pub fn insert_token(&self, t: &TokenRow) -> Result<(), DbError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO api_tokens (id, hash, user, name, class, created, expires, revoked) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
                params![t.id, t.hash, t.user, t.name, t.class.name(), t.created, t.expires],
            )
            .map(|_| ())
        })
    }

    fn token_rows(&self, sql: &str, arg: &str) -> Result<Vec<TokenRow>, DbError> {
        self.with(|c| {
            let mut stmt = c.prepare(sql)?;
            let rows = stmt.query_map(params![arg], |r| {
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
                })
            })?;
            rows.collect()
        })
    }

    pub fn token(&self, id: &str) -> Result<Option<TokenRow>, DbError> {
        Ok(self
            .token_rows("SELECT id, hash, user, name, class, created, expires, revoked FROM api_tokens WHERE id = ?1", id)?
            .into_iter()
            .next())
    }

    /// Tokens of `user`, or of everyone when `user` is "*".
    pub fn tokens(&self, user: &str) -> Result<Vec<TokenRow>, DbError> {
        self.token_rows(
            "SELECT id, hash, user, name, class, created, expires, revoked FROM api_tokens WHERE ?1 = '*' OR user = ?1 ORDER BY created",
            user,
        )
    }

    pub fn revoke_token(&self, id: &str) -> Result<bool, DbError> {
        self.with(|c| {
            c.execute(
                "UPDATE api_tokens SET revoked = 1 WHERE id = ?1 AND revoked = 0",
                params![id],
            )
            .map(|n| n > 0)
        })
    }

    pub fn sessions(&self) -> Result<Vec<Session>, DbError> {
        let ids: Vec<String> = self.with(|c| {
            let mut stmt = c.prepare("SELECT id_hash FROM sessions ORDER BY created")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect()
        })?;
        Ok(ids
            .iter()
            .filter_map(|id| self.session(id).ok().flatten())
            .collect())
    }

    /// Remembers the last summary a server gave, for when it is down.
    pub fn save_overview(
        &self,
        owner: &str,
        workflows_json: &str,
        now: i64,
    ) -> Result<(), DbError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO overview (owner, workflows, updated) VALUES (?1, ?2, ?3)
                 ON CONFLICT(owner) DO UPDATE SET workflows = excluded.workflows, updated = excluded.updated",
                params![owner, workflows_json, now],
            )
            .map(|_| ())
        })
    }

    /// Every cached overview: (owner, workflows JSON, updated).
    pub fn overviews(&self) -> Result<Vec<(String, String, i64)>, DbError> {
        self.with(|c| {
            let mut stmt =
                c.prepare("SELECT owner, workflows, updated FROM overview ORDER BY owner")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_round_trip_and_expire_to_read() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("hub.db")).unwrap();
        let s = Session {
            id_hash: hash_secret("abc"),
            user: "alice".into(),
            groups: vec!["ops".into()],
            class: OpClass::Execute,
            deadline: Some(1000),
            csrf: "c".into(),
            created: 1,
            last_seen: 1,
            addr: "127.0.0.1".into(),
            expiry_audited: false,
        };
        db.insert_session(&s).unwrap();
        let back = db.session(&s.id_hash).unwrap().unwrap();
        assert_eq!(back, s);
        assert_eq!(back.class_at(999), OpClass::Execute);
        assert_eq!(back.class_at(1000), OpClass::Read);
        assert!(db.mark_expiry_audited(&s.id_hash).unwrap());
        // Every write is seen at once by the next read, cache or not.
        assert!(db.session(&s.id_hash).unwrap().unwrap().expiry_audited);
        assert!(!db.mark_expiry_audited(&s.id_hash).unwrap());
        db.touch_session(&s.id_hash, 77).unwrap();
        assert_eq!(db.session(&s.id_hash).unwrap().unwrap().last_seen, 77);
        assert!(db.delete_session(&s.id_hash).unwrap());
        assert!(db.session(&s.id_hash).unwrap().is_none());
    }
}
