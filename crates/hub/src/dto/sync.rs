//! The brand's side of IYS: sync status, IYS's push deliveries, the backfill and the outbox.

use std::collections::BTreeMap;

use hub_core::{BrandCode, Channel, Mode};
use iys::{ConsentDate, ConsentStatus, RecipientType};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::dto::reconcile::ReconciliationSummary;
use crate::dto::schema;
use crate::error::ApiError;
use crate::extract::{BodyError, Misfit, RequestBody};

/// How the brand and IYS stand.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(examples(json!({
    "brandCode": 600123, "mode": "integrator",
    "pulls": [{"source": "IYS", "cursor": "1795919366_68efcf07b0506414dc15d76e3528761b4978ba7a9420c57f49eff3b71e4c5ddf", "lastSuccess": "2026-11-29T02:29:31.988Z", "ageSeconds": 0, "stale": false}],
    "outbox": {"done": 1}, "oldestPendingDeadline": null, "atRisk": 0, "errorsLast24h": {},
    "connection": {"state": "connected", "baseUrl": "https://api.sandbox.iys.org.tr", "username": "ornek-api", "from": "brand"},
    "token": {"accessExpires": "2026-11-29T04:29:21Z", "refreshExpires": "2026-11-29T06:29:21Z", "haltUntil": null},
    "dispatchPaused": null,
    "reconciliation": {"lastAgreedDay": "2026-11-28", "daysWithDrift": 0, "days": {"agreed": 6, "empty": 1}},
    "quarantined": 0
})))]
pub struct SyncStatus {
    #[schema(value_type = schema::BrandCodeValue)]
    pub brand_code: BrandCode,
    #[schema(value_type = schema::Mode)]
    pub mode: Mode,
    /// The changes-feed cursors (IYS's and the provider's).
    pub pulls: Vec<PullCursor>,
    /// Outbox rows by state: pending, held, awaiting_result, done, failed, superseded.
    pub outbox: BTreeMap<String, i64>,
    /// The IYS deadline of the oldest change not yet in IYS.
    #[schema(value_type = Option<schema::Timestamp>, required = true)]
    pub oldest_pending_deadline: Option<Timestamp>,
    /// Pending or held changes whose IYS deadline is less than a day away or past.
    pub at_risk: i64,
    /// IYS refusals by H-code in the last 24 hours.
    pub errors_last_24h: BTreeMap<String, i64>,
    pub connection: Connection,
    /// The state of the IYS token the brand's API user shares (never the token itself); null
    /// before the first login.
    #[schema(required = true)]
    pub token: Option<TokenState>,
    /// Set while the brand's dispatch is paused by an account-level failure (credentials, rights
    /// H353, subscription H52x, quota H525, an answer that is not IYS's). Changes stay pending
    /// meanwhile; over quota only new ONAYs wait, RETs still go.
    #[schema(required = true)]
    pub dispatch_paused: Option<DispatchPause>,
    pub reconciliation: ReconciliationSummary,
    /// Movements from IYS set aside for a person: unreadable, or with a consentDate in the future
    /// or before 2015-05-01. The cursor moved on past them.
    pub quarantined: i64,
}

/// Where a changes feed stands.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullCursor {
    #[schema(examples("IYS", "HS"))]
    pub source: String,
    #[schema(required = true)]
    pub cursor: Option<String>,
    #[schema(value_type = Option<schema::Timestamp>, required = true)]
    pub last_success: Option<Timestamp>,
    /// Seconds since the last successful pull.
    #[schema(required = true)]
    pub age_seconds: Option<i64>,
    /// True when the last successful pull is over 6 days old (IYS keeps 7), or there was none.
    pub stale: bool,
}

/// Whether the brand's engines can reach IYS: the connection they use (the brand's own, or the
/// instance's), or why not.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Connection {
    Connected {
        #[serde(rename = "baseUrl")]
        base_url: String,
        username: String,
        from: ConnectionFrom,
    },
    NotConnected {
        reason: String,
    },
}

