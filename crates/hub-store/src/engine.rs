//! What the IYS engines need from the store: claiming outbox rows, settling them, mode switches,
//! pull cursors, the shared IYS token and sync status.

use std::future::Future;

use hub_core::{BrandCode, Change, Channel, Mode};
use iys::{ConsentDate, ConsentStatus, RecipientType, Source};
use jiff::Timestamp;
use serde::Serialize;

use crate::{Applied, Brand, OutboxState, Result};

/// An outbox row claimed for delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxItem {
    pub id: i64,
    pub event_id: i64,
    pub recipient: String,
    pub recipient_type: RecipientType,
    pub channel: Channel,
    pub status: ConsentStatus,
    pub consent_date: ConsentDate,
    pub source: Source,
    pub attempts: i64,
    pub deadline: Timestamp,
    pub request_id: Option<String>,
    pub sub_request_id: Option<String>,
    /// When the row went to IYS in a bulk request.
    pub submitted_at: Option<Timestamp>,
    /// Its position in that bulk request (IYS's result `index`).
    pub bulk_index: Option<i64>,
    /// When the change was recorded (the outbox row written with it).
    pub created_at: Timestamp,
}

/// How a delivery attempt ended for one row.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    /// IYS accepted the movement.
    Delivered {
        transaction_id: String,
        creation_date: Option<ConsentDate>,
    },
    /// IYS refused it for good (an H-code).
    Refused { code: String, message: String },
    /// Try again at `at` (a transient failure).
    Retry { error: String, at: Timestamp },
    /// Submitted in a bulk request at position `index`; poll its result from `poll_at`.
    Submitted {
        request_id: String,
        sub_request_id: String,
        index: i64,
        poll_at: Timestamp,
    },
    /// The bulk item is still queued at IYS; poll again at `poll_at`.
    StillQueued { poll_at: Timestamp },
    /// Not sent: the brand's dispatch is paused (an account-level failure). Back to pending from
    /// `until`, without counting an attempt.
    Paused { until: Timestamp },
}

/// Why and until when a brand's dispatch is paused.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DispatchPause {
    pub reason: String,
    pub since: Timestamp,
    pub until: Timestamp,
    /// Account-level failures in a row.
    pub failures: i64,
}

/// Which outbox rows a listing or a requeue is about. Every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxFilter {
    pub state: Option<OutboxState>,
    /// The H-code (or other reason) of the last failure.
    pub hcode: Option<String>,
    pub recipient: Option<String>,
    /// Rows created at or after this instant.
    pub from: Option<Timestamp>,
    /// Rows created before this instant.
    pub to: Option<Timestamp>,
    /// Only rows whose IYS deadline is less than a day from `now` (or past), unsent.
    pub at_risk: bool,
}

/// A page of the outbox listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutboxPage {
    pub rows: Vec<OutboxRow>,
    /// Where the next page starts (`after`), when this one was full; rows left out because they
    /// cannot be read count, so the pages move on past them.
    pub next: Option<i64>,
}

/// One outbox row as listed for people.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxRow {
    pub id: i64,
    pub event_id: i64,
    pub recipient: String,
    pub recipient_type: RecipientType,
    pub channel: Channel,
    pub status: ConsentStatus,
    pub consent_date: ConsentDate,
    pub state: OutboxState,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub deadline: Timestamp,
    pub created_at: Timestamp,
    pub request_id: Option<String>,
    /// For a superseded row: the newer row of the same consent that carries its state to IYS.
    pub superseded_by: Option<i64>,
}

/// What a requeue did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequeueReport {
    /// Rows the filter matched.
    pub matched: u64,
    /// Rows queued again for IYS.
    pub requeued: u64,
    /// Rows left alone: a later change of the same consent carries the current state.
    pub overtaken: u64,
    pub dry_run: bool,
}

