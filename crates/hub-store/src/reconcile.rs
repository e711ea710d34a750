//! What the daily reconciler needs from the store: the hub's own record of one day of IYS's
//! movement file, the requeue of deliveries IYS has no record of, and each day's result (kept
//! per brand and day, so a restart resumes where it was and the API can show it).

use std::future::Future;

use hub_core::{BrandCode, Channel, IysState, Origin};
use iys::{ConsentDate, ConsentStatus, RecipientType};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::{corrupt, ms, parse, positional, ts};
use crate::state::{OutboxState, Sql};
use crate::{Result, SqlStore, StoreError};

/// Where a day stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(
    serialize_all = "snake_case",
    parse_err_ty = hub_core::InvalidValue,
    parse_err_fn = invalid_day_status
)]
pub enum DayStatus {
    /// Not reconciled yet (or the first run is under way).
    Pending,
    /// Both sides agree and the day was confirmed to IYS.
    Agreed,
    /// Neither side has a movement that day: nothing to confirm.
    Empty,
    /// Both sides agree; not confirmed (a dry run).
    Consistent,
    /// Differences remain after repair; tried again later.
    Drift,
    /// IYS's file does not match IYS's SHA-384: refused, nothing acted on; tried again later.
    HashMismatch,
    /// IYS has not published the day's file and hash yet; tried again later.
    NotReady,
    /// IYS could not be asked (or refused); tried again later.
    Error,
    /// IYS no longer serves the day (it keeps 7 days, H502).
    Expired,
}

impl DayStatus {
    pub const ALL: [DayStatus; 9] = [
        DayStatus::Pending,
        DayStatus::Agreed,
        DayStatus::Empty,
        DayStatus::Consistent,
        DayStatus::Drift,
        DayStatus::HashMismatch,
        DayStatus::NotReady,
        DayStatus::Error,
        DayStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Nothing more will happen to the day: it is not run again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DayStatus::Agreed | DayStatus::Empty | DayStatus::Expired
        )
    }
}

fn invalid_day_status(s: &str) -> hub_core::InvalidValue {
    hub_core::InvalidValue {
        field: "status",
        value: s.to_owned(),
        expected: "pending, agreed, empty, consistent, drift, hash_mismatch, not_ready, error or expired",
    }
}

/// Which side lacks a movement, or how the two disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// In IYS's file, not in the hub's ledger.
    MissingInHub,
    /// In the hub's ledger for that day (delivered, or recorded from IYS), not in IYS's file.
    MissingInIys,
    /// Both have a movement with this transactionId for this consent, with different contents
    /// (status, consentDate or source).
    Mismatch,
    /// A line of IYS's file the hub cannot read.
    Unreadable,
}

/// What the reconciler did (or, in a dry run, would do) about one difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftAction {
    /// Recorded through the ledger as IYS's movement (origin `reconcile`).
    Applied,
    /// The hub's delivery queued for IYS again.
    Requeued,
    /// Queued again earlier; not delivered yet.
    AwaitingRedelivery,
    /// Needs a person: see `reason`.
    NeedsPerson,
    WouldApply,
    WouldRequeue,
}

/// One difference, as shown to people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftItem {
    pub kind: DriftKind,
    pub action: DriftAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_type: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub consent_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// IYS's creationDate (from the file, or the one the hub recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<String>,
    /// The hub's history event, when the hub has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The result of one brand's day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DayResult {
    pub brand_code: BrandCode,
    pub date: Date,
    pub status: DayStatus,
    /// IYS's SHA-384 of the file, as verified.
    pub hash: Option<String>,
    /// Rows of IYS's file, and the hub's movements of that day, compared last.
    pub iys_rows: u64,
    pub hub_rows: u64,
    pub matched: u64,
    /// Differences the last run found, before repairing.
    pub missing_in_hub: u64,
    pub missing_in_iys: u64,
    pub mismatched: u64,
    pub unreadable: u64,
    /// Repairs made for this day, over every run.
    pub applied: u64,
    pub requeued: u64,
    /// Differences left after the last run's repairs, and of those the ones for a person.
    pub remaining: u64,
    pub needs_person: u64,
    /// The last run's differences (or, when it found none, the previous run's: what was repaired).
    pub examples: Vec<DriftItem>,
    pub error: Option<String>,
    pub attempts: u64,
    /// When the engines look at the day again (not for final days).
    pub next_at: Option<Timestamp>,
    pub agreed_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

