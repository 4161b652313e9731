//! Permission lists and user keys: the two vocabularies every policy file shares.
//!
//! A permission list is what a key maps to (`"READ"`, `["READ", "pause", "!stop"]`).
//! Each name is a level (`READ`, `CONTROL` alias `EXECUTE`, `WRITE`, `ALL`) or one of
//! the 22 operations, optionally negated with `!`. A list compiles to two bitmasks,
//! positives and negatives; evaluation unions these across matching keys and then
//! takes `pos − neg` (Cylc's `expand_and_process_access_groups`), so a negation wins
//! whichever key it came from.
//!
//! A user key says who an entry is for: `*` (every authenticated user), a user name,
//! or `group:<name>`.

use crate::diag::{suggest, Diagnostic, Diagnostics, LineIndex, Pos};
use crate::doc::{self, Item, Value};
use std::fmt;
use steward_protocol::{OpSet, Operation};

/// Cylc's access groups plus Steward's `WRITE` and the `EXECUTE` alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Read,
    Control,
    Write,
    All,
}

impl Level {
    pub const NAMES: [(&'static str, Level); 5] = [
        ("READ", Level::Read),
        ("CONTROL", Level::Control),
        ("EXECUTE", Level::Control),
        ("WRITE", Level::Write),
        ("ALL", Level::All),
    ];

    pub fn ops(self) -> OpSet {
        match self {
            Level::Read => OpSet::READ_LEVEL,
            Level::Control => OpSet::CONTROL_LEVEL,
            Level::Write => OpSet::WRITE_LEVEL,
            Level::All => OpSet::ALL,
        }
    }

    fn parse(s: &str) -> Option<Level> {
        Self::NAMES.iter().find(|(n, _)| *n == s).map(|(_, l)| *l)
    }
}

/// Every name a permission list may hold, for "did you mean".
pub(crate) fn vocabulary() -> impl Iterator<Item = &'static str> {
    Level::NAMES
        .iter()
        .map(|(n, _)| *n)
        .chain(Operation::ALL.iter().map(|o| o.name()))
}

/// Cylc's GraphQL-to-Python conversion (`to_snake_case`): `ReleaseHoldPoint` →
/// `release_hold_point`. Used for hints in `check` and for `--op` on the CLI.
pub fn to_snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && c.is_uppercase() {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// One name in a permission list, as written, with what it means.
#[derive(Debug, Clone)]
pub struct PermItem {
    /// The name as written, including any `!`.
    pub text: String,
    pub negated: bool,
    /// The operations the name stands for; `None` for an unknown name (ignored).
    pub ops: Option<OpSet>,
    pub pos: Pos,
}

/// A compiled permission list: the items as written (for explanations) and the two
/// bitmasks evaluation uses.
#[derive(Debug, Clone)]
pub struct PermList {
    pub items: Vec<PermItem>,
    pub pos: OpSet,
    pub neg: OpSet,
    /// Where the value starts.
    pub at: Pos,
}

/// Positives and negatives, unioned across keys before normalizing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Bits {
    pub pos: OpSet,
    pub neg: OpSet,
}

impl Bits {
    #[inline]
    pub fn add(&mut self, l: &PermList) {
        self.pos = self.pos.union(l.pos);
        self.neg = self.neg.union(l.neg);
    }
    /// Cylc's expand-and-process: positives minus negatives.
    #[inline]
    pub fn normalize(self) -> OpSet {
        self.pos.minus(self.neg)
    }
}

/// Who an entry is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Any,
    User(String),
    Group(String),
}

impl Key {
    /// The key as written in a policy file.
    pub fn as_written(&self) -> String {
        match self {
            Key::Any => "*".to_string(),
            Key::User(u) => u.clone(),
            Key::Group(g) => format!("group:{g}"),
        }
    }

    /// Whether `s` (a user, or the owner) matches this key.
    pub fn matches(&self, name: &str, groups: &[String]) -> bool {
        match self {
            Key::Any => true,
            Key::User(u) => u == name,
            Key::Group(g) => groups.iter().any(|x| x == g),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_written())
    }
}

/// A name as it may appear in a key: no separators, globs or whitespace. POSIX user
/// names are narrower; LDAP names may hold `@` and `.`, so this is deliberately a
/// deny-list of characters that would make a key ambiguous.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            !c.is_whitespace()
                && !c.is_control()
                && !matches!(
                    c,
                    ':' | '*'
                        | '?'
                        | '!'
                        | '/'
                        | ','
                        | '"'
                        | '\''
                        | '\\'
                        | '['
                        | ']'
                        | '{'
                        | '}'
                        | '#'
                )
        })
}

