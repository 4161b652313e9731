//! One interface over every place a UI server can run: this machine (the helper run
//! directly or through sudo), a host of an ssh pool, a Slurm cluster. Each backend speaks
//! the same helper verbs and answers a start with a [`Placement`], which the hub stores
//! with the server so stop, status and adoption after a hub restart go back to the same
//! place; [`Backends`] routes a stored placement to its backend. A new backend is a new
//! file implementing [`Backend`]. This module owns no policy (who may start what is the
//! helper's config and the hub's decision) and knows no sessions.

use crate::error::SpawnError;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;
use steward_protocol::helper::{HelperReply, ServerStatus, StartRequest};
use steward_protocol::Placement;

/// A server that a backend started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// Where it runs; store it with the server row.
    pub placement: Placement,
    /// Its pid on the host that runs it (a Slurm backend may report 0 until it runs).
    pub pid: u32,
    /// Its cgroup path on that host.
    pub cgroup: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    pub killed: u32,
    pub cgroup_removed: bool,
}

/// A server found by [`Backend::list`], with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub placement: Placement,
    pub status: ServerStatus,
}

/// A place a listing could not ask (host down, controller unreachable). Its servers are
/// *unknown*, never gone: the hub must not forget or restart them on this evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unanswered {
    pub placement: Placement,
    pub error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub servers: Vec<Located>,
    pub unanswered: Vec<Unanswered>,
}

/// What every backend does. Methods that take a [`Placement`] receive the one the start
/// returned (stored by the hub); a placement of another backend is a bad request.
#[async_trait]
pub trait Backend: Send + Sync {
    /// The name config and [`Placement::backend`] use: `local`, `ssh`, `slurm`.
    fn name(&self) -> &'static str;
    /// Starts `req` somewhere this backend chooses; nothing is left behind on error.
    async fn start(&self, req: &StartRequest) -> Result<Started, SpawnError>;
    async fn stop(
        &self,
        at: &Placement,
        user: &str,
        server: &str,
        grace_secs: Option<u64>,
    ) -> Result<Stopped, SpawnError>;
    async fn status(
        &self,
        at: &Placement,
        user: &str,
        server: &str,
    ) -> Result<ServerStatus, SpawnError>;
    /// Confirms after a hub restart that `pid` is still that server (in its cgroup, as
    /// its owner) and returns its status.
    async fn adopt(
        &self,
        at: &Placement,
        user: &str,
        server: &str,
        pid: u32,
    ) -> Result<ServerStatus, SpawnError>;
    /// Every server this backend can see, and the places it could not ask.
    async fn list(&self) -> Result<Listing, SpawnError>;
}

/// The configured backends, by name; routes a stored placement back to its backend.
#[derive(Clone, Default)]
pub struct Backends {
    by_name: BTreeMap<&'static str, Arc<dyn Backend>>,
}

impl Backends {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the backend under its own name.
    pub fn with(mut self, backend: Arc<dyn Backend>) -> Self {
        self.by_name.insert(backend.name(), backend);
        self
    }

    /// The backend a profile names (`local`, `ssh`, `slurm`).
    pub fn get(&self, name: &str) -> Result<&Arc<dyn Backend>, SpawnError> {
        self.by_name.get(name).ok_or_else(|| {
            SpawnError::BadRequest(format!(
                "no {name:?} backend is configured (configured: {})",
                self.by_name.keys().copied().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// The backend holding a server stored with this placement.
    pub fn for_placement(&self, at: &Placement) -> Result<&Arc<dyn Backend>, SpawnError> {
        self.get(at.backend())
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Backend>> {
        self.by_name.values()
    }
}

/// Refuses a placement that belongs to another backend.
pub(crate) fn wrong_backend(backend: &str, at: &Placement) -> SpawnError {
    SpawnError::BadRequest(format!(
        "the {backend} backend was asked about a server placed at {at}"
    ))
}

/// Turns an error reply into an error, so each verb below matches only its success.
pub(crate) fn reply_error(reply: HelperReply, expected: &str) -> SpawnError {
    match reply {
        HelperReply::Error { code, message } => SpawnError::Reply { code, message },
        other => SpawnError::Helper(format!("expected a {expected} reply, got {other:?}")),
    }
}

pub(crate) fn into_started(
    reply: HelperReply,
    placement: Placement,
) -> Result<Started, SpawnError> {
    match reply {
        HelperReply::Started { pid, cgroup } => Ok(Started {
            placement,
            pid,
            cgroup,
        }),
        other => Err(reply_error(other, "started")),
    }
}

pub(crate) fn into_stopped(reply: HelperReply) -> Result<Stopped, SpawnError> {
    match reply {
        HelperReply::Stopped {
            killed,
            cgroup_removed,
        } => Ok(Stopped {
            killed,
            cgroup_removed,
        }),
        other => Err(reply_error(other, "stopped")),
    }
}

pub(crate) fn into_status(reply: HelperReply) -> Result<ServerStatus, SpawnError> {
    match reply {
        HelperReply::Status(s) | HelperReply::Adopted(s) => Ok(s),
        other => Err(reply_error(other, "status")),
    }
}

pub(crate) fn into_list(reply: HelperReply) -> Result<Vec<ServerStatus>, SpawnError> {
    match reply {
        HelperReply::List { servers } => Ok(servers),
        other => Err(reply_error(other, "list")),
    }
}

pub(crate) fn into_host_status(
    reply: HelperReply,
) -> Result<steward_protocol::helper::HostStatus, SpawnError> {
    match reply {
        HelperReply::HostStatus(h) => Ok(h),
        other => Err(reply_error(other, "host_status")),
    }
}
