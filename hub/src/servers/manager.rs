//! The mechanics of each owner's UI server: start on demand (one spawn however many
//! visitors wait), wait for its registration, remember it in the store, connect to it.

use super::remote::{endpoint_for, ssh_backend, BackendChoice};
use crate::pki::ca::Ca;
use crate::pki::jwt::TokenSigner;
use crate::record::{Metrics, Recorder};
use crate::singleuser::SingleUser;
use crate::store::{Change, Expect, Leadership, ServerRow, Store};
use rustls::pki_types::ServerName;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use steward_protocol::bootstrap::{
    uiserver_dns_name, Registration, UiServerBootstrap, HUB_INTERNAL_NAME,
};
use steward_protocol::helper::StartRequest;
use steward_protocol::{Endpoint, Placement};
use steward_spawner::slurm::SlurmBackend;
use steward_spawner::ssh::SshBackend;
use steward_spawner::{Backends, LocalBackend, SpawnerClient};
use tokio::sync::{oneshot, Semaphore};

pub const DEFAULT_SERVER: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("too many servers are starting; retry in a few seconds")]
    Busy,
    #[error("could not start the server of {owner}: {message}")]
    Start { owner: String, message: String },
    #[error("the server of {owner} did not become ready within {secs} s")]
    Timeout { owner: String, secs: u64 },
    #[error("connecting to the server of {owner}: {message}")]
    Connect { owner: String, message: String },
    /// Submitted to Slurm and waiting there; not a failure (nothing to audit again).
    #[error("the server of {owner} is queued in Slurm as job {job}: {state}; it starts when Slurm runs it (retry, or cancel it by stopping the server)")]
    Pending {
        owner: String,
        job: String,
        state: String,
    },
    /// A Slurm job that ended before its server registered (the leader's poll audited it).
    #[error("the server of {owner} did not start: {message}")]
    JobEnded { owner: String, message: String },
}

impl ServerError {
    /// Whether [`ServerManager::ensure_audited`] must record this as a failed start: a
    /// queued job is none, and a job's end was recorded when the poll saw it.
    pub fn is_recorded_elsewhere(&self) -> bool {
        matches!(
            self,
            ServerError::Pending { .. } | ServerError::JobEnded { .. }
        )
    }
}

/// What an owner's server is in the store, from any hub's point of view.
pub(super) enum Found {
    Running(Box<RunningServer>),
    /// Submitted to a batch system, not registered yet.
    Queued,
    /// Neither: this hub now holds the claim on starting it.
    Claimed,
}

/// A server this hub knows to be running: its store row (epoch as last written or read).
pub type RunningServer = ServerRow;

/// A byte stream to a UI server, over TCP or a Unix socket.
pub trait UpstreamIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> UpstreamIo for T {}

pub type UpstreamWs =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<Box<dyn UpstreamIo>>>;

/// Opens a stream to `endpoint` (TCP with Nagle off, or a Unix socket).
pub async fn connect_endpoint(endpoint: &Endpoint) -> std::io::Result<Box<dyn UpstreamIo>> {
    match endpoint {
        Endpoint::Tcp { host, port } => {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
            let _ = tcp.set_nodelay(true);
            Ok(Box::new(tcp))
        }
        Endpoint::Unix { path } | Endpoint::SingleUser { path } => {
            Ok(Box::new(tokio::net::UnixStream::connect(path).await?))
        }
    }
}

/// What a manager is configured with (from `spawner.*` and `uiserver.*`).
pub struct ServerOptions {
    pub executable: String,
    pub args: Vec<String>,
    pub start_timeout: Duration,
    /// Passed to each server: it exits when unwatched this long.
    pub idle_timeout_secs: u64,
    /// The hub stops a server nobody used for this long.
    pub cull_idle_secs: u64,
    pub concurrency: usize,
    pub max_pending: usize,
    /// The helper profile of starts that name none (`uiserver.default_profile`).
    pub default_profile: Option<String>,
    /// Which backend each start goes to, and the ssh pool.
    pub placement: BackendChoice,
    /// This hub among those sharing the store, and whether it leads the periodic work.
    pub leadership: Arc<Leadership>,
}

