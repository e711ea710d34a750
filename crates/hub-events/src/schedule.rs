//! When to retry a failing webhook, and when to give up on it.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// Delays between attempts after consecutive failures, and how long a webhook may fail
/// without a break before it is disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    /// The delay after the 1st, 2nd, … failure in a row; the last one repeats.
    pub delays: Vec<Duration>,
    pub disable_after: Duration,
}

/// Spread of each delay: ±20%, so receivers that failed together do not retry together.
const JITTER: f64 = 0.2;
/// What an empty schedule waits.
const FALLBACK: Duration = Duration::from_secs(1);
/// No delay is shorter, so a zero in a schedule never makes a busy loop.
const MIN_DELAY: Duration = Duration::from_millis(1);

impl RetrySchedule {
    /// 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, then every 8 h; disabled after
    /// failing for 3 days without a success.
    pub fn standard() -> Self {
        const MIN: u64 = 60;
        const HOUR: u64 = 60 * MIN;
        Self {
            delays: [
                5,
                30,
                2 * MIN,
                10 * MIN,
                30 * MIN,
                HOUR,
                2 * HOUR,
                4 * HOUR,
                8 * HOUR,
            ]
            .into_iter()
            .map(Duration::from_secs)
            .collect(),
            disable_after: Duration::from_secs(3 * 24 * HOUR),
        }
    }

    /// The delay after the `failures`-th failure in a row (1-based; 0 counts as 1), jittered.
    pub fn next_delay(&self, failures: u32) -> Duration {
        let index = usize::try_from(failures.saturating_sub(1)).unwrap_or(usize::MAX);
        let base = self
            .delays
            .get(index)
            .or(self.delays.last())
            .copied()
            .unwrap_or(FALLBACK);
        let factor = 1.0 - JITTER + 2.0 * JITTER * fastrand::f64();
        Duration::try_from_secs_f64(base.as_secs_f64() * factor)
            .unwrap_or(base)
            .max(MIN_DELAY)
    }

    /// Whether a webhook failing without a break since `failing_since` should be disabled.
    pub fn should_disable(&self, failing_since: Timestamp, now: Timestamp) -> bool {
        let limit = SignedDuration::try_from(self.disable_after).unwrap_or(SignedDuration::MAX);
        now.duration_since(failing_since) >= limit
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self::standard()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_repeat_within_the_jitter() {
        let s = RetrySchedule::standard();
        assert_eq!(s.delays.len(), 9);
        assert!(s.delays.windows(2).all(|w| w[0] < w[1]));
        for failures in 0..=40u32 {
            let base = s.delays[(failures.max(1) as usize - 1).min(8)];
            for _ in 0..200 {
                let d = s.next_delay(failures);
                assert!(
                    d >= base.mul_f64(0.8) && d <= base.mul_f64(1.2),
                    "{failures}: {d:?}"
                );
            }
        }
        assert_eq!(s.delays[8], Duration::from_secs(8 * 3600));
        assert!(s.next_delay(1) <= Duration::from_secs(6));
        assert!(s.next_delay(100) >= Duration::from_secs(8 * 3600 * 8 / 10));
    }

    #[test]
    fn jitter_spreads() {
        let s = RetrySchedule::standard();
        let seen: std::collections::HashSet<_> = (0..50).map(|_| s.next_delay(3)).collect();
        assert!(seen.len() > 10);
        let (lo, hi) = (0..2000)
            .map(|_| s.next_delay(6).as_secs_f64() / 3600.0)
            .fold((f64::MAX, 0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
        assert!(lo < 0.85 && hi > 1.15, "{lo} {hi}");
    }

    #[test]
    fn never_zero() {
        let zero = RetrySchedule {
            delays: vec![Duration::ZERO],
            disable_after: Duration::ZERO,
        };
        assert!(zero.next_delay(1) > Duration::ZERO);
        let empty = RetrySchedule {
            delays: vec![],
            disable_after: Duration::ZERO,
        };
        assert!(empty.next_delay(1) >= FALLBACK.mul_f64(0.8));
    }

    #[test]
    fn disables_after_three_days_of_failures() {
        let s = RetrySchedule::standard();
        let since: Timestamp = "2026-03-01T00:00:00Z".parse().unwrap();
        let at = |h: i64| since + SignedDuration::from_hours(h);
        assert!(!s.should_disable(since, at(0)));
        assert!(!s.should_disable(since, at(71)));
        assert!(s.should_disable(since, at(72)));
        assert!(s.should_disable(since, at(1000)));
        // A clock that went backwards never disables.
        assert!(!s.should_disable(since, at(-5)));
    }
}