impl DayResult {
    /// A day not reconciled yet.
    pub fn pending(brand_code: BrandCode, date: Date, now: Timestamp) -> DayResult {
        DayResult {
            brand_code,
            date,
            status: DayStatus::Pending,
            hash: None,
            iys_rows: 0,
            hub_rows: 0,
            matched: 0,
            missing_in_hub: 0,
            missing_in_iys: 0,
            mismatched: 0,
            unreadable: 0,
            applied: 0,
            requeued: 0,
            remaining: 0,
            needs_person: 0,
            examples: Vec::new(),
            error: None,
            attempts: 0,
            next_at: None,
            agreed_at: None,
            updated_at: now,
        }
    }
}

/// The hub's record of one day as reconciliation reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HubDay {
    /// In event order.
    pub movements: Vec<HubMovement>,
    /// Events of the day that cannot be read (a value outside its set, written by hand), in
    /// event order: the rest of the day is still compared.
    pub unreadable: Vec<UnreadableEvent>,
}

/// A history event with IYS's transactionId whose other columns cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnreadableEvent {
    pub event_id: i64,
    pub recipient: String,
    pub transaction_id: String,
    /// The column and the value that cannot be read.
    pub error: String,
}

/// One movement of the hub's record of IYS: a change recorded from IYS (pull, push, reconcile)
/// or a change the hub delivered, with IYS's transactionId.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HubMovement {
    pub event_id: i64,
    pub recipient: String,
    pub recipient_type: RecipientType,
    pub channel: Channel,
    pub status: ConsentStatus,
    pub consent_date: ConsentDate,
    pub source: String,
    pub origin: Origin,
    pub transaction_id: String,
    /// The hub's own delivery (else a movement recorded from IYS).
    pub delivered: bool,
    /// IYS's creationDate, when the hub knows it.
    pub creation_date: Option<ConsentDate>,
    /// The delivery's outbox row.
    pub outbox_state: Option<OutboxState>,
    pub outbox_error: Option<String>,
    /// Whether the event still carries its consent's current state.
    pub current: bool,
}

/// Reconciliation figures of the sync status page and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileFigures {
    /// The latest day agreed with IYS.
    pub last_agreed_day: Option<Date>,
    /// Days since `since` whose last run left drift (or refused IYS's file).
    pub days_with_drift: u64,
    /// Days since `since` by status.
    pub days: Vec<(String, i64)>,
}

