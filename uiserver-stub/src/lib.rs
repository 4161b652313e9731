//! `steward-uiserver`: a realistic per-owner workflow server that trusts only the hub.
//!
//! One UI server runs per owner, as that owner. It learns its TLS identity and the
//! hub's JWT key on stdin ([`bootstrap`]), serves HTTPS + WebSocket with mutual TLS
//! ([`tls`], [`server`]), refuses every request that does not carry a fresh, unreplayed
//! hub-signed token scoped to the operation ([`auth`]), and registers with the hub when
//! it is listening ([`register`]).
//!
//! Workflows are the owner's `~/.steward/workflows/<name>/flow.toml` ([`flow`]). Each
//! running workflow has its own detached scheduler process ([`scheduler`]) that runs
//! tasks as real processes and survives the UI server; the two talk JSON lines over a
//! private unix socket ([`sched_proto`], [`sched_client`]). Logs are read in chunks,
//! never whole, and never outside the workflow's run directory ([`logs`]).
//!
//! What this crate must not do: trust anything the hub did not sign, write its key to
//! disk, or follow a path out of a run directory.

pub mod auth;
pub mod bootstrap;
pub mod daemon;
pub mod flow;
pub mod logs;
pub mod ops;
pub mod paths;
pub mod register;
pub mod sched_client;
pub mod sched_proto;
pub mod scheduler;
pub mod server;
pub mod server_main;
pub mod state;
pub mod sys;
pub mod tls;
pub mod wire;

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
