//! Servers started as Slurm jobs. A start is a submission that may wait in the queue
//! for minutes or days, longer than any request: so it is stored ([`PendingSpawn`]),
//! survives a hub restart, shows in `steward servers list` and the overview with
//! Slurm's reason, can be cancelled, and is completed by the server's registration on
//! whichever hub it reaches. The leader polls the cluster once per interval for every
//! owner (one `squeue`), and only its poll decides that a job ended: a job that dies
//! before registering fails its start at the next poll, with Slurm's final state.

use super::manager::{RunningServer, ServerError, SpawnOutcome, DEFAULT_SERVER};
use super::remote::endpoint_for;
use super::ServerManager;
use crate::store::{hash_secret, PendingSpawn, ServerRow};
use std::time::Duration;
use steward_audit::{events, AuditRecord, Outcome, RecordKind, SYSTEM_ACTOR};
use steward_protocol::bootstrap::Registration;
use steward_protocol::helper::{HelperErrorCode, StartRequest};
use steward_protocol::Placement;
use steward_spawner::slurm::JobState;
use steward_spawner::Backend;

fn job_of(at: &Placement) -> &str {
    match at {
        Placement::Slurm { job_id, .. } => job_id,
        _ => "?",
    }
}

impl ServerManager {
    /// The owner's start waiting in a batch queue, if any (any hub's).
    pub(super) async fn queued(&self, owner: &str) -> Option<PendingSpawn> {
        self.store
            .pending_spawns()
            .await
            .ok()?
            .into_iter()
            .find(|p| p.owner == owner && p.name == DEFAULT_SERVER)
    }

    /// Whether the owner has a running server or a start waiting in a batch queue.
    pub async fn has_server_or_queued(&self, owner: &str) -> bool {
        self.get(owner).is_some() || self.queued(owner).await.is_some()
    }

    /// Every start waiting in a batch queue (for listings).
    pub async fn queued_all(&self) -> Vec<PendingSpawn> {
        self.store.pending_spawns().await.unwrap_or_default()
    }

    /// Submits the start to Slurm, stores it, audits the submission, then waits for the
    /// registration like any start: a job that runs soon is just a slower start.
    pub(super) async fn submit_queued(
        &self,
        owner: &str,
        actor: &str,
        req: &StartRequest,
        token: &str,
    ) -> Result<SpawnOutcome, ServerError> {
        let fail = |message: String| ServerError::Start {
            owner: owner.to_string(),
            message,
        };
        let slurm = self
            .slurm
            .as_ref()
            .ok_or_else(|| fail("no Slurm cluster is configured ([spawner.slurm])".into()))?;
        let started = slurm.start(req).await.map_err(|e| fail(e.to_string()))?;
        let queued = PendingSpawn {
            owner: owner.to_string(),
            name: DEFAULT_SERVER.to_string(),
            placement: started.placement.clone(),
            token_hash: hash_secret(token),
            profile: req.profile.clone(),
            actor: actor.to_string(),
            hub: self.leadership.hub().to_string(),
            since: self.store.now(),
            state: "submitted".into(),
            failed: false,
        };
        if let Err(e) = self.store.put_pending(&queued).await {
            // A job nobody could find again must not stay in the queue.
            let _ = slurm
                .stop(&started.placement, owner, DEFAULT_SERVER, Some(0))
                .await;
            return Err(fail(format!(
                "the state store: {e} (Slurm job {} cancelled)",
                job_of(&started.placement)
            )));
        }
        let mut rec = AuditRecord {
            owner: Some(owner.to_string()),
            message: Some(format!(
                "submitted to Slurm as job {}; it runs when Slurm starts it",
                job_of(&started.placement)
            )),
            ..AuditRecord::new(RecordKind::Event, events::SPAWN, actor)
        }
        .with_extra("server", DEFAULT_SERVER)
        .with_extra("placement", started.placement.to_string());
        if let Some(p) = &req.profile {
            rec = rec.with_extra("profile", p.clone());
        }
        let _ = self.recorder.append(rec).await;
        self.metrics.spawns.inc();
        self.await_queued(owner).await.map(SpawnOutcome::Started)
    }

