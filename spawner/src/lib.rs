//! Start, track and stop each owner's UI server as that owner, fenced by a cgroup, on
//! this machine or on another host.
//!
//! Two halves live here. The privileged half is the `steward-spawn` helper (`helper`,
//! `child`, `cgroup`, `config`, `hoststat`): a small synchronous program that reads one
//! JSON request, checks it against its own root-owned config, and forks/execs or kills.
//! The unprivileged half, behind the `client` feature (on by default, off for the helper
//! so tokio never links into the root process), is what the hub uses: the raw
//! [`client::SpawnerClient`] (helper run directly or through `sudo -n`) and the
//! [`backend::Backend`] trait over it, implemented by [`local::LocalBackend`] and
//! [`ssh::SshBackend`] (the same verbs over OpenSSH on a pool of hosts, placed by the
//! pure [`placement`] module). This crate must not know about sessions, HTTP or policy:
//! it is told *who* and *what*, never *why*.

pub mod cgroup;
pub mod child;
pub mod config;
pub mod error;
pub mod helper;
pub mod hoststat;
pub mod placement;
pub mod request;
pub mod rundir;
pub mod slurm;
pub mod sys;

#[cfg(feature = "client")]
pub mod backend;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "client")]
pub mod local;
pub mod ssh;

#[cfg(feature = "client")]
pub use backend::{Backend, Backends, Listing, Located, Started, Stopped, Unanswered};
#[cfg(feature = "client")]
pub use client::{SpawnMode, SpawnerClient};
pub use error::SpawnError;
#[cfg(feature = "client")]
pub use local::LocalBackend;
