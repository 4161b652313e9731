//! casbin-rs as a differential oracle: the casbin export of a policy, enforced by
//! casbin, must give the engine's answer for every operation — on random policies
//! and on every Cylc-derived and Steward case.

#[path = "../../policy/tests/common/mod.rs"]
mod common;

use casbin::prelude::*;
use common::*;
use proptest::prelude::*;
use steward_policy::{export, permitted, Operation, SitePolicy, Subject, UserPolicy};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// A casbin enforcer for `owner`'s export, knowing `actor`'s groups.
fn enforcer(
    rt: &tokio::runtime::Runtime,
    site: &SitePolicy,
    user: Option<&UserPolicy>,
    owner: &Subject,
    actor: &Subject,
) -> Enforcer {
    let ex = export::casbin(site, user, owner).unwrap();
    let mut policy = ex.policy.clone();
    for g in &actor.groups {
        policy += &format!("g, {}, group:{g}\n", actor.name);
    }
    rt.block_on(async {
        let m = DefaultModel::from_str(&ex.model).await.unwrap();
        Enforcer::new(m, StringAdapter::new(policy)).await.unwrap()
    })
}

fn assert_agree(
    e: &Enforcer,
    site: &SitePolicy,
    user: Option<&UserPolicy>,
    owner: &Subject,
    actor: &Subject,
    workflow: &str,
    ctx: &str,
) {
    let ours = permitted(site, user, owner, actor, workflow);
    for op in Operation::ALL {
        let theirs = e
            .enforce((
                actor.name.as_str(),
                owner.name.as_str(),
                workflow,
                op.name(),
            ))
            .unwrap();
        assert_eq!(
            theirs,
            ours.contains(op),
            "{ctx}: {op} for {actor:?} on {owner:?} {workflow:?}; ours {ours:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn casbin_agrees_on_random_policies(w in world()) {
        let rt = runtime();
        let site = SitePolicy::parse(&w.site_toml(), "site").unwrap();
        let user = w.user_toml().map(|u| UserPolicy::parse(&u, "user").unwrap());
        let e = enforcer(&rt, &site, user.as_ref(), &w.owner, &w.actor);
        let ctx = format!("site:\n{}\nuser:\n{}", w.site_toml(), w.user_toml().unwrap_or_default());
        for wf in WORKFLOWS {
            assert_agree(&e, &site, user.as_ref(), &w.owner, &w.actor, wf, &ctx);
        }
    }
}

#[test]
fn casbin_agrees_on_every_case_file() {
    let rt = runtime();
    let mut n = 0;
    for (path, cf) in case_files() {
        for sc in cf.scenario.iter().filter(|s| s.expect_error.is_none()) {
            let site = SitePolicy::parse(&sc.site, "site").unwrap();
            let user = sc
                .user_policy
                .as_ref()
                .map(|u| UserPolicy::parse(u, "user").unwrap());
            for c in &sc.case {
                let owner = Subject::new(&c.owner, &c.owner_groups);
                let actor = Subject::new(&c.user, &c.user_groups);
                let e = enforcer(&rt, &site, user.as_ref(), &owner, &actor);
                // casbin always has a workflow; the engine's "no workflow" is checked
                // with a name no glob in the cases matches.
                let wf = c.workflow.as_deref().unwrap_or("zz-no-match");
                let ctx = format!("{} / {} / {}", path.display(), sc.name, c.id);
                assert_agree(&e, &site, user.as_ref(), &owner, &actor, wf, &ctx);
                let want: Vec<&str> = c.expected.iter().map(String::as_str).collect();
                let theirs: Vec<&str> = Operation::ALL
                    .iter()
                    .filter(|op| {
                        e.enforce((c.user.as_str(), c.owner.as_str(), wf, op.name()))
                            .unwrap()
                    })
                    .map(|op| op.name())
                    .collect();
                assert_eq!(theirs, want, "{ctx}: casbin vs expected");
                n += 1;
            }
        }
    }
    assert!(n >= 40);
}

/// The files `steward policy export --casbin DIR` writes load with casbin's own
/// file adapter and agree too. (The command's own code, parsed as the binary parses it:
/// this workspace does not build the policy crate's binary.)
#[test]
fn exported_files_load_in_casbin() {
    use clap::Parser;
    #[derive(Parser)]
    struct Args {
        #[command(subcommand)]
        cmd: steward_policy::cli::PolicyCommand,
    }
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let args = Args::try_parse_from([
        "steward-policy".to_string(),
        "export".into(),
        "--casbin".into(),
        dir.path().display().to_string(),
        "--site".into(),
        format!("{root}/../etc/policy/site.toml"),
        "--user-policy".into(),
        format!("{root}/../etc/policy/user-example.toml"),
        "--owner".into(),
        "bob".into(),
        "--owner-groups".into(),
        "atmos".into(),
    ])
    .unwrap();
    assert_eq!(
        steward_policy::cli::run(args.cmd, &steward_policy::cli::NoLookup),
        0
    );
    let site = SitePolicy::parse(
        &std::fs::read_to_string(format!("{root}/../etc/policy/site.toml")).unwrap(),
        "s",
    )
    .unwrap();
    let user = UserPolicy::parse(
        &std::fs::read_to_string(format!("{root}/../etc/policy/user-example.toml")).unwrap(),
        "u",
    )
    .unwrap();
    let owner = Subject::new("bob", ["atmos"]);
    let rt = runtime();
    let model_path = dir.path().join("model.conf").display().to_string();
    let policy_path = dir.path().join("policy.csv").display().to_string();
    let mut e = rt.block_on(async {
        let m = DefaultModel::from_file(model_path).await.unwrap();
        Enforcer::new(m, FileAdapter::new(policy_path))
            .await
            .unwrap()
    });
    let people = [
        Subject::new("alice", ["atmos"]),
        Subject::new("carol", ["ops"]),
        Subject::new("dave", Vec::<String>::new()),
        Subject::new("olduser", ["ops"]),
        Subject::new("bob", ["atmos"]),
    ];
    for p in &people {
        for g in &p.groups {
            rt.block_on(e.add_grouping_policy(vec![p.name.clone(), format!("group:{g}")]))
                .unwrap();
        }
    }
    for p in &people {
        for wf in ["atmosphere_stage/run1", "private/x/y", "ocean"] {
            assert_agree(&e, &site, Some(&user), &owner, p, wf, "etc/policy examples");
        }
    }
}
