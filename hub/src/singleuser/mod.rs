//! The server kind `jupyterhub-singleuser` (the real Cylc UI server, `cylc hubapp`) at
//! run time: the OAuth provider's tables, the hub API's address, what a start needs
//! (environment, arguments, socket, the UI server's own Cylc authorization written
//! from Steward's policy), and the per-(visitor, owner) tokens the relay injects.
//!
//! The pure pieces are in `cylc`; the routes are `ui::hubapi` (the API the servers
//! call) and `relay::singleuser` (browsers to servers). This module decides no
//! permission itself (the site authorization is an upper bound computed by the policy
//! crate) and must not start processes or relay traffic.

use crate::auth::Groups;
use crate::config::SingleUserConfig;
use crate::cylc::oauth::Provider;
use crate::cylc::{singleuser, site_auth};
use crate::decide::Decider;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use steward_policy::{Key, Subject};

/// What `servers` passes to the helper for one start.
pub struct Prepared {
    pub executable: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Where the server will listen; the hub waits for it to accept.
    pub socket: PathBuf,
}

pub struct SingleUser {
    pub cfg: SingleUserConfig,
    provider: Mutex<Provider>,
    /// The hub API's URL as servers reach it; set once its listener is bound.
    api_url: Mutex<Option<String>>,
    decider: Arc<Decider>,
    groups: Arc<Groups>,
    /// The token the relay injects for (visitor, owner), reused while it lives.
    injected: Mutex<HashMap<(String, String), String>>,
}

impl SingleUser {
    pub fn new(cfg: SingleUserConfig, decider: Arc<Decider>, groups: Arc<Groups>) -> SingleUser {
        SingleUser {
            cfg,
            provider: Mutex::new(Provider::new()),
            api_url: Mutex::new(None),
            decider,
            groups,
            injected: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_singleuser(&self, profile: Option<&str>) -> bool {
        self.cfg.is_singleuser(profile)
    }

    pub fn set_api_url(&self, url: String) {
        if let Ok(mut u) = self.api_url.lock() {
            *u = Some(url);
        }
    }

    pub fn groups_of(&self, user: &str) -> Vec<String> {
        self.groups.of(user)
    }

    /// Runs `f` on the provider's tables (one lock, never held across an await).
    pub fn with_provider<T>(&self, f: impl FnOnce(&mut Provider) -> T) -> Option<T> {
        self.provider.lock().ok().map(|mut p| f(&mut p))
    }

    /// The socket of `owner`'s `server`.
    pub fn socket_path(&self, owner: &str, server: &str) -> PathBuf {
        self.cfg
            .runtime_dir
            .join(owner)
            .join(format!("{server}.sock"))
    }

    /// Everything a start of `owner`'s server needs: a fresh API token (registered as
    /// its OAuth client), the `JUPYTERHUB_*` environment, the Cylc site authorization
    /// written from Steward's policy, and `cylc hubapp`'s arguments.
    pub async fn prepare(&self, owner: &str, server: &str) -> Result<Prepared, String> {
        let api_url = self
            .api_url
            .lock()
            .ok()
            .and_then(|u| u.clone())
            .ok_or("the single-user hub API is not listening yet")?;
        let site_dir = self.cfg.site_conf_dir.join(owner);
        let bounds = self.site_bounds(owner).await;
        crate::util::fsutil::public_dir(&self.cfg.site_conf_dir)
            .and_then(|_| crate::util::fsutil::public_dir(&site_dir))
            .map_err(|e| format!("site_conf_dir {}: {e}", self.cfg.site_conf_dir.display()))?;
        site_auth::write(&site_dir, owner, &bounds).map_err(|e| {
            format!(
                "writing the Cylc site authorization in {}: {e}",
                site_dir.display()
            )
        })?;
        let token = crate::util::random_token();
        self.with_provider(|p| p.register(owner, &token))
            .ok_or("the OAuth provider's lock is poisoned")?;
        let socket = self.socket_path(owner, server);
        // A socket left by an earlier run would be connected to before the new server
        // binds: remove it (the owner's directory; root may).
        let _ = std::fs::remove_file(&socket);
        let mut env: Vec<(String, String)> = self
            .cfg
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.extend(singleuser::jupyterhub_env(&singleuser::SpawnEnv {
            owner,
            api_token: &token,
            api_url: &api_url,
            public_host: "",
            service_url: None,
            tls: None,
        }));
        env.push((
            "CYLC_SITE_CONF_PATH".to_string(),
            site_dir.display().to_string(),
        ));
        let mut args = self.cfg.args.clone();
        args.extend(singleuser::hubapp_args(&socket));
        Ok(Prepared {
            executable: self.cfg.executable.clone(),
            args,
            env,
            socket,
        })
    }

    /// The owner's server stopped: its client, codes and tokens go.
    pub fn forget(&self, owner: &str) {
        self.with_provider(|p| p.unregister(owner));
        if let Ok(mut m) = self.injected.lock() {
            m.retain(|(_, o), _| o != owner);
        }
    }

    /// The visitor logged out: every token they hold goes.
    pub fn forget_visitor(&self, visitor: &str) {
        self.with_provider(|p| p.revoke_visitor(visitor));
        if let Ok(mut m) = self.injected.lock() {
            m.retain(|(v, _), _| v != visitor);
        }
    }

    /// The token the relay puts in `Authorization` for `visitor` on `owner`'s server
    /// (the server resolves it at `/hub/api/user` to the visitor).
    pub fn visitor_token(&self, visitor: &str, owner: &str, now: i64) -> Option<String> {
        let key = (visitor.to_string(), owner.to_string());
        let mut injected = self.injected.lock().ok()?;
        let mut provider = self.provider.lock().ok()?;
        if let Some(t) = injected.get(&key) {
            if provider.token(t, now).is_ok() {
                return Some(t.clone());
            }
        }
        let t = provider.mint(visitor, owner, now)?;
        injected.insert(key, t.clone());
        Some(t)
    }

    /// Each visitor's upper bound over the owner's workflows for the UI server's own
    /// check: every user and group the site policy or the owner's policy names, plus
    /// `*`. Workflow patterns of the owner's policy count as workflows (a pattern
    /// matches itself), so a grant on `special/*` is inside the bound.
    async fn site_bounds(&self, owner: &str) -> Vec<(String, steward_policy::OpSet)> {
        let site = self.decider.site();
        let user_policy = self.decider.user_policy(owner).await;
        let mut keys: BTreeSet<Key> = site.entries().iter().map(|e| e.user_key.clone()).collect();
        let mut workflows = vec![];
        if let Some(p) = &user_policy {
            keys.extend(p.grants().iter().map(|g| g.key.clone()));
            for w in p.workflows() {
                keys.extend(w.grants.iter().map(|g| g.key.clone()));
                workflows.push(w.pattern.clone());
            }
        }
        let visitors: Vec<Subject> = keys
            .into_iter()
            .filter_map(|k| match k {
                Key::Any => None,
                Key::User(name) => Some(Subject {
                    groups: self.groups.of(&name),
                    name,
                }),
                // Cylc reads `group:<name>` keys itself; a subject no user can be.
                Key::Group(g) => Some(Subject {
                    name: format!("group:{g}"),
                    groups: vec![g],
                }),
            })
            .collect();
        let owner_subject = Subject {
            name: owner.to_string(),
            groups: self.groups.of(owner),
        };
        site_auth::upper_bounds(
            &site,
            user_policy.as_deref(),
            &owner_subject,
            &visitors,
            &workflows,
        )
    }
}
