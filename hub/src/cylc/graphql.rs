//! The gate in front of Cylc's GraphQL: what does a request to an owner's
//! `cylc hubapp` actually run, and which Steward operations on which workflows must
//! the hub decide before forwarding it?
//!
//! It reads a request the way cylc-uiserver 1.10 reads it
//! (`cylc/uiserver/graphql/tornado.py`: URL and form arguments override the JSON
//! body; `application/graphql` bodies are the query; `/batch` takes a JSON list) and
//! the way graphql-core executes it (one operation, chosen by `operationName`;
//! fragments, inline fragments and aliases expanded; variables resolved with their
//! defaults). Whatever it cannot read exactly as the server would is refused rather
//! than guessed: the gate may say no to an odd but harmless request, never yes to a
//! mutation it did not see.
//!
//! It owns no policy and does no I/O: the answer is a [`Verdict`] the hub decides
//! (policy ∩ elevation) and audits. It must never panic on any input (a proptest
//! holds it to that).

use async_graphql_parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection,
    SelectionSet,
};
use async_graphql_parser::Positioned;
use async_graphql_value::{ConstValue, Name, Value};
use serde_json::{Map, Value as Json};
use steward_protocol::{Operation, TaskId, WorkflowId};

/// Largest GraphQL document the gate reads; the Cylc UI's biggest query is ~10 KiB.
pub const MAX_QUERY_BYTES: usize = 256 * 1024;
/// Deepest bracket nesting the gate reads (the parser recurses on it).
pub const MAX_NESTING: usize = 64;
/// Most root fields one mutation may carry (aliases make this unbounded otherwise).
pub const MAX_ROOT_FIELDS: usize = 64;

/// What the hub must do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Queries, subscriptions and protocol frames: decide `read` on the owner.
    Read,
    /// One mutation operation: decide every call (each on each of its workflows)
    /// before forwarding; forward only if all are allowed.
    Decide(Vec<MutationCall>),
    /// Never forwarded.
    Refuse(Refusal),
}

/// One root field of a mutation as it will be executed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutationCall {
    /// The schema field (`pause`, `releaseHoldPoint`).
    pub field: String,
    /// Where its answer appears under `data` (the alias, or the field name).
    pub response_key: String,
    pub op: Operation,
    /// Every workflow it acts on, globs and short names expanded; all the owner's.
    /// Empty only for `scan`, which acts on the owner's run directory as a whole.
    pub workflows: Vec<WorkflowId>,
    /// Every task it names, per workflow (empty for workflow-level mutations).
    pub tasks: Vec<TaskTarget>,
}

/// A task named in a mutation's `tasks` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskTarget {
    Id(TaskId),
    /// A Cylc glob or selector (`*/sleeper`, `1/foo:failed`): audited as written.
    Pattern {
        workflow: WorkflowId,
        pattern: String,
    },
}

impl std::fmt::Display for TaskTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskTarget::Id(t) => t.fmt(f),
            TaskTarget::Pattern { workflow, pattern } => write!(f, "{workflow}//{pattern}"),
        }
    }
}

/// Why a request is not forwarded, and the HTTP status to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
}

fn refuse(status: u16, reason: impl Into<String>) -> Verdict {
    Verdict::Refuse(Refusal {
        status,
        reason: reason.into(),
    })
}

/// Which part of an owner's server a path (after `/user/<owner>/`) reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Graphql,
    GraphqlBatch,
    Subscriptions,
    /// Anything else the UI server serves (static files, `api/…`): not Cylc's GraphQL.
    Other,
}

/// Classifies a path suffix as the hub sees it, percent-decoded and with repeated or
/// trailing slashes folded, so that no spelling of `cylc/graphql` reaches the server
/// as "other". Case is kept: tornado's routes are case-sensitive.
pub fn route(suffix: &str) -> Route {
    let decoded = percent_encoding::percent_decode_str(suffix).decode_utf8_lossy();
    let path = decoded.split(['?', '#']).next().unwrap_or("");
    let folded: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match folded.as_slice() {
        ["cylc", "graphql"] => Route::Graphql,
        ["cylc", "graphql", "batch"] => Route::GraphqlBatch,
        ["cylc", "subscriptions"] => Route::Subscriptions,
        ["cylc", "graphql", ..] | ["cylc", "subscriptions", ..] => Route::GraphqlBatch,
        _ => Route::Other,
    }
}

