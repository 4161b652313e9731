//! The hub's view of its Slurm jobs: one batched, jittered `squeue` per cluster per
//! interval for every owner's jobs, turned into running / pending / gone / unknown.
//!
//! Rules, each a lesson from batch spawners that lost track of servers or flooded the
//! controller:
//! * one `squeue` call per poll whatever the number of owners (never one per user);
//!   accounting (`sacct`, or the jobcomp/filetxt log without slurmdbd) is read only for
//!   jobs that ended or vanished, all of them in one call;
//! * anything short of a clean, complete squeue answer (controller down, timeout,
//!   garbled output) makes every job *unknown*, never gone;
//! * a job squeue no longer lists is gone only after `confirm_after` consecutive polls
//!   without it AND a record in accounting; without one it stays unknown;
//! * a job squeue still lists as ended (within slurmctld's MinJobAge), or as
//!   `COMPLETING` once accounting has its end, is gone at once:
//!   the controller itself says so, which is how a server that dies before
//!   registering fails its spawn within one poll, with Slurm's reason
//!   (e.g. `OUT_OF_MEMORY`);
//! * a job is matched by id *and* by its `steward:<owner>:<server>` name *and* by its
//!   Slurm user: a job another user named after someone else's server is never adopted.
//!
//! Runs synchronously (the hub calls [`Poller::poll`] from a blocking task); needs no
//! privileges as long as the site does not set `PrivateData=jobs`.

use crate::slurm::queue::{
    self, classify, find_jobcomp, parse_job_name, parse_sacct, parse_squeue, Accounted, Evidence,
    JobState, QueueRow, StateClass,
};
use crate::slurm::run::{run_bounded, slurm_message, RunError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// One cluster as the hub's config names it (`[slurm.clusters.<name>]` or similar).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlurmCluster {
    pub name: String,
    /// `SLURM_CONF` for squeue/sacct; absent means the system default.
    #[serde(default)]
    pub conf: Option<PathBuf>,
    #[serde(default = "default_bin_dir")]
    pub bin_dir: PathBuf,
    /// Seconds one squeue/sacct call may take before the poll is "unknown".
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// The jobcomp/filetxt log (`JobCompLoc`), read to confirm an end when sacct is
    /// unavailable (no slurmdbd). Must be readable by the hub.
    #[serde(default)]
    pub jobcomp_file: Option<PathBuf>,
    /// Consecutive polls a job must be missing from squeue before accounting is asked.
    #[serde(default = "default_confirm_after")]
    pub confirm_after: u32,
    /// Seconds between the hub's polls (each jittered by up to a fifth, so hubs and
    /// clusters do not fall into step).
    #[serde(default = "default_poll_secs")]
    pub poll_secs: u64,
}

fn default_bin_dir() -> PathBuf {
    "/usr/bin".into()
}
fn default_timeout() -> u64 {
    10
}
fn default_confirm_after() -> u32 {
    2
}
fn default_poll_secs() -> u64 {
    10
}

impl SlurmCluster {
    pub fn new(name: impl Into<String>) -> SlurmCluster {
        SlurmCluster {
            name: name.into(),
            conf: None,
            bin_dir: default_bin_dir(),
            timeout_secs: default_timeout(),
            jobcomp_file: None,
            confirm_after: default_confirm_after(),
            poll_secs: default_poll_secs(),
        }
    }

