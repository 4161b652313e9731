use super::*;
use crate::{permitted, SitePolicy, Subject, UserPolicy};

const CYLC: &str = r#"# A Cylc UI Server jupyter_config.py
c.ServerApp.open_browser = False
c.CylcUIServer.site_authorization = {
    "*": {  # for every owner's workflows
        "*": {  # any authenticated user
            "default": "READ",
        },
        "group:ops": {
            'default': ['READ', 'CONTROL'],
            "limit": ["ALL", "!clean",],
        },
    },
    "bob": {
        "alice": {"default": ["READ", 'pause', "reinstall_reload"], "limit": "ALL",},
    },
}

c.CylcUIServer.user_authorization = {
    "group:ops": ("READ", "CONTROL"),
    'carl': ["READ", "pause", "setHoldPoint", "frobnicate"],  # trailing comment
}
"#;

#[test]
fn a_cylc_config_becomes_steward_policy_with_the_same_answers() {
    let out = import(CYLC, "jupyter_config.py");
    let site_src = out.site_toml.as_deref().unwrap();
    let user_src = out.user_toml.as_deref().unwrap();
    let site =
        SitePolicy::parse(site_src, "site.toml").unwrap_or_else(|d| panic!("{site_src}\n{d:?}"));
    let user =
        UserPolicy::parse(user_src, "user.toml").unwrap_or_else(|d| panic!("{user_src}\n{d:?}"));
    assert!(site.warnings().is_empty(), "{:?}", site.warnings());
    assert!(user.warnings().is_empty(), "{:?}", user.warnings());

    let bob = Subject::new("bob", Vec::<String>::new());
    let alice = Subject::new("alice", Vec::<String>::new());
    let dora = Subject::new("dora", ["ops"]);
    let got = permitted(&site, None, &bob, &alice, "w");
    assert_eq!(got.names(), vec!["pause", "read", "reload"]);
    let got = permitted(&site, None, &bob, &dora, "w");
    assert!(got.contains(Operation::Stop) && !got.contains(Operation::Clean));
    // carl is named by the user file but only `*` limits him on the site: READ.
    let carl = Subject::new("carl", Vec::<String>::new());
    assert_eq!(
        permitted(&site, Some(&user), &bob, &carl, "w").names(),
        vec!["read"]
    );

    let msgs: Vec<String> = out.report.iter().map(|p| p.to_string()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("reinstall_reload") && m.contains("reload")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("setHoldPoint") && m.contains("set_hold_point")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("20:") && m.contains("frobnicate")),
        "{msgs:?}"
    );
    assert_eq!(out.report.len(), 3, "{msgs:?}");
}

#[test]
fn literals_parse_with_both_quotes_comments_and_trailing_commas() {
    let src = "{'a': \"b\", \"c\": [True, False, None,], # x\n 'd\\'q': ('e',),}";
    let (v, end) = parse_literal(src, 0).unwrap();
    assert_eq!(end, src.len());
    let Py::Dict(items) = v.value else { panic!() };
    assert_eq!(items.len(), 3);
    assert_eq!(items[2].0.value, Py::Str("d'q".into()));
    assert_eq!((items[1].1.line, items[1].1.col), (1, 17));
    assert!(matches!(&items[1].1.value, Py::List(l) if l.len() == 3));
}

#[test]
fn bad_literals_are_reported_with_line_and_col() {
    for (src, line, col, needle) in [
        ("x = {'a': get_groups()}", 1, 11, "not a literal"),
        ("x = {'a': f\"{u}\"}", 1, 11, "not a literal"),
        ("x = {'a': 'b' + 'c'}", 1, 15, "expression"),
        ("x = {'a': 'b\n}", 1, 11, "unterminated"),
        ("x = {'a': 1}", 1, 11, "not a literal"),
        ("x = {'a': @}", 1, 11, "does not start"),
        ("x = {'a' 'b'}", 1, 10, "expression"),
        ("x = ['a' 'b']", 1, 10, "expression"),
        ("x = {'a': ['b'}", 1, 15, "expected ','"),
        ("x = {'a': 'b'.upper()}", 1, 14, "expression"),
        ("x = ", 1, 5, "end of the file"),
        ("x = {'a': '''b'''}", 1, 11, "triple"),
        ("x = {'a': '\\x41'}", 1, 12, "escape"),
    ] {
        let err = parse_literal(src, 3).unwrap_err();
        assert_eq!((err.line, err.col), (line, col), "{src}: {err}");
        assert!(err.message.contains(needle), "{src}: {err}");
    }
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert!(parse_literal(&deep, 0)
        .unwrap_err()
        .message
        .contains("deeper"));
}

#[test]
fn what_cannot_be_carried_is_reported_not_guessed() {
    let src = r#"import os
c.CylcUIServer.site_authorization = {"*": {"*": {"default": os.environ["X"]}}}
c.CylcUIServer.user_authorization["bob"] = ["READ"]
if True:
    c.CylcUIServer.user_authorization = {"bob": ["READ"]}
c.CylcUIServer.user_authorization = {"carl": [], "dan": ["READ"], None: ["READ"]}
"#;
    let out = import(src, "x.py");
    assert!(out.site_toml.is_none());
    let user = out.user_toml.unwrap();
    assert!(
        user.contains("\"dan\" = [\"READ\"]") && !user.contains("carl"),
        "{user}"
    );
    let lines: Vec<usize> = out.report.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![2, 3, 5, 6, 6], "{:?}", out.report);
    assert!(out.report[0]
        .message
        .contains("site_authorization not carried over"));
    assert!(out.report[3].message.contains("[]"));
}

#[test]
fn nothing_to_import_is_not_an_empty_policy() {
    let out = import("c.ServerApp.port = 8888\n", "x.py");
    assert_eq!(out, Imported::default());
}

#[test]
fn run_refuses_to_overwrite_and_reports_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("jupyter_config.py");
    std::fs::write(
        &cfg,
        "c.CylcUIServer.user_authorization = {'bob': ['READ']}\n",
    )
    .unwrap();
    let out = dir.path().join("user.toml");
    let args = ImportArgs {
        cylc: cfg.clone(),
        site_out: None,
        user_out: Some(out.clone()),
    };
    assert_eq!(run(&args), 0);
    assert!(std::fs::read_to_string(&out).unwrap().contains("[grants]"));
    assert_eq!(run(&args), 2, "an existing policy is never overwritten");
    let missing = ImportArgs {
        cylc: dir.path().join("nope.py"),
        site_out: None,
        user_out: None,
    };
    assert_eq!(run(&missing), 2);
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;
    proptest! {
        #[test]
        fn never_panics(src in "(c\\.CylcUIServer\\.(site|user)_authorization = |[{}\\[\\]()'\",:#!\\\\ \n]|True|None|[a-zé*]{1,4}){0,40}") {
            let _ = import(&src, "f");
            let _ = parse_literal(&src, 0);
        }
    }
}