/// An HTTP request to Cylc's GraphQL endpoint, as received by the hub.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// The path after `/user/<owner>/` (e.g. `cylc/graphql`).
    pub path_suffix: &'a str,
    /// The raw URL query, without `?`.
    pub query_string: &'a str,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// The owner from the URL: every workflow must be theirs.
    pub owner: &'a str,
}

/// The owner's workflow names (without `~owner/`), to expand globs against; `None`
/// when the hub does not know them (then globs are refused).
pub type Catalog<'a> = Option<&'a [String]>;

/// Query, variables and operation name as the server will execute them.
#[derive(Debug, Default)]
struct Params {
    query: Option<String>,
    variables: Option<Json>,
    operation_name: Option<String>,
}

/// Decides what an HTTP request to Cylc's GraphQL runs.
pub fn classify_http(req: &HttpRequest, catalog: Catalog) -> Verdict {
    let method = req.method.to_ascii_uppercase();
    if method != "GET" && method != "POST" {
        return refuse(405, format!("{method} is not a GraphQL method: use POST"));
    }
    let batch = match route(req.path_suffix) {
        Route::Graphql => false,
        Route::GraphqlBatch => true,
        Route::Subscriptions | Route::Other => {
            return refuse(
                404,
                format!("{:?} is not Cylc's GraphQL endpoint", req.path_suffix),
            )
        }
    };
    let raw_type = req.content_type.unwrap_or("");
    let lowered = raw_type.to_ascii_lowercase();
    let trimmed = lowered.split(';').next().unwrap_or("").trim().to_string();
    if trimmed.starts_with("multipart/") {
        return refuse(
            415,
            "multipart bodies are not accepted by Steward: send the query as application/json",
        );
    }
    // URL arguments, then (tornado merges them after) form-body arguments.
    let mut args: Vec<(String, String)> = match serde_urlencoded::from_str(req.query_string) {
        Ok(a) => a,
        Err(e) => return refuse(400, format!("the URL's query string is malformed: {e}")),
    };
    let is_form = trimmed.starts_with("application/x-www-form-urlencoded");
    if is_form {
        match serde_urlencoded::from_bytes::<Vec<(String, String)>>(req.body) {
            Ok(a) => args.extend(a),
            Err(e) => return refuse(400, format!("the form body is malformed: {e}")),
        }
    }
    let url_params = match params_from_args(&args) {
        Ok(p) => p,
        Err(v) => return v,
    };
    // cylc-uiserver compares the type before `;` exactly (not trimmed); anything else
    // leaves the body unread. A body it would ignore is refused, not guessed at.
    let cylc_type = lowered.split(';').next().unwrap_or("").to_string();
    let body_is_blank = req.body.iter().all(u8::is_ascii_whitespace);
    let body: BodyParams = match cylc_type.as_str() {
        "application/graphql" => match std::str::from_utf8(req.body) {
            Ok(q) => BodyParams::One(Params {
                query: Some(q.to_string()),
                ..Params::default()
            }),
            Err(_) => return refuse(400, "the application/graphql body is not UTF-8"),
        },
        "application/json" => {
            let json: Json = match serde_json::from_slice(req.body) {
                Ok(j) => j,
                Err(e) => return refuse(400, format!("the JSON body is malformed: {e}")),
            };
            match (batch, json) {
                (false, Json::Object(o)) => match params_from_json(&o) {
                    Ok(p) => BodyParams::One(p),
                    Err(v) => return v,
                },
                (true, Json::Array(items)) if !items.is_empty() => {
                    let mut all = Vec::new();
                    for item in items {
                        let Json::Object(o) = item else {
                            return refuse(400, "a batch entry is not a JSON object");
                        };
                        match params_from_json(&o) {
                            Ok(p) => all.push(p),
                            Err(v) => return v,
                        }
                    }
                    BodyParams::Batch(all)
                }
                (false, _) => return refuse(400, "the JSON body is not an object"),
                (true, _) => return refuse(400, "a batch body must be a non-empty JSON list"),
            }
        }
        _ if is_form || body_is_blank => BodyParams::One(Params::default()),
        other => {
            return refuse(
                415,
                format!(
                    "content type {other:?} is not accepted with a body: send application/json"
                ),
            )
        }
    };
    let is_get = method == "GET";
    match body {
        BodyParams::One(b) if !batch => match merge(url_params, b) {
            Ok(p) => classify_params(&p, req.owner, catalog, is_get),
            Err(v) => v,
        },
        BodyParams::One(b) => {
            // A batch must be a JSON list; cylc-uiserver errors on anything else.
            let _ = b;
            refuse(
                400,
                "a batch request must be a JSON list (application/json)",
            )
        }
        BodyParams::Batch(entries) => {
            // cylc-uiserver caches the first entry's parameters and runs them for every
            // entry, so what runs is hard to see: batches may only read.
            for entry in entries {
                let p = match merge(url_params_clone(&url_params), entry) {
                    Ok(p) => p,
                    Err(v) => return v,
                };
                match classify_params(&p, req.owner, catalog, is_get) {
                    Verdict::Read => {}
                    Verdict::Decide(_) => {
                        return refuse(
                            400,
                            "mutations are not accepted on /cylc/graphql/batch: send each to /cylc/graphql",
                        )
                    }
                    refused => return refused,
                }
            }
            Verdict::Read
        }
    }
}

