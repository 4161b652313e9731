//! The authorizer: (site, user file, owner, user, workflow) → permitted operations.
//!
//! One function, [`evaluate`], computes the answer. It optionally records which
//! entries it used (a [`Trace`]); [`decide`] renders that trace into the words of
//! [`Decision::reasons`]. So the explanation is the record of the evaluation that
//! produced the decision, never a second code path that could disagree with it.
//!
//! Semantics (Cylc UI Server's, extended with workflow entries):
//! 1. The owner has every operation on their own workflows.
//! 2. Limit = ∪ over site entries matching (owner key, user key) of that entry's
//!    `limit`, or its `default` when it has no `limit`. No matching entry → nothing.
//! 3. Grants = ∪ over `[[workflows]]` entries whose glob matches the workflow and
//!    that have a key matching the user; if there are none, ∪ over the `[grants]`
//!    keys matching the user; if no `[grants]` key matches either, ∪ of the
//!    `default`s of the matching site entries.
//! 4. Each side is normalized on its own (positives minus negatives, so a negation
//!    wins whichever key it came from), and the result is grants ∩ limit.
//!
//! Where Cylc's code merges several owner entries in an order-dependent way
//! (`build_owner_site_auth_conf` replaces earlier entries for the same user key), we
//! follow its documentation: every matching entry counts (a union).

use crate::index::Probe;
use crate::perms::{Bits, Key, PermList};
use crate::site::{SiteEntry, SitePolicy};
use crate::user::{GrantEntry, UserPolicy, WorkflowEntry};
use crate::Subject;
use serde::Serialize;
use std::fmt;
use steward_protocol::{OpClass, OpSet, Operation};

/// Where the grants side of a decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrantSource {
    Owner,
    Workflow,
    User,
    SiteDefault,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    pub result: OpSet,
    pub source: GrantSource,
    pub grants: Bits,
    pub limit: Bits,
}

/// The entries an evaluation used, in the order it used them.
#[derive(Debug, Default)]
pub(crate) struct Trace<'a> {
    pub site: Vec<&'a SiteEntry>,
    /// Indices into the user policy's `[grants]`.
    pub user: Vec<u32>,
    pub workflow: Vec<(&'a WorkflowEntry, &'a GrantEntry)>,
}

fn push_unique<'a, T: ?Sized>(v: &mut Vec<&'a T>, x: &'a T) {
    if !v.iter().any(|y| std::ptr::eq(*y, x)) {
        v.push(x);
    }
}

/// The single evaluation. `trace`, when given, records the entries used.
#[inline]
pub(crate) fn evaluate<'a>(
    site: &'a SitePolicy,
    user: Option<&'a UserPolicy>,
    owner: &Subject,
    actor: &Subject,
    workflow: &str,
    mut trace: Option<&mut Trace<'a>>,
) -> Outcome {
    if actor.name == owner.name {
        return Outcome {
            result: OpSet::ALL,
            source: GrantSource::Owner,
            grants: Bits {
                pos: OpSet::ALL,
                neg: OpSet::EMPTY,
            },
            limit: Bits {
                pos: OpSet::ALL,
                neg: OpSet::EMPTY,
            },
        };
    }

    let owner_probe = Probe::new(owner);
    let actor_probe = Probe::new(actor);
    let mut limit = Bits::default();
    let mut defaults = Bits::default();
    site.for_each_match(&owner_probe, &actor_probe, |h| {
        limit.pos = limit.pos.union(h.limit.pos);
        limit.neg = limit.neg.union(h.limit.neg);
        defaults.pos = defaults.pos.union(h.default.pos);
        defaults.neg = defaults.neg.union(h.default.neg);
        if let Some(t) = trace.as_deref_mut() {
            push_unique(&mut t.site, &site.entries[h.idx as usize]);
        }
    });

    let mut grants = Bits::default();
    let mut source = GrantSource::SiteDefault;
    if let Some(u) = user {
        if !workflow.is_empty() && !u.workflows.is_empty() {
            let mut hits = Vec::new();
            u.matching_workflows(workflow, &mut hits);
            for i in hits {
                let w = &u.workflows[i];
                w.index.for_each_match(&actor_probe, |h| {
                    grants.pos = grants.pos.union(h.bits.pos);
                    grants.neg = grants.neg.union(h.bits.neg);
                    source = GrantSource::Workflow;
                    if let Some(t) = trace.as_deref_mut() {
                        let g = &w.grants[h.idx as usize];
                        if !t.workflow.iter().any(|(_, x)| std::ptr::eq(*x, g)) {
                            t.workflow.push((w, g));
                        }
                    }
                });
            }
        }
        if source != GrantSource::Workflow {
            u.index.for_each_match(&actor_probe, |h| {
                grants.pos = grants.pos.union(h.bits.pos);
                grants.neg = grants.neg.union(h.bits.neg);
                source = GrantSource::User;
                if let Some(t) = trace.as_deref_mut() {
                    if !t.user.contains(&h.idx) {
                        t.user.push(h.idx);
                    }
                }
            });
        }
    }
    if source == GrantSource::SiteDefault {
        grants = defaults;
    }
    Outcome {
        result: grants.normalize().intersect(limit.normalize()),
        source,
        grants,
        limit,
    }
}

