//! Each owner's UI server over its life: started on demand through the privileged
//! helper ([`manager`]), every start and stop audited with who caused it, re-adopted
//! after a hub restart, culled when idle, forgotten when it dies (here).
//!
//! A start goes to the backend its profile names ([`remote`]: this machine through the
//! helper, or a host of the ssh pool); its registration says which port it listens on
//! and the store keeps placement and endpoint, so stop, status and adoption go back to
//! the same place. A new placement (Slurm) is a new spawner backend plus, at most, a
//! new file here. This module must not decide permissions, hold sessions or
//! relay traffic.

pub mod manager;
pub mod remote;
mod slurm;

pub use manager::{
    connect_endpoint, RunningServer, ServerError, ServerManager, ServerOptions, SpawnOutcome,
    UpstreamIo, UpstreamWs, DEFAULT_SERVER,
};
pub use remote::BackendChoice;

use std::collections::HashMap;
use steward_audit::{events, AuditRecord, Outcome, RecordKind, SYSTEM_ACTOR};
use steward_protocol::helper::HelperErrorCode;
use steward_protocol::Placement;

impl SpawnOutcome {
    pub fn server(self) -> RunningServer {
        match self {
            SpawnOutcome::AlreadyRunning(s) | SpawnOutcome::Started(s) => s,
        }
    }
}

impl ServerManager {
    /// Records activity on an owner's server (keeps it from being culled).
    pub fn touch(&self, owner: &str, ws_delta: isize) {
        let now = self.store.now();
        if let Ok(mut a) = self.activity.lock() {
            let e = a.entry(owner.to_string()).or_insert((now, 0));
            e.0 = now;
            e.1 = (e.1 as isize + ws_delta).max(0) as usize;
        }
    }

    /// Starts (or finds) the owner's server on a profile (recorded when given), auditing
    /// a start with the actor who caused it. Says whether it started the server: one
    /// already running may be on another profile.
    pub async fn ensure_audited(
        &self,
        owner: &str,
        actor: &str,
        profile: Option<String>,
    ) -> Result<SpawnOutcome, ServerError> {
        match self.ensure_profile(owner, actor, profile.clone()).await {
            Ok(SpawnOutcome::AlreadyRunning(s)) => Ok(SpawnOutcome::AlreadyRunning(s)),
            // Audited when submitted and when it registered (`slurm.rs`).
            Ok(SpawnOutcome::Started(s)) if s.placement.backend() == "slurm" => {
                Ok(SpawnOutcome::Started(s))
            }
            Ok(SpawnOutcome::Started(s)) => {
                self.metrics.spawns.inc();
                let rec = AuditRecord {
                    owner: Some(owner.to_string()),
                    message: Some(format!("pid {} in {}", s.pid, s.cgroup)),
                    ..AuditRecord::new(RecordKind::Event, events::SPAWN, actor)
                }
                .with_extra("server", s.name.clone())
                .with_extra("placement", s.placement.to_string());
                let rec = match profile {
                    Some(p) => rec.with_extra("profile", p),
                    None => rec,
                };
                let _ = self.recorder.append(rec).await;
                Ok(SpawnOutcome::Started(s))
            }
            Err(e) if e.is_recorded_elsewhere() => Err(e),
            Err(e) => {
                self.metrics.spawn_failures.inc();
                let rec = AuditRecord {
                    owner: Some(owner.to_string()),
                    message: Some(e.to_string()),
                    outcome: Some(Outcome::Error),
                    ..AuditRecord::new(RecordKind::Event, events::SPAWN_FAILED, actor)
                };
                let _ = self.recorder.append(rec).await;
                Err(e)
            }
        }
    }

    /// Forgets a server the relay found unreachable (the next visit starts it again),
    /// and records it: its death must not go unrecorded because a visit noticed it
    /// before the periodic check did. What is left of its cgroup goes too.
    pub async fn forget_unreachable(&self, owner: &str, why: &str) {
        let rec = AuditRecord {
            owner: Some(owner.to_string()),
            outcome: Some(Outcome::Error),
            message: Some(format!(
                "server exited or unreachable ({why}); the next visit starts it again"
            )),
            ..AuditRecord::new(RecordKind::Event, events::STOP, SYSTEM_ACTOR)
        }
        .with_extra("server", DEFAULT_SERVER);
        let _ = self.recorder.append(rec).await;
        if self.stop(owner).await.is_err() {
            self.forget(owner).await;
        }
    }

