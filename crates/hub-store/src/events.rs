//! Automation events and their webhooks: the history events the ledger marks as status changes
//! (the `change_event` view), the publishers' cursors, webhook endpoints, their delivery log and manual
//! redeliveries.
//!
//! A webhook is delivered in event order by one worker at a time (a lease on its row): the
//! cursor is the last event delivered, so nothing is skipped across a crash (an event whose
//! delivery was not recorded is sent again, with the same id) and per recipient the order holds.

use std::future::Future;

use hub_core::{BrandCode, ConsentEvent};
use jiff::Timestamp;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::{corrupt, ms, ts};
use crate::{Result, SqlStore};

const EVENT_COLUMNS: &str = "id, brand_code, recipient, recipient_type, channel, category, old_status, new_status, origin, iys_state, at_ms";

fn brand_from(r: &AnyRow) -> Result<BrandCode> {
    let b: i64 = r.try_get("brand_code")?;
    u64::try_from(b)
        .map(BrandCode)
        .map_err(|e| corrupt("brand_code", e))
}

fn event_from(r: &AnyRow) -> Result<ConsentEvent> {
    Ok(ConsentEvent {
        id: r.try_get("id")?,
        brand: brand_from(r)?,
        recipient: r.try_get("recipient")?,
        recipient_type: r.try_get("recipient_type")?,
        channel: r.try_get("channel")?,
        category: r.try_get("category")?,
        old: r.try_get("old_status")?,
        new: r.try_get("new_status")?,
        origin: r.try_get("origin")?,
        iys_state: r.try_get("iys_state")?,
        at: ts(r.try_get("at_ms")?),
    })
}

/// A webhook endpoint of a brand. Its signing secret is kept sealed and never listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: i64,
    pub brand_code: BrandCode,
    pub url: String,
    pub description: Option<String>,
    /// Event types delivered; empty means all.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why it was disabled (by the hub after a failure streak, or by a person).
    pub disabled_reason: Option<String>,
    /// The last event delivered (or passed over by the filter).
    pub cursor: i64,
    /// Failed attempts in a row.
    pub failures: i64,
    pub failing_since: Option<Timestamp>,
    pub next_attempt_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

const WEBHOOK_COLUMNS: &str = "id, brand_code, url, description, event_types, enabled, disabled_reason, cursor, failures, failing_since_ms, next_attempt_at_ms, created_at_ms, updated_at_ms";

fn webhook_from(r: &AnyRow) -> Result<Webhook> {
    let types: String = r.try_get("event_types")?;
    Ok(Webhook {
        id: r.try_get("id")?,
        brand_code: brand_from(r)?,
        url: r.try_get("url")?,
        description: r.try_get("description")?,
        event_types: serde_json::from_str(&types).map_err(|e| corrupt("webhook.event_types", e))?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        disabled_reason: r.try_get("disabled_reason")?,
        cursor: r.try_get("cursor")?,
        failures: r.try_get("failures")?,
        failing_since: r.try_get::<Option<i64>, _>("failing_since_ms")?.map(ts),
        next_attempt_at: ts(r.try_get("next_attempt_at_ms")?),
        created_at: ts(r.try_get("created_at_ms")?),
        updated_at: ts(r.try_get("updated_at_ms")?),
    })
}

/// A webhook to register. Delivery starts with the brand's next event.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub brand_code: BrandCode,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<String>,
    /// The signing secret, sealed.
    pub sealed_secret: String,
}

/// Changes to a webhook; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct WebhookUpdate {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// Enabling again clears the failure streak and retries at once, from where it stopped.
    pub enabled: Option<bool>,
    /// A new sealed secret (a rotation).
    pub sealed_secret: Option<String>,
}

/// One delivery attempt, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivery {
    pub id: i64,
    pub webhook_id: i64,
    /// The change event's id (the `webhook-id` the receiver saw).
    pub event_id: i64,
    pub attempt: i64,
    /// A redelivery asked for by a person.
    pub manual: bool,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    /// The start of the receiver's answer.
    pub response: Option<String>,
    pub duration_ms: i64,
    pub at: Timestamp,
}

/// What to log of an attempt.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub event_id: i64,
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub response: Option<String>,
    pub duration_ms: i64,
    pub at: Timestamp,
}

