//! PostgreSQL's planner statistics kept up with the hub's own writes.
//!
//! With statistics from when a brand's tables were small (a new installation, an onboarding
//! burst, autovacuum off or not yet round: it looks once a minute, at 10 % growth), PostgreSQL
//! reads a batch's consents and outbox rows through any index that starts with the brand, then
//! filters every row of the brand: each batch costs more as the tables grow (measured on
//! `ledger-batch`: 7 ms per read of 500 recipients at 20,000 rows, a bitmap scan of the whole
//! brand). The store refreshes them itself whenever the rows it wrote since it started double,
//! from 5,000 on: a few ANALYZEs in all, run in the background, one at a time.
//!
//! On SQLite the same count prunes the send-state log (`consent_touch`, see `mirror.rs`) every
//! 100,000 rows written, down to its newest million.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{Backend, SqlStore};

/// Rows written before the first refresh.
const FIRST: u64 = 5_000;

/// Rows written on SQLite between two prunings of the send-state log.
const PRUNE_EVERY: u64 = 100_000;
/// Rows of the send-state log kept: a mirror further behind is built again.
pub(crate) const TOUCH_KEPT: i64 = 1_000_000;
/// Log rows deleted per statement, so writers never wait long for the pruning.
const PRUNE_STEP: i64 = 50_000;

#[derive(Debug)]
pub(crate) struct Statistics {
    written: AtomicU64,
    next: AtomicU64,
    running: AtomicBool,
    pruned_at: AtomicU64,
}

impl Default for Statistics {
    fn default() -> Self {
        Statistics {
            written: AtomicU64::new(0),
            next: AtomicU64::new(FIRST),
            running: AtomicBool::new(false),
            pruned_at: AtomicU64::new(0),
        }
    }
}

impl SqlStore {
    /// Counts rows written; refreshes the statistics in the background when they doubled.
    pub(crate) fn wrote(&self, rows: usize) {
        if rows == 0 {
            return;
        }
        let s = &self.statistics;
        let total = s.written.fetch_add(rows as u64, Ordering::Relaxed) + rows as u64;
        if self.backend == Backend::Sqlite {
            let last = s.pruned_at.load(Ordering::Relaxed);
            if total >= last + PRUNE_EVERY
                && s.pruned_at
                    .compare_exchange(last, total, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                let store = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = store.prune_touch_log(TOUCH_KEPT).await {
                        tracing::warn!(error = %e, "could not prune the send-state log");
                    }
                });
            }
            return;
        }
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

    /// Deletes the send-state log's oldest rows, keeping the newest `kept` (SQLite only; the log
    /// only grows on SQLite). A step at a time, each its own short write.
    pub async fn prune_touch_log(&self, kept: i64) -> crate::Result<u64> {
        if self.backend != Backend::Sqlite {
            return Ok(0);
        }
        let mut deleted = 0;
        loop {
            let step = sqlx::query(
                "DELETE FROM consent_touch WHERE seq < MIN((SELECT MAX(seq) FROM consent_touch) - $1 + 1, \
                 (SELECT MIN(seq) FROM consent_touch) + $2)",
            )
            .bind(kept)
            .bind(PRUNE_STEP)
            .execute(&self.pool)
            .await?
            .rows_affected();
            deleted += step;
            if step == 0 {
                return Ok(deleted);
            }
        }
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
