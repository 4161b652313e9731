//! The relay's limits: operations per second per session (`limits.ops_per_sec`, one
//! limiter for WebSocket and HTTP operations alike) and open WebSockets per person
//! (`limits.ws_per_user`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// `rate` operations per second with bursts of twice that (`limits.ops_per_sec`).
pub struct TokenBucket {
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    pub fn full(rate: u32) -> Self {
        TokenBucket {
            tokens: 2.0 * rate as f64,
            refilled: Instant::now(),
        }
    }

    /// Untouched for two seconds, a bucket has refilled to its burst (2 × rate from
    /// empty), so dropping it and starting a fresh one later changes nothing.
    pub fn refilled_completely(&self) -> bool {
        self.refilled.elapsed() >= std::time::Duration::from_secs(2)
    }

    /// True when one more operation may go now.
    pub fn take(&mut self, rate: u32) -> bool {
        let rate = rate as f64;
        let now = Instant::now();
        let refill = now.duration_since(self.refilled).as_secs_f64() * rate;
        self.refilled = now;
        self.tokens = (self.tokens + refill).min(2.0 * rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One token bucket per session key.
pub struct OpLimiter {
    rate: u32,
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

impl OpLimiter {
    pub fn new(rate: u32) -> OpLimiter {
        OpLimiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// True when the session `key` may send one more operation now.
    pub fn take(&self, key: &str) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        // One bucket per session that ever sent an operation: forget the full ones now
        // and then, or the map grows with every session.
        if buckets.len() >= 1024 {
            buckets.retain(|_, b| !b.refilled_completely());
        }
        buckets
            .entry(key.to_string())
            .or_insert_with(|| TokenBucket::full(self.rate))
            .take(self.rate)
    }

    /// The message a refused operation gets.
    pub fn refusal(&self) -> String {
        format!(
            "too many operations: at most {} per second per session; slow down",
            self.rate
        )
    }
}

/// Open WebSockets per person.
pub struct WsSlots {
    max: usize,
    open: Mutex<HashMap<String, usize>>,
}

impl WsSlots {
    pub fn new(max: usize) -> WsSlots {
        WsSlots {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Takes one of `user`'s slots; false when all are in use.
    pub fn take(&self, user: &str) -> bool {
        let mut m = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(user.to_string()).or_insert(0);
        if *n >= self.max {
            return false;
        }
        *n += 1;
        true
    }

    pub fn release(&self, user: &str) {
        let mut m = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(user) {
            *n = n.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bucket_per_session_and_slots_per_person() {
        let l = OpLimiter::new(2);
        // Burst of 2 × rate, then refused; another session has its own bucket.
        assert_eq!((0..6).filter(|_| l.take("s1")).count(), 4);
        assert!(l.take("s2"));
        assert!(l.refusal().contains("2 per second"));
        let w = WsSlots::new(1);
        assert!(w.take("bob"));
        assert!(!w.take("bob"));
        assert!(w.take("carl"));
        w.release("bob");
        assert!(w.take("bob"));
    }
}