/// Whose connection the engines use.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionFrom {
    Brand,
    Instance,
}

/// The shared IYS token's state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenState {
    #[schema(required = true)]
    pub access_expires: Option<String>,
    #[schema(required = true)]
    pub refresh_expires: Option<String>,
    /// After H084: no token request before this time.
    #[schema(required = true)]
    pub halt_until: Option<String>,
}

impl TokenState {
    /// The state from the stored token (the IYS client's JSON); `None` when it is unreadable.
    pub fn from_stored(stored: &str) -> Option<TokenState> {
        let t: Value = serde_json::from_str(stored).ok()?;
        let text = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(TokenState {
            access_expires: text("access_expires"),
            refresh_expires: text("refresh_expires"),
            halt_until: text("halt_until"),
        })
    }
}

/// Why and until when a brand's dispatch is paused.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DispatchPause {
    pub reason: String,
    #[schema(value_type = schema::Timestamp)]
    pub since: Timestamp,
    #[schema(value_type = schema::Timestamp)]
    pub until: Timestamp,
    /// Account-level failures in a row.
    pub failures: i64,
}

impl From<hub_store::DispatchPause> for DispatchPause {
    fn from(p: hub_store::DispatchPause) -> Self {
        DispatchPause {
            reason: p.reason,
            since: p.since,
            until: p.until,
            failures: p.failures,
        }
    }
}

/// IYS's push delivery: a list of movements, each read on its own (one the hub cannot take is
/// quarantined for a person; one for another brand, such as IYS's test payload, is ignored).
#[derive(Debug, Deserialize, ToSchema)]
pub struct PushDelivery {
    #[schema(value_type = Vec<PushMovement>)]
    pub list: Vec<Value>,
}

impl RequestBody for PushDelivery {
    fn refuse(_: BodyError) -> ApiError {
        ApiError::unprocessable(
            "invalid_body",
            "not an IYS push payload: expected {\"list\": [...]}",
        )
        .field("list")
    }
}

/// A movement as IYS pushes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // A schema: movements are read by `hub_core::screen_movements`.
pub struct PushMovement {
    pub iys_code: u64,
    pub brand_code: u64,
    #[schema(value_type = Option<schema::ConsentDate>)]
    pub consent_date: Option<String>,
    #[schema(value_type = schema::ConsentDate)]
    pub creation_date: String,
    #[schema(value_type = schema::Source)]
    pub source: String,
    pub recipient: String,
    #[schema(value_type = schema::RecipientType)]
    pub recipient_type: String,
    #[schema(value_type = schema::ConsentStatus)]
    pub status: String,
    /// MESAJ, ARAMA or EPOSTA.
    #[serde(rename = "type")]
    pub consent_type: String,
    pub transaction_id: String,
    /// On `IYS_WEB_YENI` movements.
    pub citizen_name: Option<String>,
}

/// What a push delivery did.
#[derive(Debug, Serialize, ToSchema)]
pub struct PushReceipt {
    /// Movements in the delivery.
    pub received: usize,
    /// Movements recorded (new ones; a movement already recorded counts once).
    pub applied: usize,
    /// Movements set aside for a person.
    pub quarantined: usize,
}

/// A backfill's progress.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackfillStatus {
    /// Whether a backfill of the brand runs on this instance.
    pub running: bool,
    /// The last report (null before the first run on this instance).
    #[schema(required = true)]
    pub report: Option<BackfillReport>,
    /// The stored position per channel and recipient type (`GET` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions: Option<Vec<BackfillPosition>>,
}

/// A backfill's report (progress while it runs, then the result, or its error).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackfillReport {
    /// Known recipients asked about with multi-status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onay_in_iys: Option<u64>,
    /// Held recipients asked about one by one (single status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_checked: Option<u64>,
    /// Held changes released for sending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<u64>,
    /// True when every known recipient was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete: Option<bool>,
    /// Why the run stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A backfill's stored position in one channel and recipient type.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackfillPosition {
    #[schema(examples("MESAJ:BIREYSEL"))]
    pub channel: String,
    pub done: bool,
    #[schema(value_type = schema::Timestamp)]
    pub updated_at: Timestamp,
}

