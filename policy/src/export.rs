//! Export one owner's effective policy as a casbin model + policy, so that casbin's
//! `enforce(user, owner, workflow, op)` (with the user's groups as `g, user,
//! group:<name>` links) gives the same answer as [`crate::permitted`].
//!
//! Casbin's built-in effects cannot say "grants ∩ limits, negation wins, site
//! defaults only when the user file names nobody" in one policy set, so the export
//! uses the `priority(p.eft) || deny` effect as a decision list, and turns every
//! key's permissions into role links to marker nodes (`::L+:stop` = "this key's limit
//! includes stop"). A row asks "does the user, through any key, reach this marker?":
//!
//! | order | row | effect |
//! |---|---|---|
//! | 1 | user is the owner | allow |
//! | 2 | a limit negates op | deny |
//! | 3 | no limit includes op | deny |
//! | 4 | for each `[[workflows]]` entry i (glob in `obj`): a grant of entry i negates op | deny |
//! | 5 | … a grant of entry i includes op | allow |
//! | 6 | … entry i names the user at all (it replaces the user-level grants) | deny |
//! | 7–9 | the same three for `[grants]` | deny / allow / deny |
//! | 10–11 | site defaults negate / include op | deny / allow |
//! | — | nothing matched | deny |
//!
//! The owner's groups are resolved when exporting (owner keys are matched then), so
//! an export is for one owner. Marker names start with `::`, which no user or group
//! name can contain, so a user can never be mistaken for a marker.

use crate::perms::{Bits, Key, PermList};
use crate::site::SitePolicy;
use crate::user::UserPolicy;
use crate::Subject;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// The casbin model every export uses.
pub const CASBIN_MODEL: &str = r#"# Steward policy as a casbin decision list; see `steward policy export`.
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = kind, node, dom, obj, eft

[role_definition]
g = _, _

[policy_effect]
e = priority(p.eft) || deny

[matchers]
m = r.dom == p.dom && (p.obj == "**" || globMatch(r.obj, p.obj)) && (p.kind == "owner" && r.sub == r.dom || p.kind == "has" && (g(r.sub, p.node + r.act) || g("*", p.node + r.act)) || p.kind == "lacks" && !(g(r.sub, p.node + r.act) || g("*", p.node + r.act)) || p.kind == "any" && (g(r.sub, p.node) || g("*", p.node)))
"#;

/// A model.conf and a policy.csv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasbinExport {
    pub model: String,
    pub policy: String,
    /// Number of `p` rows and `g` links written.
    pub rows: usize,
    pub links: usize,
}

fn key_node(k: &Key) -> String {
    k.as_written()
}

fn csv_field(s: &str) -> Result<String, String> {
    if s.contains(['"', '\n', '\r']) {
        return Err(format!(
            "{s:?} cannot be written to a casbin CSV (it holds a quote or newline)"
        ));
    }
    Ok(if s.contains([',', ' ', '#']) || s.is_empty() {
        format!("\"{s}\"")
    } else {
        s.to_string()
    })
}

#[derive(Default)]
struct Links(BTreeSet<(String, String)>);

impl Links {
    fn bits(&mut self, key: &Key, prefix: &str, bits: Bits) {
        for op in bits.pos.iter() {
            self.0
                .insert((key_node(key), format!("{prefix}+:{}", op.name())));
        }
        for op in bits.neg.iter() {
            self.0
                .insert((key_node(key), format!("{prefix}-:{}", op.name())));
        }
    }
    fn list(&mut self, key: &Key, prefix: &str, list: &PermList) {
        let mut b = Bits::default();
        b.add(list);
        self.bits(key, prefix, b);
    }
    fn marker(&mut self, key: &Key, node: &str) {
        self.0.insert((key_node(key), node.to_string()));
    }
}

/// Export `owner`'s policy (site entries matching the owner, plus their user file).
pub fn casbin(
    site: &SitePolicy,
    user: Option<&UserPolicy>,
    owner: &Subject,
) -> Result<CasbinExport, String> {
    if owner.name.is_empty() || owner.name.contains([',', '"', ':', '\n']) {
        return Err(format!("owner name {:?} cannot be exported", owner.name));
    }
    let dom = csv_field(&owner.name)?;
    let mut links = Links::default();
    for e in site.entries() {
        if !e.owner_key.matches(&owner.name, &owner.groups) {
            continue;
        }
        links.bits(&e.user_key, "::L", e.limit_bits);
        links.bits(&e.user_key, "::D", e.default_bits);
    }
    let mut rows: Vec<String> = vec![
        format!("p, owner, -, {dom}, **, allow"),
        format!("p, has, ::L-:, {dom}, **, deny"),
        format!("p, lacks, ::L+:, {dom}, **, deny"),
    ];
    if let Some(u) = user {
        let mut neg = Vec::new();
        let mut pos = Vec::new();
        let mut any = Vec::new();
        for (i, w) in u.workflows().iter().enumerate() {
            csv_field(&w.pattern)?; // rejects quotes and newlines
            let glob = format!("\"{}\"", w.pattern);
            let node = format!("::W{i}");
            for g in &w.grants {
                links.list(&g.key, &node, &g.list);
                links.marker(&g.key, &node);
            }
            neg.push(format!("p, has, {node}-:, {dom}, {glob}, deny"));
            pos.push(format!("p, has, {node}+:, {dom}, {glob}, allow"));
            any.push(format!("p, any, {node}, {dom}, {glob}, deny"));
        }
        rows.extend(neg);
        rows.extend(pos);
        rows.extend(any);
        for g in u.grants() {
            links.list(&g.key, "::U", &g.list);
            links.marker(&g.key, "::U");
        }
    }
    rows.push(format!("p, has, ::U-:, {dom}, **, deny"));
    rows.push(format!("p, has, ::U+:, {dom}, **, allow"));
    rows.push(format!("p, any, ::U, {dom}, **, deny"));
    rows.push(format!("p, has, ::D-:, {dom}, **, deny"));
    rows.push(format!("p, has, ::D+:, {dom}, **, allow"));

    let mut policy = String::new();
    let _ = writeln!(
        policy,
        "# Steward policy for owner {} (groups: {}) from {}{}",
        owner.name,
        owner.groups.join(" "),
        site.origin(),
        user.map(|u| format!(" and {}", u.origin()))
            .unwrap_or_default()
    );
    let _ = writeln!(
        policy,
        "# Add the user's groups before enforcing: g, <user>, group:<name>. Request: (user, owner, workflow, op)."
    );
    for r in &rows {
        policy.push_str(r);
        policy.push('\n');
    }
    for (from, to) in &links.0 {
        let _ = writeln!(policy, "g, {}, {}", csv_field(from)?, csv_field(to)?);
    }
    Ok(CasbinExport {
        model: CASBIN_MODEL.to_string(),
        policy,
        rows: rows.len(),
        links: links.0.len(),
    })
}
