//! Steward's tamper-evident audit log.
//!
//! What this crate is: the hub's record of who did what to whose workflow. Every
//! record is one JSON line in `audit.jsonl`, carrying a sequence number and the
//! SHA-256 of the previous line, so editing, deleting, inserting, reordering or
//! cutting lines breaks the chain. Every `checkpoint_every` records, once a minute
//! when records were written (`checkpoint_interval`) and at close, the log appends a
//! checkpoint signed with the hub's Ed25519 key and points `audit.head` at it — and,
//! when configured, a second head outside the log directory (`head_path`), which
//! `open` and `verify` hold the log to, so that a cut-off tail is detected even by
//! someone who rewrote the whole directory. Beside the chain
//! the log keeps `audit.log`, one human line per event (`2026-11-23T10:15:02Z User
//! jacintar stopped atmosphere_stage.clouds.climb.1234 task`).
//!
//! Appends are write-ahead and durable: [`AuditLog::append`] returns only once the
//! record and its human line are fsync'd. A writer thread batches concurrent appends
//! into one write per file while a syncer thread flushes the previous batches (group
//! commit, see `writer.rs`). If the log cannot be written, appends fail, nothing
//! partial stays in the files, and [`AuditLog::health`] reports why until writing
//! works again — the hub refuses operations meanwhile (fail closed). On open, intents
//! a crash left without outcome get an outcome `unknown`.
//!
//! [`verify`] checks chain, checkpoints and head; [`search`] filters records for
//! `steward audit search` and the hub's audit API. [`cli`] holds both subcommands.
//!
//! Several hubs (docs/ha.md): each keeps its own chain and names itself in every
//! record (`AuditConfig::hub_id`); [`AuditLog::durable_head`] is what a hub publishes
//! to the shared store, and the leader signs a [`DeploymentCheckpoint`] over every
//! hub's head, which [`verify_deployment`] holds all chains to together.
//!
//! What it must not do: decide anything (the hub decides, this crate records), trust
//! its input files (verify and search report garbage as `file:line`, never panic),
//! or let user-controlled text forge a human line (see [`human_line`]).

mod chain;
pub mod cli;
mod config;
mod deployment;
mod error;
mod head;
mod human;
mod log;
mod record;
mod recovery;
mod scan;
mod search;
mod syslog;
mod verify;
mod writer;

#[doc(hidden)]
pub mod testing;

pub use config::{AuditClock, AuditConfig};
pub use deployment::{
    valid_hub_id, verify_deployment, ChainCheck, ChainHead, CheckpointError, DeploymentCheckpoint,
    DeploymentError, DeploymentReport, MAX_HUB_ID,
};
pub use error::{AuditError, VerifyError};
pub use human::human_line;
pub use log::{AuditLog, AuditStats};
pub use record::{events, AuditRecord, Decision, Outcome, RecordKind, SYSTEM_ACTOR};
pub use scan::audit_files;
pub use search::{search, search_each, SearchFilter};
pub use syslog::{SyslogAddr, SyslogFormat, SyslogTarget};
pub use verify::{verify, verify_dir, verify_dir_with_head, verify_with_head, VerifyReport};

/// File name of the current chain file inside the audit directory.
pub const CURRENT_FILE: &str = "audit.jsonl";
/// File name of the current human log inside the audit directory.
pub const HUMAN_FILE: &str = "audit.log";
/// File name of the head file: a copy of the newest checkpoint.
pub const HEAD_FILE: &str = "audit.head";
