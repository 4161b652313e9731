//! Placing servers on other hosts: which backend a start goes to (per profile), what a
//! server placed there is told (where to register, how to listen), and which address
//! the hub dials afterwards. The hub trusts a registration for its port only: the host
//! part comes from the pool's config for the host the hub placed the server on, so a
//! server (or a host) cannot point the hub at an address of its choosing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use steward_protocol::{Endpoint, Placement};
use steward_spawner::ssh::{SshBackend, SshPoolConfig};

/// Where starts go and what remote servers are started with (`[spawner]`).
#[derive(Debug, Clone, Default)]
pub struct BackendChoice {
    /// `local`, `ssh` or `slurm` (config validation keeps it to these).
    pub default_backend: String,
    pub profile_backends: BTreeMap<String, String>,
    /// The address the pool's hosts reach the internal listener at.
    pub remote_hub_address: Option<String>,
    /// Arguments for servers on other hosts (`None`: the same as local ones).
    pub remote_args: Option<Vec<String>>,
    pub ssh: Option<SshPoolConfig>,
    pub slurm: Option<steward_spawner::slurm::SlurmCluster>,
}

impl BackendChoice {
    /// Everything local, as before any pool existed.
    pub fn local() -> Self {
        BackendChoice {
            default_backend: "local".into(),
            ..Default::default()
        }
    }

    pub fn backend_for(&self, profile: Option<&str>) -> &str {
        profile
            .and_then(|p| self.profile_backends.get(p))
            .map_or(self.default_backend.as_str(), String::as_str)
    }

    /// The internal listener's address as a server placed by `backend` must dial it.
    pub fn register_addr(&self, backend: &str, internal: SocketAddr) -> Result<String, String> {
        if backend == "local" {
            return Ok(internal.to_string());
        }
        let host = self.remote_hub_address.as_deref().ok_or_else(|| {
            "spawner.remote_hub_address is not set: a server on another host cannot register"
                .to_string()
        })?;
        Ok(SocketAddr::new(
            host.parse()
                .map_err(|_| format!("spawner.remote_hub_address {host:?} is not an IP address"))?,
            internal.port(),
        )
        .to_string())
    }

    pub fn args_for<'a>(&'a self, backend: &str, local: &'a [String]) -> &'a [String] {
        match (&self.remote_args, backend) {
            (Some(args), b) if b != "local" => args,
            _ => local,
        }
    }
}

/// A server the local helper started must listen on this host: a loopback address or
/// an absolute Unix socket path. Anything else would have the hub dial out on its behalf.
fn local_endpoint_ok(e: &Endpoint) -> bool {
    match e {
        Endpoint::Tcp { host, .. } => host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        Endpoint::Unix { path } | Endpoint::SingleUser { path } => path.starts_with('/'),
    }
}

/// The endpoint the hub stores and dials for a server that registered `registered`
/// after being placed at `at`, or why it is refused. For a Slurm job, `slurm_node` is
/// the address Slurm gives the node the job runs on (or why it could not be found).
pub fn endpoint_for(
    at: &Placement,
    registered: &Endpoint,
    ssh: Option<&SshBackend>,
    slurm_node: Option<Result<String, String>>,
) -> Result<Endpoint, String> {
    match at {
        Placement::Local if local_endpoint_ok(registered) => Ok(registered.clone()),
        Placement::Local => Err(match registered {
            Endpoint::Tcp { .. } => format!(
                "it registered {registered}, which is not on this host (loopback TCP or a Unix socket)"
            ),
            _ => format!("it registered {registered}, which is not an absolute socket path"),
        }),
        Placement::Ssh { host } => {
            let Endpoint::Tcp { port, .. } = registered else {
                return Err(format!(
                    "it registered {registered}, but a server on another host must listen on TCP"
                ));
            };
            let address = ssh
                .and_then(|b| b.config().hosts.get(host))
                .map(|h| h.address.clone())
                .ok_or_else(|| format!("host {host:?} is not in the ssh pool"))?;
            Ok(Endpoint::Tcp {
                host: address,
                port: *port,
            })
        }
        Placement::Slurm { job_id, .. } => {
            let Endpoint::Tcp { port, .. } = registered else {
                return Err(format!(
                    "it registered {registered}, but a server in a Slurm job must listen on TCP"
                ));
            };
            let host = slurm_node
                .ok_or_else(|| format!("the node of Slurm job {job_id} is not known"))?
                .map_err(|why| format!("where Slurm job {job_id} runs: {why}"))?;
            Ok(Endpoint::Tcp { host, port: *port })
        }
    }
}

