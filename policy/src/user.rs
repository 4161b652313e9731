//! The owner's user policy file (`~/.steward/policy.toml`): whom the owner grants
//! what, and per-workflow overrides.
//!
//! ```toml
//! [grants]                          # Cylc's user_authorization
//! "group:ops" = ["READ", "CONTROL"]
//!
//! [[workflows]]                     # Steward's extension
//! match  = "atmosphere_stage/*"     # glob on the workflow name (without owner)
//! grants = { alice = ["READ", "CONTROL", "broadcast"] }
//! ```
//! Globs use `globset` with `literal_separator(true)`: `*` and `?` stay inside one
//! `/`-separated part of the name, `**` crosses parts, `{a,b}` and `[ab]` work. This is
//! also what casbin's `globMatch` does, which keeps the casbin export exact.

use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::doc::{self, Item, Table, Value};
use crate::index::KeyMap;
use crate::perms::{parse_key, Bits, Ctx, Key, PermList};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::collections::HashMap;

/// One `key = [...]` line of a grants table.
#[derive(Debug, Clone)]
pub struct GrantEntry {
    pub key: Key,
    pub list: PermList,
    /// Position of the key.
    pub pos: Pos,
}

/// A grant's index and bits, stored in the index slot so a decision does not fetch
/// the entry itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GrantHit {
    pub idx: u32,
    pub bits: Bits,
}

impl GrantHit {
    fn new(i: usize, g: &GrantEntry) -> GrantHit {
        let mut bits = Bits::default();
        bits.add(&g.list);
        GrantHit {
            idx: i as u32,
            bits,
        }
    }
}

/// One `[[workflows]]` entry.
#[derive(Debug, Clone)]
pub struct WorkflowEntry {
    pub pattern: String,
    pub pos: Pos,
    pub grants: Vec<GrantEntry>,
    pub(crate) index: KeyMap<GrantHit>,
}

/// A parsed, checked and indexed user policy.
#[derive(Debug, Clone)]
pub struct UserPolicy {
    pub(crate) origin: String,
    pub(crate) grants: Vec<GrantEntry>,
    pub(crate) index: KeyMap<GrantHit>,
    pub(crate) workflows: Vec<WorkflowEntry>,
    pub(crate) globs: WorkflowIndex,
    pub(crate) warnings: Vec<Diagnostic>,
    /// Per `[grants]` entry, the operation-independent part of its explanation line
    /// (`[grants] key = [list]`), rendered the first time a decision explains with it.
    pub(crate) grant_texts: Vec<std::sync::OnceLock<Box<str>>>,
}

const ROOT_KEYS: &[&str] = &["grants", "workflows"];
const WORKFLOW_KEYS: &[&str] = &["match", "grants"];

/// Compile a workflow glob the one way the engine and the casbin export share.
pub(crate) fn workflow_glob(pattern: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(true).build()
}

impl UserPolicy {
    /// Parse and compile a user policy; see [`crate::SitePolicy::parse`] for the
    /// error/warning contract.
    pub fn parse(src: &str, origin: &str) -> Result<UserPolicy, Diagnostics> {
        let mut cx = Ctx::new(origin, src);
        let root = match doc::parse(src) {
            Ok(root) => root,
            Err(e) => return Err(crate::syntax_error(&cx, &e)),
        };
        let mut grants = Vec::new();
        let mut workflows = Vec::new();
        for (k, item) in root.iter() {
            let kpos = cx.at(k);
            match k.get_ref().as_ref() {
                "grants" => match item.get_ref() {
                    Value::Table(t) => grants = grant_table(&mut cx, t, "[grants]"),
                    _ => cx.error(
                        cx.at(item),
                        format!("\"grants\" must be a table of user keys, e.g. [grants] alice = \"READ\"; found {}", doc::describe(item)),
                    ),
                },
                "workflows" => workflows = workflow_entries(&mut cx, item),
                "owners" => cx.error(
                    kpos,
                    "\"owners\" belongs in the site policy file; a user policy has [grants] and [[workflows]]",
                ),
                other => cx.unknown_key(other, kpos, ROOT_KEYS, "the user policy"),
            }
        }
        let mut diags = cx.diags;
        diags.sort();
        if diags.has_errors() {
            return Err(diags);
        }
        let mut policy = UserPolicy::compile(origin, grants, workflows);
        policy.warnings = diags.0;
        Ok(policy)
    }

    pub(crate) fn compile(
        origin: &str,
        grants: Vec<GrantEntry>,
        mut workflows: Vec<WorkflowEntry>,
    ) -> UserPolicy {
        let index = KeyMap::from_entries(
            grants
                .iter()
                .enumerate()
                .map(|(i, g)| (g.key.clone(), GrantHit::new(i, g))),
        );
        for w in workflows.iter_mut() {
            w.index = KeyMap::from_entries(
                w.grants
                    .iter()
                    .enumerate()
                    .map(|(i, g)| (g.key.clone(), GrantHit::new(i, g))),
            );
        }
        let globs = WorkflowIndex::new(&workflows);
        UserPolicy {
            origin: origin.to_string(),
            grant_texts: grants.iter().map(|_| Default::default()).collect(),
            grants,
            index,
            workflows,
            globs,
            warnings: Vec::new(),
        }
    }

