//! A browser's WebSocket message as the hub reads it: size cap, `ClientMessage` JSON,
//! then the checks the hub makes before deciding (`hub::ops::authorize`: id length, no
//! client-sent token, a known operation, a target on this owner's server). Never a
//! panic, and a message that passes re-serialises to one that parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steward_protocol::wire::{ClientMessage, OpRequest, MAX_OP_MESSAGE_BYTES};
use steward_protocol::{Operation, TaskId, WorkflowId};

/// The hub's pre-decision checks on an op, in its order (see `hub/src/ops.rs`).
fn precheck(req: &OpRequest, owner: &str) -> Result<(Operation, WorkflowId), String> {
    if req.id.is_empty() || req.id.len() > 128 {
        return Err("id".into());
    }
    if req.token.is_some() {
        return Err("token".into());
    }
    let op: Operation = req.op.parse().map_err(|_| "op".to_string())?;
    let workflow = if req.target.contains("//") {
        TaskId::parse(&req.target, owner)
            .map_err(|e| e.to_string())?
            .workflow
    } else {
        WorkflowId::parse(&req.target, owner).map_err(|e| e.to_string())?
    };
    if workflow.owner != owner {
        return Err("owner".into());
    }
    Ok((op, workflow))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() > MAX_OP_MESSAGE_BYTES {
        return;
    }
    let Ok(msg) = serde_json::from_str::<ClientMessage>(text) else {
        return;
    };
    let again = serde_json::to_string(&msg).expect("a parsed message serialises");
    assert_eq!(
        serde_json::from_str::<ClientMessage>(&again).ok().as_ref(),
        Some(&msg)
    );
    if let ClientMessage::Op(req) = msg {
        if let Ok((_, wf)) = precheck(&req, "alice") {
            assert_eq!(
                wf.owner, "alice",
                "a target escaped to another owner's server"
            );
        }
    }
});