/// Figures of the sync status page and metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncFigures {
    pub outbox: Vec<(String, i64)>,
    pub oldest_pending_deadline: Option<Timestamp>,
    /// Pending or held changes whose IYS deadline is less than a day away (or past).
    pub at_risk: i64,
    /// IYS refusals by H-code in the last 24 hours.
    pub errors_last_24h: Vec<(String, i64)>,
    pub cursors: Vec<CursorRow>,
    /// Set while the brand's dispatch is paused by an account-level failure.
    pub paused: Option<DispatchPause>,
    /// Movements from IYS set aside for a person (open ones).
    pub quarantined: i64,
}

impl SyncFigures {
    /// The changes-feed cursors the brand's pulls read in `mode`: IYS's always, the provider's
    /// (`HS`) in sync mode only. Not the backfill's positions, which share the cursor table, nor
    /// an `HS` cursor left from an earlier sync mode, which nothing moves any more: counted as
    /// pulls they would look stale for ever, or a recent one would hide a failing pull.
    pub fn pulls(&self, mode: Mode) -> impl Iterator<Item = &CursorRow> {
        use iys::wire::ChangeSource;
        self.cursors.iter().filter(move |c| {
            c.source == ChangeSource::Iys.as_str()
                || (mode == Mode::Sync && c.source == ChangeSource::Hs.as_str())
        })
    }
}

/// A movement from IYS the hub could not take, kept for a person.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuarantineRow {
    pub id: i64,
    pub source: String,
    pub reason: String,
    /// The movement as IYS sent it.
    pub movement: serde_json::Value,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CursorRow {
    pub source: String,
    pub cursor: Option<String>,
    pub updated_at: Timestamp,
    pub last_success: Option<Timestamp>,
}

