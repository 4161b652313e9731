//! Steward's policy engine: parse, check, compile, decide and explain who may do what
//! to whose workflows.
//!
//! Three layers, overridden in the order site < user < workflow and always capped by
//! the site limit, with Cylc UI Server's `site_authorization`/`user_authorization`
//! semantics (see [`engine`] for the exact rules). The pipeline is separate steps:
//! TOML text → checked entries with positions ([`SitePolicy::parse`],
//! [`UserPolicy::parse`], [`Diagnostics`] with file:line:col and "did you mean") →
//! an index keyed by owner/user/group → [`permitted`] / [`decide`]. A [`Decision`]
//! carries its own reasons, so `steward policy explain`, the UI tooltip and the audit
//! record show the evaluation that decided, not a reconstruction.
//!
//! This crate must not know about HTTP, sessions or processes: it reads a file only in
//! [`PolicyStore`] and the [`cli`], and it learns group memberships from its caller
//! ([`Subject::groups`], [`cli::GroupLookup`]).

pub mod cli;
mod diag;
mod doc;
pub mod engine;
pub mod export;
pub mod import_cylc;
mod index;
mod perms;
mod site;
mod store;
mod user;

pub use diag::{Diagnostic, Diagnostics, Pos, Severity};
pub use engine::{decide, permitted, Decision};
pub use perms::{to_snake_case, Key, Level, PermItem, PermList};
pub use site::{SiteEntry, SitePolicy};
pub use steward_protocol::{OpClass, OpSet, Operation};
pub use store::{site_file_permission_problem, PolicyStore, ReloadReport, StoreOptions};
pub use user::{GrantEntry, UserPolicy, WorkflowEntry};

/// A person as policy sees them: a user name and the names of their groups, without
/// the `group:` prefix policy files use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Subject {
    pub name: String,
    pub groups: Vec<String>,
}

impl Subject {
    pub fn new(
        name: impl Into<String>,
        groups: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Subject {
            name: name.into(),
            groups: groups.into_iter().map(Into::into).collect(),
        }
    }
}

/// Which of the two file formats a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    Site,
    User,
}

/// Guess a file's kind from its top-level keys: `owners` → site; `grants` or
/// `workflows` → user. `None` when it is not TOML or has none of these.
pub fn detect_kind(src: &str) -> Option<PolicyKind> {
    let root = doc::parse(src).ok()?;
    let has = |k: &str| root.keys().any(|x| x.get_ref() == k);
    if has("owners") {
        Some(PolicyKind::Site)
    } else if has("grants") || has("workflows") {
        Some(PolicyKind::User)
    } else {
        None
    }
}

/// Every problem in one file, errors and warnings, sorted by position. `kind: None`
/// guesses with [`detect_kind`]; an empty or unrecognisable file is then an error.
pub fn check_source(
    src: &str,
    origin: &str,
    kind: Option<PolicyKind>,
) -> (Option<PolicyKind>, Diagnostics) {
    let kind = match kind.or_else(|| detect_kind(src)) {
        Some(k) => k,
        None => {
            // Report a syntax error if that is why we could not tell.
            if let Err(e) = doc::parse(src) {
                let cx = perms::Ctx::new(origin, src);
                return (None, syntax_error(&cx, &e));
            }
            return (
                None,
                Diagnostic::error(
                    origin,
                    Pos { line: 1, col: 1 },
                    "cannot tell whether this is a site policy (it would have [owners.\"<owner>\".\"<user>\"] tables) or a user policy ([grants] / [[workflows]]); pass --site or --user",
                )
                .into(),
            );
        }
    };
    let diags = match kind {
        PolicyKind::Site => match SitePolicy::parse(src, origin) {
            Ok(p) => Diagnostics(p.warnings().to_vec()),
            Err(d) => d,
        },
        PolicyKind::User => match UserPolicy::parse(src, origin) {
            Ok(p) => Diagnostics(p.warnings().to_vec()),
            Err(d) => d,
        },
    };
    (Some(kind), diags)
}

/// A TOML syntax error (including duplicate keys) as a diagnostic at its position.
pub(crate) fn syntax_error(cx: &perms::Ctx, e: &doc::SyntaxError) -> Diagnostics {
    let pos = cx
        .lines
        .span(e.span.clone())
        .unwrap_or(Pos { line: 1, col: 1 });
    Diagnostic::error(cx.file, pos, format!("invalid TOML: {}", e.message)).into()
}
