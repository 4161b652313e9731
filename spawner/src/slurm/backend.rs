//! Slurm behind the one [`Backend`] interface: a start is an `sbatch` through the helper
//! (as the owner), a stop is an `scancel`, and everything the hub asks about a job comes
//! from the last batched poll ([`SlurmBackend::poll`]), never from a query per server:
//! status and adoption read that poll's answer, so the controller sees one `squeue` per
//! interval whatever the number of owners.
//!
//! A submitted job has no pid and no cgroup the hub can name (Slurm makes its own on the
//! node): [`Started::pid`] is 0 and the cgroup field carries the job name, which is how a
//! restarted hub finds the job again.

use crate::backend::{self, Backend, Listing, Located, Started, Stopped, Unanswered};
use crate::client::SpawnerClient;
use crate::error::SpawnError;
use crate::slurm::poller::{PollReport, Poller, SlurmCluster, StewardJob};
use crate::slurm::queue::{job_name, JobState};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use steward_protocol::helper::{
    HelperErrorCode, HelperReply, HelperRequest, ServerStatus, SlurmSubmitRequest, StartRequest,
};
use steward_protocol::Placement;

/// How old a queue listing may be for adoption to reuse it: one squeue serves every
/// server a restarted hub adopts.
const LISTING_REUSE: Duration = Duration::from_secs(5);

pub struct SlurmBackend {
    client: SpawnerClient,
    cluster: SlurmCluster,
    poller: Arc<Mutex<Poller>>,
    /// Each tracked job's state at the last poll, by job id.
    last: Mutex<BTreeMap<String, JobState>>,
    /// The last listing of live Steward jobs, for adoption.
    listing: Mutex<Option<(Instant, Vec<StewardJob>)>>,
}

fn poisoned() -> SpawnError {
    SpawnError::Helper("the Slurm poller's state is poisoned (a poll panicked)".into())
}

impl SlurmBackend {
    pub fn new(client: SpawnerClient, cluster: SlurmCluster) -> Self {
        SlurmBackend {
            client,
            poller: Arc::new(Mutex::new(Poller::new(cluster.clone()))),
            cluster,
            last: Mutex::new(BTreeMap::new()),
            listing: Mutex::new(None),
        }
    }

    pub fn cluster(&self) -> &SlurmCluster {
        &self.cluster
    }

    /// The job id a placement names, if it is on this cluster.
    fn job<'a>(&self, at: &'a Placement) -> Result<&'a str, SpawnError> {
        match at {
            Placement::Slurm { cluster, job_id } if *cluster == self.cluster.name => Ok(job_id),
            other => Err(backend::wrong_backend("slurm", other)),
        }
    }

    /// Follows a job stored before (a pending spawn or a server, after a hub restart).
    pub fn track(&self, at: &Placement, owner: &str, server: &str) -> Result<(), SpawnError> {
        let job = self.job(at)?;
        self.poller
            .lock()
            .map_err(|_| poisoned())?
            .track(job, owner, server);
        Ok(())
    }

    /// One batched poll of the cluster (a single squeue, plus one accounting call when
    /// jobs ended); its states answer [`Backend::status`] until the next.
    pub async fn poll(&self) -> Result<PollReport, SpawnError> {
        let poller = self.poller.clone();
        let report = tokio::task::spawn_blocking(move || {
            poller.lock().map(|mut p| p.poll()).map_err(|_| poisoned())
        })
        .await
        .map_err(|e| SpawnError::Helper(format!("the Slurm poll did not finish: {e}")))??;
        if let Ok(mut last) = self.last.lock() {
            last.clear();
            for j in &report.jobs {
                last.insert(j.job_id.clone(), j.state.clone());
            }
        }
        Ok(report)
    }

    /// The state of a job at the last poll (None: not polled since it was tracked).
    pub fn state(&self, at: &Placement) -> Option<JobState> {
        let job = self.job(at).ok()?;
        self.last.lock().ok()?.get(job).cloned()
    }

    /// Where the hub dials a server that registered from `job_id`: the address Slurm
    /// gives the node the job runs on, after checking the job is the owner's.
    pub async fn node_address(
        &self,
        at: &Placement,
        owner: &str,
        server: &str,
    ) -> Result<String, String> {
        let job = self.job(at).map_err(|e| e.to_string())?.to_string();
        let cluster = self.cluster.clone();
        let (owner, server) = (owner.to_string(), server.to_string());
        tokio::task::spawn_blocking(move || cluster.node_address(&job, &owner, &server))
            .await
            .map_err(|e| format!("asking Slurm where job runs: {e}"))?
    }

    /// Live Steward jobs, from a listing at most [`LISTING_REUSE`] old.
    async fn live_jobs(&self) -> Result<Vec<StewardJob>, String> {
        if let Ok(l) = self.listing.lock() {
            if let Some((at, jobs)) = l.as_ref() {
                if at.elapsed() < LISTING_REUSE {
                    return Ok(jobs.clone());
                }
            }
        }
        let cluster = self.cluster.clone();
        let jobs = tokio::task::spawn_blocking(move || cluster.steward_jobs())
            .await
            .map_err(|e| format!("the squeue listing did not finish: {e}"))??;
        if let Ok(mut l) = self.listing.lock() {
            *l = Some((Instant::now(), jobs.clone()));
        }
        Ok(jobs)
    }

    fn placement(&self, job_id: &str) -> Placement {
        crate::slurm::placement(&self.cluster.name, job_id)
    }
}

