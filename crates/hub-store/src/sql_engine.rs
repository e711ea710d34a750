//! [`EngineStore`] for [`SqlStore`].

use hub_core::{BrandCode, Change, IysState, Mode};
use iys::{ConsentStatus, HCode};
use jiff::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::engine::*;
use crate::sql::{ms, parse, positional, ts};
use crate::state::{OutboxState, Sql, sql_list};
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
        submitted_at: r.try_get::<Option<i64>, _>("submitted_at_ms")?.map(ts),
        bulk_index: r.try_get("bulk_index")?,
    })
}

/// Which rows a claim takes.
#[derive(Debug, Clone, Copy)]
enum Claim {
    Pending,
    Awaiting,
}

impl Claim {
    fn state(self) -> OutboxState {
        match self {
            Claim::Pending => OutboxState::Pending,
            Claim::Awaiting => OutboxState::AwaitingResult,
        }
    }

    /// The claim statement: lease the chosen rows to `$1` until `$2`. Pending rows: only the
    /// oldest unsettled row of each consent, so its changes stay in order; bulk-submitted rows:
    /// no ordering rule among a request's own rows. PostgreSQL locks them `FOR UPDATE SKIP
    /// LOCKED` (SQLite has one writer and no row locks).
    fn sql(self, backend: Backend) -> String {
        let (filter, order) = match self {
            Claim::Pending => (
                format!(
                    "AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.brand_code = o.brand_code AND p.recipient = o.recipient AND p.recipient_type = o.recipient_type AND p.channel = o.channel AND p.id < o.id AND p.state IN {})",
                    sql_list(&[OutboxState::Pending, OutboxState::AwaitingResult])
                ),
                "o.deadline_ms, o.id",
            ),
            Claim::Awaiting => (String::new(), "o.request_id, o.id"),
        };
        let lock = match backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        format!(
            "UPDATE outbox SET lease_owner = $1, lease_until_ms = $2 WHERE id IN (\
             SELECT o.id FROM outbox o WHERE o.brand_code = $3 AND o.state = $4 AND o.next_attempt_at_ms <= $5 \
             AND (o.lease_until_ms IS NULL OR o.lease_until_ms < $5) {filter} ORDER BY {order} LIMIT $6{lock}) RETURNING *"
        )
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
        let rows = sqlx::query(sqlx::AssertSqlSafe(what.sql(self.backend)))
            .bind(owner.to_owned())
            .bind(ms(now) + lease_ms)
            .bind(brand.0 as i64)
            .bind(what.state().as_str())
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
        owner: &str,
        settlements: Vec<(OutboxItem, Settlement)>,
        now: Timestamp,
    ) -> Result<()> {
        let _w = self.writer().await;
        let b = brand.0 as i64;
        let mut tx = self.pool.begin().await?;
        self.lock_brand(&mut tx, brand.0 as i64).await?;
        // The mode as it is now, under the lock: the brand may have switched to sync mode while
        // these rows were on their way.
        let sync = self.brand_mode(&mut tx, b).await? == Some(Mode::Sync);
        for (item, s) in settlements {
            let key = (
                item.recipient.clone(),
                item.recipient_type.as_str(),
                item.channel.as_str(),
            );
            // The row's outcome, and what it says about the consent when it still carries the
            // consent's current state: (outbox state, last error, consent's IYS state, known).
            let (row_state, last_error, consent_state, known) = match &s {
                Settlement::Delivered { .. } => {
                    (OutboxState::Done, None, Some((IysState::InIys, None)), true)
                }
                Settlement::Refused { code, .. } => match code.parse::<HCode>() {
                    // IYS already holds this RET.
                    Ok(HCode::H174) if item.status == ConsentStatus::Ret => (
                        OutboxState::Done,
                        Some(code.clone()),
                        Some((IysState::InIys, None)),
                        true,
                    ),
                    // A RET for a recipient IYS never had: nothing to withdraw, not an error.
                    Ok(HCode::H175) if item.status == ConsentStatus::Ret => (
                        OutboxState::Done,
                        Some(code.clone()),
                        Some((IysState::NotInIys, None)),
                        false,
                    ),
                    _ => (
                        OutboxState::Failed,
                        Some(code.clone()),
                        Some((IysState::Rejected, Some(code.clone()))),
                        false,
                    ),
                },
                Settlement::Retry { error, .. } => {
                    (OutboxState::Pending, Some(error.clone()), None, false)
                }
                Settlement::Submitted { .. } | Settlement::StillQueued { .. } => {
                    (OutboxState::AwaitingResult, None, None, false)
                }
                Settlement::Paused { .. } => (OutboxState::Pending, None, None, false),
            };
            let next_ms = match &s {
                Settlement::Retry { at, .. } => Some(ms(*at)),
                Settlement::Submitted { poll_at, .. } | Settlement::StillQueued { poll_at } => {
                    Some(ms(*poll_at))
                }
                Settlement::Paused { until } => Some(ms(*until)),
                // The refusal time is kept for the 24-hour error figures.
                Settlement::Refused { .. } => Some(ms(now)),
                Settlement::Delivered { .. } => None,
            };
            // Sync mode never gives IYS a new record: an ONAY that comes back unsent (a retry, a
            // pause) after a switch to sync mode is held, as the switch holds the rows it finds
            // waiting, unless IYS is known to have the consent. If a later change came while it
            // was on its way (the consent's state is no longer its event's), it is superseded
            // instead: held, it would no longer keep the later row waiting behind it, and would
            // reach IYS after it once released.
            let row_state = if sync
                && row_state == OutboxState::Pending
                && item.status == ConsentStatus::Onay
            {
                let consent = sqlx::query("SELECT iys_known, last_event_id FROM consent WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4")
                    .bind(b)
                    .bind(key.0.clone())
                    .bind(key.1)
                    .bind(key.2)
                    .fetch_optional(&mut *tx)
                    .await?;
                let (iys_has_it, current) = match consent {
                    Some(r) => (
                        r.try_get::<i64, _>("iys_known")? != 0,
                        r.try_get::<i64, _>("last_event_id")? == item.event_id,
                    ),
                    None => (false, true),
                };
                match (iys_has_it, current) {
                    (true, _) => OutboxState::Pending,
                    (false, true) => OutboxState::Held,
                    (false, false) => OutboxState::Superseded,
                }
            } else {
                row_state
            };
            let counts_attempt = !matches!(
                s,
                Settlement::StillQueued { .. } | Settlement::Paused { .. }
            );
            let (request_id, sub_request_id, index, submitted) = match &s {
                Settlement::Submitted {
                    request_id,
                    sub_request_id,
                    index,
                    ..
                } => (
                    Some(request_id.clone()),
                    Some(sub_request_id.clone()),
                    Some(*index),
                    Some(ms(now)),
                ),
                _ => (None, None, None, None),
            };
            let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE outbox SET state = $1, lease_owner = NULL, lease_until_ms = NULL, \
                 last_error = CASE WHEN $2 = {} THEN last_error ELSE $3 END, \
                 next_attempt_at_ms = COALESCE($4, next_attempt_at_ms), attempts = attempts + $5, \
                 request_id = COALESCE($6, request_id), sub_request_id = COALESCE($7, sub_request_id), \
                 bulk_index = COALESCE($8, bulk_index), submitted_at_ms = COALESCE($9, submitted_at_ms) \
                 WHERE id = $10 AND brand_code = $11 AND lease_owner = $12",
                OutboxState::AwaitingResult.sql()
            )))
            .bind(row_state.as_str())
            .bind(row_state.as_str())
            .bind(last_error.clone())
            .bind(next_ms)
            .bind(i64::from(counts_attempt))
            .bind(request_id)
            .bind(sub_request_id)
            .bind(index)
            .bind(submitted)
            .bind(item.id)
            .bind(b)
            .bind(owner.to_owned())
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                tracing::warn!(
                    outbox = item.id,
                    "not settled: the row's lease passed to another owner"
                );
                continue;
            }
            if row_state == OutboxState::Held {
                sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE consent SET iys_state = {} WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4 AND last_event_id = $5 AND iys_state = {}", IysState::Held.sql(), IysState::Pending.sql())))
                    .bind(b)
                    .bind(key.0.clone())
                    .bind(key.1)
                    .bind(key.2)
                    .bind(item.event_id)
                    .execute(&mut *tx)
                    .await?;
            }
            match &s {
                Settlement::Delivered {
                    transaction_id,
                    creation_date,
                } => {
                    sqlx::query("UPDATE consent_event SET delivered_transaction_id = $1, iys_creation_date = $2, iys_error = NULL WHERE id = $3")
                        .bind(transaction_id.clone())
                        .bind(creation_date.map(|d| d.to_string()))
                        .bind(item.event_id)
                        .execute(&mut *tx)
                        .await?;
                }
                Settlement::Refused { code, message } => {
                    sqlx::query("UPDATE consent_event SET iys_error = $1 WHERE id = $2")
                        .bind(format!("{code}: {message}"))
                        .bind(item.event_id)
                        .execute(&mut *tx)
                        .await?;
                }
                _ => {}
            }
            if known {
                sqlx::query("UPDATE consent SET iys_known = 1 WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4")
                    .bind(b)
                    .bind(key.0.clone())
                    .bind(key.1)
                    .bind(key.2)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some((state, error)) = consent_state {
                sqlx::query("UPDATE consent SET iys_state = $1, iys_error = $2, deadline_ms = NULL WHERE brand_code = $3 AND recipient = $4 AND recipient_type = $5 AND channel = $6 AND last_event_id = $7")
                    .bind(state.as_str())
                    .bind(error)
                    .bind(b)
                    .bind(key.0.clone())
                    .bind(key.1)
                    .bind(key.2)
                    .bind(item.event_id)
                    .execute(&mut *tx)
                    .await?;
                // The key's next movement waits a second: IYS gives movements of one address and
                // type in the same second one shared transactionId.
                sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE outbox SET next_attempt_at_ms = $1 WHERE brand_code = $2 AND recipient = $3 AND recipient_type = $4 AND channel = $5 AND state = {} AND next_attempt_at_ms < $1", OutboxState::Pending.sql())))
                    .bind(ms(now) + 1_000)
                    .bind(b)
                    .bind(key.0.clone())
                    .bind(key.1)
                    .bind(key.2)
                    .execute(&mut *tx)
                    .await?;
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
        self.lock_brand(&mut tx, brand.0 as i64).await?;
        sqlx::query("UPDATE brand SET mode = $1, updated_at_ms = $2 WHERE brand_code = $3")
            .bind(mode.as_str())
            .bind(now)
            .bind(b)
            .execute(&mut *tx)
            .await?;
        let (released, held) = match mode {
            Mode::Integrator => {
                let r = sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE outbox SET state = {}, next_attempt_at_ms = $1 WHERE brand_code = $2 AND state = {}", OutboxState::Pending.sql(), OutboxState::Held.sql())))
                    .bind(now)
                    .bind(b)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE consent SET iys_state = {} WHERE brand_code = $1 AND iys_state = {}",
                    IysState::Pending.sql(),
                    IysState::Held.sql()
                )))
                .bind(b)
                .execute(&mut *tx)
                .await?;
                (r.rows_affected(), 0)
            }
            Mode::Sync => {
                // A waiting ONAY that no longer carries its consent's state (it came back from
                // IYS unsent after a later change was queued behind it) is superseded, not held:
                // held, it would let the later row go first and follow it once released.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE outbox SET state = {} WHERE brand_code = $1 AND state = {} AND status = {} AND (lease_until_ms IS NULL OR lease_until_ms < $2) \
                     AND NOT EXISTS (SELECT 1 FROM consent c WHERE c.brand_code = outbox.brand_code AND c.recipient = outbox.recipient AND c.recipient_type = outbox.recipient_type AND c.channel = outbox.channel AND (c.iys_known = 1 OR c.last_event_id = outbox.event_id))",
                    OutboxState::Superseded.sql(),
                    OutboxState::Pending.sql(),
                    ConsentStatus::Onay.sql()
                )))
                .bind(b)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let r = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE outbox SET state = {} WHERE brand_code = $1 AND state = {} AND status = {} AND (lease_until_ms IS NULL OR lease_until_ms < $2) \
                     AND NOT EXISTS (SELECT 1 FROM consent c WHERE c.brand_code = outbox.brand_code AND c.recipient = outbox.recipient AND c.recipient_type = outbox.recipient_type AND c.channel = outbox.channel AND c.iys_known = 1)",
                    OutboxState::Held.sql(),
                    OutboxState::Pending.sql(),
                    ConsentStatus::Onay.sql()
                )))
                .bind(b)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE consent SET iys_state = {} WHERE brand_code = $1 AND iys_state = {} AND status = {} AND iys_known = 0", IysState::Held.sql(), IysState::Pending.sql(), ConsentStatus::Onay.sql())))
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
        let open = sql_list(&OutboxState::OPEN);
        let oldest: Option<i64> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT MIN(deadline_ms) AS d FROM outbox WHERE brand_code = $1 AND state IN {open}"
        )))
        .bind(b)
        .fetch_one(&self.pool)
        .await?
        .try_get("d")?;
        let at_risk: i64 = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM outbox WHERE brand_code = $1 AND state IN {open} AND deadline_ms < $2")))
            .bind(b)
            .bind(ms(now) + 86_400_000)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let errors = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT last_error, COUNT(*) AS n FROM outbox WHERE brand_code = $1 AND state = {} AND next_attempt_at_ms >= $2 GROUP BY last_error ORDER BY last_error", OutboxState::Failed.sql())))
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
            paused: self.dispatch_pause(brand).await?.filter(|p| p.until > now),
            quarantined: sqlx::query(
                "SELECT COUNT(*) AS n FROM quarantine WHERE brand_code = $1 AND resolved_ms IS NULL",
            )
            .bind(b)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?,
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
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT recipient FROM consent WHERE brand_code = $1 AND channel = $2 AND recipient_type = $3 AND iys_state = {} AND iys_known = 0 ORDER BY recipient LIMIT $4", IysState::Held.sql())))
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
        self.lock_brand(&mut tx, brand.0 as i64).await?;
        let sync = self.brand_mode(&mut tx, b).await? == Some(Mode::Sync);
        for r in recipients {
            sqlx::query("UPDATE consent SET iys_known = 1 WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4")
                .bind(b)
                .bind(r.clone())
                .bind(recipient_type.as_str())
                .bind(channel.as_str())
                .execute(&mut *tx)
                .await?;
            if sync {
                released += sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE outbox SET state = {}, next_attempt_at_ms = $1 WHERE brand_code = $2 AND recipient = $3 AND recipient_type = $4 AND channel = $5 AND state = {}", OutboxState::Pending.sql(), OutboxState::Held.sql())))
                    .bind(ms(Timestamp::now()))
                    .bind(b)
                    .bind(r.clone())
                    .bind(recipient_type.as_str())
                    .bind(channel.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE consent SET iys_state = {} WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4 AND iys_state = {}", IysState::Pending.sql(), IysState::Held.sql())))
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

    async fn dispatch_pause(&self, brand: BrandCode) -> Result<Option<DispatchPause>> {
        sqlx::query("SELECT reason, since_ms, paused_until_ms, failures FROM dispatch_pause WHERE brand_code = $1")
            .bind(brand.0 as i64)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| {
                Ok(DispatchPause {
                    reason: r.try_get("reason")?,
                    since: ts(r.try_get("since_ms")?),
                    until: ts(r.try_get("paused_until_ms")?),
                    failures: r.try_get("failures")?,
                })
            })
            .transpose()
    }

    async fn pause_dispatch(
        &self,
        brand: BrandCode,
        reason: &str,
        now: Timestamp,
        base_ms: i64,
        max_ms: i64,
    ) -> Result<DispatchPause> {
        let previous = self.dispatch_pause(brand).await?;
        let failures = previous.as_ref().map_or(0, |p| p.failures) + 1;
        let since = previous.map_or(now, |p| p.since);
        let wait = base_ms
            .saturating_mul(1_i64 << (failures - 1).clamp(0, 20))
            .min(max_ms);
        let pause = DispatchPause {
            reason: reason.to_owned(),
            since,
            until: ts(ms(now).saturating_add(wait)),
            failures,
        };
        let _w = self.writer().await;
        sqlx::query("INSERT INTO dispatch_pause (brand_code, reason, since_ms, paused_until_ms, failures) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (brand_code) DO UPDATE SET reason = excluded.reason, since_ms = excluded.since_ms, paused_until_ms = excluded.paused_until_ms, failures = excluded.failures")
            .bind(brand.0 as i64)
            .bind(pause.reason.clone())
            .bind(ms(pause.since))
            .bind(ms(pause.until))
            .bind(pause.failures)
            .execute(&self.pool)
            .await?;
        Ok(pause)
    }

    async fn resume_dispatch(&self, brand: BrandCode) -> Result<()> {
        let _w = self.writer().await;
        sqlx::query("DELETE FROM dispatch_pause WHERE brand_code = $1")
            .bind(brand.0 as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn outbox_rows(
        &self,
        brand: BrandCode,
        filter: &OutboxFilter,
        now: Timestamp,
        after: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>> {
        let (clause, binds) = filter_sql(filter, now);
        let sql = format!(
            "SELECT * FROM outbox WHERE brand_code = $1 AND id > $2{clause} ORDER BY id LIMIT {}",
            limit.clamp(1, 1000)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(positional(self.backend, sql)))
            .bind(brand.0 as i64)
            .bind(after);
        for v in binds {
            q = v.bind_to(q);
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(row_from)
            .collect()
    }

    async fn requeue(
        &self,
        brand: BrandCode,
        filter: &OutboxFilter,
        dry_run: bool,
        actor: &str,
        now: Timestamp,
    ) -> Result<RequeueReport> {
        let _w = self.writer().await;
        let b = brand.0 as i64;
        let mut tx = self.pool.begin().await?;
        self.lock_brand(&mut tx, brand.0 as i64).await?;
        let (clause, binds) = filter_sql(filter, now);
        // Sync mode never creates IYS records: its held ONAYs wait for IYS to know the recipient.
        let states = if self.brand_mode(&mut tx, b).await? == Some(Mode::Sync) {
            sql_list(&[OutboxState::Failed])
        } else {
            sql_list(&[OutboxState::Failed, OutboxState::Held])
        };
        // Only rows that failed (or were held) can go again; each only while it still carries
        // its consent's current state, so an overtaken change never reaches IYS after a later one.
        let sql = format!(
            "SELECT o.id, o.event_id, (SELECT COUNT(*) FROM consent c WHERE c.brand_code = o.brand_code AND c.recipient = o.recipient \
             AND c.recipient_type = o.recipient_type AND c.channel = o.channel AND c.last_event_id = o.event_id) AS current \
             FROM outbox o WHERE o.brand_code = $1 AND o.id > $2 AND o.state IN {states}{clause} ORDER BY o.id"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(positional(self.backend, sql)))
            .bind(b)
            .bind(0_i64);
        for v in binds {
            q = v.bind_to(q);
        }
        let rows = q.fetch_all(&mut *tx).await?;
        let mut report = RequeueReport {
            matched: rows.len() as u64,
            dry_run,
            ..RequeueReport::default()
        };
        let mut ids = Vec::new();
        let mut events = Vec::new();
        for r in &rows {
            if r.try_get::<i64, _>("current")? > 0 {
                ids.push(r.try_get::<i64, _>("id")?);
                events.push(r.try_get::<i64, _>("event_id")?);
            } else {
                report.overtaken += 1;
            }
        }
        report.requeued = ids.len() as u64;
        if dry_run {
            return Ok(report);
        }
        for (ids, events) in ids.chunks(500).zip(events.chunks(500)) {
            let list = |xs: &[i64]| xs.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
            sqlx::query(sqlx::AssertSqlSafe(positional(self.backend, format!(
                "UPDATE outbox SET state = {}, attempts = 0, next_attempt_at_ms = $1, last_error = NULL, lease_owner = NULL, lease_until_ms = NULL, \
                 request_id = NULL, sub_request_id = NULL, bulk_index = NULL, submitted_at_ms = NULL WHERE brand_code = $2 AND id IN ({})",
                OutboxState::Pending.sql(),
                list(ids)
            ))))
            .bind(ms(now))
            .bind(b)
            .execute(&mut *tx)
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(positional(self.backend, format!(
                "UPDATE consent SET iys_state = {}, iys_error = NULL WHERE brand_code = $1 AND last_event_id IN ({})",
                IysState::Pending.sql(),
                list(events)
            ))))
            .bind(b)
            .execute(&mut *tx)
            .await?;
        }
        let detail = serde_json::json!({
            "filter": {
                "state": filter.state.map(OutboxState::as_str),
                "hcode": filter.hcode,
                "recipient": filter.recipient,
                "from": filter.from,
                "to": filter.to,
                "atRisk": filter.at_risk,
            },
            "matched": report.matched,
            "requeued": report.requeued,
            "overtaken": report.overtaken,
        });
        sqlx::query("INSERT INTO audit_log (brand_code, at_ms, actor, action, detail) VALUES ($1, $2, $3, $4, $5)")
            .bind(b)
            .bind(ms(now))
            .bind(actor.to_owned())
            .bind("outbox_requeue")
            .bind(detail.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(report)
    }

    async fn claim_pull(&self, brand: BrandCode, now: Timestamp, every_ms: i64) -> Result<bool> {
        let _w = self.writer().await;
        let b = brand.0 as i64;
        let now = ms(now);
        // The time is kept on the cursor of IYS's own changes, which every mode pulls.
        let source = iys::wire::ChangeSource::Iys.as_str();
        sqlx::query("INSERT INTO sync_cursor (brand_code, source, cursor, updated_at_ms) VALUES ($1, $2, NULL, $3) ON CONFLICT (brand_code, source) DO NOTHING")
            .bind(b)
            .bind(source)
            .bind(now)
            .execute(&self.pool)
            .await?;
        // A time ahead of now (another clock) counts as due, so a jump back cannot stall pulls.
        let r = sqlx::query("UPDATE sync_cursor SET last_attempt_ms = $2 WHERE brand_code = $1 AND source = $4 AND (last_attempt_ms IS NULL OR last_attempt_ms <= $3 OR last_attempt_ms > $2)")
            .bind(b)
            .bind(now)
            .bind(now.saturating_sub(every_ms))
            .bind(source)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn quarantine(
        &self,
        brand: BrandCode,
        source: &str,
        items: &[(serde_json::Value, String)],
        now: Timestamp,
    ) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        for (movement, reason) in items {
            sqlx::query("INSERT INTO quarantine (brand_code, source, reason, movement, at_ms) VALUES ($1, $2, $3, $4, $5)")
                .bind(brand.0 as i64)
                .bind(source.to_owned())
                .bind(reason.clone())
                .bind(movement.to_string())
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn quarantined(&self, brand: BrandCode, limit: i64) -> Result<Vec<QuarantineRow>> {
        sqlx::query("SELECT id, source, reason, movement, at_ms FROM quarantine WHERE brand_code = $1 AND resolved_ms IS NULL ORDER BY id DESC LIMIT $2")
            .bind(brand.0 as i64)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let text: String = r.try_get("movement")?;
                Ok(QuarantineRow {
                    id: r.try_get("id")?,
                    source: r.try_get("source")?,
                    reason: r.try_get("reason")?,
                    // Stored as received; text that is not JSON is shown as text.
                    movement: serde_json::from_str(&text)
                        .unwrap_or(serde_json::Value::String(text)),
                    at: ts(r.try_get("at_ms")?),
                })
            })
            .collect()
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

/// A value bound to a filter's placeholder.
enum Bind {
    Text(String),
    Int(i64),
}

impl Bind {
    fn bind_to<'q>(
        self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        match self {
            Bind::Text(s) => q.bind(s),
            Bind::Int(n) => q.bind(n),
        }
    }
}

/// The filter as SQL conditions on outbox columns (placeholders from `$3`), with their values.
/// Column names are unqualified so the conditions fit `outbox` with or without an alias.
fn filter_sql(f: &OutboxFilter, now: Timestamp) -> (String, Vec<Bind>) {
    let mut clause = String::new();
    let mut binds = Vec::new();
    let mut add = |cond: &str, v: Bind| {
        binds.push(v);
        clause.push_str(&cond.replace('?', &format!("${}", binds.len() + 2)));
    };
    if let Some(state) = f.state {
        add(" AND state = ?", Bind::Text(state.as_str().to_owned()));
    }
    if let Some(code) = &f.hcode {
        add(" AND last_error = ?", Bind::Text(code.clone()));
    }
    if let Some(r) = &f.recipient {
        add(" AND recipient = ?", Bind::Text(r.clone()));
    }
    if let Some(t) = f.from {
        add(" AND created_at_ms >= ?", Bind::Int(ms(t)));
    }
    if let Some(t) = f.to {
        add(" AND created_at_ms < ?", Bind::Int(ms(t)));
    }
    if f.at_risk {
        add(
            &format!(
                " AND state IN {} AND deadline_ms < ?",
                sql_list(&OutboxState::OPEN)
            ),
            Bind::Int(ms(now) + 86_400_000),
        );
    }
    (clause, binds)
}

fn row_from(r: &AnyRow) -> Result<OutboxRow> {
    let item = item_from(r)?;
    Ok(OutboxRow {
        id: item.id,
        event_id: item.event_id,
        recipient: item.recipient,
        recipient_type: item.recipient_type,
        channel: item.channel,
        status: item.status,
        consent_date: item.consent_date,
        state: parse("outbox.state", &r.try_get::<String, _>("state")?)?,
        attempts: item.attempts,
        last_error: r.try_get("last_error")?,
        deadline: item.deadline,
        created_at: ts(r.try_get("created_at_ms")?),
        request_id: item.request_id,
        superseded_by: r.try_get("superseded_by")?,
    })
}
