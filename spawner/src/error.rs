use std::path::PathBuf;

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
}

impl SpawnError {
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
