//! Analytics read from counters the writes keep: current consents by channel, status and IYS
//! state (`consent_tally`, kept by triggers), and opt-ins and opt-outs per day, channel and
//! origin (`consent_daily`, written with the change events). Neither read scans the consents.

use std::future::Future;

use hub_core::BrandCode;
use serde::Serialize;
use sqlx::Row;

use crate::{Backend, Result, SqlStore};

/// Current consents of one channel, status and IYS state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TallyRow {
    pub channel: String,
    pub status: String,
    pub iys_state: String,
    pub count: i64,
}

/// Opt-ins and opt-outs of one Istanbul day, channel and origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DailyRow {
    /// `YYYY-MM-DD`, Istanbul.
    pub day: String,
    pub channel: String,
    pub origin: String,
    pub opt_ins: i64,
    pub opt_outs: i64,
}

/// PostgreSQL appends a row per writing statement; past this many extra rows a brand's are
/// folded together on the next read.
const FOLD_AFTER: i64 = 512;

/// A brand's tallies and daily counts.
pub trait StatsStore: Send + Sync {
    /// The brand's current consents counted by channel, status and IYS state.
    fn consent_tally(&self, brand: BrandCode)
    -> impl Future<Output = Result<Vec<TallyRow>>> + Send;

    /// Opt-ins and opt-outs per day from `from` to `to` (`YYYY-MM-DD`, both included).
    fn daily_counts(
        &self,
        brand: BrandCode,
        from: &str,
        to: &str,
    ) -> impl Future<Output = Result<Vec<DailyRow>>> + Send;
}

impl StatsStore for SqlStore {
    async fn consent_tally(&self, brand: BrandCode) -> Result<Vec<TallyRow>> {
        let b = brand.0 as i64;
        let rows = sqlx::query(
            "SELECT channel, status, iys_state, CAST(SUM(n) AS BIGINT) AS n, COUNT(*) AS parts FROM consent_tally \
             WHERE brand_code = $1 GROUP BY channel, status, iys_state ORDER BY channel, status, iys_state",
        )
        .bind(b)
        .fetch_all(&self.pool)
        .await?;
        let mut tally = Vec::with_capacity(rows.len());
        let mut parts = 0;
        for r in &rows {
            parts += r.try_get::<i64, _>("parts")?;
            let count: i64 = r.try_get("n")?;
            if count != 0 {
                tally.push(TallyRow {
                    channel: r.try_get("channel")?,
                    status: r.try_get("status")?,
                    iys_state: r.try_get("iys_state")?,
                    count,
                });
            }
        }
        if self.backend == Backend::Postgres && parts > rows.len() as i64 + FOLD_AFTER {
            self.fold_tally(b).await?;
        }
        Ok(tally)
    }

    async fn daily_counts(&self, brand: BrandCode, from: &str, to: &str) -> Result<Vec<DailyRow>> {
        sqlx::query(
            "SELECT day, channel, origin, opt_ins, opt_outs FROM consent_daily \
             WHERE brand_code = $1 AND day >= $2 AND day <= $3 ORDER BY day, channel, origin",
        )
        .bind(brand.0 as i64)
        .bind(from.to_owned())
        .bind(to.to_owned())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(DailyRow {
                day: r.try_get("day")?,
                channel: r.try_get("channel")?,
                origin: r.try_get("origin")?,
                opt_ins: r.try_get("opt_ins")?,
                opt_outs: r.try_get("opt_outs")?,
            })
        })
        .collect()
    }
}

impl SqlStore {
    /// Folds a brand's appended tally rows into one per group. Rows appended meanwhile are not
    /// in the statement's snapshot and stay as they are, so no count is lost or doubled.
    async fn fold_tally(&self, brand: i64) -> Result<()> {
        sqlx::query(
            "WITH gone AS (DELETE FROM consent_tally WHERE brand_code = $1 RETURNING channel, status, iys_state, n) \
             INSERT INTO consent_tally (brand_code, channel, status, iys_state, n) \
             SELECT $1, channel, status, iys_state, SUM(n) FROM gone GROUP BY channel, status, iys_state HAVING SUM(n) <> 0",
        )
        .bind(brand)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
