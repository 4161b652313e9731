//! What Slurm says about jobs, parsed: squeue rows, sacct rows and jobcomp/filetxt
//! records, and the states the hub sees. Pure parsing; the commands run in `poller`.
//!
//! Slurm prints job names raw, and a job name may contain anything, newlines and `|`
//! included (any user can name a job `x\n1234|RUNNING|alice|…`). So squeue's format
//! brackets every record and separates every field with a fresh random nonce chosen per
//! call: a name cannot forge a record without knowing the nonce before submitting.
//! sacct is asked only for fields a user cannot choose (id, user, state, exit code).
//! jobcomp/filetxt records are raw text and can be forged by a crafted name, which is
//! why they are read only for jobs squeue has already stopped listing: a forged record
//! can at worst change the final state shown for a job that really is gone.

use serde::{Deserialize, Serialize};

/// Prefix of every job Steward submits; the full name is `steward:<owner>:<server>`.
pub const JOB_NAME_PREFIX: &str = "steward:";

/// The job name for a server. Owner names (helper `user_pattern`) and server names
/// (letters, digits, `_-.`) cannot contain `:`, so the name maps back unambiguously.
pub fn job_name(owner: &str, server: &str) -> String {
    format!("{JOB_NAME_PREFIX}{owner}:{server}")
}

/// `(owner, server)` from a job name Steward gave, or None for anything else.
pub fn parse_job_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(JOB_NAME_PREFIX)?;
    let (owner, server) = rest.split_once(':')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    };
    (ok(owner) && ok(server)).then_some((owner, server))
}

/// Slurm job ids: `1234`, or `1234_5` for an array element.
pub fn job_id_ok(id: &str) -> bool {
    let mut parts = id.splitn(2, '_');
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    parts.next().is_some_and(digits) && parts.next().is_none_or(digits)
}

/// One job as squeue lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRow {
    pub job_id: String,
    /// Slurm's long state name (`PENDING`, `RUNNING`, `OUT_OF_MEMORY`, …).
    pub state: String,
    pub user: String,
    /// Why the job is in this state (`PartitionDown`, `Resources`, `None`, …).
    pub reason: String,
    /// Actual start, or for a pending job the scheduler's estimate (the `squeue
    /// --start` figure); None while Slurm has no estimate.
    pub start: Option<String>,
    /// Nodes the job runs on (empty while pending).
    pub nodes: String,
    pub name: String,
}

/// squeue's `-o` format for one call, delimited by `nonce` (see the module doc).
pub fn squeue_format(nonce: &str) -> String {
    let f = format!("{nonce}|");
    format!("{nonce}<%i{f}%T{f}%u{f}%r{f}%S{f}%N{f}%j{nonce}>")
}

/// Parses squeue output made with [`squeue_format`]. Anything outside the records
/// but whitespace, or a record without exactly its seven fields, is an error: the
/// caller then treats the whole poll as unknown rather than trusting part of it.
pub fn parse_squeue(out: &str, nonce: &str) -> Result<Vec<QueueRow>, String> {
    let open = format!("{nonce}<");
    let close = format!("{nonce}>");
    let sep = format!("{nonce}|");
    let mut rows = Vec::new();
    let mut rest = out;
    loop {
        let trimmed = rest.trim_start();
        if trimmed.is_empty() {
            return Ok(rows);
        }
        let Some(body) = trimmed.strip_prefix(&open) else {
            return Err(format!(
                "squeue printed text outside a record: {:?}",
                trimmed.chars().take(80).collect::<String>()
            ));
        };
        let end = body
            .find(&close)
            .ok_or_else(|| "squeue output ends inside a record (truncated?)".to_string())?;
        let fields: Vec<&str> = body[..end].split(sep.as_str()).collect();
        let [id, state, user, reason, start, nodes, name] = fields[..] else {
            return Err(format!(
                "squeue record has {} fields, expected 7",
                fields.len()
            ));
        };
        if !job_id_ok(id) {
            return Err(format!("squeue record with job id {id:?}"));
        }
        rows.push(QueueRow {
            job_id: id.to_string(),
            state: state.to_string(),
            user: user.to_string(),
            reason: reason.to_string(),
            start: (!matches!(start, "N/A" | "Unknown" | "None" | "")).then(|| start.to_string()),
            nodes: nodes.to_string(),
            name: name.to_string(),
        });
        rest = &body[end + close.len()..];
    }
}

/// How Slurm's state names group for the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateClass {
    Pending,
    Running,
    /// The job ended and its node is cleaning up (`COMPLETING`): squeue no longer says
    /// how it ended, accounting may already.
    Ending,
    Ended,
}