/// The pool, when one is configured.
pub fn ssh_backend(cfg: Option<&SshPoolConfig>) -> anyhow::Result<Option<Arc<SshBackend>>> {
    cfg.map(|c| {
        SshBackend::new(c.clone())
            .map(Arc::new)
            .map_err(|e| anyhow::anyhow!("spawner.ssh: {e}"))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> SshBackend {
        let cfg = SshPoolConfig::parse(
            "key = \"/k\"\nknown_hosts = \"/kh\"\ncontrol_dir = \"/tmp/steward-test-remote-rs\"\n[hosts.h1]\naddress = \"10.213.0.2\"\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        SshBackend::new(cfg).unwrap()
    }

    #[test]
    fn a_remote_server_is_dialled_at_its_pool_address_whatever_it_registers() {
        let b = pool();
        let ssh = Placement::Ssh { host: "h1".into() };
        for registered in [
            Endpoint::loopback(4000),
            Endpoint::Tcp {
                host: "192.0.2.7".into(),
                port: 4000,
            },
            Endpoint::Tcp {
                host: "hub-db.example".into(),
                port: 4000,
            },
        ] {
            assert_eq!(
                endpoint_for(&ssh, &registered, Some(&b), None).unwrap(),
                Endpoint::Tcp {
                    host: "10.213.0.2".into(),
                    port: 4000
                }
            );
        }
        let unix = Endpoint::Unix {
            path: "/run/x.sock".into(),
        };
        assert!(endpoint_for(&ssh, &unix, Some(&b), None)
            .unwrap_err()
            .contains("must listen on TCP"));
        let gone = Placement::Ssh { host: "h9".into() };
        assert!(endpoint_for(&gone, &Endpoint::loopback(1), Some(&b), None)
            .unwrap_err()
            .contains("not in the ssh pool"));
    }

    #[test]
    fn a_slurm_server_is_dialled_at_its_node_whatever_it_registers() {
        let at = Placement::Slurm {
            cluster: "c".into(),
            job_id: "42".into(),
        };
        let claimed = Endpoint::Tcp {
            host: "192.0.2.7".into(),
            port: 4000,
        };
        assert_eq!(
            endpoint_for(&at, &claimed, None, Some(Ok("10.1.2.3".into()))).unwrap(),
            Endpoint::Tcp {
                host: "10.1.2.3".into(),
                port: 4000
            }
        );
        let why = endpoint_for(&at, &claimed, None, Some(Err("job 42 is PENDING".into())));
        assert!(why.unwrap_err().contains("job 42 is PENDING"));
        assert!(endpoint_for(&at, &claimed, None, None).is_err());
        let unix = Endpoint::Unix {
            path: "/run/x.sock".into(),
        };
        assert!(endpoint_for(&at, &unix, None, Some(Ok("10.1.2.3".into())))
            .unwrap_err()
            .contains("must listen on TCP"));
    }

    #[test]
    fn a_local_server_must_stay_on_this_host() {
        let local = Placement::Local;
        assert!(endpoint_for(&local, &Endpoint::loopback(5), None, None).is_ok());
        let away = Endpoint::Tcp {
            host: "10.0.0.9".into(),
            port: 5,
        };
        assert!(endpoint_for(&local, &away, None, None)
            .unwrap_err()
            .contains("not on this host"));
        let relative = Endpoint::Unix {
            path: "run/x.sock".into(),
        };
        assert!(endpoint_for(&local, &relative, None, None).is_err());
    }

    #[test]
    fn starts_go_to_the_profile_backend_and_remote_ones_register_at_the_pool_side() {
        let choice = BackendChoice {
            default_backend: "local".into(),
            profile_backends: [("big".to_string(), "ssh".to_string())].into(),
            remote_hub_address: Some("10.213.0.1".into()),
            remote_args: Some(vec!["--bind".into(), "0.0.0.0:0".into()]),
            ssh: None,
            slurm: None,
        };
        assert_eq!(choice.backend_for(Some("big")), "ssh");
        assert_eq!(choice.backend_for(Some("small")), "local");
        assert_eq!(choice.backend_for(None), "local");
        let internal: SocketAddr = "0.0.0.0:7443".parse().unwrap();
        assert_eq!(
            choice.register_addr("local", internal).unwrap(),
            "0.0.0.0:7443"
        );
        assert_eq!(
            choice.register_addr("ssh", internal).unwrap(),
            "10.213.0.1:7443"
        );
        let local_args = vec!["-v".to_string()];
        assert_eq!(choice.args_for("ssh", &local_args), ["--bind", "0.0.0.0:0"]);
        assert_eq!(choice.args_for("local", &local_args), ["-v"]);
        assert!(BackendChoice::local()
            .register_addr("ssh", internal)
            .unwrap_err()
            .contains("remote_hub_address"));
    }
}
