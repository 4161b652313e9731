//! Every bad input is reported with file:line:col, and "did you mean" where a typo
//! is likely. One test per kind of problem.

use steward_policy::{check_source, PolicyKind, SitePolicy, UserPolicy};

/// All diagnostics for `src`, formatted as `check` prints them.
fn diags(src: &str, kind: PolicyKind) -> Vec<String> {
    let (_, d) = check_source(src, "f.toml", Some(kind));
    d.iter().map(|d| d.to_string()).collect()
}

fn has(lines: &[String], want: &str) {
    assert!(
        lines.iter().any(|l| l.contains(want)),
        "want {want:?} in:\n{}",
        lines.join("\n")
    );
}

#[test]
fn empty_list_is_an_error_everywhere() {
    let u = diags("[grants]\nalice = []\n", PolicyKind::User);
    has(
        &u,
        "f.toml:2:9: error: [grants] \"alice\": an empty list [] is not allowed",
    );
    has(&u, "use \"!ALL\"");
    let w = diags(
        "[[workflows]]\nmatch = \"a/*\"\ngrants = { bob = [] }\n",
        PolicyKind::User,
    );
    has(
        &w,
        "f.toml:3:18: error: [[workflows]] #1 grants \"bob\": an empty list",
    );
    let s = diags(
        "[owners.\"*\".x]\ndefault = \"READ\"\nlimit = []\n",
        PolicyKind::Site,
    );
    has(
        &s,
        "f.toml:3:9: error: [owners.\"*\".\"x\"] limit: an empty list",
    );
    assert!(UserPolicy::parse("[grants]\nalice = []\n", "f").is_err());
}

#[test]
fn unknown_operation_is_a_warning_with_suggestion() {
    let src = "[grants]\nalice = [\"READ\", \"pasue\"]\n";
    let d = diags(src, PolicyKind::User);
    assert_eq!(d, vec!["f.toml:2:18: warning: [grants] \"alice\": unknown operation or level \"pasue\" (ignored, as Cylc does); did you mean \"pause\"?"]);
    // A warning does not stop the file from taking effect, and is kept on the policy.
    let p = UserPolicy::parse(src, "f.toml").unwrap();
    assert_eq!(p.warnings().len(), 1);
    assert_eq!((p.warnings()[0].line, p.warnings()[0].col), (2, 18));
}

#[test]
fn misspelt_level_and_negation() {
    let d = diags(
        "[owners.\"*\".\"*\"]\nlimit = [\"CONTRL\", \"!stpo\", \"control\"]\n",
        PolicyKind::Site,
    );
    has(&d, "f.toml:2:10: warning: [owners.\"*\".\"*\"] limit: unknown operation or level \"CONTRL\" (ignored, as Cylc does); did you mean \"CONTROL\"?");
    has(&d, "f.toml:2:20: warning: [owners.\"*\".\"*\"] limit: unknown operation or level \"!stpo\" (ignored, as Cylc does: this negation removes nothing); did you mean \"!stop\"?");
    has(
        &d,
        "f.toml:2:29: warning: [owners.\"*\".\"*\"] limit: unknown operation or level \"control\"",
    );
    has(&d, "did you mean \"CONTROL\"?");
}

#[test]
fn graphql_style_names_get_the_snake_case_hint() {
    let d = diags("[grants]\nx = \"SetHoldPoint\"\n", PolicyKind::User);
    has(&d, "f.toml:2:5: warning:");
    has(&d, "did you mean \"set_hold_point\"?");
}

#[test]
fn several_names_in_one_string() {
    let d = diags("[grants]\nx = \"READ, CONTROL\"\n", PolicyKind::User);
    has(&d, "f.toml:2:5: warning:");
    has(&d, "write a list [\"READ\", \"CONTROL\"]");
}