pub struct ServerManager {
    pub spawner: SpawnerClient,
    /// Where servers are started and found again: every start goes to the local backend
    /// (the helper, direct or through sudo) today; stop follows the stored placement, so
    /// an ssh or Slurm backend added here needs no change below.
    pub backends: Backends,
    /// The ssh pool (also in `backends`), for placement explanations and draining.
    pub ssh: Option<Arc<SshBackend>>,
    /// The Slurm cluster (also in `backends`), for its batched poll and node addresses.
    pub slurm: Option<Arc<SlurmBackend>>,
    placement: BackendChoice,
    pub leadership: Arc<Leadership>,
    executable: String,
    args: Vec<String>,
    start_timeout: Duration,
    idle_timeout_secs: u64,
    pub(super) cull_idle_secs: u64,
    pub(super) recorder: Arc<Recorder>,
    pub(super) metrics: Arc<Metrics>,
    /// Last activity (store seconds) and open WebSockets per owner, for idle culling.
    pub(super) activity: Mutex<HashMap<String, (i64, usize)>>,
    ca: Arc<Ca>,
    signer: Arc<TokenSigner>,
    pub(super) store: Arc<dyn Store>,
    pub client_tls: Arc<rustls::ClientConfig>,
    pub(super) running: Mutex<HashMap<String, RunningServer>>,
    owner_locks: crate::util::keyed::KeyedLocks,
    pending: Mutex<HashMap<String, oneshot::Sender<Registration>>>,
    slots: Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
    max_pending: usize,
    internal_addr: Mutex<Option<SocketAddr>>,
    oom_reported: Mutex<std::collections::HashSet<String>>,
    /// Starts under way: owner → (backend, since), for `steward servers list`.
    starting: Mutex<HashMap<String, (String, i64)>>,
    /// Servers whose host or helper did not answer the last check, and why: unknown,
    /// never gone.
    pub(super) unanswered: Mutex<HashMap<String, String>>,
    default_profile: Option<String>,
    /// Set by `app` when `[singleuser] profiles` names any: starts on those profiles
    /// are JupyterHub single-user servers.
    singleuser: std::sync::OnceLock<Arc<SingleUser>>,
    /// The leadership epoch servers were last adopted for (-1: never).
    pub(super) adopted_epoch: std::sync::atomic::AtomicI64,
}

/// What happened, for the caller to audit.
pub enum SpawnOutcome {
    AlreadyRunning(RunningServer),
    Started(RunningServer),
}

impl ServerManager {
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        spawner: SpawnerClient,
        opts: ServerOptions,
        ca: Arc<Ca>,
        signer: Arc<TokenSigner>,
        store: Arc<dyn Store>,
        recorder: Arc<Recorder>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<ServerManager> {
        let client_tls = ca.client_config()?;
        let running = store
            .servers()
            .await?
            .into_iter()
            .map(|r| (r.owner.clone(), r))
            .collect();
        // A start this hub's previous process claimed died with it: nothing of ours is
        // under way now, and adoption must see its half-started server as such.
        store.release_claims(opts.leadership.hub()).await?;
        let ssh = ssh_backend(opts.placement.ssh.as_ref())?;
        let mut backends = Backends::new().with(Arc::new(LocalBackend::new(spawner.clone())));
        if let Some(pool) = &ssh {
            backends = backends.with(pool.clone());
        }
        let slurm = opts
            .placement
            .slurm
            .clone()
            .map(|c| Arc::new(SlurmBackend::new(spawner.clone(), c)));
        if let Some(cluster) = &slurm {
            backends = backends.with(cluster.clone());
        }
        Ok(ServerManager {
            backends,
            ssh,
            slurm,
            placement: opts.placement,
            leadership: opts.leadership,
            spawner,
            executable: opts.executable,
            args: opts.args,
            start_timeout: opts.start_timeout,
            idle_timeout_secs: opts.idle_timeout_secs,
            cull_idle_secs: opts.cull_idle_secs,
            recorder,
            metrics,
            activity: Mutex::new(HashMap::new()),
            ca,
            signer,
            store,
            client_tls,
            running: Mutex::new(running),
            owner_locks: Default::default(),
            pending: Mutex::new(HashMap::new()),
            slots: Semaphore::new(opts.concurrency),
            waiting: Default::default(),
            max_pending: opts.max_pending,
            internal_addr: Mutex::new(None),
            oom_reported: Mutex::new(Default::default()),
            starting: Mutex::new(Default::default()),
            unanswered: Mutex::new(Default::default()),
            default_profile: opts.default_profile,
            singleuser: Default::default(),
            adopted_epoch: std::sync::atomic::AtomicI64::new(-1),
        })
    }