enum BodyParams {
    One(Params),
    Batch(Vec<Params>),
}

fn url_params_clone(p: &Params) -> Params {
    Params {
        query: p.query.clone(),
        variables: p.variables.clone(),
        operation_name: p.operation_name.clone(),
    }
}

/// `query`, `variables`, `operationName` from URL/form arguments. A key given twice
/// with different values is refused: tornado takes the first, another reader might not.
fn params_from_args(args: &[(String, String)]) -> Result<Params, Verdict> {
    let one = |key: &str| -> Result<Option<String>, Verdict> {
        let mut vals = args.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
        let first = vals.next();
        if let Some(f) = first {
            if vals.any(|v| v != f) {
                return Err(refuse(
                    400,
                    format!("the argument {key:?} is given twice with different values"),
                ));
            }
        }
        // Python's `or`: an empty value falls through to the body.
        Ok(first.filter(|v| !v.is_empty()).cloned())
    };
    let variables = match one("variables")? {
        Some(s) => match serde_json::from_str::<Json>(&s) {
            Ok(v) => Some(v),
            Err(_) => return Err(refuse(400, "the argument \"variables\" is not JSON")),
        },
        None => None,
    };
    Ok(Params {
        query: one("query")?,
        variables,
        operation_name: one("operationName")?,
    })
}

fn params_from_json(o: &Map<String, Json>) -> Result<Params, Verdict> {
    let query = match o.get("query") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) if s.is_empty() => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(_) => return Err(refuse(400, "\"query\" is not a string")),
    };
    let variables = match o.get("variables") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) if s.is_empty() => None,
        Some(Json::String(s)) => match serde_json::from_str::<Json>(s) {
            Ok(v) => Some(v),
            Err(_) => return Err(refuse(400, "\"variables\" is a string but not JSON")),
        },
        Some(Json::Object(m)) if m.is_empty() => None,
        Some(v) => Some(v.clone()),
    };
    let operation_name = match o.get("operationName") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) if s.is_empty() => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(_) => return Err(refuse(400, "\"operationName\" is not a string")),
    };
    Ok(Params {
        query,
        variables,
        operation_name,
    })
}

/// The URL's arguments win (as in cylc-uiserver); one that differs from the body's is
/// refused so that a relay reading either cannot be fooled.
fn merge(url: Params, body: Params) -> Result<Params, Verdict> {
    fn pick<T: PartialEq>(what: &str, u: Option<T>, b: Option<T>) -> Result<Option<T>, Verdict> {
        match (u, b) {
            (Some(u), Some(b)) if u != b => Err(refuse(
                400,
                format!("the URL's {what} differs from the body's: send it once, in the body"),
            )),
            (Some(u), _) => Ok(Some(u)),
            (None, b) => Ok(b),
        }
    }
    let mut operation_name = pick("operationName", url.operation_name, body.operation_name)?;
    if operation_name.as_deref() == Some("null") {
        operation_name = None;
    }
    Ok(Params {
        query: pick("query", url.query, body.query)?,
        variables: pick("variables", url.variables, body.variables)?,
        operation_name,
    })
}

