//! `steward audit verify|search`: the subcommands, ready to be mounted in the
//! `steward` binary (`#[command(subcommand)] audit: AuditCommand`).

use crate::deployment::{verify_deployment, DeploymentCheckpoint, DeploymentError};
use crate::human::quote;
use crate::human_line;
use crate::record::{AuditRecord, Decision, RecordKind};
use crate::search::{search, search_each, SearchFilter};
use crate::verify::{verify_dir_with_head, verify_with_head};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain, the signed checkpoints, audit.head and (with --head) the
    /// head kept outside the audit directory; print the first bad record with its
    /// file and line. Exit 0 when intact, 1 when not.
    ///
    /// Several hubs: `steward audit verify -c /etc/steward/steward.toml --deployment
    /// DIR_A DIR_B ...` checks every hub's chain and holds each to the head the
    /// leader's signed checkpoint (in the hubs' database) has for it, naming the hub
    /// whose chain is missing, cut short or altered.
    Verify {
        /// Chain files, oldest first (default: every file in the audit directory).
        files: Vec<PathBuf>,
        /// Audit directory (default: the hub's).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Ed25519 public key the checkpoints must be signed with: a PEM file (public
        /// or private key), or the 32 key bytes as hex or base64. Default: the hub's.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Also fail when records follow the last checkpoint (unanchored tail).
        #[arg(long)]
        strict: bool,
        /// The head file kept outside the audit directory (`[audit] head` in the
        /// hub's config): fail unless it is valid and the log reaches the seq it
        /// signed, i.e. unless no records were cut off the end.
        #[arg(long)]
        head: Option<PathBuf>,
        /// Verify a deployment of several hubs together: one audit directory per hub
        /// (each hub's [audit] dir, or copies of them). Every chain is verified on its
        /// own, then held to the leader's signed checkpoint of every hub's head: a chain
        /// that ends before its signed head (deleted tail), has another record at that
        /// seq, or is missing fails, naming the hub. The checkpoint is read from the
        /// database of --config, or from --checkpoint; it must be signed by the audit
        /// key (--key, default: the one in the config's data_dir).
        #[arg(long, value_name = "DIR", num_args = 1.., conflicts_with_all = ["files", "dir", "head"])]
        deployment: Vec<PathBuf>,
        /// With --deployment: read the checkpoint from this JSON file (the `body` of
        /// the database's `audit_checkpoint` row) instead of the database.
        #[arg(long, value_name = "FILE", requires = "deployment")]
        checkpoint: Option<PathBuf>,
        /// With --deployment: the hub's configuration, whose [database] holds the
        /// checkpoint and whose data_dir holds the audit key [default:
        /// /etc/steward/steward.toml].
        #[arg(short = 'c', long, value_name = "FILE", requires = "deployment")]
        config: Option<PathBuf>,
    },
    /// Print the records that match every given filter.
    Search {
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        workflow: Option<String>,
        #[arg(long)]
        op: Option<String>,
        /// allow or deny
        #[arg(long)]
        decision: Option<Decision>,
        /// Event name: op, login, login_failed, elevate, spawn, ...
        #[arg(long)]
        event: Option<String>,
        /// intent, outcome, event or checkpoint
        #[arg(long)]
        kind: Option<RecordKind>,
        /// From this time on (inclusive): RFC 3339, `YYYY-MM-DD[THH:MM:SS]` (UTC), or
        /// an age such as `30m`, `2h`, `7d`.
        #[arg(long)]
        since: Option<String>,
        /// Before this time (exclusive); same forms as --since.
        #[arg(long)]
        until: Option<String>,
        /// At most this many records.
        #[arg(long)]
        limit: Option<usize>,
        /// Newest first.
        #[arg(long)]
        newest: bool,
        /// One human line per record (the default; intents and checkpoints have none).
        #[arg(long, conflicts_with = "json")]
        human: bool,
        /// The JSON record lines.
        #[arg(long)]
        json: bool,
        /// Audit directory (default: the hub's).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

impl std::str::FromStr for RecordKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecordKind::from_bytes(s.as_bytes()).ok_or_else(|| {
            format!("unknown kind {s:?}: expected intent, outcome, event or checkpoint")
        })
    }
}