/// Every operation `actor` may perform on `owner`'s workflow `workflow` (the name
/// without owner, e.g. `atmosphere_stage/run1`; `""` means no particular workflow, so
/// no `[[workflows]]` entry applies). `owner`/`actor` groups are names without the
/// `group:` prefix. This is the fast path: no allocation unless the user file has
/// `[[workflows]]` entries matching the workflow.
pub fn permitted(
    site: &SitePolicy,
    user_policy: Option<&UserPolicy>,
    owner: &Subject,
    actor: &Subject,
    workflow: &str,
) -> OpSet {
    evaluate(site, user_policy, owner, actor, workflow, None).result
}

/// The answer for one operation, with the reasons: which entries granted, limited or
/// negated it, with file:line. Feeds the hub, `steward policy explain`, the UI tooltip
/// and the audit `reason` alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    /// The elevation class the operation needs (read, execute, write).
    pub class: OpClass,
    /// First line: the verdict in one sentence; then one line per entry that mentions
    /// the operation, and a count of the other entries that matched.
    pub reasons: Vec<String>,
    /// How many entries (site entries, `[grants]` keys, `[[workflows]]` grants) matched
    /// the two people and were merged: the evaluation's own work, which grows with how
    /// many of a policy's keys name them.
    pub entries_merged: usize,
}

/// Decide one operation and say why; same evaluation as [`permitted`].
pub fn decide(
    site: &SitePolicy,
    user_policy: Option<&UserPolicy>,
    owner: &Subject,
    actor: &Subject,
    workflow: &str,
    op: Operation,
) -> Decision {
    let mut trace = Trace::default();
    let out = evaluate(site, user_policy, owner, actor, workflow, Some(&mut trace));
    let allowed = out.result.contains(op);
    Decision {
        allowed,
        class: op.class(),
        reasons: render(&out, &trace, site, user_policy, owner, actor, workflow, op),
        entries_merged: trace.site.len() + trace.user.len() + trace.workflow.len(),
    }
}

/// `file:line`, written straight into the line being built.
struct At<'a>(&'a str, u32);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0, self.1)
    }
}

/// `format!("{:?}", prefix + name)`, but written directly when no character needs
/// escaping (printable ASCII other than `"` and `\\`), which is every real name.
struct Quoted<'a>(&'a str, &'a str);

fn plain(s: &str) -> bool {
    s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if plain(self.0) && plain(self.1) {
            f.write_str("\"")?;
            f.write_str(self.0)?;
            f.write_str(self.1)?;
            f.write_str("\"")
        } else {
            write!(f, "{:?}", format!("{}{}", self.0, self.1))
        }
    }
}

/// A key as `Key`'s `Display` shows it (quoted, as written).
struct KeyText<'a>(&'a Key);

impl fmt::Display for KeyText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Key::Any => f.write_str("\"*\""),
            Key::User(u) => Quoted("", u).fmt(f),
            Key::Group(g) => Quoted("group:", g).fmt(f),
        }
    }
}

/// A site entry's table header, as `SiteEntry::header` writes it.
struct Header<'a>(&'a SiteEntry);

impl fmt::Display for Header<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[owners.{}.{}]",
            KeyText(&self.0.owner_key),
            KeyText(&self.0.user_key)
        )
    }
}

/// A list as TOML would show it (same text as `PermList::display`), without the
/// intermediate strings.
struct ListText<'a>(&'a PermList);

impl fmt::Display for ListText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, item) in self.0.items.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            Quoted("", &item.text).fmt(f)?;
        }
        f.write_str("]")
    }
}