    /// Checks the table the hub's config names; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (field, p) in [
            ("bin_dir", Some(&self.bin_dir)),
            ("conf", self.conf.as_ref()),
            ("jobcomp_file", self.jobcomp_file.as_ref()),
        ] {
            if let Some(p) = p.filter(|p| !p.is_absolute()) {
                return Err(format!("{field}: {} is not an absolute path", p.display()));
            }
        }
        for (field, v, max) in [
            ("timeout_secs", self.timeout_secs, 600),
            ("poll_secs", self.poll_secs, 3600),
            ("confirm_after", u64::from(self.confirm_after), 100),
        ] {
            if v == 0 || v > max {
                return Err(format!("{field}: {v} is not between 1 and {max}"));
            }
        }
        Ok(())
    }

    /// The address the hub dials a server in `job_id` at: the `NodeAddr` Slurm has for
    /// the node the job runs on, once the job is checked to be `owner`'s server (by
    /// name and Slurm user). One squeue (robust format) and one sinfo; called once per
    /// registration, not per poll.
    pub fn node_address(&self, job_id: &str, owner: &str, server: &str) -> Result<String, String> {
        let nonce = format!("~{:016x}~", rand::random::<u64>());
        let mut cmd = self.command("squeue");
        cmd.args(["--noheader", "--states=all", "--jobs", job_id, "--format"])
            .arg(queue::squeue_format(&nonce));
        let out = run_bounded(&mut cmd, None, self.timeout()).map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "squeue failed ({}): {}",
                out.status,
                slurm_message(&out.stderr)
            ));
        }
        let rows = parse_squeue(&out.stdout, &nonce)?;
        let expected = queue::job_name(owner, server);
        let row = rows
            .iter()
            .find(|r| r.job_id == job_id)
            .ok_or_else(|| format!("Slurm does not list job {job_id}"))?;
        if row.name != expected || row.user != owner {
            return Err(format!(
                "job {job_id} is {:?} of user {}, not {expected} of {owner}",
                row.name, row.user
            ));
        }
        if classify(&row.state) != StateClass::Running {
            return Err(format!("job {job_id} is {}, not running", row.state));
        }
        let node = row.nodes.trim();
        if node.is_empty()
            || !node
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(format!("job {job_id} runs on {node:?}, not on one node"));
        }
        let mut cmd = self.command("sinfo");
        cmd.args(["--noheader", "--Node", "--nodes", node, "--format", "%o"]);
        let out = run_bounded(&mut cmd, None, self.timeout()).map_err(|e| e.to_string())?;
        let addr = out.stdout.lines().map(str::trim).find(|l| !l.is_empty());
        match (out.status.success(), addr) {
            (true, Some(addr)) => resolve_node(addr),
            _ => Err(format!(
                "sinfo has no address for node {node}: {}",
                slurm_message(&out.stderr)
            )),
        }
    }

    /// A Slurm client command with a clean environment: no SBATCH_/SQUEUE_ variables
    /// of the hub's can change what it prints.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin_dir.join(program));
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            // ISO 8601 times whatever the site's default.
            .env("SLURM_TIME_FORMAT", "standard");
        if let Some(conf) = &self.conf {
            c.env("SLURM_CONF", conf);
        }
        c
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.clamp(1, 600))
    }

    /// Every job in the queue (all users, all states slurmctld still remembers), in one
    /// squeue call. Err means "unknown": the caller must not conclude anything.
    pub fn queue(&self) -> Result<Vec<QueueRow>, String> {
        let nonce = format!("~{:016x}~", rand::random::<u64>());
        let mut cmd = self.command("squeue");
        cmd.args(["--noheader", "--all", "--states=all", "--format"])
            .arg(queue::squeue_format(&nonce));
        let out = run_bounded(&mut cmd, None, self.timeout()).map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "squeue failed ({}): {}",
                out.status,
                slurm_message(&out.stderr)
            ));
        }
        parse_squeue(&out.stdout, &nonce)
    }

    /// Steward's live jobs (pending or running), for adoption after a hub restart:
    /// matched by name, and only when the Slurm user is the owner the name claims.
    pub fn steward_jobs(&self) -> Result<Vec<StewardJob>, String> {
        Ok(steward_rows(&self.queue()?)
            .into_iter()
            .filter(|j| classify(&j.row.state) != StateClass::Ended)
            .map(|j| j.into_job())
            .collect())
    }

    /// Final records of `ids` from sacct, or (sacct unavailable) the jobcomp log.
    /// Returns the records found and which source answered.
    fn accounting(&self, ids: &[&str]) -> (Vec<Accounted>, Option<Evidence>, Vec<String>) {
        let mut notes = vec![];
        let mut cmd = self.command("sacct");
        cmd.args(["--noheader", "--parsable2", "--allocations", "--allusers"])
            .args(["--format", "JobIDRaw,User,State,ExitCode", "--jobs"])
            .arg(ids.join(","));
        match run_bounded(&mut cmd, None, self.timeout()) {
            Ok(out) if out.status.success() => {
                return (parse_sacct(&out.stdout), Some(Evidence::Sacct), notes)
            }
            Ok(out) => notes.push(format!(
                "sacct: {}",
                slurm_message(&format!("{}{}", out.stdout, out.stderr))
            )),
            Err(RunError::Spawn { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                notes.push("sacct is not installed".into())
            }
            Err(e) => notes.push(e.to_string()),
        }
        let Some(path) = &self.jobcomp_file else {
            return (vec![], None, notes);
        };
        match read_tail(path, 16 << 20) {
            Ok(text) => (
                ids.iter()
                    .filter_map(|id| find_jobcomp(&text, id))
                    .collect(),
                Some(Evidence::Jobcomp),
                notes,
            ),
            Err(e) => {
                notes.push(format!("reading {}: {e}", path.display()));
                (vec![], None, notes)
            }
        }
    }
}