    /// Indices of the `[[workflows]]` entries whose glob matches `workflow`, in file
    /// order.
    #[inline]
    pub(crate) fn matching_workflows(&self, workflow: &str, out: &mut Vec<usize>) {
        self.globs.matches(workflow, out)
    }

    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The `[grants]` entries in file order.
    pub fn grants(&self) -> &[GrantEntry] {
        &self.grants
    }

    /// The `[[workflows]]` entries in file order.
    pub fn workflows(&self) -> &[WorkflowEntry] {
        &self.workflows
    }

    /// Number of keys in `[grants]` plus keys in all `[[workflows]]` entries.
    pub fn len(&self) -> usize {
        self.grants.len() + self.workflows.iter().map(|w| w.grants.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn grant_table(cx: &mut Ctx, t: &Table, context: &str) -> Vec<GrantEntry> {
    let mut out = Vec::with_capacity(t.len());
    for (k, item) in t.iter() {
        let kpos = cx.at(k);
        let k = k.get_ref().as_ref();
        let key = parse_key(k, cx.file, kpos, &mut cx.diags);
        let list = cx.perm_list(item, &|| format!("{context} {k:?}"));
        if let (Some(key), Some(list)) = (key, list) {
            out.push(GrantEntry {
                key,
                list,
                pos: kpos,
            });
        }
    }
    out
}

fn workflow_entries(cx: &mut Ctx, item: &Item) -> Vec<WorkflowEntry> {
    let mut tables: Vec<(&Table, Pos)> = Vec::new();
    match item.get_ref() {
        // `[[workflows]]` and `workflows = [{ ... }]` alike.
        Value::Array(a) => {
            for v in a.iter() {
                let p = cx.at(v);
                match v.get_ref() {
                    Value::Table(t) => tables.push((t, p)),
                    _ => cx.error(
                        p,
                        format!("each workflows entry must be a table with `match` and `grants`; found {}", doc::describe(v)),
                    ),
                }
            }
        }
        _ => cx.error(
            cx.at(item),
            format!("\"workflows\" must be an array of tables: write [[workflows]] with `match` and `grants`; found {}", doc::describe(item)),
        ),
    }
    let mut out = Vec::new();
    for (n, (t, pos)) in tables.into_iter().enumerate() {
        let context = format!("[[workflows]] #{}", n + 1);
        let mut pattern: Option<String> = None;
        let mut grants: Option<Vec<GrantEntry>> = None;
        let (mut has_match, mut has_grants) = (false, false);
        let mut ok = true;
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "match" => {
                    has_match = true;
                    match v.get_ref() {
                        Value::String(p) if p.is_empty() => {
                            cx.error(cx.at(v), format!("{context}: `match` is empty; give a glob on the workflow name, e.g. \"atmosphere_stage/*\""));
                            ok = false;
                        }
                        Value::String(p) => match workflow_glob(p) {
                            Ok(_) => pattern = Some(p.to_string()),
                            Err(e) => {
                                cx.error(
                                    cx.at(v),
                                    format!("{context}: bad glob {p:?}: {}", e.kind()),
                                );
                                ok = false;
                            }
                        },
                        _ => {
                            cx.error(
                                cx.at(v),
                                format!("{context}: `match` must be a string (a glob on the workflow name); found {}", doc::describe(v)),
                            );
                            ok = false;
                        }
                    }
                }
                "grants" => {
                    has_grants = true;
                    match v.get_ref() {
                        Value::Table(g) => {
                            let before = cx.diags.errors().count();
                            grants = Some(grant_table(cx, g, &format!("{context} grants")));
                            ok &= cx.diags.errors().count() == before;
                        }
                        _ => {
                            cx.error(
                                cx.at(v),
                                format!("{context}: `grants` must be a table of user keys, e.g. {{ alice = [\"READ\"] }}; found {}", doc::describe(v)),
                            );
                            ok = false;
                        }
                    }
                }
                other => {
                    let kp = cx.at(k);
                    cx.unknown_key(other, kp, WORKFLOW_KEYS, &context);
                    ok = false;
                }
            }
        }
        if !has_match {
            cx.error(pos, format!("{context} has no `match`: give a glob on the workflow name, e.g. match = \"atmosphere_stage/*\""));
            ok = false;
        }
        if grants.is_none() && !has_grants {
            cx.error(pos, format!("{context} has no `grants` table"));
            ok = false;
        }
        if let (true, Some(pattern), Some(grants)) = (ok, pattern, grants) {
            out.push(WorkflowEntry {
                pattern,
                pos,
                grants,
                index: KeyMap::default(),
            });
        }
    }
    out
}

/// The `[[workflows]]` globs, bucketed by their first `/`-separated part when that
/// part is literal. With `literal_separator`, a glob whose first part has no
/// wildcard can only match names whose first part is exactly that text, so a
/// decision tries only that bucket (plus the few globs that start with a wildcard)
/// instead of every glob. A bucket of a few globs keeps one matcher per glob (no
/// allocation when nothing matches); a larger one is a `GlobSet`.
#[derive(Debug, Clone, Default)]
pub(crate) struct WorkflowIndex {
    buckets: HashMap<Box<str>, Bucket, foldhash::fast::RandomState>,
    wild: Option<Bucket>,
}

#[derive(Debug, Clone)]
enum Bucket {
    Few(Vec<(WfMatcher, usize)>),
    Many(GlobSet, Vec<usize>),
}

const FEW: usize = 4;

fn first_part(s: &str) -> &str {
    s.split_once('/').map_or(s, |(a, _)| a)
}

impl Bucket {
    fn new(entries: &[WorkflowEntry], ids: Vec<usize>) -> Bucket {
        // Patterns were validated while parsing.
        let glob = |i: usize| workflow_glob(&entries[i].pattern).expect("validated glob");
        if ids.len() <= FEW {
            Bucket::Few(
                ids.into_iter()
                    .map(|i| (WfMatcher::new(&entries[i].pattern, glob(i)), i))
                    .collect(),
            )
        } else {
            let mut b = GlobSetBuilder::new();
            for &i in &ids {
                b.add(glob(i));
            }
            Bucket::Many(b.build().expect("validated globs"), ids)
        }
    }