/// Parse a user/owner key, reporting problems at `pos`.
pub(crate) fn parse_key(raw: &str, file: &str, pos: Pos, diags: &mut Diagnostics) -> Option<Key> {
    if raw == "*" {
        return Some(Key::Any);
    }
    if let Some(g) = raw.strip_prefix("group:") {
        if g.is_empty() {
            diags.push(Diagnostic::error(
                file,
                pos,
                "key \"group:\" has no group name; write \"group:<name>\", e.g. \"group:ops\"",
            ));
            return None;
        }
        if !valid_name(g) {
            diags.push(Diagnostic::error(
                file,
                pos,
                format!("key {raw:?}: {g:?} is not a valid group name (no whitespace, ':', '*', '!', '/', ',' or quotes)"),
            ));
            return None;
        }
        return Some(Key::Group(g.to_string()));
    }
    if raw.is_empty() {
        diags.push(Diagnostic::error(
            file,
            pos,
            "empty key; use a user name, \"group:<name>\" or \"*\"",
        ));
        return None;
    }
    if let Some((prefix, rest)) = raw.split_once(':') {
        let near_group = strsim::damerau_levenshtein(&prefix.to_lowercase(), "group") <= 2;
        let hint = if near_group {
            format!("; did you mean \"group:{rest}\"?")
        } else {
            "; a key is a user name, \"group:<name>\" or \"*\"".to_string()
        };
        diags.push(Diagnostic::error(
            file,
            pos,
            format!("key {raw:?} is not a user name or group{hint}"),
        ));
        return None;
    }
    if raw.contains(['*', '?', '[']) {
        diags.push(Diagnostic::error(
            file,
            pos,
            format!("key {raw:?}: patterns are not supported in user keys (as in Cylc); use \"*\" for every user or \"group:<name>\""),
        ));
        return None;
    }
    if !valid_name(raw) {
        diags.push(Diagnostic::error(
            file,
            pos,
            format!("key {raw:?} is not a valid user name (no whitespace, ':', '!', '/', ',' or quotes)"),
        ));
        return None;
    }
    Some(Key::User(raw.to_string()))
}

/// Parsing context shared by the site and user parsers.
pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    pub src: &'a str,
    pub lines: LineIndex<'a>,
    pub diags: Diagnostics,
}

impl<'a> Ctx<'a> {
    pub fn new(file: &'a str, src: &'a str) -> Self {
        Ctx {
            file,
            src,
            lines: LineIndex::new(src),
            diags: Diagnostics::new(),
        }
    }
    /// Where a key or value starts.
    pub fn at<T>(&self, x: &doc::Spanned<T>) -> Pos {
        self.lines.pos(x.span().start)
    }
    pub fn error(&mut self, pos: Pos, msg: impl Into<String>) {
        self.diags.push(Diagnostic::error(self.file, pos, msg));
    }
    pub fn warning(&mut self, pos: Pos, msg: impl Into<String>) {
        self.diags.push(Diagnostic::warning(self.file, pos, msg));
    }

    /// A string or list of strings → a compiled permission list. `what` names the
    /// setting for messages (`limit`, `grant for "alice"`).
    pub fn perm_list(&mut self, item: &Item, what: &dyn Fn() -> String) -> Option<PermList> {
        let at = self.at(item);
        let mut list = PermList {
            items: Vec::new(),
            pos: OpSet::EMPTY,
            neg: OpSet::EMPTY,
            at,
        };
        let mut ok = true;
        match item.get_ref() {
            Value::String(s) => ok &= self.perm_name(s, at, what, &mut list),
            Value::Array(arr) if !doc::is_array_of_tables(item) => {
                if arr.is_empty() {
                    self.error(
                        at,
                        format!("{w}: an empty list [] is not allowed (its meaning is unclear next to site defaults); use \"!ALL\" to remove all permissions", w = what()),
                    );
                    return None;
                }
                list.items.reserve_exact(arr.len());
                for v in arr.iter() {
                    let p = self.at(v);
                    match v.get_ref() {
                        Value::String(s) => ok &= self.perm_name(s, p, what, &mut list),
                        _ => {
                            self.error(
                                p,
                                format!(
                                    "{w}: expected an operation or level name (a string), found {}",
                                    doc::describe(v),
                                    w = what()
                                ),
                            );
                            ok = false;
                        }
                    }
                }
            }
            _ => {
                self.error(
                    at,
                    format!(
                        "{w}: expected an operation or level name, or a list of them, found {}",
                        doc::describe(item),
                        w = what()
                    ),
                );
                return None;
            }
        }
        ok.then_some(list)
    }