fn classify_params(p: &Params, owner: &str, catalog: Catalog, is_get: bool) -> Verdict {
    let Some(query) = &p.query else {
        return refuse(400, "the request holds no GraphQL query");
    };
    let empty = Map::new();
    let variables = match &p.variables {
        None => &empty,
        Some(Json::Object(m)) => m,
        Some(_) => return refuse(400, "\"variables\" is not a JSON object"),
    };
    classify_document(
        query,
        variables,
        p.operation_name.as_deref(),
        owner,
        catalog,
        is_get,
    )
}

fn nesting_depth(s: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in s.bytes() {
        match b {
            b'{' | b'[' | b'(' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Decides one GraphQL document with its variables and operation name.
/// `is_get`: a mutation over GET is refused (cylc-uiserver refuses it too, but the
/// gate must not rely on that).
pub fn classify_document(
    query: &str,
    variables: &Map<String, Json>,
    operation_name: Option<&str>,
    owner: &str,
    catalog: Catalog,
    is_get: bool,
) -> Verdict {
    if query.len() > MAX_QUERY_BYTES {
        return refuse(
            413,
            format!("the GraphQL document is larger than {MAX_QUERY_BYTES} bytes"),
        );
    }
    if nesting_depth(query) > MAX_NESTING {
        return refuse(
            400,
            format!("the GraphQL document nests deeper than {MAX_NESTING} levels"),
        );
    }
    let doc = match async_graphql_parser::parse_query(query) {
        Ok(d) => d,
        Err(e) => return refuse(400, format!("cannot parse the GraphQL document: {e}")),
    };
    let ops: Vec<(Option<&str>, &Positioned<OperationDefinition>)> = match &doc.operations {
        DocumentOperations::Single(op) => vec![(None, op)],
        DocumentOperations::Multiple(map) => {
            map.iter().map(|(n, op)| (Some(n.as_str()), op)).collect()
        }
    };
    if ops.len() > 1
        && ops
            .iter()
            .any(|(_, op)| op.node.ty == OperationType::Mutation)
    {
        return refuse(
            400,
            "a document holding a mutation must hold exactly one operation",
        );
    }
    let selected = match operation_name {
        Some(want) => ops.iter().find(|(n, _)| *n == Some(want)),
        None if ops.len() == 1 => ops.first(),
        None => {
            return refuse(
                400,
                "the document holds several operations and names none (operationName)",
            )
        }
    };
    let Some((_, op)) = selected else {
        return refuse(
            400,
            format!(
                "the document holds no operation named {:?}",
                operation_name.unwrap_or("")
            ),
        );
    };
    if op.node.ty != OperationType::Mutation {
        return Verdict::Read;
    }
    if is_get {
        return refuse(405, "a mutation must be sent as POST, not GET");
    }
    let vars = Vars::new(&op.node, variables);
    let mut fields = Vec::new();
    if let Err(reason) = root_fields(
        &doc,
        &op.node.selection_set.node,
        &mut Vec::new(),
        &mut fields,
    ) {
        return refuse(400, reason);
    }
    let mut calls = Vec::new();
    for (key, field) in fields {
        let name = field.name.node.as_str();
        if name == "__typename" {
            continue;
        }
        let Some(op) = mutation_operation(name) else {
            return refuse(
                400,
                format!("{name:?} is not one of Cylc's mutations; Steward refuses what it cannot decide"),
            );
        };
        match mutation_call(name, key, op, &field.arguments, &vars, owner, catalog) {
            Ok(c) => calls.push(c),
            Err(reason) => return refuse(403, reason),
        }
    }
    if calls.is_empty() {
        Verdict::Read
    } else {
        Verdict::Decide(calls)
    }
}

/// Cylc's 23 root mutation fields (cylc-flow 8.7 `Mutations` + cylc-uiserver 1.10
/// `UISMutations`) and the Steward operation each is decided as.
///
/// The two compound commands are decided as the step that changes the running
/// workflow: `reinstallReload` (validate, reinstall from source, reload) is `reload`,
/// and `reinstallRestart` (validate, reinstall, start a stopped workflow) is `play`.
/// Reinstalling alone changes files the owner already controls; what affects others
/// is the reload or the restart.
pub fn mutation_operation(field: &str) -> Option<Operation> {
    MUTATIONS
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, op)| *op)
}

/// Every root mutation field Cylc's schema has, with its Steward operation.
pub const MUTATIONS: [(&str, Operation); 23] = [
    ("broadcast", Operation::Broadcast),
    ("clean", Operation::Clean),
    ("extTrigger", Operation::ExtTrigger),
    ("hold", Operation::Hold),
    ("kill", Operation::Kill),
    ("message", Operation::Message),
    ("pause", Operation::Pause),
    ("play", Operation::Play),
    ("poll", Operation::Poll),
    ("reinstallReload", Operation::Reload),
    ("reinstallRestart", Operation::Play),
    ("release", Operation::Release),
    ("releaseHoldPoint", Operation::ReleaseHoldPoint),
    ("reload", Operation::Reload),
    ("remove", Operation::Remove),
    ("resume", Operation::Resume),
    ("scan", Operation::Scan),
    ("set", Operation::Set),
    ("setGraphWindowExtent", Operation::SetGraphWindowExtent),
    ("setHoldPoint", Operation::SetHoldPoint),
    ("setVerbosity", Operation::SetVerbosity),
    ("stop", Operation::Stop),
    ("trigger", Operation::Trigger),
];

type RootField<'d> = (String, &'d async_graphql_parser::types::Field);

