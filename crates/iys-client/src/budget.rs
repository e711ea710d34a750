//! Rate budgets as sliding windows: at most `n` calls in any window.
//!
//! IYS counts requests per sliding second; a token-bucket (GCRA) limiter would allow a burst on
//! top of the steady rate and exceed it, so the client keeps the send times instead.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use tokio::sync::Mutex;

use crate::Clock;

/// At most `limit` acquisitions per `window` of real time.
#[derive(Debug)]
pub struct Window {
    limit: usize,
    window: Duration,
    sent: Mutex<VecDeque<Instant>>,
}

impl Window {
    pub fn new(limit: u32, window: Duration) -> Window {
        Window {
            limit: limit.max(1) as usize,
            window,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until a call fits in the window, then counts it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut sent = self.sent.lock().await;
                let now = Instant::now();
                while sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    sent.pop_front();
                }
                if sent.len() < self.limit {
                    sent.push_back(now);
                    return;
                }
                self.window - now.duration_since(*sent.front().expect("full window"))
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// At most `limit` acquisitions per hour of the client's clock (which tests may drive).
#[derive(Debug)]
pub struct HourlyWindow {
    limit: usize,
    clock: Arc<dyn Clock>,
    sent: Mutex<VecDeque<Timestamp>>,
}

impl HourlyWindow {
    pub fn new(limit: u32, clock: Arc<dyn Clock>) -> HourlyWindow {
        HourlyWindow {
            limit: limit.max(1) as usize,
            clock,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    pub async fn acquire(&self) {
        let hour = SignedDuration::from_hours(1);
        loop {
            let wait = {
                let mut sent = self.sent.lock().await;
                let now = self.clock.now();
                while sent.front().is_some_and(|t| now.duration_since(*t) >= hour) {
                    sent.pop_front();
                }
                if sent.len() < self.limit {
                    sent.push_back(now);
                    return;
                }
                let oldest = *sent.front().expect("full window");
                (hour - now.duration_since(oldest)).unsigned_abs()
            };
            // Re-check at least every second: the clock may be moved by tests or NTP.
            tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn never_more_than_the_limit_in_any_window() {
        let w = Window::new(5, Duration::from_millis(200));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..15 {
            w.acquire().await;
            times.push(start.elapsed());
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .take_while(|u| **u - *t < Duration::from_millis(200))
                .count();
            assert!(in_window <= 5, "{in_window} calls within 200 ms at {t:?}");
        }
        assert!(start.elapsed() >= Duration::from_millis(400));
    }
}