pub trait EngineStore: Send + Sync {
    /// Claims up to `limit` pending rows due by `now`, closest IYS deadline first, at most the
    /// oldest unsettled row per consent (so a consent's changes reach IYS in order), leasing
    /// them to `owner` until `now + lease`. On PostgreSQL rows are claimed with `SKIP LOCKED`, so
    /// several instances share the work and no row is claimed twice.
    fn claim_pending(
        &self,
        brand: BrandCode,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<OutboxItem>>> + Send;
    /// Claims bulk-submitted rows whose result is due.
    fn claim_awaiting(
        &self,
        brand: BrandCode,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<OutboxItem>>> + Send;
    /// Records how deliveries ended, updating rows, events and current states in one transaction.
    /// Only rows still leased to `owner` are settled: a row whose lease ran out and was claimed
    /// by another instance belongs to that instance now.
    fn settle(
        &self,
        brand: BrandCode,
        owner: &str,
        settlements: Vec<(OutboxItem, Settlement)>,
        now: Timestamp,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Switches a brand's mode, records it, and re-evaluates pending and held rows, in one transaction.
    fn switch_mode(
        &self,
        brand: BrandCode,
        mode: Mode,
        actor: &str,
    ) -> impl Future<Output = Result<Option<Brand>>> + Send;
    /// What switching `brand` to `to` would do now: the held changes it would release to IYS
    /// (to integrator), or the waiting ONAYs for recipients IYS does not know that it would hold
    /// (to sync). Read without locks: a preview for a person to confirm, not a promise.
    fn mode_switch_preview(
        &self,
        brand: BrandCode,
        to: Mode,
    ) -> impl Future<Output = Result<crate::ModePreview>> + Send;
    /// Applies pulled movements and advances the cursor in the same transaction.
    fn apply_pull(
        &self,
        brand: &Brand,
        changes: Vec<Change>,
        source: &str,
        cursor: &str,
    ) -> impl Future<Output = Result<Vec<Applied>>> + Send;
    fn cursor(
        &self,
        brand: BrandCode,
        source: &str,
    ) -> impl Future<Output = Result<Option<String>>> + Send;
    /// Notes a pull that found nothing new (keeps the cursor's age honest).
    fn touch_cursor(
        &self,
        brand: BrandCode,
        source: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    fn sync_figures(
        &self,
        brand: BrandCode,
        now: Timestamp,
    ) -> impl Future<Output = Result<SyncFigures>> + Send;
    /// Recipients the hub knows on an IYS channel, in order, after `after`.
    fn known_recipients(
        &self,
        brand: BrandCode,
        channel: Channel,
        recipient_type: RecipientType,
        after: &str,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Recipients with an ONAY held back because IYS was not known to have them.
    fn held_recipients(
        &self,
        brand: BrandCode,
        channel: Channel,
        recipient_type: RecipientType,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Notes that IYS has these consents; in sync mode their held changes are released.
    /// Returns how many outbox rows were released.
    fn mark_known(
        &self,
        brand: BrandCode,
        channel: Channel,
        recipient_type: RecipientType,
        recipients: &[String],
    ) -> impl Future<Output = Result<u64>> + Send;
    /// Stores a cursor without applying changes (backfill progress).
    fn set_cursor(
        &self,
        brand: BrandCode,
        source: &str,
        cursor: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The brand's dispatch pause, if any (expired pauses included: `until` tells).
    fn dispatch_pause(
        &self,
        brand: BrandCode,
    ) -> impl Future<Output = Result<Option<DispatchPause>>> + Send;
    /// Pauses the brand's dispatch after an account-level failure; the pause doubles with each
    /// failure in a row, from `base_ms` up to `max_ms`. Returns the pause.
    fn pause_dispatch(
        &self,
        brand: BrandCode,
        reason: &str,
        now: Timestamp,
        base_ms: i64,
        max_ms: i64,
    ) -> impl Future<Output = Result<DispatchPause>> + Send;
    /// Lifts the pause (IYS accepted a request again).
    fn resume_dispatch(&self, brand: BrandCode) -> impl Future<Output = Result<()>> + Send;
    /// Outbox rows matching `filter`, by id, after `after`, at most `limit`. A row that cannot
    /// be read (a value written by hand) is left out and named in the log, so one such row does
    /// not hide the others; the page's cursor still moves past it.
    fn outbox_rows(
        &self,
        brand: BrandCode,
        filter: &OutboxFilter,
        now: Timestamp,
        after: i64,
        limit: i64,
    ) -> impl Future<Output = Result<OutboxPage>> + Send;
    /// Queues failed (or, in integrator mode, held) rows again, unless a later change of the same
    /// consent overtook them; recorded in the audit log. `dry_run` only counts.
    fn requeue(
        &self,
        brand: BrandCode,
        filter: &OutboxFilter,
        dry_run: bool,
        actor: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<RequeueReport>> + Send;
    /// Whether this instance should read the brand's changes feed now: true for at most one
    /// caller per `every_ms`, across instances (the time is kept in the database).
    fn claim_pull(
        &self,
        brand: BrandCode,
        now: Timestamp,
        every_ms: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Sets movements aside: (the movement as received, why).
    fn quarantine(
        &self,
        brand: BrandCode,
        source: &str,
        items: &[(serde_json::Value, String)],
        now: Timestamp,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Open quarantined movements, newest first.
    fn quarantined(
        &self,
        brand: BrandCode,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<QuarantineRow>>> + Send;
    fn load_token(&self, key: &str) -> impl Future<Output = Result<Option<String>>> + Send;
    fn save_token(&self, key: &str, state: &str) -> impl Future<Output = Result<()>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulls_are_the_feeds_the_mode_reads_not_backfill_positions() {
        let cursor = |source: &str| CursorRow {
            source: source.to_owned(),
            cursor: None,
            updated_at: Timestamp::UNIX_EPOCH,
            last_success: None,
        };
        let f = SyncFigures {
            outbox: Vec::new(),
            oldest_pending_deadline: None,
            at_risk: 0,
            errors_last_24h: Vec::new(),
            cursors: ["HS", "IYS", "backfill:MESAJ:BIREYSEL"]
                .into_iter()
                .map(cursor)
                .collect(),
            paused: None,
            quarantined: 0,
        };
        let sources = |mode| f.pulls(mode).map(|c| c.source.as_str()).collect::<Vec<_>>();
        assert_eq!(sources(Mode::Sync), ["HS", "IYS"]);
        assert_eq!(sources(Mode::Integrator), ["IYS"]);
    }
}
