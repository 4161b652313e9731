//! The hub's durable state behind one trait: sessions, API tokens, running servers and
//! the overview cache. Every other module reaches state through [`Store`]; only
//! `sqlite.rs` knows SQL. Session ids and token secrets are stored hashed, so a copy of
//! the database holds nothing usable.
//!
//! The trait is shaped for a second implementation on PostgreSQL (tokio-postgres) and
//! for two hubs sharing it:
//! - every method is `async` (SQLite answers at once; PostgreSQL will await the network);
//! - a server row carries an `epoch`, and writes to it are conditional ([`Expect`]), so
//!   two hubs cannot both start, or one forget, the server the other just started;
//! - time comes from [`Store::now`], so two hubs compare deadlines on one clock;
//! - [`Store::changes`] is a capability: a store shared between hubs hands out a
//!   receiver of [`Change`]s (PostgreSQL `LISTEN/NOTIFY`) so a hub can drop what it
//!   cached; SQLite, reachable by one hub only, has none.
//!
//! This module must not hold policy or HTTP logic, and nothing outside `sqlite.rs` may
//! name rusqlite.
//!
//! Before two hubs can share one store, these in-memory maps must move behind it (each
//! is correct today only because one process holds it):
//! - pending registrations (`servers::manager::ServerManager::pending`: register token
//!   → waiting spawn; a server may register with the other hub);
//! - running servers (`ServerManager::running`, a cache of the `servers` table that
//!   must follow [`Change::Server`]);
//! - WebSocket slots (`relay::limit::WsSlots`) and owner activity
//!   (`ServerManager::activity`): `limits.ws_per_user` and idle culling must count
//!   both hubs' connections;
//! - the session cache (`sqlite.rs`, one second; must follow [`Change::Session`]);
//! - the rate limiters (`auth::ratelimit::FailureLimiter`, `relay::limit::OpLimiter`),
//!   which would otherwise allow twice the configured rate.

mod clock;
pub mod leader;
pub mod migrate;
pub mod postgres;
pub mod sqlite;

pub use clock::Clock;
pub use leader::Leadership;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use steward_protocol::{Endpoint, OpClass, Placement};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Backend(String),
    #[error("state store {path}: schema version {found} is newer than this hub knows ({known}); run the newer hub or restore a backup")]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("state store lock poisoned")]
    Poisoned,
}

/// Whether a session came from the cookie of a login or from an API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionKind {
    /// A browser login; the SHA-256 of the cookie value is its key in the store.
    Cookie { id_hash: String },
    /// `Authorization: Bearer stw_<id>_...`; made fresh from the token row per request.
    Token { id: String },
}

impl SessionKind {
    /// A short reference for the audit log that reveals nothing usable.
    pub fn reference(&self) -> String {
        match self {
            SessionKind::Cookie { id_hash } => id_hash.chars().take(16).collect(),
            SessionKind::Token { id } => format!("token:{id}").chars().take(16).collect(),
        }
    }

    /// A stable key for per-session limits.
    pub fn key(&self) -> String {
        match self {
            SessionKind::Cookie { id_hash } => id_hash.clone(),
            SessionKind::Token { id } => format!("token:{id}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub kind: SessionKind,
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
    /// The account's uid at login (None: the name had no local account, as for a
    /// directory-only LDAP user). A session is bound to the account, not the name: if
    /// the name later resolves to another uid, or to none, the session is over.
    pub uid: Option<u32>,
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

    /// The store key of a login session; None for a token.
    pub fn id_hash(&self) -> Option<&str> {
        match &self.kind {
            SessionKind::Cookie { id_hash } => Some(id_hash),
            SessionKind::Token { .. } => None,
        }
    }

    pub fn is_token(&self) -> bool {
        matches!(self.kind, SessionKind::Token { .. })
    }
}

/// One UI server the hub started (or adopted): where it runs and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRow {
    pub owner: String,
    pub name: String,
    pub pid: u32,
    pub placement: Placement,
    pub endpoint: Endpoint,
    pub cgroup: String,
    pub started: i64,
    /// Bumped by every write; conditional writes name the epoch they read.
    pub epoch: i64,
    /// The helper profile it was started on (None: the helper's default).
    pub profile: Option<String>,
    /// The hub that started it (None: a row from before hubs were named). Any hub
    /// relays to it; this says where its start was decided and audited.
    pub hub: Option<String>,
}

/// A start submitted to a batch system that has not registered yet (a Slurm job waiting
/// in the queue, or starting). Stored so that it survives a hub restart and any hub can
/// show it; the server's registration (to whichever hub) finds it by its token's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSpawn {
    pub owner: String,
    pub name: String,
    pub placement: Placement,
    /// SHA-256 of the one-time registration token the server was given.
    pub token_hash: String,
    pub profile: Option<String>,
    /// Who caused the start, for the audit record written when it becomes ready.
    pub actor: String,
    pub hub: String,
    pub since: i64,
    /// What the leader's last poll said ("pending (PartitionDown)", …).
    pub state: String,
    /// Set when the job ended before registering: `state` says why.
    pub failed: bool,
}

/// An operation a hub forwarded whose outcome it has not recorded yet, kept only in a
/// store several hubs share: if that hub dies, the leader records the outcome as
/// `unknown` on its own chain and reconciles it with the UI server's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InflightOp {
    pub request_id: String,
    pub hub: String,
    pub owner: String,
    /// The intent audit record (JSON), for the outcome another hub writes.
    pub intent: String,
    /// The intent's seq on `hub`'s chain.
    pub intent_seq: u64,
    pub since: i64,
}