#[test]
fn non_string_values() {
    let d = diags(
        "[grants]\na = 3\nb = true\nc = [\"READ\", 4]\nd = [[\"READ\"]]\ne = { x = 1 }\n",
        PolicyKind::User,
    );
    has(&d, "f.toml:2:5: error: [grants] \"a\": expected an operation or level name, or a list of them, found an integer");
    has(&d, "f.toml:3:5: error: [grants] \"b\": expected an operation or level name, or a list of them, found a boolean");
    has(&d, "f.toml:4:14: error: [grants] \"c\": expected an operation or level name (a string), found an integer");
    has(&d, "f.toml:5:6: error: [grants] \"d\": expected an operation or level name (a string), found a list");
    has(&d, "f.toml:6:5: error: [grants] \"e\": expected an operation or level name, or a list of them, found a table");
}

#[test]
fn bad_keys() {
    let d = diags(
        "[grants]\n\"group:\" = \"READ\"\n\"grp:ops\" = \"READ\"\n\"a b\" = \"READ\"\n\"ali*\" = \"READ\"\n\"\" = \"READ\"\n",
        PolicyKind::User,
    );
    has(&d, "f.toml:2:1: error: key \"group:\" has no group name");
    has(&d, "f.toml:3:1: error: key \"grp:ops\" is not a user name or group; did you mean \"group:ops\"?");
    has(
        &d,
        "f.toml:4:1: error: key \"a b\" is not a valid user name",
    );
    has(
        &d,
        "f.toml:5:1: error: key \"ali*\": patterns are not supported",
    );
    has(&d, "f.toml:6:1: error: empty key");
    let s = diags(
        "[owners.\"group:\".\"*\"]\ndefault = \"READ\"\n",
        PolicyKind::Site,
    );
    has(&s, "f.toml:1:9: error: key \"group:\" has no group name");
}

#[test]
fn duplicate_keys() {
    let d = diags(
        "[grants]\nalice = \"READ\"\n\"alice\" = \"CONTROL\"\n",
        PolicyKind::User,
    );
    has(&d, "f.toml:3:1: error: invalid TOML: duplicate key `alice`");
    let s = diags(
        "[owners.\"*\".\"*\"]\ndefault = \"READ\"\n[owners.'*'.'*']\nlimit = \"ALL\"\n",
        PolicyKind::Site,
    );
    assert_eq!(s.len(), 1);
    assert!(s[0].starts_with("f.toml:3:"), "{s:?}");
    assert!(s[0].contains("error: invalid TOML:"), "{s:?}");
}

#[test]
fn wrong_types_and_shapes() {
    has(
        &diags("owners = \"x\"\n", PolicyKind::Site),
        "f.toml:1:10: error: \"owners\" must be a table",
    );
    has(
        &diags("[owners.\"*\"]\n\"*\" = \"READ\"\n", PolicyKind::Site),
        "f.toml:2:7: error: [owners.\"*\".\"*\"] must be a table with `default` and/or `limit`",
    );
    has(
        &diags("[owners]\nalice = 1\n", PolicyKind::Site),
        "f.toml:2:9: error: owners.\"alice\" must be a table of user keys",
    );
    has(
        &diags("grants = [1]\n", PolicyKind::User),
        "f.toml:1:10: error: \"grants\" must be a table",
    );
    has(
        &diags("workflows = \"x\"\n", PolicyKind::User),
        "f.toml:1:13: error: \"workflows\" must be an array of tables",
    );
    let w = diags(
        "[[workflows]]\nmatch = 3\ngrants = \"READ\"\n",
        PolicyKind::User,
    );
    has(
        &w,
        "f.toml:2:9: error: [[workflows]] #1: `match` must be a string",
    );
    has(
        &w,
        "f.toml:3:10: error: [[workflows]] #1: `grants` must be a table",
    );
    let m = diags(
        "[[workflows]]\ngrants = { a = \"READ\" }\n",
        PolicyKind::User,
    );
    has(&m, "f.toml:1:1: error: [[workflows]] #1 has no `match`");
    has(
        &diags(
            "[[workflows]]\nmatch = \"a/[\"\ngrants = {}\n",
            PolicyKind::User,
        ),
        "f.toml:2:9: error: [[workflows]] #1: bad glob \"a/[\"",
    );
}

