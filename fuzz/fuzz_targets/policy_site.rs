//! The site policy parser on arbitrary text: never a panic, and whatever parses decides
//! the same way through `permitted` (the fast path) and `decide` (the explained one).
#![no_main]

use libfuzzer_sys::fuzz_target;
use steward_policy::{decide, permitted, SitePolicy, Subject};
use steward_protocol::Operation;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(site) = SitePolicy::parse(text, "site.toml") else {
        return;
    };
    let owner = Subject::new("alice", ["atmos"]);
    for actor in [
        Subject::new("bob", ["ops"]),
        Subject::new("alice", ["atmos"]),
        Subject::new("olduser", Vec::<String>::new()),
    ] {
        let ops = permitted(&site, None, &owner, &actor, "atmosphere_stage/run1");
        for op in [
            Operation::Read,
            Operation::Pause,
            Operation::Clean,
            Operation::Broadcast,
        ] {
            let d = decide(&site, None, &owner, &actor, "atmosphere_stage/run1", op);
            assert_eq!(
                d.allowed,
                ops.contains(op),
                "decide and permitted disagree on {op:?}"
            );
            assert!(!d.reasons.is_empty(), "a decision without a reason");
        }
    }
});
