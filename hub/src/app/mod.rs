//! The composition root: builds every subsystem from the config ([`build`]), runs both
//! listeners with their routes until a signal ([`serve`]), and the hub's own
//! background work ([`background`]). Nothing below imports this module.

mod background;
pub mod chains;
pub mod reconcile;
mod serve;

pub use background::reload_policy;
pub use serve::serve;

use crate::auth::{ratelimit::FailureLimiter, Authenticator, Groups, Ldap, Login, Pam};
use crate::config::HubConfig;
use crate::decide::Decider;
use crate::pki::{self, ca::Ca, jwt::TokenSigner};
use crate::record::{Metrics, Recorder};
use crate::relay::Relay;
use crate::servers::{ServerManager, ServerOptions};
use crate::session::Sessions;
use crate::state::AppState;
use crate::store::{Clock, SqliteStore, Store};
use crate::util::fsutil;
use actix_web::web;
use std::sync::Arc;
use std::time::Duration;
use steward_audit::{AuditConfig, AuditLog};
use steward_policy::{PolicyStore, StoreOptions};
use steward_spawner::SpawnerClient;

/// Loads the site policy; any error keeps the hub from starting (there is no last good one yet).
pub fn load_site_policy(path: &std::path::Path) -> anyhow::Result<PolicyStore> {
    let store = PolicyStore::new(StoreOptions::default());
    store
        .load(path)
        .map_err(|d| anyhow::anyhow!("site policy {} has errors:\n{d}", path.display()))?;
    Ok(store)
}

pub struct Hub {
    pub state: web::Data<AppState>,
}

/// The password backend the config names. `HubConfig::parse` has already refused an
/// unknown name or `ldap` without its section, so the match is only on what is present.
fn authenticator(cfg: &HubConfig) -> Box<dyn Authenticator> {
    match &cfg.auth.ldap {
        Some(ldap) if cfg.auth.backend == "ldap" => Box::new(Ldap(ldap.clone())),
        _ => Box::new(Pam {
            service: cfg.auth.pam_service.clone(),
        }),
    }
}

/// The configured state store: PostgreSQL when `[database] url` is set, else SQLite in
/// the data directory.
/// The recorder's in-flight events, kept in the shared store as this hub's. A store that
/// cannot take a note does not stop the operation: its intent is durable, and this
/// hub's own restart would reconcile it.
fn inflight_sink(store: Arc<dyn Store>, hub: String) -> crate::record::InflightSink {
    use crate::record::Inflight;
    Arc::new(move |event| {
        let (store, hub) = (store.clone(), hub.clone());
        Box::pin(async move {
            match event {
                Inflight::Noted {
                    request_id,
                    owner,
                    intent,
                    intent_seq,
                } => {
                    let note = crate::store::InflightOp {
                        request_id,
                        hub,
                        owner,
                        intent,
                        intent_seq,
                        since: store.now(),
                    };
                    if let Err(e) = store.put_inflight(&note).await {
                        tracing::warn!(error = %e, request_id = %note.request_id, "could not note the operation in flight in the state store");
                    }
                }
                Inflight::Closed { request_id } => {
                    let _ = store.take_inflight(&request_id).await;
                }
            }
        })
    })
}

async fn open_store(cfg: &HubConfig, clock: Clock) -> anyhow::Result<Arc<dyn Store>> {
    match &cfg.database.url {
        None => Ok(Arc::new(SqliteStore::open(
            &cfg.data_dir.join("hub.db"),
            clock,
        )?)),
        Some(url) => {
            let store = crate::store::postgres::open_configured(
                url,
                cfg.database.password_file.as_deref(),
                clock,
            )
            .await?;
            tracing::info!(database = %crate::store::postgres::redact_url(url), "state store: PostgreSQL");
            Ok(Arc::new(store))
        }
    }
}

