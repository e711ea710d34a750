//! Throttles: failed push logins per brand and address, and request rates per API key. Both are
//! in memory per instance (an attacker spread over instances meets each one's limit).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hub_core::BrandCode;

/// Most entries a throttle keeps; past it, expired ones are dropped (and if none is, the oldest).
const MAX_ENTRIES: usize = 100_000;

/// Counts events per key in fixed windows; `limit` per `window`.
#[derive(Debug)]
pub struct Window<K> {
    limit: u32,
    window: Duration,
    entries: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K: std::hash::Hash + Eq + Clone> Window<K> {
    pub fn new(limit: u32, window: Duration) -> Window<K> {
        Window {
            limit,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<K, (Instant, u32)>) -> T) -> T {
        // A poisoned lock only means another request panicked mid-update: the counts stay usable.
        let mut map = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut map)
    }

    /// How long `key` must wait, if it is over the limit now.
    pub fn blocked(&self, key: &K) -> Option<Duration> {
        let now = Instant::now();
        self.with(|m| match m.get(key) {
            Some((start, n)) if *n >= self.limit && now.duration_since(*start) < self.window => {
                Some(self.window.saturating_sub(now.duration_since(*start)))
            }
            _ => None,
        })
    }

    /// Counts one event for `key`; returns how long it must wait when this one went over.
    pub fn hit(&self, key: &K) -> Option<Duration> {
        let now = Instant::now();
        let window = self.window;
        self.with(|m| {
            if m.len() >= MAX_ENTRIES && !m.contains_key(key) {
                m.retain(|_, (start, _)| now.duration_since(*start) < window);
                if m.len() >= MAX_ENTRIES
                    && let Some(oldest) = m
                        .iter()
                        .min_by_key(|(_, (s, _))| *s)
                        .map(|(k, _)| k.clone())
                {
                    m.remove(&oldest);
                }
            }
            let e = m.entry(key.clone()).or_insert((now, 0));
            if now.duration_since(e.0) >= window {
                *e = (now, 0);
            }
            e.1 = e.1.saturating_add(1);
            (e.1 > self.limit).then(|| window.saturating_sub(now.duration_since(e.0)))
        })
    }

    pub fn clear(&self, key: &K) {
        self.with(|m| {
            m.remove(key);
        });
    }
}

/// The hub's throttles.
#[derive(Debug)]
pub struct Guards {
    /// Failed push logins per brand and address: 10 per 15 minutes.
    pub push_failures: Window<(BrandCode, IpAddr)>,
    /// Failed console sign-ins per address, whatever the user name: 20 per 15 minutes (the
    /// per-account lockout does not stop one address trying many names).
    pub console_failures: Window<IpAddr>,
    /// Requests per API key per second (`IYSHUB_RATE_LIMIT`; 0 turns it off).
    pub per_key: Option<Window<String>>,
    /// When each key's last use was recorded, so it is written at most once a minute.
    touched: Window<String>,
}

impl Guards {
    pub fn new(requests_per_key_per_second: u32) -> Guards {
        Guards {
            push_failures: Window::new(10, Duration::from_secs(15 * 60)),
            console_failures: Window::new(20, Duration::from_secs(15 * 60)),
            per_key: (requests_per_key_per_second > 0)
                .then(|| Window::new(requests_per_key_per_second, Duration::from_secs(1))),
            touched: Window::new(1, Duration::from_secs(60)),
        }
    }

    /// Whether a key's last use should be written now (once a minute per key and instance).
    pub fn should_touch(&self, key_id: &str) -> bool {
        self.touched.hit(&key_id.to_owned()).is_none()
    }
}

impl Default for Guards {
    fn default() -> Self {
        Guards::new(DEFAULT_RATE_LIMIT)
    }
}

/// Requests per second one API key may make by default: far above one sender's check traffic
/// (batch checks carry 10,000 recipients each), low enough that one key cannot starve the rest.
pub const DEFAULT_RATE_LIMIT: u32 = 2_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_blocks_past_its_limit_and_forgets_after_it() {
        let w: Window<u8> = Window::new(2, Duration::from_millis(200));
        assert_eq!((w.hit(&1), w.hit(&1)), (None, None));
        assert!(w.hit(&1).is_some());
        assert!(w.blocked(&1).is_some());
        assert!(w.blocked(&2).is_none(), "keys are apart");
        std::thread::sleep(Duration::from_millis(220));
        assert!(w.blocked(&1).is_none());
        assert!(w.hit(&1).is_none());
        w.clear(&1);
        assert!(w.blocked(&1).is_none());
    }
}
