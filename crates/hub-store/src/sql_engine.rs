//! [`EngineStore`] for [`SqlStore`]. Settling, mode switches and the outbox listing and requeue
//! are in submodules as inherent methods named as the trait's, which the trait delegates to.

pub(crate) mod mode;
mod outbox;
mod settle;

use hub_core::{BrandCode, Change, IysState, Mode};
use jiff::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::engine::*;
use crate::sql::{ms, parse, ts};
use crate::state::{OutboxState, Sql, sql_list};
use crate::{Applied, Backend, Brand, ModePreview, Result, SqlStore, Store, StoreError};

pub(crate) fn item_from(r: &AnyRow) -> Result<OutboxItem> {
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
        created_at: ts(r.try_get("created_at_ms")?),
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
        let mut items = Vec::with_capacity(rows.len());
        for r in &rows {
            match item_from(r) {
                Ok(item) => items.push(item),
                // A row that cannot be read (a value written by hand) would come first again at
                // every claim and stop the brand's dispatch, its opt-outs too: it fails alone,
                // visible in the outbox with its reason, and the others go on.
                Err(StoreError::Corrupt(what)) => {
                    let id: i64 = r.try_get("id")?;
                    tracing::error!(brand = %brand, outbox_id = id, error = %what, "an unreadable outbox row set failed; mend it and requeue it");
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE outbox SET state = {}, last_error = $1, lease_owner = NULL, lease_until_ms = NULL \
                         WHERE brand_code = $2 AND id = $3",
                        OutboxState::Failed.sql()
                    )))
                    .bind(format!("the row cannot be read: {what}"))
                    .bind(brand.0 as i64)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                }
                Err(e) => return Err(e),
            }
        }
        items.sort_by_key(|i| (i.deadline, i.id));
        Ok(items)
    }
}

impl SqlStore {
    /// Recipients of a brand's channel and recipient type meeting `condition` (`$4` is `after`
    /// when given), in order, at most `limit`.
    async fn recipients_where(
        &self,
        brand: BrandCode,
        channel: hub_core::Channel,
        recipient_type: iys::RecipientType,
        condition: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>> {
        let limit_at = if after.is_some() { 5 } else { 4 };
        let sql = format!(
            "SELECT recipient FROM consent WHERE brand_code = $1 AND channel = $2 AND recipient_type = $3 AND {condition} ORDER BY recipient LIMIT ${limit_at}"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(brand.0 as i64)
            .bind(channel.as_str())
            .bind(recipient_type.as_str());
        if let Some(after) = after {
            q = q.bind(after.to_owned());
        }
        q.bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok(r.try_get("recipient")?))
            .collect()
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
        SqlStore::settle(self, brand, owner, settlements, now).await
    }

    async fn switch_mode(
        &self,
        brand: BrandCode,
        mode: Mode,
        actor: &str,
    ) -> Result<Option<Brand>> {
        SqlStore::switch_mode(self, brand, mode, actor).await
    }

    async fn mode_switch_preview(&self, brand: BrandCode, to: Mode) -> Result<ModePreview> {
        SqlStore::mode_switch_preview(self, brand, to).await
    }

    async fn apply_pull(
        &self,
        brand: &Brand,
        changes: Vec<Change>,
        source: &str,
        cursor: &str,
    ) -> Result<Vec<Applied>> {
        let mut w = self.writer().await;
        let mut tx = self.begin_write(w.as_deref_mut()).await?;
        let applied = self.record(&mut tx.tx(), brand, changes).await?;
        let now = ms(Timestamp::now());
        tx.tx().execute("INSERT INTO sync_cursor (brand_code, source, cursor, updated_at_ms, last_success_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (brand_code, source) DO UPDATE SET cursor = excluded.cursor, updated_at_ms = excluded.updated_at_ms, last_success_ms = excluded.last_success_ms",
            &[(brand.brand_code.0 as i64).into(), source.into(), cursor.into(), now.into(), now.into()])
            .await?;
        tx.commit().await?;
        self.wrote(applied.len());
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
        self.recipients_where(
            brand,
            channel,
            recipient_type,
            "recipient > $4",
            Some(after),
            limit,
        )
        .await
    }

    async fn held_recipients(
        &self,
        brand: BrandCode,
        channel: hub_core::Channel,
        recipient_type: iys::RecipientType,
        limit: i64,
    ) -> Result<Vec<String>> {
        // Known ones too: a row held before its consent became known (a delivery of an earlier
        // change accepted meanwhile, before that released held rows) is released by the check.
        let held = format!("iys_state = {}", IysState::Held.sql());
        self.recipients_where(brand, channel, recipient_type, &held, None, limit)
            .await
    }

    async fn mark_known(
        &self,
        brand: BrandCode,
        channel: hub_core::Channel,
        recipient_type: iys::RecipientType,
        recipients: &[String],
    ) -> Result<u64> {
        SqlStore::mark_known(self, brand, channel, recipient_type, recipients).await
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
    ) -> Result<OutboxPage> {
        SqlStore::outbox_rows(self, brand, filter, now, after, limit).await
    }

    async fn requeue(
        &self,
        brand: BrandCode,
        filter: &OutboxFilter,
        dry_run: bool,
        actor: &str,
        now: Timestamp,
    ) -> Result<RequeueReport> {
        SqlStore::requeue(self, brand, filter, dry_run, actor, now).await
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
        let mut tx = self.begin_writing().await?;
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
