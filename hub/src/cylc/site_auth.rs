//! The UI server's own Cylc authorization, written from Steward's policy so that
//! cylc-uiserver's second check agrees with the hub's first.
//!
//! cylc-uiserver checks each mutation by name against `site_authorization` (per
//! owner, per visitor key, with the visitor's Unix groups), never per workflow, and
//! reads it once at start. Steward decides per workflow before forwarding, so the
//! second check only has to let through what Steward may allow: for each visitor the
//! hub lists, the union over the owner's workflows of Steward's permitted set, as an
//! explicit `default` = `limit` under the visitor's user name. Visitors not listed
//! get the `"*"` entry: what Steward allows someone with no name or group of note.
//! The owner always has everything in Cylc, as in Steward. Elevation is left to the
//! hub (the server cannot see sessions).
//!
//! Written to `<dir>/uiserver/jupyter_config.py` where `<dir>` is the spawn's
//! `CYLC_SITE_CONF_PATH`, a directory the hub controls. The owner's own
//! `~/.cylc/uiserver/` config may still narrow `user_authorization`; it cannot widen
//! past this file's limits. This module writes a file but decides nothing itself.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use steward_policy::{permitted, SitePolicy, Subject, UserPolicy};
use steward_protocol::{OpSet, Operation};

/// Cylc's names for a Steward operation set: the same snake_case names, plus the two
/// compound mutations Steward decides as `reload` and `play` (so a visitor allowed
/// to reload may also `reinstall_reload`, as the hub's gate decides it).
pub fn cylc_names(set: OpSet) -> Vec<&'static str> {
    let mut names = set.names();
    if set.contains(Operation::Reload) {
        names.push("reinstall_reload");
    }
    if set.contains(Operation::Play) {
        names.push("reinstall_restart");
    }
    names.sort_unstable();
    names
}

/// Each visitor's upper bound over the owner's workflows (and no workflow), plus `"*"`
/// for visitors not listed. Empty sets are left out (Cylc rejects `[]`, and no entry
/// means nothing).
pub fn upper_bounds(
    site: &SitePolicy,
    user_policy: Option<&UserPolicy>,
    owner: &Subject,
    visitors: &[Subject],
    workflows: &[String],
) -> Vec<(String, OpSet)> {
    let bound = |who: &Subject| {
        std::iter::once("")
            .chain(workflows.iter().map(String::as_str))
            .fold(OpSet::EMPTY, |acc, w| {
                acc.union(permitted(site, user_policy, owner, who, w))
            })
    };
    // A name no key can match (policy keys are user names, `group:…` or `*`).
    let anyone = Subject::new("*", Vec::<String>::new());
    let mut out = vec![("*".to_string(), bound(&anyone))];
    for v in visitors.iter().filter(|v| v.name != owner.name) {
        out.push((v.name.clone(), bound(v)));
    }
    out.retain(|(_, s)| !s.is_empty());
    out
}

fn py_str(s: &str) -> String {
    // A JSON string is a valid Python string literal.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// The `jupyter_config.py` text.
pub fn jupyter_config(owner: &str, entries: &[(String, OpSet)]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Written by Steward when it started {owner}'s server: Cylc's own check mirrors\n# Steward's policy (Steward decides first, per workflow). Do not edit; it is\n# rewritten at every start.\nc.CylcUIServer.site_authorization = {{\n    {}: {{",
        py_str(owner)
    );
    for (key, set) in entries {
        let names: Vec<String> = cylc_names(*set).iter().map(|n| py_str(n)).collect();
        let list = format!("[{}]", names.join(", "));
        let _ = writeln!(
            t,
            "        {}: {{\"default\": {list}, \"limit\": {list}}},",
            py_str(key)
        );
    }
    t.push_str("    },\n}\n");
    t
}

/// Writes `<site_conf_dir>/uiserver/jupyter_config.py` (0644, via a temporary file
/// and rename, so the server never reads half a file); returns its path.
pub fn write(
    site_conf_dir: &Path,
    owner: &str,
    entries: &[(String, OpSet)],
) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = site_conf_dir.join("uiserver");
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    let path = dir.join("jupyter_config.py");
    let tmp = dir.join(".jupyter_config.py.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)?;
    f.write_all(jupyter_config(owner, entries).as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = r#"
[owners."*"."*"]
default = ["READ"]
[owners."*"."group:ops"]
default = ["READ", "CONTROL"]
limit = ["ALL", "!clean"]
[owners."*".carl]
default = ["READ"]
limit = ["READ", "CONTROL"]
"#;
    const USER: &str = r#"
[grants]
carl = ["READ", "pause"]
[[workflows]]
match = "special/*"
grants = { carl = ["READ", "stop"] }
"#;

    fn bounds() -> Vec<(String, OpSet)> {
        let site = SitePolicy::parse(SITE, "site").unwrap();
        let user = UserPolicy::parse(USER, "user").unwrap();
        let owner = Subject::new("alice", Vec::<String>::new());
        let visitors = [
            Subject::new("carl", Vec::<String>::new()),
            Subject::new("dora", ["ops"]),
            Subject::new("alice", Vec::<String>::new()),
        ];
        upper_bounds(
            &site,
            Some(&user),
            &owner,
            &visitors,
            &["plain".into(), "special/run1".into()],
        )
    }

    #[test]
    fn each_visitor_gets_the_union_over_the_owners_workflows() {
        let b = bounds();
        let get = |k: &str| b.iter().find(|(n, _)| n == k).map(|(_, s)| *s);
        // The user file names carl, so the site defaults do not apply to him; he may
        // pause on every workflow and stop on special/*: the bound holds both, and
        // Steward's gate narrows stop to special/* per request.
        assert_eq!(get("carl").unwrap().names(), vec!["pause", "read", "stop"]);
        let dora = get("dora").unwrap();
        assert!(dora.contains(Operation::Stop) && !dora.contains(Operation::Clean));
        assert_eq!(get("*").unwrap().names(), vec!["read"]);
        assert!(get("alice").is_none(), "the owner needs no entry");
    }

    #[test]
    fn config_is_cylcs_site_authorization() {
        let t = jupyter_config("alice", &bounds());
        assert!(
            t.contains("c.CylcUIServer.site_authorization = {\n    \"alice\": {"),
            "{t}"
        );
        assert!(t.contains(r#""carl": {"default": ["pause", "read", "stop"], "limit": ["pause", "read", "stop"]},"#), "{t}");
        let dora_line = t.lines().find(|l| l.contains("\"dora\"")).unwrap();
        assert!(
            dora_line.contains("\"reinstall_reload\"")
                && dora_line.contains("\"reinstall_restart\"")
        );
        assert!(!dora_line.contains("\"clean\""));
    }

    #[test]
    fn write_replaces_the_file_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "alice", &bounds()).unwrap();
        assert_eq!(p, d.path().join("uiserver/jupyter_config.py"));
        let first = std::fs::read_to_string(&p).unwrap();
        write(d.path(), "alice", &[]).unwrap();
        let second = std::fs::read_to_string(&p).unwrap();
        assert_ne!(first, second);
        assert!(second.contains("\"alice\": {\n    },"));
    }
}
