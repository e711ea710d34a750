//! The IYS engines' heartbeat: the engines beat it, the API's `/readyz` reads it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// When the IYS engines' loop last went round; `/readyz` fails when it stops.
#[derive(Debug)]
pub struct Heartbeat {
    last_ms: AtomicI64,
    /// How long without a beat counts as stalled.
    pub tolerance: Duration,
}

impl Heartbeat {
    pub fn new(tolerance: Duration) -> Heartbeat {
        Heartbeat {
            last_ms: AtomicI64::new(jiff::Timestamp::now().as_millisecond()),
            tolerance,
        }
    }

    pub fn beat(&self) {
        self.last_ms
            .store(jiff::Timestamp::now().as_millisecond(), Ordering::Relaxed);
    }

    pub fn alive(&self) -> bool {
        let last = self.last_ms.load(Ordering::Relaxed);
        let age = jiff::Timestamp::now().as_millisecond().saturating_sub(last);
        u128::try_from(age).unwrap_or(0) <= self.tolerance.as_millis()
    }
}
