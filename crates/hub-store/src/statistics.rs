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
//! The same count prunes the send-state log (`consent_touch`, see `mirror.rs`) every 100,000
//! rows written: on SQLite down to its newest million rows (one per consent written), on
//! PostgreSQL (one row per statement and brand) to its last ten minutes and each brand's newest.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{Backend, SqlStore};

/// Rows written before the first refresh.
const FIRST: u64 = 5_000;

/// Rows written between two prunings of the send-state log.
const PRUNE_EVERY: u64 = 100_000;
/// Rows of the send-state log kept on SQLite: a mirror further behind is built again.
pub(crate) const TOUCH_KEPT: i64 = 1_000_000;
/// How long PostgreSQL's send-state log keeps a row that is not its brand's newest.
pub(crate) const TOUCH_AGE: std::time::Duration = std::time::Duration::from_secs(10 * 60);
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
        let last = s.pruned_at.load(Ordering::Relaxed);
        if total >= last + PRUNE_EVERY
            && s.pruned_at
                .compare_exchange(last, total, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let store = self.clone();
            tokio::spawn(async move {
                if let Err(e) = store.prune_touch_log(TOUCH_KEPT, TOUCH_AGE).await {
                    tracing::warn!(error = %e, "could not prune the send-state log");
                }
            });
        }
        if self.backend == Backend::Sqlite {
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

    /// Deletes the send-state log's oldest rows. SQLite keeps the newest `kept` rows, deleting a
    /// step at a time, each its own short write. PostgreSQL deletes the rows older than
    /// `older_than` except each brand's newest (a row's `prev_seq` names it, so the brand's next
    /// row still shows a mirror that saw it that nothing is missing).
    pub async fn prune_touch_log(
        &self,
        kept: i64,
        older_than: std::time::Duration,
    ) -> crate::Result<u64> {
        if self.backend == Backend::Postgres {
            return Ok(sqlx::query(
                "DELETE FROM consent_touch t WHERE t.created_at < now() - make_interval(secs => $1) \
                 AND t.seq < (SELECT MAX(m.seq) FROM consent_touch m WHERE m.brand_code = t.brand_code)",
            )
            .bind(older_than.as_secs_f64())
            .execute(&self.pool)
            .await?
            .rows_affected());
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
