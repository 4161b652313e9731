//! The `steward policy` commands as a person runs them: exit codes, where output
//! goes, group lookup, and explain = decide.

use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use steward_policy::cli::{run, GroupLookup, PolicyCommand};
use steward_policy::{decide, Operation, SitePolicy, Subject, UserPolicy};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_steward-policy"))
}

fn out(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn examples() -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/policy");
    (root.join("site.toml"), root.join("user-example.toml"))
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x");
    std::fs::write(&p, "").unwrap();
    std::fs::metadata(&p).unwrap().uid() == 0
}

#[test]
fn shipped_examples_pass_check() {
    let (site, user) = examples();
    let mut c = bin();
    c.arg("check").arg(&user).arg(&site).arg("--strict");
    if !is_root() {
        c.arg("--no-owner-check");
    }
    let (code, stdout, stderr) = out(&c.output().unwrap());
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("site policy OK") && stderr.contains("user policy OK"),
        "{stderr}"
    );
}

#[test]
fn check_reports_problems_and_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    let warn = d.path().join("warn.toml");
    std::fs::write(&warn, "[grants]\nalice = [\"READ\", \"pasue\"]\n").unwrap();
    let bad = d.path().join("bad.toml");
    std::fs::write(&bad, "[grants]\nalice = []\n").unwrap();

    let (code, stdout, _) = out(&bin().args(["check"]).arg(&warn).output().unwrap());
    assert_eq!(code, 0);
    assert!(
        stdout.contains(&format!("{}:2:18: warning:", warn.display())),
        "{stdout}"
    );
    assert!(stdout.contains("did you mean \"pause\"?"));

    let (code, _, _) = out(&bin()
        .args(["check", "--strict"])
        .arg(&warn)
        .output()
        .unwrap());
    assert_eq!(code, 1, "--strict makes warnings fatal");

    let (code, stdout, _) = out(&bin().args(["check"]).arg(&warn).arg(&bad).output().unwrap());
    assert_eq!(code, 1);
    assert!(
        stdout.contains(&format!("{}:2:9: error:", bad.display())),
        "{stdout}"
    );
    assert!(stdout.contains("use \"!ALL\""));

    let (code, stdout, _) = out(&bin().args(["check", "--json"]).arg(&bad).output().unwrap());
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v[0]["line"], 2);
    assert_eq!(v[0]["col"], 9);
    assert_eq!(v[0]["severity"], "error");

    // Forcing the kind: a user file checked as a site file is wrong.
    let (code, stdout, _) = out(&bin()
        .args(["check", "--site", "--no-owner-check"])
        .arg(&warn)
        .output()
        .unwrap());
    assert_eq!(code, 1);
    assert!(stdout.contains("belongs in a user policy file"), "{stdout}");

    // Missing file.
    let (code, stdout, _) = out(&bin()
        .args(["check"])
        .arg(d.path().join("nope.toml"))
        .output()
        .unwrap());
    assert_eq!(code, 1);
    assert!(stdout.contains("cannot open"), "{stdout}");
}

