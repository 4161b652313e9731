//! What may this session do to that owner's workflow: the site policy, the owner's own
//! file (read as the owner through the helper, cached briefly), and the session's
//! elevation, combined into one [`Effective`] answer with reasons.
//!
//! This module must not write the audit log, read sessions from the store or talk to
//! UI servers: it is handed a session and answers.

use crate::auth::Groups;
use crate::store::Session;
use crate::util::keyed::KeyedLocks;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use steward_policy::{
    Decision, OpClass, OpSet, Operation, PolicyStore, SitePolicy, Subject, UserPolicy,
};
use steward_protocol::helper::{HelperReply, HelperRequest};
use steward_spawner::SpawnerClient;

/// How long an owner's policy file is reused before being read again.
const USER_POLICY_TTL: Duration = Duration::from_secs(5);

/// An owner's policy file as last read (None: missing or broken), and when.
type CachedUserPolicy = (Instant, Option<Arc<UserPolicy>>);

/// The permission of one request, with the reasons for the audit record and the UI.
pub struct Effective {
    pub decision: Decision,
    pub class_now: OpClass,
    pub allowed: bool,
    pub reason: String,
}

pub struct Decider {
    /// The site policy (reloaded by `app` on change or SIGHUP).
    pub policy: PolicyStore,
    spawner: SpawnerClient,
    user_file: String,
    owners_must_elevate: bool,
    groups: Arc<Groups>,
    user_policies: Mutex<HashMap<String, CachedUserPolicy>>,
    user_policy_reads: KeyedLocks,
}

impl Decider {
    pub fn new(
        policy: PolicyStore,
        spawner: SpawnerClient,
        user_file: String,
        owners_must_elevate: bool,
        groups: Arc<Groups>,
    ) -> Decider {
        Decider {
            policy,
            spawner,
            user_file,
            owners_must_elevate,
            groups,
            user_policies: Mutex::new(HashMap::new()),
            user_policy_reads: Default::default(),
        }
    }

    pub fn site(&self) -> Arc<SitePolicy> {
        self.policy.current()
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
                path: self.user_file.clone(),
                max_bytes: Some(256 * 1024),
            })
            .await;
        let policy = match reply {
            Ok(HelperReply::File { content, .. }) => {
                let origin = format!("~{owner}/{}", self.user_file);
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
                groups: self.groups.of(owner),
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

    /// Whether the actor may read anything of `owner`'s (always, for the owner).
    pub async fn may_read(&self, owner: &str, actor: &Session, workflow: &str) -> bool {
        owner == actor.user
            || self
                .policy_ops(owner, actor, workflow)
                .await
                .contains(Operation::Read)
    }

    /// Operations the session's class allows at `now` on `owner`'s workflows.
    pub fn class_ops(&self, owner: &str, actor: &Session, now: i64) -> OpSet {
        if owner == actor.user && !self.owners_must_elevate {
            return OpSet::ALL;
        }
        actor.class_at(now).session_ops()
    }

    /// policy ∩ elevation at `now` for one operation, with a reason a person can act on.
    pub async fn effective(
        &self,
        owner: &str,
        actor: &Session,
        workflow: &str,
        op: Operation,
        now: i64,
    ) -> Effective {
        let user_policy = self.user_policy_for(owner, actor).await;
        let (o, a) = self.subjects(owner, actor);
        let decision =
            steward_policy::decide(&self.site(), user_policy.as_deref(), &o, &a, workflow, op);
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
}
