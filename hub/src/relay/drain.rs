//! Graceful shutdown: on SIGTERM the hub stops taking new operations, lets the ones in
//! flight finish (so their outcomes are audited, not left "unknown"), then exits and
//! leaves every UI server running for the next hub to re-adopt.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{watch, Notify};

pub struct Drain {
    draining: watch::Sender<bool>,
    /// Relays and HTTP operations that must finish before the hub may exit.
    busy: AtomicUsize,
    idle: Notify,
}

/// Held by one relay or HTTP operation; the hub waits for every guard on shutdown.
pub struct DrainGuard<'a>(&'a Drain);

impl Drop for DrainGuard<'_> {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            draining: watch::channel(false).0,
            busy: AtomicUsize::new(0),
            idle: Notify::new(),
        }
    }
}

impl Drain {
    /// Registers work the shutdown must wait for; None once draining has begun.
    pub fn enter(&self) -> Option<DrainGuard<'_>> {
        self.busy.fetch_add(1, Ordering::AcqRel);
        let guard = DrainGuard(self);
        (!self.is_draining()).then_some(guard)
    }

    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Resolves when draining begins (at once if it already has).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.draining.subscribe()
    }

    pub fn begin(&self) {
        self.draining.send_replace(true);
    }

    /// Waits until every guard is dropped or `limit` passes; returns how many remain.
    pub async fn wait_idle(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = self.idle.notified();
            let busy = self.busy.load(Ordering::Acquire);
            if busy == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.busy.load(Ordering::Acquire);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_guards_and_refuses_new_work_once_draining() {
        let drain = std::sync::Arc::new(Drain::default());
        let guard = drain.enter();
        assert!(guard.is_some());
        drain.begin();
        assert!(drain.enter().is_none(), "no new work while draining");
        assert_eq!(drain.wait_idle(Duration::from_millis(20)).await, 1);
        let d = drain.clone();
        let waiter = tokio::spawn(async move { d.wait_idle(Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(guard);
        assert_eq!(waiter.await.ok(), Some(0));
    }
}
