//! Everything between a browser (or script) and an owner's UI server once the hub has
//! a session: the WebSocket relay ([`ws`]), HTTP forwarding of reads and operations
//! ([`http`]), the one path every operation takes ([`op`]), the pooled upstream
//! clients ([`upstream`]), the per-session limits ([`limit`]) and graceful draining
//! ([`drain`]).
//!
//! Handlers here extract `web::Data<Relay>` and a session; they never see `AppState`.
//! This module must not start or stop servers itself (it asks `servers`), decide
//! (it asks `decide`) or touch the store.

pub mod drain;
pub mod http;
pub mod limit;
pub mod op;
pub mod singleuser;
pub mod upstream;
pub mod ws;

use crate::config::LimitsConfig;
use crate::decide::Decider;
use crate::pki::jwt::TokenSigner;
use crate::record::{Metrics, Recorder};
use crate::servers::ServerManager;
use crate::session::Sessions;
use actix_web::web;
use std::sync::Arc;

/// What the relay needs, built once by `app`.
pub struct Relay {
    pub limits: LimitsConfig,
    /// The only Origin a WebSocket upgrade may carry.
    pub public_origin: String,
    pub sessions: web::Data<Sessions>,
    pub decider: Arc<Decider>,
    pub recorder: Arc<Recorder>,
    pub signer: Arc<TokenSigner>,
    pub servers: Arc<ServerManager>,
    pub metrics: Arc<Metrics>,
    pub upstream: upstream::UpstreamClients,
    pub drain: drain::Drain,
    pub ops: limit::OpLimiter,
    pub ws_slots: limit::WsSlots,
    /// One pooled plain-HTTP client per single-user server socket.
    pub singleuser_clients: std::sync::Mutex<std::collections::HashMap<String, reqwest::Client>>,
}

impl Relay {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        limits: LimitsConfig,
        public_origin: String,
        sessions: web::Data<Sessions>,
        decider: Arc<Decider>,
        recorder: Arc<Recorder>,
        signer: Arc<TokenSigner>,
        servers: Arc<ServerManager>,
        metrics: Arc<Metrics>,
    ) -> Relay {
        Relay {
            ops: limit::OpLimiter::new(limits.ops_per_sec),
            ws_slots: limit::WsSlots::new(limits.ws_per_user),
            limits,
            public_origin,
            sessions,
            decider,
            recorder,
            signer,
            servers,
            metrics,
            upstream: Default::default(),
            drain: Default::default(),
            singleuser_clients: Default::default(),
        }
    }
}

impl Relay {
    /// A WebSocket upgrade (or a state-changing request) must come from a page of this
    /// hub: its `Origin` is the public URL's.
    pub fn origin_is_ours(&self, req: &actix_web::HttpRequest) -> bool {
        req.headers()
            .get("origin")
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| o.trim_end_matches('/') == self.public_origin.as_str())
    }

    /// [`origin_is_ours`](Self::origin_is_ours) as the refusal a WebSocket upgrade gets.
    pub fn check_ws_origin(
        &self,
        req: &actix_web::HttpRequest,
    ) -> Result<(), crate::http::ApiError> {
        if self.origin_is_ours(req) {
            Ok(())
        } else {
            Err(crate::http::ApiError::forbidden(
                "WebSocket Origin missing or not this hub's public URL",
            ))
        }
    }
}
