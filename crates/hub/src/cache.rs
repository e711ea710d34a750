//! Short-lived in-memory copies of what every request reads but rarely changes: API keys, brands
//! and category definitions. A change made through this instance drops the copy at once; a
//! change made on another instance is seen within the TTL (`IYSHUB_CACHE_TTL_MS`). Consent states
//! are never cached: a send-time check always reads the current state.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hub_core::{BrandCode, Channel};
use hub_store::{ApiKey, Brand, Category};

/// How long a copy is trusted when nothing on this instance changed it.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(2);
/// Entries kept per cache; past this the cache is emptied (simplest bound, refilled on demand).
const MAX_ENTRIES: usize = 100_000;

/// A map whose entries expire `ttl` after they were read from the database. Only positive
/// answers are kept, so a key or brand created elsewhere is usable at once.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: RwLock<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        TtlCache {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        // A poisoned lock only means a panic elsewhere mid-insert; the map itself is still sound.
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub fn insert(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }

    pub fn remove(&self, key: &K) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    pub fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// Recipients as typed → as stored, per channel. Normalising a phone number through
/// libphonenumber costs microseconds, which dominated large send-time checks; senders check the
/// same audiences again and again. Only successes are kept (the function is pure, so entries
/// never go stale); the map is emptied when full.
#[derive(Debug, Default)]
pub struct RecipientMemo {
    /// By channel, then by the input: a lookup borrows the input instead of copying it.
    entries: RwLock<HashMap<Channel, HashMap<String, String>>>,
}

/// Recipients remembered at most (about 100 bytes each).
const MAX_RECIPIENTS: usize = 200_000;

impl RecipientMemo {
    /// `normalise` applied to every input, reusing remembered answers; one lock per call.
    pub fn normalise_all<E>(
        &self,
        inputs: &[String],
        channel: Channel,
        normalise: impl Fn(&str, Channel) -> Result<String, E>,
    ) -> Vec<Result<String, E>> {
        let mut out: Vec<Option<Result<String, E>>> = {
            let known = self.entries.read().unwrap_or_else(|p| p.into_inner());
            let known = known.get(&channel);
            inputs
                .iter()
                .map(|i| known.and_then(|k| k.get(i)).cloned().map(Ok))
                .collect()
        };
        let mut learned = Vec::new();
        for (slot, input) in out.iter_mut().zip(inputs) {
            if slot.is_none() {
                let result = normalise(input, channel);
                if let Ok(n) = &result {
                    learned.push((input.clone(), n.clone()));
                }
                *slot = Some(result);
            }
        }
        if !learned.is_empty() {
            let mut known = self.entries.write().unwrap_or_else(|p| p.into_inner());
            if known.values().map(HashMap::len).sum::<usize>() + learned.len() > MAX_RECIPIENTS {
                known.clear();
            }
            known.entry(channel).or_default().extend(learned);
        }
        out.into_iter()
            .zip(inputs)
            .map(|(r, input)| r.unwrap_or_else(|| normalise(input, channel)))
            .collect()
    }
}

/// The hub's caches.
#[derive(Debug)]
pub struct Caches {
    /// By the SHA-256 of the key's secret.
    pub api_keys: TtlCache<String, ApiKey>,
    pub brands: TtlCache<BrandCode, Brand>,
    pub categories: TtlCache<BrandCode, Arc<Vec<Category>>>,
    pub recipients: RecipientMemo,
}

impl Caches {
    pub fn new(ttl: Duration) -> Caches {
        Caches {
            api_keys: TtlCache::new(ttl),
            brands: TtlCache::new(ttl),
            categories: TtlCache::new(ttl),
            recipients: RecipientMemo::default(),
        }
    }
}

impl Default for Caches {
    fn default() -> Self {
        Caches::new(DEFAULT_CACHE_TTL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_can_be_dropped() {
        let c = TtlCache::new(Duration::from_millis(50));
        c.insert(1, "a");
        assert_eq!(c.get(&1), Some("a"));
        c.remove(&1);
        assert_eq!(c.get(&1), None);
        c.insert(2, "b");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get(&2), None, "expired");
        c.insert(3, "c");
        c.clear();
        assert_eq!(c.get(&3), None);
    }

    #[test]
    fn remembered_recipients_give_the_same_answers() {
        let memo = RecipientMemo::default();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let upper = |s: &str, _: Channel| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if s.is_empty() {
                Err("empty")
            } else {
                Ok(s.to_uppercase())
            }
        };
        let inputs = vec!["a".to_owned(), String::new(), "b".to_owned()];
        let first = memo.normalise_all(&inputs, Channel::Push, upper);
        let again = memo.normalise_all(&inputs, Channel::Push, upper);
        assert_eq!(first, vec![Ok("A".into()), Err("empty"), Ok("B".into())]);
        assert_eq!(again, first);
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::Relaxed),
            4,
            "only the failure again"
        );
        // Per channel: the same text may normalise differently elsewhere.
        memo.normalise_all(&inputs[..1], Channel::InApp, upper);
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 5);
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let c = TtlCache::new(Duration::ZERO);
        c.insert(1, 1);
        assert_eq!(c.get(&1), None);
    }
}
