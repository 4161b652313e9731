//! Workflow, task and operation-target ids (`~owner/workflow//cycle/task/job`): never a
//! panic, and every id that parses is unambiguous — printing and parsing it again gives
//! the same id, and no segment can walk a path (`.`/`..`, empty, `/` in an owner).
#![no_main]

use libfuzzer_sys::fuzz_target;
use steward_protocol::{ids, Operation, TaskId, WorkflowId};

fn no_path_tricks(owner: &str, name: &str) {
    assert!(
        ids::validate_user_name(owner),
        "owner {owner:?} passed the parser"
    );
    assert!(!owner.contains('/'));
    for seg in name.split('/') {
        assert!(
            !seg.is_empty() && !seg.starts_with('.'),
            "segment {seg:?} in {name:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The default owner comes from a URL path segment, so it is hostile too.
    let (default_owner, id) = text.split_once('\n').unwrap_or(("alice", text));
    if let Ok(w) = WorkflowId::parse(id, default_owner) {
        no_path_tricks(&w.owner, &w.name);
        assert_eq!(WorkflowId::parse(&w.to_string(), "nobody").as_ref(), Ok(&w));
    }
    if let Ok(t) = TaskId::parse(id, default_owner) {
        no_path_tricks(&t.workflow.owner, &t.workflow.name);
        assert!(!t.cycle.starts_with('.') && !t.cycle.contains('/'));
        assert_eq!(TaskId::parse(&t.to_string(), "nobody").as_ref(), Ok(&t));
        let _ = t.dotted();
    }
    if let Ok(op) = id.parse::<Operation>() {
        assert_eq!(op.name().parse::<Operation>().ok(), Some(op));
    }
});
