//! [`EngineStore`] for [`SqlStore`].

use hub_core::{BrandCode, Change, Mode};
use jiff::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::engine::*;
use crate::sql::{ms, parse, ts};
use crate::{Applied, Backend, Brand, Result, SqlStore, Store};

fn item_from(r: &AnyRow) -> Result<OutboxItem> {
    Ok(OutboxItem {
        id: r.try_get("id")?,
        event_id: r.try_get("event_id")?,
        recipient: r.try_get("recipient")?,
        recipient_type: parse(
            "outbox.recipient_type",
            &r.try_get::<String, _>("recipient_type")?,
        )?,
        channel: parse("outbox.channel", &r.try_get::<String, _>("channel")?)?,
        status: parse("outbox.status", &r.try_get::<String, _>("status")?)?,
        consent_date: parse(
            "outbox.consent_date",
            &r.try_get::<String, _>("consent_date")?,
        )?,
        source: parse("outbox.source", &r.try_get::<String, _>("source")?)?,
        attempts: r.try_get("attempts")?,
        deadline: ts(r.try_get("deadline_ms")?),
        request_id: r.try_get("request_id")?,
        sub_request_id: r.try_get("sub_request_id")?,
    })
}

/// The claim statement: lease the chosen rows to `$1` until `$2`. `$order` picks and orders the
/// rows; `$lock` is PostgreSQL's `FOR UPDATE SKIP LOCKED` (SQLite has one writer and no row locks).
macro_rules! claim_sql {
    ($filter:literal, $order:literal, $lock:literal) => {
        concat!(
            "UPDATE outbox SET lease_owner = $1, lease_until_ms = $2 WHERE id IN (",
            "SELECT o.id FROM outbox o WHERE o.brand_code = $3 AND o.state = $4 AND o.next_attempt_at_ms <= $5 ",
            "AND (o.lease_until_ms IS NULL OR o.lease_until_ms < $5) ",
            $filter,
            " ORDER BY ",
            $order,
            " LIMIT $6",
            $lock,
            ") RETURNING *"
        )
    };
}

/// Pending rows: only the oldest unsettled row of each consent, so its changes stay in order.
macro_rules! pending_sql {
    ($lock:literal) => {
        claim_sql!(
            "AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.brand_code = o.brand_code AND p.recipient = o.recipient AND p.recipient_type = o.recipient_type AND p.channel = o.channel AND p.id < o.id AND p.state IN ('pending', 'awaiting_result'))",
            "o.deadline_ms, o.id",
            $lock
        )
    };
}

/// Bulk-submitted rows: no ordering rule among a request's own rows.
macro_rules! awaiting_sql {
    ($lock:literal) => {
        claim_sql!("", "o.request_id, o.id", $lock)
    };
}

/// Which rows a claim takes.
#[derive(Debug, Clone, Copy)]
enum Claim {
    Pending,
    Awaiting,
}

impl Claim {
    fn state(self) -> &'static str {
        match self {
            Claim::Pending => "pending",
            Claim::Awaiting => "awaiting_result",
        }
    }

    fn sql(self, backend: Backend) -> &'static str {
        match (self, backend) {
            (Claim::Pending, Backend::Sqlite) => pending_sql!(""),
            (Claim::Pending, Backend::Postgres) => pending_sql!(" FOR UPDATE SKIP LOCKED"),
            (Claim::Awaiting, Backend::Sqlite) => awaiting_sql!(""),
            (Claim::Awaiting, Backend::Postgres) => awaiting_sql!(" FOR UPDATE SKIP LOCKED"),
        }
    }
}

