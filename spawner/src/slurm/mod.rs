//! Slurm as a spawner backend: the server is a batch job submitted as its owner.
//!
//! Two halves, as for local servers. The privileged half (`submit`, run by the
//! `steward-spawn` helper for the `slurm_submit` and `slurm_cancel` verbs) builds the
//! job script from the allow-listed executable and runs `sbatch`/`scancel` as the
//! owner. The unprivileged half (`poller`) is what the hub runs: one batched squeue per
//! cluster per interval for every owner, adoption by job name, and the rules for when a
//! job counts as gone. `queue` and `script` are the pure parts both rely on.
//!
//! Like the rest of this crate it knows nothing of sessions or policy; it answers
//! with `steward_protocol::Placement::Slurm { cluster, job_id }` and job states.

#[cfg(feature = "client")]
pub mod backend;
pub mod config;
pub mod poller;
pub mod queue;
pub mod run;
pub mod script;
pub mod submit;

#[cfg(feature = "client")]
pub use backend::SlurmBackend;
pub use config::{SlurmClusterConfig, SlurmProfile};
pub use poller::{jittered, Calls, PollReport, Poller, SlurmCluster, StewardJob};
pub use queue::{job_name, parse_job_name, Evidence, JobState};

use steward_protocol::Placement;

/// Where a submitted server lives, as the hub stores it.
pub fn placement(cluster: &str, job_id: &str) -> Placement {
    Placement::Slurm {
        cluster: cluster.to_string(),
        job_id: job_id.to_string(),
    }
}
