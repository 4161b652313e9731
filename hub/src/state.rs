//! Everything a request handler needs, built once at start.

use crate::auth;
use crate::ca::Ca;
use crate::config::HubConfig;
use crate::servers::ServerManager;
use crate::store::{Session, Store};
use crate::tokens::TokenSigner;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use steward_audit::AuditLog;
use steward_policy::{Decision, OpClass, OpSet, Operation, SitePolicy, Subject, UserPolicy};
use steward_protocol::helper::{HelperReply, HelperRequest};
use steward_spawner::SpawnerClient;

/// How long an owner's policy file and groups are reused before being read again.
const USER_POLICY_TTL: Duration = Duration::from_secs(5);

pub struct AppState {
    pub cfg: HubConfig,
    pub store: Arc<dyn Store>,
    pub signer: Arc<TokenSigner>,
    pub ca: Arc<Ca>,
    pub servers: Arc<ServerManager>,
    pub spawner: SpawnerClient,
    pub audit: AuditLog,
    pub policy: steward_policy::PolicyStore,
    pub metrics: crate::metrics::Metrics,
    /// Last activity (unix secs) and open WebSockets per owner, for idle culling.
    pub activity: Mutex<HashMap<String, (i64, usize)>>,
    /// Open WebSockets per person, for `limits.ws_per_user`.
    pub open_ws: Mutex<HashMap<String, usize>>,
    pub user_pattern: regex::Regex,
    pub upstream: crate::proxy::UpstreamClients,
    pub limiter: crate::ratelimit::FailureLimiter,
    pub drain: crate::drain::Drain,
    /// Token buckets for `limits.ops_per_sec` on `POST /user/<owner>/api/op`, per session.
    pub http_op_buckets: Mutex<HashMap<String, crate::ratelimit::TokenBucket>>,
    user_policies: Mutex<HashMap<String, CachedUserPolicy>>,
    user_policy_reads: crate::keyed::KeyedLocks,
    groups: Mutex<HashMap<String, (Instant, Vec<String>)>>,
}

/// An owner's policy file as last read (None: missing or broken), and when.
type CachedUserPolicy = (Instant, Option<Arc<UserPolicy>>);

/// The permission of one request, with the reasons for the audit record and the UI.
pub struct Effective {
    pub decision: Decision,
    pub class_now: OpClass,
    pub allowed: bool,
    pub reason: String,
}

