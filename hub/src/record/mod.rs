//! What the hub writes down about itself: audit records (timed and counted, failures
//! logged) and the Prometheus metrics.
//!
//! The write-ahead rule of operations lives here as a type: [`Recorder::intent`] makes
//! an allowed operation's intent durable and hands back the [`PendingOp`] that only
//! [`Recorder::outcome`] (or [`Recorder::outcome_detached`]) can close.
//!
//! This module must not decide anything nor fail open: callers choose whether a failed
//! write refuses their action, and operations always refuse.

pub mod metrics;

pub use metrics::Metrics;

use std::sync::Arc;
use steward_audit::{AuditError, AuditLog, AuditRecord, Outcome, RecordKind};

/// What the recorder tells the deployment's in-flight registry about an operation.
pub enum Inflight {
    /// Its intent is durable and it is about to be forwarded.
    Noted {
        request_id: String,
        owner: String,
        /// The intent record, JSON.
        intent: String,
        intent_seq: u64,
    },
    /// Its outcome is written.
    Closed { request_id: String },
}

/// Where [`Inflight`] events go (`app` wires it to the shared state store; this module
/// stays below the store). The future completes when the event is recorded.
pub type InflightSink =
    Arc<dyn Fn(Inflight) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

pub struct Recorder {
    log: AuditLog,
    metrics: Arc<Metrics>,
    /// Where several hubs share a store: each forwarded operation is noted there until
    /// its outcome is written, so that the leader can close it if this hub dies
    /// (`app::reconcile::orphans`).
    inflight: Option<InflightSink>,
}

/// An allowed operation whose intent is durable; its outcome record is still owed.
pub struct PendingOp {
    intent: AuditRecord,
    intent_seq: u64,
}

impl PendingOp {
    fn outcome(self, outcome: Outcome, message: Option<String>) -> AuditRecord {
        self.intent.outcome_of(self.intent_seq, outcome, message)
    }
}

/// How many times (once a second) an outcome is retried while the log cannot be written.
const OUTCOME_RETRIES: u32 = 3600;

impl Recorder {
    pub fn new(log: AuditLog, metrics: Arc<Metrics>) -> Recorder {
        Recorder {
            log,
            metrics,
            inflight: None,
        }
    }

    /// Tells `sink` of every operation forwarded and closed (a store other hubs share).
    pub fn noting_inflight(mut self, sink: InflightSink) -> Recorder {
        self.inflight = Some(sink);
        self
    }

    /// Drops the in-flight note of an operation whose outcome is now written.
    fn closed(&self, request_id: Option<&str>) {
        if let (Some(sink), Some(rid)) = (&self.inflight, request_id) {
            tokio::spawn(sink(Inflight::Closed {
                request_id: rid.to_string(),
            }));
        }
    }

    /// The audit log itself (its head is what `app::chains` publishes).
    pub fn log(&self) -> &AuditLog {
        &self.log
    }

    /// Writes a signed checkpoint (and the head outside the log) now; the writer thread
    /// does the work, so this waits for it off the async worker.
    pub async fn checkpoint_now(&self) -> Result<(), AuditError> {
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.checkpoint_now())
            .await
            .map_err(|_| AuditError::Closed)?
    }

    /// Appends one record and waits until it is durable.
    pub async fn append(&self, rec: AuditRecord) -> Result<u64, AuditError> {
        let started = std::time::Instant::now();
        let r = self.log.append(rec).await;
        self.metrics
            .audit_write_seconds
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &r {
            self.metrics.audit_failures.inc();
            tracing::error!(error = %e, "audit log write failed");
        }
        r
    }

    /// Records a decided operation: first `before` (an elevation expiry noticed on the
    /// way), then the decision. A denial is an event and returns None; an allowed
    /// operation's intent is made durable and returns what closes it.
    pub async fn intent(
        &self,
        before: Option<AuditRecord>,
        decided: AuditRecord,
        allowed: bool,
    ) -> Result<Option<PendingOp>, AuditError> {
        if let Some(rec) = before {
            let _ = self.append(rec).await;
        }
        if !allowed {
            let rec = AuditRecord {
                kind: RecordKind::Event,
                ..decided
            };
            self.append(rec).await?;
            return Ok(None);
        }
        let intent_seq = self.append(decided.clone()).await?;
        if let (Some(sink), Some(rid)) = (&self.inflight, decided.request_id.as_ref()) {
            // Before forwarding: a crash after this leaves a note the leader finds.
            sink(Inflight::Noted {
                request_id: rid.clone(),
                owner: decided.owner.clone().unwrap_or_default(),
                intent: serde_json::to_string(&decided).unwrap_or_default(),
                intent_seq,
            })
            .await;
        }
        Ok(Some(PendingOp {
            intent: decided,
            intent_seq,
        }))
    }

    /// Writes the outcome record that closes a forwarded operation's intent.
    pub async fn outcome(&self, pending: PendingOp, outcome: Outcome, message: Option<String>) {
        let rec = pending.outcome(outcome, message);
        if self.append(rec.clone()).await.is_ok() {
            self.closed(rec.request_id.as_deref());
        }
    }

    /// Queues the outcome record without waiting for the disk, so a result reaches the
    /// browser one flush sooner. Only the intent must be durable before forwarding
    /// (write-ahead); an outcome lost to a crash is reported as unknown at the next
    /// start, and the shutdown path waits for every queued record (`app::serve`).
    pub fn outcome_detached(&self, pending: PendingOp, outcome: Outcome, message: Option<String>) {
        let rec = pending.outcome(outcome, message);
        let log = self.log.clone();
        let inflight = self.inflight.clone();
        let close = move |rid: Option<String>| {
            if let (Some(sink), Some(request_id)) = (inflight, rid) {
                tokio::spawn(sink(Inflight::Closed { request_id }));
            }
        };
        let queued = self.log.append_queued(rec.clone());
        if queued.is_err() {
            self.metrics.audit_failures.inc();
        }
        // An outcome that cannot be written now (disk full) is kept and written once the
        // log works again: an operation that ran must not end with its intent alone.
        tokio::spawn(async move {
            if let Ok(rx) = queued {
                if let Ok(Ok(_)) = rx.await {
                    close(rec.request_id.clone());
                    return;
                }
            }
            tracing::error!("audit log write failed (operation outcome); retrying");
            for _ in 0..OUTCOME_RETRIES {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if log.append(rec.clone()).await.is_ok() {
                    tracing::info!("operation outcome written after a retry");
                    close(rec.request_id.clone());
                    return;
                }
            }
            tracing::error!(
                request_id = rec.request_id.as_deref().unwrap_or(""),
                "operation outcome not written; the next start records it as unknown"
            );
        });
    }
}