/// Reads an Ed25519 verifying key: PEM (SPKI public key, or a PKCS#8 private key whose
/// public half is taken), or the 32 bytes as 64 hex digits or base64.
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let t = text.trim();
    let err = |e: String| format!("{}: {e}", path.display());
    if t.starts_with("-----BEGIN PUBLIC KEY-----") {
        return VerifyingKey::from_public_key_pem(t).map_err(|e| err(e.to_string()));
    }
    if t.starts_with("-----BEGIN PRIVATE KEY-----") {
        return SigningKey::from_pkcs8_pem(t)
            .map(|k| k.verifying_key())
            .map_err(|e| err(e.to_string()));
    }
    let bytes = if t.len() == 64 {
        hex::decode(t).map_err(|e| err(e.to_string()))?
    } else {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(t)
            .map_err(|e| err(format!("not PEM, hex or base64: {e}")))?
    };
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| err("an Ed25519 public key is 32 bytes".into()))?;
    VerifyingKey::from_bytes(&arr).map_err(|e| err(e.to_string()))
}

/// Parses `--since`/`--until`.
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        return Ok(t.and_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc());
        }
    }
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    if let Ok(n) = num.parse::<i64>() {
        let d = match unit {
            "s" => TimeDelta::try_seconds(n),
            "m" => TimeDelta::try_minutes(n),
            "h" => TimeDelta::try_hours(n),
            "d" => TimeDelta::try_days(n),
            _ => None,
        };
        if let Some(t) = d.and_then(|d| now.checked_sub_signed(d)) {
            return Ok(t);
        }
    }
    Err(format!(
        "cannot read time {s:?}: use RFC 3339, YYYY-MM-DD[THH:MM:SS] (UTC) or an age like 30m, 2h, 7d"
    ))
}

/// The `n`th line (1-based) of `file`, escaped and shortened for a terminal.
fn show_line(file: &Path, n: u64) -> Option<String> {
    let f = std::fs::File::open(file).ok()?;
    let line = BufReader::new(f)
        .split(b'\n')
        .nth(n.checked_sub(1)? as usize)?
        .ok()?;
    let text = String::from_utf8_lossy(&line[..line.len().min(400)]).into_owned();
    let more = if line.len() > 400 { " ..." } else { "" };
    Some(format!("{}{more}", quote(&text)))
}

/// `steward audit verify --deployment`: holds the chains in `dirs` (one per hub) to the
/// deployment checkpoint `checkpoint` (its JSON; `from` says where it was read, for
/// messages), signed by `key`. Prints every chain and every problem; returns the exit
/// code: 0 intact, 1 not (or the checkpoint is not valid), 2 when no key was given.
pub fn run_deployment(
    checkpoint: &str,
    from: &str,
    dirs: &[PathBuf],
    key: Option<&VerifyingKey>,
    strict: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let Some(key) = key else {
        let _ = writeln!(
            err,
            "steward audit verify --deployment: the checkpoint is only worth its signature: give the deployment's audit key with --key (or -c steward.toml, whose data_dir holds it)"
        );
        return 2;
    };
    let report = DeploymentCheckpoint::from_json(checkpoint, from)
        .and_then(|cp| verify_deployment(&cp, from, dirs, key));
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "deployment verification FAILED: {e}");
            return 1;
        }
    };
    let _ = writeln!(out, "{report}");
    for f in &report.failures {
        let _ = writeln!(err, "deployment verification FAILED: {f}");
        if let DeploymentError::Chain { err: e, .. } = f {
            if let Some(text) = e.line.and_then(|n| show_line(&e.file, n)) {
                let _ = writeln!(err, "  line {}: {text}", e.line.unwrap_or(0));
            }
        }
    }
    if !report.is_ok() {
        return 1;
    }
    if strict {
        let loose: Vec<String> = report
            .chains
            .iter()
            .filter_map(|c| {
                let r = c.report.as_ref()?;
                (r.unanchored_tail > 0).then(|| {
                    format!(
                        "{}: {} record(s) after the last checkpoint",
                        c.dir.display(),
                        r.unanchored_tail
                    )
                })
            })
            .collect();
        if !loose.is_empty() {
            let _ = writeln!(
                err,
                "steward audit verify: --strict: not anchored: {}",
                loose.join("; ")
            );
            return 1;
        }
    }
    0
}