/// The condition a write to a server row is made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Whatever is there (a single hub, or cleaning up).
    Any,
    /// No row yet: the first to start this server wins.
    Absent,
    /// The row is still at this epoch: nobody changed it since it was read.
    Epoch(i64),
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
    /// The account's uid when the token was made (see [`Session::uid`]).
    #[serde(skip)]
    pub uid: Option<u32>,
}

/// A row another hub changed (see [`Store::changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Session { id_hash: String },
    Token { id: String },
    Server { owner: String, name: String },
}

/// One hub's audit chain head as it last published it: the seq and line hash of the
/// newest record it had flushed, and when (store seconds). The leader signs every
/// hub's into the deployment checkpoint (`record::chains`, docs/ha.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHeadRow {
    pub hub: String,
    pub seq: u64,
    pub hash: String,
    pub published: i64,
}

/// A chain seq as the databases store it (signed 64 bits).
pub(crate) fn seq_to_db(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Backend(format!("audit seq {seq} out of range")))
}

pub(crate) fn seq_from_db(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| StoreError::Backend(format!("audit seq {seq} out of range")))
}

/// An owner's last known workflow summary, for when their server is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverviewRow {
    pub owner: String,
    pub workflows_json: String,
    pub updated: i64,
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Unix seconds on the store's clock. Synchronous because it is read on every
    /// request: SQLite (one host) uses the hub's [`Clock`]; a shared store measures its
    /// offset to the database clock at connect and refreshes it in the background.
    fn now(&self) -> i64;

    /// Changes other hubs made, when the store can tell (None: it cannot, and needs
    /// not — nobody else writes to it).
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>>;

    async fn insert_session(&self, s: &Session) -> Result<(), StoreError>;
    /// A login session by the hash of its cookie value.
    async fn session(&self, id_hash: &str) -> Result<Option<Session>, StoreError>;
    async fn touch_session(&self, id_hash: &str, now: i64) -> Result<(), StoreError>;
    /// Marks the expiry audited; false if another request already did.
    async fn mark_expiry_audited(&self, id_hash: &str) -> Result<bool, StoreError>;
    async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError>;
    /// Every login session, oldest first.
    async fn sessions(&self) -> Result<Vec<Session>, StoreError>;

    async fn insert_token(&self, t: &TokenRow) -> Result<(), StoreError>;
    async fn token(&self, id: &str) -> Result<Option<TokenRow>, StoreError>;
    /// Tokens of `user`, or of everyone when None, oldest first.
    async fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenRow>, StoreError>;
    async fn revoke_token(&self, id: &str) -> Result<bool, StoreError>;

    async fn servers(&self) -> Result<Vec<ServerRow>, StoreError>;
    /// Writes `row` if `expect` holds; returns the row's new epoch, or None when it did
    /// not hold (another writer got there first) and nothing was written.
    async fn put_server(&self, row: &ServerRow, expect: Expect) -> Result<Option<i64>, StoreError>;
    /// Deletes the row if `expect` holds; true when a row was deleted.
    async fn delete_server(
        &self,
        owner: &str,
        name: &str,
        expect: Expect,
    ) -> Result<bool, StoreError>;

    /// Stores a submitted start (replacing the owner's previous one of that name).
    async fn put_pending(&self, p: &PendingSpawn) -> Result<(), StoreError>;
    /// Every submitted start not registered yet, oldest first.
    async fn pending_spawns(&self) -> Result<Vec<PendingSpawn>, StoreError>;
    /// Records what the last poll said of the start with this token; false when it is
    /// gone (registered, cancelled) meanwhile.
    async fn set_pending_state(
        &self,
        token_hash: &str,
        state: &str,
        failed: bool,
    ) -> Result<bool, StoreError>;
    /// Removes and returns the start with this token: exactly one registration (on any
    /// hub) completes it.
    async fn take_pending(&self, token_hash: &str) -> Result<Option<PendingSpawn>, StoreError>;

    /// Notes an operation forwarded by `op.hub` (see [`InflightOp`]).
    async fn put_inflight(&self, op: &InflightOp) -> Result<(), StoreError>;
    /// Removes the note; true when this call removed it (exactly one caller closes an
    /// operation: its hub's outcome, or the leader's reconciliation).
    async fn take_inflight(&self, request_id: &str) -> Result<bool, StoreError>;
    /// Every operation still in flight, oldest first.
    async fn inflight_ops(&self) -> Result<Vec<InflightOp>, StoreError>;
    /// Whether `hub` is connected to the store now. A store only one hub uses answers
    /// true: there is nobody else to ask about.
    async fn hub_connected(&self, hub: &str) -> Result<bool, StoreError>;

    async fn save_overview(&self, row: &OverviewRow) -> Result<(), StoreError>;
    async fn overviews(&self) -> Result<Vec<OverviewRow>, StoreError>;

    /// Claims the right to start `owner`'s server `name` until `until` (store seconds),
    /// so that of several hubs asked at once exactly one starts it. `Ok(None)`: this hub
    /// holds the claim now (it was free, expired, or already ours); `Ok(Some(hub))`:
    /// another hub holds an unexpired claim.
    async fn claim_server(
        &self,
        owner: &str,
        name: &str,
        hub: &str,
        until: i64,
    ) -> Result<Option<String>, StoreError>;
    /// Whether any hub holds an unexpired claim on starting this server now.
    async fn claimed(&self, owner: &str, name: &str) -> Result<bool, StoreError>;
    /// Drops this hub's claim (after the start succeeded or failed).
    async fn release_claim(&self, owner: &str, name: &str, hub: &str) -> Result<(), StoreError>;
    /// Drops every claim of `hub`: at its start, when none of its starts can be under way.
    async fn release_claims(&self, hub: &str) -> Result<(), StoreError>;
    /// This hub's activity per owner: (owner, last use, open WebSockets), as of `now`.
    async fn put_activity(
        &self,
        hub: &str,
        now: i64,
        rows: &[(String, i64, u32)],
    ) -> Result<(), StoreError>;
    /// Every hub's activity merged per owner: (owner, latest use, WebSockets open on
    /// hubs that reported since `fresh_since`), so the hub that culls sees them all.
    async fn activity(&self, fresh_since: i64) -> Result<Vec<(String, i64, u32)>, StoreError>;

    /// Publishes `hub`'s audit chain head (`seq`, line `hash`) as of `now`. A head
    /// never moves back: `Ok(false)` when the store holds a later seq for this hub, or
    /// another hash at this seq (its chain was cut or replaced), and nothing was
    /// written. Publishing the same head again is `Ok(true)`.
    async fn put_audit_head(
        &self,
        hub: &str,
        seq: u64,
        hash: &str,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Every hub's published head, by hub.
    async fn audit_heads(&self) -> Result<Vec<AuditHeadRow>, StoreError>;
    /// Stores the deployment checkpoint (`body`, the signed JSON) written by `hub`
    /// leading at `epoch`, replacing the one before, only if `hub` still leads at that
    /// epoch (PostgreSQL: the `leader` row, locked while writing, so a takeover waits)
    /// and no checkpoint of a later epoch is stored. `Ok(false)`: deposed, nothing
    /// written.
    async fn put_audit_checkpoint(
        &self,
        hub: &str,
        epoch: i64,
        now: i64,
        body: &str,
    ) -> Result<bool, StoreError>;
    /// The stored deployment checkpoint's JSON, if one was written.
    async fn audit_checkpoint(&self) -> Result<Option<String>, StoreError>;

    /// Whether the store answers now (`/hub/health`).
    async fn ping(&self) -> Result<(), StoreError>;
    /// What kind of store this is, for health answers and logs.
    fn kind(&self) -> &'static str;
    /// This hub's part in choosing the one leader of the deployment.
    fn leadership(&self, hub: &str) -> std::sync::Arc<Leadership>;
}
