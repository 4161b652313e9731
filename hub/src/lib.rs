//! The `steward` hub: the one door between browsers and every owner's UI server.
//!
//! It authenticates people (PAM), keeps server-side sessions with sudo-like elevation,
//! decides every operation with the `policy` crate, writes it to the audit log before
//! forwarding it, signs it for the owner's UI server and relays the WebSocket. It asks
//! the privileged `steward-spawn` helper to start and stop servers; it must never switch
//! uid itself.

// Handlers return a ready `HttpResponse` as their error value: it is the error the
// client gets, built once where the reason is known.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod api;
pub mod apitokens;
pub mod app;
pub mod auth;
pub mod background;
pub mod ca;
pub mod client;
pub mod clock;
pub mod config;
pub mod db;
pub mod demo;
pub mod drain;
pub mod fsutil;
pub mod keyed;
pub mod ldap;
pub mod metrics;
pub mod ops;
pub mod proxy;
pub mod ratelimit;
pub mod reconcile;
pub mod relay;
pub mod servers;
pub mod state;
pub mod tokens;
pub mod ui;
pub mod web;
