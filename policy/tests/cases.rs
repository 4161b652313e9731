//! The Cylc-derived cases (`tests/cylc_cases/`) and Steward's own
//! (`tests/steward_cases/`), run through the library and through the
//! `permitted` command (the public contract the acceptance suite uses).

mod common;

use common::case_files;
use std::process::Command;
use steward_policy::{permitted, SitePolicy, Subject, UserPolicy};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_steward-policy")
}

#[test]
fn every_case_through_the_library_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let mut n_cases = 0;
    let mut n_errors = 0;
    for (path, cf) in case_files() {
        assert!(!cf.source.is_empty());
        for (si, sc) in cf.scenario.iter().enumerate() {
            let site_path = dir.path().join(format!("site-{si}.toml"));
            std::fs::write(&site_path, &sc.site).unwrap();
            let user_path = dir.path().join(format!("user-{si}.toml"));
            if let Some(u) = &sc.user_policy {
                std::fs::write(&user_path, u).unwrap();
            }
            let ctx = format!("{} / {}", path.display(), sc.name);

            if let Some(err) = &sc.expect_error {
                n_errors += 1;
                let (src, origin) = if err.file == "site" {
                    (sc.site.as_str(), site_path.display().to_string())
                } else {
                    (
                        sc.user_policy.as_deref().unwrap(),
                        user_path.display().to_string(),
                    )
                };
                let diags = if err.file == "site" {
                    SitePolicy::parse(src, &origin).err()
                } else {
                    UserPolicy::parse(src, &origin).err()
                }
                .unwrap_or_else(|| panic!("{ctx}: expected an error"));
                let want = format!("{origin}:{}:{}: error:", err.line, err.col);
                let text = diags.to_string();
                assert!(
                    text.contains(&want) && text.contains(&err.contains),
                    "{ctx}: want {want} … {:?}, got:\n{text}",
                    err.contains
                );
                // And the CLI refuses to answer, printing the same diagnostic.
                let mut cmd = Command::new(bin());
                cmd.args(["permitted", "--site"]).arg(&site_path);
                if sc.user_policy.is_some() {
                    cmd.arg("--user-policy").arg(&user_path);
                }
                cmd.args([
                    "--owner",
                    "me",
                    "--owner-groups",
                    "",
                    "--user",
                    "other",
                    "--user-groups",
                    "",
                ]);
                let out = cmd.output().unwrap();
                assert_eq!(out.status.code(), Some(1), "{ctx}");
                assert!(
                    String::from_utf8_lossy(&out.stderr).contains(&want),
                    "{ctx}"
                );
                continue;
            }

            let site = SitePolicy::parse(&sc.site, "site").unwrap_or_else(|d| panic!("{ctx}: {d}"));
            let user = sc
                .user_policy
                .as_ref()
                .map(|u| UserPolicy::parse(u, "user").unwrap_or_else(|d| panic!("{ctx}: {d}")));
            for c in &sc.case {
                n_cases += 1;
                let owner = Subject::new(&c.owner, &c.owner_groups);
                let actor = Subject::new(&c.user, &c.user_groups);
                let wf = c.workflow.as_deref().unwrap_or("");
                let got = permitted(&site, user.as_ref(), &owner, &actor, wf);
                let mut want = c.expected.clone();
                want.sort();
                assert_eq!(got.names(), want, "{ctx} / {} (library)", c.id);

                let mut cmd = Command::new(bin());
                cmd.args(["permitted", "--site"]).arg(&site_path);
                if sc.user_policy.is_some() {
                    cmd.arg("--user-policy").arg(&user_path);
                }
                cmd.args([
                    "--owner",
                    &c.owner,
                    "--owner-groups",
                    &c.owner_groups.join(","),
                ]);
                cmd.args(["--user", &c.user, "--user-groups", &c.user_groups.join(",")]);
                if let Some(w) = &c.workflow {
                    cmd.args(["--workflow", w]);
                }
                let out = cmd.output().unwrap();
                assert_eq!(
                    out.status.code(),
                    Some(0),
                    "{ctx} / {}: {}",
                    c.id,
                    String::from_utf8_lossy(&out.stderr)
                );
                let printed: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(printed, want, "{ctx} / {} (cli)", c.id);
                let raw = String::from_utf8(out.stdout).unwrap();
                assert_eq!(
                    raw.trim(),
                    serde_json::to_string(&want).unwrap(),
                    "compact sorted JSON array"
                );
            }
        }
    }
    assert!(n_cases >= 40, "only {n_cases} cases ran");
    assert!(n_errors >= 4);
}
