//! `steward policy import --cylc FILE`: carry a Cylc UI Server authorization
//! (`c.CylcUIServer.site_authorization` / `user_authorization` in a
//! `jupyter_config.py`) over to Steward's TOML, and say what could not be carried.
//!
//! A `jupyter_config.py` is Python, and Steward will not run it: the two assignments
//! are read as Python *literals* (strings in either quote, lists, tuples, dicts,
//! `True`/`False`/`None`, comments, trailing commas) by the small parser below. Any
//! other expression (a call, a variable, an f-string, `+`) is reported with its
//! line:col and that assignment is not carried over; so is any other statement that
//! touches the authorization (`…site_authorization["x"] = …`, `.update(…)`).
//!
//! The semantics are the same on both sides (Steward's policy is Cylc's, extended),
//! so entries map one to one: site `{owner: {user: {default, limit}}}` becomes
//! `[owners."owner"."user"]`, user `{user: perms}` becomes `[grants]`. Names Steward
//! does not have are reported: `reinstall_reload`/`reinstall_restart` are carried as
//! `reload`/`play` (how Steward decides those mutations), unknown names are dropped.
//!
//! Hand-written because no maintained Rust crate parses Python literals without an
//! interpreter (`literal_eval` is Python's own); the grammar is a dozen rules.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use steward_protocol::Operation;

/// A Python literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Py {
    Str(String),
    Bool(bool),
    None,
    List(Vec<Spanned>),
    Dict(Vec<(Spanned, Spanned)>),
}

/// A value with the line:col (1-based) where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    pub line: usize,
    pub col: usize,
    pub value: Py,
}

/// A problem at a position: what the literal parser or the import could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