/// What a job's state says about a server in it, in the helper's terms.
fn status_of(user: &str, server: &str, state: &JobState) -> Result<ServerStatus, SpawnError> {
    let status = |running: bool, oom_killed: bool| ServerStatus {
        user: user.into(),
        server: server.into(),
        cgroup: job_name(user, server),
        pids: vec![],
        running,
        oom_killed,
    };
    match state {
        JobState::Running { .. } | JobState::Pending { .. } => Ok(status(true, false)),
        JobState::Gone { .. } => Ok(status(false, state.out_of_memory())),
        JobState::Unknown { why } => Err(SpawnError::Unavailable(why.clone())),
    }
}

#[async_trait]
impl Backend for SlurmBackend {
    fn name(&self) -> &'static str {
        "slurm"
    }

    async fn start(&self, req: &StartRequest) -> Result<Started, SpawnError> {
        let submit = SlurmSubmitRequest {
            user: req.user.clone(),
            server: req.server.clone(),
            cluster: self.cluster.name.clone(),
            executable: req.executable.clone(),
            args: req.args.clone(),
            env: req.env.clone(),
            stdin: req.stdin.clone(),
            profile: req.profile.clone(),
        };
        match self
            .client
            .call(&HelperRequest::SlurmSubmit(submit))
            .await?
        {
            HelperReply::SlurmSubmitted {
                job_id, job_name, ..
            } => {
                self.poller
                    .lock()
                    .map_err(|_| poisoned())?
                    .track(&job_id, &req.user, &req.server);
                Ok(Started {
                    placement: self.placement(&job_id),
                    pid: 0,
                    cgroup: job_name,
                })
            }
            other => Err(backend::reply_error(other, "slurm_submitted")),
        }
    }

    async fn stop(
        &self,
        at: &Placement,
        user: &str,
        server: &str,
        _grace_secs: Option<u64>,
    ) -> Result<Stopped, SpawnError> {
        let job = self.job(at)?.to_string();
        let reply = self
            .client
            .call(&HelperRequest::SlurmCancel {
                user: user.into(),
                server: server.into(),
                cluster: self.cluster.name.clone(),
                job_id: job.clone(),
            })
            .await?;
        match reply {
            HelperReply::SlurmCancelled { .. } => {
                // The next polls confirm the end; a cancelled job is no longer ours to
                // watch, and its state must not outlive it.
                if let Ok(mut p) = self.poller.lock() {
                    p.forget(&job);
                }
                Ok(Stopped {
                    killed: 1,
                    cgroup_removed: true,
                })
            }
            other => {
                let e = backend::reply_error(other, "slurm_cancelled");
                if e.reply_code() == Some(HelperErrorCode::NotFound) {
                    if let Ok(mut p) = self.poller.lock() {
                        p.forget(&job);
                    }
                }
                Err(e)
            }
        }
    }

    async fn status(
        &self,
        at: &Placement,
        user: &str,
        server: &str,
    ) -> Result<ServerStatus, SpawnError> {
        match self.state(at) {
            Some(state) => status_of(user, server, &state),
            None => Err(SpawnError::Unavailable(format!(
                "{at} has not been polled yet"
            ))),
        }
    }

    async fn adopt(
        &self,
        at: &Placement,
        user: &str,
        server: &str,
        _pid: u32,
    ) -> Result<ServerStatus, SpawnError> {
        let job = self.job(at)?;
        let jobs = self.live_jobs().await.map_err(SpawnError::Unavailable)?;
        // By id, name and Slurm user together: a job someone else named after this
        // server, or an id Slurm reused, is not adopted.
        match jobs
            .iter()
            .find(|j| j.job_id == job && j.owner == user && j.server == server)
        {
            Some(j) => {
                self.track(at, user, server)?;
                status_of(user, server, &j.state)
            }
            None => Err(SpawnError::Reply {
                code: HelperErrorCode::NotFound,
                message: format!(
                    "no live Slurm job {job} named {} of user {user}",
                    job_name(user, server)
                ),
            }),
        }
    }

    async fn list(&self) -> Result<Listing, SpawnError> {
        match self.live_jobs().await {
            Ok(jobs) => Ok(Listing {
                servers: jobs
                    .iter()
                    .filter_map(|j| {
                        Some(Located {
                            placement: self.placement(&j.job_id),
                            status: status_of(&j.owner, &j.server, &j.state).ok()?,
                        })
                    })
                    .collect(),
                unanswered: vec![],
            }),
            Err(error) => Ok(Listing {
                servers: vec![],
                unanswered: vec![Unanswered {
                    placement: self.placement("*"),
                    error,
                }],
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::queue::Evidence;

    #[test]
    fn a_job_state_is_a_server_state_and_unknown_is_never_gone() {
        let running = JobState::Running {
            slurm_state: "RUNNING".into(),
            nodes: "n1".into(),
        };
        let s = status_of("alice", "default", &running).unwrap();
        assert!(s.running && !s.oom_killed);
        assert_eq!(s.cgroup, "steward:alice:default");
        let oom = JobState::Gone {
            final_state: "OUT_OF_MEMORY".into(),
            exit_code: Some("0:125".into()),
            reason: None,
            evidence: Evidence::Controller,
        };
        let s = status_of("alice", "default", &oom).unwrap();
        assert!(!s.running && s.oom_killed);
        let unknown = JobState::Unknown {
            why: "controller down".into(),
        };
        let e = status_of("alice", "default", &unknown).unwrap_err();
        assert!(
            e.reply_code().is_none(),
            "unknown must not read as not_found"
        );
        assert!(e.to_string().contains("controller down"));
    }

    #[test]
    fn placements_of_other_backends_or_clusters_are_refused() {
        let b = SlurmBackend::new(
            SpawnerClient::new("/nonexistent", None, crate::SpawnMode::Direct),
            SlurmCluster::new("c1"),
        );
        assert!(b.job(&Placement::Local).is_err());
        let other = crate::slurm::placement("c2", "7");
        assert!(b.job(&other).unwrap_err().to_string().contains("c2"));
        assert_eq!(b.job(&crate::slurm::placement("c1", "7")).unwrap(), "7");
        assert!(b.state(&crate::slurm::placement("c1", "7")).is_none());
    }
}
