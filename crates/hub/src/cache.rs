//! Short-lived in-memory copies of what every request reads but rarely changes: API keys, brands
//! and category definitions. A change made through this instance drops the copy at once; a
//! change made on another instance is seen within the TTL (`IYSHUB_CACHE_TTL_MS`). Consent states
//! are never cached: a send-time check always reads the current state.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hub_core::BrandCode;
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

/// The hub's caches.
#[derive(Debug)]
pub struct Caches {
    /// By the SHA-256 of the key's secret.
    pub api_keys: TtlCache<String, ApiKey>,
    pub brands: TtlCache<BrandCode, Brand>,
    pub categories: TtlCache<BrandCode, Arc<Vec<Category>>>,
}

impl Caches {
    pub fn new(ttl: Duration) -> Caches {
        Caches {
            api_keys: TtlCache::new(ttl),
            brands: TtlCache::new(ttl),
            categories: TtlCache::new(ttl),
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
    fn a_zero_ttl_caches_nothing() {
        let c = TtlCache::new(Duration::ZERO);
        c.insert(1, 1);
        assert_eq!(c.get(&1), None);
    }
}