/// The query of an outbox listing; every filter narrows. Unknown parameters are refused.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// Only rows in this state.
    #[param(value_type = Option<schema::OutboxRowState>)]
    pub state: Option<String>,
    /// Only rows whose last error is this H-code.
    #[param(example = "H467")]
    pub hcode: Option<String>,
    /// Only this recipient (normalised like the rest of the API).
    pub recipient: Option<String>,
    /// Rows created at or after this instant.
    #[param(value_type = Option<schema::Timestamp>)]
    pub from: Option<String>,
    /// Rows created before this instant.
    #[param(value_type = Option<schema::Timestamp>)]
    pub to: Option<String>,
    /// Only unsent rows whose IYS deadline is less than a day away or past.
    #[param(value_type = Option<bool>)]
    pub at_risk: Option<String>,
    /// nextCursor of the previous page.
    #[param(pattern = "^[0-9]+$")]
    pub cursor: Option<String>,
    /// Rows per page, 1–1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<String>,
}

impl RequestBody for OutboxQuery {
    fn refuse(e: BodyError) -> ApiError {
        ApiError::unprocessable(
            "invalid_value",
            "unknown query parameter; allowed: state, hcode, recipient, from, to, atRisk, cursor, limit",
        )
        .field(e.name())
    }
}

/// One outbox row.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxRow {
    pub id: i64,
    /// The history event this row carries.
    pub event_id: i64,
    pub recipient: String,
    #[schema(value_type = schema::RecipientType)]
    pub recipient_type: RecipientType,
    #[schema(value_type = schema::Channel)]
    pub channel: Channel,
    #[schema(value_type = schema::ConsentStatus)]
    pub status: ConsentStatus,
    #[schema(value_type = schema::ConsentDate)]
    pub consent_date: ConsentDate,
    #[schema(value_type = schema::OutboxRowState)]
    pub state: hub_store::OutboxState,
    pub attempts: i64,
    /// The H-code of IYS's refusal, or the last transient error.
    #[schema(required = true)]
    pub last_error: Option<String>,
    #[schema(value_type = schema::Timestamp)]
    pub deadline: Timestamp,
    #[schema(value_type = schema::Timestamp)]
    pub created_at: Timestamp,
    /// IYS's bulk requestId, when sent in bulk.
    #[schema(required = true)]
    pub request_id: Option<String>,
    /// For a superseded row: the newer row of the same consent that carries its state to IYS.
    #[schema(required = true)]
    pub superseded_by: Option<i64>,
}

impl From<hub_store::OutboxRow> for OutboxRow {
    fn from(r: hub_store::OutboxRow) -> Self {
        OutboxRow {
            id: r.id,
            event_id: r.event_id,
            recipient: r.recipient,
            recipient_type: r.recipient_type,
            channel: r.channel,
            status: r.status,
            consent_date: r.consent_date,
            state: r.state,
            attempts: r.attempts,
            last_error: r.last_error,
            deadline: r.deadline,
            created_at: r.created_at,
            request_id: r.request_id,
            superseded_by: r.superseded_by,
        }
    }
}

/// A page of outbox rows, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxList {
    pub items: Vec<OutboxRow>,
    /// Pass as cursor for the next page; null on the last page.
    #[schema(required = true, pattern = "^[0-9]+$")]
    pub next_cursor: Option<String>,
}