    /// Drops from memory the servers other hubs change (stopped, restarted elsewhere),
    /// so the next request reads the store again. A store nobody else writes has none.
    pub fn follow_changes(self: &Arc<Self>) {
        let Some(mut rx) = self.store.changes() else {
            return;
        };
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let change = rx.recv().await;
                let Some(me) = me.upgrade() else { return };
                let Ok(mut m) = me.running.lock() else { return };
                match change {
                    Ok(Change::Server { owner, .. }) => {
                        m.remove(&owner);
                    }
                    Ok(_) => {}
                    // Missed some: forget every cached row rather than trust a stale one.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => m.clear(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    pub(super) fn start_timeout(&self) -> Duration {
        self.start_timeout
    }

    pub fn set_singleuser(&self, su: Arc<SingleUser>) {
        let _ = self.singleuser.set(su);
    }

    pub fn singleuser(&self) -> Option<&Arc<SingleUser>> {
        self.singleuser.get()
    }

    pub fn set_internal_addr(&self, addr: SocketAddr) {
        if let Ok(mut a) = self.internal_addr.lock() {
            *a = Some(addr);
        }
    }

    pub fn get(&self, owner: &str) -> Option<RunningServer> {
        self.running.lock().ok()?.get(owner).cloned()
    }

    pub fn all(&self) -> Vec<RunningServer> {
        self.running
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Starts under way: (owner, backend, since).
    pub fn starting(&self) -> Vec<(String, String, i64)> {
        self.starting
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(o, (b, t))| (o.clone(), b.clone(), *t))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Why the owner's server's host or helper did not answer the last check, if so.
    pub fn unanswered(&self, owner: &str) -> Option<String> {
        self.unanswered.lock().ok()?.get(owner).cloned()
    }

    /// True the first time an OOM kill is seen for this owner's current server.
    pub fn mark_oom_reported(&self, owner: &str) -> bool {
        self.oom_reported
            .lock()
            .map(|mut s| s.insert(owner.to_string()))
            .unwrap_or(false)
    }

    /// Drops the owner's server from memory and the store. Only the row this hub knew
    /// is deleted: one another hub wrote since (a newer epoch) stays.
    pub async fn forget(&self, owner: &str) {
        if let Ok(mut s) = self.oom_reported.lock() {
            s.remove(owner);
        }
        if let Ok(mut u) = self.unanswered.lock() {
            u.remove(owner);
        }
        if let Some(su) = self.singleuser.get() {
            su.forget(owner);
        }
        let known = self.running.lock().ok().and_then(|mut m| m.remove(owner));
        let expect = known.map_or(Expect::Any, |s| Expect::Epoch(s.epoch));
        tracing::debug!(owner, ?expect, "forgetting a server");
        let _ = self
            .store
            .delete_server(owner, DEFAULT_SERVER, expect)
            .await;
    }

    /// Called by the internal listener; true if a spawn was waiting for this token:
    /// one of this hub's starts, or a start queued in a batch system (stored, so it may
    /// have been submitted by this hub before a restart, or by another hub).
    pub async fn register(&self, reg: Registration) -> bool {
        let sender = self
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&reg.register_token));
        match sender {
            Some(tx) => tx.send(reg).is_ok(),
            None => self.complete_queued(reg).await,
        }
    }

    /// Returns the owner's running server, starting it if needed. Concurrent callers for
    /// one owner share a single spawn.
    pub async fn ensure(&self, owner: &str) -> Result<SpawnOutcome, ServerError> {
        self.ensure_profile(owner, owner, None).await
    }

