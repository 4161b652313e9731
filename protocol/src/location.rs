//! Where a UI server runs and how the hub reaches it.
//!
//! A spawner backend answers a start with a [`Placement`] (which machine or batch job
//! holds the server, so stop, status and adoption after a hub restart go to the same
//! place); the server's registration carries its [`Endpoint`] (what the hub connects
//! to). The hub stores both with the server row. Neither type does I/O.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which backend placed a server, and what that backend needs to find it again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case", deny_unknown_fields)]
pub enum Placement {
    /// On the hub's own machine, through the helper run directly or through sudo.
    Local,
    /// On another host of an ssh pool, through the helper run there over ssh.
    Ssh {
        /// The pool's name for the host (a key of the site config, not a free address).
        host: String,
    },
    /// As a Slurm batch job.
    Slurm {
        /// The cluster's name in the site config.
        cluster: String,
        /// Slurm's job id (`1234`, or `1234_5` for an array element).
        job_id: String,
    },
}

impl Placement {
    /// The backend's name as config and `steward servers list` spell it.
    pub fn backend(&self) -> &'static str {
        match self {
            Placement::Local => "local",
            Placement::Ssh { .. } => "ssh",
            Placement::Slurm { .. } => "slurm",
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Local => f.write_str("local"),
            Placement::Ssh { host } => write!(f, "ssh:{host}"),
            Placement::Slurm { cluster, job_id } => write!(f, "slurm:{cluster}:{job_id}"),
        }
    }
}

/// The address a registered UI server listens on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Endpoint {
    /// TCP: loopback for local servers, the host's pool address for remote ones.
    Tcp { host: String, port: u16 },
    /// A Unix socket on the hub's host (mode 0600, owned by the server's owner).
    Unix { path: String },
    /// A JupyterHub single-user server (`cylc hubapp`) on a Unix socket on the hub's
    /// host: plain HTTP, where every request carries a hub-issued token instead of the
    /// mutual TLS and signed grants Steward's own UI server speaks.
    SingleUser { path: String },
}

impl Endpoint {
    pub fn loopback(port: u16) -> Self {
        Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Endpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Unix { path } => write!(f, "unix:{path}"),
            Endpoint::SingleUser { path } => write!(f, "jupyterhub-singleuser:unix:{path}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_round_trips_and_refuses_unknown_fields() {
        for p in [
            Placement::Local,
            Placement::Ssh { host: "h1".into() },
            Placement::Slurm {
                cluster: "main".into(),
                job_id: "42".into(),
            },
        ] {
            let s = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<Placement>(&s).unwrap(), p);
        }
        assert!(
            serde_json::from_str::<Placement>(r#"{"backend":"ssh","host":"h1","x":1}"#).is_err()
        );
        assert!(serde_json::from_str::<Placement>(r#"{"backend":"moon"}"#).is_err());
    }

    #[test]
    fn endpoint_display() {
        assert_eq!(Endpoint::loopback(8080).to_string(), "127.0.0.1:8080");
        let v6 = Endpoint::Tcp {
            host: "::1".into(),
            port: 1,
        };
        assert_eq!(v6.to_string(), "[::1]:1");
        let unix = Endpoint::Unix {
            path: "/run/s.sock".into(),
        };
        assert_eq!(unix.to_string(), "unix:/run/s.sock");
    }
}
