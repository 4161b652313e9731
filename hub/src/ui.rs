//! The web UI: static assets embedded in the binary, served under `/hub/`.

use actix_web::web;

pub fn routes(_cfg: &mut web::ServiceConfig) {}