/// A node's `NodeAddr` as an IP address (names resolved by the system resolver).
fn resolve_node(addr: &str) -> Result<String, String> {
    if addr.parse::<std::net::IpAddr>().is_ok() {
        return Ok(addr.to_string());
    }
    use std::net::ToSocketAddrs;
    (addr, 0)
        .to_socket_addrs()
        .map_err(|e| format!("resolving node address {addr:?}: {e}"))?
        .next()
        .map(|a| a.ip().to_string())
        .ok_or_else(|| format!("node address {addr:?} resolves to nothing"))
}

/// The last `max` bytes of a file (the jobcomp log only grows).
fn read_tail(path: &std::path::Path, max: u64) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// A job Steward submitted, found in the queue by its name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StewardJob {
    pub job_id: String,
    pub owner: String,
    pub server: String,
    pub state: JobState,
}

struct NamedRow<'a> {
    owner: &'a str,
    server: &'a str,
    row: &'a QueueRow,
}

impl NamedRow<'_> {
    fn into_job(self) -> StewardJob {
        StewardJob {
            job_id: self.row.job_id.clone(),
            owner: self.owner.to_string(),
            server: self.server.to_string(),
            state: live_state(self.row),
        }
    }
}

/// Rows named `steward:<owner>:<server>` whose Slurm user is that owner.
fn steward_rows(rows: &[QueueRow]) -> Vec<NamedRow<'_>> {
    rows.iter()
        .filter_map(|row| {
            let (owner, server) = parse_job_name(&row.name)?;
            (row.user == owner).then_some(NamedRow { owner, server, row })
        })
        .collect()
}

/// The state of a job squeue lists as pending or running.
fn live_state(row: &QueueRow) -> JobState {
    match classify(&row.state) {
        StateClass::Pending => JobState::Pending {
            reason: row.reason.clone(),
            estimated_start: row.start.clone(),
        },
        StateClass::Running | StateClass::Ending => JobState::Running {
            slurm_state: row.state.clone(),
            nodes: row.nodes.clone(),
        },
        StateClass::Ended => JobState::Gone {
            final_state: row.state.clone(),
            exit_code: None,
            reason: Some(row.reason.clone()),
            evidence: Evidence::Controller,
        },
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    owner: String,
    server: String,
    /// Consecutive complete polls that did not list the job.
    absent: u32,
}

/// Calls made by one poll: the figure the benchmark reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Calls {
    pub squeue: u32,
    pub sacct: u32,
    pub jobcomp_reads: u32,
}

/// The answer of one poll.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PollReport {
    /// Every tracked job, with its state. Gone jobs are no longer tracked afterwards.
    pub jobs: Vec<StewardJob>,
    /// Live Steward jobs squeue listed that nobody tracks (adopt them, or cancel).
    pub untracked: Vec<StewardJob>,
    /// Jobs named after a Steward server but run by another user: never adopted.
    pub impostors: Vec<QueueRow>,
    pub calls: Calls,
    pub wall: Duration,
}

/// Tracks one cluster's jobs across polls (the absence counts live here).
#[derive(Debug, Clone)]
pub struct Poller {
    pub cluster: SlurmCluster,
    tracked: BTreeMap<String, Tracked>,
}

impl Poller {
    pub fn new(cluster: SlurmCluster) -> Poller {
        Poller {
            cluster,
            tracked: BTreeMap::new(),
        }
    }

    /// Starts following a job (after a submit, or when adopting one after a restart).
    /// Tracking a job again (every poll of a hub re-tracks what its store holds) keeps
    /// its absence count: only a new job, or an id now naming another server, starts
    /// from zero.
    pub fn track(&mut self, job_id: &str, owner: &str, server: &str) {
        if self
            .tracked
            .get(job_id)
            .is_some_and(|t| t.owner == owner && t.server == server)
        {
            return;
        }
        self.tracked.insert(
            job_id.to_string(),
            Tracked {
                owner: owner.to_string(),
                server: server.to_string(),
                absent: 0,
            },
        );
    }

