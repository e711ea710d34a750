//! PostgreSQL's planner statistics kept up with the hub's own writes.
//!
//! With statistics from when a brand's tables were small (a new installation, an onboarding
//! burst, autovacuum off or not yet round: it looks once a minute, at 10 % growth), PostgreSQL
//! reads a batch's consents and outbox rows through any index that starts with the brand, then
//! filters every row of the brand: each batch costs more as the tables grow (measured on
//! `ledger-batch`: 7 ms per read of 500 recipients at 20,000 rows, a bitmap scan of the whole
//! brand). The store refreshes them itself whenever the rows it wrote since it started double,
//! from 5,000 on: a few ANALYZEs in all, run in the background, one at a time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{Backend, SqlStore};

/// Rows written before the first refresh.
const FIRST: u64 = 5_000;

#[derive(Debug)]
pub(crate) struct Statistics {
    written: AtomicU64,
    next: AtomicU64,
    running: AtomicBool,
}

impl Default for Statistics {
    fn default() -> Self {
        Statistics {
            written: AtomicU64::new(0),
            next: AtomicU64::new(FIRST),
            running: AtomicBool::new(false),
        }
    }
}

impl SqlStore {
    /// Counts rows written; refreshes the statistics in the background when they doubled.
    pub(crate) fn wrote(&self, rows: usize) {
        if self.backend != Backend::Postgres || rows == 0 {
            return;
        }
        let s = &self.statistics;
        let total = s.written.fetch_add(rows as u64, Ordering::Relaxed) + rows as u64;
        if total < s.next.load(Ordering::Relaxed) || s.running.swap(true, Ordering::AcqRel) {
            return;
        }
        s.next.store(total.saturating_mul(2), Ordering::Relaxed);
        let store = self.clone();
        tokio::spawn(async move {
            // ANALYZE takes no lock that writes wait for.
            if let Err(e) = store.refresh_statistics().await {
                tracing::warn!(error = %e, "could not refresh the planner's statistics");
            }
            store.statistics.running.store(false, Ordering::Release);
        });
    }

    /// Refreshes PostgreSQL's statistics of the ledger's tables (an import grew them tenfold in
    /// minutes: 1,000 rows/s at 745,000 rows, 11,000 right after an ANALYZE). SQLite plans by
    /// its indexes without statistics: nothing to do.
    pub(crate) async fn refresh_statistics(&self) -> crate::Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("ANALYZE consent, consent_event, outbox, category_consent, idempotency")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}