/// Why a subject matches a key, in words (same text as `Key::why` / `Key::why_owner`).
struct Why<'a> {
    key: &'a Key,
    name: &'a str,
    owner: bool,
}

impl fmt::Display for Why<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name;
        match (self.key, self.owner) {
            (Key::Any, false) => f.write_str("\"*\" covers every user"),
            (Key::User(_), false) => write!(f, "names {name}"),
            (Key::Group(g), false) => write!(f, "{name} is in group {g}"),
            (Key::Any, true) => f.write_str("owner key \"*\" covers every owner"),
            (Key::User(_), true) => write!(f, "owner key names {name}"),
            (Key::Group(g), true) => write!(f, "owner {name} is in group {g}"),
        }
    }
}

fn why<'a>(key: &'a Key, name: &'a str) -> Why<'a> {
    Why {
        key,
        name,
        owner: false,
    }
}

fn why_owner<'a>(key: &'a Key, name: &'a str) -> Why<'a> {
    Why {
        key,
        name,
        owner: true,
    }
}

/// The items of a list that add (or take away) `op`, quoted and comma-separated.
struct Items<'a> {
    list: &'a PermList,
    op: Operation,
    negated: bool,
}

impl<'a> Items<'a> {
    fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let (op, negated) = (self.op, self.negated);
        self.list
            .items
            .iter()
            .filter(move |i| i.negated == negated && i.ops.is_some_and(|s| s.contains(op)))
            .map(|i| i.text.as_str())
    }
}

impl fmt::Display for Items<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, text) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            Quoted("", text).fmt(f)?;
        }
        Ok(())
    }
}

/// What one list does to `op`, in words.
struct Effect<'a>(&'a PermList, Operation);

impl fmt::Display for Effect<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (list, op) = (self.0, self.1);
        let plus = Items {
            list,
            op,
            negated: false,
        };
        let minus = Items {
            list,
            op,
            negated: true,
        };
        let (no_plus, no_minus) = (plus.iter().next().is_none(), minus.iter().next().is_none());
        match (no_plus, no_minus) {
            (true, true) => write!(f, "does not include {op}"),
            (false, true) => write!(f, "includes {op} (via {plus})"),
            (true, false) => write!(f, "negates {op} (via {minus})"),
            (false, false) => write!(
                f,
                "includes {op} (via {plus}) but also negates it (via {minus})"
            ),
        }
    }
}

/// An explanation line: `format!` sizes its buffer from the literal text alone, so a
/// line holding an entry's cached text, names and lists grew through several
/// reallocations (copies); one buffer of a typical line's size avoids them.
fn line_of(args: fmt::Arguments<'_>) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(LINE);
    let _ = s.write_fmt(args);
    s
}

/// Longer than most explanation lines (a 10,000-entry policy's average 130 bytes).
const LINE: usize = 192;

macro_rules! line {
    ($($t:tt)*) => {
        line_of(format_args!($($t)*))
    };
}

/// What an explanation is about, and the lines written so far. One method per part
/// of the explanation: the grants side (by where the grants came from), the limit
/// side, and the verdict line put first.
struct Render<'r, 'a> {
    trace: &'r Trace<'a>,
    site: &'r SitePolicy,
    user: Option<&'r UserPolicy>,
    /// Actor and owner names.
    a: &'r str,
    o: &'r str,
    workflow: &'r str,
    op: Operation,
    lines: Vec<String>,
    /// Line numbers of matching entries that do not mention `op`: counted, not shown,
    /// so an explanation stays short however many entries matched.
    quiet: Vec<u32>,
}

#[allow(clippy::too_many_arguments)]
fn render(
    out: &Outcome,
    trace: &Trace,
    site: &SitePolicy,
    user: Option<&UserPolicy>,
    owner: &Subject,
    actor: &Subject,
    workflow: &str,
    op: Operation,
) -> Vec<String> {
    let mut r = Render {
        trace,
        site,
        user,
        a: &actor.name,
        o: &owner.name,
        workflow,
        op,
        lines: Vec::with_capacity(16),
        quiet: Vec::new(),
    };
    match out.source {
        GrantSource::Owner => {
            let (a, on) = (r.a, r.on());
            return vec![format!(
                "allowed: {a} owns {on}, and an owner may do everything on their own workflows"
            )];
        }
        GrantSource::Workflow => r.workflow_grants(),
        GrantSource::User => r.user_grants(),
        GrantSource::SiteDefault => r.site_default_grants(),
    }
    r.limits();
    let verdict = r.verdict(out);
    r.lines.insert(0, verdict);
    r.lines
}

