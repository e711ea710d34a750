//! Request statistics, so tests can assert how a client behaved.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::Serialize;

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Requests per endpoint and HTTP status.
    pub requests: BTreeMap<String, BTreeMap<u16, u64>>,
    /// Calls that reached the token endpoint, refused or not.
    pub token_calls: u64,
    /// IYS-clock times of the most recent token calls (newest last, at most 1000).
    pub token_call_times: VecDeque<Timestamp>,
    /// Requests refused by a rate limit (H124, H084, H086, H089).
    pub rate_limited: u64,
    pub faults_injected: u64,
    /// Bulk result polls made sooner than IYS asks (`bulk_min_poll_age_ms`).
    pub early_bulk_polls: u64,
    /// The most requests seen within any one second.
    pub max_requests_per_second: u64,
    pub push_delivered: u64,
    pub push_failed: u64,
    #[serde(skip)]
    recent: VecDeque<Instant>,
}

impl Stats {
    /// Counts an arriving request towards the busiest-second figure.
    pub fn arrival(&mut self, at: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|t| at.duration_since(*t) >= Duration::from_secs(1))
        {
            self.recent.pop_front();
        }
        self.recent.push_back(at);
        self.max_requests_per_second = self.max_requests_per_second.max(self.recent.len() as u64);
    }

    pub fn answered(&mut self, endpoint: &str, status: u16) {
        *self
            .requests
            .entry(endpoint.to_owned())
            .or_default()
            .entry(status)
            .or_default() += 1;
    }

    pub fn token_call(&mut self, now: Timestamp) {
        self.token_calls += 1;
        self.token_call_times.push_back(now);
        if self.token_call_times.len() > 1000 {
            self.token_call_times.pop_front();
        }
    }
}