pub fn classify(state: &str) -> StateClass {
    // `CANCELLED by 1001` (sacct) and `CANCELLED+` (truncated) name the same state.
    let base = state
        .split(|c: char| c.is_whitespace() || c == '+')
        .next()
        .unwrap_or("");
    match base {
        "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD" => {
            StateClass::Pending
        }
        "BOOT_FAIL" | "CANCELLED" | "COMPLETED" | "DEADLINE" | "FAILED" | "NODE_FAIL"
        | "OUT_OF_MEMORY" | "PREEMPTED" | "TIMEOUT" | "SPECIAL_EXIT" | "REVOKED" => {
            StateClass::Ended
        }
        "COMPLETING" | "STAGE_OUT" => StateClass::Ending,
        // RUNNING, CONFIGURING, SUSPENDED, STOPPED, RESIZING, SIGNALING,
        // and any state a newer Slurm adds: the job still holds resources.
        _ => StateClass::Running,
    }
}

/// Where a job's final state came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// squeue still lists the ended job (within slurmctld's MinJobAge).
    Controller,
    /// The accounting database.
    Sacct,
    /// The jobcomp/filetxt log.
    Jobcomp,
}

/// A job's end as recorded by accounting (sacct or jobcomp).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accounted {
    pub job_id: String,
    pub user: String,
    pub state: String,
    /// `exit:signal`, e.g. `0:0`, `1:0`, `0:9`.
    pub exit_code: String,
}

/// `sacct -n -P -X -o JobIDRaw,User,State,ExitCode` rows; lines that are not four
/// fields with a job id are skipped (sacct prints nothing a user can choose here).
pub fn parse_sacct(out: &str) -> Vec<Accounted> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim_end().split('|').collect();
            let [id, user, state, exit] = f[..] else {
                return None;
            };
            job_id_ok(id).then(|| Accounted {
                job_id: id.to_string(),
                user: user.to_string(),
                state: state.split_whitespace().next().unwrap_or("").to_string(),
                exit_code: exit.to_string(),
            })
        })
        .collect()
}

/// The jobcomp/filetxt record of `job_id`, the last one if several claim it.
/// Fields after the free-text `Name=` are taken from the right, so a name with spaces
/// or `Key=` text in it does not shift them (see the module doc for newlines).
pub fn find_jobcomp(text: &str, job_id: &str) -> Option<Accounted> {
    let head = format!("JobId={job_id} ");
    text.lines().rev().find_map(|l| {
        let rest = l.strip_prefix(&head)?;
        let user = rest
            .strip_prefix("UserId=")?
            .split(['(', ' '])
            .next()?
            .to_string();
        let value = |key: &str| {
            let at = l.rfind(&format!(" {key}="))?;
            let v = &l[at + key.len() + 2..];
            Some(v.split(' ').next().unwrap_or("").to_string())
        };
        Some(Accounted {
            job_id: job_id.to_string(),
            user,
            state: value("JobState")?,
            exit_code: value("ExitCode")?,
        })
    })
}

/// A job's state as the hub shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// Waiting: Slurm's reason and, when it has one, its start estimate.
    Pending {
        reason: String,
        estimated_start: Option<String>,
    },
    /// Holding resources (`RUNNING`, or a transition such as `COMPLETING`).
    Running { slurm_state: String, nodes: String },
    /// Ended for good: the final state (e.g. `OUT_OF_MEMORY`, `CANCELLED`), the exit
    /// code when accounting knows it, Slurm's reason, and where this came from.
    Gone {
        final_state: String,
        exit_code: Option<String>,
        reason: Option<String>,
        evidence: Evidence,
    },
    /// Slurm could not be asked, or its answer is not conclusive yet. Never "gone".
    Unknown { why: String },
}

impl JobState {
    /// For a gone job: did it end badly (anything but COMPLETED with exit 0)?
    pub fn failed(&self) -> bool {
        match self {
            JobState::Gone {
                final_state,
                exit_code,
                ..
            } => {
                classify(final_state) == StateClass::Ended
                    && (!final_state.starts_with("COMPLETED")
                        || exit_code.as_deref().is_some_and(|c| c != "0:0"))
            }
            _ => false,
        }
    }

    /// For a gone job: did Slurm end it for exceeding its memory request?
    pub fn out_of_memory(&self) -> bool {
        matches!(self, JobState::Gone { final_state, .. } if final_state.starts_with("OUT_OF_MEMORY"))
    }