pub trait ReconcileStore: Send + Sync {
    /// The hub's movements that belong to IYS's file of `date`: those whose IYS creationDate
    /// falls on that day, and those carrying one of `transaction_ids` (the file's); an event
    /// among them that cannot be read is answered apart, not as an error.
    fn hub_movements(
        &self,
        brand: BrandCode,
        date: Date,
        transaction_ids: &[String],
    ) -> impl Future<Output = Result<HubDay>> + Send;
    /// Queues the delivered changes of these events for IYS again, each only while its outbox
    /// row is `done` and it still carries its consent's current state; audited. Returns the
    /// events requeued.
    fn requeue_deliveries(
        &self,
        brand: BrandCode,
        date: Date,
        event_ids: &[i64],
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<i64>>> + Send;
    fn reconcile_day(
        &self,
        brand: BrandCode,
        date: Date,
    ) -> impl Future<Output = Result<Option<DayResult>>> + Send;
    /// Stored results from `from` to `to` (inclusive), newest first.
    fn reconcile_days(
        &self,
        brand: BrandCode,
        from: Date,
        to: Date,
    ) -> impl Future<Output = Result<Vec<DayResult>>> + Send;
    /// Takes the day for `owner` until `now + lease_ms` (creating its row as `pending`); false
    /// when another owner holds it.
    fn claim_reconcile_day(
        &self,
        brand: BrandCode,
        date: Date,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Stores a day's result and releases `owner`'s lease.
    fn save_reconcile_day(
        &self,
        result: &DayResult,
        owner: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    fn reconcile_figures(
        &self,
        brand: BrandCode,
        since: Date,
    ) -> impl Future<Output = Result<ReconcileFigures>> + Send;
}

fn day_bounds(date: Date) -> (String, String) {
    let next = date.tomorrow().unwrap_or(date);
    (format!("{date} 00:00:00"), format!("{next} 00:00:00"))
}

const MOVEMENT_COLUMNS: &str = "SELECT e.id, e.recipient, e.recipient_type, e.channel, e.status, e.consent_date, e.source, e.origin, \
     e.iys_transaction_id, e.delivered_transaction_id, e.iys_creation_date, \
     (SELECT o.state FROM outbox o WHERE o.brand_code = e.brand_code AND o.recipient = e.recipient AND o.recipient_type = e.recipient_type \
      AND o.channel = e.channel AND o.event_id = e.id ORDER BY o.id DESC LIMIT 1) AS outbox_state, \
     (SELECT o.last_error FROM outbox o WHERE o.brand_code = e.brand_code AND o.recipient = e.recipient AND o.recipient_type = e.recipient_type \
      AND o.channel = e.channel AND o.event_id = e.id ORDER BY o.id DESC LIMIT 1) AS outbox_error, \
     (SELECT COUNT(*) FROM consent c WHERE c.brand_code = e.brand_code AND c.recipient = e.recipient AND c.recipient_type = e.recipient_type \
      AND c.channel = e.channel AND c.last_event_id = e.id) AS current \
     FROM consent_event e WHERE e.brand_code = $1 AND e.category IS NULL";

/// A row of [`MOVEMENT_COLUMNS`] read.
enum Read {
    Movement(HubMovement),
    Unreadable(UnreadableEvent),
}

impl Read {
    fn event_id(&self) -> i64 {
        match self {
            Read::Movement(m) => m.event_id,
            Read::Unreadable(u) => u.event_id,
        }
    }
}

fn movement_from(r: &AnyRow) -> Result<Option<Read>> {
    let delivered: Option<String> = r.try_get("delivered_transaction_id")?;
    let from_iys: Option<String> = r.try_get("iys_transaction_id")?;
    let (transaction_id, is_delivery) = match (delivered, from_iys) {
        (Some(t), _) => (t, true),
        (None, Some(t)) => (t, false),
        (None, None) => return Ok(None),
    };
    let event_id: i64 = r.try_get("id")?;
    let recipient: String = r.try_get("recipient")?;
    let read = movement_parts(r, event_id, &recipient, &transaction_id, is_delivery);
    match read {
        Ok(m) => Ok(Some(Read::Movement(m))),
        Err(StoreError::Corrupt(error)) => Ok(Some(Read::Unreadable(UnreadableEvent {
            event_id,
            recipient,
            transaction_id,
            error,
        }))),
        Err(e) => Err(e),
    }
}

/// The rest of a movement's columns; a value outside its set is `Corrupt`.
fn movement_parts(
    r: &AnyRow,
    event_id: i64,
    recipient: &str,
    transaction_id: &str,
    is_delivery: bool,
) -> Result<HubMovement> {
    let creation: Option<String> = r.try_get("iys_creation_date")?;
    let outbox: Option<String> = r.try_get("outbox_state")?;
    Ok(HubMovement {
        event_id,
        recipient: recipient.to_owned(),
        recipient_type: parse(
            "event.recipient_type",
            &r.try_get::<String, _>("recipient_type")?,
        )?,
        channel: parse("event.channel", &r.try_get::<String, _>("channel")?)?,
        status: parse("event.status", &r.try_get::<String, _>("status")?)?,
        consent_date: parse(
            "event.consent_date",
            &r.try_get::<String, _>("consent_date")?,
        )?,
        source: r.try_get("source")?,
        origin: parse("event.origin", &r.try_get::<String, _>("origin")?)?,
        transaction_id: transaction_id.to_owned(),
        delivered: is_delivery,
        creation_date: creation
            .map(|c| parse::<ConsentDate>("event.iys_creation_date", &c))
            .transpose()?,
        outbox_state: outbox
            .map(|s| parse::<OutboxState>("outbox.state", &s))
            .transpose()?,
        outbox_error: r.try_get("outbox_error")?,
        current: r.try_get::<i64, _>("current")? > 0,
    })
}

fn result_from(r: &AnyRow) -> Result<DayResult> {
    let n = |c: &str| -> Result<u64> { Ok(r.try_get::<i64, _>(c)?.max(0) as u64) };
    let examples: Option<String> = r.try_get("examples")?;
    Ok(DayResult {
        brand_code: BrandCode(r.try_get::<i64, _>("brand_code")? as u64),
        date: parse(
            "reconcile_day.report_date",
            &r.try_get::<String, _>("report_date")?,
        )?,
        status: parse("reconcile_day.status", &r.try_get::<String, _>("status")?)?,
        hash: r.try_get("hash")?,
        iys_rows: n("iys_rows")?,
        hub_rows: n("hub_rows")?,
        matched: n("matched")?,
        missing_in_hub: n("missing_in_hub")?,
        missing_in_iys: n("missing_in_iys")?,
        mismatched: n("mismatched")?,
        unreadable: n("unreadable")?,
        applied: n("applied")?,
        requeued: n("requeued")?,
        remaining: n("remaining")?,
        needs_person: n("needs_person")?,
        examples: examples
            .map(|e| serde_json::from_str(&e).map_err(|x| corrupt("reconcile_day.examples", x)))
            .transpose()?
            .unwrap_or_default(),
        error: r.try_get("error")?,
        attempts: n("attempts")?,
        next_at: r.try_get::<Option<i64>, _>("next_at_ms")?.map(ts),
        agreed_at: r.try_get::<Option<i64>, _>("agreed_at_ms")?.map(ts),
        updated_at: ts(r.try_get("updated_at_ms")?),
    })
}

impl ReconcileStore for SqlStore {
    async fn hub_movements(
        &self,
        brand: BrandCode,
        date: Date,
        transaction_ids: &[String],
    ) -> Result<HubDay> {
        let b = brand.0 as i64;
        let (start, end) = day_bounds(date);
        let mut found = std::collections::BTreeMap::new();
        let by_day = format!(
            "{MOVEMENT_COLUMNS} AND e.iys_creation_date >= $2 AND e.iys_creation_date < $3 \
             AND (e.iys_transaction_id IS NOT NULL OR e.delivered_transaction_id IS NOT NULL)"
        );
        for r in sqlx::query(sqlx::AssertSqlSafe(positional(self.backend, by_day)))
            .bind(b)
            .bind(start)
            .bind(end)
            .fetch_all(&self.pool)
            .await?
        {
            if let Some(m) = movement_from(&r)? {
                found.insert(m.event_id(), m);
            }
        }
        let mut ids: Vec<&String> = transaction_ids.iter().collect();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(400) {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let list = list.join(", ");
            let sql = format!(
                "{MOVEMENT_COLUMNS} AND (e.iys_transaction_id IN ({list}) OR e.delivered_transaction_id IN ({list}))"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(positional(self.backend, sql))).bind(b);
            for t in chunk {
                q = q.bind((*t).clone());
            }
            for r in q.fetch_all(&self.pool).await? {
                if let Some(m) = movement_from(&r)? {
                    found.insert(m.event_id(), m);
                }
            }
        }
        let mut day = HubDay::default();
        for read in found.into_values() {
            match read {
                Read::Movement(m) => day.movements.push(m),
                Read::Unreadable(u) => {
                    tracing::error!(brand = %brand, event = u.event_id, recipient = %u.recipient, error = %u.error, "reconciliation: a history event cannot be read; its day is compared without it and not confirmed");
                    day.unreadable.push(u);
                }
            }
        }
        Ok(day)
    }

    async fn requeue_deliveries(
        &self,
        brand: BrandCode,
        date: Date,
        event_ids: &[i64],
        now: Timestamp,
    ) -> Result<Vec<i64>> {
        let _w = self.writer().await;
        let b = brand.0 as i64;
        let mut tx = self.begin_writing().await?;
        self.lock_brand(&mut tx, b).await?;
        let mut requeued = Vec::new();
        for &id in event_ids {
            // The event's consent key: outbox rows are found through it (outbox_key), not by
            // their event, which no index covers.
            let Some(key) = sqlx::query(
                "SELECT recipient, recipient_type, channel FROM consent_event WHERE brand_code = $1 AND id = $2",
            )
            .bind(b)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            else {
                continue;
            };
            // Only a delivery the hub still believes done, and only while it carries the
            // consent's current state: an overtaken change must not reach IYS after a later one.
            let r = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE outbox SET state = {}, attempts = 0, next_attempt_at_ms = $1, \
                 last_error = 'reconcile: IYS has no record of this delivery', lease_owner = NULL, lease_until_ms = NULL, \
                 request_id = NULL, sub_request_id = NULL, bulk_index = NULL, submitted_at_ms = NULL \
                 WHERE brand_code = $2 AND recipient = $3 AND recipient_type = $4 AND channel = $5 AND event_id = $6 AND state = {} \
                 AND EXISTS (SELECT 1 FROM consent c WHERE c.brand_code = outbox.brand_code AND c.recipient = outbox.recipient \
                 AND c.recipient_type = outbox.recipient_type AND c.channel = outbox.channel AND c.last_event_id = outbox.event_id)",
                OutboxState::Pending.sql(),
                OutboxState::Done.sql()
            )))
            .bind(ms(now))
            .bind(b)
            .bind(key.try_get::<String, _>("recipient")?)
            .bind(key.try_get::<String, _>("recipient_type")?)
            .bind(key.try_get::<String, _>("channel")?)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() == 0 {
                continue;
            }
            sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE consent SET iys_state = {}, iys_error = NULL WHERE brand_code = $1 AND last_event_id = $2", IysState::Pending.sql())))
                .bind(b)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            requeued.push(id);
        }
        if !requeued.is_empty() {
            let detail = serde_json::json!({"date": date, "events": requeued});
            sqlx::query("INSERT INTO audit_log (brand_code, at_ms, actor, action, detail) VALUES ($1, $2, $3, $4, $5)")
                .bind(b)
                .bind(ms(now))
                .bind("reconciler")
                .bind("reconcile_requeue")
                .bind(detail.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(requeued)
    }

    async fn reconcile_day(&self, brand: BrandCode, date: Date) -> Result<Option<DayResult>> {
        // A brand has one row per day.
        Ok(self
            .reconcile_days(brand, date, date)
            .await?
            .into_iter()
            .next())
    }

    async fn reconcile_days(
        &self,
        brand: BrandCode,
        from: Date,
        to: Date,
    ) -> Result<Vec<DayResult>> {
        sqlx::query("SELECT * FROM reconcile_day WHERE brand_code = $1 AND report_date >= $2 AND report_date <= $3 ORDER BY report_date DESC")
            .bind(brand.0 as i64)
            .bind(from.to_string())
            .bind(to.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(result_from)
            .collect()
    }

    async fn claim_reconcile_day(
        &self,
        brand: BrandCode,
        date: Date,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
    ) -> Result<bool> {
        let _w = self.writer().await;
        let b = brand.0 as i64;
        let mut tx = self.begin_writing().await?;
        sqlx::query("INSERT INTO reconcile_day (brand_code, report_date, status, updated_at_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (brand_code, report_date) DO NOTHING")
            .bind(b)
            .bind(date.to_string())
            .bind(DayStatus::Pending.as_str())
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        let claimed = sqlx::query(
            "UPDATE reconcile_day SET lease_owner = $1, lease_until_ms = $2 WHERE brand_code = $3 AND report_date = $4 \
             AND (lease_until_ms IS NULL OR lease_until_ms < $5 OR lease_owner = $1)",
        )
        .bind(owner.to_owned())
        .bind(ms(now).saturating_add(lease_ms))
        .bind(b)
        .bind(date.to_string())
        .bind(ms(now))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn save_reconcile_day(&self, d: &DayResult, owner: &str) -> Result<()> {
        let _w = self.writer().await;
        let examples = serde_json::to_string(&d.examples).map_err(|e| corrupt("examples", e))?;
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO reconcile_day (brand_code, report_date, status, hash, iys_rows, hub_rows, matched, missing_in_hub, missing_in_iys, mismatched, unreadable, \
             applied, requeued, remaining, needs_person, examples, error, attempts, next_at_ms, agreed_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21) \
             ON CONFLICT (brand_code, report_date) DO UPDATE SET status = excluded.status, hash = excluded.hash, iys_rows = excluded.iys_rows, \
             hub_rows = excluded.hub_rows, matched = excluded.matched, missing_in_hub = excluded.missing_in_hub, missing_in_iys = excluded.missing_in_iys, \
             mismatched = excluded.mismatched, unreadable = excluded.unreadable, applied = excluded.applied, requeued = excluded.requeued, \
             remaining = excluded.remaining, needs_person = excluded.needs_person, examples = excluded.examples, error = excluded.error, \
             attempts = excluded.attempts, next_at_ms = excluded.next_at_ms, agreed_at_ms = excluded.agreed_at_ms, updated_at_ms = excluded.updated_at_ms, \
             lease_owner = CASE WHEN reconcile_day.lease_owner = $22 THEN NULL ELSE reconcile_day.lease_owner END, \
             lease_until_ms = CASE WHEN reconcile_day.lease_owner = $22 THEN NULL ELSE reconcile_day.lease_until_ms END",
        )
        .bind(d.brand_code.0 as i64)
        .bind(d.date.to_string())
        .bind(d.status.as_str())
        .bind(d.hash.clone())
        .bind(as_i64(d.iys_rows))
        .bind(as_i64(d.hub_rows))
        .bind(as_i64(d.matched))
        .bind(as_i64(d.missing_in_hub))
        .bind(as_i64(d.missing_in_iys))
        .bind(as_i64(d.mismatched))
        .bind(as_i64(d.unreadable))
        .bind(as_i64(d.applied))
        .bind(as_i64(d.requeued))
        .bind(as_i64(d.remaining))
        .bind(as_i64(d.needs_person))
        .bind(examples)
        .bind(d.error.clone())
        .bind(as_i64(d.attempts))
        .bind(d.next_at.map(ms))
        .bind(d.agreed_at.map(ms))
        .bind(ms(d.updated_at))
        .bind(owner.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn reconcile_figures(&self, brand: BrandCode, since: Date) -> Result<ReconcileFigures> {
        let b = brand.0 as i64;
        let last_agreed: Option<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT MAX(report_date) AS d FROM reconcile_day WHERE brand_code = $1 AND status = {}",
            DayStatus::Agreed.sql()
        )))
        .bind(b)
        .fetch_one(&self.pool)
        .await?
        .try_get("d")?;
        let days = sqlx::query("SELECT status, COUNT(*) AS n FROM reconcile_day WHERE brand_code = $1 AND report_date >= $2 GROUP BY status ORDER BY status")
            .bind(b)
            .bind(since.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get::<String, _>("status")?, r.try_get::<i64, _>("n")?)))
            .collect::<Result<Vec<_>>>()?;
        let days_with_drift = days
            .iter()
            .filter(|(s, _)| {
                s == DayStatus::Drift.as_str() || s == DayStatus::HashMismatch.as_str()
            })
            .map(|(_, n)| (*n).max(0) as u64)
            .sum();
        Ok(ReconcileFigures {
            last_agreed_day: last_agreed
                .map(|d| parse::<Date>("reconcile_day.report_date", &d))
                .transpose()?,
            days_with_drift,
            days,
        })
    }
}
