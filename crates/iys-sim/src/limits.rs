//! IYS's usage limits per client IP: requests per second (real time) and hourly budgets
//! (the simulator's clock, so tests can cross the hour).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

const HOUR: i64 = 3600;

#[derive(Debug, Default)]
pub struct Limiter {
    recent: HashMap<IpAddr, VecDeque<Instant>>,
    token: HashMap<IpAddr, TokenWindow>,
    status: HashMap<IpAddr, HourWindow>,
    history: HashMap<IpAddr, HourWindow>,
}

#[derive(Debug, Clone, Copy)]
struct HourWindow {
    start: i64,
    count: u32,
}

#[derive(Debug, Clone, Copy)]
struct TokenWindow {
    start: i64,
    count: u32,
    blocked_until: Option<i64>,
}

/// Which hourly budget a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hourly {
    Status,
    History,
}

impl Limiter {
    /// Sliding one-second window; refused requests do not count.
    pub fn allow_request(&mut self, ip: IpAddr, per_second: u32, at: Instant) -> bool {
        let q = self.recent.entry(ip).or_default();
        while q
            .front()
            .is_some_and(|t| at.duration_since(*t) >= Duration::from_secs(1))
        {
            q.pop_front();
        }
        if q.len() >= per_second as usize {
            return false;
        }
        q.push_back(at);
        true
    }

    /// Token calls: `limit` per hour; once limited, every call before the hour is over
    /// restarts the hour (IYS's H084 rule).
    pub fn allow_token(&mut self, ip: IpAddr, limit: u32, now: i64) -> bool {
        let w = self.token.entry(ip).or_insert(TokenWindow {
            start: now,
            count: 0,
            blocked_until: None,
        });
        if let Some(until) = w.blocked_until {
            if now < until {
                w.blocked_until = Some(now + HOUR);
                return false;
            }
            *w = TokenWindow {
                start: now,
                count: 0,
                blocked_until: None,
            };
        }
        if now - w.start >= HOUR {
            w.start = now;
            w.count = 0;
        }
        w.count += 1;
        if w.count > limit {
            w.blocked_until = Some(now + HOUR);
            return false;
        }
        true
    }

    /// When a limited IP may call the token endpoint again (if it waits).
    pub fn token_blocked_until(&self, ip: IpAddr) -> Option<i64> {
        self.token.get(&ip).and_then(|w| w.blocked_until)
    }

    pub fn allow_hourly(&mut self, kind: Hourly, ip: IpAddr, limit: u32, now: i64) -> bool {
        let map = match kind {
            Hourly::Status => &mut self.status,
            Hourly::History => &mut self.history,
        };
        let w = map.entry(ip).or_insert(HourWindow {
            start: now,
            count: 0,
        });
        if now - w.start >= HOUR {
            *w = HourWindow {
                start: now,
                count: 0,
            };
        }
        if w.count >= limit {
            return false;
        }
        w.count += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip() -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }

    #[test]
    fn per_second_window_slides() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(l.allow_request(ip(), 10, t0));
        }
        assert!(!l.allow_request(ip(), 10, t0 + Duration::from_millis(999)));
        assert!(l.allow_request(ip(), 10, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn token_limit_restarts_the_hour_when_called_early() {
        let mut l = Limiter::default();
        for i in 0..3 {
            assert!(l.allow_token(ip(), 3, i));
        }
        assert!(!l.allow_token(ip(), 3, 10), "4th call in the hour");
        assert_eq!(l.token_blocked_until(ip()), Some(10 + HOUR));
        // Calling again 30 minutes later restarts the hour.
        assert!(!l.allow_token(ip(), 3, 1810));
        assert!(!l.allow_token(ip(), 3, 1810 + HOUR - 1));
        // Waiting out the full hour works.
        assert!(l.allow_token(ip(), 3, 1810 + HOUR - 1 + HOUR));
    }

    #[test]
    fn hourly_budgets_reset_after_an_hour() {
        let mut l = Limiter::default();
        assert!(l.allow_hourly(Hourly::History, ip(), 2, 0));
        assert!(l.allow_hourly(Hourly::History, ip(), 2, 1));
        assert!(!l.allow_hourly(Hourly::History, ip(), 2, 2));
        assert!(
            l.allow_hourly(Hourly::Status, ip(), 2, 2),
            "separate budget"
        );
        assert!(l.allow_hourly(Hourly::History, ip(), 2, HOUR));
    }
}
