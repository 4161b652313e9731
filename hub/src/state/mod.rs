//! [`AppState`]: the subsystems built once at start (`app::build`), shared by the
//! handlers of `ui/` and the background tasks of `app/`.
//!
//! It holds no logic of its own beyond "is this user a hub admin"; subsystems below it
//! (`session`, `decide`, `servers`, `relay`, ...) never see it, which keeps the module
//! graph free of circles. Handlers of the relay get `web::Data<Relay>` instead.

use crate::auth::Login;
use crate::config::HubConfig;
use crate::decide::Decider;
use crate::pki::ca::Ca;
use crate::pki::jwt::TokenSigner;
use crate::record::{Metrics, Recorder};
use crate::relay::Relay;
use crate::servers::ServerManager;
use crate::session::Sessions;
use crate::store::Store;
use actix_web::web;
use std::sync::Arc;

pub struct AppState {
    pub cfg: HubConfig,
    pub store: Arc<dyn Store>,
    pub login: Login,
    pub sessions: web::Data<Sessions>,
    pub decider: Arc<Decider>,
    pub recorder: Arc<Recorder>,
    pub metrics: Arc<Metrics>,
    pub signer: Arc<TokenSigner>,
    pub ca: Arc<Ca>,
    pub servers: Arc<ServerManager>,
    pub relay: web::Data<Relay>,
}

impl AppState {
    pub fn is_admin(&self, user: &str) -> bool {
        self.cfg.admins.iter().any(|a| a == user)
    }
}