impl Render<'_, '_> {
    /// "alice's workflows" or "alice's workflow wf".
    fn on(&self) -> String {
        let o = self.o;
        if self.workflow.is_empty() {
            format!("{o}'s workflows")
        } else {
            format!("{o}'s workflow {}", self.workflow)
        }
    }

    fn mentions(&self, l: &PermList) -> bool {
        l.pos.union(l.neg).contains(self.op)
    }

    /// One line counting the quiet entries of a side, if there were any.
    fn flush(&mut self, origin: &str, side: &str) {
        let quiet = &mut self.quiet;
        if quiet.is_empty() {
            return;
        }
        quiet.sort_unstable();
        quiet.dedup();
        let op = self.op;
        let shown: Vec<String> = quiet.iter().take(5).map(u32::to_string).collect();
        let more = if quiet.len() > 5 { ", …" } else { "" };
        self.lines.push(line!(
            "{side}: {} other matching {} not mention {op} ({origin}:{}{more})",
            quiet.len(),
            if quiet.len() == 1 {
                "entry does"
            } else {
                "entries do"
            },
            shown.join(", ")
        ));
        quiet.clear();
    }

    /// Grants from `[[workflows]]` entries of the owner's file.
    fn workflow_grants(&mut self) {
        let (a, o, op, workflow) = (self.a, self.o, self.op, self.workflow);
        let u = self.user.expect("workflow grants come from a user file");
        self.lines.push(line!(
            "grants: [[workflows]] entries in {} match {workflow} for {a}, so they replace {o}'s [grants] for this workflow",
            u.origin
        ));
        for (w, g) in &self.trace.workflow {
            if !self.mentions(&g.list) {
                self.quiet.push(g.pos.line);
                continue;
            }
            self.lines.push(line!(
                "{}: [[workflows]] match = {:?}, grant {} = {} ({}) {}",
                At(&u.origin, g.pos.line),
                w.pattern,
                KeyText(&g.key),
                ListText(&g.list),
                why(&g.key, a),
                Effect(&g.list, op)
            ));
        }
        self.flush(&u.origin, "grants");
    }

    /// Grants from the `[grants]` keys of the owner's file.
    fn user_grants(&mut self) {
        let (a, op) = (self.a, self.op);
        let u = self.user.expect("user grants come from a user file");
        for &gi in &self.trace.user {
            let g = &u.grants[gi as usize];
            if !self.mentions(&g.list) {
                self.quiet.push(g.pos.line);
                continue;
            }
            let text = u.grant_texts[gi as usize].get_or_init(|| {
                format!("[grants] {} = {}", KeyText(&g.key), ListText(&g.list)).into()
            });
            self.lines.push(line!(
                "{}: {text} ({}) {}",
                At(&u.origin, g.pos.line),
                why(&g.key, a),
                Effect(&g.list, op)
            ));
        }
        self.flush(&u.origin, "grants");
    }

    /// Grants from the `default`s of the matching site entries.
    fn site_default_grants(&mut self) {
        let (a, o, op, site) = (self.a, self.o, self.op, self.site);
        match self.user {
            None => self.lines.push(line!(
                "grants: {o} has no user policy, so the site defaults apply"
            )),
            Some(u) => self.lines.push(line!(
                "grants: {}'s [grants] has no key for {a} (by name, \"*\" or a group of theirs), so the site defaults apply",
                u.origin
            )),
        }
        let mut any = false;
        for e in &self.trace.site {
            if let Some(d) = &e.default {
                any = true;
                if !self.mentions(d) {
                    self.quiet.push(d.at.line);
                    continue;
                }
                let text = e.texts[0]
                    .get_or_init(|| format!("{} default = {}", Header(e), ListText(d)).into());
                self.lines.push(line!(
                    "{}: {text} ({}; {}) {}",
                    At(&site.origin, d.at.line),
                    why_owner(&e.owner_key, o),
                    why(&e.user_key, a),
                    Effect(d, op)
                ));
            }
        }
        self.flush(&site.origin, "grants");
        if !any {
            self.lines.push(line!(
                "grants: no site entry for {o} and {a} has a default, so nothing is granted"
            ));
        }
    }

