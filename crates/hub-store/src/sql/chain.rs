//! Recomputing a brand's hash chain.

use hub_core::BrandCode;
use hub_core::chain::ChainHash;
use sqlx::Row;

use super::EventFields;
use crate::tx::Columns;
use crate::types::ChainReport;
use crate::{Backend, Result, SqlStore};

impl SqlStore {
    pub(crate) async fn verify_chain(&self, brand: BrandCode) -> Result<ChainReport> {
        let b = brand.0 as i64;
        let mut prev = ChainHash::GENESIS;
        let mut after = 0i64;
        let mut events = 0u64;
        // The events and the head from one snapshot: read apart, a write committed in between
        // shows a head past the last event read, reported as a break that is not there.
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        loop {
            let rows = sqlx::query(
                "SELECT id, brand_code, recipient, recipient_type, channel, category, profile_id, status, consent_date, source, origin, actor, evidence, hold, outcome, received_at_ms, iys_transaction_id, iys_creation_date, iys_error, prev_hash, hash \
                 FROM consent_event WHERE brand_code = $1 AND id > $2 ORDER BY id LIMIT 5000",
            )
            .bind(b)
            .bind(after)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let id: i64 = r.try_get("id")?;
                let get =
                    |c: &str| -> Result<Option<String>> { Ok(r.try_get::<Option<String>, _>(c)?) };
                let (recipient, rtype, channel) = (
                    get("recipient")?.unwrap_or_default(),
                    get("recipient_type")?.unwrap_or_default(),
                    get("channel")?.unwrap_or_default(),
                );
                let (status, cdate, source, origin, outcome) = (
                    get("status")?.unwrap_or_default(),
                    get("consent_date")?.unwrap_or_default(),
                    get("source")?.unwrap_or_default(),
                    get("origin")?.unwrap_or_default(),
                    get("outcome")?.unwrap_or_default(),
                );
                let (category, profile, actor, evidence, txid) = (
                    get("category")?,
                    get("profile_id")?,
                    get("actor")?,
                    get("evidence")?,
                    get("iys_transaction_id")?,
                );
                let fields = EventFields {
                    brand: b,
                    recipient: &recipient,
                    recipient_type: &rtype,
                    channel: &channel,
                    category: category.as_deref(),
                    profile_id: profile.as_deref(),
                    status: &status,
                    consent_date: &cdate,
                    source: &source,
                    origin: &origin,
                    actor: actor.as_deref(),
                    evidence: evidence.as_deref(),
                    hold: r.try_get("hold")?,
                    outcome: &outcome,
                    received_at_ms: r.try_get("received_at_ms")?,
                    iys_transaction_id: txid.as_deref(),
                };
                // A hash that is not 32 bytes was altered as surely as a wrong one.
                let stored_prev = r.chain_hash("prev_hash").ok();
                let stored_hash = r.chain_hash("hash").ok();
                events += 1;
                let stored_hash = match stored_hash {
                    Some(h) if stored_prev == Some(prev) && fields.hash(&prev) == h => h,
                    _ => {
                        return Ok(ChainReport {
                            events,
                            valid: false,
                            first_broken_event: Some(id),
                            head: prev.to_hex(),
                        });
                    }
                };
                prev = stored_hash;
                after = id;
            }
        }
        let head = sqlx::query("SELECT last_hash FROM chain_head WHERE brand_code = $1")
            .bind(b)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.bytes("last_hash"))
            .transpose()?;
        tx.commit().await?;
        let valid = head.is_none_or(|h| ChainHash::from_bytes(&h) == Some(prev));
        Ok(ChainReport {
            events,
            valid,
            first_broken_event: (!valid).then_some(after),
            head: prev.to_hex(),
        })
    }
}
