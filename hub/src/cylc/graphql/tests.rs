use super::*;
use serde_json::json;

const OWNER: &str = "alice";

fn known() -> Vec<String> {
    ["w1", "w2", "other", "nested/run1"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn post_json(body: Json) -> Verdict {
    post_json_with(body, Some(&known()))
}

fn post_json_with(body: Json, catalog: Catalog) -> Verdict {
    let body = body.to_string();
    classify_http(
        &HttpRequest {
            method: "POST",
            path_suffix: "cylc/graphql",
            query_string: "",
            content_type: Some("application/json"),
            body: body.as_bytes(),
            owner: OWNER,
        },
        catalog,
    )
}

fn req<'a>(
    method: &'a str,
    path: &'a str,
    qs: &'a str,
    ct: Option<&'a str>,
    body: &'a str,
) -> Verdict {
    let k = known();
    classify_http(
        &HttpRequest {
            method,
            path_suffix: path,
            query_string: qs,
            content_type: ct,
            body: body.as_bytes(),
            owner: OWNER,
        },
        Some(&k),
    )
}

fn calls(v: Verdict) -> Vec<MutationCall> {
    match v {
        Verdict::Decide(c) => c,
        other => panic!("expected a decision, got {other:?}"),
    }
}

fn refused(v: Verdict) -> Refusal {
    match v {
        Verdict::Refuse(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn wf(name: &str) -> WorkflowId {
    WorkflowId::parse(name, OWNER).unwrap()
}

const PAUSE: &str = r#"mutation ($w: [WorkflowID]!) { pause(workflows: $w) { result } }"#;

#[test]
fn the_cylc_ui_pause_is_one_decision() {
    let c = calls(post_json(json!({
        "query": PAUSE, "variables": {"w": ["~alice/w1"]}
    })));
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].op, Operation::Pause);
    assert_eq!(c[0].field, "pause");
    assert_eq!(c[0].response_key, "pause");
    assert_eq!(c[0].workflows, vec![wf("w1")]);
}

#[test]
fn every_cylc_mutation_maps_to_an_operation() {
    let mut seen = std::collections::BTreeSet::new();
    for (f, _) in MUTATIONS {
        let op = mutation_operation(f).unwrap();
        seen.insert(op);
        let q = format!(r#"mutation {{ {f}(workflows: ["w1"]) {{ result }} }}"#);
        let c = calls(post_json(json!({ "query": q })));
        assert_eq!(c[0].op, op, "{f}");
    }
    // Every Steward mutation is reachable; only `read` is not a mutation.
    assert_eq!(seen.len(), 21);
    assert_eq!(
        mutation_operation("reinstallReload"),
        Some(Operation::Reload)
    );
    assert_eq!(
        mutation_operation("reinstallRestart"),
        Some(Operation::Play)
    );
    assert_eq!(mutation_operation("ext_trigger"), None);
}

#[test]
fn queries_and_subscriptions_read() {
    assert_eq!(
        post_json(json!({"query": "{ workflows { id } }"})),
        Verdict::Read
    );
    assert_eq!(
        post_json(json!({"query": "query Q { workflows { id status } }", "operationName": "Q"})),
        Verdict::Read
    );
    assert_eq!(
        post_json(json!({"query": "subscription S { deltas { id } }"})),
        Verdict::Read
    );
}

#[test]
fn aliases_and_several_fields_are_each_decided() {
    let c = calls(post_json(json!({"query": r#"mutation {
        a: pause(workflows: ["w1"]) { result }
        b: stop(workflows: ["~alice/w2"]) { result }
        pause(workflows: ["other"]) { result }
    }"#})));
    let got: Vec<_> = c
        .iter()
        .map(|c| (c.response_key.as_str(), c.op, c.workflows[0].name.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", Operation::Pause, "w1"),
            ("b", Operation::Stop, "w2"),
            ("pause", Operation::Pause, "other")
        ]
    );
}

#[test]
fn fragments_and_inline_fragments_are_expanded() {
    let c = calls(post_json(json!({"query": r#"
        mutation M { ...F ... on Mutations { hold(workflows: ["w1"], tasks: ["1/a"]) { result } } }
        fragment F on Mutations { kill(workflows: ["w2"], tasks: ["2/b"]) { result } ...G }
        fragment G on Mutations { ... { trigger(workflows: ["w1"], tasks: ["3/c"]) { result } } }
    "#, "operationName": "M"})));
    let ops: Vec<_> = c.iter().map(|c| c.op).collect();
    assert_eq!(
        ops,
        vec![Operation::Kill, Operation::Trigger, Operation::Hold]
    );
    assert_eq!(c[2].tasks[0].to_string(), "~alice/w1//1/a");
}

#[test]
fn fragment_cycles_and_missing_fragments_are_refused() {
    refused(post_json(
        json!({"query": "mutation { ...A } fragment A on Mutations { ...A }"}),
    ));
    refused(post_json(json!({"query": "mutation { ...Nope }"})));
}

#[test]
fn variables_resolve_with_defaults() {
    let q = r#"mutation ($w: [WorkflowID] = ["w2"], $t: [NamespaceIDGlob]) { hold(workflows: $w, tasks: $t) { result } }"#;
    let c = calls(post_json(json!({"query": q, "variables": {"t": ["5/x"]}})));
    assert_eq!(c[0].workflows, vec![wf("w2")]);
    assert_eq!(c[0].tasks[0].to_string(), "~alice/w2//5/x");
    let c = calls(post_json(json!({"query": q, "variables": {"w": "w1"}})));
    assert_eq!(
        c[0].workflows,
        vec![wf("w1")],
        "a single value coerces to a list"
    );
    // Variables as a JSON string (some clients send that).
    let c = calls(post_json(
        json!({"query": q, "variables": "{\"w\": [\"other\"]}"}),
    ));
    assert_eq!(c[0].workflows, vec![wf("other")]);
}

#[test]
fn operation_is_selected_by_name_and_mixed_documents_are_refused() {
    let two_queries = "query A { workflows { id } } query B { workflows { id } }";
    assert_eq!(
        post_json(json!({"query": two_queries, "operationName": "B"})),
        Verdict::Read
    );
    refused(post_json(json!({"query": two_queries})));
    refused(post_json(
        json!({"query": two_queries, "operationName": "C"}),
    ));
    // A query chosen by name may not carry a mutation beside it.
    let mixed = r#"query A { workflows { id } } mutation B { stop(workflows: ["w1"]) { result } }"#;
    refused(post_json(json!({"query": mixed, "operationName": "A"})));
    refused(post_json(json!({"query": mixed, "operationName": "B"})));
    let mixed_sub =
        r#"subscription S { deltas { id } } mutation B { stop(workflows: ["w1"]) { result } }"#;
    refused(post_json(json!({"query": mixed_sub, "operationName": "S"})));
    // An anonymous operation beside a named one, or a repeated name: not executable.
    refused(post_json(json!({"query": "{ a } query A { b }"})));
    refused(post_json(
        json!({"query": "mutation A { pause(workflows: [\"w1\"]) { result } } mutation A { stop(workflows: [\"w1\"]) { result } }", "operationName": "A"}),
    ));
}

#[test]
fn another_owner_is_refused() {
    let r = refused(post_json(
        json!({"query": r#"mutation { pause(workflows: ["~bob/w1"]) { result } }"#}),
    ));
    assert_eq!(r.status, 403);
    assert!(r.reason.contains("bob"), "{}", r.reason);
    // Hidden in a list beside the owner's own workflow, or behind a variable.
    refused(post_json(
        json!({"query": r#"mutation { pause(workflows: ["w1", "~bob/w1"]) { result } }"#}),
    ));
    refused(post_json(
        json!({"query": PAUSE, "variables": {"w": ["~b*/w1"]}}),
    ));
    refused(post_json(
        json!({"query": PAUSE, "variables": {"w": ["~alice/w1//1/a"]}}),
    ));
}

#[test]
fn globs_and_short_names_expand_against_the_owners_workflows() {
    let c = calls(post_json(
        json!({"query": PAUSE, "variables": {"w": ["w?"]}}),
    ));
    assert_eq!(c[0].workflows, vec![wf("w1"), wf("w2")]);
    let c = calls(post_json(
        json!({"query": PAUSE, "variables": {"w": ["~alice/*"]}}),
    ));
    assert_eq!(c[0].workflows.len(), 4, "* crosses / as fnmatch does");
    let c = calls(post_json(
        json!({"query": PAUSE, "variables": {"w": ["w1", "~alice/w1"]}}),
    ));
    assert_eq!(c[0].workflows, vec![wf("w1")], "duplicates fold");
    refused(post_json(
        json!({"query": PAUSE, "variables": {"w": ["zz*"]}}),
    ));
    // Without the owner's list, a glob cannot be decided.
    refused(post_json_with(
        json!({"query": PAUSE, "variables": {"w": ["*"]}}),
        None,
    ));
}

#[test]
fn a_mutation_without_workflows_is_refused_except_scan() {
    refused(post_json(json!({"query": "mutation { pause { result } }"})));
    refused(post_json(json!({"query": PAUSE, "variables": {"w": []}})));
    let c = calls(post_json(json!({"query": "mutation { scan { result } }"})));
    assert_eq!(c[0].op, Operation::Scan);
    assert!(c[0].workflows.is_empty());
}

#[test]
fn unknown_mutation_fields_are_refused() {
    let r = refused(post_json(
        json!({"query": r#"mutation { frobnicate(workflows: ["w1"]) { result } }"#}),
    ));
    assert!(r.reason.contains("frobnicate"));
    refused(post_json(
        json!({"query": r#"mutation { ext_trigger(workflows: ["w1"]) { result } }"#}),
    ));
    // __typename alone runs nothing.
    assert_eq!(
        post_json(json!({"query": "mutation { __typename }"})),
        Verdict::Read
    );
}

#[test]
fn tasks_must_be_relative_and_well_formed() {
    let q = |t: Json| {
        post_json(
            json!({"query": r#"mutation ($t: [NamespaceIDGlob]) { hold(workflows: ["w1"], tasks: $t) { result } }"#, "variables": {"t": t}}),
        )
    };
    let c = calls(q(json!(["1/a", "*/b", "2"])));
    assert!(matches!(&c[0].tasks[0], TaskTarget::Id(t) if t.task.as_deref() == Some("a")));
    assert!(matches!(&c[0].tasks[1], TaskTarget::Pattern { pattern, .. } if pattern == "*/b"));
    assert!(matches!(&c[0].tasks[2], TaskTarget::Id(t) if t.task.is_none()));
    refused(q(json!(["~bob/w1//1/a"])));
    refused(q(json!(["../x"])));
    refused(q(json!(["1/a/01/extra"])));
    refused(q(json!([1])));
}

#[test]
fn url_query_overrides_the_body_and_may_not_differ() {
    let stop = r#"mutation { stop(workflows: ["w1"]) { result } }"#;
    let read = r#"{ workflows { id } }"#;
    let qs = serde_urlencoded::to_string([("query", stop)]).unwrap();
    // The body looks harmless but the URL's mutation is what runs: refused as ambiguous.
    let body = json!({"query": read}).to_string();
    refused(req(
        "POST",
        "cylc/graphql",
        &qs,
        Some("application/json"),
        &body,
    ));
    // The URL alone: decided on the URL's query.
    let c = calls(req(
        "POST",
        "cylc/graphql",
        &qs,
        Some("application/json"),
        "{}",
    ));
    assert_eq!(c[0].op, Operation::Stop);
    // The same query twice is fine.
    let body = json!({"query": stop}).to_string();
    assert_eq!(
        calls(req(
            "POST",
            "cylc/graphql",
            &qs,
            Some("application/json"),
            &body
        ))[0]
            .op,
        Operation::Stop
    );
    // Repeated URL argument with different values.
    let qs2 = format!(
        "{qs}&{}",
        serde_urlencoded::to_string([("query", read)]).unwrap()
    );
    refused(req(
        "POST",
        "cylc/graphql",
        &qs2,
        Some("application/json"),
        "{}",
    ));
    // operationName in the URL selects the mutation of a two-operation document.
    let qs3 = serde_urlencoded::to_string([("operationName", "B")]).unwrap();
    let body = json!({"query": "query A { a } query B { b }", "operationName": "A"}).to_string();
    refused(req(
        "POST",
        "cylc/graphql",
        &qs3,
        Some("application/json"),
        &body,
    ));
}

#[test]
fn get_with_a_mutation_is_refused() {
    let qs = serde_urlencoded::to_string([(
        "query",
        r#"mutation { stop(workflows: ["w1"]) { result } }"#,
    )])
    .unwrap();
    assert_eq!(
        refused(req("GET", "cylc/graphql", &qs, None, "")).status,
        405
    );
    let qs = serde_urlencoded::to_string([("query", "{ workflows { id } }")]).unwrap();
    assert_eq!(req("GET", "cylc/graphql", &qs, None, ""), Verdict::Read);
    refused(req("PUT", "cylc/graphql", &qs, None, ""));
}

#[test]
fn other_content_types_are_read_as_cylc_reads_them_or_refused() {
    let stop = r#"mutation { stop(workflows: ["w1"]) { result } }"#;
    // application/graphql: the body is the query.
    let c = calls(req(
        "POST",
        "cylc/graphql",
        "",
        Some("application/graphql; charset=utf-8"),
        stop,
    ));
    assert_eq!(c[0].op, Operation::Stop);
    // A form body's arguments are read like URL arguments.
    let form = serde_urlencoded::to_string([("query", stop)]).unwrap();
    let c = calls(req(
        "POST",
        "cylc/graphql",
        "",
        Some("application/x-www-form-urlencoded"),
        &form,
    ));
    assert_eq!(c[0].op, Operation::Stop);
    // Multipart is refused; so is a body under a type Cylc would ignore.
    refused(req(
        "POST",
        "cylc/graphql",
        "",
        Some("multipart/form-data; boundary=x"),
        "--x--",
    ));
    refused(req("POST", "cylc/graphql", "", Some("text/plain"), stop));
    refused(req(
        "POST",
        "cylc/graphql",
        "",
        Some("application/json "),
        &json!({"query": stop}).to_string(),
    ));
    refused(req("POST", "cylc/graphql", "", None, stop));
    // Upper case JSON type is JSON to Cylc (it lowercases).
    let c = calls(req(
        "POST",
        "cylc/graphql",
        "",
        Some("Application/JSON"),
        &json!({"query": stop}).to_string(),
    ));
    assert_eq!(c[0].op, Operation::Stop);
}

#[test]
fn batch_may_only_read() {
    let stop = r#"mutation { stop(workflows: ["w1"]) { result } }"#;
    let body = json!([{"query": "{ a }"}, {"query": stop}]).to_string();
    let r = refused(req(
        "POST",
        "cylc/graphql/batch",
        "",
        Some("application/json"),
        &body,
    ));
    assert!(r.reason.contains("batch"));
    let body = json!([{"query": "{ a }"}, {"query": "{ b }"}]).to_string();
    assert_eq!(
        req(
            "POST",
            "cylc/graphql/batch",
            "",
            Some("application/json"),
            &body
        ),
        Verdict::Read
    );
    // The URL's query overrides every entry.
    let qs = serde_urlencoded::to_string([("query", stop)]).unwrap();
    refused(req(
        "POST",
        "cylc/graphql/batch",
        &qs,
        Some("application/json"),
        "[{}]",
    ));
    refused(req(
        "POST",
        "cylc/graphql/batch",
        "",
        Some("application/json"),
        "{\"query\": \"{ a }\"}",
    ));
    refused(req(
        "POST",
        "cylc/graphql/batch",
        "",
        Some("application/graphql"),
        "{ a }",
    ));
    // Spellings of the batch path are still the batch path.
    refused(req(
        "POST",
        "cylc//graphql/batch/",
        "",
        Some("application/json"),
        &json!([{"query": stop}]).to_string(),
    ));
    refused(req(
        "POST",
        "cylc/graphql%2Fbatch",
        "",
        Some("application/json"),
        &json!([{"query": stop}]).to_string(),
    ));
}

#[test]
fn routes_fold_spellings() {
    assert_eq!(route("cylc/graphql"), Route::Graphql);
    assert_eq!(route("cylc//graphql/"), Route::Graphql);
    assert_eq!(route("cylc/graph%71l"), Route::Graphql);
    assert_eq!(route("cylc/graphql/batch"), Route::GraphqlBatch);
    assert_eq!(route("cylc/subscriptions"), Route::Subscriptions);
    assert_eq!(route("cylc/graphql/x"), Route::GraphqlBatch);
    assert_eq!(route("static/main.js"), Route::Other);
    assert_eq!(route("api"), Route::Other);
}

#[test]
fn malformed_input_is_refused_not_guessed() {
    refused(post_json(
        json!({"query": "mutation { pause(workflows: [\"w1\"]) { result }"}),
    ));
    refused(req(
        "POST",
        "cylc/graphql",
        "",
        Some("application/json"),
        "{not json",
    ));
    refused(req(
        "POST",
        "cylc/graphql",
        "",
        Some("application/json"),
        "[1]",
    ));
    refused(post_json(json!({"query": 5})));
    refused(post_json(json!({"query": PAUSE, "variables": [1]})));
    refused(post_json(json!({})));
    let deep = format!("{}{}", "{a".repeat(200), "}".repeat(200));
    refused(post_json(json!({ "query": deep })));
}

#[test]
fn ws_frames_parse_and_mutations_are_refused() {
    assert_eq!(
        parse_ws_frame(r#"{"type":"connection_init","payload":{}}"#),
        Ok(WsFrame::ConnectionInit)
    );
    assert_eq!(
        parse_ws_frame(r#"{"type":"stop","id":"1"}"#),
        Ok(WsFrame::Stop { id: "1".into() })
    );
    assert_eq!(
        parse_ws_frame(r#"{"type":"connection_terminate"}"#),
        Ok(WsFrame::ConnectionTerminate)
    );
    let start = json!({"type": "start", "id": "2", "payload": {"query": "subscription S($w: [ID]) { deltas(workflows: $w) { id } }", "variables": {"w": ["~alice/w1"]}, "operationName": "S"}}).to_string();
    match parse_ws_frame(&start).unwrap() {
        WsFrame::Start {
            id, operation_name, ..
        } => {
            assert_eq!(id, "2");
            assert_eq!(operation_name.as_deref(), Some("S"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(classify_ws(&start, OWNER, None), Verdict::Read);
    let m = json!({"type": "start", "id": "3", "payload": {"query": r#"mutation { resume(workflows: ["w1"]) { result } }"#}}).to_string();
    assert!(refused(classify_ws(&m, OWNER, None))
        .reason
        .contains("WebSocket"));
    refused(classify_ws(r#"{"type":"bogus"}"#, OWNER, None));
    refused(classify_ws("not json", OWNER, None));
    refused(classify_ws(r#"{"type":"start","id":"1"}"#, OWNER, None));
    refused(classify_ws(r#"{"type":"stop"}"#, OWNER, None));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn never_panics_on_any_request(
            method in "(GET|POST|PUT|get)",
            path in "[a-z/%0-9]{0,24}",
            qs in "[a-zA-Z=&%{}\\[\\]\"0-9 ]{0,40}",
            ct in proptest::option::of("(application/(json|graphql|x-www-form-urlencoded)|multipart/x|text/plain)[; a-z=]{0,8}"),
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let k = known();
            let _ = classify_http(&HttpRequest { method: &method, path_suffix: &path, query_string: &qs, content_type: ct.as_deref(), body: &body, owner: OWNER }, Some(&k));
        }

        #[test]
        fn never_panics_on_any_document(q in "(mutation|query|subscription|fragment|on|\\.\\.\\.|[{}()\\[\\]:$!=,\"@#]|[a-z~/*?]{1,6}| |\n){0,60}", vars in "[{}\\[\\]\":,a-z0-9]{0,30}") {
            let vars: Map<String, Json> = serde_json::from_str(&vars).unwrap_or_default();
            let _ = classify_document(&q, &vars, None, OWNER, None, false);
            let _ = classify_ws(&q, OWNER, None);
        }
    }
}