/// Runs an audit subcommand, printing to stdout/stderr; returns the exit code.
pub fn run(cmd: AuditCommand, default_dir: &Path, verify_key: Option<VerifyingKey>) -> i32 {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run_with(
        cmd,
        default_dir,
        verify_key,
        &mut stdout.lock(),
        &mut stderr.lock(),
    )
}

/// [`run`] with the output streams given (for tests and embedding).
pub fn run_with(
    cmd: AuditCommand,
    default_dir: &Path,
    verify_key: Option<VerifyingKey>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    match cmd {
        AuditCommand::Verify {
            files,
            dir,
            key,
            strict,
            head,
            deployment,
            checkpoint,
            config: _,
        } => {
            if !deployment.is_empty() {
                let key = match key.as_deref().map(load_verifying_key) {
                    Some(Ok(k)) => Some(k),
                    Some(Err(e)) => {
                        let _ = writeln!(err, "steward audit verify: {e}");
                        return 2;
                    }
                    None => verify_key,
                };
                let Some(path) = checkpoint else {
                    let _ = writeln!(
                        err,
                        "steward audit verify --deployment: no checkpoint: run it as `steward audit verify -c steward.toml --deployment DIR...` to read the leader's checkpoint from the hubs' database, or give --checkpoint FILE"
                    );
                    return 2;
                };
                let text = match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) => {
                        let _ = writeln!(
                            err,
                            "steward audit verify: cannot read the deployment checkpoint {}: {e}",
                            path.display()
                        );
                        return 2;
                    }
                };
                let from = path.display().to_string();
                return run_deployment(&text, &from, &deployment, key.as_ref(), strict, out, err);
            }
            let key = match key.as_deref().map(load_verifying_key) {
                Some(Ok(k)) => Some(k),
                Some(Err(e)) => {
                    let _ = writeln!(err, "steward audit verify: {e}");
                    return 2;
                }
                None => verify_key,
            };
            let dir = dir.unwrap_or_else(|| default_dir.to_path_buf());
            let res = if files.is_empty() {
                verify_dir_with_head(&dir, key.as_ref(), head.as_deref())
            } else {
                verify_with_head(&files, key.as_ref(), head.as_deref())
            };
            match res {
                Ok(report) => {
                    let _ = writeln!(out, "{report}");
                    if strict && report.unanchored_tail > 0 {
                        let _ = writeln!(
                            err,
                            "steward audit verify: --strict: {} record(s) after the last checkpoint are not anchored",
                            report.unanchored_tail
                        );
                        return 1;
                    }
                    0
                }
                Err(e) => {
                    let _ = writeln!(err, "audit log verification FAILED: {e}");
                    if let Some(text) = e.line.and_then(|n| show_line(&e.file, n)) {
                        let _ = writeln!(err, "  line {}: {text}", e.line.unwrap_or(0));
                    }
                    1
                }
            }
        }
        AuditCommand::Search {
            actor,
            owner,
            workflow,
            op,
            decision,
            event,
            kind,
            since,
            until,
            limit,
            newest,
            human: _,
            json,
            dir,
        } => {
            let now = Utc::now();
            let parse = |s: Option<String>| s.map(|s| parse_time(&s, now)).transpose();
            let (since, until) = match (parse(since), parse(until)) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => {
                    let _ = writeln!(err, "steward audit search: {e}");
                    return 2;
                }
            };
            let filter = SearchFilter {
                actor,
                owner,
                workflow,
                op,
                decision,
                event,
                kind,
                since,
                until,
                limit,
                newest_first: newest,
            };
            let dir = dir.unwrap_or_else(|| default_dir.to_path_buf());
            let mut print = |rec: &AuditRecord| -> bool {
                let line = if json {
                    Some(String::from_utf8_lossy(&rec.to_line()).into_owned())
                } else {
                    human_line(rec)
                };
                match line {
                    Some(l) => writeln!(out, "{l}").is_ok(),
                    None => true,
                }
            };
            let res = if newest {
                search(&dir, &filter).map(|recs| {
                    for r in &recs {
                        if !print(r) {
                            break;
                        }
                    }
                })
            } else {
                search_each(&dir, &filter, |r| print(&r))
            };
            match res {
                Ok(()) => 0,
                Err(e) => {
                    let _ = writeln!(err, "steward audit search: {e}");
                    1
                }
            }
        }
    }
}
