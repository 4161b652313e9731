//! WebSocket messages: browser ↔ hub ↔ UI server.
//!
//! The hub parses only what it must decide (`op` messages); snapshots, deltas and log
//! tails pass through as opaque JSON so the relay stays cheap.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest operation message the hub will parse.
pub const MAX_OP_MESSAGE_BYTES: usize = 64 * 1024;

/// A message a browser sends. Unknown `type`s are an error frame, not a disconnect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Ask for an operation; the hub decides, audits, signs and forwards it.
    Op(OpRequest),
    /// Keep the connection (and the owner's server) alive. Relayed to the UI server,
    /// which answers `pong` with the same `data`, so it also measures the whole path.
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpRequest {
    /// Client-chosen correlation id, echoed in the result.
    pub id: String,
    /// Operation name; validated by the hub so a typo gets a precise error.
    pub op: String,
    /// `workflow` or `workflow//cycle/task[/job]`, owner implied by the URL.
    pub target: String,
    #[serde(default)]
    pub args: BTreeMap<String, serde_json::Value>,
    /// Set only by the hub on the way to the UI server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Messages towards the browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Snapshot {
        workflows: Vec<WorkflowSummary>,
    },
    Delta {
        workflow: String,
        #[serde(default)]
        state: Option<String>,
        #[serde(default)]
        tasks: Vec<TaskState>,
    },
    Result {
        id: String,
        ok: bool,
        message: String,
    },
    Denied {
        id: String,
        op: String,
        reason: String,
    },
    Error {
        #[serde(default)]
        id: Option<String>,
        message: String,
    },
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowSummary {
    pub name: String,
    pub state: String,
    #[serde(default)]
    pub counts: BTreeMap<String, u32>,
    #[serde(default)]
    pub tasks: Vec<TaskState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskState {
    pub cycle: String,
    pub task: String,
    pub state: String,
    #[serde(default)]
    pub job: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hub forwards `args` re-serialised, so a number must reach the UI server as the
    /// browser sent it. Without serde_json's exact float parsing this input (found by the
    /// ws_message fuzz target) came back one unit in the last place off.
    #[test]
    fn op_args_survive_a_reserialisation_exactly() {
        let text = r#"{"type": "op", "id": "1", "op": "trigger", "target": "~s/02", "args": {"flow": [11111111311111.4444444444436316]}}"#;
        let msg: ClientMessage = serde_json::from_str(text).unwrap();
        let again = serde_json::to_string(&msg).unwrap();
        assert_eq!(serde_json::from_str::<ClientMessage>(&again).unwrap(), msg);
    }
}
