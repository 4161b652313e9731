//! The user policy parser (an owner's `~/.steward/policy.toml`, written by a
//! possibly hostile owner) on arbitrary text, decided under the shipped site policy.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use steward_policy::{decide, permitted, SitePolicy, Subject, UserPolicy};
use steward_protocol::Operation;

fn site() -> &'static SitePolicy {
    static SITE: OnceLock<SitePolicy> = OnceLock::new();
    SITE.get_or_init(|| {
        SitePolicy::parse(include_str!("../../etc/policy/site.toml"), "site.toml")
            .unwrap_or_else(|d| panic!("the shipped site policy does not parse: {d}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(user) = UserPolicy::parse(text, "policy.toml") else {
        return;
    };
    let owner = Subject::new("alice", ["atmos"]);
    for actor in [
        Subject::new("bob", ["ops"]),
        Subject::new("carl", ["atmos"]),
    ] {
        for wf in ["", "atmosphere_stage/run1", "x"] {
            let ops = permitted(site(), Some(&user), &owner, &actor, wf);
            for op in [
                Operation::Read,
                Operation::Pause,
                Operation::Clean,
                Operation::Broadcast,
            ] {
                let d = decide(site(), Some(&user), &owner, &actor, wf, op);
                assert_eq!(
                    d.allowed,
                    ops.contains(op),
                    "decide and permitted disagree on {op:?}"
                );
            }
            // The site caps every grant: bob (ops) may never clean, whatever alice writes.
            assert!(!ops.contains(Operation::Clean) || actor.name != "bob");
        }
    }
});
