use super::config::SshPoolConfig;
use super::conn::{shell_quote, Conn, Target};
use crate::backend::{self, Backend, Listing, Located, Started, Stopped, Unanswered};
use crate::error::SpawnError;
use crate::placement::{self, Candidate, Decision, Thresholds};
use async_trait::async_trait;
use futures_util::future::join_all;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use steward_protocol::helper::{HelperRequest, HostStatus, ServerStatus, StartRequest};
use steward_protocol::Placement;

/// What placement remembers between calls.
#[derive(Default)]
struct PoolState {
    rr_cursor: usize,
    in_flight: HashMap<String, u32>,
    /// Last status of each host (or why it could not be read) and when it was read.
    statuses: HashMap<String, (Instant, Result<HostStatus, String>)>,
    /// Drained at run time (on top of the config's `drained`).
    drained: BTreeSet<String>,
}

pub struct SshBackend {
    cfg: SshPoolConfig,
    thresholds: Thresholds,
    conns: BTreeMap<String, Arc<Conn>>,
    control_dir: PathBuf,
    /// Whether we made `control_dir` (and so remove it when dropped).
    own_dir: bool,
    state: Mutex<PoolState>,
    /// One status refresh at a time: concurrent starts wait for it and share its answers
    /// instead of each asking every host.
    refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SshBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshBackend")
            .field("hosts", &self.conns.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl SshBackend {
    /// Checks the config and prepares (without connecting) one connection per host.
    pub fn new(cfg: SshPoolConfig) -> Result<SshBackend, SpawnError> {
        cfg.validate().map_err(SpawnError::BadRequest)?;
        let thresholds = cfg.thresholds().map_err(SpawnError::BadRequest)?;
        let (control_dir, own_dir) = match &cfg.control_dir {
            Some(d) => (d.clone(), false),
            None => (
                std::env::temp_dir().join(format!("steward-ssh-{}", std::process::id())),
                true,
            ),
        };
        make_private_dir(&control_dir)?;
        let conns = cfg
            .hosts
            .iter()
            .map(|(name, h)| {
                let target = Target {
                    host: name.clone(),
                    address: h.address.clone(),
                    user: h.user.clone(),
                    port: h.port,
                    key: cfg.key.clone(),
                    known_hosts: cfg.known_hosts.clone(),
                };
                let conn = Conn::new(
                    target,
                    &control_dir,
                    Duration::from_secs(cfg.connect_timeout_secs),
                    Duration::from_secs(cfg.command_timeout_secs),
                    cfg.control_persist_secs,
                    cfg.max_sessions,
                );
                (name.clone(), Arc::new(conn))
            })
            .collect();
        Ok(SshBackend {
            thresholds,
            conns,
            control_dir,
            own_dir,
            state: Mutex::new(PoolState::default()),
            refresh: tokio::sync::Mutex::new(()),
            cfg,
        })
    }

    pub fn config(&self) -> &SshPoolConfig {
        &self.cfg
    }

    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.conns.keys().map(String::as_str)
    }

    fn conn(&self, host: &str) -> Result<&Arc<Conn>, SpawnError> {
        self.conns.get(host).ok_or_else(|| {
            SpawnError::BadRequest(format!(
                "host {host:?} is not in the ssh pool (hosts: {})",
                self.conns.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    fn host_of<'a>(&self, at: &'a Placement) -> Result<&'a str, SpawnError> {
        match at {
            Placement::Ssh { host } => Ok(host),
            other => Err(backend::wrong_backend("ssh", other)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // A panic elsewhere while holding the lock leaves counters, not broken invariants.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one helper request on `host`.
    pub async fn call(
        &self,
        host: &str,
        req: &HelperRequest,
    ) -> Result<steward_protocol::helper::HelperReply, SpawnError> {
        let conn = self.conn(host)?;
        let body = serde_json::to_vec(req)
            .map_err(|e| SpawnError::Helper(format!("encoding request: {e}")))?;
        let helper = self.cfg.helper_for(host);
        let remote = remote_command(helper, self.cfg.helper_config_for(host), self.cfg.sudo);
        conn.call(&remote, helper, &body).await
    }

    /// `host`'s load, memory and server count, read now (and remembered for placement).
    pub async fn host_status(&self, host: &str) -> Result<HostStatus, SpawnError> {
        let r = self
            .call(host, &HelperRequest::HostStatus)
            .await
            .and_then(backend::into_host_status);
        let entry = r.as_ref().map(Clone::clone).map_err(|e| e.to_string());
        self.lock()
            .statuses
            .insert(host.to_string(), (Instant::now(), entry));
        r
    }

    /// Every host's status, asked concurrently; with `fresh` false a status younger than
    /// `status_max_age_ms` is reused.
    async fn statuses(&self, fresh: bool) -> BTreeMap<String, Result<HostStatus, String>> {
        let max_age = Duration::from_millis(self.cfg.status_max_age_ms);
        let since = Instant::now();
        let cached = |out: &mut BTreeMap<String, Result<HostStatus, String>>| {
            let st = self.lock();
            let mut ask = vec![];
            for host in self.conns.keys() {
                match st.statuses.get(host) {
                    // Fresh means read after this call began (perhaps by a concurrent one).
                    Some((at, s)) if (!fresh && at.elapsed() < max_age) || *at >= since => {
                        out.insert(host.clone(), s.clone());
                    }
                    _ => ask.push(host.clone()),
                }
            }
            ask
        };
        let mut out = BTreeMap::new();
        if cached(&mut out).is_empty() {
            return out;
        }
        let _refresh = self.refresh.lock().await;
        let ask = cached(&mut out);
        let answers = join_all(ask.iter().map(|h| self.host_status(h))).await;
        for (h, a) in ask.into_iter().zip(answers) {
            out.insert(h, a.map_err(|e| e.to_string()));
        }
        out
    }

    fn candidates(
        &self,
        st: &PoolState,
        statuses: &BTreeMap<String, Result<HostStatus, String>>,
    ) -> Vec<Candidate> {
        self.cfg
            .hosts
            .iter()
            .map(|(name, h)| Candidate {
                name: name.clone(),
                address: h.address.clone(),
                drained: h.drained || st.drained.contains(name),
                in_flight: st.in_flight.get(name).copied().unwrap_or(0),
                status: statuses
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| Err("no status".into())),
            })
            .collect()
    }

    /// The decision a start for `owner` would make now, with every host asked afresh:
    /// what `steward servers place --owner alice --explain` prints (`.render()`).
    /// Reserves nothing and moves no round-robin cursor.
    pub async fn explain(&self, owner: &str) -> Decision {
        let statuses = self.statuses(true).await;
        let st = self.lock();
        let cands = self.candidates(&st, &statuses);
        placement::decide(
            self.cfg.placement.policy,
            &self.thresholds,
            owner,
            &cands,
            st.rr_cursor,
        )
    }

    /// Stops (or resumes) new servers on `host`; its servers keep running.
    pub fn set_drained(&self, host: &str, drained: bool) -> Result<(), SpawnError> {
        self.conn(host)?;
        let mut st = self.lock();
        if drained {
            st.drained.insert(host.to_string());
        } else {
            st.drained.remove(host);
        }
        Ok(())
    }

    /// Chooses a host and reserves a start there (counted until [`Self::finish`]).
    fn choose(
        &self,
        owner: &str,
        statuses: &BTreeMap<String, Result<HostStatus, String>>,
    ) -> Decision {
        let mut st = self.lock();
        let cands = self.candidates(&st, statuses);
        let d = placement::decide(
            self.cfg.placement.policy,
            &self.thresholds,
            owner,
            &cands,
            st.rr_cursor,
        );
        if let Some(w) = &d.winner {
            *st.in_flight.entry(w.clone()).or_default() += 1;
            st.rr_cursor = d.rr_next;
        }
        d
    }

    fn finish(&self, host: &str, started: bool) {
        let mut st = self.lock();
        if let Some(n) = st.in_flight.get_mut(host) {
            *n = n.saturating_sub(1);
        }
        if started {
            // Count the new server until the next status read, so starts within the
            // cache's lifetime see it.
            if let Some((_, Ok(s))) = st.statuses.get_mut(host) {
                s.servers = s.servers.saturating_add(1);
            }
        }
    }

    fn mark_down(&self, host: &str, why: String) {
        self.lock()
            .statuses
            .insert(host.to_string(), (Instant::now(), Err(why)));
    }

    /// Places and starts `req`, returning the decision that placed it (for the hub's log
    /// line). A host that turns out unreachable, refuses its host key or lacks the
    /// helper is marked down and the next choice is tried; a helper refusal or a timeout
    /// is returned as is (after a timeout a cleanup stop is sent, so nothing stays
    /// half-started).
    pub async fn start_placed(
        &self,
        req: &StartRequest,
    ) -> Result<(Started, Decision), SpawnError> {
        let mut statuses = self.statuses(false).await;
        let mut last_err = None;
        for _ in 0..self.conns.len() {
            let decision = self.choose(&req.user, &statuses);
            let Some(host) = decision.winner.clone() else {
                return Err(last_err.unwrap_or_else(|| SpawnError::NoHost(decision.render())));
            };
            let r = self.call(&host, &HelperRequest::Start(req.clone())).await;
            self.finish(
                &host,
                matches!(r, Ok(steward_protocol::helper::HelperReply::Started { .. })),
            );
            match r {
                Ok(reply) => {
                    let started = backend::into_started(reply, Placement::Ssh { host })?;
                    return Ok((started, decision));
                }
                Err(e @ SpawnError::HostTimeout { .. }) => {
                    self.cleanup(&host, req).await;
                    self.mark_down(&host, e.to_string());
                    return Err(e);
                }
                Err(
                    e @ (SpawnError::Unreachable { .. }
                    | SpawnError::HostKey { .. }
                    | SpawnError::Auth { .. }
                    | SpawnError::HelperMissing { .. }),
                ) => {
                    self.mark_down(&host, e.to_string());
                    statuses.insert(host, Err(e.to_string()));
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| SpawnError::NoHost("no host answered".into())))
    }

    /// After a start timed out its server may or may not exist: stop it, bounded.
    async fn cleanup(&self, host: &str, req: &StartRequest) {
        let stop = HelperRequest::Stop {
            user: req.user.clone(),
            server: req.server.clone(),
            grace_secs: Some(0),
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(self.cfg.command_timeout_secs),
            self.call(host, &stop),
        )
        .await;
    }
}

/// The command line the login shell on the host runs. The existence check comes first
/// because `sudo -n` answers a missing command with "a password is required" (the
/// sudoers rule cannot match it), which would hide the real fault.
fn remote_command(helper: &str, config: &str, sudo: bool) -> String {
    let h = shell_quote(helper);
    let run = format!(
        "exec {}{h} --config {}",
        if sudo { "sudo -n " } else { "" },
        shell_quote(config)
    );
    format!("[ -x {h} ] || {{ echo {h}': No such file or directory' >&2; exit 127; }}; {run}")
}

impl Drop for SshBackend {
    fn drop(&mut self) {
        for c in self.conns.values() {
            c.close_blocking();
        }
        if self.own_dir {
            let _ = std::fs::remove_dir_all(&self.control_dir);
        }
    }
}

fn make_private_dir(dir: &std::path::Path) -> Result<(), SpawnError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let m = std::fs::symlink_metadata(dir)
                .map_err(|e| SpawnError::io(format!("checking {}", dir.display()), e))?;
            if !m.is_dir() || m.uid() != nix::unistd::geteuid().as_raw() {
                return Err(SpawnError::Unsafe {
                    path: dir.to_path_buf(),
                    why: "control_dir must be a directory owned by the hub's account".into(),
                });
            }
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| SpawnError::io(format!("chmod 0700 {}", dir.display()), e))
        }
        Err(e) => Err(SpawnError::io(format!("creating {}", dir.display()), e)),
    }
}

#[async_trait]
impl Backend for SshBackend {
    fn name(&self) -> &'static str {
        "ssh"
    }

    async fn start(&self, req: &StartRequest) -> Result<Started, SpawnError> {
        self.start_placed(req).await.map(|(s, _)| s)
    }

    async fn stop(
        &self,
        at: &Placement,
        user: &str,
        server: &str,
        grace_secs: Option<u64>,
    ) -> Result<Stopped, SpawnError> {
        let host = self.host_of(at)?;
        let req = HelperRequest::Stop {
            user: user.into(),
            server: server.into(),
            grace_secs,
        };
        let stopped = backend::into_stopped(self.call(host, &req).await?)?;
        // Keep the cached count honest until the next status read, as starts do.
        if let Some((_, Ok(s))) = self.lock().statuses.get_mut(host) {
            s.servers = s.servers.saturating_sub(1);
        }
        Ok(stopped)
    }

    async fn status(
        &self,
        at: &Placement,
        user: &str,
        server: &str,
    ) -> Result<ServerStatus, SpawnError> {
        let host = self.host_of(at)?;
        let req = HelperRequest::Status {
            user: user.into(),
            server: server.into(),
        };
        backend::into_status(self.call(host, &req).await?)
    }

    async fn adopt(
        &self,
        at: &Placement,
        user: &str,
        server: &str,
        pid: u32,
    ) -> Result<ServerStatus, SpawnError> {
        let host = self.host_of(at)?;
        let req = HelperRequest::Adopt {
            user: user.into(),
            server: server.into(),
            pid,
        };
        backend::into_status(self.call(host, &req).await?)
    }

    async fn list(&self) -> Result<Listing, SpawnError> {
        let hosts: Vec<&String> = self.conns.keys().collect();
        let answers = join_all(hosts.iter().map(|h| async move {
            self.call(h, &HelperRequest::List)
                .await
                .and_then(backend::into_list)
        }))
        .await;
        let mut listing = Listing::default();
        for (host, answer) in hosts.into_iter().zip(answers) {
            let placement = Placement::Ssh { host: host.clone() };
            match answer {
                Ok(servers) => listing
                    .servers
                    .extend(servers.into_iter().map(|status| Located {
                        placement: placement.clone(),
                        status,
                    })),
                Err(e) => listing.unanswered.push(Unanswered {
                    placement,
                    error: e.to_string(),
                }),
            }
        }
        Ok(listing)
    }
}

#[cfg(test)]
mod tests {
    use super::remote_command;

    #[test]
    fn remote_command_checks_the_helper_then_runs_it_quoted() {
        assert_eq!(
            remote_command("/usr/lib/steward spawn", "/etc/s.toml", true),
            "[ -x '/usr/lib/steward spawn' ] || { echo '/usr/lib/steward spawn'': No such file or directory' >&2; exit 127; }; exec sudo -n '/usr/lib/steward spawn' --config '/etc/s.toml'"
        );
        assert!(remote_command("/a", "/b", false).ends_with("exec '/a' --config '/b'"));
        assert!(remote_command("/a'$(x)", "/b", false).starts_with(r"[ -x '/a'\''$(x)' ]"));
    }
}
