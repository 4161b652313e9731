//! One leader among the hubs sharing a database, for the periodic work that must run
//! once per deployment: adopting and cleaning up servers after a restart, status checks,
//! culling. On PostgreSQL the leader is the hub holding a session-level advisory lock
//! on a connection of its own; the lock goes with that connection, so when the leader
//! dies (or loses the database) its lock is released and another hub, asking every
//! second, takes over within a couple of seconds. Each takeover bumps a fencing epoch
//! in the `leader` table, logged and shown by `/hub/health`. A hub that cannot confirm
//! its connection within two seconds stops counting itself leader at once, before it
//! could know whether another took over. On SQLite there is one hub, always leader.
//!
//! Periodic work asks [`Leadership::is_leader`] before each round and each server it
//! touches. This module owns leadership only; it must not do the work itself.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::NoTls;

/// The advisory lock key of the leader ("stwl").
const LEADER_LOCK: i64 = 0x7374_776c;
const TRY_EVERY: Duration = Duration::from_secs(1);
const CONFIRM_WITHIN: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Leadership {
    hub: String,
    leader: AtomicBool,
    epoch: AtomicI64,
}

impl Leadership {
    /// The only hub of a deployment (SQLite): always leader, epoch 1.
    pub fn sole(hub: &str) -> Arc<Leadership> {
        Arc::new(Leadership {
            hub: hub.to_string(),
            leader: AtomicBool::new(true),
            epoch: AtomicI64::new(1),
        })
    }

    pub fn hub(&self) -> &str {
        &self.hub
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    /// The fencing epoch of this hub's current (or last) leadership; 0 if never.
    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Competes for leadership on PostgreSQL in the background, for as long as the
    /// process runs.
    pub fn contend(mut cfg: tokio_postgres::Config, hub: &str) -> Arc<Leadership> {
        // Other hubs tell this one is alive by this connection (`Store::hub_connected`).
        cfg.application_name(application_name(hub));
        let me = Arc::new(Leadership {
            hub: hub.to_string(),
            leader: AtomicBool::new(false),
            epoch: AtomicI64::new(0),
        });
        let l = me.clone();
        tokio::spawn(async move {
            loop {
                l.session(&cfg).await;
                l.step_down("the leadership connection ended");
                tokio::time::sleep(TRY_EVERY).await;
            }
        });
        me
    }

    fn step_down(&self, why: &str) {
        if self.leader.swap(false, Ordering::SeqCst) {
            tracing::warn!(hub = %self.hub, epoch = self.epoch(), "this hub no longer leads: {why}");
        }
    }

    /// One database session: try the lock every second; once held, confirm the
    /// connection every second. Returns when the session is unusable.
    async fn session(&self, cfg: &tokio_postgres::Config) {
        let (client, conn) = match cfg.connect(NoTls).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "leadership: cannot connect");
                return;
            }
        };
        let conn = tokio::spawn(conn);
        loop {
            let took = tokio::time::timeout(
                CONFIRM_WITHIN,
                client.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK]),
            )
            .await;
            match took {
                Ok(Ok(row)) if row.try_get::<_, bool>(0).unwrap_or(false) => break,
                Ok(Ok(_)) => tokio::time::sleep(TRY_EVERY).await,
                _ => {
                    conn.abort();
                    return;
                }
            }
        }
        let epoch = tokio::time::timeout(
            CONFIRM_WITHIN,
            client.query_one(
                "INSERT INTO leader (id, epoch, hub, since)
                 VALUES (1, 1, $1, floor(extract(epoch FROM clock_timestamp()))::bigint)
                 ON CONFLICT (id) DO UPDATE SET epoch = leader.epoch + 1, hub = excluded.hub,
                   since = excluded.since
                 RETURNING epoch",
                &[&self.hub],
            ),
        )
        .await;
        let Ok(Ok(row)) = epoch else {
            conn.abort();
            return;
        };
        let epoch: i64 = row.try_get(0).unwrap_or(0);
        self.epoch.store(epoch, Ordering::SeqCst);
        self.leader.store(true, Ordering::SeqCst);
        tracing::info!(hub = %self.hub, epoch, "this hub leads the deployment's periodic work");
        loop {
            tokio::time::sleep(TRY_EVERY).await;
            let alive = tokio::time::timeout(CONFIRM_WITHIN, client.simple_query("SELECT 1")).await;
            if !matches!(alive, Ok(Ok(_))) {
                break;
            }
        }
        // Not leader from here on, whether or not the lock is already gone.
        self.step_down("the database did not confirm the leadership connection");
        conn.abort();
    }
}

/// The `application_name` of a hub's leadership connection.
pub fn application_name(hub: &str) -> String {
    format!("steward-hub/{hub}")
}