    pub fn forget(&mut self, job_id: &str) {
        self.tracked.remove(job_id);
    }

    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// Adopts every live Steward job in the queue (one squeue call) and returns them;
    /// a hub calls this once after a restart, then polls as usual.
    pub fn adopt_all(&mut self) -> Result<Vec<StewardJob>, String> {
        let jobs = self.cluster.steward_jobs()?;
        for j in &jobs {
            self.track(&j.job_id, &j.owner, &j.server);
        }
        Ok(jobs)
    }

    /// One poll of the cluster.
    pub fn poll(&mut self) -> PollReport {
        let t0 = Instant::now();
        let mut calls = Calls {
            squeue: 1,
            ..Calls::default()
        };
        let rows = match self.cluster.queue() {
            Ok(rows) => rows,
            Err(why) => {
                let why = format!("cluster {}: {why}", self.cluster.name);
                return PollReport {
                    jobs: self
                        .tracked
                        .iter()
                        .map(|(id, t)| StewardJob {
                            job_id: id.clone(),
                            owner: t.owner.clone(),
                            server: t.server.clone(),
                            state: JobState::Unknown { why: why.clone() },
                        })
                        .collect(),
                    untracked: vec![],
                    impostors: vec![],
                    calls,
                    wall: t0.elapsed(),
                };
            }
        };
        let by_id: BTreeMap<&str, &QueueRow> =
            rows.iter().map(|r| (r.job_id.as_str(), r)).collect();
        let mut states: BTreeMap<String, JobState> = BTreeMap::new();
        // Jobs whose end we want accounting's word on: (id, what squeue said if anything).
        let mut confirm: Vec<(String, Option<&QueueRow>)> = vec![];
        let confirm_after = self.cluster.confirm_after.max(1);
        for (id, t) in self.tracked.iter_mut() {
            let expected = queue::job_name(&t.owner, &t.server);
            match by_id.get(id.as_str()) {
                Some(row) if row.name != expected || row.user != t.owner => {
                    states.insert(
                        id.clone(),
                        JobState::Unknown {
                            why: format!(
                                "job {id} is now {:?} of user {}, not {expected} of {}: the id was reused; look the server up by name",
                                row.name, row.user, t.owner
                            ),
                        },
                    );
                }
                Some(row) => {
                    t.absent = 0;
                    if matches!(classify(&row.state), StateClass::Ended | StateClass::Ending) {
                        confirm.push((id.clone(), Some(row)));
                    } else {
                        states.insert(id.clone(), live_state(row));
                    }
                }
                None => {
                    t.absent += 1;
                    if t.absent >= confirm_after {
                        confirm.push((id.clone(), None));
                    } else {
                        states.insert(
                            id.clone(),
                            JobState::Unknown {
                                why: format!(
                                    "not in the queue ({} of {confirm_after} polls before asking accounting)",
                                    t.absent
                                ),
                            },
                        );
                    }
                }
            }
        }
        if !confirm.is_empty() {
            let ids: Vec<&str> = confirm.iter().map(|(id, _)| id.as_str()).collect();
            let (records, source, notes) = self.cluster.accounting(&ids);
            calls.sacct = 1;
            if source == Some(Evidence::Jobcomp) {
                calls.jobcomp_reads = 1;
            }
            for (id, row) in &confirm {
                let owner = &self.tracked[id].owner;
                let record = records
                    .iter()
                    .rev()
                    .find(|r| &r.job_id == id && &r.user == owner);
                let state = match (row, record, source) {
                    (Some(row), Some(rec), Some(src)) => JobState::Gone {
                        final_state: rec.state.clone(),
                        exit_code: Some(rec.exit_code.clone()),
                        reason: Some(row.reason.clone()),
                        evidence: src,
                    },
                    // Still cleaning up and not yet in accounting: it holds its node.
                    (Some(row), _, _) if classify(&row.state) == StateClass::Ending => {
                        live_state(row)
                    }
                    // The controller's own record is enough to call it gone; accounting
                    // only adds the exit code, and may lag or be absent.
                    (Some(row), _, _) => JobState::Gone {
                        final_state: row.state.clone(),
                        exit_code: None,
                        reason: Some(row.reason.clone()),
                        evidence: Evidence::Controller,
                    },
                    (None, Some(rec), Some(src)) => JobState::Gone {
                        final_state: rec.state.clone(),
                        exit_code: Some(rec.exit_code.clone()),
                        reason: None,
                        evidence: src,
                    },
                    (None, _, _) => JobState::Unknown {
                        why: format!(
                            "not in the queue for {} polls, and accounting has no record of it yet{}",
                            self.tracked[id].absent,
                            if notes.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", notes.join("; "))
                            }
                        ),
                    },
                };
                states.insert(id.clone(), state);
            }
        }
        let mut jobs = vec![];
        for (id, state) in states {
            let Some(t) = self.tracked.get(&id) else {
                continue;
            };
            jobs.push(StewardJob {
                job_id: id.clone(),
                owner: t.owner.clone(),
                server: t.server.clone(),
                state: state.clone(),
            });
            if matches!(state, JobState::Gone { .. }) {
                self.tracked.remove(&id);
            }
        }
        let untracked = steward_rows(&rows)
            .into_iter()
            .filter(|j| {
                !self.tracked.contains_key(&j.row.job_id)
                    && !jobs.iter().any(|k| k.job_id == j.row.job_id)
                    && classify(&j.row.state) != StateClass::Ended
            })
            .map(|j| j.into_job())
            .collect();
        let impostors = rows
            .iter()
            .filter(|r| parse_job_name(&r.name).is_some_and(|(owner, _)| owner != r.user))
            .cloned()
            .collect();
        PollReport {
            jobs,
            untracked,
            impostors,
            calls,
            wall: t0.elapsed(),
        }
    }
}

