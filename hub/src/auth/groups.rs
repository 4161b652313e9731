//! The one NSS group lookup of the hub (getgrouplist), with a short cache: sessions,
//! decisions and `steward policy` all ask here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a user's groups are reused before being read again.
const GROUPS_TTL: Duration = Duration::from_secs(5);

/// Unix groups of `user` from NSS (getgrouplist), names only, sorted.
pub fn nss_groups(user: &str) -> Vec<String> {
    let Ok(Some(u)) = nix::unistd::User::from_name(user) else {
        return vec![];
    };
    let Ok(name) = std::ffi::CString::new(user) else {
        return vec![];
    };
    let mut names: Vec<String> = nix::unistd::getgrouplist(&name, u.gid)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|g| nix::unistd::Group::from_gid(g).ok().flatten())
        .map(|g| g.name)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// NSS groups, cached briefly per user.
#[derive(Default)]
pub struct Groups {
    cache: Mutex<HashMap<String, (Instant, Vec<String>)>>,
}

impl Groups {
    pub fn of(&self, user: &str) -> Vec<String> {
        if let Ok(cache) = self.cache.lock() {
            if let Some((at, g)) = cache.get(user) {
                if at.elapsed() < GROUPS_TTL {
                    return g.clone();
                }
            }
        }
        let g = nss_groups(user);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(user.to_string(), (Instant::now(), g.clone()));
        }
        g
    }
}

/// For `steward policy explain|permitted`: the same lookup, refusing unknown users.
impl steward_policy::cli::GroupLookup for Groups {
    fn groups_of(&self, user: &str) -> Result<Vec<String>, String> {
        match nix::unistd::User::from_name(user) {
            Ok(Some(_)) => Ok(self.of(user)),
            Ok(None) => Err(format!("no such user {user:?}")),
            Err(e) => Err(format!("looking up {user:?}: {e}")),
        }
    }
}
