use std::path::PathBuf;
use steward_protocol::helper::HelperErrorCode;

/// Everything that can go wrong in the helper or while talking to it.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("helper config {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path} is not safe to trust: {why}")]
    Unsafe { path: PathBuf, why: String },
    #[error("refused: {0}")]
    Refused(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("cgroup {path}: {message}")]
    Cgroup { path: PathBuf, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: nix::Error,
    },
    #[error("helper failed: {0}")]
    Helper(String),
    /// A service the request needs (slurmctld) did not answer: try again later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("helper did not answer within {0} s")]
    Timeout(u64),
    /// The helper answered with an error reply (through a backend, not the raw client).
    #[error("{message}")]
    Reply {
        code: HelperErrorCode,
        message: String,
    },
    #[error("host {host} ({address}) is unreachable: {detail}")]
    Unreachable {
        host: String,
        address: String,
        detail: String,
    },
    #[error("host key of {host} ({address}) does not match the key pinned in {known_hosts}; refused, never auto-accepted (if the host was reinstalled, check its new key and replace its line): {detail}")]
    HostKey {
        host: String,
        address: String,
        known_hosts: PathBuf,
        detail: String,
    },
    #[error("ssh login to {host} as {user} with key {key} was refused: {detail}")]
    Auth {
        host: String,
        user: String,
        key: PathBuf,
        detail: String,
    },
    #[error("steward-spawn not found on host {host} at {path}: install it there, or fix the helper path in the pool config ({detail})")]
    HelperMissing {
        host: String,
        path: String,
        detail: String,
    },
    #[error("host {host} did not answer within {secs} s ({what}); nothing was left started")]
    HostTimeout {
        host: String,
        secs: u64,
        what: String,
    },
    /// Every host of a pool was excluded; the message is the placement's explanation.
    #[error("no host can take a new server:\n{0}")]
    NoHost(String),
}

impl SpawnError {
    /// The helper's error code when the helper itself refused, for callers that treat
    /// "not found" (already gone) differently from a failure.
    pub fn reply_code(&self) -> Option<HelperErrorCode> {
        match self {
            SpawnError::Reply { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        SpawnError::Io {
            context: context.into(),
            source,
        }
    }
    pub fn sys(context: impl Into<String>, source: nix::Error) -> Self {
        SpawnError::Sys {
            context: context.into(),
            source,
        }
    }
    pub fn cgroup(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        SpawnError::Cgroup {
            path: path.into(),
            message: message.into(),
        }
    }
}
