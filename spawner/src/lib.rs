//! Start, track and stop each owner's UI server as that owner, fenced by a cgroup.
//!
//! Two halves live here. The privileged half is the `steward-spawn` helper (`helper`,
//! `child`, `cgroup`, `config`): a small synchronous program that reads one JSON request,
//! checks it against its own root-owned config, and forks/execs or kills. The unprivileged
//! half is [`client::SpawnerClient`], which the hub uses to run the helper directly (hub
//! as root) or through `sudo -n` (hub as a system user). This crate must not know about
//! sessions, HTTP or policy: it is told *who* and *what*, never *why*.

pub mod cgroup;
pub mod child;
pub mod client;
pub mod config;
pub mod error;
pub mod helper;
pub mod request;
pub mod sys;

pub use client::{SpawnMode, SpawnerClient};
pub use error::SpawnError;