    /// Stops an owner's server through the helper and audits who did it and why.
    pub async fn stop_audited(
        &self,
        owner: &str,
        actor: &str,
        session: Option<String>,
        why: &str,
    ) -> Result<(), ServerError> {
        let result = self.stop(owner).await;
        let rec = AuditRecord {
            session,
            owner: Some(owner.to_string()),
            message: Some(match &result {
                Ok(()) => why.to_string(),
                Err(e) => e.to_string(),
            }),
            ..AuditRecord::new(RecordKind::Event, events::STOP, actor)
        }
        .with_extra("server", DEFAULT_SERVER);
        let _ = self.recorder.append(rec).await;
        result
    }

    /// Writes this hub's activity per owner to the store, where the leader reads every
    /// hub's before culling.
    pub async fn flush_activity(&self) {
        let rows: Vec<(String, i64, u32)> = self
            .activity
            .lock()
            .map(|a| {
                a.iter()
                    .map(|(o, (last, ws))| (o.clone(), *last, *ws as u32))
                    .collect()
            })
            .unwrap_or_default();
        let hub = self.leadership.hub().to_string();
        if let Err(e) = self.store.put_activity(&hub, self.store.now(), &rows).await {
            tracing::warn!(error = %e, "could not record server activity in the state store");
        }
    }

    /// Every server in the store (whichever hub started it), also kept in memory so
    /// that a stop finds its placement; this hub's memory when the store is down.
    pub async fn known(&self) -> Vec<RunningServer> {
        match self.store.servers().await {
            Ok(rows) => {
                if let Ok(mut m) = self.running.lock() {
                    for r in &rows {
                        m.entry(r.owner.clone()).or_insert_with(|| r.clone());
                    }
                }
                rows
            }
            Err(_) => self.all(),
        }
    }

    /// After a restart (or on becoming leader): keep servers whose cgroup still holds
    /// their process as the owner; stop whatever is half-started or dead. Leader only.
    ///
    /// Once per leadership epoch: the start and the first leadership tick both ask, and a
    /// second pass would judge servers started in between (and maybe since killed) as
    /// leftovers of a previous hub.
    pub async fn adopt_all(&self) {
        if !self.leadership.is_leader() {
            return;
        }
        let epoch = self.leadership.epoch();
        if self
            .adopted_epoch
            .swap(epoch, std::sync::atomic::Ordering::SeqCst)
            == epoch
        {
            return;
        }
        for s in self.known().await {
            if !self.leadership.is_leader() {
                return;
            }
            let adopted = match self.backends.for_placement(&s.placement) {
                Ok(b) => b.adopt(&s.placement, &s.owner, &s.name, s.pid).await,
                Err(e) => Err(e),
            };
            if let Err(e) = &adopted {
                // A remote place that did not answer holds servers in an unknown state,
                // never gone ones: keep the row and ask again at the next check.
                if e.reply_code().is_none() && s.placement != Placement::Local {
                    tracing::warn!(owner = %s.owner, at = %s.placement, error = %e, "could not ask about a server after the restart; kept as unknown");
                    continue;
                }
            }
            let detail = adopted
                .as_ref()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            let adopted = adopted.is_ok();
            if adopted {
                let rec = AuditRecord {
                    owner: Some(s.owner.clone()),
                    message: Some(format!("pid {} in {}", s.pid, s.cgroup)),
                    ..AuditRecord::new(RecordKind::Event, events::ADOPT, SYSTEM_ACTOR)
                }
                .with_extra("server", s.name.clone());
                let _ = self.recorder.append(rec).await;
            } else {
                let _ = self.stop(&s.owner).await;
                let rec = AuditRecord {
                    owner: Some(s.owner.clone()),
                    message: Some(format!("not adopted ({detail}); cleaned up")),
                    ..AuditRecord::new(RecordKind::Event, events::STOP, SYSTEM_ACTOR)
                }
                .with_extra("server", s.name.clone());
                let _ = self.recorder.append(rec).await;
            }
        }
        // Queued starts (stored) are followed again by the next poll, by job id and name.
        let queued = self.queued_all().await;
        if let Some(slurm) = &self.slurm {
            for q in queued.iter().filter(|q| !q.failed) {
                let _ = slurm.track(&q.placement, &q.owner, &q.name);
            }
        }
        // cgroups the store does not know: a start that never registered before a crash.
        for backend in self.backends.all() {
            let Ok(listing) = backend.list().await else {
                continue;
            };
            for found in listing.servers {
                let st = &found.status;
                // A start under way on any hub has no row yet; its claim says so.
                let starting = self
                    .store
                    .claimed(&st.user, &st.server)
                    .await
                    .unwrap_or(true);
                let waiting = queued.iter().any(|q| q.placement == found.placement);
                // Asked of the store, not this hub's memory: another hub may have
                // started (and registered) this server since this pass began.
                if self.get(&st.user).is_none()
                    && self.stored(&st.user).await.is_none()
                    && !starting
                    && !waiting
                    && self.leadership.is_leader()
                {
                    let _ = backend
                        .stop(&found.placement, &st.user, &st.server, Some(0))
                        .await;
                    let rec = AuditRecord {
                        owner: Some(st.user.clone()),
                        message: Some(format!(
                            "half-started server in {} at {} removed",
                            st.cgroup, found.placement
                        )),
                        ..AuditRecord::new(RecordKind::Event, events::STOP, SYSTEM_ACTOR)
                    }
                    .with_extra("server", st.server.clone());
                    let _ = self.recorder.append(rec).await;
                }
            }
        }
    }

