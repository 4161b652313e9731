//! The hub's part in the deployment's audit checkpoint (docs/ha.md, "Audit with
//! several hubs"): every hub publishes its own chain's durable head (hub id, seq, line
//! hash) to the shared store every [`EVERY`] and at stop; the leader then signs a
//! checkpoint over every hub's latest head with the audit key the hubs share and
//! stores it, conditional on its fencing epoch. `steward audit verify --deployment`
//! holds every hub's chain to that checkpoint, so a tail deleted from one hub's log is
//! found even when that hub's own `audit.head` files went with it.
//!
//! Nothing here refuses anything: the audit log stays fail-closed exactly as before
//! (operations are refused when it cannot be written). A store that cannot take a head
//! or a checkpoint now is logged and tried again next round; a head the store refuses
//! as going backwards means this hub's chain was cut or replaced, which is logged as an
//! error for the operator (and named by verify).

use crate::pki;
use crate::state::AppState;
use crate::store::{Leadership, Store};
use chrono::{DateTime, SecondsFormat};
use ed25519_dalek::SigningKey;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use steward_audit::{AuditLog, ChainHead, DeploymentCheckpoint};

/// How often heads are published and the leader checkpoints (the activity cadence).
pub const EVERY: Duration = Duration::from_secs(10);

/// Where error messages say the checkpoint came from.
const FROM_STORE: &str = "in the state store";

pub struct Chains {
    store: Arc<dyn Store>,
    log: AuditLog,
    leadership: Arc<Leadership>,
    key: SigningKey,
    hub: String,
    /// The head last accepted by the store (publishing it again is skipped).
    published: Mutex<Option<ChainHead>>,
    /// The head last refused (so the error is logged once per head, not every round).
    refused: Mutex<Option<ChainHead>>,
}

impl Chains {
    pub fn new(state: &AppState) -> Result<Chains, pki::KeyError> {
        Ok(Chains {
            store: state.store.clone(),
            log: state.recorder.log().clone(),
            leadership: state.servers.leadership.clone(),
            // The key the hub started with (`app::build` made it if it was missing); a
            // file gone since is an error here, not a new key.
            key: pki::load_key(&state.cfg.data_dir.join(pki::AUDIT_KEY_FILE))?,
            hub: state.servers.leadership.hub().to_string(),
            published: Mutex::new(None),
            refused: Mutex::new(None),
        })
    }

    /// One round: publish this hub's head, then checkpoint if this hub leads.
    pub async fn round(&self) {
        self.publish().await;
        self.checkpoint().await;
    }

    async fn publish(&self) {
        let Some(head) = self.log.durable_head() else {
            return;
        };
        if get(&self.published).as_ref() == Some(&head) {
            return;
        }
        match self
            .store
            .put_audit_head(&head.hub, head.seq, &head.hash, self.store.now())
            .await
        {
            Ok(true) => set(&self.published, head),
            Ok(false) => {
                if get(&self.refused).as_ref() != Some(&head) {
                    tracing::error!(
                        hub = %head.hub,
                        seq = head.seq,
                        "the state store holds a later audit chain head for this hub (or another record at this seq) than its log has: this hub's audit log was cut or replaced; `steward audit verify --deployment` names it"
                    );
                    set(&self.refused, head);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not publish the audit chain head; trying again")
            }
        }
    }

    /// The leader's checkpoint over every hub's head: the last one (if its signature
    /// holds) merged with what the hubs published, written only when it changed.
    async fn checkpoint(&self) {
        if !self.leadership.is_leader() {
            return;
        }
        let epoch = self.leadership.epoch();
        let vk = self.key.verifying_key();
        let prev = match self.store.audit_checkpoint().await {
            Ok(Some(text)) => match DeploymentCheckpoint::from_json(&text, FROM_STORE)
                .and_then(|cp| cp.check_signature(&vk, FROM_STORE).map(|()| cp))
            {
                Ok(cp) => Some(cp),
                Err(e) => {
                    // Not signed by the deployment's key: someone wrote the row. It is
                    // replaced by one built from the published heads; say so loudly.
                    tracing::error!(error = %e, "the stored audit checkpoint is not valid; writing a new one from the published heads");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the audit checkpoint; trying again");
                return;
            }
        };
        let heads = match self.store.audit_heads().await {
            Ok(rows) => rows
                .into_iter()
                .map(|r| ChainHead {
                    hub: r.hub,
                    seq: r.seq,
                    hash: r.hash,
                })
                .collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the audit chain heads; trying again");
                return;
            }
        };
        let now = self.store.now();
        let time = DateTime::from_timestamp(now, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Micros, true);
        let (mut next, conflicts) =
            DeploymentCheckpoint::next(prev.as_ref(), &heads, &self.hub, epoch, &time);
        for c in conflicts {
            tracing::error!(conflict = %c, "audit checkpoint: a published head contradicts the signed one, which is kept");
        }
        if next.heads.is_empty() {
            return;
        }
        if prev
            .as_ref()
            .is_some_and(|p| p.same_heads(&next) && p.epoch == epoch && p.leader == self.hub)
        {
            return;
        }
        next.sign(&self.key);
        match self
            .store
            .put_audit_checkpoint(&self.hub, epoch, now, &next.to_json())
            .await
        {
            Ok(true) => tracing::debug!(epoch, hubs = next.heads.len(), "audit checkpoint written"),
            Ok(false) => tracing::warn!(
                epoch,
                "audit checkpoint not written: this hub no longer leads at this epoch"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not write the audit checkpoint; trying again")
            }
        }
    }
}

// A panic while holding these small locks leaves plain data behind.
fn get(m: &Mutex<Option<ChainHead>>) -> Option<ChainHead> {
    m.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn set(m: &Mutex<Option<ChainHead>>, head: ChainHead) {
    *m.lock().unwrap_or_else(|p| p.into_inner()) = Some(head);
}

/// Runs [`Chains::round`] every [`EVERY`] for as long as the hub runs.
pub fn start(state: &AppState) {
    let chains = match Chains::new(state) {
        Ok(c) => c,
        Err(e) => {
            // The key was loaded at build already; this is a file gone since.
            tracing::error!(error = %e, "audit chain heads will not be published");
            return;
        }
    };
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            chains.round().await;
        }
    });
}

/// At stop, after the final audit checkpoint: publish the head that covers it, and
/// if this hub leads, checkpoint it, so the deployment's checkpoint reaches the end of
/// this hub's log.
pub async fn at_stop(state: &AppState) {
    match Chains::new(state) {
        Ok(c) => c.round().await,
        Err(e) => tracing::error!(error = %e, "audit chain head not published at stop"),
    }
}
