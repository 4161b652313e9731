//! `steward policy …`: check, permitted, explain, export.
//!
//! The hub's binary mounts [`PolicyCommand`] as a subcommand and calls [`run`] with
//! its group lookup (NSS `getgrouplist`, later LDAP). Everything here prints and
//! returns an exit code; nothing here decides anything the library does not.
//!
//! Exit codes: 0 success; 1 a policy file has errors (or warnings under `--strict`);
//! 2 a usage problem (unknown `--op`, group lookup failed, cannot write output).

use crate::store::{read_policy_file, site_file_permission_problem};
use crate::{
    check_source, decide, export, permitted, to_snake_case, Diagnostics, Operation, PolicyKind,
    SitePolicy, Subject, UserPolicy,
};
use std::path::{Path, PathBuf};

/// Where group memberships come from when `--owner-groups`/`--user-groups` are not
/// given.
pub trait GroupLookup {
    /// Group names (without `group:`) of `user`.
    fn groups_of(&self, user: &str) -> Result<Vec<String>, String>;
}

/// A lookup that knows no one: every query fails, so the flags must be given.
pub struct NoLookup;

impl GroupLookup for NoLookup {
    fn groups_of(&self, user: &str) -> Result<Vec<String>, String> {
        Err(format!("no group lookup is available for {user}"))
    }
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum PolicyCommand {
    /// Check policy files: every problem as file:line:col, with "did you mean".
    ///
    /// The kind of each file is guessed from its content unless --site or --user is
    /// given: a file with [owners.…] tables is a site policy, one with [grants] or
    /// [[workflows]] a user policy. A site policy must be owned by root and not
    /// writable by group or others.
    Check(CheckArgs),
    /// Print the operations a user may perform on an owner's workflow, as a sorted
    /// JSON array.
    Permitted(QueryArgs),
    /// Say which entries grant, limit or negate one operation, and the verdict.
    Explain(ExplainArgs),
    /// Write one owner's policy as a casbin model.conf + policy.csv.
    Export(ExportArgs),
    /// Turn a Cylc UI Server jupyter_config.py's site_authorization/user_authorization
    /// into Steward's TOML, reporting (on stderr, file:line:col) what cannot be
    /// carried over. Exit 0: all carried; 1: written with a report; 2: I/O error.
    Import(crate::import_cylc::ImportArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct CheckArgs {
    /// Policy files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Treat every file as a site policy.
    #[arg(long, conflicts_with = "user")]
    pub site: bool,
    /// Treat every file as a user policy.
    #[arg(long)]
    pub user: bool,
    /// Make warnings (unknown operation names) fatal.
    #[arg(long)]
    pub strict: bool,
    /// Do not require a site policy to be root-owned (for a draft before installing).
    #[arg(long)]
    pub no_owner_check: bool,
    /// Print diagnostics as a JSON array instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// The policy files and the owner: what every question about one owner's workflows
/// starts from.
#[derive(clap::Args, Debug, Clone)]
pub struct OwnerArgs {
    /// The site policy file.
    #[arg(long, value_name = "FILE")]
    pub site: PathBuf,
    /// The owner's user policy file; absent means the owner has none.
    #[arg(long, value_name = "FILE")]
    pub user_policy: Option<PathBuf>,
    /// The workflow owner.
    #[arg(long, value_name = "NAME")]
    pub owner: String,
    /// The owner's groups, comma-separated, without "group:"; "" for none. Looked up
    /// when absent.
    #[arg(long, value_name = "A,B")]
    pub owner_groups: Option<String>,
}

impl OwnerArgs {
    /// Both files, loaded before failing so that every problem is shown at once.
    fn load_files(&self) -> Result<(SitePolicy, Option<UserPolicy>), i32> {
        let site = load_site(&self.site);
        let user = self.user_policy.as_deref().map(load_user).transpose();
        Ok((site?, user?))
    }

    fn subject(&self, lookup: &dyn GroupLookup) -> Result<Subject, i32> {
        subject(&self.owner, &self.owner_groups, lookup)
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct QueryArgs {
    #[command(flatten)]
    pub owner: OwnerArgs,
    /// The user asking.
    #[arg(long, value_name = "NAME")]
    pub user: String,
    /// The user's groups, comma-separated, without "group:"; "" for none. Looked up
    /// when absent.
    #[arg(long, value_name = "C,D")]
    pub user_groups: Option<String>,
    /// The workflow name (e.g. atmosphere_stage/run1, or ~owner/atmosphere_stage/run1);
    /// absent: no [[workflows]] entry applies.
    #[arg(long, value_name = "ID")]
    pub workflow: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub query: QueryArgs,
    /// The operation (e.g. stop, release_hold_point or ReleaseHoldPoint).
    #[arg(long, value_name = "OP")]
    pub op: String,
    /// Print the decision as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// Directory to write model.conf and policy.csv into (created if needed).
    #[arg(long, value_name = "DIR")]
    pub casbin: PathBuf,
    #[command(flatten)]
    pub owner: OwnerArgs,
}

/// Run one command; returns the process exit code.
pub fn run(cmd: PolicyCommand, lookup: &dyn GroupLookup) -> i32 {
    match cmd {
        PolicyCommand::Check(a) => run_check(&a),
        PolicyCommand::Permitted(q) => match Query::load(&q, lookup) {
            Ok(query) => {
                let set = permitted(
                    &query.site,
                    query.user.as_ref(),
                    &query.owner,
                    &query.actor,
                    &query.workflow,
                );
                println!(
                    "{}",
                    serde_json::to_string(&set).expect("op names serialize")
                );
                0
            }
            Err(code) => code,
        },
        PolicyCommand::Explain(a) => {
            let op = match parse_op(&a.op) {
                Ok(op) => op,
                Err(msg) => {
                    eprintln!("error: {msg}");
                    return 2;
                }
            };
            match Query::load(&a.query, lookup) {
                Ok(q) => {
                    let d = decide(
                        &q.site,
                        q.user.as_ref(),
                        &q.owner,
                        &q.actor,
                        &q.workflow,
                        op,
                    );
                    if a.json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&d).expect("decision serializes")
                        );
                    } else {
                        for (i, r) in d.reasons.iter().enumerate() {
                            if i == 0 {
                                println!("{r}");
                            } else {
                                println!("  {r}");
                            }
                        }
                    }
                    0
                }
                Err(code) => code,
            }
        }
        PolicyCommand::Export(a) => run_export(&a, lookup),
        PolicyCommand::Import(a) => crate::import_cylc::run(&a),
    }
}

/// An operation name as Cylc accepts it: snake_case, or GraphQL CamelCase.
pub fn parse_op(s: &str) -> Result<Operation, String> {
    if let Ok(op) = s.parse() {
        return Ok(op);
    }
    if let Ok(op) = to_snake_case(s).parse() {
        return Ok(op);
    }
    let hint = crate::diag::suggest(s, Operation::ALL.iter().map(|o| o.name()))
        .map(|h| format!("; did you mean {h:?}?"))
        .unwrap_or_default();
    Err(format!("unknown operation {s:?}{hint}"))
}

/// Comma-separated group names; "" is none; a "group:" prefix is tolerated.
pub fn parse_groups(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(|g| g.strip_prefix("group:").unwrap_or(g).to_string())
        .collect()
}

fn subject(name: &str, flag: &Option<String>, lookup: &dyn GroupLookup) -> Result<Subject, i32> {
    let groups = match flag {
        Some(s) => parse_groups(s),
        None => lookup.groups_of(name).map_err(|e| {
            eprintln!("error: cannot look up the groups of {name}: {e}; pass the groups explicitly (--user-groups/--owner-groups, \"\" for none)");
            2
        })?,
    };
    Ok(Subject {
        name: name.to_string(),
        groups,
    })
}

fn print_diags(d: &Diagnostics) {
    for x in d.iter() {
        eprintln!("{x}");
    }
}

fn load_site(path: &Path) -> Result<SitePolicy, i32> {
    let (src, _) = read_policy_file(path, false).map_err(|d| {
        print_diags(&d);
        1
    })?;
    let p = SitePolicy::parse(&src, &path.display().to_string()).map_err(|d| {
        print_diags(&d);
        1
    })?;
    print_diags(&Diagnostics(p.warnings().to_vec()));
    Ok(p)
}

fn load_user(path: &Path) -> Result<UserPolicy, i32> {
    let (src, _) = read_policy_file(path, false).map_err(|d| {
        print_diags(&d);
        1
    })?;
    let p = UserPolicy::parse(&src, &path.display().to_string()).map_err(|d| {
        print_diags(&d);
        1
    })?;
    print_diags(&Diagnostics(p.warnings().to_vec()));
    Ok(p)
}

struct Query {
    site: SitePolicy,
    user: Option<UserPolicy>,
    owner: Subject,
    actor: Subject,
    workflow: String,
}

impl Query {
    fn load(q: &QueryArgs, lookup: &dyn GroupLookup) -> Result<Query, i32> {
        let (site, user) = q.owner.load_files()?;
        let workflow = match &q.workflow {
            None => String::new(),
            Some(w) => workflow_name(w, &q.owner.owner).map_err(|e| {
                eprintln!("error: {e}");
                2
            })?,
        };
        Ok(Query {
            site,
            user,
            owner: q.owner.subject(lookup)?,
            actor: subject(&q.user, &q.user_groups, lookup)?,
            workflow,
        })
    }
}

/// `~owner/name//cycle/task` or `name` → `name`.
fn workflow_name(id: &str, owner: &str) -> Result<String, String> {
    let mut w = id;
    if let Some(rest) = w.strip_prefix('~') {
        let (o, name) = rest
            .split_once('/')
            .ok_or_else(|| format!("workflow id {id:?} has an owner but no workflow name"))?;
        if o != owner {
            return Err(format!(
                "workflow id {id:?} belongs to {o}, but --owner is {owner}"
            ));
        }
        w = name;
    }
    if let Some((name, _task)) = w.split_once("//") {
        w = name;
    }
    Ok(w.trim_end_matches('/').to_string())
}

fn run_check(a: &CheckArgs) -> i32 {
    let forced = if a.site {
        Some(PolicyKind::Site)
    } else if a.user {
        Some(PolicyKind::User)
    } else {
        None
    };
    let mut all = Diagnostics::new();
    let mut summaries = Vec::new();
    for path in &a.files {
        let name = path.display().to_string();
        let (src, _) = match read_policy_file(path, false) {
            Ok(x) => x,
            Err(d) => {
                all.extend(d);
                continue;
            }
        };
        let (kind, mut diags) = check_source(&src, &name, forced);
        if kind == Some(PolicyKind::Site) && !a.no_owner_check {
            if let Ok(meta) = std::fs::metadata(path) {
                if let Some(d) = site_file_permission_problem(path, &meta) {
                    diags.insert(0, d);
                }
            }
        }
        let errors = diags.errors().count();
        let warnings = diags.len() - errors;
        let kind_name = match kind {
            Some(PolicyKind::Site) => "site policy",
            Some(PolicyKind::User) => "user policy",
            None => "policy",
        };
        summaries.push(if errors == 0 && (warnings == 0 || !a.strict) {
            format!(
                "{name}: {kind_name} OK ({warnings} warning{})",
                if warnings == 1 { "" } else { "s" }
            )
        } else {
            format!(
                "{name}: {kind_name} has {errors} error{} and {warnings} warning{}",
                if errors == 1 { "" } else { "s" },
                if warnings == 1 { "" } else { "s" }
            )
        });
        all.extend(diags);
    }
    let failed = all.has_errors() || (a.strict && !all.is_empty());
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&all).expect("diagnostics serialize")
        );
    } else {
        for d in all.iter() {
            println!("{d}");
        }
        for s in &summaries {
            eprintln!("{s}");
        }
    }
    i32::from(failed)
}