    #[inline]
    fn matches(&self, workflow: &str, out: &mut Vec<usize>) {
        match self {
            Bucket::Few(ms) => out.extend(
                ms.iter()
                    .filter(|(m, _)| m.is_match(workflow))
                    .map(|(_, i)| *i),
            ),
            Bucket::Many(set, ids) => out.extend(set.matches(workflow).into_iter().map(|h| ids[h])),
        }
    }
}

const META: [char; 7] = ['*', '?', '[', ']', '{', '}', '\\'];

/// One glob, with string tests for the common Cylc shapes (`name`, `name/*`,
/// `name/**`) so they skip the regex. Exactly globset's answer: the property test
/// `fast_paths_agree_with_globset` holds them to it.
#[derive(Debug, Clone)]
pub(crate) enum WfMatcher {
    Literal(String),
    /// `head/*`: the prefix `head/`, then one part (possibly empty).
    OnePart(String),
    /// `head/**`: the prefix `head/`, then anything.
    AnyParts(String),
    Glob(globset::GlobMatcher),
}

impl WfMatcher {
    pub(crate) fn new(pattern: &str, glob: globset::Glob) -> WfMatcher {
        if !pattern.contains(META) {
            return WfMatcher::Literal(pattern.to_string());
        }
        if let Some(head) = pattern.strip_suffix("/**") {
            if !head.is_empty() && !head.contains(META) {
                return WfMatcher::AnyParts(format!("{head}/"));
            }
        }
        if let Some(head) = pattern.strip_suffix("/*") {
            if !head.is_empty() && !head.contains(META) {
                return WfMatcher::OnePart(format!("{head}/"));
            }
        }
        WfMatcher::Glob(glob.compile_matcher())
    }

    #[inline]
    pub(crate) fn is_match(&self, name: &str) -> bool {
        match self {
            WfMatcher::Literal(l) => name == l,
            WfMatcher::OnePart(p) => name
                .strip_prefix(p.as_str())
                .is_some_and(|r| !r.contains('/')),
            WfMatcher::AnyParts(p) => name.starts_with(p.as_str()),
            WfMatcher::Glob(g) => g.is_match(name),
        }
    }
}

impl WorkflowIndex {
    fn new(entries: &[WorkflowEntry]) -> Self {
        let mut literal: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut wild = Vec::new();
        for (i, w) in entries.iter().enumerate() {
            let head = first_part(&w.pattern);
            if head.contains(META) {
                wild.push(i);
            } else {
                literal.entry(head).or_default().push(i);
            }
        }
        WorkflowIndex {
            buckets: literal
                .into_iter()
                .map(|(k, ids)| (k.into(), Bucket::new(entries, ids)))
                .collect(),
            wild: (!wild.is_empty()).then(|| Bucket::new(entries, wild)),
        }
    }

    #[inline]
    fn matches(&self, workflow: &str, out: &mut Vec<usize>) {
        out.clear();
        if let Some(b) = self.buckets.get(first_part(workflow)) {
            b.matches(workflow, out);
        }
        if let Some(b) = &self.wild {
            b.matches(workflow, out);
        }
        out.sort_unstable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]
        #[test]
        fn fast_paths_agree_with_globset(
            head in "[ab]{1,2}(/[ab]{1,2})?",
            tail in prop::sample::select(vec!["", "/*", "/**"]),
            name in "[ab/]{0,7}",
        ) {
            let pattern = format!("{head}{tail}");
            let glob = workflow_glob(&pattern).unwrap();
            let want = glob.compile_matcher().is_match(&name);
            let m = WfMatcher::new(&pattern, glob);
            prop_assert!(!matches!(m, WfMatcher::Glob(_)));
            prop_assert_eq!(m.is_match(&name), want, "{} vs {:?}", pattern, name);
        }
    }
}
