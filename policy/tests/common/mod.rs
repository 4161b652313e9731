//! Shared by the integration tests: the case-file format of `cylc_cases/` and
//! `steward_cases/`, and random policy generation for property tests.
#![allow(dead_code)]

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
pub struct CaseFile {
    pub source: String,
    #[serde(default)]
    pub scenario: Vec<Scenario>,
}

#[derive(Debug, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub site: String,
    pub user_policy: Option<String>,
    #[serde(default)]
    pub case: Vec<Case>,
    pub expect_error: Option<ExpectError>,
}

#[derive(Debug, Deserialize)]
pub struct Case {
    pub id: String,
    pub owner: String,
    #[serde(default)]
    pub owner_groups: Vec<String>,
    pub user: String,
    #[serde(default)]
    pub user_groups: Vec<String>,
    pub workflow: Option<String>,
    pub expected: Vec<String>,
    #[serde(default)]
    pub derived: bool,
}

#[derive(Debug, Deserialize)]
pub struct ExpectError {
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub contains: String,
}

pub fn case_files() -> Vec<(PathBuf, CaseFile)> {
    // This module is also compiled into compare/ (the casbin oracle), one level over.
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = if here.join("tests/cylc_cases").is_dir() {
        here.join("tests")
    } else {
        here.join("../policy/tests")
    };
    let mut out = Vec::new();
    for dir in ["cylc_cases", "steward_cases"] {
        let mut paths: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        for p in paths {
            let text = std::fs::read_to_string(&p).unwrap();
            let cf: CaseFile =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            out.push((p, cf));
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// Random policies for property tests: a small universe so keys collide often.

use proptest::prelude::*;
use std::collections::BTreeSet;
use steward_policy::{Operation, Subject};

pub const USERS: &[&str] = &["ann", "bob", "cat", "dan", "eve"];
pub const GROUPS: &[&str] = &["ops", "sci", "atm", "adm"];
pub const PATTERNS: &[&str] = &["a/*", "a/**", "b/run?", "*", "**", "a/{x,y}", "c", "b/*"];
pub const WORKFLOWS: &[&str] = &["a/x", "a/x/y", "b/run1", "c", "a/y", "b/other", "d"];
/// Names a list may hold: levels, operations, negations, and unknown names.
pub const NAMES: &[&str] = &[
    "READ",
    "CONTROL",
    "EXECUTE",
    "WRITE",
    "ALL",
    "!READ",
    "!CONTROL",
    "!WRITE",
    "!ALL",
    "read",
    "broadcast",
    "stop",
    "pause",
    "play",
    "clean",
    "trigger",
    "!stop",
    "!pause",
    "!read",
    "!broadcast",
    "!clean",
    "edit",
    "!edit",
    "Stop",
];
pub const POSITIVE_NAMES: &[&str] = &[
    "READ",
    "CONTROL",
    "EXECUTE",
    "WRITE",
    "ALL",
    "read",
    "broadcast",
    "stop",
    "pause",
    "play",
    "clean",
    "trigger",
];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum GKey {
    Any,
    User(&'static str),
    Group(&'static str),
}

impl GKey {
    pub fn toml(&self) -> String {
        match self {
            GKey::Any => "\"*\"".into(),
            GKey::User(u) => format!("\"{u}\""),
            GKey::Group(g) => format!("\"group:{g}\""),
        }
    }
    pub fn matches(&self, s: &Subject) -> bool {
        match self {
            GKey::Any => true,
            GKey::User(u) => s.name == *u,
            GKey::Group(g) => s.groups.iter().any(|x| x == g),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GSiteEntry {
    pub owner: GKey,
    pub user: GKey,
    pub default: Option<Vec<&'static str>>,
    pub limit: Option<Vec<&'static str>>,
}

#[derive(Debug, Clone)]
pub struct GWorkflow {
    pub pattern: &'static str,
    pub grants: Vec<(GKey, Vec<&'static str>)>,
}

#[derive(Debug, Clone)]
pub struct GUser {
    pub grants: Vec<(GKey, Vec<&'static str>)>,
    pub workflows: Vec<GWorkflow>,
}

#[derive(Debug, Clone)]
pub struct World {
    pub site: Vec<GSiteEntry>,
    pub user: Option<GUser>,
    pub owner: Subject,
    pub actor: Subject,
    pub workflow: &'static str,
}

fn list_toml(l: &[&str]) -> String {
    let items: Vec<String> = l.iter().map(|n| format!("\"{n}\"")).collect();
    format!("[{}]", items.join(", "))
}

impl World {
    pub fn site_toml(&self) -> String {
        let mut s = String::new();
        for e in &self.site {
            s += &format!("[owners.{}.{}]\n", e.owner.toml(), e.user.toml());
            if let Some(d) = &e.default {
                s += &format!("default = {}\n", list_toml(d));
            }
            if let Some(l) = &e.limit {
                s += &format!("limit = {}\n", list_toml(l));
            }
            s += "\n";
        }
        s
    }
    pub fn user_toml(&self) -> Option<String> {
        let u = self.user.as_ref()?;
        let mut s = String::from("[grants]\n");
        for (k, l) in &u.grants {
            s += &format!("{} = {}\n", k.toml(), list_toml(l));
        }
        for w in &u.workflows {
            s += &format!(
                "\n[[workflows]]\nmatch = \"{}\"\n[workflows.grants]\n",
                w.pattern
            );
            for (k, l) in &w.grants {
                s += &format!("{} = {}\n", k.toml(), list_toml(l));
            }
        }
        Some(s)
    }
}

pub fn key() -> impl Strategy<Value = GKey> {
    prop_oneof![
        1 => Just(GKey::Any),
        2 => prop::sample::select(USERS).prop_map(GKey::User),
        2 => prop::sample::select(GROUPS).prop_map(GKey::Group),
    ]
}

pub fn list() -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(prop::sample::select(NAMES), 1..4)
}

fn dedup_keys<T>(v: Vec<(GKey, T)>) -> Vec<(GKey, T)> {
    let mut seen = BTreeSet::new();
    v.into_iter()
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect()
}

pub fn site() -> impl Strategy<Value = Vec<GSiteEntry>> {
    prop::collection::vec(
        (
            key(),
            key(),
            prop::option::of(list()),
            prop::option::of(list()),
        ),
        0..7,
    )
    .prop_map(|v| {
        let mut seen = BTreeSet::new();
        v.into_iter()
            .filter(|(o, u, _, _)| seen.insert((o.clone(), u.clone())))
            .map(|(owner, user, default, limit)| GSiteEntry {
                owner,
                user,
                default,
                limit,
            })
            .collect()
    })
}

pub fn user() -> impl Strategy<Value = Option<GUser>> {
    let grants = || prop::collection::vec((key(), list()), 0..5).prop_map(dedup_keys);
    let wf = (
        prop::sample::select(PATTERNS),
        prop::collection::vec((key(), list()), 1..3).prop_map(dedup_keys),
    )
        .prop_map(|(pattern, grants)| GWorkflow { pattern, grants });
    prop::option::weighted(
        0.85,
        (grants(), prop::collection::vec(wf, 0..3))
            .prop_map(|(grants, workflows)| GUser { grants, workflows }),
    )
}

pub fn subject() -> impl Strategy<Value = Subject> {
    (
        prop::sample::select(USERS),
        prop::sample::subsequence(GROUPS, 0..=3),
    )
        .prop_map(|(n, g)| Subject::new(n, g))
}

pub fn world() -> impl Strategy<Value = World> {
    (
        site(),
        user(),
        subject(),
        subject(),
        prop::sample::select(WORKFLOWS),
    )
        .prop_map(|(site, user, owner, actor, workflow)| World {
            site,
            user,
            owner,
            actor,
            workflow,
        })
}

// ---------------------------------------------------------------------------------
// Reference model: Cylc's algorithm (authorise.py) with sets of strings, as written
// there, except that several owner entries for one user key are unioned (the
// documented behaviour) — deliberately naive: no index, no bitmasks.

const CONTROL: &[&str] = &[
    "clean",
    "ext_trigger",
    "hold",
    "kill",
    "message",
    "pause",
    "play",
    "poll",
    "release",
    "release_hold_point",
    "reload",
    "remove",
    "resume",
    "scan",
    "set",
    "set_graph_window_extent",
    "set_hold_point",
    "set_verbosity",
    "stop",
    "trigger",
];

fn level(name: &str) -> Option<Vec<&'static str>> {
    match name {
        "READ" => Some(vec!["read"]),
        "CONTROL" | "EXECUTE" => Some(CONTROL.to_vec()),
        "WRITE" => Some(vec!["broadcast"]),
        "ALL" => Some(
            CONTROL
                .iter()
                .copied()
                .chain(["read", "broadcast"])
                .collect(),
        ),
        _ => None,
    }
}

/// Cylc's expand_and_process_access_groups.
pub fn expand_and_process(set: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for p in set {
        match p.strip_prefix('!') {
            Some(n) => match level(n) {
                Some(ops) => out.extend(ops.iter().map(|o| format!("!{o}"))),
                None => {
                    out.insert(p.clone());
                }
            },
            None => match level(p) {
                Some(ops) => out.extend(ops.iter().map(|o| o.to_string())),
                None => {
                    out.insert(p.clone());
                }
            },
        }
    }
    let negs: Vec<String> = out
        .iter()
        .filter_map(|p| p.strip_prefix('!').map(String::from))
        .collect();
    for n in negs {
        out.remove(&n);
        out.remove(&format!("!{n}"));
    }
    out
}

pub fn reference(w: &World) -> BTreeSet<String> {
    let all: BTreeSet<String> = Operation::ALL
        .iter()
        .map(|o| o.name().to_string())
        .collect();
    if w.actor.name == w.owner.name {
        return all;
    }
    let mut limits = BTreeSet::new();
    let mut defaults = BTreeSet::new();
    for e in &w.site {
        if e.owner.matches(&w.owner) && e.user.matches(&w.actor) {
            let default: Vec<&str> = e.default.clone().unwrap_or_default();
            let limit = e.limit.clone().unwrap_or_else(|| default.clone());
            limits.extend(limit.iter().map(|s| s.to_string()));
            defaults.extend(default.iter().map(|s| s.to_string()));
        }
    }
    let mut grants = BTreeSet::new();
    let mut matched = false;
    if let Some(u) = &w.user {
        for wf in &u.workflows {
            let glob = globset::GlobBuilder::new(wf.pattern)
                .literal_separator(true)
                .build()
                .unwrap()
                .compile_matcher();
            if glob.is_match(w.workflow) {
                for (k, l) in &wf.grants {
                    if k.matches(&w.actor) {
                        grants.extend(l.iter().map(|s| s.to_string()));
                        matched = true;
                    }
                }
            }
        }
        if !matched {
            for (k, l) in &u.grants {
                if k.matches(&w.actor) {
                    grants.extend(l.iter().map(|s| s.to_string()));
                    matched = true;
                }
            }
        }
    }
    if !matched {
        grants = defaults;
    }
    let g = expand_and_process(&grants);
    let l = expand_and_process(&limits);
    g.intersection(&l)
        .filter(|o| all.contains(*o))
        .cloned()
        .collect()
}
