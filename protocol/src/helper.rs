//! The JSON verbs spoken between the hub and the privileged `steward-spawn` helper.
//!
//! One request per exec on stdin, one reply on stdout. The request says *what* the hub
//! wants; everything that decides *whether* it is allowed (executables, uid floor, user
//! name pattern, environment, limits) comes from the helper's own root-owned config.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "snake_case", deny_unknown_fields)]
pub enum HelperRequest {
    Start(StartRequest),
    Stop {
        user: String,
        server: String,
        /// Seconds between SIGTERM and killing the whole cgroup.
        #[serde(default)]
        grace_secs: Option<u64>,
    },
    Status {
        user: String,
        server: String,
    },
    List,
    /// How busy this host is, for placement across a pool of hosts.
    HostStatus,
    Adopt {
        user: String,
        server: String,
        pid: u32,
    },
    ReadUserFile {
        user: String,
        /// Path relative to the user's home directory.
        path: String,
        #[serde(default)]
        max_bytes: Option<u64>,
    },
    /// Submit the server as a Slurm batch job, as the owner.
    SlurmSubmit(SlurmSubmitRequest),
    /// Cancel the owner's job (`scancel`, as the owner) and remove its bootstrap file.
    SlurmCancel {
        user: String,
        server: String,
        /// A cluster name from the helper config's `[slurm.<name>]` tables.
        cluster: String,
        job_id: String,
    },
}

/// Like [`StartRequest`], plus the cluster; resources come from the profile's `slurm`
/// table in the helper config, never from the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSubmitRequest {
    pub user: String,
    pub server: String,
    /// A cluster name from the helper config's `[slurm.<name>]` tables.
    pub cluster: String,
    /// Key into the helper's executable allow-list, never a path.
    pub executable: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Requested environment; the helper keeps only allow-listed names.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Bytes the server reads on its stdin (its TLS material); handed over through a
    /// file only the owner can read, which the job script unlinks before the server runs.
    #[serde(default)]
    pub stdin: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    pub user: String,
    /// Server name, unique per user (`default` for the usual one).
    pub server: String,
    /// Key into the helper's executable allow-list, never a path.
    pub executable: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Requested environment; the helper keeps only allow-listed names.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Bytes written to the child's stdin and then closed (the server's TLS material).
    #[serde(default)]
    pub stdin: Option<String>,
    /// Resource profile name from the helper config; `None` means its default.
    #[serde(default)]
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    pub user: String,
    pub server: String,
    pub cgroup: String,
    /// Pids currently in the server's cgroup.
    pub pids: Vec<u32>,
    pub running: bool,
    /// Set when the kernel OOM-killed something in the cgroup.
    #[serde(default)]
    pub oom_killed: bool,
}

/// A host's load as its helper reads it from `/proc`, for placement. Load averages are
/// in thousandths so the reply stays `Eq` (and exact on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    /// The host's own name (`uname -n`), to tell hosts apart in logs.
    pub hostname: String,
    /// CPUs this host offers.
    pub cpus: u32,
    /// 1-, 5- and 15-minute load averages × 1000.
    pub load_milli: [u64; 3],
    pub mem_total_bytes: u64,
    /// `MemAvailable` from `/proc/meminfo`: what new processes can get without swapping.
    pub mem_available_bytes: u64,
    /// Steward servers with a running process under this helper's cgroup prefix.
    pub servers: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum HelperReply {
    Started {
        pid: u32,
        cgroup: String,
    },
    Stopped {
        killed: u32,
        cgroup_removed: bool,
    },
    Status(ServerStatus),
    List {
        servers: Vec<ServerStatus>,
    },
    Adopted(ServerStatus),
    HostStatus(HostStatus),
    File {
        content: String,
        size: u64,
    },
    SlurmSubmitted {
        cluster: String,
        job_id: String,
        /// `steward:<owner>:<server>`: how a restarted hub finds the job again.
        job_name: String,
    },
    SlurmCancelled {
        job_id: String,
    },
    Error {
        code: HelperErrorCode,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HelperErrorCode {
    BadRequest,
    Refused,
    NotFound,
    TooLarge,
    /// A service the verb needs (e.g. slurmctld) did not answer; try again later.
    Unavailable,
    Internal,
}