/// The pause before the next poll: `interval` ± `fraction` (0..1) at random, so the
/// hubs of many sites (or a restarted leader) do not hit slurmctld in step.
pub fn jittered(interval: Duration, fraction: f64) -> Duration {
    let f = fraction.clamp(0.0, 1.0);
    let factor = 1.0 + f * (rand::random::<f64>() * 2.0 - 1.0);
    interval.mul_f64(factor.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_bounds() {
        let base = Duration::from_secs(10);
        for _ in 0..1000 {
            let d = jittered(base, 0.2);
            assert!(
                d >= Duration::from_secs(8) && d <= Duration::from_secs(12),
                "{d:?}"
            );
        }
        assert_eq!(jittered(base, 0.0), base);
    }

    fn row(id: &str, state: &str, user: &str, name: &str) -> QueueRow {
        QueueRow {
            job_id: id.into(),
            state: state.into(),
            user: user.into(),
            reason: "None".into(),
            start: None,
            nodes: "vm".into(),
            name: name.into(),
        }
    }

    #[test]
    fn only_the_named_owner_counts() {
        let rows = vec![
            row("1", "RUNNING", "alice", "steward:alice:default"),
            row("2", "RUNNING", "bob", "steward:alice:default"),
            row("3", "RUNNING", "bob", "wrap"),
        ];
        let named = steward_rows(&rows);
        assert_eq!(named.len(), 1);
        assert_eq!(named[0].row.job_id, "1");
    }

    /// A cluster whose commands are scripts in a temp dir, to drive every branch
    /// without a controller (the real one is exercised in tests/tests/spawner_slurm.rs).
    fn fake_cluster(dir: &std::path::Path, squeue: &str, sacct: &str) -> SlurmCluster {
        use std::os::unix::fs::PermissionsExt;
        for (name, body) in [("squeue", squeue), ("sacct", sacct)] {
            let p = dir.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut c = SlurmCluster::new("test");
        c.bin_dir = dir.to_path_buf();
        c
    }

    /// squeue that prints its records with whatever nonce it was given.
    fn squeue_printing(records: &[[&str; 7]]) -> String {
        let mut s = String::from("fmt=\"$5\"; n=\"${fmt%%<*}\"\n");
        for r in records {
            s += &format!(
                "printf '%s<%s%s|%s%s|%s%s|%s%s|%s%s|%s%s|%s%s>\\n' \"$n\" '{}' \"$n\" '{}' \"$n\" '{}' \"$n\" '{}' \"$n\" '{}' \"$n\" '{}' \"$n\" '{}' \"$n\"\n",
                r[0], r[1], r[2], r[3], r[4], r[5], r[6]
            );
        }
        s
    }

    #[test]
    fn controller_down_is_unknown_and_absence_needs_two_polls_and_accounting() {
        let dir = tempfile::tempdir().unwrap();
        let down = "echo 'squeue: error: Unable to contact slurm controller (connect failure)' >&2; exit 1";
        let mut p = Poller::new(fake_cluster(dir.path(), down, "exit 1"));
        p.track("5", "alice", "default");
        let r = p.poll();
        assert_eq!(r.calls.squeue, 1);
        assert!(
            matches!(&r.jobs[0].state, JobState::Unknown { why } if why.contains("Unable to contact")),
            "{:?}",
            r.jobs
        );
        // Empty queue, no accounting: unknown, never gone, however many polls.
        p.cluster = fake_cluster(
            dir.path(),
            "exit 0",
            "echo 'Slurm accounting storage is disabled' >&2; exit 1",
        );
        for _ in 0..3 {
            let r = p.poll();
            assert!(
                matches!(r.jobs[0].state, JobState::Unknown { .. }),
                "{:?}",
                r.jobs
            );
        }
        assert_eq!(p.tracked(), 1);
        // Accounting knows it: gone, with the exit code, after it was missing twice.
        p.cluster = fake_cluster(dir.path(), "exit 0", "echo '5|alice|CANCELLED by 0|0:15'");
        let r = p.poll();
        assert_eq!(r.calls.sacct, 1);
        assert!(
            matches!(&r.jobs[0].state, JobState::Gone { final_state, exit_code: Some(c), evidence: Evidence::Sacct, .. } if final_state == "CANCELLED" && c == "0:15"),
            "{:?}",
            r.jobs
        );
        assert_eq!(p.tracked(), 0);
    }

    #[test]
    fn ended_in_the_queue_is_gone_in_one_poll_and_impostors_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let squeue = squeue_printing(&[
            [
                "7",
                "OUT_OF_MEMORY",
                "alice",
                "OutOfMemory",
                "N/A",
                "vm",
                "steward:alice:default",
            ],
            [
                "8",
                "PENDING",
                "bob",
                "PartitionDown",
                "2026-12-07T10:00:00",
                "",
                "steward:bob:default",
            ],
            [
                "9",
                "RUNNING",
                "bob",
                "None",
                "N/A",
                "vm",
                "steward:alice:x",
            ],
        ]);
        let mut p = Poller::new(fake_cluster(dir.path(), &squeue, "exit 1"));
        p.track("7", "alice", "default");
        let r = p.poll();
        assert!(
            matches!(&r.jobs[0].state, JobState::Gone { final_state, reason: Some(reason), evidence: Evidence::Controller, .. } if final_state == "OUT_OF_MEMORY" && reason == "OutOfMemory"),
            "{:?}",
            r.jobs
        );
        assert!(r.jobs[0].state.failed());
        assert_eq!(r.untracked.len(), 1);
        assert_eq!(r.untracked[0].owner, "bob");
        assert_eq!(
            r.untracked[0].state,
            JobState::Pending {
                reason: "PartitionDown".into(),
                estimated_start: Some("2026-12-07T10:00:00".into())
            }
        );
        assert_eq!(r.impostors.len(), 1);
        assert_eq!(r.impostors[0].job_id, "9");
        // One squeue for everyone, one accounting call for the ended job.
        assert_eq!(
            r.calls,
            Calls {
                squeue: 1,
                sacct: 1,
                jobcomp_reads: 0
            }
        );
    }

    #[test]
    fn completing_is_gone_once_accounting_has_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let squeue = squeue_printing(&[[
            "7",
            "COMPLETING",
            "alice",
            "None",
            "N/A",
            "vm",
            "steward:alice:default",
        ]]);
        let mut p = Poller::new(fake_cluster(dir.path(), &squeue, "exit 0"));
        p.track("7", "alice", "default");
        let r = p.poll();
        assert!(
            matches!(&r.jobs[0].state, JobState::Running { slurm_state, .. } if slurm_state == "COMPLETING"),
            "{:?}",
            r.jobs
        );
        p.cluster = fake_cluster(dir.path(), &squeue, "echo '7|alice|OUT_OF_MEMORY|0:125'");
        let r = p.poll();
        assert!(
            matches!(&r.jobs[0].state, JobState::Gone { final_state, evidence: Evidence::Sacct, .. } if final_state == "OUT_OF_MEMORY"),
            "{:?}",
            r.jobs
        );
    }
}
