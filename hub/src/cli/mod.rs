//! The `steward` binary's commands that are not the server: small clients of a running
//! hub's API ([`client`]: `servers`, `sessions`, `token`, `scan`) and the one-machine
//! demo ([`demo`]: users, policy, workflows, self-signed TLS).
//!
//! Clients must reach the hub only through its HTTP API, as any script would. The demo
//! prepares files for `app::build`; at Ctrl-C it stops only what the demo started.

pub mod client;
pub mod demo;