/// Deepest nesting the literal parser follows (authorization is 3 levels deep).
const MAX_DEPTH: usize = 32;

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str, pos: usize) -> Self {
        Parser {
            src: src.as_bytes(),
            pos,
            depth: 0,
        }
    }

    fn line_col(&self, pos: usize) -> (usize, usize) {
        let before = &self.src[..pos.min(self.src.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let col = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        (line, col)
    }

    fn problem(&self, pos: usize, message: impl Into<String>) -> Problem {
        let (line, col) = self.line_col(pos);
        Problem {
            line,
            col,
            message: message.into(),
        }
    }

    /// Skips spaces, newlines, comments and backslash-newline continuations.
    fn skip(&mut self) {
        while let Some(&b) = self.src.get(self.pos) {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'\\' if self.src.get(self.pos + 1) == Some(&b'\n') => self.pos += 2,
                b'#' => {
                    while self.src.get(self.pos).is_some_and(|&c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn value(&mut self) -> Result<Spanned, Problem> {
        self.skip();
        let start = self.pos;
        let (line, col) = self.line_col(start);
        let Some(&b) = self.src.get(self.pos) else {
            return Err(self.problem(start, "expected a value, found the end of the file"));
        };
        let value = match b {
            b'"' | b'\'' => Py::Str(self.string()?),
            b'[' | b'(' => {
                let close = if b == b'[' { b']' } else { b')' };
                self.enter(start)?;
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip();
                    if self.src.get(self.pos) == Some(&close) {
                        self.pos += 1;
                        break;
                    }
                    items.push(self.value()?);
                    self.skip();
                    match self.src.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(&c) if c == close => {}
                        _ => {
                            return Err(self.problem(
                                self.pos,
                                format!("expected ',' or '{}' in a list", close as char),
                            ))
                        }
                    }
                }
                self.depth -= 1;
                Py::List(items)
            }
            b'{' => {
                self.enter(start)?;
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip();
                    if self.src.get(self.pos) == Some(&b'}') {
                        self.pos += 1;
                        break;
                    }
                    let k = self.value()?;
                    self.skip();
                    if self.src.get(self.pos) != Some(&b':') {
                        return Err(self.problem(self.pos, "expected ':' after a dict key"));
                    }
                    self.pos += 1;
                    let v = self.value()?;
                    items.push((k, v));
                    self.skip();
                    match self.src.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {}
                        _ => return Err(self.problem(self.pos, "expected ',' or '}' in a dict")),
                    }
                }
                self.depth -= 1;
                Py::Dict(items)
            }
            _ => {
                let word: String = self.src[self.pos..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                    .map(|&c| c as char)
                    .collect();
                let v = match word.as_str() {
                    "True" => Py::Bool(true),
                    "False" => Py::Bool(false),
                    "None" => Py::None,
                    "" => {
                        return Err(self.problem(
                            start,
                            format!("{:?} does not start a Python literal", char_at(self.src, start)),
                        ))
                    }
                    w => {
                        return Err(self.problem(
                            start,
                            format!("{w:?} is not a literal (a name, number or call): Steward does not run Python"),
                        ))
                    }
                };
                self.pos += word.len();
                v
            }
        };
        // A literal followed by an operator or a call is an expression.
        let after = self.pos;
        self.skip_inline();
        if let Some(&c) = self.src.get(self.pos) {
            // Operators, attribute access, calls, subscripts, implicit concatenation.
            if matches!(
                c,
                b'+' | b'-' | b'*' | b'/' | b'%' | b'|' | b'&' | b'.' | b'(' | b'[' | b'"' | b'\''
            ) {
                return Err(self.problem(
                    self.pos,
                    "an expression, not a literal: Steward does not run Python",
                ));
            }
        }
        self.pos = after;
        Ok(Spanned { line, col, value })
    }

    fn skip_inline(&mut self) {
        while matches!(self.src.get(self.pos), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn enter(&mut self, at: usize) -> Result<(), Problem> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.problem(at, format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn string(&mut self) -> Result<String, Problem> {
        let start = self.pos;
        let q = self.src[self.pos];
        if self.src[self.pos..].starts_with(&[q, q, q]) {
            return Err(self.problem(start, "triple-quoted strings are not supported here"));
        }
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.src.get(self.pos) else {
                return Err(self.problem(start, "unterminated string"));
            };
            self.pos += 1;
            match c {
                b'\n' => return Err(self.problem(start, "unterminated string")),
                b'\\' => {
                    let Some(&e) = self.src.get(self.pos) else {
                        return Err(self.problem(start, "unterminated string"));
                    };
                    self.pos += 1;
                    match e {
                        b'\\' | b'\'' | b'"' => out.push(e),
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'\n' => {}
                        _ => {
                            return Err(self.problem(
                                self.pos - 2,
                                format!("the escape \\{} is not supported", e as char),
                            ))
                        }
                    }
                }
                c if c == q => break,
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.problem(start, "the string is not UTF-8"))
    }
}

fn char_at(src: &[u8], pos: usize) -> char {
    String::from_utf8_lossy(&src[pos..src.len().min(pos + 4)])
        .chars()
        .next()
        .unwrap_or(' ')
}

/// Parses one Python literal starting at byte `pos` of `src`; returns it and the byte
/// offset after it.
pub fn parse_literal(src: &str, pos: usize) -> Result<(Spanned, usize), Problem> {
    let mut p = Parser::new(src, pos);
    let v = p.value()?;
    Ok((v, p.pos))
}

/// What an import produced: Steward's site and user TOML (either may be absent) and
/// everything it could not carry over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    pub site_toml: Option<String>,
    pub user_toml: Option<String>,
    pub report: Vec<Problem>,
}

const SITE: &str = "site_authorization";
const USER: &str = "user_authorization";

/// Reads a `jupyter_config.py`'s Cylc authorization. `origin` names the file in the
/// generated TOML's header comment.
pub fn import(src: &str, origin: &str) -> Imported {
    let mut out = Imported::default();
    let mut offset = 0;
    for line in src.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') || !trimmed.contains("_authorization") {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let lineno = src[..start].matches('\n').count() + 1;
        let which = [SITE, USER].into_iter().find(|w| {
            trimmed
                .strip_prefix("c.CylcUIServer.")
                .and_then(|r| r.strip_prefix(w))
                .is_some_and(|r| {
                    r.trim_start().starts_with('=') && !r.trim_start().starts_with("==")
                })
        });
        let Some(which) = which else {
            out.report.push(Problem {
                line: lineno,
                col: indent + 1,
                message: "a statement touching the authorization that is not `c.CylcUIServer.<site|user>_authorization = {literal}`: not carried over".into(),
            });
            continue;
        };
        if indent > 0 {
            out.report.push(Problem {
                line: lineno,
                col: 1,
                message: format!("{which} is assigned inside a block (an if, a function): Steward cannot tell whether it applies; not carried over"),
            });
            continue;
        }
        let eq = start + line.find('=').unwrap_or(0) + 1;
        match parse_literal(src, eq) {
            Err(p) => out.report.push(Problem {
                line: p.line,
                col: p.col,
                message: format!("{which} not carried over: {}", p.message),
            }),
            Ok((v, _)) => {
                let toml = if which == SITE {
                    site_toml(&v, origin, &mut out.report)
                } else {
                    user_toml(&v, origin, &mut out.report)
                };
                let slot = if which == SITE {
                    &mut out.site_toml
                } else {
                    &mut out.user_toml
                };
                if slot.is_some() {
                    out.report.push(Problem {
                        line: lineno,
                        col: 1,
                        message: format!("{which} is assigned again: the last assignment is carried over, as Python would"),
                    });
                }
                *slot = toml;
            }
        }
    }
    out
}

fn note(report: &mut Vec<Problem>, at: &Spanned, message: impl Into<String>) {
    report.push(Problem {
        line: at.line,
        col: at.col,
        message: message.into(),
    });
}

fn q(s: &str) -> String {
    // A JSON string is a TOML basic string (same escapes for what JSON emits).
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// A Cylc permission list (a string or a list of strings) in Steward's names, or
/// `None` (reported) when nothing usable remains.
fn perms(v: &Spanned, what: &str, report: &mut Vec<Problem>) -> Option<Vec<String>> {
    let items: Vec<&Spanned> = match &v.value {
        Py::Str(_) => vec![v],
        Py::List(l) => l.iter().collect(),
        _ => {
            note(
                report,
                v,
                format!("{what}: expected a list of permissions; not carried over"),
            );
            return None;
        }
    };
    if items.is_empty() {
        note(
            report,
            v,
            format!("{what}: [] is an error in Cylc too (use [\"!ALL\"]); not carried over"),
        );
        return None;
    }
    let mut out = Vec::new();
    for item in items {
        let Py::Str(s) = &item.value else {
            note(
                report,
                item,
                format!("{what}: a permission must be a string; dropped"),
            );
            continue;
        };
        let (neg, name) = match s.strip_prefix('!') {
            Some(n) => ("!", n),
            None => ("", s.as_str()),
        };
        let mapped = match name {
            "READ" | "CONTROL" | "ALL" => name.to_string(),
            "reinstall_reload" | "reinstall_restart" => {
                let to = if name == "reinstall_reload" {
                    "reload"
                } else {
                    "play"
                };
                note(report, item, format!("{what}: {s:?} carried over as \"{neg}{to}\" (Steward decides {name} as {to}, which also covers {to} itself)"));
                to.to_string()
            }
            n if n.parse::<Operation>().is_ok() => n.to_string(),
            n => {
                let snake = crate::to_snake_case(n);
                if snake.parse::<Operation>().is_ok() {
                    note(
                        report,
                        item,
                        format!("{what}: {s:?} carried over as \"{neg}{snake}\""),
                    );
                    snake
                } else {
                    note(
                        report,
                        item,
                        format!("{what}: unknown permission {s:?}; dropped (Cylc ignores it too)"),
                    );
                    continue;
                }
            }
        };
        let p = format!("{neg}{mapped}");
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        note(
            report,
            v,
            format!("{what}: no permission left; not carried over"),
        );
        return None;
    }
    Some(out)
}

fn toml_list(l: &[String]) -> String {
    format!(
        "[{}]",
        l.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
    )
}

fn key_ok(k: &Spanned, what: &str, report: &mut Vec<Problem>) -> Option<String> {
    match &k.value {
        Py::Str(s) if !s.is_empty() => Some(s.clone()),
        _ => {
            note(report, k, format!("{what}: a key must be a non-empty string (a user, \"group:name\" or \"*\"); not carried over"));
            None
        }
    }
}

fn site_toml(v: &Spanned, origin: &str, report: &mut Vec<Problem>) -> Option<String> {
    let Py::Dict(owners) = &v.value else {
        note(
            report,
            v,
            "site_authorization must be a dict {owner: {user: {default, limit}}}; not carried over",
        );
        return None;
    };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Steward site policy imported from {origin} (c.CylcUIServer.site_authorization)."
    );
    let mut entries = 0;
    for (ok, ov) in owners {
        let Some(owner) = key_ok(ok, "site_authorization owner", report) else {
            continue;
        };
        let Py::Dict(users) = &ov.value else {
            note(
                report,
                ov,
                format!("site_authorization[{owner:?}] must be a dict of users; not carried over"),
            );
            continue;
        };
        for (uk, uv) in users {
            let Some(user) = key_ok(uk, "site_authorization user", report) else {
                continue;
            };
            let what = format!("site_authorization[{owner:?}][{user:?}]");
            let Py::Dict(fields) = &uv.value else {
                note(
                    report,
                    uv,
                    format!(
                        "{what} must be a dict with \"default\" and/or \"limit\"; not carried over"
                    ),
                );
                continue;
            };
            let mut default = None;
            let mut limit = None;
            for (fk, fv) in fields {
                match &fk.value {
                    Py::Str(f) if f == "default" => {
                        default = perms(fv, &format!("{what}[\"default\"]"), report)
                    }
                    Py::Str(f) if f == "limit" => {
                        limit = perms(fv, &format!("{what}[\"limit\"]"), report)
                    }
                    _ => note(
                        report,
                        fk,
                        format!(
                            "{what}: only \"default\" and \"limit\" are read; this key is dropped"
                        ),
                    ),
                }
            }
            if default.is_none() && limit.is_none() {
                note(report, uv, format!("{what}: neither default nor limit could be carried; entry not carried over"));
                continue;
            }
            if default.is_none() {
                // Cylc: a missing default grants nothing by default.
                default = Some(vec!["!ALL".to_string()]);
            }
            let _ = writeln!(t, "\n[owners.{}.{}]", q(&owner), q(&user));
            if let Some(d) = &default {
                let _ = writeln!(t, "default = {}", toml_list(d));
            }
            if let Some(l) = &limit {
                let _ = writeln!(t, "limit = {}", toml_list(l));
            }
            entries += 1;
        }
    }
    (entries > 0).then_some(t)
}

fn user_toml(v: &Spanned, origin: &str, report: &mut Vec<Problem>) -> Option<String> {
    let Py::Dict(users) = &v.value else {
        note(
            report,
            v,
            "user_authorization must be a dict {user: [permissions]}; not carried over",
        );
        return None;
    };
    let mut t = String::new();
    let _ = writeln!(t, "# Steward user policy imported from {origin} (c.CylcUIServer.user_authorization).\n[grants]");
    let mut entries = 0;
    for (uk, uv) in users {
        let Some(user) = key_ok(uk, "user_authorization", report) else {
            continue;
        };
        if let Some(p) = perms(uv, &format!("user_authorization[{user:?}]"), report) {
            let _ = writeln!(t, "{} = {}", q(&user), toml_list(&p));
            entries += 1;
        }
    }
    (entries > 0).then_some(t)
}

/// `steward policy import`.
#[derive(clap::Args, Debug, Clone)]
pub struct ImportArgs {
    /// A Cylc UI Server `jupyter_config.py` holding `c.CylcUIServer.site_authorization`
    /// and/or `user_authorization`.
    #[arg(long, value_name = "FILE")]
    pub cylc: PathBuf,
    /// Write the site policy here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub site_out: Option<PathBuf>,
    /// Write the user policy (the owner's `~/.steward/policy.toml`) here instead of
    /// standard output.
    #[arg(long, value_name = "FILE")]
    pub user_out: Option<PathBuf>,
}

/// Exit codes: 0 everything carried over; 1 written, but the report (on stderr) lists
/// what was not; 2 the file could not be read or an output not written.
pub fn run(a: &ImportArgs) -> i32 {
    let src = match std::fs::read_to_string(&a.cylc) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", a.cylc.display());
            return 2;
        }
    };
    let origin = a.cylc.display().to_string();
    let imported = import(&src, &origin);
    let mut code = 0;
    for (toml, out, kind) in [
        (&imported.site_toml, &a.site_out, "site"),
        (&imported.user_toml, &a.user_out, "user"),
    ] {
        let Some(toml) = toml else { continue };
        match out {
            Some(path) => {
                if let Err(e) = write_new(path, toml) {
                    eprintln!(
                        "error: cannot write the {kind} policy to {}: {e}",
                        path.display()
                    );
                    code = 2;
                }
            }
            None => println!("{toml}"),
        }
    }
    if imported.site_toml.is_none() && imported.user_toml.is_none() {
        eprintln!("{origin}: no c.CylcUIServer.site_authorization or user_authorization could be carried over");
        code = code.max(1);
    }
    for p in &imported.report {
        eprintln!("{origin}:{p}");
    }
    if !imported.report.is_empty() {
        code = code.max(1);
    }
    code
}

/// Writes a new file (never over an existing policy: a migration must not clobber one).
fn write_new(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(content.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests;
