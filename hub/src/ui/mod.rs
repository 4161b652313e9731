//! What the public listener serves under `/hub/`: the web UI's assets ([`assets`]),
//! the JSON API ([`api`]), a person's own session ([`account`]) and API tokens
//! ([`tokens`]), hub-admin endpoints ([`admin`]), plus the internal registration
//! route and `/metrics` ([`internal`]).
//!
//! Handlers here take `web::Data<AppState>` and a session extractor, call into the
//! subsystems and turn refusals into [`crate::http::ApiError`]s. They must not hold
//! logic of their own that another entry point (WebSocket, CLI) would need: that
//! belongs in the subsystem.

pub mod account;
pub mod admin;
pub mod api;
pub mod assets;
pub mod hubapi;
pub mod internal;
pub mod tokens;

pub use assets::CONTENT_SECURITY_POLICY;
