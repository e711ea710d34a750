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

/// IYS's usage limits as one outbound IP's budgets. IYS counts every limit per IP, not per
/// account, so clients of several IYS accounts leaving through one IP must share one `Limits`
/// ([`crate::IysClient::with_limits`]), or together they would send more than IYS allows.
#[derive(Debug)]
pub struct Limits {
    pub(crate) per_second: Window,
    pub(crate) token: HourlyWindow,
    pub(crate) status: HourlyWindow,
    pub(crate) history: HourlyWindow,
}

/// The widest the per-second guard grows while IYS refuses the pace: a quarter of IYS's rate.
const MAX_GUARD: Duration = Duration::from_millis(250);

impl Limits {
    pub fn new(budgets: &crate::Budgets, clock: Arc<dyn Clock>) -> Arc<Limits> {
        Arc::new(Limits {
            // A little over a second: network and scheduling jitter must not squeeze N+1
            // requests into IYS's sliding second. The guard adapts to the jitter IYS sees.
            per_second: Window::guarded(
                budgets.per_second,
                Duration::from_secs(1),
                budgets.per_second_guard,
                MAX_GUARD,
            ),
            token: HourlyWindow::new(budgets.token_per_hour, clock.clone()),
            status: HourlyWindow::new(budgets.status_per_hour, clock.clone()),
            history: HourlyWindow::new(budgets.history_per_hour, clock),
        })
    }

    /// How much the per-second window is now stretched by.
    pub async fn pace_guard(&self) -> Duration {
        self.per_second.guard().await
    }
}

/// At most `limit` acquisitions per `window` of real time, stretched by a guard that adapts.
///
/// IYS counts requests when they arrive, the client when it sends them: when one request of a
/// window is held up on the way and a later one is not, they arrive closer together than they
/// were sent. The guard stretches the window by a little (`min_guard`) while IYS accepts the pace,
/// doubles (up to `max_guard`) each time IYS refuses a request for it ([`Window::refused`]), and
/// narrows again by one `min_guard` after every [`CALM`] windows' worth of requests without a
/// refusal. A fixed 5 % guard cost 5 % of IYS's quota on every run; the adaptive one costs
/// about 1 % where the network is steady and grows only where it is not.
#[derive(Debug)]
pub struct Window {
    limit: usize,
    window: Duration,
    min_guard: Duration,
    max_guard: Duration,
    state: Mutex<Sent>,
}

/// Windows' worth of accepted requests after which the guard narrows one step.
pub const CALM: usize = 30;

#[derive(Debug, Default)]
struct Sent {
    times: VecDeque<Instant>,
    guard: Duration,
    /// Acquisitions since the guard last changed.
    calm: usize,
}

impl Window {
    /// A fixed window: exactly `limit` per `window`.
    pub fn new(limit: u32, window: Duration) -> Window {
        Window::guarded(limit, window, Duration::ZERO, Duration::ZERO)
    }

    /// A window stretched by a guard between `min_guard` and `max_guard` (see the type).
    pub fn guarded(
        limit: u32,
        window: Duration,
        min_guard: Duration,
        max_guard: Duration,
    ) -> Window {
        Window {
            limit: limit.max(1) as usize,
            window,
            min_guard,
            max_guard: max_guard.max(min_guard),
            state: Mutex::new(Sent {
                guard: min_guard,
                ..Sent::default()
            }),
        }
    }

    /// Waits until a call fits in the window, then counts it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut sent = self.state.lock().await;
                let now = Instant::now();
                let span = self.window + sent.guard;
                while sent
                    .times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= span)
                {
                    sent.times.pop_front();
                }
                let oldest = match sent.times.front() {
                    Some(oldest) if sent.times.len() >= self.limit => *oldest,
                    _ => {
                        sent.times.push_back(now);
                        sent.calm += 1;
                        if sent.calm >= self.limit * CALM && sent.guard > self.min_guard {
                            sent.guard = sent.guard.saturating_sub(self.step()).max(self.min_guard);
                            sent.calm = 0;
                        }
                        return;
                    }
                };
                span - now.duration_since(oldest)
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// IYS refused a request for the pace: widen the guard (twice as wide, at least one step
    /// more, at most `max_guard`).
    pub async fn refused(&self) {
        let mut sent = self.state.lock().await;
        sent.guard = (sent.guard * 2)
            .max(sent.guard + self.step())
            .min(self.max_guard);
        sent.calm = 0;
    }

    /// How much the guard widens at least and narrows at a time: `min_guard`, or a millisecond
    /// when that is zero (so a window configured without a guard can still grow one).
    fn step(&self) -> Duration {
        self.min_guard.max(Duration::from_millis(1))
    }

    /// The guard now in force.
    pub async fn guard(&self) -> Duration {
        self.state.lock().await.guard
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

    #[tokio::test]
    async fn the_guard_doubles_on_refusals_up_to_its_ceiling_and_narrows_after_calm_windows() {
        let step = Duration::from_millis(1);
        let w = Window::guarded(2, Duration::from_millis(2), step, Duration::from_millis(5));
        assert_eq!(w.guard().await, step);
        w.refused().await;
        assert_eq!(w.guard().await, Duration::from_millis(2));
        w.refused().await;
        assert_eq!(w.guard().await, Duration::from_millis(4));
        w.refused().await;
        assert_eq!(w.guard().await, Duration::from_millis(5), "capped");
        // One step narrower after each CALM windows of accepted requests, never below the step.
        for _ in 0..2 * CALM {
            w.acquire().await;
        }
        assert_eq!(w.guard().await, Duration::from_millis(4));
        for _ in 0..(2 * CALM) * 5 {
            w.acquire().await;
        }
        assert_eq!(w.guard().await, step);
        // Configured without a guard, it still grows one when refused, and narrows back to none.
        let w = Window::guarded(2, Duration::from_millis(2), Duration::ZERO, step * 4);
        w.refused().await;
        w.refused().await;
        assert_eq!(w.guard().await, step * 2);
        for _ in 0..(2 * CALM) * 2 {
            w.acquire().await;
        }
        assert_eq!(w.guard().await, Duration::ZERO);
    }

    #[tokio::test]
    async fn the_guard_stretches_the_window() {
        let w = Window::guarded(
            2,
            Duration::from_millis(100),
            Duration::from_millis(100),
            Duration::from_millis(100),
        );
        let start = Instant::now();
        for _ in 0..3 {
            w.acquire().await;
        }
        assert!(start.elapsed() >= Duration::from_millis(200));
    }
}
