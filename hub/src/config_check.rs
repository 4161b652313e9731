//! `steward config check FILE…`: every problem in a hub configuration file as
//! file:line:col, in the same format and with the same exit codes as `steward policy
//! check` (0 clean, 1 errors; clap's 2 for a bad command line).
//!
//! It owns reporting only. What a file means stays with [`HubConfig::parse`], which the
//! check runs last, so the check can never pass a file the hub would refuse. Before
//! that it walks the whole document against the shipped example (`etc/steward.toml`,
//! whose commented-out settings are switched on for this), so that every unknown key
//! and every value of the wrong kind is reported at once, not only the first; a unit
//! test keeps that example equal to the keys the configuration structs accept.

use crate::config::{ConfigError, HubConfig};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use steward_policy::{Diagnostic, Diagnostics, Pos};
use toml_spanned::de::{DeTable, DeValue};
use toml_spanned::Spanned;

/// The shipped, commented example configuration.
pub const EXAMPLE: &str = include_str!("../../etc/steward.toml");

/// Tables whose keys are names the site chooses (group names), not settings.
const FREE_FORM: &[&str] = &[
    "elevation.group_secs",
    "singleuser.env",
    "spawner.profile_backends",
    "spawner.ssh.hosts",
];

#[derive(clap::Subcommand, Debug, Clone)]
pub enum ConfigCommand {
    /// Check hub configuration files: unknown keys, wrong types and values out of
    /// range, each as file:line:col. Exit status 1 when any file has an error.
    Check(CheckArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct CheckArgs {
    /// Configuration files to check (e.g. /etc/steward/steward.toml).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print diagnostics as a JSON array instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// Runs one command; returns the process exit code.
pub fn run(cmd: ConfigCommand) -> i32 {
    let ConfigCommand::Check(args) = cmd;
    let mut all = Diagnostics::new();
    let mut summaries = Vec::new();
    for path in &args.files {
        let name = path.display().to_string();
        let diags = match std::fs::read_to_string(path) {
            Ok(src) => check_source(&src, path),
            Err(e) => Diagnostic::error(&name, Pos::FILE, format!("cannot read: {e}")).into(),
        };
        let errors = diags.errors().count();
        summaries.push(if errors == 0 {
            format!("{name}: hub configuration OK")
        } else {
            format!(
                "{name}: hub configuration has {errors} error{}",
                if errors == 1 { "" } else { "s" }
            )
        });
        all.extend(diags);
    }
    if args.json {
        match serde_json::to_string_pretty(&all) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("error: {e}"),
        }
    } else {
        for d in all.iter() {
            println!("{d}");
        }
        for s in &summaries {
            eprintln!("{s}");
        }
    }
    i32::from(all.has_errors())
}

/// Every problem in one configuration text; `path` names it in the diagnostics.
pub fn check_source(src: &str, path: &Path) -> Diagnostics {
    let name = path.display().to_string();
    let lines = Lines::new(src);
    let mut out = Diagnostics::new();
    let (doc, errors) = DeTable::parse_recoverable(src);
    if let Some(e) = errors
        .iter()
        .min_by_key(|e| e.span().map_or(usize::MAX, |s| s.start))
    {
        let msg = e.message().trim().replace('\n', "; ");
        out.push(Diagnostic::error(&name, lines.at(e.span()), msg));
        return out;
    }
    let doc = doc.into_inner();
    walk(&doc, &example_schema(), "", &name, &lines, &mut out);
    if out.has_errors() {
        return out;
    }
    // The structs' own deserializer: values the shape walk cannot judge (addresses,
    // enum names, integers out of a field's range), first one only, with its span.
    if let Err(e) = toml::from_str::<HubConfig>(src) {
        out.push(Diagnostic::error(
            &name,
            lines.at(e.span()),
            e.message().trim().replace('\n', "; "),
        ));
        return out;
    }
    match HubConfig::parse(src, path) {
        Ok(_) => {}
        Err(ConfigError::Invalid { field, message, .. }) => {
            let span = key_span(&doc, field);
            out.push(Diagnostic::error(
                &name,
                lines.at(span),
                format!("{field}: {message}"),
            ));
        }
        Err(e) => out.push(Diagnostic::error(&name, Pos::FILE, e.to_string())),
    }
    out
}

/// What a key may hold, learned from the example.
#[derive(Debug)]
enum Shape {
    Table(BTreeMap<String, Shape>),
    /// Any key; every value shaped like this.
    Map(Box<Shape>),
    Leaf(&'static str),
}

/// The example with its `#key = value` / `#[table]` lines switched on.
pub fn example_uncommented() -> String {
    uncomment(EXAMPLE)
}

/// Switches on commented-out settings: a `#` directly followed by a lowercase letter or
/// `[`. Explanations are written `# text`, so they stay comments.
pub fn uncomment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let rest = line.strip_prefix('#').filter(|r| {
            r.chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '[')
        });
        out.push_str(rest.unwrap_or(line));
        out.push('\n');
    }
    out
}