/// The root fields a selection set executes, fragments and inline fragments expanded.
/// Directives (`@skip`) are ignored: deciding a field that will not run is safe.
fn root_fields<'d>(
    doc: &'d ExecutableDocument,
    set: &'d SelectionSet,
    stack: &mut Vec<&'d str>,
    out: &mut Vec<RootField<'d>>,
) -> Result<(), String> {
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => {
                if out.len() >= MAX_ROOT_FIELDS {
                    return Err(format!(
                        "the mutation holds more than {MAX_ROOT_FIELDS} root fields"
                    ));
                }
                let key = f
                    .node
                    .alias
                    .as_ref()
                    .map(|a| a.node.to_string())
                    .unwrap_or_else(|| f.node.name.node.to_string());
                out.push((key, &f.node));
            }
            Selection::InlineFragment(inline) => {
                root_fields(doc, &inline.node.selection_set.node, stack, out)?
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                if stack.contains(&name) {
                    return Err(format!("the fragment {name:?} spreads itself"));
                }
                let Some(frag) = doc.fragments.get(&Name::new(name)) else {
                    return Err(format!("the fragment {name:?} is not defined"));
                };
                stack.push(name);
                root_fields(doc, &frag.node.selection_set.node, stack, out)?;
                stack.pop();
            }
        }
    }
    Ok(())
}

/// The operation's variables: the request's values, else each definition's default.
struct Vars<'a> {
    given: &'a Map<String, Json>,
    defaults: Vec<(&'a str, &'a ConstValue)>,
}

impl<'a> Vars<'a> {
    fn new(op: &'a OperationDefinition, given: &'a Map<String, Json>) -> Self {
        Vars {
            given,
            defaults: op
                .variable_definitions
                .iter()
                .filter_map(|d| {
                    d.node
                        .default_value
                        .as_ref()
                        .map(|v| (d.node.name.node.as_str(), &v.node))
                })
                .collect(),
        }
    }

    fn get(&self, name: &str) -> Json {
        if let Some(v) = self.given.get(name) {
            return v.clone();
        }
        self.defaults
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| const_to_json(v))
            .unwrap_or(Json::Null)
    }

    fn resolve(&self, v: &Value) -> Json {
        match v {
            Value::Variable(n) => self.get(n.as_str()),
            Value::Null => Json::Null,
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::String(s.clone()),
            Value::Boolean(b) => Json::Bool(*b),
            Value::Binary(_) => Json::Null,
            Value::Enum(e) => Json::String(e.to_string()),
            Value::List(l) => Json::Array(l.iter().map(|x| self.resolve(x)).collect()),
            Value::Object(o) => Json::Object(
                o.iter()
                    .map(|(k, x)| (k.to_string(), self.resolve(x)))
                    .collect(),
            ),
        }
    }
}

