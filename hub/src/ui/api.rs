//! JSON API for the web UI and scripts: overview, permissions, explanations, audit
//! search, and starting or stopping one's own server.

use crate::http::{ApiError, ApiResult};
use crate::relay::http::valid_owner;
use crate::servers::{ServerError, SpawnOutcome};
use crate::session::{Authed, CsrfChecked};
use crate::state::AppState;
use crate::store::OverviewRow;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use steward_protocol::wire::WorkflowSummary;
use steward_protocol::Operation;

/// The gscan view: every workflow of every owner the user may read; live where the
/// server runs, otherwise the last known state marked stale.
pub async fn overview(state: web::Data<AppState>, Authed(s): Authed) -> ApiResult {
    let mut owners: BTreeMap<String, (bool, Vec<WorkflowSummary>)> = BTreeMap::new();
    for row in state.store.overviews().await.unwrap_or_default() {
        if let Ok(w) = serde_json::from_str::<Vec<WorkflowSummary>>(&row.workflows_json) {
            owners.insert(row.owner, (true, w));
        }
    }
    let running = state.servers.all();
    let fetches = running.iter().map(|srv| {
        let relay = state.relay.clone();
        let actor = s.user.clone();
        async move {
            let summary = crate::relay::upstream::fetch_summary(&relay, srv, &actor).await;
            (srv.owner.clone(), summary)
        }
    });
    let now = state.store.now();
    for (owner, result) in futures_util::future::join_all(fetches).await {
        if let Ok(workflows) = result {
            if let Ok(json) = serde_json::to_string(&workflows) {
                let row = OverviewRow {
                    owner: owner.clone(),
                    workflows_json: json,
                    updated: now,
                };
                let _ = state.store.save_overview(&row).await;
            }
            owners.insert(owner, (false, workflows));
        }
    }
    // Owners whose server waits in a batch queue: marked, with Slurm's reason.
    let queued: BTreeMap<String, (bool, String)> = state
        .servers
        .queued_all()
        .await
        .into_iter()
        .map(|q| (q.owner, (q.failed, q.state)))
        .collect();
    let mut out = vec![];
    let mut queued_shown = vec![];
    for (owner, (stale, workflows)) in owners {
        let mut visible = vec![];
        for mut w in workflows {
            if state.decider.may_read(&owner, &s, &w.name).await {
                w.tasks.clear();
                visible.push(w);
            }
        }
        if !visible.is_empty() {
            let server = queued.get(&owner).map(|(failed, why)| {
                json!({"state": if *failed { "failed" } else { "pending" }, "reason": why})
            });
            out.push(
                json!({ "owner": owner, "stale": stale, "workflows": visible,
                             "server": server }),
            );
            queued_shown.push(owner);
        }
    }
    // A queued owner with no known workflows yet (first start): listed when the reader
    // may read anything of theirs.
    let mut pending = vec![];
    for (owner, (failed, why)) in &queued {
        if queued_shown.contains(owner) || !state.decider.may_read(owner, &s, "").await {
            continue;
        }
        pending.push(
            json!({"owner": owner, "state": if *failed { "failed" } else { "pending" },
                            "reason": why}),
        );
    }
    Ok(HttpResponse::Ok().json(json!({ "owners": out, "queued": pending })))
}

#[derive(Deserialize)]
pub struct PermQuery {
    owner: String,
    #[serde(default)]
    workflow: String,
}

/// What the session may do on one workflow right now (policy ∩ elevation), and why not.
pub async fn permitted(
    state: web::Data<AppState>,
    q: web::Query<PermQuery>,
    Authed(s): Authed,
) -> ApiResult {
    valid_owner(&q.owner)?;
    // One set computation for what is allowed; the full decision (with its reasons) only
    // for the operations that are not.
    let now = state.store.now();
    let ops = state
        .decider
        .policy_ops(&q.owner, &s, &q.workflow)
        .await
        .intersect(state.decider.class_ops(&q.owner, &s, now));
    let mut denied = BTreeMap::new();
    for op in Operation::ALL.into_iter().filter(|op| !ops.contains(*op)) {
        let eff = state
            .decider
            .effective(&q.owner, &s, &q.workflow, op, now)
            .await;
        denied.insert(op.name(), eff.reason);
    }
    Ok(HttpResponse::Ok().json(json!({ "ops": ops, "denied": denied })))
}

#[derive(Deserialize)]
pub struct ExplainQuery {
    owner: String,
    #[serde(default)]
    workflow: String,
    op: String,
}

/// "Why can't I?": the decision and the entries that determined it.
pub async fn explain(
    state: web::Data<AppState>,
    q: web::Query<ExplainQuery>,
    Authed(s): Authed,
) -> ApiResult {
    valid_owner(&q.owner)?;
    let op =
        q.op.parse::<Operation>()
            .map_err(|_| ApiError::bad_request(format!("op: unknown operation {:?}", q.op)))?;
    let eff = state
        .decider
        .effective(&q.owner, &s, &q.workflow, op, state.store.now())
        .await;
    let mut reasons = eff.decision.reasons.clone();
    if eff.decision.allowed && !eff.allowed {
        reasons.push(eff.reason.clone());
    }
    Ok(HttpResponse::Ok().json(json!({
        "allowed": eff.allowed,
        "policy_allows": eff.decision.allowed,
        "class_needed": op.class(),
        "class_now": eff.class_now,
        "reasons": reasons,
    })))
}

