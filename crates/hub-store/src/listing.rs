//! Listings with keyset pagination: consents by filter, a recipient's history page by page, and
//! the audit log. A page is read by index order from the last key of the previous page, so a
//! page costs the same however deep it is and a listing stays stable while rows are added.

use std::future::Future;

use hub_core::{BrandCode, ConsentKey};
use sqlx::Row;

use crate::sql::{consent_row_from, event_from, ms, positional, ts};
use crate::types::{AuditEntry, ConsentFilter, ConsentRow, Event};
use crate::{Result, SqlStore};

/// A value bound to a listing's statement.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Int(i64),
    Text(String),
}

/// The columns a listed consent is read from.
pub(crate) const CONSENT_COLUMNS: &str = "brand_code, recipient, recipient_type, channel, status, consent_date, source, last_event_id, iys_state, iys_error, conflict, hold, deadline_ms, iys_known, updated_at_ms";

/// The statement of a page of consents (all of them without a `limit`) and its values, with
/// `$n` placeholders in order (both databases and rusqlite take them so).
pub(crate) fn consent_page(
    brand: BrandCode,
    filter: &ConsentFilter,
    after: Option<&ConsentKey>,
    limit: Option<u32>,
) -> (String, Vec<Bind>) {
    let mut sql = format!("SELECT {CONSENT_COLUMNS} FROM consent WHERE brand_code = $1");
    let mut binds = vec![Bind::Int(brand.0 as i64)];
    let clause = |sql: &mut String, binds: &mut Vec<Bind>, text: &str, value: Bind| {
        binds.push(value);
        sql.push_str(&text.replace('#', &format!("${}", binds.len())));
    };
    if let Some(k) = after {
        // Row-value comparison: both databases walk the primary key from there.
        clause(
            &mut sql,
            &mut binds,
            " AND (recipient, recipient_type, channel) > (#",
            Bind::Text(k.recipient.clone()),
        );
        clause(
            &mut sql,
            &mut binds,
            ", #",
            Bind::Text(k.recipient_type.as_str().to_owned()),
        );
        clause(
            &mut sql,
            &mut binds,
            ", #)",
            Bind::Text(k.channel.as_str().to_owned()),
        );
    }
    let texts: [(&str, Option<String>); 5] = [
        ("channel", filter.channel.map(|c| c.as_str().to_owned())),
        (
            "recipient_type",
            filter.recipient_type.map(|t| t.as_str().to_owned()),
        ),
        ("status", filter.status.map(|s| s.as_str().to_owned())),
        ("iys_state", filter.iys_state.map(|s| s.as_str().to_owned())),
        (
            "source",
            filter.source.as_ref().map(|s| s.as_str().to_owned()),
        ),
    ];
    for (column, value) in texts {
        if let Some(v) = value {
            clause(
                &mut sql,
                &mut binds,
                &format!(" AND {column} = #"),
                Bind::Text(v),
            );
        }
    }
    if let Some(t) = filter.changed_since {
        clause(
            &mut sql,
            &mut binds,
            " AND updated_at_ms >= #",
            Bind::Int(ms(t)),
        );
    }
    sql.push_str(" ORDER BY recipient, recipient_type, channel");
    if let Some(limit) = limit {
        clause(
            &mut sql,
            &mut binds,
            " LIMIT #",
            Bind::Int(i64::from(limit)),
        );
    }
    (sql, binds)
}

/// Chunks of an export in flight: enough that reading runs ahead of writing.
const CHUNKS_AHEAD: usize = 2;