    /// [`ensure`](Self::ensure) with a profile ("machine type") from the helper's config;
    /// the helper decides whether this owner may use it.
    pub async fn ensure_profile(
        &self,
        owner: &str,
        actor: &str,
        profile: Option<String>,
    ) -> Result<SpawnOutcome, ServerError> {
        let profile = profile.or_else(|| self.default_profile.clone());
        // Fast path for every request to a running server: no per-owner lock.
        if let Some(s) = self.get(owner) {
            return Ok(SpawnOutcome::AlreadyRunning(s));
        }
        let lock = self.owner_locks.get(owner);
        let _guard = lock.lock().await;
        if let Some(s) = self.get(owner) {
            return Ok(SpawnOutcome::AlreadyRunning(s));
        }
        // Another hub sharing the store may run it, or be starting it; or it waits in
        // a batch queue.
        match self.claim_or_find(owner).await? {
            Found::Running(s) => return Ok(SpawnOutcome::AlreadyRunning(*s)),
            Found::Queued => {
                return self
                    .await_queued(owner)
                    .await
                    .map(SpawnOutcome::AlreadyRunning)
            }
            Found::Claimed => {}
        }
        let outcome = self.spawn_claimed(owner, actor, profile).await;
        let _ = self
            .store
            .release_claim(owner, DEFAULT_SERVER, self.leadership.hub())
            .await;
        outcome
    }

    /// The owner's server as the store has it (started by any hub), kept in memory.
    pub(super) async fn stored(&self, owner: &str) -> Option<RunningServer> {
        let row = self
            .store
            .servers()
            .await
            .ok()?
            .into_iter()
            .find(|r| r.owner == owner && r.name == DEFAULT_SERVER)?;
        if let Ok(mut m) = self.running.lock() {
            m.insert(owner.to_string(), row.clone());
        }
        Some(row)
    }