impl AppState {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: HubConfig,
        store: Arc<dyn Store>,
        signer: Arc<TokenSigner>,
        ca: Arc<Ca>,
        servers: Arc<ServerManager>,
        spawner: SpawnerClient,
        audit: AuditLog,
        policy: steward_policy::PolicyStore,
    ) -> anyhow::Result<AppState> {
        let user_pattern = regex::Regex::new(&cfg.auth.user_pattern)?;
        let limiter = crate::ratelimit::FailureLimiter::new(
            cfg.auth.failure_window_secs,
            cfg.auth.max_failures_per_user,
            cfg.auth.max_failures_per_address,
        );
        Ok(AppState {
            cfg,
            store,
            signer,
            ca,
            servers,
            spawner,
            audit,
            policy,
            metrics: crate::metrics::Metrics::new()?,
            activity: Mutex::new(HashMap::new()),
            open_ws: Mutex::new(HashMap::new()),
            user_pattern,
            upstream: Default::default(),
            limiter,
            drain: Default::default(),
            http_op_buckets: Mutex::new(HashMap::new()),
            user_policies: Mutex::new(HashMap::new()),
            user_policy_reads: Default::default(),
            groups: Mutex::new(HashMap::new()),
        })
    }

    pub fn site(&self) -> Arc<SitePolicy> {
        self.policy.current()
    }

    /// Takes one of `user`'s WebSocket slots; false when all are in use.
    pub fn take_ws_slot(&self, user: &str) -> bool {
        let mut m = self.open_ws.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(user.to_string()).or_insert(0);
        if *n >= self.cfg.limits.ws_per_user {
            return false;
        }
        *n += 1;
        true
    }

    pub fn release_ws_slot(&self, user: &str) {
        let mut m = self.open_ws.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(user) {
            *n = n.saturating_sub(1);
        }
    }

    /// Records activity on an owner's server (keeps it from being culled).
    pub fn touch(&self, owner: &str, ws_delta: isize) {
        let now = self.store.now();
        if let Ok(mut a) = self.activity.lock() {
            let e = a.entry(owner.to_string()).or_insert((now, 0));
            e.0 = now;
            e.1 = (e.1 as isize + ws_delta).max(0) as usize;
        }
    }

    /// NSS groups of a user, cached briefly.
    pub fn groups_of(&self, user: &str) -> Vec<String> {
        if let Ok(cache) = self.groups.lock() {
            if let Some((at, g)) = cache.get(user) {
                if at.elapsed() < USER_POLICY_TTL {
                    return g.clone();
                }
            }
        }
        let g = auth::nss_groups(user);
        if let Ok(mut cache) = self.groups.lock() {
            cache.insert(user.to_string(), (Instant::now(), g.clone()));
        }
        g
    }

    /// The owner's policy file, read *as the owner* through the helper so the hub never
    /// follows a user's symlink as root. A missing file means "no user grants"; a broken
    /// one is logged and treated as missing (site defaults apply).
    pub async fn user_policy(&self, owner: &str) -> Option<Arc<UserPolicy>> {
        let cached = || -> Option<Option<Arc<UserPolicy>>> {
            let cache = self.user_policies.lock().ok()?;
            let (at, p) = cache.get(owner)?;
            (at.elapsed() < USER_POLICY_TTL).then(|| p.clone())
        };
        if let Some(p) = cached() {
            return p;
        }
        // One helper call per owner at a time: when the cache expires under load, the
        // other requests wait for that read instead of each starting the helper.
        let gate = self.user_policy_reads.get(owner);
        let _reading = gate.lock().await;
        if let Some(p) = cached() {
            return p;
        }
        let reply = self
            .spawner
            .call(&HelperRequest::ReadUserFile {
                user: owner.to_string(),
                path: self.cfg.policy.user_file.clone(),
                max_bytes: Some(256 * 1024),
            })
            .await;
        let policy = match reply {
            Ok(HelperReply::File { content, .. }) => {
                let origin = format!("~{owner}/{}", self.cfg.policy.user_file);
                match UserPolicy::parse(&content, &origin) {
                    Ok(p) => Some(Arc::new(p)),
                    Err(diags) => {
                        tracing::warn!(owner, errors = %diags, "user policy has errors; ignoring it");
                        None
                    }
                }
            }
            Ok(HelperReply::Error { message, .. }) => {
                tracing::debug!(owner, %message, "no user policy");
                None
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(owner, error = %e, "reading user policy");
                None
            }
        };
        if let Ok(mut cache) = self.user_policies.lock() {
            cache.insert(owner.to_string(), (Instant::now(), policy.clone()));
        }
        policy
    }

    fn subjects(&self, owner: &str, actor: &Session) -> (Subject, Subject) {
        (
            Subject {
                name: owner.to_string(),
                groups: self.groups_of(owner),
            },
            Subject {
                name: actor.user.clone(),
                groups: actor.groups.clone(),
            },
        )
    }

    /// The owner's file, unless the actor is the owner: owners always hold every
    /// permission on their own workflows, so their file cannot change the answer.
    async fn user_policy_for(&self, owner: &str, actor: &Session) -> Option<Arc<UserPolicy>> {
        if owner == actor.user {
            None
        } else {
            self.user_policy(owner).await
        }
    }

    /// Operations the policy permits (before elevation).
    pub async fn policy_ops(&self, owner: &str, actor: &Session, workflow: &str) -> OpSet {
        let user_policy = self.user_policy_for(owner, actor).await;
        let (o, a) = self.subjects(owner, actor);
        steward_policy::permitted(&self.site(), user_policy.as_deref(), &o, &a, workflow)
    }

    /// Operations the session's current class allows on `owner`'s workflows.
    pub fn class_ops(&self, owner: &str, actor: &Session, now: i64) -> OpSet {
        if owner == actor.user && !self.cfg.elevation.owners_must_elevate {
            return OpSet::ALL;
        }
        actor.class_at(now).session_ops()
    }

    /// policy ∩ elevation for one operation, with a reason a person can act on.
    pub async fn effective(
        &self,
        owner: &str,
        actor: &Session,
        workflow: &str,
        op: Operation,
    ) -> Effective {
        let user_policy = self.user_policy_for(owner, actor).await;
        let (o, a) = self.subjects(owner, actor);
        let decision =
            steward_policy::decide(&self.site(), user_policy.as_deref(), &o, &a, workflow, op);
        let now = self.store.now();
        let class_now = actor.class_at(now);
        let class_ok = self.class_ops(owner, actor, now).contains(op);
        let allowed = decision.allowed && class_ok;
        let reason = if !decision.allowed {
            decision.reasons.join("; ")
        } else if !class_ok {
            format!(
                "{op} needs {} privileges; this session has {} — raise your privileges first",
                op.class(),
                class_now
            )
        } else {
            decision.reasons.join("; ")
        };
        Effective {
            decision,
            class_now,
            allowed,
            reason,
        }
    }

    pub fn is_admin(&self, user: &str) -> bool {
        self.cfg.admins.iter().any(|a| a == user)
    }
}