    /// One line for logs, `steward servers list` and the UI.
    pub fn summary(&self) -> String {
        match self {
            JobState::Pending {
                reason,
                estimated_start,
            } => match estimated_start {
                Some(t) => format!("pending ({reason}; estimated start {t})"),
                None => format!("pending ({reason})"),
            },
            JobState::Running { slurm_state, nodes } if slurm_state == "RUNNING" => {
                format!("running on {nodes}")
            }
            JobState::Running { slurm_state, nodes } => {
                format!("running ({slurm_state}) on {nodes}")
            }
            JobState::Gone {
                final_state,
                exit_code,
                reason,
                ..
            } => {
                let mut s = format!("gone: {final_state}");
                if let Some(c) = exit_code {
                    s += &format!(", exit code {c}");
                }
                if let Some(r) = reason.as_deref().filter(|r| *r != "None") {
                    s += &format!(", reason {r}");
                }
                s
            }
            JobState::Unknown { why } => format!("unknown: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_round_trip_and_refuse_look_alikes() {
        assert_eq!(job_name("alice", "default"), "steward:alice:default");
        assert_eq!(
            parse_job_name("steward:alice:default"),
            Some(("alice", "default"))
        );
        for bad in [
            "steward:alice",
            "steward::x",
            "steward:alice:",
            "steward:a:b:c",
            "Steward:alice:x",
            "steward:al ice:x",
            "steward:alice:x\n",
            "wrap",
        ] {
            assert_eq!(parse_job_name(bad), None, "{bad:?}");
        }
        assert!(job_id_ok("42") && job_id_ok("42_7"));
        assert!(!job_id_ok("") && !job_id_ok("4a") && !job_id_ok("1_") && !job_id_ok("-1"));
    }

    #[test]
    fn squeue_records_survive_hostile_names() {
        let n = "N0nce";
        let fake = "1|RUNNING|alice|None|N/A|vm|steward:alice:x";
        let out = format!(
            "{n}<7{n}|RUNNING{n}|bob{n}|None{n}|2026-12-06T18:00:00{n}|vm{n}|x\n{fake}\n{n}>\n\
             {n}<8{n}|PENDING{n}|alice{n}|PartitionDown{n}|N/A{n}|{n}|steward:alice:default{n}>\n"
        );
        let rows = parse_squeue(&out, n).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, format!("x\n{fake}\n"));
        assert_eq!(rows[0].start.as_deref(), Some("2026-12-06T18:00:00"));
        assert_eq!(rows[1].reason, "PartitionDown");
        assert_eq!(rows[1].start, None);
        assert_eq!(parse_squeue("", n).unwrap(), vec![]);
        for garbled in [
            "squeue: error: slurm_load_jobs error: Unable to contact slurm controller".to_string(),
            format!("{n}<7{n}|RUNNING{n}|bob"),
            format!("{n}<7{n}|RUNNING{n}>"),
            format!("{n}<x{n}|R{n}|u{n}|r{n}|s{n}|n{n}|j{n}>"),
        ] {
            assert!(parse_squeue(&garbled, n).is_err(), "{garbled:?}");
        }
    }

    #[test]
    fn states_classify() {
        assert_eq!(classify("PENDING"), StateClass::Pending);
        assert_eq!(classify("RUNNING"), StateClass::Running);
        assert_eq!(classify("COMPLETING"), StateClass::Ending);
        assert_eq!(classify("CONFIGURING"), StateClass::Running);
        assert_eq!(classify("OUT_OF_MEMORY"), StateClass::Ended);
        assert_eq!(classify("CANCELLED by 1001"), StateClass::Ended);
        assert_eq!(classify("CANCELLED+"), StateClass::Ended);
    }

    #[test]
    fn sacct_and_jobcomp_records() {
        let rows =
            parse_sacct("12|alice|CANCELLED by 1001|0:15\n13|bob|OUT_OF_MEMORY|0:125\njunk\n");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].state, "CANCELLED");
        assert_eq!(rows[1].exit_code, "0:125");
        let text = "JobId=5 UserId=alice(1001) GroupId=alice(1001) Name=steward:alice:x JobState=OUT_OF_MEMORY Partition=debug ExitCode=0:125 \n\
                    JobId=6 UserId=bob(1002) GroupId=bob(1002) Name=a JobState=FAILED b JobState=COMPLETED Partition=debug DerivedExitCode=0:0 ExitCode=1:0 \n";
        let a = find_jobcomp(text, "5").unwrap();
        assert_eq!(
            (a.user.as_str(), a.state.as_str(), a.exit_code.as_str()),
            ("alice", "OUT_OF_MEMORY", "0:125")
        );
        let b = find_jobcomp(text, "6").unwrap();
        assert_eq!(
            (b.state.as_str(), b.exit_code.as_str()),
            ("COMPLETED", "1:0")
        );
        assert!(find_jobcomp(text, "7").is_none());
    }

    #[test]
    fn failed_and_summary() {
        let gone = |s: &str, c: Option<&str>| JobState::Gone {
            final_state: s.into(),
            exit_code: c.map(Into::into),
            reason: Some("OutOfMemory".into()),
            evidence: Evidence::Jobcomp,
        };
        assert!(gone("OUT_OF_MEMORY", Some("0:125")).failed());
        assert!(!gone("COMPLETED", Some("0:0")).failed());
        assert!(gone("COMPLETED", Some("1:0")).failed());
        assert_eq!(
            gone("OUT_OF_MEMORY", Some("0:125")).summary(),
            "gone: OUT_OF_MEMORY, exit code 0:125, reason OutOfMemory"
        );
        let p = JobState::Pending {
            reason: "PartitionDown".into(),
            estimated_start: None,
        };
        assert_eq!(p.summary(), "pending (PartitionDown)");
        assert!(!JobState::Unknown { why: "x".into() }.failed());
    }
}
