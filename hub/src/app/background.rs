//! What the hub does on its own: re-adopt servers after a restart, start configured
//! servers, cull idle ones, and reload policy and certificates on change or SIGHUP.
//! Adoption, status checks and culling are the leader's alone when several hubs share
//! a store (`store::leader`); every hub reports its own servers' activity.

use crate::pki::ca::ReloadableCert;
use crate::state::AppState;
use actix_web::web;
use std::sync::Arc;
use std::time::Duration;
use steward_audit::{events, AuditRecord, Outcome, RecordKind, SYSTEM_ACTOR};

pub fn start(state: web::Data<AppState>, cert: Arc<ReloadableCert>) {
    super::chains::start(&state);
    let st = state.clone();
    actix_web::rt::spawn(async move {
        // A shared store's leader is chosen within a second or two of the start.
        for _ in 0..30 {
            if st.servers.leadership.is_leader() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        st.servers.adopt_all().await;
        if let Some(cluster) = st.cfg.spawner.slurm.clone() {
            let st3 = st.clone();
            actix_web::rt::spawn(async move {
                // One batched, jittered poll per interval, whatever the number of owners.
                let every = Duration::from_secs(cluster.poll_secs);
                loop {
                    st3.servers.poll_slurm().await;
                    tokio::time::sleep(steward_spawner::slurm::jittered(every, 0.2)).await;
                }
            });
        }
        let st2 = st.clone();
        actix_web::rt::spawn(async move { super::reconcile::run(&st2).await });
        for owner in st.cfg.uiserver.prestart.clone() {
            let _ = st.servers.ensure_audited(&owner, SYSTEM_ACTOR, None).await;
        }
    });
    let st = state.clone();
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        let mut last_mtime = policy_mtime(&st);
        let mut since_cull = 0u32;
        let mut was_leader = st.servers.leadership.is_leader();
        let mut gone_hubs = std::collections::HashMap::new();
        loop {
            tick.tick().await;
            let leader = st.servers.leadership.is_leader();
            if leader && !was_leader {
                // Taking over from a leader that stopped: its servers are ours to check.
                st.servers.adopt_all().await;
            }
            was_leader = leader;
            let m = policy_mtime(&st);
            if m != last_mtime {
                last_mtime = m;
                reload_policy(&st, "file change").await;
            }
            since_cull += 1;
            if since_cull.is_multiple_of(3) {
                st.servers.check_all().await;
                super::reconcile::orphans(&st, &mut gone_hubs).await;
            }
            if since_cull.is_multiple_of(5) {
                st.servers.flush_activity().await;
            }
            if since_cull >= 15 {
                since_cull = 0;
                st.servers.cull_idle().await;
            }
        }
    });
    // Registered before the hub says it is ready: a SIGHUP that arrives before the task
    // first runs must be queued, not take the default action (terminate).
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let st = state;
    actix_web::rt::spawn(async move {
        let mut hup = match hup {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "cannot install the SIGHUP handler; reload by restarting");
                return;
            }
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading policy and TLS certificate");
            reload_policy(&st, "SIGHUP").await;
            match cert.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate reload failed; keeping the old one")
                }
            }
        }
    });
}

fn policy_mtime(state: &AppState) -> Option<std::time::SystemTime> {
    std::fs::metadata(&state.cfg.policy.site)
        .and_then(|m| m.modified())
        .ok()
}

/// Reloads the site policy; a bad file never takes effect and is logged, counted, audited.
pub async fn reload_policy(state: &AppState, why: &str) {
    let site = &state.cfg.policy.site;
    // An empty file parses as a policy that grants nothing: what a writer that truncated
    // the file and has not written it yet (or died) leaves. Never take it.
    let empty = std::fs::read(site).is_ok_and(|b| b.iter().all(u8::is_ascii_whitespace));
    let result = if empty {
        Err(format!(
            "{}: the file is empty (half-written?); a site policy must grant something",
            site.display()
        ))
    } else {
        state.decider.policy.reload().map_err(|d| d.to_string())
    };
    match result {
        Ok(report) => {
            state.metrics.policy_reloads.inc();
            tracing::info!(why, sha256 = %report.sha256, entries = report.entries, "site policy reloaded");
            let rec = AuditRecord {
                outcome: Some(Outcome::Ok),
                message: Some(format!("{} ({})", report.path.display(), why)),
                ..AuditRecord::new(RecordKind::Event, events::POLICY_RELOAD, SYSTEM_ACTOR)
            }
            .with_extra("sha256", report.sha256.clone())
            .with_extra("entries", report.entries as u64);
            let _ = state.recorder.append(rec).await;
        }
        Err(diags) => {
            state.metrics.policy_reload_errors.inc();
            tracing::error!(why, errors = %diags, "site policy NOT reloaded; the last good policy stays in force");
            let rec = AuditRecord {
                outcome: Some(Outcome::Error),
                message: Some(format!("{why}: {diags}")),
                ..AuditRecord::new(RecordKind::Event, events::POLICY_RELOAD, SYSTEM_ACTOR)
            };
            let _ = state.recorder.append(rec).await;
        }
    }
}