pub async fn build(cfg: HubConfig) -> anyhow::Result<Hub> {
    fsutil::private_dir(&cfg.data_dir)
        .map_err(|e| anyhow::anyhow!("data_dir {}: {e}", cfg.data_dir.display()))?;
    let clock = Clock::with_offset_file(cfg.testing.clock_offset_file.clone());
    let store = open_store(&cfg, clock).await?;
    let ca = Arc::new(Ca::load_or_create(&cfg.data_dir)?);
    let signer = Arc::new(TokenSigner::load_or_create(
        &cfg.data_dir.join(pki::JWT_KEY_FILE),
    )?);
    let metrics = Arc::new(Metrics::new()?);
    let mut audit_cfg = AuditConfig::new(cfg.audit.dir.clone());
    audit_cfg.signing_key = Some(pki::audit_key(&cfg.data_dir)?);
    // A log that ends before the head it signed was cut: refuse to start on it.
    audit_cfg.head_path = Some(cfg.audit_head());
    // Every record names this hub, so each chain of a deployment says whose it is.
    // `config check` refuses a bad configured id; a host name that is not a valid id
    // (the default) leaves the records without one rather than the hub without a log.
    let hub_id = cfg.database.hub_id();
    if steward_audit::valid_hub_id(&hub_id) {
        audit_cfg.hub_id = Some(hub_id);
    } else {
        tracing::warn!(
            hub_id,
            "the host name is not a valid hub id: audit records name no hub; set [database] hub_id"
        );
    }
    let mut recorder = Recorder::new(AuditLog::open(audit_cfg)?, metrics.clone());
    if store.kind() != "sqlite" {
        recorder = recorder.noting_inflight(inflight_sink(store.clone(), cfg.database.hub_id()));
    }
    let recorder = Arc::new(recorder);
    let mut spawner = SpawnerClient::new(
        cfg.spawner.helper.clone(),
        cfg.spawner.config.clone(),
        cfg.spawner.mode,
    );
    spawner.timeout = Duration::from_secs(cfg.spawner.start_timeout_secs.max(5));
    let servers = Arc::new(
        ServerManager::new(
            spawner.clone(),
            ServerOptions {
                executable: cfg.spawner.executable.clone(),
                args: cfg.spawner.args.clone(),
                start_timeout: Duration::from_secs(cfg.spawner.start_timeout_secs),
                idle_timeout_secs: cfg.uiserver.idle_timeout_secs,
                cull_idle_secs: cfg.uiserver.cull_idle_secs,
                concurrency: cfg.spawner.concurrency,
                max_pending: cfg.spawner.max_pending,
                default_profile: Some(cfg.uiserver.default_profile.clone())
                    .filter(|p| !p.is_empty()),
                placement: crate::servers::BackendChoice {
                    default_backend: cfg.spawner.default_backend.clone(),
                    profile_backends: cfg.spawner.profile_backends.clone(),
                    remote_hub_address: cfg.spawner.remote_hub_address.clone(),
                    remote_args: cfg.spawner.remote_args.clone(),
                    ssh: cfg.spawner.ssh.clone(),
                    slurm: cfg.spawner.slurm.clone(),
                },
                leadership: store.leadership(&cfg.database.hub_id()),
            },
            ca.clone(),
            signer.clone(),
            store.clone(),
            recorder.clone(),
            metrics.clone(),
        )
        .await?,
    );
    servers.follow_changes();
    let groups = Arc::new(Groups::default());
    let login = Login::new(
        authenticator(&cfg),
        regex::Regex::new(&cfg.auth.user_pattern)?,
        FailureLimiter::new(
            cfg.auth.failure_window_secs,
            cfg.auth.max_failures_per_user,
            cfg.auth.max_failures_per_address,
        ),
    );
    let sessions = web::Data::new(Sessions::new(
        store.clone(),
        groups.clone(),
        cfg.sessions.idle_secs,
        cfg.sessions.lifetime_secs,
    ));
    let decider = Arc::new(Decider::new(
        load_site_policy(&cfg.policy.site)?,
        spawner,
        cfg.policy.user_file.clone(),
        cfg.elevation.owners_must_elevate,
        groups.clone(),
    ));
    if !cfg.singleuser.profiles.is_empty() {
        servers.set_singleuser(Arc::new(crate::singleuser::SingleUser::new(
            cfg.singleuser.clone(),
            decider.clone(),
            groups,
        )));
    }
    let relay = web::Data::new(Relay::new(
        cfg.limits.clone(),
        cfg.public_origin(),
        sessions.clone(),
        decider.clone(),
        recorder.clone(),
        signer.clone(),
        servers.clone(),
        metrics.clone(),
    ));
    let state = AppState {
        cfg,
        store,
        login,
        sessions,
        decider,
        recorder,
        metrics,
        signer,
        ca,
        servers,
        relay,
    };
    Ok(Hub {
        state: web::Data::new(state),
    })
}