    /// The limit side: every matching site entry's limit (or default).
    fn limits(&mut self) {
        let (a, o, op, site) = (self.a, self.o, self.op, self.site);
        if self.trace.site.is_empty() {
            self.lines.push(line!(
                "limit: no entry in {} matches owner {o} and user {a}, so nobody but the owner may do anything",
                site.origin
            ));
        }
        for e in &self.trace.site {
            let (what, list) = match (&e.limit, &e.default) {
                (Some(l), _) => ("limit", Some(l)),
                (None, Some(d)) => ("limit (none given, so its default)", Some(d)),
                (None, None) => ("limit (neither limit nor default given)", None),
            };
            let line = list.map(|l| l.at.line).unwrap_or(e.pos.line);
            let Some(list) = list.filter(|l| self.mentions(l)) else {
                self.quiet.push(line);
                continue;
            };
            let text = e.texts[1]
                .get_or_init(|| format!("{} {what} = {}", Header(e), ListText(list)).into());
            self.lines.push(line!(
                "{}: {text} ({}; {}) {}",
                At(&site.origin, line),
                why_owner(&e.owner_key, o),
                why(&e.user_key, a),
                Effect(list, op)
            ));
        }
        self.flush(&site.origin, "limit");
    }

    /// The first line: allowed or denied, and which side said no.
    fn verdict(&self, out: &Outcome) -> String {
        let (a, o, op) = (self.a, self.o, self.op);
        let grant_ok = out.grants.pos.contains(op) && !out.grants.neg.contains(op);
        let limit_ok = out.limit.pos.contains(op) && !out.limit.neg.contains(op);
        let grant_why = if !out.grants.pos.contains(op) {
            format!("{op} is not granted to {a}")
        } else {
            format!("{op} is granted to {a} but also negated, and a negation wins")
        };
        let limit_why = if self.trace.site.is_empty() {
            format!("the site policy has no entry for owner {o} and user {a}")
        } else if !out.limit.pos.contains(op) {
            format!("the site limit for {a} on {o}'s workflows does not include {op}")
        } else {
            format!("the site limit for {a} on {o}'s workflows negates {op}")
        };
        debug_assert_eq!(grant_ok && limit_ok, out.result.contains(op));
        match (grant_ok, limit_ok) {
            (true, true) => format!(
                "allowed: {a} may {op} on {}: it is granted and within the site limit",
                self.on()
            ),
            (false, true) => format!("denied: {grant_why}"),
            (true, false) => format!("denied: {limit_why}"),
            (false, false) => format!("denied: {grant_why}, and {limit_why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_merged_counts_every_matching_entry_once() {
        let site = SitePolicy::parse(
            "[owners.\"*\".\"*\"]\ndefault = \"READ\"\n\
             [owners.\"group:staff\".\"group:ops\"]\ndefault = \"CONTROL\"\n\
             [owners.\"group:staff\".\"carl\"]\ndefault = \"ALL\"\n",
            "site.toml",
        )
        .unwrap();
        let user = UserPolicy::parse(
            "[grants]\n\"*\" = \"READ\"\n\"group:ops\" = [\"pause\"]\n\"dave\" = \"ALL\"\n",
            "user.toml",
        )
        .unwrap();
        let owner = Subject::new("alice", ["staff"]);
        let bob = Subject::new("bob", ["ops"]);
        // Site: `*`/`*` and staff/ops; grants: `*` and ops. Not carl's or dave's.
        let d = decide(&site, Some(&user), &owner, &bob, "", Operation::Pause);
        assert!(d.allowed);
        assert_eq!(d.entries_merged, 4);
        // The owner merges nothing.
        let d = decide(&site, Some(&user), &owner, &owner, "", Operation::Pause);
        assert_eq!(d.entries_merged, 0);
    }

    #[test]
    fn quoted_text_is_debug_text() {
        for name in [
            "alice",
            "a b",
            "q\"x",
            "back\\slash",
            "tab\t",
            "é",
            "\u{301}x",
            "x\u{301}",
            "",
        ] {
            assert_eq!(Quoted("", name).to_string(), format!("{name:?}"));
            assert_eq!(
                Quoted("group:", name).to_string(),
                format!("{:?}", format!("group:{name}"))
            );
            for k in [Key::Any, Key::User(name.into()), Key::Group(name.into())] {
                assert_eq!(KeyText(&k).to_string(), k.to_string());
            }
        }
    }
}