    /// Waits (up to the start timeout) for the owner's queued start: its server, its
    /// failure with Slurm's reason, or "still pending" with the reason.
    pub(super) async fn await_queued(&self, owner: &str) -> Result<RunningServer, ServerError> {
        let deadline = tokio::time::Instant::now() + self.start_timeout();
        let mut neither = 0;
        loop {
            if let Some(s) = self.stored(owner).await {
                return Ok(s);
            }
            let Some(q) = self.queued(owner).await else {
                // A registration removes the start a moment before it stores the
                // server: only a start missing on several reads was cancelled.
                neither += 1;
                if neither >= 4 {
                    return Err(ServerError::Start {
                        owner: owner.to_string(),
                        message: "its queued start was cancelled".into(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            };
            neither = 0;
            if q.failed {
                // Shown once, to whoever waits (or visits next); the next visit submits
                // afresh.
                let _ = self.store.take_pending(&q.token_hash).await;
                return Err(ServerError::JobEnded {
                    owner: owner.to_string(),
                    message: q.state,
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ServerError::Pending {
                    owner: owner.to_string(),
                    job: job_of(&q.placement).to_string(),
                    state: q.state,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A registration no start of this hub waits for: a queued one (stored) completes
    /// here. The hub dials the node Slurm says the job runs on, never the address the
    /// server claims.
    pub(super) async fn complete_queued(&self, reg: Registration) -> bool {
        let token_hash = hash_secret(&reg.register_token);
        let Some(q) = self
            .queued_all()
            .await
            .into_iter()
            .find(|q| q.token_hash == token_hash && !q.failed)
        else {
            return false;
        };
        // Asked before the start is taken, so that it is gone from the store only for
        // the instant between taking it and storing the server.
        let node = match &self.slurm {
            Some(s) => Some(s.node_address(&q.placement, &q.owner, &q.name).await),
            None => None,
        };
        let endpoint = endpoint_for(&q.placement, &reg.endpoint, None, node);
        // Exactly one registration (on any hub) completes a start.
        let Ok(Some(q)) = self.store.take_pending(&token_hash).await else {
            return false;
        };
        let endpoint = match endpoint {
            Ok(e) => e,
            Err(why) => {
                tracing::warn!(owner = %q.owner, at = %q.placement, "registration refused: {why}");
                if let Ok(b) = self.backends.for_placement(&q.placement) {
                    let _ = b.stop(&q.placement, &q.owner, &q.name, Some(0)).await;
                }
                let rec = AuditRecord {
                    owner: Some(q.owner.clone()),
                    message: Some(format!("registration refused ({why}); job cancelled")),
                    outcome: Some(Outcome::Error),
                    ..AuditRecord::new(RecordKind::Event, events::SPAWN_FAILED, &q.actor)
                }
                .with_extra("server", q.name.clone())
                .with_extra("placement", q.placement.to_string());
                let _ = self.recorder.append(rec).await;
                self.metrics.spawn_failures.inc();
                return false;
            }
        };
        let row = ServerRow {
            owner: q.owner.clone(),
            name: q.name.clone(),
            pid: 0,
            placement: q.placement.clone(),
            endpoint: endpoint.clone(),
            cgroup: steward_spawner::slurm::job_name(&q.owner, &q.name),
            started: self.store.now(),
            epoch: 0,
            profile: q.profile.clone(),
            // The hub that completed the start (the submitter may be another).
            hub: Some(self.leadership.hub().to_string()),
        };
        self.remember(row).await;
        let rec = AuditRecord {
            owner: Some(q.owner.clone()),
            message: Some(format!(
                "Slurm job {} registered; reachable at {endpoint}",
                job_of(&q.placement)
            )),
            ..AuditRecord::new(RecordKind::Event, events::SPAWN_READY, &q.actor)
        }
        .with_extra("server", q.name.clone())
        .with_extra("placement", q.placement.to_string());
        let _ = self.recorder.append(rec).await;
        true
    }

    /// Cancels a queued start (`scancel` as the owner) and forgets it.
    pub(super) async fn cancel_queued(&self, q: PendingSpawn) -> Result<(), ServerError> {
        let cancelled = match self.backends.for_placement(&q.placement) {
            Ok(b) => b.stop(&q.placement, &q.owner, &q.name, None).await,
            Err(e) => Err(e),
        };
        match cancelled {
            Ok(_) => {}
            // Ended already (a failed start waiting to be shown): nothing to cancel.
            Err(e) if e.reply_code() == Some(HelperErrorCode::NotFound) => {}
            Err(e) => {
                return Err(ServerError::Start {
                    owner: q.owner,
                    message: format!("cancelling Slurm job {}: {e}", job_of(&q.placement)),
                })
            }
        }
        let _ = self.store.take_pending(&q.token_hash).await;
        Ok(())
    }

    /// One poll of the Slurm cluster (leader only): every stored job, queued or running,
    /// in one `squeue`; queued starts get Slurm's reason, a job that ended before
    /// registering fails its start, a server whose job ended is forgotten. Unknown
    /// (controller down) changes nothing.
    pub async fn poll_slurm(&self) {
        let Some(slurm) = &self.slurm else { return };
        if !self.leadership.is_leader() {
            return;
        }
        let Ok(queued) = self.store.pending_spawns().await else {
            return;
        };
        let servers: Vec<_> = self
            .known()
            .await
            .into_iter()
            .filter(|s| s.placement.backend() == "slurm")
            .collect();
        for (at, owner, name) in queued
            .iter()
            .filter(|q| !q.failed)
            .map(|q| (&q.placement, &q.owner, &q.name))
            .chain(servers.iter().map(|s| (&s.placement, &s.owner, &s.name)))
        {
            let _ = slurm.track(at, owner, name);
        }
        let report = match slurm.poll().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "the Slurm poll failed; job states unknown");
                return;
            }
        };
        for job in report.jobs {
            let at = steward_spawner::slurm::placement(&slurm.cluster().name, &job.job_id);
            if let Some(q) = queued.iter().find(|q| q.placement == at && !q.failed) {
                self.update_queued(q, &job.state).await;
            } else if let Some(s) = servers.iter().find(|s| s.placement == at) {
                self.update_slurm_server(s, &job.state).await;
            }
        }
    }

    async fn update_queued(&self, q: &PendingSpawn, state: &JobState) {
        let summary = state.summary();
        let failed = matches!(state, JobState::Gone { .. });
        let text = if failed {
            format!(
                "Slurm job {} ended before its server registered: {summary}",
                job_of(&q.placement)
            )
        } else {
            summary
        };
        if text == q.state {
            return;
        }
        let Ok(true) = self
            .store
            .set_pending_state(&q.token_hash, &text, failed)
            .await
        else {
            return;
        };
        if failed {
            tracing::warn!(owner = %q.owner, at = %q.placement, "{text}");
            self.metrics.spawn_failures.inc();
            let rec = AuditRecord {
                owner: Some(q.owner.clone()),
                message: Some(text),
                outcome: Some(Outcome::Error),
                ..AuditRecord::new(RecordKind::Event, events::SPAWN_FAILED, SYSTEM_ACTOR)
            }
            .with_extra("server", q.name.clone())
            .with_extra("placement", q.placement.to_string())
            .with_extra("oom_killed", state.out_of_memory());
            let _ = self.recorder.append(rec).await;
        }
    }

    async fn update_slurm_server(&self, s: &ServerRow, state: &JobState) {
        match state {
            JobState::Unknown { why } => {
                if let Ok(mut u) = self.unanswered.lock() {
                    u.insert(s.owner.clone(), why.clone());
                }
            }
            JobState::Running { .. } | JobState::Pending { .. } => {
                if let Ok(mut u) = self.unanswered.lock() {
                    u.remove(&s.owner);
                }
            }
            JobState::Gone { .. } => {
                let oom = state.out_of_memory();
                let rec = AuditRecord {
                    owner: Some(s.owner.clone()),
                    outcome: Some(if state.failed() {
                        Outcome::Error
                    } else {
                        Outcome::Ok
                    }),
                    message: Some(format!(
                        "Slurm job {} ended: {}",
                        job_of(&s.placement),
                        state.summary()
                    )),
                    ..AuditRecord::new(RecordKind::Event, events::STOP, SYSTEM_ACTOR)
                }
                .with_extra("server", s.name.clone())
                .with_extra("oom_killed", oom);
                let _ = self.recorder.append(rec).await;
                if oom {
                    self.metrics.spawn_failures.inc();
                }
                // The job is gone: nothing to cancel, only to forget.
                self.forget(&s.owner).await;
            }
        }
    }
}