#[test]
fn check_refuses_a_site_file_others_can_write() {
    let d = tempfile::tempdir().unwrap();
    let site = d.path().join("site.toml");
    std::fs::write(&site, "[owners.\"*\".\"*\"]\ndefault = \"READ\"\n").unwrap();
    std::fs::set_permissions(&site, std::fs::Permissions::from_mode(0o664)).unwrap();
    let (code, stdout, _) = out(&bin().arg("check").arg(&site).output().unwrap());
    assert_eq!(code, 1);
    assert!(
        stdout.contains("writable by") || stdout.contains("must be owned by root"),
        "{stdout}"
    );
    // A user file is not held to this.
    let user = d.path().join("user.toml");
    std::fs::write(&user, "[grants]\na = \"READ\"\n").unwrap();
    std::fs::set_permissions(&user, std::fs::Permissions::from_mode(0o664)).unwrap();
    assert_eq!(out(&bin().arg("check").arg(&user).output().unwrap()).0, 0);
    // A draft may be checked without the ownership rule.
    assert_eq!(
        out(&bin()
            .args(["check", "--no-owner-check"])
            .arg(&site)
            .output()
            .unwrap())
        .0,
        0
    );

    if is_root() {
        std::fs::set_permissions(&site, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(out(&bin().arg("check").arg(&site).output().unwrap()).0, 0);
        std::os::unix::fs::chown(&site, Some(65534), None).unwrap();
        let (code, stdout, _) = out(&bin().arg("check").arg(&site).output().unwrap());
        assert_eq!(code, 1);
        assert!(
            stdout.contains("must be owned by root, but its owner is uid 65534"),
            "{stdout}"
        );
    }
}

#[test]
fn permitted_prints_a_sorted_json_array() {
    let (site, user) = examples();
    let run = |extra: &[&str], with_user: bool| {
        let mut c = bin();
        c.arg("permitted").arg("--site").arg(&site);
        if with_user {
            c.arg("--user-policy").arg(&user);
        }
        c.args(extra);
        out(&c.output().unwrap())
    };
    let (code, stdout, _) = run(
        &[
            "--owner",
            "bob",
            "--owner-groups",
            "atmos",
            "--user",
            "alice",
            "--user-groups",
            "atmos",
        ],
        true,
    );
    assert_eq!(code, 0);
    assert_eq!(stdout, "[\"pause\",\"read\",\"resume\"]\n");
    // Outside group atmos the site limit for alice is READ.
    let (code, stdout, _) = run(
        &[
            "--owner",
            "bob",
            "--owner-groups",
            "atmos",
            "--user",
            "alice",
            "--user-groups",
            "",
        ],
        true,
    );
    assert_eq!((code, stdout.as_str()), (0, "[\"read\"]\n"));
    // Without a user file: site defaults.
    let (code, stdout, _) = run(
        &[
            "--owner",
            "bob",
            "--owner-groups",
            "",
            "--user",
            "alice",
            "--user-groups",
            "",
        ],
        false,
    );
    assert_eq!((code, stdout.as_str()), (0, "[\"read\"]\n"));
    // A full Cylc-style id names the owner; the owner must agree with --owner.
    let (code, stdout, _) = run(
        &[
            "--owner",
            "bob",
            "--owner-groups",
            "atmos",
            "--user",
            "alice",
            "--user-groups",
            "atmos",
            "--workflow",
            "~bob/atmosphere_stage/run1//1/task",
        ],
        true,
    );
    assert_eq!(code, 0);
    assert!(stdout.contains("broadcast"));
    let (code, _, stderr) = run(
        &[
            "--owner",
            "bob",
            "--owner-groups",
            "",
            "--user",
            "alice",
            "--user-groups",
            "",
            "--workflow",
            "~eve/x",
        ],
        true,
    );
    assert_eq!(code, 2, "{stderr}");
    // The standalone binary has no group lookup: leaving groups out is an error that says what to do.
    let (code, _, stderr) = run(&["--owner", "bob", "--user", "alice"], true);
    assert_eq!(code, 2);
    assert!(stderr.contains("pass the groups explicitly"), "{stderr}");
}

#[test]
fn permitted_with_a_bad_policy_fails_with_the_check_message() {
    let d = tempfile::tempdir().unwrap();
    let site = d.path().join("site.toml");
    std::fs::write(&site, "[owners.\"*\".\"*\"]\ndefault = \"READ\"\n").unwrap();
    let user = d.path().join("user.toml");
    std::fs::write(&user, "[grants]\nalice = [\"READ\", 3]\n").unwrap();
    let o = bin()
        .arg("permitted")
        .arg("--site")
        .arg(&site)
        .arg("--user-policy")
        .arg(&user)
        .args([
            "--owner",
            "o",
            "--owner-groups",
            "",
            "--user",
            "alice",
            "--user-groups",
            "",
        ])
        .output()
        .unwrap();
    let (code, stdout, stderr) = out(&o);
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    assert!(
        stderr.contains(&format!("{}:2:18: error:", user.display())),
        "{stderr}"
    );
}

struct Counting {
    calls: RefCell<Vec<String>>,
}

impl GroupLookup for Counting {
    fn groups_of(&self, user: &str) -> Result<Vec<String>, String> {
        self.calls.borrow_mut().push(user.to_string());
        match user {
            "bob" => Ok(vec!["atmos".into()]),
            "carol" => Ok(vec!["ops".into()]),
            other => Err(format!("no such user {other}")),
        }
    }
}

#[derive(clap::Parser)]
struct Top {
    #[command(subcommand)]
    cmd: PolicyCommand,
}

fn parse(args: &[&str]) -> PolicyCommand {
    use clap::Parser;
    Top::try_parse_from(std::iter::once("steward").chain(args.iter().copied()))
        .unwrap()
        .cmd
}

#[test]
fn groups_are_looked_up_only_when_not_given() {
    let (site, user) = examples();
    let (site, user) = (site.display().to_string(), user.display().to_string());
    let base = [
        "permitted",
        "--site",
        &site,
        "--user-policy",
        &user,
        "--owner",
        "bob",
        "--user",
        "carol",
    ];

    let l = Counting {
        calls: RefCell::new(vec![]),
    };
    let mut args = base.to_vec();
    args.extend(["--owner-groups", "atmos", "--user-groups", "ops"]);
    assert_eq!(run(parse(&args), &l), 0);
    assert!(l.calls.borrow().is_empty(), "flags given: no lookup");

    let mut args = base.to_vec();
    args.extend(["--user-groups", ""]);
    assert_eq!(run(parse(&args), &l), 0);
    assert_eq!(
        *l.calls.borrow(),
        vec!["bob"],
        "only the owner looked up; \"\" means no groups"
    );

    l.calls.borrow_mut().clear();
    assert_eq!(run(parse(&base), &l), 0);
    assert_eq!(*l.calls.borrow(), vec!["bob", "carol"]);

    let mut args = base.to_vec();
    args[8] = "nobody";
    assert_eq!(run(parse(&args), &l), 2, "a failed lookup is a usage error");
}

#[test]
fn explain_is_the_decision() {
    let (site_p, user_p) = examples();
    let site = SitePolicy::parse(
        &std::fs::read_to_string(&site_p).unwrap(),
        &site_p.display().to_string(),
    )
    .unwrap();
    let user = UserPolicy::parse(
        &std::fs::read_to_string(&user_p).unwrap(),
        &user_p.display().to_string(),
    )
    .unwrap();
    let owner = Subject::new("bob", ["atmos"]);
    for (who, groups, wf, op) in [
        ("carol", "ops", "", Operation::Stop),
        ("carol", "ops", "", Operation::Pause),
        (
            "alice",
            "atmos",
            "atmosphere_stage/run1",
            Operation::Broadcast,
        ),
        ("dave", "", "private/a/b", Operation::Read),
        ("olduser", "ops", "", Operation::Read),
        ("bob", "", "", Operation::Clean),
    ] {
        let actor = Subject::new(who, steward_policy::cli::parse_groups(groups));
        let d = decide(&site, Some(&user), &owner, &actor, wf, op);
        let mut c = bin();
        c.arg("explain")
            .arg("--site")
            .arg(&site_p)
            .arg("--user-policy")
            .arg(&user_p);
        c.args([
            "--owner",
            "bob",
            "--owner-groups",
            "atmos",
            "--user",
            who,
            "--user-groups",
            groups,
            "--op",
            op.name(),
        ]);
        if !wf.is_empty() {
            c.args(["--workflow", wf]);
        }
        let (code, text, _) = out(&c.output().unwrap());
        assert_eq!(code, 0);
        let lines: Vec<&str> = text.lines().map(str::trim_start).collect();
        assert_eq!(lines, d.reasons, "text explain prints Decision.reasons");
        let (_, json, _) = out(&c.arg("--json").output().unwrap());
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&json).unwrap(),
            serde_json::to_value(&d).unwrap()
        );
    }
}