fn run_export(a: &ExportArgs, lookup: &dyn GroupLookup) -> i32 {
    let (site, user, owner) = match a
        .owner
        .load_files()
        .and_then(|(s, u)| Ok((s, u, a.owner.subject(lookup)?)))
    {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let out = match export::casbin(&site, user.as_ref(), &owner) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(&a.casbin)?;
        std::fs::write(a.casbin.join("model.conf"), &out.model)?;
        std::fs::write(a.casbin.join("policy.csv"), &out.policy)?;
        Ok(())
    };
    if let Err(e) = write() {
        eprintln!("error: cannot write to {}: {e}", a.casbin.display());
        return 2;
    }
    println!(
        "wrote {} and {} ({} rows, {} links)",
        a.casbin.join("model.conf").display(),
        a.casbin.join("policy.csv").display(),
        out.rows,
        out.links
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_ids() {
        assert_eq!(workflow_name("a/b", "o").unwrap(), "a/b");
        assert_eq!(workflow_name("~o/a/b", "o").unwrap(), "a/b");
        assert_eq!(workflow_name("~o/a/b//1/t", "o").unwrap(), "a/b");
        assert!(workflow_name("~x/a", "o").is_err());
    }

    #[test]
    fn groups_and_ops() {
        assert_eq!(parse_groups(""), Vec::<String>::new());
        assert_eq!(parse_groups("a, b,,group:c"), vec!["a", "b", "c"]);
        assert_eq!(
            parse_op("ReleaseHoldPoint").unwrap(),
            Operation::ReleaseHoldPoint
        );
        assert!(parse_op("RELeaseHOLdPoint").is_err());
        assert!(parse_op("pasue").unwrap_err().contains("pause"));
    }
}
