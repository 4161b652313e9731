//! Property tests: the engine against a naive transcription of Cylc's algorithm, the
//! algebraic promises (owner always all, negation wins, grants are monotone, limits
//! cap), and a parser that never panics.

mod common;

use common::*;
use proptest::prelude::*;
use std::collections::BTreeSet;
use steward_policy::{check_source, decide, permitted, OpSet, Operation, SitePolicy, UserPolicy};

fn compile(w: &World) -> (SitePolicy, Option<UserPolicy>) {
    let site = SitePolicy::parse(&w.site_toml(), "site")
        .unwrap_or_else(|d| panic!("{d}\n{}", w.site_toml()));
    let user = w
        .user_toml()
        .map(|u| UserPolicy::parse(&u, "user").unwrap_or_else(|d| panic!("{d}\n{u}")));
    (site, user)
}

fn run(w: &World) -> OpSet {
    let (s, u) = compile(w);
    permitted(&s, u.as_ref(), &w.owner, &w.actor, w.workflow)
}

fn names(set: OpSet) -> BTreeSet<String> {
    set.names().into_iter().map(String::from).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The indexed bitmask engine agrees with Cylc's set algorithm, and `decide`
    /// agrees with `permitted` for every operation.
    #[test]
    fn engine_matches_reference_model(w in world()) {
        let (s, u) = compile(&w);
        let got = permitted(&s, u.as_ref(), &w.owner, &w.actor, w.workflow);
        prop_assert_eq!(names(got), reference(&w), "site:\n{}\nuser:\n{:?}", w.site_toml(), w.user_toml());
        for op in Operation::ALL {
            let d = decide(&s, u.as_ref(), &w.owner, &w.actor, w.workflow, op);
            prop_assert_eq!(d.allowed, got.contains(op));
            prop_assert_eq!(d.class, op.class());
            let verdict = if d.allowed { "allowed: " } else { "denied: " };
            prop_assert!(d.reasons[0].starts_with(verdict), "{:?}", d.reasons);
        }
    }

    #[test]
    fn owner_always_has_everything(mut w in world()) {
        w.actor = w.owner.clone();
        prop_assert_eq!(run(&w), OpSet::ALL);
    }

    /// A negation in a list the decision consults removes the operation, whatever
    /// else grants it.
    #[test]
    fn negation_always_wins(w in world(), op in prop::sample::select(&Operation::ALL[..]), on_site in any::<bool>()) {
        prop_assume!(w.actor.name != w.owner.name);
        let mut w2 = w.clone();
        let neg: &'static str = Box::leak(format!("!{}", op.name()).into_boxed_str());
        if on_site {
            // Negate in a limit that matches this owner and user.
            match w2.site.iter_mut().find(|e| e.owner == GKey::Any && e.user == GKey::User(USERS.iter().find(|u| **u == w.actor.name).unwrap())) {
                Some(e) => e.limit.get_or_insert_with(|| e.default.clone().unwrap_or_default()).push(neg),
                None => w2.site.push(GSiteEntry { owner: GKey::Any, user: GKey::User(USERS.iter().find(|u| **u == w.actor.name).unwrap()), default: None, limit: Some(vec![neg]) }),
            }
        } else {
            // Negate in the user's own [grants] key, with no workflow entry in play.
            w2.workflow = ""; // no particular workflow: no [[workflows]] entry applies
            let me = GKey::User(USERS.iter().find(|u| **u == w.actor.name).unwrap());
            let u = w2.user.get_or_insert_with(|| GUser { grants: vec![], workflows: vec![] });
            match u.grants.iter_mut().find(|(k, _)| *k == me) {
                Some((_, l)) => l.push(neg),
                None => u.grants.push((me, vec![neg])),
            }
        }
        prop_assert!(!run(&w2).contains(op));
    }

    /// Adding positive names to a [grants] entry that exists never removes anything.
    #[test]
    fn adding_a_grant_never_removes(w in world(), extra in prop::collection::vec(prop::sample::select(POSITIVE_NAMES), 1..3), pick in any::<prop::sample::Index>()) {
        prop_assume!(w.user.as_ref().is_some_and(|u| !u.grants.is_empty()));
        let before = run(&w);
        let mut w2 = w.clone();
        let grants = &mut w2.user.as_mut().unwrap().grants;
        let i = pick.index(grants.len());
        grants[i].1.extend(extra);
        let after = run(&w2);
        prop_assert_eq!(after.intersect(before), before, "lost {:?}", before.minus(after));
    }

    /// Adding a site entry with only positive names (more defaults, a wider limit)
    /// never removes anything.
    #[test]
    fn widening_the_site_never_removes(w in world(), o in key(), u in key(), d in prop::collection::vec(prop::sample::select(POSITIVE_NAMES), 1..3), l in prop::collection::vec(prop::sample::select(POSITIVE_NAMES), 1..3)) {
        prop_assume!(!w.site.iter().any(|e| e.owner == o && e.user == u));
        let before = run(&w);
        let mut w2 = w.clone();
        w2.site.push(GSiteEntry { owner: o, user: u, default: Some(d), limit: Some(l) });
        let after = run(&w2);
        prop_assert_eq!(after.intersect(before), before);
    }

    /// The result never exceeds the union of the matching site limits (each falling
    /// back to its default), and is empty when no site entry matches.
    #[test]
    fn limits_always_cap(w in world()) {
        prop_assume!(w.actor.name != w.owner.name);
        let mut limits = BTreeSet::new();
        let mut any = false;
        for e in &w.site {
            if e.owner.matches(&w.owner) && e.user.matches(&w.actor) {
                any = true;
                let l = e.limit.clone().or_else(|| e.default.clone()).unwrap_or_default();
                limits.extend(l.iter().map(|s| s.to_string()));
            }
        }
        let cap = expand_and_process(&limits);
        let got = names(run(&w));
        prop_assert!(got.is_subset(&cap), "{:?} not within {:?}", got, cap);
        if !any {
            prop_assert!(got.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parser_never_panics_on_arbitrary_text(s in any::<String>()) {
        let _ = SitePolicy::parse(&s, "f");
        let _ = UserPolicy::parse(&s, "f");
        let _ = check_source(&s, "f", None);
    }

    #[test]
    fn parser_never_panics_on_arbitrary_bytes(b in prop::collection::vec(any::<u8>(), 0..512)) {
        let s = String::from_utf8_lossy(&b);
        let _ = SitePolicy::parse(&s, "f");
        let _ = UserPolicy::parse(&s, "f");
    }

    /// TOML-shaped noise reaches the policy checks, not just the TOML parser.
    #[test]
    fn parser_never_panics_on_policy_shaped_text(
        s in r#"((\[(owners|grants|\[workflows\]|ownres)(\.("[*a-z:!]{0,6}"|[a-z]{1,4})){0,3}\]|[a-z"*:!]{1,8} = ("[A-Za-z!_, ]{0,10}"|\[("[A-Za-z!_]{0,8}"|[0-9]|\[\])?(, "[A-Z!a-z]{0,6}")*\]|[0-9]+|true|\{ ?[a-z]+ = "[A-Z]{0,4}" ?\}))\n){0,10}"#
    ) {
        for r in [SitePolicy::parse(&s, "f").err(), UserPolicy::parse(&s, "f").err()].into_iter().flatten() {
            // Every error carries a real position.
            for d in r.iter() {
                prop_assert!(d.line >= 1 && d.col >= 1, "{}", d);
            }
        }
    }
}
