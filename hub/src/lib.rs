//! The `steward` hub: the one door between browsers and every owner's UI server.
//!
//! It authenticates people (PAM or LDAP), keeps server-side sessions with sudo-like
//! elevation and API tokens, decides every operation with the `policy` crate, writes it
//! to the audit log before forwarding it, signs it for the owner's UI server and relays
//! the WebSocket. It asks the privileged `steward-spawn` helper to start and stop
//! servers; it must never switch uid itself.
//!
//! One folder per subsystem, each importing only those below it (docs/architecture.md
//! has the picture): `util`, `http`, `store`, `pki`, `record`, `auth` at the bottom;
//! `config`; `session`; `decide` and `servers`; `relay`; `state`; `ui` and `cli`; `app`
//! on top. A new kind of UI server (a real Cylc UI server) is a new folder beside
//! `servers`, wired in by `app`.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod config_check;
pub mod cylc;
pub mod decide;
pub mod docgen;
pub mod hsts;
pub mod http;
pub mod notify;
pub mod pki;
pub mod record;
pub mod relay;
pub mod servers;
pub mod session;
pub mod singleuser;
pub mod state;
pub mod store;
pub mod ui;
pub mod util;

/// `config.rs` names `crate::ldap::LdapConfig`; the LDAP backend lives in `auth`.
pub use auth::ldap;
