//! The SQLite store's notion of "now" (see `Store::now`). Injected so tests can move
//! time (elevation expiry, idle culling) instead of sleeping.

use chrono::{DateTime, Duration, Utc};
use std::path::PathBuf;

#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// When set, a file holding whole seconds to add to the system clock.
    offset_file: Option<PathBuf>,
}

impl Clock {
    pub fn with_offset_file(path: Option<PathBuf>) -> Clock {
        Clock { offset_file: path }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        match &self.offset_file {
            None => now,
            Some(p) => {
                let offset = std::fs::read_to_string(p)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .unwrap_or(0);
                now + Duration::seconds(offset)
            }
        }
    }

    pub fn now_secs(&self) -> i64 {
        self.now().timestamp()
    }
}
