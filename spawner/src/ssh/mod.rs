//! The ssh backend: a pool of hosts, each reached over the system OpenSSH with one
//! persistent connection, running the same `steward-spawn` verbs there as the local
//! backend runs here. The remote helper, under its own root-owned config on that host,
//! starts the server as the owner in a cgroup; nothing about who may run what is
//! decided on the hub's side of the wire.
//!
//! `config` is the pool's configuration (pure); `conn` the connections; the backend
//! itself (below) places each start with [`crate::placement`], keeps starts in flight
//! and a short-lived cache of each host's status, and turns every fault into an error
//! naming the host.

pub mod config;
#[cfg(feature = "client")]
pub mod conn;
#[cfg(feature = "client")]
mod pool;

pub use config::{HostConfig, PlacementConfig, SshPoolConfig};
#[cfg(feature = "client")]
pub use pool::SshBackend;
