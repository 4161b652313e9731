//! The `local` backend: servers on the hub's own machine, through the helper run directly
//! (hub as root) or through `sudo -n` (hub unprivileged) — the two modes of
//! [`SpawnerClient`], which stays the raw one-request-per-exec API under it.

use crate::backend::{self, Backend, Listing, Located, Started, Stopped};
use crate::client::SpawnerClient;
use crate::error::SpawnError;
use async_trait::async_trait;
use steward_protocol::helper::{HelperRequest, ServerStatus, StartRequest};
use steward_protocol::Placement;

#[derive(Debug, Clone)]
pub struct LocalBackend {
    pub client: SpawnerClient,
}

impl LocalBackend {
    pub fn new(client: SpawnerClient) -> Self {
        LocalBackend { client }
    }

    fn check(&self, at: &Placement) -> Result<(), SpawnError> {
        match at {
            Placement::Local => Ok(()),
            other => Err(backend::wrong_backend("local", other)),
        }
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn start(&self, req: &StartRequest) -> Result<Started, SpawnError> {
        let reply = self.client.call(&HelperRequest::Start(req.clone())).await?;
        backend::into_started(reply, Placement::Local)
    }

    async fn stop(
        &self,
        at: &Placement,
        user: &str,
        server: &str,
        grace_secs: Option<u64>,
    ) -> Result<Stopped, SpawnError> {
        self.check(at)?;
        let reply = self
            .client
            .call(&HelperRequest::Stop {
                user: user.into(),
                server: server.into(),
                grace_secs,
            })
            .await?;
        backend::into_stopped(reply)
    }

    async fn status(
        &self,
        at: &Placement,
        user: &str,
        server: &str,
    ) -> Result<ServerStatus, SpawnError> {
        self.check(at)?;
        let reply = self
            .client
            .call(&HelperRequest::Status {
                user: user.into(),
                server: server.into(),
            })
            .await?;
        backend::into_status(reply)
    }

    async fn adopt(
        &self,
        at: &Placement,
        user: &str,
        server: &str,
        pid: u32,
    ) -> Result<ServerStatus, SpawnError> {
        self.check(at)?;
        let reply = self
            .client
            .call(&HelperRequest::Adopt {
                user: user.into(),
                server: server.into(),
                pid,
            })
            .await?;
        backend::into_status(reply)
    }

    async fn list(&self) -> Result<Listing, SpawnError> {
        let reply = self.client.call(&HelperRequest::List).await?;
        Ok(Listing {
            servers: backend::into_list(reply)?
                .into_iter()
                .map(|status| Located {
                    placement: Placement::Local,
                    status,
                })
                .collect(),
            unanswered: vec![],
        })
    }
}