    /// Stops servers nobody watched or used for `cull_idle_secs` on any hub (workflows
    /// keep running). Leader only.
    pub async fn cull_idle(&self) {
        if !self.leadership.is_leader() {
            return;
        }
        let now = self.store.now();
        let limit = self.cull_idle_secs as i64;
        self.flush_activity().await;
        // Watchers count from hubs that reported within the last two minutes.
        let Ok(activity) = self.store.activity(now - 120).await else {
            return;
        };
        let activity: HashMap<String, (i64, usize)> = activity
            .into_iter()
            .map(|(o, last, w)| (o, (last, w as usize)))
            .collect();
        for s in self.known().await {
            if !self.leadership.is_leader() {
                return;
            }
            let (last, watchers) = match activity.get(&s.owner) {
                // Use recorded before this server started counts from its start.
                Some((last, watchers)) => ((*last).max(s.started), *watchers),
                // Never used on any hub: left alone, as a prestarted server is.
                None => (now, 0),
            };
            if watchers == 0 && now - last >= limit && self.stop(&s.owner).await.is_ok() {
                if let Ok(mut a) = self.activity.lock() {
                    a.remove(&s.owner);
                }
                let rec = AuditRecord {
                    owner: Some(s.owner.clone()),
                    message: Some(format!("idle for {} s", now - last)),
                    ..AuditRecord::new(RecordKind::Event, events::CULL, SYSTEM_ACTOR)
                }
                .with_extra("server", s.name.clone());
                let _ = self.recorder.append(rec).await;
            }
        }
    }

    /// Asks the helper about every server: one that died is forgotten (the next visit
    /// starts it again), and an OOM kill in a server's cgroup is reported once, in the
    /// log, the audit trail and the metrics.
    pub async fn check_all(&self) {
        if !self.leadership.is_leader() {
            return;
        }
        let known = self.known().await;
        tracing::debug!(servers = known.len(), "checking servers");
        for s in known {
            if !self.leadership.is_leader() {
                return;
            }
            // A Slurm job's state comes from the cluster's batched poll (`poll_slurm`),
            // never from a query per server.
            if s.placement.backend() == "slurm" {
                continue;
            }
            let status = match self.backends.for_placement(&s.placement) {
                Ok(b) => b.status(&s.placement, &s.owner, &s.name).await,
                Err(e) => Err(e),
            };
            let (running, oom) = match status {
                Ok(st) => (st.running && st.pids.contains(&s.pid), st.oom_killed),
                Err(e) if e.reply_code() == Some(HelperErrorCode::NotFound) => (false, false),
                // Unknown (helper or host did not answer): never counted as gone.
                Err(e) => {
                    tracing::warn!(owner = %s.owner, at = %s.placement, error = %e, "could not ask about a server; its state is unknown");
                    if let Ok(mut u) = self.unanswered.lock() {
                        u.insert(s.owner.clone(), e.to_string());
                    }
                    continue;
                }
            };
            if let Ok(mut u) = self.unanswered.lock() {
                u.remove(&s.owner);
            }
            let newly_oom = oom && self.mark_oom_reported(&s.owner);
            if newly_oom {
                tracing::error!(owner = %s.owner, cgroup = %s.cgroup, "the kernel OOM-killed a process in this server's cgroup (memory limit of its profile)");
                self.metrics.spawn_failures.inc();
            }
            if !running || newly_oom {
                let message = match (running, oom) {
                    (false, true) => "server died: killed by the kernel, out of memory (memory limit of its profile)".to_string(),
                    (true, true) => "a process in the server's cgroup was killed by the kernel: out of memory (memory limit of its profile)".to_string(),
                    _ => "server exited".to_string(),
                };
                let rec = AuditRecord {
                    owner: Some(s.owner.clone()),
                    outcome: Some(if oom { Outcome::Error } else { Outcome::Ok }),
                    message: Some(message),
                    ..AuditRecord::new(RecordKind::Event, events::STOP, SYSTEM_ACTOR)
                }
                .with_extra("server", s.name.clone())
                .with_extra("oom_killed", oom);
                let _ = self.recorder.append(rec).await;
                if !running {
                    // Clean up whatever is left of the cgroup, then forget it.
                    let _ = self.stop(&s.owner).await;
                }
            }
        }
    }
}
