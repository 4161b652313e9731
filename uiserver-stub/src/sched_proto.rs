//! The UI server ↔ scheduler protocol: JSON lines over `~/.steward/run/<wf>/scheduler.sock`
//! (mode 0600, so only the owner can connect).
//!
//! Requests (UI server → scheduler), one per line:
//! ```json
//! {"cmd":"subscribe"}
//! {"cmd":"op","id":7,"op":"pause","cycle":null,"task":null,"job":null,"args":{}}
//! {"cmd":"detail","id":8}
//! ```
//! Events (scheduler → UI server):
//! ```json
//! {"type":"state","state":{...WorkflowState...}}          after subscribe, or after lag
//! {"type":"delta","status":"paused","tasks":[{"cycle":"1","task":"a","state":"running","job":1}]}
//! {"type":"reply","id":7,"ok":true,"message":"paused"}
//! {"type":"detail","id":8,"state":{...}}
//! ```
//! Deltas are pushed the moment the scheduler changes state, never polled.

use crate::state::{WorkflowState, WorkflowStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use steward_protocol::wire::TaskState;
use steward_protocol::Operation;

/// Longest line either side accepts.
pub const MAX_LINE: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum SchedRequest {
    Subscribe,
    Op {
        id: u64,
        op: Operation,
        #[serde(default)]
        cycle: Option<String>,
        #[serde(default)]
        task: Option<String>,
        #[serde(default)]
        job: Option<u32>,
        #[serde(default)]
        args: BTreeMap<String, serde_json::Value>,
    },
    Detail {
        id: u64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SchedEvent {
    State {
        state: WorkflowState,
    },
    Delta {
        #[serde(default)]
        status: Option<WorkflowStatus>,
        #[serde(default)]
        tasks: Vec<TaskState>,
    },
    Reply {
        id: u64,
        ok: bool,
        message: String,
    },
    Detail {
        id: u64,
        state: Box<WorkflowState>,
    },
}

/// Reads one `\n`-terminated line of at most `MAX_LINE` bytes; `Ok(None)` at EOF.
pub async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<()>> {
    use tokio::io::AsyncBufReadExt;
    buf.clear();
    loop {
        let available = r.fill_buf().await?;
        if available.is_empty() {
            return Ok(if buf.is_empty() { None } else { Some(()) });
        }
        match memchr::memchr(b'\n', available) {
            Some(i) => {
                buf.extend_from_slice(&available[..i]);
                r.consume(i + 1);
                return Ok(Some(()));
            }
            None => {
                let n = available.len();
                buf.extend_from_slice(available);
                r.consume(n);
            }
        }
        if buf.len() > MAX_LINE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "line longer than the protocol limit",
            ));
        }
    }
}
