//! The `steward` binary's commands that are not the server: small clients of a running
//! hub's API ([`client`]: `servers`, `sessions`, `token`, `scan`), the one-machine
//! demo ([`demo`]: users, policy, workflows, self-signed TLS), the move from SQLite
//! to PostgreSQL ([`database`], run with the hub stopped), and the database side of
//! `steward audit verify --deployment` ([`audit`]).
//!
//! Clients must reach a running hub only through its HTTP API, as any script would. The demo
//! prepares files for `app::build`; at Ctrl-C it stops only what the demo started.

pub mod audit;
pub mod client;
pub mod database;
pub mod demo;
