//! Errors of the audit log. They are `Clone` because the writer thread hands the same
//! failure to every append of a group commit and keeps it for [`crate::AuditLog::health`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The log cannot be written right now (disk full, I/O error, permission). The
    /// hub answers 503 with this text and retries; nothing partial is left behind.
    #[error(
        "audit log unavailable, operations are refused until it can be written: {path}: {cause}"
    )]
    Unavailable {
        path: PathBuf,
        cause: String,
        errno: Option<i32>,
    },
    /// The audit directory cannot be opened or continued.
    #[error("cannot open audit log in {dir}: {what}")]
    Open { dir: PathBuf, what: String },
    /// The log ends before the checkpoint the head file outside the log directory
    /// signed: records were cut off its end. The hub must not start on it.
    #[error(
        "audit log in {dir} ends at seq {log_ends} but the head file {head} signed seq {head_seq} (written {head_time}): records were cut off the end; run `steward audit verify --head {head}`"
    )]
    Truncated {
        dir: PathBuf,
        head: PathBuf,
        log_ends: u64,
        head_seq: u64,
        head_time: String,
    },
    /// A file is not a valid audit log at this line.
    #[error("{}:{line}: {what}", file.display())]
    Corrupt {
        file: PathBuf,
        line: u64,
        what: String,
    },
    /// Reading a file failed.
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: String,
        errno: Option<i32>,
    },
    /// The caller handed in a record the log will not write.
    #[error("invalid audit record: {0}")]
    InvalidRecord(String),
    /// The writer thread is gone (only after a panic in it, which is a bug).
    #[error("audit log writer has stopped")]
    Closed,
}

impl AuditError {
    pub(crate) fn unavailable(path: &Path, err: &io::Error) -> AuditError {
        AuditError::Unavailable {
            path: path.to_path_buf(),
            cause: err.to_string(),
            errno: err.raw_os_error(),
        }
    }

    pub(crate) fn io(path: &Path, err: &io::Error) -> AuditError {
        AuditError::Io {
            path: path.to_path_buf(),
            cause: err.to_string(),
            errno: err.raw_os_error(),
        }
    }

    pub(crate) fn open(dir: &Path, what: impl Into<String>) -> AuditError {
        AuditError::Open {
            dir: dir.to_path_buf(),
            what: what.into(),
        }
    }

    /// The OS error number behind the failure, if there was one (`ENOSPC`, `EIO`, ...).
    pub fn errno(&self) -> Option<i32> {
        match self {
            AuditError::Unavailable { errno, .. } | AuditError::Io { errno, .. } => *errno,
            _ => None,
        }
    }

    /// True when the log cannot be written: the hub should answer 503 and retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuditError::Unavailable { .. } | AuditError::Closed)
    }
}

/// Why `verify` failed: the file, the 1-based line (when the problem is a line), the
/// sequence number of the record when it could be read, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    pub file: PathBuf,
    pub line: Option<u64>,
    pub seq: Option<u64>,
    pub what: String,
}

impl VerifyError {
    pub(crate) fn at(file: &Path, line: u64, seq: Option<u64>, what: impl Into<String>) -> Self {
        VerifyError {
            file: file.to_path_buf(),
            line: Some(line),
            seq,
            what: what.into(),
        }
    }

    pub(crate) fn file(file: &Path, what: impl Into<String>) -> Self {
        VerifyError {
            file: file.to_path_buf(),
            line: None,
            seq: None,
            what: what.into(),
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        write!(f, ": {}", self.what)
    }
}

impl std::error::Error for VerifyError {}
