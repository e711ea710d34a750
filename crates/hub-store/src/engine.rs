//! What the IYS engines need from the store: claiming outbox rows, settling them, mode switches,
//! pull cursors, the shared IYS token and sync status.

use std::future::Future;

use hub_core::{BrandCode, Change, Channel, Mode};
use iys::{ConsentDate, ConsentStatus, RecipientType, Source};
use jiff::Timestamp;
use serde::Serialize;

use crate::{Applied, Brand, Result};

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
    /// Submitted in a bulk request; poll its result from `poll_at`.
    Submitted {
        request_id: String,
        sub_request_id: String,
        poll_at: Timestamp,
    },
    /// The bulk item is still queued at IYS; poll again at `poll_at`.
    StillQueued { poll_at: Timestamp },
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
    fn settle(
        &self,
        brand: BrandCode,
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
    fn load_token(&self, key: &str) -> impl Future<Output = Result<Option<String>>> + Send;
    fn save_token(&self, key: &str, state: &str) -> impl Future<Output = Result<()>> + Send;
}