impl SqlStore {
    async fn claim(
        &self,
        what: Claim,
        brand: BrandCode,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboxItem>> {
        let _w = self.writer().await;
        let rows = sqlx::query(what.sql(self.backend))
            .bind(owner.to_owned())
            .bind(ms(now) + lease_ms)
            .bind(brand.0 as i64)
            .bind(what.state())
            .bind(ms(now))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut items = rows.iter().map(item_from).collect::<Result<Vec<_>>>()?;
        items.sort_by_key(|i| (i.deadline, i.id));
        Ok(items)
    }
}

impl EngineStore for SqlStore {
    async fn claim_pending(
        &self,
        brand: BrandCode,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboxItem>> {
        self.claim(Claim::Pending, brand, owner, now, lease_ms, limit)
            .await
    }

    async fn claim_awaiting(
        &self,
        brand: BrandCode,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboxItem>> {
        self.claim(Claim::Awaiting, brand, owner, now, lease_ms, limit)
            .await
    }

    async fn settle(
        &self,
        brand: BrandCode,
        settlements: Vec<(OutboxItem, Settlement)>,
        now: Timestamp,
    ) -> Result<()> {
        let _w = self.writer().await;
        let b = brand.0 as i64;
        let mut tx = self.pool.begin().await?;
        for (item, s) in settlements {
            let key = (
                item.recipient.clone(),
                item.recipient_type.as_str(),
                item.channel.as_str(),
            );
            match s {
                Settlement::Delivered {
                    transaction_id,
                    creation_date,
                } => {
                    sqlx::query("UPDATE outbox SET state = 'done', lease_owner = NULL, lease_until_ms = NULL, last_error = NULL, attempts = attempts + 1 WHERE id = $1")
                        .bind(item.id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("UPDATE consent_event SET delivered_transaction_id = $1, iys_creation_date = $2, iys_error = NULL WHERE id = $3")
                        .bind(transaction_id)
                        .bind(creation_date.map(|d| d.to_string()))
                        .bind(item.event_id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("UPDATE consent SET iys_known = 1 WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4")
                        .bind(b)
                        .bind(key.0.clone())
                        .bind(key.1)
                        .bind(key.2)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("UPDATE consent SET iys_state = 'in_iys', iys_error = NULL, deadline_ms = NULL WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4 AND last_event_id = $5")
                        .bind(b)
                        .bind(key.0.clone())
                        .bind(key.1)
                        .bind(key.2)
                        .bind(item.event_id)
                        .execute(&mut *tx)
                        .await?;
                }
                Settlement::Refused { code, message } => {
                    // The refusal time is kept in next_attempt_at_ms for the 24-hour error figures.
                    sqlx::query("UPDATE outbox SET state = 'failed', lease_owner = NULL, lease_until_ms = NULL, last_error = $1, next_attempt_at_ms = $2, attempts = attempts + 1 WHERE id = $3")
                        .bind(code.clone())
                        .bind(ms(now))
                        .bind(item.id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("UPDATE consent_event SET iys_error = $1 WHERE id = $2")
                        .bind(format!("{code}: {message}"))
                        .bind(item.event_id)
                        .execute(&mut *tx)
                        .await?;
                    // H174: IYS already has this RET. H175: IYS never had the recipient.
                    let (state, known, error) = match code.as_str() {
                        "H174" => ("in_iys", true, None),
                        "H175" => ("not_in_iys", false, None),
                        _ => ("rejected", false, Some(code.clone())),
                    };
                    if known {
                        sqlx::query("UPDATE consent SET iys_known = 1 WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4")
                            .bind(b)
                            .bind(key.0.clone())
                            .bind(key.1)
                            .bind(key.2)
                            .execute(&mut *tx)
                            .await?;
                    }
                    sqlx::query("UPDATE consent SET iys_state = $1, iys_error = $2, deadline_ms = NULL WHERE brand_code = $3 AND recipient = $4 AND recipient_type = $5 AND channel = $6 AND last_event_id = $7")
                        .bind(state)
                        .bind(error)
                        .bind(b)
                        .bind(key.0.clone())
                        .bind(key.1)
                        .bind(key.2)
                        .bind(item.event_id)
                        .execute(&mut *tx)
                        .await?;
                }
                Settlement::Retry { error, at } => {
                    sqlx::query("UPDATE outbox SET state = 'pending', lease_owner = NULL, lease_until_ms = NULL, last_error = $1, next_attempt_at_ms = $2, attempts = attempts + 1 WHERE id = $3")
                        .bind(error)
                        .bind(ms(at))
                        .bind(item.id)
                        .execute(&mut *tx)
                        .await?;
                }
                Settlement::Submitted {
                    request_id,
                    sub_request_id,
                    poll_at,
                } => {
                    sqlx::query("UPDATE outbox SET state = 'awaiting_result', lease_owner = NULL, lease_until_ms = NULL, request_id = $1, sub_request_id = $2, next_attempt_at_ms = $3, attempts = attempts + 1 WHERE id = $4")
                        .bind(request_id)
                        .bind(sub_request_id)
                        .bind(ms(poll_at))
                        .bind(item.id)
                        .execute(&mut *tx)
                        .await?;
                }
                Settlement::StillQueued { poll_at } => {
                    sqlx::query("UPDATE outbox SET lease_owner = NULL, lease_until_ms = NULL, next_attempt_at_ms = $1 WHERE id = $2")
                        .bind(ms(poll_at))
                        .bind(item.id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn switch_mode(
        &self,
        brand: BrandCode,
        mode: Mode,
        actor: &str,
    ) -> Result<Option<Brand>> {
        let Some(current) = self.brand(brand).await? else {
            return Ok(None);
        };
        let _w = self.writer().await;
        let b = brand.0 as i64;
        let now = ms(Timestamp::now());
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE brand SET mode = $1, updated_at_ms = $2 WHERE brand_code = $3")
            .bind(mode.as_str())
            .bind(now)
            .bind(b)
            .execute(&mut *tx)
            .await?;
        let (released, held) = match mode {
            Mode::Integrator => {
                let r = sqlx::query("UPDATE outbox SET state = 'pending', next_attempt_at_ms = $1 WHERE brand_code = $2 AND state = 'held'")
                    .bind(now)
                    .bind(b)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE consent SET iys_state = 'pending' WHERE brand_code = $1 AND iys_state = 'held'")
                    .bind(b)
                    .execute(&mut *tx)
                    .await?;
                (r.rows_affected(), 0)
            }
            Mode::Sync => {
                let r = sqlx::query(
                    "UPDATE outbox SET state = 'held' WHERE brand_code = $1 AND state = 'pending' AND status = 'ONAY' AND (lease_until_ms IS NULL OR lease_until_ms < $2) \
                     AND NOT EXISTS (SELECT 1 FROM consent c WHERE c.brand_code = outbox.brand_code AND c.recipient = outbox.recipient AND c.recipient_type = outbox.recipient_type AND c.channel = outbox.channel AND c.iys_known = 1)",
                )
                .bind(b)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE consent SET iys_state = 'held' WHERE brand_code = $1 AND iys_state = 'pending' AND status = 'ONAY' AND iys_known = 0")
                    .bind(b)
                    .execute(&mut *tx)
                    .await?;
                (0, r.rows_affected())
            }
        };
        let detail = serde_json::json!({"from": current.mode.as_str(), "to": mode.as_str(), "released": released, "held": held}).to_string();
        sqlx::query("INSERT INTO audit_log (brand_code, at_ms, actor, action, detail) VALUES ($1, $2, $3, $4, $5)")
            .bind(b)
            .bind(now)
            .bind(actor.to_owned())
            .bind("mode_switch")
            .bind(detail)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.brand(brand).await
    }

    async fn apply_pull(
        &self,
        brand: &Brand,
        changes: Vec<Change>,
        source: &str,
        cursor: &str,
    ) -> Result<Vec<Applied>> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let applied = self.record(&mut tx, brand, changes).await?;
        let now = ms(Timestamp::now());
        sqlx::query("INSERT INTO sync_cursor (brand_code, source, cursor, updated_at_ms, last_success_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (brand_code, source) DO UPDATE SET cursor = excluded.cursor, updated_at_ms = excluded.updated_at_ms, last_success_ms = excluded.last_success_ms")
            .bind(brand.brand_code.0 as i64)
            .bind(source.to_owned())
            .bind(cursor.to_owned())
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(applied)
    }

    async fn cursor(&self, brand: BrandCode, source: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query("SELECT cursor FROM sync_cursor WHERE brand_code = $1 AND source = $2")
                .bind(brand.0 as i64)
                .bind(source.to_owned())
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get::<Option<String>, _>("cursor"))
                .transpose()?
                .flatten(),
        )
    }

    async fn touch_cursor(&self, brand: BrandCode, source: &str) -> Result<()> {
        let _w = self.writer().await;
        let now = ms(Timestamp::now());
        sqlx::query("INSERT INTO sync_cursor (brand_code, source, cursor, updated_at_ms, last_success_ms) VALUES ($1, $2, NULL, $3, $4) ON CONFLICT (brand_code, source) DO UPDATE SET last_success_ms = excluded.last_success_ms")
            .bind(brand.0 as i64)
            .bind(source.to_owned())
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn sync_figures(&self, brand: BrandCode, now: Timestamp) -> Result<SyncFigures> {
        let b = brand.0 as i64;
        let outbox = self.outbox_counts(brand).await?;
        let oldest: Option<i64> = sqlx::query("SELECT MIN(deadline_ms) AS d FROM outbox WHERE brand_code = $1 AND state IN ('pending', 'held', 'awaiting_result')")
            .bind(b)
            .fetch_one(&self.pool)
            .await?
            .try_get("d")?;
        let at_risk: i64 = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE brand_code = $1 AND state IN ('pending', 'held', 'awaiting_result') AND deadline_ms < $2")
            .bind(b)
            .bind(ms(now) + 86_400_000)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let errors = sqlx::query("SELECT last_error, COUNT(*) AS n FROM outbox WHERE brand_code = $1 AND state = 'failed' AND next_attempt_at_ms >= $2 GROUP BY last_error ORDER BY last_error")
            .bind(b)
            .bind(ms(now) - 86_400_000)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get::<Option<String>, _>("last_error")?.unwrap_or_default(), r.try_get("n")?)))
            .collect::<Result<Vec<_>>>()?;
        let cursors = sqlx::query("SELECT source, cursor, updated_at_ms, last_success_ms FROM sync_cursor WHERE brand_code = $1 ORDER BY source")
            .bind(b)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(CursorRow {
                    source: r.try_get("source")?,
                    cursor: r.try_get("cursor")?,
                    updated_at: ts(r.try_get("updated_at_ms")?),
                    last_success: r.try_get::<Option<i64>, _>("last_success_ms")?.map(ts),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SyncFigures {
            outbox,
            oldest_pending_deadline: oldest.map(ts),
            at_risk,
            errors_last_24h: errors,
            cursors,
        })
    }

    async fn known_recipients(
        &self,
        brand: BrandCode,
        channel: hub_core::Channel,
        recipient_type: iys::RecipientType,
        after: &str,
        limit: i64,
    ) -> Result<Vec<String>> {
        sqlx::query("SELECT recipient FROM consent WHERE brand_code = $1 AND channel = $2 AND recipient_type = $3 AND recipient > $4 ORDER BY recipient LIMIT $5")
            .bind(brand.0 as i64)
            .bind(channel.as_str())
            .bind(recipient_type.as_str())
            .bind(after.to_owned())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok(r.try_get("recipient")?))
            .collect()
    }

    async fn held_recipients(
        &self,
        brand: BrandCode,
        channel: hub_core::Channel,
        recipient_type: iys::RecipientType,
        limit: i64,
    ) -> Result<Vec<String>> {
        sqlx::query("SELECT recipient FROM consent WHERE brand_code = $1 AND channel = $2 AND recipient_type = $3 AND iys_state = 'held' AND iys_known = 0 ORDER BY recipient LIMIT $4")
            .bind(brand.0 as i64)
            .bind(channel.as_str())
            .bind(recipient_type.as_str())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok(r.try_get("recipient")?))
            .collect()
    }

    async fn mark_known(
        &self,
        brand: BrandCode,
        channel: hub_core::Channel,
        recipient_type: iys::RecipientType,
        recipients: &[String],
    ) -> Result<u64> {
        let _w = self.writer().await;
        let b = brand.0 as i64;
        let mut released = 0;
        let mut tx = self.pool.begin().await?;
        let sync: bool = sqlx::query("SELECT mode FROM brand WHERE brand_code = $1")
            .bind(b)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get::<String, _>("mode"))
            .transpose()?
            .is_some_and(|m| m == "sync");
        for r in recipients {
            sqlx::query("UPDATE consent SET iys_known = 1 WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4")
                .bind(b)
                .bind(r.clone())
                .bind(recipient_type.as_str())
                .bind(channel.as_str())
                .execute(&mut *tx)
                .await?;
            if sync {
                released += sqlx::query("UPDATE outbox SET state = 'pending', next_attempt_at_ms = $1 WHERE brand_code = $2 AND recipient = $3 AND recipient_type = $4 AND channel = $5 AND state = 'held'")
                    .bind(ms(Timestamp::now()))
                    .bind(b)
                    .bind(r.clone())
                    .bind(recipient_type.as_str())
                    .bind(channel.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query("UPDATE consent SET iys_state = 'pending' WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4 AND iys_state = 'held'")
                    .bind(b)
                    .bind(r.clone())
                    .bind(recipient_type.as_str())
                    .bind(channel.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(released)
    }

    async fn set_cursor(&self, brand: BrandCode, source: &str, cursor: &str) -> Result<()> {
        let _w = self.writer().await;
        let now = ms(Timestamp::now());
        sqlx::query("INSERT INTO sync_cursor (brand_code, source, cursor, updated_at_ms, last_success_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (brand_code, source) DO UPDATE SET cursor = excluded.cursor, updated_at_ms = excluded.updated_at_ms, last_success_ms = excluded.last_success_ms")
            .bind(brand.0 as i64)
            .bind(source.to_owned())
            .bind(cursor.to_owned())
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn load_token(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query("SELECT state FROM iys_token WHERE token_key = $1")
                .bind(key.to_owned())
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get("state"))
                .transpose()?,
        )
    }

    async fn save_token(&self, key: &str, state: &str) -> Result<()> {
        let _w = self.writer().await;
        sqlx::query("INSERT INTO iys_token (token_key, state, updated_at_ms) VALUES ($1, $2, $3) ON CONFLICT (token_key) DO UPDATE SET state = excluded.state, updated_at_ms = excluded.updated_at_ms")
            .bind(key.to_owned())
            .bind(state.to_owned())
            .bind(ms(Timestamp::now()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