/// Whole listings of a brand's consents, for exports.
pub trait ListingStore: Send + Sync {
    /// All of a brand's consents matching `filter`, in key order, in chunks of `chunk` sent on
    /// the answer while they are read (reading waits while the reader is [`CHUNKS_AHEAD`]
    /// behind); an error is the last item. On PostgreSQL one statement streams them (one walk
    /// of the primary key, one snapshot); elsewhere keyset pages are read one after another.
    /// Dropping the receiver stops the reading.
    fn consent_chunks(
        &self,
        brand: BrandCode,
        filter: ConsentFilter,
        chunk: u32,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<ConsentRow>>>;

    /// The brand's consents to `category` (only `status`, when given), `limit` at a time in
    /// subject order, after subject `after`.
    fn category_consents_page(
        &self,
        brand: BrandCode,
        category: &str,
        status: Option<iys::ConsentStatus>,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<CategoryExportRow>>> + Send;
}

impl ListingStore for SqlStore {
    fn consent_chunks(
        &self,
        brand: BrandCode,
        filter: ConsentFilter,
        chunk: u32,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<ConsentRow>>> {
        let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS_AHEAD);
        let store = self.clone();
        tokio::spawn(async move {
            // Beyond the streams PostgreSQL's read pool spares, an export reads pages.
            if let Some(pg) = &store.pg
                && let Ok(_permit) = crate::pg_read::STREAMS.try_acquire()
            {
                let (sql, binds) = consent_page(brand, &filter, None, None);
                crate::pg_read::stream_consents(pg, &sql, &binds, chunk as usize, &tx).await;
                return;
            }
            let mut after: Option<ConsentKey> = None;
            loop {
                let page = store
                    .list_consents_page(brand, &filter, after.as_ref(), chunk)
                    .await;
                let last = match &page {
                    Ok(rows) => {
                        after = rows.last().map(|r| r.key.clone());
                        rows.len() < chunk as usize
                    }
                    Err(_) => true,
                };
                if tx.send(page).await.is_err() || last {
                    return;
                }
            }
        });
        rx
    }

    async fn category_consents_page(
        &self,
        brand: BrandCode,
        category: &str,
        status: Option<iys::ConsentStatus>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CategoryExportRow>> {
        let mut sql = String::from(
            "SELECT c.subject, c.category, c.status, c.consent_date, c.source, c.last_event_id, \
             e.channel, e.recipient_type, e.profile_id \
             FROM category_consent c LEFT JOIN consent_event e ON e.id = c.last_event_id \
             WHERE c.brand_code = $1 AND c.category = $2 AND c.subject > $3",
        );
        // Placeholders in the order they appear (SQLite numbers them so).
        sql.push_str(match status {
            Some(_) => " AND c.status = $4 ORDER BY c.subject LIMIT $5",
            None => " ORDER BY c.subject LIMIT $4",
        });
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(brand.0 as i64)
            .bind(category.to_owned())
            .bind(after.unwrap_or_default().to_owned());
        if let Some(s) = status {
            q = q.bind(s.as_str());
        }
        q.bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(CategoryExportRow {
                    consent: crate::sql::category_from(r)?,
                    // A row always has its event; a missing one reads as the hub's own channel.
                    channel: r
                        .try_get::<Option<String>, _>("channel")?
                        .unwrap_or_else(|| "PUSH".to_owned()),
                    recipient_type: r
                        .try_get::<Option<String>, _>("recipient_type")?
                        .unwrap_or_else(|| "BIREYSEL".to_owned()),
                    profile_id: r.try_get("profile_id")?,
                })
            })
            .collect()
    }
}

impl SqlStore {
    /// Consents of a brand matching `filter`, in key order (recipient, recipient type,
    /// channel), after `after` (exclusive). Read natively (rusqlite on the blocking pool, sqlx's
    /// PostgreSQL driver): through `Any`, an export would go at the pace of its row conversion.
    pub(crate) async fn list_consents_page(
        &self,
        brand: BrandCode,
        filter: &ConsentFilter,
        after: Option<&ConsentKey>,
        limit: u32,
    ) -> Result<Vec<ConsentRow>> {
        let (sql, binds) = consent_page(brand, filter, after, Some(limit));
        if let Some(readers) = &self.readers {
            let readers = readers.clone();
            return tokio::task::spawn_blocking(move || readers.consents(&sql, &binds))
                .await
                .map_err(|e| crate::StoreError::Sqlite(format!("a read was interrupted: {e}")))?;
        }
        if let Some(pg) = &self.pg {
            return crate::pg_read::consents(pg, &sql, &binds).await;
        }
        let sql = positional(self.backend, sql);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = match b {
                Bind::Int(i) => q.bind(i),
                Bind::Text(t) => q.bind(t),
            };
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(consent_row_from)
            .collect()
    }

    /// A recipient's history, newest first, before event `before` (exclusive).
    pub(crate) async fn events_before(
        &self,
        brand: BrandCode,
        recipient: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Event>> {
        let sql = "SELECT id, brand_code, recipient, recipient_type, channel, category, profile_id, status, consent_date, source, origin, actor, evidence, hold, outcome, received_at_ms, iys_transaction_id, delivered_transaction_id, iys_creation_date, iys_error, prev_hash, hash \
                   FROM consent_event WHERE brand_code = $1 AND recipient = $2 AND id < $3 ORDER BY id DESC LIMIT $4";
        sqlx::query(sql)
            .bind(brand.0 as i64)
            .bind(recipient.to_owned())
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(event_from)
            .collect()
    }

    /// The audit log of a brand (or, with `None`, of every brand and the instance), newest
    /// first, before entry `before` (exclusive).
    pub(crate) async fn audit_page(
        &self,
        brand: Option<BrandCode>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        let by_brand = "SELECT id, brand_code, at_ms, actor, action, detail FROM audit_log WHERE brand_code = $1 AND id < $2 ORDER BY id DESC LIMIT $3";
        let all = "SELECT id, brand_code, at_ms, actor, action, detail FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2";
        let q = match brand {
            Some(b) => sqlx::query(by_brand).bind(b.0 as i64),
            None => sqlx::query(all),
        };
        q.bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let detail: Option<String> = r.try_get("detail")?;
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    brand_code: r
                        .try_get::<Option<i64>, _>("brand_code")?
                        .map(|b| BrandCode(b as u64)),
                    at: ts(r.try_get("at_ms")?),
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    // Free text from older entries is kept as a string.
                    detail: detail
                        .map(|d| serde_json::from_str(&d).unwrap_or(serde_json::Value::String(d))),
                })
            })
            .collect()
    }

    /// Records an action in the audit log.
    pub(crate) async fn audit_entry(
        &self,
        brand: Option<BrandCode>,
        actor: &str,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        sqlx::query("INSERT INTO audit_log (brand_code, at_ms, actor, action, detail) VALUES ($1, $2, $3, $4, $5)")
            .bind(brand.map(|b| b.0 as i64))
            .bind(ms(jiff::Timestamp::now()))
            .bind(actor.to_owned())
            .bind(action.to_owned())
            .bind(detail.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// A category consent as exported: with the channel, recipient type and profile of the change
/// that set it, so the row imports back as the same change.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryExportRow {
    pub consent: crate::types::CategoryConsentRow,
    pub channel: String,
    pub recipient_type: String,
    pub profile_id: Option<String>,
}