/// A failed attempt of the stream: the same event is tried again at `retry_at`, or the webhook
/// stops with `disable` as the reason.
#[derive(Debug, Clone)]
pub struct Failure {
    pub attempt: AttemptRecord,
    pub retry_at: Timestamp,
    pub disable: Option<String>,
}

/// What a round of deliveries did, recorded in one transaction: the attempts that succeeded,
/// where the cursor now stands (the last event delivered or passed over by the filter), and the
/// failure that ended the round, if one did.
#[derive(Debug, Clone, Default)]
pub struct RoundProgress {
    pub delivered: Vec<AttemptRecord>,
    pub cursor: Option<i64>,
    pub failure: Option<Failure>,
}

impl RoundProgress {
    pub fn is_empty(&self) -> bool {
        self.delivered.is_empty() && self.cursor.is_none() && self.failure.is_none()
    }
}

/// A manual redelivery waiting for the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redelivery {
    pub id: i64,
    pub event_id: i64,
}

async fn insert_attempt(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    webhook: i64,
    a: &AttemptRecord,
    manual: bool,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO webhook_delivery (webhook_id, change_event_id, attempt, manual, status_code, error, response, duration_ms, at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(webhook)
    .bind(a.event_id)
    .bind(a.attempt)
    .bind(i64::from(manual))
    .bind(a.status_code)
    .bind(a.error.clone())
    .bind(a.response.clone())
    .bind(a.duration_ms)
    .bind(ms(a.at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Change events, their sinks' cursors, webhooks and their deliveries.
pub trait EventStore: Send + Sync {
    /// The brand's change events after `after` (an event id; 0 for the start), oldest first.
    fn change_events(
        &self,
        brand: BrandCode,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ConsentEvent>>> + Send;

    /// One change event of the brand, by id.
    fn change_event(
        &self,
        brand: BrandCode,
        id: i64,
    ) -> impl Future<Output = Result<Option<ConsentEvent>>> + Send;

    /// The brands with events after what `sink` has published, with its cursor for each.
    fn brands_behind(
        &self,
        sink: &str,
    ) -> impl Future<Output = Result<Vec<(BrandCode, i64)>>> + Send;

    /// Records that `sink` has published the brand's events up to `last_id` (never backwards: two
    /// instances publishing at once only repeat events, which JetStream drops by id).
    fn set_event_cursor(
        &self,
        sink: &str,
        brand: BrandCode,
        last_id: i64,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Registers a webhook; it receives the events recorded from now on.
    fn create_webhook(
        &self,
        hook: NewWebhook,
        now: Timestamp,
    ) -> impl Future<Output = Result<Webhook>> + Send;

    /// The brand's webhooks, oldest first.
    fn webhooks(&self, brand: BrandCode) -> impl Future<Output = Result<Vec<Webhook>>> + Send;

    /// One webhook of the brand; `None` when it has no such webhook.
    fn webhook(
        &self,
        brand: BrandCode,
        id: i64,
    ) -> impl Future<Output = Result<Option<Webhook>>> + Send;

    /// The webhook's sealed signing secret.
    fn webhook_secret(&self, id: i64) -> impl Future<Output = Result<Option<String>>> + Send;

    /// Applies `update`; `None` when the brand has no such webhook.
    fn update_webhook(
        &self,
        brand: BrandCode,
        id: i64,
        update: WebhookUpdate,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<Webhook>>> + Send;

    /// Removes a webhook with its delivery log; `false` when there was none.
    fn delete_webhook(
        &self,
        brand: BrandCode,
        id: i64,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Takes up to `limit` webhooks with work due (events past the cursor, or a redelivery) for
    /// `owner` until `now + lease_ms`: one worker per webhook at a time keeps the order.
    fn claim_webhooks(
        &self,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Webhook>>> + Send;

    /// Gives a claimed webhook back.
    fn release_webhook(&self, id: i64, owner: &str) -> impl Future<Output = Result<()>> + Send;

    /// Releases every webhook lease (SQLite, at start: the leases of a killed process).
    fn release_webhook_leases(&self) -> impl Future<Output = Result<()>> + Send;

    /// Records a round's progress; `false` when the lease was lost (another worker has the
    /// webhook now): the caller stops. A crash before this repeats the round's deliveries, with
    /// the same event ids.
    fn record_progress(
        &self,
        id: i64,
        owner: &str,
        progress: &RoundProgress,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Logs a manual redelivery and drops it from the queue, in one transaction. `false` when
    /// the lease was lost.
    fn record_redelivery(
        &self,
        id: i64,
        owner: &str,
        redelivery: i64,
        attempt: &AttemptRecord,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Drops delivery log entries older than `before`; how many.
    fn prune_webhook_deliveries(
        &self,
        before: Timestamp,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// The webhook's delivery log, newest first, before the delivery id `before`.
    fn webhook_deliveries(
        &self,
        webhook: i64,
        before: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<WebhookDelivery>>> + Send;

    /// Asks for one event to be delivered again to one webhook (of the same brand).
    fn request_redelivery(
        &self,
        webhook: i64,
        event: i64,
        now: Timestamp,
    ) -> impl Future<Output = Result<i64>> + Send;

    /// The webhook's waiting redeliveries, oldest first.
    fn redeliveries(
        &self,
        webhook: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Redelivery>>> + Send;
}

impl EventStore for SqlStore {
    async fn change_events(
        &self,
        brand: BrandCode,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ConsentEvent>> {
        let rest = "AND id > $2 ORDER BY id LIMIT $3";
        let values = [after, i64::from(limit)];
        self.brand_rows(
            EVENT_COLUMNS,
            "change_event",
            rest,
            brand,
            &values,
            event_from,
        )
        .await
    }

    async fn change_event(&self, brand: BrandCode, id: i64) -> Result<Option<ConsentEvent>> {
        Ok(self
            .brand_rows(
                EVENT_COLUMNS,
                "change_event",
                "AND id = $2",
                brand,
                &[id],
                event_from,
            )
            .await?
            .into_iter()
            .next())
    }

    async fn brands_behind(&self, sink: &str) -> Result<Vec<(BrandCode, i64)>> {
        sqlx::query(
            "SELECT b.brand_code, COALESCE(c.last_id, 0) AS last_id FROM brand b \
             LEFT JOIN event_cursor c ON c.sink = $1 AND c.brand_code = b.brand_code \
             WHERE EXISTS (SELECT 1 FROM change_event e WHERE e.brand_code = b.brand_code AND e.id > COALESCE(c.last_id, 0)) \
             ORDER BY b.brand_code",
        )
        .bind(sink.to_owned())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((brand_from(r)?, r.try_get("last_id")?)))
        .collect()
    }

    async fn set_event_cursor(&self, sink: &str, brand: BrandCode, last_id: i64) -> Result<()> {
        let _w = self.writer().await;
        sqlx::query(
            "INSERT INTO event_cursor (sink, brand_code, last_id) VALUES ($1, $2, $3) \
             ON CONFLICT (sink, brand_code) DO UPDATE SET last_id = CASE WHEN excluded.last_id > event_cursor.last_id THEN excluded.last_id ELSE event_cursor.last_id END",
        )
        .bind(sink.to_owned())
        .bind(brand.0 as i64)
        .bind(last_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn create_webhook(&self, hook: NewWebhook, now: Timestamp) -> Result<Webhook> {
        let _w = self.writer().await;
        let b = hook.brand_code.0 as i64;
        let types =
            serde_json::to_string(&hook.event_types).map_err(|e| corrupt("event_types", e))?;
        let mut tx = self.begin_writing().await?;
        let cursor: i64 = sqlx::query(
            "SELECT COALESCE(MAX(id), 0) AS id FROM change_event WHERE brand_code = $1",
        )
        .bind(b)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        let id: i64 = sqlx::query(
            "INSERT INTO webhook (brand_code, url, description, event_types, secret, enabled, cursor, next_attempt_at_ms, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $7, $7) RETURNING id",
        )
        .bind(b)
        .bind(hook.url)
        .bind(hook.description)
        .bind(types)
        .bind(hook.sealed_secret)
        .bind(cursor)
        .bind(ms(now))
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        tx.commit().await?;
        drop(_w);
        self.webhook(hook.brand_code, id)
            .await?
            .ok_or_else(|| corrupt("webhook", "vanished after insert"))
    }

    async fn webhooks(&self, brand: BrandCode) -> Result<Vec<Webhook>> {
        self.brand_rows(
            WEBHOOK_COLUMNS,
            "webhook",
            "ORDER BY id",
            brand,
            &[],
            webhook_from,
        )
        .await
    }

    async fn webhook(&self, brand: BrandCode, id: i64) -> Result<Option<Webhook>> {
        Ok(self
            .brand_rows(
                WEBHOOK_COLUMNS,
                "webhook",
                "AND id = $2",
                brand,
                &[id],
                webhook_from,
            )
            .await?
            .into_iter()
            .next())
    }

    async fn webhook_secret(&self, id: i64) -> Result<Option<String>> {
        Ok(sqlx::query("SELECT secret FROM webhook WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("secret"))
            .transpose()?)
    }

    async fn update_webhook(
        &self,
        brand: BrandCode,
        id: i64,
        update: WebhookUpdate,
        now: Timestamp,
    ) -> Result<Option<Webhook>> {
        let Some(current) = self.webhook(brand, id).await? else {
            return Ok(None);
        };
        let types = match &update.event_types {
            Some(t) => Some(serde_json::to_string(t).map_err(|e| corrupt("event_types", e))?),
            None => None,
        };
        let enable = update.enabled == Some(true) && !current.enabled;
        {
            let _w = self.writer().await;
            sqlx::query(
                "UPDATE webhook SET url = COALESCE($1, url), description = COALESCE($2, description), \
                 event_types = COALESCE($3, event_types), secret = COALESCE($4, secret), \
                 enabled = COALESCE($5, enabled), \
                 disabled_reason = CASE WHEN $6 = 1 THEN NULL WHEN $5 = 0 AND enabled = 1 THEN 'disabled by a person' ELSE disabled_reason END, \
                 failures = CASE WHEN $6 = 1 THEN 0 ELSE failures END, \
                 failing_since_ms = CASE WHEN $6 = 1 THEN NULL ELSE failing_since_ms END, \
                 next_attempt_at_ms = CASE WHEN $6 = 1 THEN $7 ELSE next_attempt_at_ms END, \
                 updated_at_ms = $7 WHERE brand_code = $8 AND id = $9",
            )
            .bind(update.url)
            .bind(update.description)
            .bind(types)
            .bind(update.sealed_secret)
            .bind(update.enabled.map(i64::from))
            .bind(i64::from(enable))
            .bind(ms(now))
            .bind(brand.0 as i64)
            .bind(id)
            .execute(&self.pool)
            .await?;
        }
        self.webhook(brand, id).await
    }

    async fn delete_webhook(&self, brand: BrandCode, id: i64) -> Result<bool> {
        let _w = self.writer().await;
        let mut tx = self.begin_writing().await?;
        let gone = sqlx::query("DELETE FROM webhook WHERE brand_code = $1 AND id = $2")
            .bind(brand.0 as i64)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone > 0 {
            for table in ["webhook_delivery", "webhook_redelivery"] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE webhook_id = $1"
                )))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(gone > 0)
    }

    async fn claim_webhooks(
        &self,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Webhook>> {
        let due: Vec<i64> = sqlx::query(
            "SELECT w.id FROM webhook w WHERE w.enabled = 1 AND (w.lease_until_ms IS NULL OR w.lease_until_ms < $1) \
             AND ((w.next_attempt_at_ms <= $1 AND EXISTS (SELECT 1 FROM change_event e WHERE e.brand_code = w.brand_code AND e.id > w.cursor)) \
                  OR EXISTS (SELECT 1 FROM webhook_redelivery r WHERE r.webhook_id = w.id)) \
             ORDER BY w.next_attempt_at_ms LIMIT $2",
        )
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<std::result::Result<_, _>>()?;
        let mut taken = Vec::new();
        for id in due {
            let won = {
                let _w = self.writer().await;
                sqlx::query(
                    "UPDATE webhook SET lease_owner = $1, lease_until_ms = $2 WHERE id = $3 AND enabled = 1 \
                     AND (lease_until_ms IS NULL OR lease_until_ms < $4)",
                )
                .bind(owner.to_owned())
                .bind(ms(now) + lease_ms)
                .bind(id)
                .bind(ms(now))
                .execute(&self.pool)
                .await?
                .rows_affected()
                    > 0
            };
            if won {
                let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhook WHERE id = $1");
                if let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                {
                    taken.push(webhook_from(&row)?);
                }
            }
        }
        Ok(taken)
    }

    async fn release_webhook(&self, id: i64, owner: &str) -> Result<()> {
        let _w = self.writer().await;
        sqlx::query(
            "UPDATE webhook SET lease_owner = NULL, lease_until_ms = NULL WHERE id = $1 AND lease_owner = $2",
        )
        .bind(id)
        .bind(owner.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn release_webhook_leases(&self) -> Result<()> {
        let _w = self.writer().await;
        sqlx::query("UPDATE webhook SET lease_owner = NULL, lease_until_ms = NULL WHERE lease_owner IS NOT NULL")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn record_progress(
        &self,
        id: i64,
        owner: &str,
        progress: &RoundProgress,
        now: Timestamp,
    ) -> Result<bool> {
        if progress.is_empty() {
            return Ok(true);
        }
        let _w = self.writer().await;
        let mut tx = self.begin_writing().await?;
        let delivered = i64::from(!progress.delivered.is_empty());
        let held = sqlx::query(
            "UPDATE webhook SET cursor = CASE WHEN $1 > cursor THEN $1 ELSE cursor END, \
             failures = CASE WHEN $2 = 1 THEN 0 ELSE failures END, \
             failing_since_ms = CASE WHEN $2 = 1 THEN NULL ELSE failing_since_ms END, \
             updated_at_ms = $3 WHERE id = $4 AND lease_owner = $5",
        )
        .bind(progress.cursor.unwrap_or(0))
        .bind(delivered)
        .bind(ms(now))
        .bind(id)
        .bind(owner.to_owned())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if held == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(f) = &progress.failure {
            sqlx::query(
                "UPDATE webhook SET failures = failures + 1, failing_since_ms = COALESCE(failing_since_ms, $1), \
                 next_attempt_at_ms = $2, enabled = CASE WHEN $3 IS NULL THEN enabled ELSE 0 END, \
                 disabled_reason = COALESCE($3, disabled_reason) WHERE id = $4",
            )
            .bind(ms(f.attempt.at))
            .bind(ms(f.retry_at))
            .bind(f.disable.clone())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        for a in progress
            .delivered
            .iter()
            .chain(progress.failure.as_ref().map(|f| &f.attempt))
        {
            insert_attempt(&mut tx, id, a, false).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn record_redelivery(
        &self,
        id: i64,
        owner: &str,
        redelivery: i64,
        attempt: &AttemptRecord,
    ) -> Result<bool> {
        let _w = self.writer().await;
        let mut tx = self.begin_writing().await?;
        let held = sqlx::query("SELECT 1 AS one FROM webhook WHERE id = $1 AND lease_owner = $2")
            .bind(id)
            .bind(owner.to_owned())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !held {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM webhook_redelivery WHERE id = $1")
            .bind(redelivery)
            .execute(&mut *tx)
            .await?;
        insert_attempt(&mut tx, id, attempt, true).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn prune_webhook_deliveries(&self, before: Timestamp) -> Result<u64> {
        let _w = self.writer().await;
        Ok(sqlx::query("DELETE FROM webhook_delivery WHERE at_ms < $1")
            .bind(ms(before))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn webhook_deliveries(
        &self,
        webhook: i64,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        sqlx::query(
            "SELECT id, webhook_id, change_event_id, attempt, manual, status_code, error, response, duration_ms, at_ms \
             FROM webhook_delivery WHERE webhook_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(webhook)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(WebhookDelivery {
                id: r.try_get("id")?,
                webhook_id: r.try_get("webhook_id")?,
                event_id: r.try_get("change_event_id")?,
                attempt: r.try_get("attempt")?,
                manual: r.try_get::<i64, _>("manual")? != 0,
                status_code: r.try_get("status_code")?,
                error: r.try_get("error")?,
                response: r.try_get("response")?,
                duration_ms: r.try_get("duration_ms")?,
                at: ts(r.try_get("at_ms")?),
            })
        })
        .collect()
    }

    async fn request_redelivery(&self, webhook: i64, event: i64, now: Timestamp) -> Result<i64> {
        let _w = self.writer().await;
        Ok(sqlx::query(
            "INSERT INTO webhook_redelivery (webhook_id, change_event_id, requested_at_ms) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(webhook)
        .bind(event)
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await?
        .try_get("id")?)
    }

    async fn redeliveries(&self, webhook: i64, limit: u32) -> Result<Vec<Redelivery>> {
        sqlx::query(
            "SELECT id, change_event_id FROM webhook_redelivery WHERE webhook_id = $1 ORDER BY id LIMIT $2",
        )
        .bind(webhook)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(Redelivery {
                id: r.try_get("id")?,
                event_id: r.try_get("change_event_id")?,
            })
        })
        .collect()
    }
}