fn example_schema() -> Shape {
    let full = example_uncommented();
    match DeTable::parse(&full) {
        Ok(doc) => shape_of_table(doc.get_ref(), ""),
        // The example's own test keeps this from happening; a broken one checks nothing
        // here and leaves everything to the loader below.
        Err(_) => Shape::Map(Box::new(Shape::Leaf("anything"))),
    }
}

fn shape_of_table(t: &DeTable, path: &str) -> Shape {
    let fields = t
        .iter()
        .map(|(k, v)| {
            let sub = join(path, k.get_ref());
            let shape = match v.get_ref() {
                DeValue::Table(inner) if FREE_FORM.contains(&sub.as_str()) => {
                    let elem = inner
                        .iter()
                        .next()
                        .map_or(Shape::Leaf("anything"), |(_, v)| Shape::Leaf(kind(v)));
                    Shape::Map(Box::new(elem))
                }
                DeValue::Table(inner) => shape_of_table(inner, &sub),
                _ => Shape::Leaf(kind(v)),
            };
            (k.get_ref().to_string(), shape)
        })
        .collect();
    Shape::Table(fields)
}

fn walk(t: &DeTable, shape: &Shape, path: &str, name: &str, lines: &Lines, out: &mut Diagnostics) {
    for (k, v) in t.iter() {
        let key = join(path, k.get_ref());
        let expected = match shape {
            Shape::Table(fields) => match fields.get(k.get_ref().as_ref()) {
                Some(s) => s,
                None => {
                    let hint = suggest(k.get_ref(), fields.keys().map(String::as_str))
                        .map(|s| format!("; did you mean `{}`?", join(path, s)))
                        .unwrap_or_default();
                    let within = if path.is_empty() {
                        "at the top level".to_string()
                    } else {
                        format!("in [{path}]")
                    };
                    out.push(Diagnostic::error(
                        name,
                        lines.at(Some(k.span())),
                        format!("unknown key `{}` {within}{hint}", k.get_ref()),
                    ));
                    continue;
                }
            },
            Shape::Map(elem) => elem,
            Shape::Leaf(_) => return,
        };
        match (expected, v.get_ref()) {
            (Shape::Table(_) | Shape::Map(_), DeValue::Table(inner)) => {
                walk(inner, expected, &key, name, lines, out)
            }
            (Shape::Leaf(want), _) if *want == "anything" || *want == kind(v) => {}
            (want, _) => {
                let want = match want {
                    Shape::Leaf(w) => w,
                    _ => "a table",
                };
                out.push(Diagnostic::error(
                    name,
                    lines.at(Some(v.span())),
                    format!("`{key}` must be {want}, not {}", kind(v)),
                ));
            }
        }
    }
}

fn kind(v: &Spanned<DeValue>) -> &'static str {
    match v.get_ref() {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a number with a fraction",
        DeValue::Boolean(_) => "true or false",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The span of the key at dotted `field`, or of the nearest enclosing key present
/// (a missing `[auth.ldap]` is reported at `auth`).
fn key_span(doc: &DeTable, field: &str) -> Option<Range<usize>> {
    let mut table = Some(doc);
    let mut best = None;
    for part in field.split('.') {
        let Some((k, v)) = table.and_then(|t| t.iter().find(|(k, _)| k.get_ref() == part)) else {
            break;
        };
        best = Some(k.span());
        table = match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    best
}

/// "did you mean": the closest key if it is a plausible typo.
fn suggest<'c>(word: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Byte offset → 1-based line and character column.
struct Lines<'a> {
    src: &'a str,
}

impl<'a> Lines<'a> {
    fn new(src: &'a str) -> Self {
        Lines { src }
    }

    fn at(&self, span: Option<Range<usize>>) -> Pos {
        let Some(span) = span else {
            return Pos::FILE;
        };
        let mut off = span.start.min(self.src.len());
        while !self.src.is_char_boundary(off) {
            off -= 1;
        }
        let before = &self.src[..off];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Pos {
            line: before.matches('\n').count() as u32 + 1,
            col: before[line_start..].chars().count() as u32 + 1,
        }
    }
}

#[cfg(test)]
mod tests;
