//! What the hub does on its own: re-adopt servers after a restart, start configured
//! servers, cull idle ones, and reload policy and certificates on change or SIGHUP.

use crate::ca::ReloadableCert;
use crate::state::AppState;
use crate::web::audit;
use actix_web::web;
use std::sync::Arc;
use std::time::Duration;
use steward_audit::{events, AuditRecord, Outcome, RecordKind, SYSTEM_ACTOR};
use steward_protocol::helper::{HelperReply, HelperRequest};

pub fn start(state: web::Data<AppState>, cert: Arc<ReloadableCert>) {
    let st = state.clone();
    actix_web::rt::spawn(async move {
        adopt_servers(&st).await;
        let st2 = st.clone();
        actix_web::rt::spawn(async move { crate::reconcile::run(&st2).await });
        for owner in st.cfg.uiserver.prestart.clone() {
            let _ = crate::relay::ensure_server(&st, &owner, SYSTEM_ACTOR).await;
        }
    });
    let st = state.clone();
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        let mut last_mtime = policy_mtime(&st);
        let mut since_cull = 0u32;
        loop {
            tick.tick().await;
            let m = policy_mtime(&st);
            if m != last_mtime {
                last_mtime = m;
                reload_policy(&st, "file change").await;
            }
            since_cull += 1;
            if since_cull.is_multiple_of(3) {
                check_servers(&st).await;
            }
            if since_cull >= 15 {
                since_cull = 0;
                cull_idle(&st).await;
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
        state.policy.reload().map_err(|d| d.to_string())
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
            let _ = audit(state, rec).await;
        }
        Err(diags) => {
            state.metrics.policy_reload_errors.inc();
            tracing::error!(why, errors = %diags, "site policy NOT reloaded; the last good policy stays in force");
            let rec = AuditRecord {
                outcome: Some(Outcome::Error),
                message: Some(format!("{why}: {diags}")),
                ..AuditRecord::new(RecordKind::Event, events::POLICY_RELOAD, SYSTEM_ACTOR)
            };
            let _ = audit(state, rec).await;
        }
    }
}

/// After a restart: keep servers whose cgroup still holds their process as the owner;
/// stop whatever is half-started or dead.
pub async fn adopt_servers(state: &AppState) {
    for s in state.servers.all() {
        let reply = state
            .spawner
            .call(&HelperRequest::Adopt {
                user: s.owner.clone(),
                server: s.name.clone(),
                pid: s.pid,
            })
            .await;
        let adopted = matches!(reply, Ok(HelperReply::Adopted(_)));
        let detail = match &reply {
            Ok(HelperReply::Error { message, .. }) => message.clone(),
            Err(e) => e.to_string(),
            _ => String::new(),
        };
        if adopted {
            let rec = AuditRecord {
                owner: Some(s.owner.clone()),
                message: Some(format!("pid {} in {}", s.pid, s.cgroup)),
                ..AuditRecord::new(RecordKind::Event, events::ADOPT, SYSTEM_ACTOR)
            }
            .with_extra("server", s.name.clone());
            let _ = audit(state, rec).await;
        } else {
            let _ = state.servers.stop(&s.owner).await;
            let rec = AuditRecord {
                owner: Some(s.owner.clone()),
                message: Some(format!("not adopted ({detail}); cleaned up")),
                ..AuditRecord::new(RecordKind::Event, events::STOP, SYSTEM_ACTOR)
            }
            .with_extra("server", s.name.clone());
            let _ = audit(state, rec).await;
        }
    }
    // cgroups the database does not know: a start that never registered before a crash.
    if let Ok(HelperReply::List { servers }) = state.spawner.call(&HelperRequest::List).await {
        for s in servers {
            if state.servers.get(&s.user).is_none() {
                let _ = state
                    .spawner
                    .call(&HelperRequest::Stop {
                        user: s.user.clone(),
                        server: s.server.clone(),
                        grace_secs: Some(0),
                    })
                    .await;
                let rec = AuditRecord {
                    owner: Some(s.user.clone()),
                    message: Some(format!("half-started server in {} removed", s.cgroup)),
                    ..AuditRecord::new(RecordKind::Event, events::STOP, SYSTEM_ACTOR)
                }
                .with_extra("server", s.server.clone());
                let _ = audit(state, rec).await;
            }
        }
    }
}

/// Stops servers nobody watched or used for `cull_idle_secs` (workflows keep running).
pub async fn cull_idle(state: &AppState) {
    let now = state.clock.now_secs();
    let limit = state.cfg.uiserver.cull_idle_secs as i64;
    for s in state.servers.all() {
        let (last, watchers) = state
            .activity
            .lock()
            .ok()
            .and_then(|a| a.get(&s.owner).copied())
            .unwrap_or((now, 0));
        if watchers == 0 && now - last >= limit && state.servers.stop(&s.owner).await.is_ok() {
            {
                if let Ok(mut a) = state.activity.lock() {
                    a.remove(&s.owner);
                }
                let rec = AuditRecord {
                    owner: Some(s.owner.clone()),
                    message: Some(format!("idle for {} s", now - last)),
                    ..AuditRecord::new(RecordKind::Event, events::CULL, SYSTEM_ACTOR)
                }
                .with_extra("server", s.name.clone());
                let _ = audit(state, rec).await;
            }
        }
    }
}

/// Asks the helper about every server: one that died is forgotten (the next visit starts
/// it again), and an OOM kill in a server's cgroup is reported once, in the log, the
/// audit trail and the metrics.
pub async fn check_servers(state: &AppState) {
    for s in state.servers.all() {
        let reply = state
            .spawner
            .call(&HelperRequest::Status {
                user: s.owner.clone(),
                server: s.name.clone(),
            })
            .await;
        let (running, oom) = match reply {
            Ok(HelperReply::Status(st)) => (st.running && st.pids.contains(&s.pid), st.oom_killed),
            Ok(HelperReply::Error {
                code: steward_protocol::helper::HelperErrorCode::NotFound,
                ..
            }) => (false, false),
            _ => continue,
        };
        let newly_oom = oom && state.servers.mark_oom_reported(&s.owner);
        if newly_oom {
            tracing::error!(owner = %s.owner, cgroup = %s.cgroup, "the kernel OOM-killed a process in this server's cgroup (memory limit of its profile)");
            state.metrics.spawn_failures.inc();
        }
        if !running || newly_oom {
            let message = match (running, oom) {
                (false, true) => "server died: killed by the kernel, out of memory (memory limit of its profile)".to_string(),
                (true, true) => "a process in the server's cgroup was killed by the kernel: out of memory (memory limit of its profile)".to_string(),
                _ => "server exited".to_string(),
            };
            let rec = AuditRecord {
                owner: Some(s.owner.clone()),
                outcome: Some(if oom { Outcome::Error } else { Outcome::Ok }),
                message: Some(message),
                ..AuditRecord::new(RecordKind::Event, events::STOP, SYSTEM_ACTOR)
            }
            .with_extra("server", s.name.clone())
            .with_extra("oom_killed", oom);
            let _ = audit(state, rec).await;
            if !running {
                // Clean up whatever is left of the cgroup, then forget it.
                let _ = state.servers.stop(&s.owner).await;
            }
        }
    }
}
