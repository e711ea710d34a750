//! Client configuration. Secrets never reach logs or `Debug` output.

use std::fmt;
use std::time::Duration;

/// A secret string (the API password): `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// IYS's usage limits as the client's own budgets. Callers wait for budget; they never fail
/// for lack of it. Defaults are IYS's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budgets {
    /// Requests per second, all endpoints together (IYS: 10 per IP).
    pub per_second: u32,
    /// The least the client stretches IYS's second by, so that requests held up on the way do
    /// not arrive more than `per_second` within one; it widens by itself while IYS refuses the
    /// pace (H124) and narrows back when it no longer does (see `budget::Window`).
    pub per_second_guard: Duration,
    pub token_per_hour: u32,
    pub status_per_hour: u32,
    pub history_per_hour: u32,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            per_second: 10,
            per_second_guard: Duration::from_millis(10),
            token_per_hour: 100,
            status_per_hour: 1000,
            history_per_hour: 100,
        }
    }
}

/// Retries of transient failures: exponential back-off with jitter, `Retry-After` honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`: base × 2^attempt, capped, with ±25 % jitter;
    /// at least what the server asked for in `Retry-After`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(self.max_delay);
        let jitter = 0.75 + fastrand::f64() * 0.5;
        let jittered = exp.mul_f64(jitter);
        match retry_after {
            Some(ra) => jittered.max(ra.min(self.max_delay * 2)),
            None => jittered,
        }
    }
}

/// How bulk results are awaited: IYS asks for no poll sooner than 300 s after submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkPolling {
    pub min_age: Duration,
    /// Waits between later polls; the last one repeats until `max_polls`.
    pub schedule: Vec<Duration>,
    pub max_polls: u32,
}

impl Default for BulkPolling {
    fn default() -> Self {
        BulkPolling {
            min_age: Duration::from_secs(300),
            schedule: vec![
                Duration::from_secs(30),
                Duration::from_secs(60),
                Duration::from_secs(120),
                Duration::from_secs(300),
            ],
            max_polls: 30,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://api.iys.org.tr`, `https://api.sandbox.iys.org.tr` or a simulator's URL.
    pub base_url: String,
    pub username: String,
    pub password: Secret,
    /// The service provider's IYS number.
    pub iys_code: u64,
    /// Brands this client acts for (informational; every call names its brand).
    pub brand_codes: Vec<u64>,
    /// Per HTTP request.
    pub timeout: Duration,
    /// Refresh the access token this long before it expires.
    pub refresh_margin: Duration,
    pub budgets: Budgets,
    pub retry: RetryPolicy,
    pub bulk: BulkPolling,
}

impl ClientConfig {
    pub fn new(
        base_url: impl Into<String>,
        username: impl Into<String>,
        password: Secret,
        iys_code: u64,
    ) -> ClientConfig {
        ClientConfig {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            username: username.into(),
            password,
            iys_code,
            brand_codes: vec![iys_code],
            timeout: Duration::from_secs(30),
            refresh_margin: Duration::from_secs(300),
            budgets: Budgets::default(),
            retry: RetryPolicy::default(),
            bulk: BulkPolling::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let cfg = ClientConfig::new("http://x", "u", Secret::new("hunter2"), 1);
        assert!(!format!("{cfg:?}").contains("hunter2"));
        assert_eq!(cfg.password.expose(), "hunter2");
    }

    #[test]
    fn back_off_grows_is_capped_and_honours_retry_after() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let d0 = p.delay(0, None);
        assert!(d0 >= Duration::from_millis(75) && d0 <= Duration::from_millis(125));
        let d10 = p.delay(10, None);
        assert!(d10 <= Duration::from_millis(1250));
        assert!(p.delay(0, Some(Duration::from_millis(900))) >= Duration::from_millis(900));
    }
}
