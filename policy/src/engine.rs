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
use crate::perms::{Bits, PermList};
use crate::site::{SiteEntry, SitePolicy};
use crate::user::{GrantEntry, UserPolicy, WorkflowEntry};
use crate::Subject;
use serde::Serialize;
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
    pub user: Vec<&'a GrantEntry>,
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
    site.for_each_match(&owner_probe, &actor_probe, |e| {
        limit.pos = limit.pos.union(e.limit_bits.pos);
        limit.neg = limit.neg.union(e.limit_bits.neg);
        defaults.pos = defaults.pos.union(e.default_bits.pos);
        defaults.neg = defaults.neg.union(e.default_bits.neg);
        if let Some(t) = trace.as_deref_mut() {
            push_unique(&mut t.site, e);
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
                w.index.for_each_match(&actor_probe, |&gi| {
                    let g = &w.grants[gi as usize];
                    grants.add(&g.list);
                    source = GrantSource::Workflow;
                    if let Some(t) = trace.as_deref_mut() {
                        if !t.workflow.iter().any(|(_, x)| std::ptr::eq(*x, g)) {
                            t.workflow.push((w, g));
                        }
                    }
                });
            }
        }
        if source != GrantSource::Workflow {
            u.index.for_each_match(&actor_probe, |&gi| {
                let g = &u.grants[gi as usize];
                grants.add(&g.list);
                source = GrantSource::User;
                if let Some(t) = trace.as_deref_mut() {
                    push_unique(&mut t.user, g);
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
    /// First line: the verdict in one sentence; then one line per entry consulted.
    pub reasons: Vec<String>,
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
    }
}

fn at(origin: &str, line: u32) -> String {
    format!("{origin}:{line}")
}

fn quote_items(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("{i:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What one list does to `op`, in words, or None when it does not mention `op`.
fn effect_on(list: &PermList, op: Operation) -> String {
    let plus = list.items_for(op, false);
    let minus = list.items_for(op, true);
    match (plus.is_empty(), minus.is_empty()) {
        (true, true) => format!("does not include {op}"),
        (false, true) => format!("includes {op} (via {})", quote_items(&plus)),
        (true, false) => format!("negates {op} (via {})", quote_items(&minus)),
        (false, false) => format!(
            "includes {op} (via {}) but also negates it (via {})",
            quote_items(&plus),
            quote_items(&minus)
        ),
    }
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
    let a = &actor.name;
    let o = &owner.name;
    let on = if workflow.is_empty() {
        format!("{o}'s workflows")
    } else {
        format!("{o}'s workflow {workflow}")
    };
    if out.source == GrantSource::Owner {
        return vec![format!(
            "allowed: {a} owns {on}, and an owner may do everything on their own workflows"
        )];
    }
    let mut lines = Vec::new();
    // Only entries that mention the operation get a line of their own; the others
    // are counted, so an explanation stays short however many entries matched.
    let mut quiet: Vec<u32> = Vec::new();
    let mentions = |l: &PermList| l.pos.union(l.neg).contains(op);
    let flush = |lines: &mut Vec<String>, quiet: &mut Vec<u32>, origin: &str, side: &str| {
        if quiet.is_empty() {
            return;
        }
        quiet.sort_unstable();
        quiet.dedup();
        let shown: Vec<String> = quiet.iter().take(5).map(u32::to_string).collect();
        let more = if quiet.len() > 5 { ", …" } else { "" };
        lines.push(format!(
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
    };

    // Grants side.
    let granted_pos = out.grants.pos.contains(op);
    let granted_neg = out.grants.neg.contains(op);
    match out.source {
        GrantSource::Owner => unreachable!(),
        GrantSource::Workflow => {
            let u = user.expect("workflow grants come from a user file");
            lines.push(format!(
                "grants: [[workflows]] entries in {} match {workflow} for {a}, so they replace {o}'s [grants] for this workflow",
                u.origin
            ));
            for (w, g) in &trace.workflow {
                if !mentions(&g.list) {
                    quiet.push(g.pos.line);
                    continue;
                }
                lines.push(format!(
                    "{}: [[workflows]] match = {:?}, grant {} = {} ({}) {}",
                    at(&u.origin, g.pos.line),
                    w.pattern,
                    g.key,
                    g.list.display(),
                    g.key.why(a),
                    effect_on(&g.list, op)
                ));
            }
            flush(&mut lines, &mut quiet, &u.origin, "grants");
        }
        GrantSource::User => {
            let u = user.expect("user grants come from a user file");
            for g in &trace.user {
                if !mentions(&g.list) {
                    quiet.push(g.pos.line);
                    continue;
                }
                lines.push(format!(
                    "{}: [grants] {} = {} ({}) {}",
                    at(&u.origin, g.pos.line),
                    g.key,
                    g.list.display(),
                    g.key.why(a),
                    effect_on(&g.list, op)
                ));
            }
            flush(&mut lines, &mut quiet, &u.origin, "grants");
        }
        GrantSource::SiteDefault => {
            match user {
                None => lines.push(format!(
                    "grants: {o} has no user policy, so the site defaults apply"
                )),
                Some(u) => lines.push(format!(
                    "grants: {}'s [grants] has no key for {a} (by name, \"*\" or a group of theirs), so the site defaults apply",
                    u.origin
                )),
            }
            let mut any = false;
            for e in &trace.site {
                if let Some(d) = &e.default {
                    any = true;
                    if !mentions(d) {
                        quiet.push(d.at.line);
                        continue;
                    }
                    lines.push(format!(
                        "{}: {} default = {} ({}; {}) {}",
                        at(&site.origin, d.at.line),
                        e.header(),
                        d.display(),
                        e.owner_key.why_owner(o),
                        e.user_key.why(a),
                        effect_on(d, op)
                    ));
                }
            }
            flush(&mut lines, &mut quiet, &site.origin, "grants");
            if !any {
                lines.push(format!(
                    "grants: no site entry for {o} and {a} has a default, so nothing is granted"
                ));
            }
        }
    }

    // Limit side.
    let limit_pos = out.limit.pos.contains(op);
    let limit_neg = out.limit.neg.contains(op);
    if trace.site.is_empty() {
        lines.push(format!(
            "limit: no entry in {} matches owner {o} and user {a}, so nobody but the owner may do anything",
            site.origin
        ));
    }
    for e in &trace.site {
        let (what, list) = match (&e.limit, &e.default) {
            (Some(l), _) => ("limit", Some(l)),
            (None, Some(d)) => ("limit (none given, so its default)", Some(d)),
            (None, None) => ("limit (neither limit nor default given)", None),
        };
        let line = list.map(|l| l.at.line).unwrap_or(e.pos.line);
        let Some(list) = list.filter(|l| mentions(l)) else {
            quiet.push(line);
            continue;
        };
        lines.push(format!(
            "{}: {} {what} = {} ({}; {}) {}",
            at(&site.origin, line),
            e.header(),
            list.display(),
            e.owner_key.why_owner(o),
            e.user_key.why(a),
            effect_on(list, op)
        ));
    }
    flush(&mut lines, &mut quiet, &site.origin, "limit");

    // Verdict.
    let grant_ok = granted_pos && !granted_neg;
    let limit_ok = limit_pos && !limit_neg;
    let grant_why = if !granted_pos {
        format!("{op} is not granted to {a}")
    } else {
        format!("{op} is granted to {a} but also negated, and a negation wins")
    };
    let limit_why = if trace.site.is_empty() {
        format!("the site policy has no entry for owner {o} and user {a}")
    } else if !limit_pos {
        format!("the site limit for {a} on {o}'s workflows does not include {op}")
    } else {
        format!("the site limit for {a} on {o}'s workflows negates {op}")
    };
    let verdict = match (grant_ok, limit_ok) {
        (true, true) => {
            format!("allowed: {a} may {op} on {on}: it is granted and within the site limit")
        }
        (false, true) => format!("denied: {grant_why}"),
        (true, false) => format!("denied: {limit_why}"),
        (false, false) => format!("denied: {grant_why}, and {limit_why}"),
    };
    debug_assert_eq!(grant_ok && limit_ok, out.result.contains(op));
    lines.insert(0, verdict);
    lines
}