#[test]
fn explain_words() {
    let (site_p, user_p) = examples();
    let run = |who: &str, groups: &str, op: &str| {
        let o = bin()
            .arg("explain")
            .arg("--site")
            .arg(&site_p)
            .arg("--user-policy")
            .arg(&user_p)
            .args([
                "--owner",
                "bob",
                "--owner-groups",
                "atmos",
                "--user",
                who,
                "--user-groups",
                groups,
                "--op",
                op,
            ])
            .output()
            .unwrap();
        out(&o)
    };
    let (code, text, _) = run("carol", "ops", "stop");
    assert_eq!(code, 0);
    assert!(
        text.starts_with("denied: stop is granted to carol but also negated"),
        "{text}"
    );
    assert!(
        text.contains("user-example.toml:10: [grants] \"group:ops\""),
        "{text}"
    );
    assert!(text.contains("negates it (via \"!stop\")"), "{text}");
    assert!(
        text.contains("site.toml:19: [owners.\"*\".\"group:ops\"] limit"),
        "{text}"
    );

    let (_, text, _) = run("carol", "ops", "clean");
    assert!(
        text.contains("but also negates it (via \"!clean\")"),
        "{text}"
    );
    assert!(
        text.starts_with("denied: the site limit for carol on bob's workflows negates clean"),
        "{text}"
    );

    let (_, text, _) = run("olduser", "", "read");
    assert!(text.starts_with("denied:"), "{text}");
    assert!(text.contains("site defaults apply"), "{text}");

    // GraphQL-style operation names work as in Cylc; a typo gets a suggestion.
    assert_eq!(run("carol", "ops", "ReleaseHoldPoint").0, 0);
    let (code, _, stderr) = run("carol", "ops", "stpo");
    assert_eq!(code, 2);
    assert!(stderr.contains("did you mean \"stop\"?"), "{stderr}");
}