/// Which failed (or held) rows to queue for IYS again; every filter narrows.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequeueRequest {
    /// Default: failed rows, and in integrator mode held rows too.
    #[serde(default)]
    #[schema(value_type = Option<RequeueState>)]
    pub state: Option<String>,
    /// Only rows whose last error is this H-code (e.g. H467).
    #[serde(default)]
    #[schema(examples("H467"))]
    pub hcode: Option<String>,
    #[serde(default)]
    pub recipient: Option<String>,
    /// Rows created at or after this instant.
    #[serde(default)]
    #[schema(value_type = Option<schema::Timestamp>)]
    pub from: Option<String>,
    /// Rows created before this instant.
    #[serde(default)]
    #[schema(value_type = Option<schema::Timestamp>)]
    pub to: Option<String>,
    #[serde(default)]
    pub at_risk: Option<bool>,
    /// Only count what would be requeued.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

impl RequestBody for RequeueRequest {
    fn refuse(e: BodyError) -> ApiError {
        match e.kind {
            _ if e.field.is_empty() => e.invalid_body(),
            Misfit::UnknownField => ApiError::unprocessable(
                "invalid_body",
                "unknown field; allowed: state, hcode, recipient, from, to, atRisk, dryRun",
            )
            .field(e.name()),
            _ => {
                let mut err = ApiError::unprocessable(
                    "invalid_value",
                    format!("{} has the wrong type", e.name()),
                )
                .field(e.name());
                if let Some(v) = e.value {
                    err = err.value(v);
                }
                err
            }
        }
    }
}

/// The states a requeue takes.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // A schema: the state is parsed as an outbox state.
pub enum RequeueState {
    Failed,
    Held,
}

/// What a requeue did (or, dry, would do).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequeueReport {
    /// Rows the filter matched.
    pub matched: u64,
    /// Rows queued for IYS again (or that would be, when dry).
    pub requeued: u64,
    /// Rows left alone: a later change of the same consent carries its current state.
    pub overtaken: u64,
    pub dry_run: bool,
}

impl From<hub_store::RequeueReport> for RequeueReport {
    fn from(r: hub_store::RequeueReport) -> Self {
        RequeueReport {
            matched: r.matched,
            requeued: r.requeued,
            overtaken: r.overtaken,
            dry_run: r.dry_run,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_rows_and_requeue_reports_answer_as_the_store_writes_them() {
        let row = hub_store::OutboxRow {
            id: 7,
            event_id: 3,
            recipient: "+905321234567".into(),
            recipient_type: RecipientType::Bireysel,
            channel: Channel::Iys(iys::ConsentType::Mesaj),
            status: ConsentStatus::Onay,
            consent_date: ConsentDate::from_timestamp(Timestamp::UNIX_EPOCH),
            state: hub_store::OutboxState::Failed,
            attempts: 2,
            last_error: Some("H467".into()),
            deadline: Timestamp::UNIX_EPOCH,
            created_at: Timestamp::UNIX_EPOCH,
            request_id: None,
            superseded_by: Some(9),
        };
        crate::dto::same_json(&OutboxRow::from(row.clone()), &row);
        let report = hub_store::RequeueReport {
            matched: 3,
            requeued: 2,
            overtaken: 1,
            dry_run: true,
        };
        crate::dto::same_json(&RequeueReport::from(report.clone()), &report);
        let pause = hub_store::DispatchPause {
            reason: "H525".into(),
            since: Timestamp::UNIX_EPOCH,
            until: Timestamp::UNIX_EPOCH,
            failures: 1,
        };
        crate::dto::same_json(&DispatchPause::from(pause.clone()), &pause);
    }

    #[test]
    fn a_backfill_report_reads_what_the_engines_write() {
        for report in [
            serde_json::json!({"running": false, "report": null}),
            serde_json::json!({"running": true, "report": {"checked": 1, "onayInIys": 1, "singleChecked": 0, "released": 0, "complete": false}}),
            serde_json::json!({"running": false, "report": {"error": "no brand 600123"}}),
        ] {
            let status: BackfillStatus = serde_json::from_value(report.clone()).unwrap();
            assert_eq!(serde_json::to_value(status).unwrap(), report);
        }
    }
}