fn const_to_json(v: &ConstValue) -> Json {
    match v {
        ConstValue::Null | ConstValue::Binary(_) => Json::Null,
        ConstValue::Number(n) => Json::Number(n.clone()),
        ConstValue::String(s) => Json::String(s.clone()),
        ConstValue::Boolean(b) => Json::Bool(*b),
        ConstValue::Enum(e) => Json::String(e.to_string()),
        ConstValue::List(l) => Json::Array(l.iter().map(const_to_json).collect()),
        ConstValue::Object(o) => Json::Object(
            o.iter()
                .map(|(k, x)| (k.to_string(), const_to_json(x)))
                .collect(),
        ),
    }
}

/// A list argument's strings. GraphQL coerces a single value to a one-item list.
fn string_list(arg: &str, v: Json) -> Result<Vec<String>, String> {
    match v {
        Json::Null => Ok(vec![]),
        Json::String(s) => Ok(vec![s]),
        Json::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Json::String(s) => Ok(s),
                other => Err(format!("{arg:?} holds {other}, not a string")),
            })
            .collect(),
        other => Err(format!("{arg:?} is {other}, not a list of strings")),
    }
}

fn mutation_call(
    field: &str,
    response_key: String,
    op: Operation,
    arguments: &[(Positioned<Name>, Positioned<Value>)],
    vars: &Vars,
    owner: &str,
    catalog: Catalog,
) -> Result<MutationCall, String> {
    let arg = |name: &str| -> Vec<Json> {
        arguments
            .iter()
            .filter(|(n, _)| n.node.as_str() == name)
            .map(|(_, v)| vars.resolve(&v.node))
            .collect()
    };
    let one = |name: &str| -> Result<Json, String> {
        let mut all = arg(name);
        if all.len() > 1 {
            return Err(format!("{field}: the argument {name:?} is given twice"));
        }
        Ok(all.pop().unwrap_or(Json::Null))
    };
    let mut workflows: Vec<WorkflowId> = Vec::new();
    for w in string_list("workflows", one("workflows")?)? {
        for id in expand_workflow(&w, owner, catalog)? {
            if !workflows.contains(&id) {
                workflows.push(id);
            }
        }
    }
    if workflows.is_empty() && op != Operation::Scan {
        return Err(format!(
            "{field} names no workflow: Steward decides every mutation on the workflows it acts on"
        ));
    }
    let mut tasks = Vec::new();
    for t in string_list("tasks", one("tasks")?)? {
        for w in &workflows {
            tasks.push(task_target(w, &t)?);
        }
    }
    Ok(MutationCall {
        field: field.to_string(),
        response_key,
        op,
        workflows,
        tasks,
    })
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// `~owner/name`, `name`, or a glob over the owner's workflows → the owner's ids.
pub fn expand_workflow(id: &str, owner: &str, catalog: Catalog) -> Result<Vec<WorkflowId>, String> {
    if id.contains("//") {
        return Err(format!(
            "the workflow {id:?} names a cycle or task: put those in \"tasks\""
        ));
    }
    let name = match id.strip_prefix('~') {
        Some(rest) => {
            let Some((o, name)) = rest.split_once('/') else {
                return Err(format!("the workflow {id:?} has an owner but no name"));
            };
            if o != owner {
                return Err(format!(
                    "the workflow {id:?} belongs to {o:?}, not to {owner:?} whose server this is"
                ));
            }
            name
        }
        None => id,
    };
    if has_glob(name) {
        let Some(known) = catalog else {
            return Err(format!(
                "the workflow glob {id:?} cannot be expanded: the hub does not know {owner}'s workflows"
            ));
        };
        let matcher = globset::GlobBuilder::new(name)
            .literal_separator(false)
            .build()
            .map_err(|e| format!("the workflow glob {id:?} is invalid: {e}"))?
            .compile_matcher();
        let mut out = Vec::new();
        for w in known.iter().filter(|w| matcher.is_match(w.as_str())) {
            out.push(WorkflowId::parse(w, owner).map_err(|e| e.to_string())?);
        }
        if out.is_empty() {
            return Err(format!(
                "the workflow glob {id:?} matches none of {owner}'s workflows"
            ));
        }
        return Ok(out);
    }
    WorkflowId::parse(name, owner)
        .map(|w| vec![w])
        .map_err(|e| e.to_string())
}

fn task_target(workflow: &WorkflowId, task: &str) -> Result<TaskTarget, String> {
    if task.starts_with('~') || task.contains("//") || task.starts_with('/') {
        return Err(format!(
            "the task {task:?} must be relative to its workflow (cycle/task)"
        ));
    }
    let segments: Vec<&str> = task.split('/').collect();
    let plain = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.len() <= 128
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'_' | b'-' | b'.' | b'+' | b'*' | b'?' | b'[' | b']' | b'!' | b'^' | b':'
                    )
            })
    };
    if segments.len() > 3 || !segments.iter().all(|s| plain(s)) {
        return Err(format!(
            "the task {task:?} is not a Cylc task id (cycle/task/job)"
        ));
    }
    if task.contains(['*', '?', '[', ':', '!', '^']) {
        return Ok(TaskTarget::Pattern {
            workflow: workflow.clone(),
            pattern: task.to_string(),
        });
    }
    TaskId::parse(&format!("{workflow}//{task}"), &workflow.owner)
        .map(TaskTarget::Id)
        .map_err(|e| e.to_string())
}

