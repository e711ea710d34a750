//! The send-state mirror's reads on PostgreSQL (the mirror itself is `mirror.rs`).
//!
//! The log is `consent_touch` of migration 0016: one row per statement and brand that wrote
//! consents, with the keys it wrote as arrays. Its seq follows each brand's commit order (the
//! trigger draws it under the brand's lock), so a mirror that applied a brand's rows up to seq N
//! equals the brand's consents as of the commit that wrote N. Each row names the brand's previous
//! row (`prev_seq`): a mirror whose next row was pruned sees the gap and is built again.

use futures_util::TryStreamExt;
use hub_core::BrandCode;
use sqlx::{PgPool, Row};

use crate::Result;
use crate::mirror::{KeyParser, Mirror, Stored, Touched, TouchedRow, hasher};

/// Reads a brand's send states in one snapshot with the log's newest seq of the brand; `None`
/// when they are more than `room` consents.
pub(crate) async fn build(pool: &PgPool, brand: BrandCode, room: usize) -> Result<Option<Mirror>> {
    let b = brand.0 as i64;
    let mut tx = pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    // Any write of the brand this snapshot does not see drew its seq after this one committed.
    let seen: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM consent_touch WHERE brand_code = $1")
            .bind(b)
            .fetch_one(&mut *tx)
            .await?;
    let mut mirror = Mirror::at(seen);
    {
        let mut rows = sqlx::query(
            "SELECT recipient, recipient_type, channel, status, source, iys_state, hold FROM consent WHERE brand_code = $1",
        )
        .bind(b)
        .fetch(&mut *tx);
        let mut keys = KeyParser::default();
        let hasher = hasher();
        while let Some(row) = rows.try_next().await? {
            if mirror.consents >= room {
                return Ok(None);
            }
            let recipient: &str = row.try_get(0)?;
            let Some(key) = keys.readable_key(brand, recipient, row.try_get(1)?, row.try_get(2)?)
            else {
                continue;
            };
            let state = Stored::of(
                row.try_get(3)?,
                row.try_get(4)?,
                row.try_get(5)?,
                row.try_get(6)?,
            );
            mirror.set(hasher, key, recipient, state);
        }
    }
    // Read only: nothing to keep.
    tx.rollback().await?;
    Ok(Some(mirror))
}

/// The brand's log rows after `seen`, one row per key written, with the consent's state now,
/// in one statement (one snapshot). The consent is looked up per key (`LIMIT 1` keeps the
/// planner from joining the brand's whole table).
const TOUCHED: &str = "SELECT t.seq, t.prev_seq, k.r, k.ty, k.ch, c.status, c.source, c.iys_state, c.hold \
     FROM consent_touch t \
     CROSS JOIN LATERAL unnest(t.recipients, t.recipient_types, t.channels) AS k(r, ty, ch) \
     LEFT JOIN LATERAL (SELECT status, source, iys_state, hold FROM consent c \
        WHERE c.brand_code = t.brand_code AND c.recipient = k.r AND c.recipient_type = k.ty \
        AND c.channel = k.ch LIMIT 1) c ON true \
     WHERE t.brand_code = $1 AND t.seq > $2 ORDER BY t.seq LIMIT $3";

/// What the log says happened to the brand's consents after `seen`; `None` when the row after
/// `seen` was pruned or the rows hold more than `most` keys (the mirror must be built again).
pub(crate) async fn touched(
    pool: &PgPool,
    brand: BrandCode,
    seen: i64,
    most: usize,
) -> Result<Option<Touched>> {
    let rows = sqlx::query(TOUCHED)
        .bind(brand.0 as i64)
        .bind(seen)
        .bind(i64::try_from(most).unwrap_or(i64::MAX).saturating_add(1))
        .fetch_all(pool)
        .await?;
    if rows.len() > most {
        return Ok(None);
    }
    if let Some(first) = rows.first()
        && first.try_get::<i64, _>(1)? != seen
    {
        return Ok(None);
    }
    let mut touched = Touched {
        newest: seen,
        rows: Vec::with_capacity(rows.len()),
    };
    let mut keys = KeyParser::default();
    for row in &rows {
        let seq: i64 = row.try_get(0)?;
        touched.newest = touched.newest.max(seq);
        let recipient: &str = row.try_get(2)?;
        let Some(key) = keys.readable_key(brand, recipient, row.try_get(3)?, row.try_get(4)?)
        else {
            continue;
        };
        let state = match row.try_get::<Option<&str>, _>(5)? {
            Some(status) => Stored::of(status, row.try_get(6)?, row.try_get(7)?, row.try_get(8)?),
            None => Stored::Gone,
        };
        touched.rows.push(TouchedRow {
            seq,
            key,
            recipient: recipient.to_owned(),
            state,
        });
    }
    Ok(Some(touched))
}