#[test]
fn unknown_keys_with_suggestions() {
    let s = diags(
        "[owners.\"*\".\"*\"]\ndefualt = \"READ\"\nlimt = \"READ\"\n[ownres.a.b]\n",
        PolicyKind::Site,
    );
    has(&s, "f.toml:2:1: error: unknown key \"defualt\" in [owners.\"*\".\"*\"]; did you mean \"default\"?");
    has(
        &s,
        "f.toml:3:1: error: unknown key \"limt\" in [owners.\"*\".\"*\"]; did you mean \"limit\"?",
    );
    has(
        &s,
        "f.toml:4:2: error: unknown key \"ownres\" in the site policy; did you mean \"owners\"?",
    );
    let u = diags("[grant]\na = \"READ\"\n[[workflow]]\n", PolicyKind::User);
    has(
        &u,
        "f.toml:1:2: error: unknown key \"grant\" in the user policy; did you mean \"grants\"?",
    );
    has(&u, "f.toml:3:3: error: unknown key \"workflow\" in the user policy; did you mean \"workflows\"?");
    // The wrong kind of file says so.
    has(
        &diags("[grants]\na = \"READ\"\n", PolicyKind::Site),
        "f.toml:1:2: error: \"grants\" belongs in a user policy file",
    );
    has(
        &diags("[owners.a.b]\ndefault = \"READ\"\n", PolicyKind::User),
        "f.toml:1:2: error: \"owners\" belongs in the site policy file",
    );
}

#[test]
fn bad_names() {
    let d = diags(
        "[grants]\na = \"!\"\nb = \"!!stop\"\nc = \"\"\n",
        PolicyKind::User,
    );
    has(
        &d,
        "f.toml:2:5: error: [grants] \"a\": \"!\" must be followed by an operation or level",
    );
    has(
        &d,
        "f.toml:3:5: error: [grants] \"b\": \"!!stop\" negates twice",
    );
    has(
        &d,
        "f.toml:4:5: error: [grants] \"c\": empty name; use \"!ALL\"",
    );
}

#[test]
fn syntax_errors_have_positions() {
    let d = diags("[grants\na = \"READ\"\n", PolicyKind::User);
    assert_eq!(d.len(), 1);
    assert!(d[0].starts_with("f.toml:1:"), "{d:?}");
    assert!(d[0].contains("error: invalid TOML"), "{d:?}");
    let e = SitePolicy::parse("[owners.\"*\".\"*\"]\ndefault = READ\n", "s.toml").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("s.toml:2:11: error: invalid TOML"),
        "{e}"
    );
}

#[test]
fn entry_without_default_or_limit_warns() {
    let d = diags("[owners.\"*\".bob]\n", PolicyKind::Site);
    assert_eq!(d.len(), 1);
    has(
        &d,
        "f.toml:1:1: warning: [owners.\"*\".\"bob\"] has neither `default` nor `limit`",
    );
}

#[test]
fn kind_detection() {
    let (k, d) = check_source("[owners.\"*\".\"*\"]\ndefault = \"READ\"\n", "f", None);
    assert_eq!((k, d.len()), (Some(PolicyKind::Site), 0));
    let (k, _) = check_source("[grants]\na = \"READ\"\n", "f", None);
    assert_eq!(k, Some(PolicyKind::User));
    let (k, _) = check_source("[[workflows]]\nmatch = \"x\"\ngrants = {}\n", "f", None);
    assert_eq!(k, Some(PolicyKind::User));
    let (k, d) = check_source("title = 1\n", "f", None);
    assert_eq!(k, None);
    assert!(d[0]
        .to_string()
        .starts_with("f:1:1: error: cannot tell whether"));
}

#[test]
fn diagnostics_type_is_an_error_and_displays_one_per_line() {
    fn takes_error<E: std::error::Error>(_: &E) {}
    let e = UserPolicy::parse("[grants]\na = []\nb = 1\n", "u.toml").unwrap_err();
    takes_error(&e);
    let text = e.to_string();
    assert_eq!(text.lines().count(), 2);
    assert!(text.lines().all(|l| l.starts_with("u.toml:")));
}