/// A client frame of the `graphql-ws` WebSocket sub-protocol
/// (subscriptions-transport-ws), as cylc-uiserver's `/cylc/subscriptions` reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum WsFrame {
    ConnectionInit,
    Start {
        id: String,
        query: String,
        variables: Map<String, Json>,
        operation_name: Option<String>,
    },
    Stop {
        id: String,
    },
    ConnectionTerminate,
}

/// Parses one client text frame; anything else is an error naming the problem.
pub fn parse_ws_frame(text: &str) -> Result<WsFrame, String> {
    let v: Json = serde_json::from_str(text).map_err(|e| format!("the frame is not JSON: {e}"))?;
    let Json::Object(o) = v else {
        return Err("the frame is not a JSON object".into());
    };
    let id = || -> Result<String, String> {
        match o.get("id") {
            Some(Json::String(s)) => Ok(s.clone()),
            Some(Json::Number(n)) => Ok(n.to_string()),
            _ => Err("the frame has no \"id\"".into()),
        }
    };
    match o.get("type").and_then(Json::as_str) {
        Some("connection_init") => Ok(WsFrame::ConnectionInit),
        Some("connection_terminate") => Ok(WsFrame::ConnectionTerminate),
        Some("stop") => Ok(WsFrame::Stop { id: id()? }),
        Some("start") => {
            let Some(Json::Object(payload)) = o.get("payload") else {
                return Err("a \"start\" frame has no payload object".into());
            };
            let p = params_from_json(payload).map_err(|v| match v {
                Verdict::Refuse(r) => r.reason,
                _ => "bad payload".into(),
            })?;
            let variables = match p.variables {
                None => Map::new(),
                Some(Json::Object(m)) => m,
                Some(_) => return Err("\"variables\" is not a JSON object".into()),
            };
            Ok(WsFrame::Start {
                id: id()?,
                query: p.query.ok_or("a \"start\" frame holds no query")?,
                variables,
                operation_name: p.operation_name,
            })
        }
        Some(other) => Err(format!("unknown graphql-ws frame type {other:?}")),
        None => Err("the frame has no \"type\"".into()),
    }
}

/// Decides one client frame on the subscriptions WebSocket: protocol frames and
/// subscriptions/queries read; a mutation is refused (cylc-uiserver does not run
/// mutations there, and the hub audits mutations only on the HTTP path).
pub fn classify_ws(text: &str, owner: &str, catalog: Catalog) -> Verdict {
    match parse_ws_frame(text) {
        Err(e) => refuse(400, e),
        Ok(WsFrame::Start {
            query,
            variables,
            operation_name,
            ..
        }) => match classify_document(
            &query,
            &variables,
            operation_name.as_deref(),
            owner,
            catalog,
            false,
        ) {
            Verdict::Decide(_) => refuse(
                400,
                "mutations are not accepted on the subscriptions WebSocket: send them as HTTP POST to /cylc/graphql",
            ),
            v => v,
        },
        Ok(_) => Verdict::Read,
    }
}

#[cfg(test)]
mod tests;