    /// Takes this hub's claim on starting the owner's server, or, while another hub
    /// holds one, waits for the server it starts (bounded by the start timeout): of
    /// several hubs asked at once, one starts the server and the others use it.
    async fn claim_or_find(&self, owner: &str) -> Result<Found, ServerError> {
        let hub = self.leadership.hub().to_string();
        let wait = self.start_timeout + Duration::from_secs(10);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(s) = self.stored(owner).await {
                return Ok(Found::Running(Box::new(s)));
            }
            if self.queued(owner).await.is_some() {
                return Ok(Found::Queued);
            }
            let until = self.store.now() + wait.as_secs() as i64;
            match self
                .store
                .claim_server(owner, DEFAULT_SERVER, &hub, until)
                .await
            {
                Ok(None) => return Ok(Found::Claimed),
                Ok(Some(holder)) => {
                    tracing::debug!(
                        owner,
                        holder,
                        "another hub is starting this server; waiting for it"
                    );
                }
                Err(e) => {
                    return Err(ServerError::Start {
                        owner: owner.to_string(),
                        message: format!("the state store: {e}"),
                    })
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ServerError::Timeout {
                    owner: owner.to_string(),
                    secs: wait.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn spawn_claimed(
        &self,
        owner: &str,
        actor: &str,
        profile: Option<String>,
    ) -> Result<SpawnOutcome, ServerError> {
        if self.waiting.load(std::sync::atomic::Ordering::Relaxed) >= self.max_pending {
            return Err(ServerError::Busy);
        }
        self.waiting
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let permit = self.slots.acquire().await;
        self.waiting
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let _permit = permit.map_err(|_| ServerError::Busy)?;
        let backend = self.placement.backend_for(profile.as_deref()).to_string();
        if let Ok(mut st) = self.starting.lock() {
            st.insert(owner.to_string(), (backend, self.store.now()));
        }
        let s = self.spawn(owner, actor, profile).await;
        if let Ok(mut st) = self.starting.lock() {
            st.remove(owner);
        }
        s
    }

    async fn spawn(
        &self,
        owner: &str,
        actor: &str,
        profile: Option<String>,
    ) -> Result<SpawnOutcome, ServerError> {
        let fail = |message: String| ServerError::Start {
            owner: owner.to_string(),
            message,
        };
        let backend_name = self.placement.backend_for(profile.as_deref()).to_string();
        if let Some(su) = self.singleuser.get() {
            if su.is_singleuser(profile.as_deref()) {
                if backend_name != "local" {
                    return Err(fail(format!(
                        "profile {:?} is a single-user server kind placed on {backend_name}: those run on the hub's host only",
                        profile.unwrap_or_default()
                    )));
                }
                let su = su.clone();
                return self
                    .spawn_singleuser(&su, owner, profile)
                    .await
                    .map(SpawnOutcome::Started);
            }
        }
        let internal = self
            .internal_addr
            .lock()
            .ok()
            .and_then(|a| *a)
            .ok_or_else(|| fail("the internal listener is not up".into()))?;
        let issued = self
            .ca
            .issue_uiserver(owner, DEFAULT_SERVER)
            .map_err(|e| fail(e.to_string()))?;
        let token = crate::util::random_token();
        let bootstrap = UiServerBootstrap {
            owner: owner.to_string(),
            server: DEFAULT_SERVER.to_string(),
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
            ca_pem: self.ca.ca_pem.clone(),
            jwt_public_key_pem: self.signer.public_pem.clone(),
            register_url: format!(
                "https://{HUB_INTERNAL_NAME}:{}/internal/register",
                internal.port()
            ),
            hub_internal_addr: self
                .placement
                .register_addr(&backend_name, internal)
                .map_err(fail)?,
            register_token: token.clone(),
            idle_timeout_secs: self.idle_timeout_secs,
        };
        let req = StartRequest {
            user: owner.to_string(),
            server: DEFAULT_SERVER.to_string(),
            executable: self.executable.clone(),
            args: self.placement.args_for(&backend_name, &self.args).to_vec(),
            env: Default::default(),
            stdin: Some(serde_json::to_string(&bootstrap).map_err(|e| fail(e.to_string()))?),
            profile,
        };
        if backend_name == "slurm" {
            return self.submit_queued(owner, actor, &req, &token).await;
        }
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(token.clone(), tx);
        }
        let cleanup_token = || {
            if let Ok(mut p) = self.pending.lock() {
                p.remove(&token);
            }
        };
        let started = match (&self.ssh, backend_name.as_str()) {
            // The pool's own start, for the decision it logs.
            (Some(pool), "ssh") => pool.start_placed(&req).await.map(|(started, decision)| {
                tracing::info!(owner, host = ?decision.winner, "placed: {}\n{}", decision.why, decision.render());
                started
            }),
            _ => match self.backends.get(&backend_name) {
                Ok(b) => b.start(&req).await,
                Err(e) => Err(e),
            },
        };
        let started = match started {
            Ok(s) => s,
            Err(e) => {
                cleanup_token();
                return Err(fail(e.to_string()));
            }
        };
        let (pid, cgroup, placement) = (started.pid, started.cgroup, started.placement);
        // Leave nothing half-started: the whole cgroup goes.
        let at = placement.clone();
        let abandon = || async move {
            cleanup_token();
            if let Ok(b) = self.backends.for_placement(&at) {
                let _ = b.stop(&at, owner, DEFAULT_SERVER, Some(0)).await;
            }
        };
        let reg = match tokio::time::timeout(self.start_timeout, rx).await {
            Ok(Ok(reg)) => reg,
            _ => {
                abandon().await;
                return Err(ServerError::Timeout {
                    owner: owner.to_string(),
                    secs: self.start_timeout.as_secs(),
                });
            }
        };
        let endpoint = match endpoint_for(&placement, &reg.endpoint, self.ssh.as_deref(), None) {
            Ok(e) => e,
            Err(why) => {
                abandon().await;
                tracing::warn!(owner, at = %placement, "registration refused: {why}");
                return Err(fail(why));
            }
        };
        let row = ServerRow {
            owner: owner.to_string(),
            name: DEFAULT_SERVER.into(),
            pid,
            placement,
            endpoint,
            cgroup,
            started: self.store.now(),
            epoch: 0,
            profile: req.profile.clone(),
            hub: Some(self.leadership.hub().to_string()),
        };
        Ok(SpawnOutcome::Started(self.remember(row).await))
    }

    /// Stores a server that just became ready and keeps it in memory.
    pub(super) async fn remember(&self, mut row: ServerRow) -> RunningServer {
        // The owner lock is held and no server is known, so any row left is stale.
        if let Ok(Some(epoch)) = self.store.put_server(&row, Expect::Any).await {
            row.epoch = epoch;
        }
        if let Ok(mut m) = self.running.lock() {
            m.insert(row.owner.clone(), row.clone());
        }
        row
    }

    /// Starts a JupyterHub single-user server (`cylc hubapp`) and waits until its
    /// Unix socket accepts: it has no registration call, as under JupyterHub, where
    /// the hub polls the server's URL.
    async fn spawn_singleuser(
        &self,
        su: &SingleUser,
        owner: &str,
        profile: Option<String>,
    ) -> Result<RunningServer, ServerError> {
        let fail = |message: String| ServerError::Start {
            owner: owner.to_string(),
            message,
        };
        let prepared = su.prepare(owner, DEFAULT_SERVER).await.map_err(fail)?;
        let req = StartRequest {
            user: owner.to_string(),
            server: DEFAULT_SERVER.to_string(),
            executable: prepared.executable,
            args: prepared.args,
            env: prepared.env.into_iter().collect(),
            stdin: None,
            profile,
        };
        let local = self
            .backends
            .get("local")
            .map_err(|e| fail(e.to_string()))?;
        let started = local.start(&req).await.map_err(|e| {
            su.forget(owner);
            fail(e.to_string())
        })?;
        let endpoint = Endpoint::SingleUser {
            path: prepared.socket.display().to_string(),
        };
        let deadline = tokio::time::Instant::now() + self.start_timeout;
        loop {
            if tokio::net::UnixStream::connect(&prepared.socket)
                .await
                .is_ok()
            {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = local
                    .stop(&started.placement, owner, DEFAULT_SERVER, Some(0))
                    .await;
                su.forget(owner);
                return Err(ServerError::Timeout {
                    owner: owner.to_string(),
                    secs: self.start_timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let row = ServerRow {
            owner: owner.to_string(),
            name: DEFAULT_SERVER.into(),
            pid: started.pid,
            placement: started.placement,
            endpoint,
            cgroup: started.cgroup,
            started: self.store.now(),
            epoch: 0,
            profile: req.profile.clone(),
            hub: Some(self.leadership.hub().to_string()),
        };
        Ok(self.remember(row).await)
    }

    /// Stops the owner's server through the helper (the whole cgroup).
    pub async fn stop(&self, owner: &str) -> Result<(), ServerError> {
        if self.get(owner).is_none() {
            if let Some(queued) = self.queued(owner).await {
                return self.cancel_queued(queued).await;
            }
        }
        // Stop where the server was placed; a server this hub does not know of (adopted
        // state lost, or a stop from the admin CLI) can only be a local one.
        let at = self
            .running
            .lock()
            .ok()
            .and_then(|m| m.get(owner).map(|r| r.placement.clone()))
            .unwrap_or(Placement::Local);
        let stopped = match self.backends.for_placement(&at) {
            Ok(b) => b.stop(&at, owner, DEFAULT_SERVER, None).await,
            Err(e) => Err(e),
        };
        self.forget(owner).await;
        match stopped {
            Ok(_) => Ok(()),
            Err(e)
                if e.reply_code() == Some(steward_protocol::helper::HelperErrorCode::NotFound) =>
            {
                Ok(())
            }
            Err(e) => Err(ServerError::Start {
                owner: owner.into(),
                message: e.to_string(),
            }),
        }
    }

    /// Opens an authenticated WebSocket to the owner's server over mutual TLS.
    pub async fn connect_ws(
        &self,
        server: &RunningServer,
        jwt: &str,
        max_message: usize,
    ) -> Result<UpstreamWs, ServerError> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let err = |message: String| ServerError::Connect {
            owner: server.owner.clone(),
            message,
        };
        let dns = uiserver_dns_name(&server.owner, &server.name);
        let io = connect_endpoint(&server.endpoint)
            .await
            .map_err(|e| err(format!("{}: {e}", server.endpoint)))?;
        let name = ServerName::try_from(dns.clone()).map_err(|e| err(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(self.client_tls.clone())
            .connect(name, io)
            .await
            .map_err(|e| err(format!("TLS: {e}")))?;
        let mut req = format!("wss://{dns}/ws")
            .into_client_request()
            .map_err(|e| err(e.to_string()))?;
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {jwt}")
                .parse()
                .map_err(|_| err("bad token header".into()))?,
        );
        // Small buffers: an idle watcher should cost a few KiB, not tungstenite's default
        // 128 KiB read buffer; large messages still arrive whole, in more (cheap) reads.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(8 * 1024)
            .write_buffer_size(0)
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message));
        let (ws, _resp) = tokio_tungstenite::client_async_with_config(req, tls, Some(config))
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok(ws)
    }
}
