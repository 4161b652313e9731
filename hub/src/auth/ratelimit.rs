//! Failed-login limits per user name and per client address (sliding window).
//!
//! Only failures count, so a person who types their password right is never slowed;
//! a guesser is stopped whichever dimension they vary:
//! - one address: `per_addr` failures whatever the names;
//! - one name from one address: `per_user` failures;
//! - one name from many addresses: [`SPREAD`] × `per_user` failures in all.
//!
//! The strict per-name limit is kept per (name, address) so that somebody who floods a
//! chosen person's name from their own address locks out that pair only, not the
//! person (one user's flood must not lock out another); locking the name everywhere
//! would take failures from `SPREAD × per_user / per_addr` addresses at least.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// How many times `per_user` failures a name may take across all addresses.
pub const SPREAD: usize = 10;

pub struct FailureLimiter {
    window_secs: i64,
    per_user: usize,
    per_addr: usize,
    failures: Mutex<HashMap<String, VecDeque<i64>>>,
}

impl FailureLimiter {
    pub fn new(window_secs: u64, per_user: usize, per_addr: usize) -> Self {
        FailureLimiter {
            window_secs: window_secs as i64,
            per_user,
            per_addr,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn retry_after(
        &self,
        map: &mut HashMap<String, VecDeque<i64>>,
        key: &str,
        max: usize,
        now: i64,
    ) -> Option<u64> {
        let q = map.get_mut(key)?;
        while q.front().is_some_and(|t| now - t >= self.window_secs) {
            q.pop_front();
        }
        if q.len() >= max {
            q.front()
                .map(|t| (t + self.window_secs - now).max(1) as u64)
        } else {
            None
        }
    }

    /// `Some(seconds)` when this user or address must wait before trying again.
    pub fn check(&self, user: &str, addr: &str, now: i64) -> Option<u64> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let pair = self.retry_after(&mut map, &pair_key(user, addr), self.per_user, now);
        let u = self.retry_after(&mut map, &format!("u:{user}"), SPREAD * self.per_user, now);
        let a = self.retry_after(&mut map, &format!("a:{addr}"), self.per_addr, now);
        pair.max(u).max(a)
    }

    pub fn failed(&self, user: &str, addr: &str, now: i64) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in [
            pair_key(user, addr),
            format!("u:{user}"),
            format!("a:{addr}"),
        ] {
            map.entry(key).or_default().push_back(now);
        }
        // Bound memory under a spray of random names.
        if map.len() > 100_000 {
            let window = self.window_secs;
            map.retain(|_, q| q.back().is_some_and(|t| now - t < window));
        }
    }

    pub fn succeeded(&self, user: &str, addr: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&pair_key(user, addr));
    }
}

/// A socket address holds no NUL, so no other (name, address) pair gives the same key.
fn pair_key(user: &str, addr: &str) -> String {
    format!("p:{user}\0{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_user_and_per_address_and_expire() {
        let l = FailureLimiter::new(60, 3, 5);
        for i in 0..3 {
            assert_eq!(l.check("alice", "1.1.1.1", 100 + i), None);
            l.failed("alice", "1.1.1.1", 100 + i);
        }
        // The name is stopped from the address that failed, not from everywhere.
        assert_eq!(l.check("alice", "1.1.1.1", 103), Some(57));
        assert_eq!(l.check("alice", "9.9.9.9", 103), None);
        assert_eq!(l.check("bob", "1.1.1.1", 103), None);
        l.failed("bob", "1.1.1.1", 103);
        l.failed("carl", "1.1.1.1", 103);
        assert!(l.check("dave", "1.1.1.1", 104).is_some(), "address limit");
        assert_eq!(l.check("alice", "1.1.1.1", 160), None, "window slid");
        l.succeeded("bob", "1.1.1.1");
    }

    #[test]
    fn a_name_guessed_from_many_addresses_is_stopped_everywhere() {
        let l = FailureLimiter::new(60, 3, 5);
        // Two failures from each of 15 addresses: no address and no pair is over.
        for a in 0..15 {
            let addr = format!("10.0.0.{a}");
            for _ in 0..2 {
                assert_eq!(l.check("alice", &addr, 100), None, "{addr}");
                l.failed("alice", &addr, 100);
            }
        }
        assert_eq!(
            l.check("alice", "10.0.1.1", 101),
            Some(59),
            "30 = 10 × 3 in all"
        );
        assert_eq!(l.check("bob", "10.0.1.1", 101), None);
    }
}