    fn perm_name(
        &mut self,
        text: &str,
        pos: Pos,
        what: &dyn Fn() -> String,
        list: &mut PermList,
    ) -> bool {
        let (negated, name) = match text.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if name.is_empty() {
            self.error(
                pos,
                if negated {
                    format!("{w}: \"!\" must be followed by an operation or level, e.g. \"!stop\" or \"!ALL\"", w = what())
                } else {
                    format!("{w}: empty name; use \"!ALL\" to remove all permissions", w = what())
                },
            );
            return false;
        }
        if name.starts_with('!') {
            self.error(
                pos,
                format!(
                    "{w}: {text:?} negates twice; write a single \"!\"",
                    w = what()
                ),
            );
            return false;
        }
        let trimmed = name.trim();
        let ops = if let Some(level) = Level::parse(name) {
            Some(level.ops())
        } else if let Ok(op) = name.parse::<Operation>() {
            Some(OpSet::single(op))
        } else {
            None
        };
        if ops.is_none() {
            let bang = if negated { "!" } else { "" };
            let hint = if name.contains([',', ' '])
                && trimmed.split([',', ' ']).filter(|p| !p.is_empty()).count() > 1
            {
                let parts: Vec<String> = trimmed
                    .split([',', ' '])
                    .filter(|p| !p.is_empty())
                    .map(|p| format!("{:?}", p.trim()))
                    .collect();
                format!(
                    "; this looks like several names in one string: write a list [{}]",
                    parts.join(", ")
                )
            } else if let Some(s) = suggest(name, vocabulary()) {
                format!("; did you mean \"{bang}{s}\"?")
            } else {
                let snake = to_snake_case(name);
                if snake.parse::<Operation>().is_ok() {
                    format!("; did you mean \"{bang}{snake}\"?")
                } else {
                    String::new()
                }
            };
            let effect = if negated {
                " (ignored, as Cylc does: this negation removes nothing)"
            } else {
                " (ignored, as Cylc does)"
            };
            self.warning(
                pos,
                format!(
                    "{w}: unknown operation or level {text:?}{effect}{hint}",
                    w = what()
                ),
            );
        }
        if let Some(ops) = ops {
            if negated {
                list.neg = list.neg.union(ops);
            } else {
                list.pos = list.pos.union(ops);
            }
        }
        list.items.push(PermItem {
            text: text.to_string(),
            negated,
            ops,
            pos,
        });
        true
    }

    /// Report a key not in `allowed`, with a suggestion.
    pub fn unknown_key(&mut self, key: &str, pos: Pos, allowed: &[&str], context: &str) {
        let hint = match suggest(key, allowed.iter().copied()) {
            Some(s) => format!("; did you mean {s:?}?"),
            None => format!(
                "; expected {}",
                allowed
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        };
        self.error(pos, format!("unknown key {key:?} in {context}{hint}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_like_cylc() {
        assert_eq!(to_snake_case("ReleaseHoldPoint"), "release_hold_point");
        assert_eq!(to_snake_case("release_hold_point"), "release_hold_point");
        assert_eq!(to_snake_case("RELeaseHOLdPoint"), "r_e_lease_h_o_ld_point");
        assert_eq!(to_snake_case("Release_Hold_Point"), "release__hold__point");
    }

    #[test]
    fn keys() {
        let mut d = Diagnostics::new();
        let p = Pos { line: 1, col: 1 };
        assert_eq!(parse_key("*", "f", p, &mut d), Some(Key::Any));
        assert_eq!(
            parse_key("group:ops", "f", p, &mut d),
            Some(Key::Group("ops".into()))
        );
        assert_eq!(
            parse_key("alice", "f", p, &mut d),
            Some(Key::User("alice".into()))
        );
        assert!(d.is_empty());
        assert_eq!(parse_key("group:", "f", p, &mut d), None);
        assert_eq!(parse_key("grp:ops", "f", p, &mut d), None);
        assert!(
            d[1].message.contains("did you mean \"group:ops\""),
            "{}",
            d[1]
        );
        assert_eq!(parse_key("ali*", "f", p, &mut d), None);
        assert_eq!(parse_key("", "f", p, &mut d), None);
        assert_eq!(parse_key("a b", "f", p, &mut d), None);
        assert_eq!(d.len(), 5);
    }
}
