//! Messages this UI server adds to `steward_protocol::wire` (log tail, log fetch and
//! search). Defined here rather than in the protocol crate because only the UI server
//! produces them and the hub relays them opaquely; see docs/uiserver.md.
//!
//! WebSocket frames accepted on `/ws` are a superset of `protocol::wire::ClientMessage`:
//! ```json
//! {"type":"op","id":"1","op":"pause","target":"demo1","args":{},"token":"<jwt>"}
//! {"type":"ping"}
//! {"type":"tail","id":"t1","workflow":"demo1","cycle":"1","task":"hello","job":1,"file":"out","offset":0}
//! {"type":"untail","id":"t1"}
//! ```
//! and the UI server sends, besides `protocol::wire::ServerMessage`:
//! ```json
//! {"type":"log","id":"t1","offset":0,"data":"hello\n"}
//! {"type":"log_end","id":"t1","offset":6,"reason":"job finished"}
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use steward_protocol::wire::OpRequest;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum UiClientMessage {
    Op(OpRequest),
    /// Answered with `pong` carrying the same `data` (liveness and round-trip checks).
    Ping {
        #[serde(default)]
        data: Option<String>,
    },
    Tail(TailRequest),
    Untail {
        id: String,
    },
}

/// Follow a job log: everything from `offset`, then new bytes as the job writes them,
/// until the job is no longer running and the file is read to its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailRequest {
    pub id: String,
    pub workflow: String,
    pub cycle: String,
    pub task: String,
    /// Submit number; the latest job when absent.
    #[serde(default)]
    pub job: Option<u32>,
    #[serde(default)]
    pub file: LogFile,
    /// Byte offset to start from (default 0).
    #[serde(default)]
    pub offset: u64,
    /// Optional per-request token (ops ⊇ [read]); the connection's token covers it
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UiServerMessage {
    /// A chunk of a tailed log; `offset` is the byte offset of `data`'s first byte.
    Log {
        id: String,
        offset: u64,
        data: String,
    },
    /// The tail is over; `offset` is where it stopped.
    LogEnd {
        id: String,
        offset: u64,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFile {
    #[default]
    Out,
    Err,
    Status,
    Activity,
}

impl LogFile {
    pub fn file_name(self) -> &'static str {
        match self {
            LogFile::Out => "job.out",
            LogFile::Err => "job.err",
            LogFile::Status => "job.status",
            LogFile::Activity => "job-activity.log",
        }
    }
    pub fn parse(s: &str) -> Option<LogFile> {
        match s {
            "out" | "job.out" => Some(LogFile::Out),
            "err" | "job.err" => Some(LogFile::Err),
            "status" | "job.status" => Some(LogFile::Status),
            "activity" | "job-activity.log" => Some(LogFile::Activity),
            _ => None,
        }
    }
}

/// `POST /api/op` body (the HTTP twin of a WebSocket `op`; the token is the header's).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOp {
    #[serde(default)]
    pub id: String,
    pub op: String,
    pub target: String,
    #[serde(default)]
    pub args: BTreeMap<String, serde_json::Value>,
}

/// `GET /api/search` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResult {
    pub matches: Vec<SearchMatch>,
    /// More matches exist than `max`.
    pub truncated: bool,
    pub files_scanned: u64,
    pub bytes_scanned: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchMatch {
    /// Relative to the run directory: `log/job/<cycle>/<task>/<NN>/job.out`.
    pub file: String,
    pub cycle: String,
    pub task: String,
    pub job: u32,
    /// `out`, `err`, `status` or `activity`.
    pub stream: String,
    /// 1-based line number.
    pub line: u64,
    /// The line (lossy UTF-8, cut at 1000 bytes).
    pub text: String,
}