#[derive(Deserialize)]
pub struct AuditQuery {
    actor: Option<String>,
    owner: Option<String>,
    workflow: Option<String>,
    op: Option<String>,
    decision: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
}

fn parse_time(
    field: &str,
    v: &Option<String>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    match v.as_deref().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&chrono::Utc)))
            .map_err(|e| {
                ApiError::bad_request(format!("{field}: {s:?} is not an RFC 3339 time ({e})"))
            }),
    }
}

/// Audit search: owners see actions on their own workflows, admins see everything.
pub async fn audit_search(
    state: web::Data<AppState>,
    q: web::Query<AuditQuery>,
    Authed(s): Authed,
) -> ApiResult {
    let admin = state.is_admin(&s.user);
    let owner = match (&q.owner, admin) {
        (Some(o), true) if !o.is_empty() => Some(o.clone()),
        (_, true) => None,
        (Some(o), false) if !o.is_empty() && o != &s.user => {
            return Err(ApiError::forbidden(
                "only hub admins may search actions on other owners' workflows",
            ))
        }
        (_, false) => Some(s.user.clone()),
    };
    let decision = match q.decision.as_deref().filter(|d| !d.is_empty()) {
        None => None,
        Some("allow") => Some(steward_audit::Decision::Allow),
        Some("deny") => Some(steward_audit::Decision::Deny),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "decision: {other:?} must be allow or deny"
            )))
        }
    };
    let filter = steward_audit::SearchFilter {
        actor: q.actor.clone().filter(|x| !x.is_empty()),
        owner,
        workflow: q.workflow.clone().filter(|x| !x.is_empty()),
        op: q.op.clone().filter(|x| !x.is_empty()),
        decision,
        since: parse_time("since", &q.since)?,
        until: parse_time("until", &q.until)?,
        limit: Some(q.limit.unwrap_or(200).min(5000)),
        newest_first: true,
        ..Default::default()
    };
    let dir = state.cfg.audit.dir.clone();
    let records = tokio::task::spawn_blocking(move || steward_audit::search(&dir, &filter))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::unavailable(format!("audit search failed: {e}")))?;
    let human: Vec<String> = records
        .iter()
        .filter_map(steward_audit::human_line)
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "records": records, "human": human })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    #[serde(default)]
    profile: Option<String>,
}

fn already_running(pid: u32) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::CONFLICT,
        format!("your server is already running (pid {pid}); stop it first (DELETE /hub/api/server) to pick another profile"),
    )
}

/// `POST /hub/api/server {profile}`: start your own server on a chosen profile.
pub async fn start_own_server(
    state: web::Data<AppState>,
    body: web::Bytes,
    CsrfChecked(s): CsrfChecked,
) -> ApiResult {
    let body: StartBody = serde_json::from_slice(if body.is_empty() { b"{}" } else { &body })
        .map_err(|e| {
            ApiError::bad_request(format!("request body: {e}; expected {{\"profile\": NAME}}"))
        })?;
    if let Some(srv) = state.servers.get(&s.user) {
        return Err(already_running(srv.pid));
    }
    let profile = body.profile.unwrap_or_else(|| "default".into());
    match state
        .servers
        .ensure_audited(&s.user, &s.user, Some(profile.clone()))
        .await
    {
        Ok(SpawnOutcome::Started(_)) => {
            Ok(HttpResponse::Ok().json(json!({ "started": true, "profile": profile })))
        }
        // Started by someone else (a visit, a prestart) since the check above.
        Ok(SpawnOutcome::AlreadyRunning(srv)) => Err(already_running(srv.pid)),
        Err(e @ ServerError::Busy) => Err(ApiError::too_many(e.to_string(), 5)),
        // Submitted and waiting in the batch queue: accepted, not refused.
        Err(e @ ServerError::Pending { .. }) => Ok(HttpResponse::Accepted().json(
            json!({ "started": false, "queued": true, "profile": profile, "message": e.to_string() }),
        )),
        Err(e) => Err(ApiError::forbidden(e.to_string())),
    }
}

/// `DELETE /hub/api/server`: stop your own server (your workflows keep running).
pub async fn stop_own_server(state: web::Data<AppState>, CsrfChecked(s): CsrfChecked) -> ApiResult {
    if !state.servers.has_server_or_queued(&s.user).await {
        return Err(ApiError::not_found("your server is not running or queued"));
    }
    state
        .servers
        .stop_audited(&s.user, &s.user, None, "stopped by its owner")
        .await
        .map_err(|e| ApiError::bad_gateway(e.to_string()))?;
    Ok(HttpResponse::Ok().json(json!({ "stopped": true })))
}
