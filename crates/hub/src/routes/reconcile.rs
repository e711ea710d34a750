//! The daily reconciliation with IYS's movement file, as people see it: each day's result, and
//! the figures `/sync` and `/metrics` show.

use axum::Json;
use axum::extract::State;
use hub_core::BrandCode;
use hub_store::{DayStatus, ReconcileFigures, Scope};
use iys::ConsentDate;
use jiff::Timestamp;
use jiff::civil::Date;

use crate::api::brand_for;
use crate::auth::Caller;
use crate::dto::error::ErrorResponse;
use crate::dto::params::BrandCodePath;
use crate::dto::reconcile::{
    ReconciliationDay, ReconciliationList, ReconciliationQuery, ReconciliationSummary,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::metrics::Gauge;
use crate::{HubDb, HubState};

/// IYS serves the movement files of the last 7 days.
const IYS_DAYS: i64 = 7;
/// Days a listing covers when `from` is not given.
const DEFAULT_DAYS: i64 = 30;
/// Most days one listing may cover.
const MAX_DAYS: i64 = 366;

fn today() -> Date {
    ConsentDate::from_timestamp(Timestamp::now()).civil().date()
}

fn back(date: Date, days: i64) -> Date {
    date.checked_sub(jiff::Span::new().days(days))
        .unwrap_or(date)
}

fn date_param(given: Option<&String>, field: &'static str) -> ApiResult<Option<Date>> {
    given
        .map(|s| {
            let shaped = s.len() == 10 && s.as_bytes().get(4) == Some(&b'-');
            shaped
                .then(|| s.parse::<Date>().ok())
                .flatten()
                .ok_or_else(|| {
                    ApiError::unprocessable(
                        "invalid_value",
                        format!("{field} must be a day, YYYY-MM-DD (Istanbul)"),
                    )
                    .field(field)
                    .value(s.as_str())
                })
        })
        .transpose()
}

/// Each day's reconciliation with IYS's movement file
///
/// Scope: read. The daily reconciler (mutabakat) downloads IYS's movement file of each of the
/// last 7 days once the day is over, verifies it against IYS's SHA-384 (a file that does not
/// match is refused and nothing is acted on), compares it with the ledger on (transactionId,
/// recipient, recipientType, type, status, consentDate, source), applies IYS's movements the hub
/// lacks (origin `reconcile`), queues the hub's deliveries IYS has no record of again, lists the
/// rest for a person, and confirms the day to IYS only when both sides then agree. One result
/// per day, newest first (by default the last 30 days); days never reconciled are absent. See
/// docs/reconciliation.md.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/reconciliation",
    tag = "sync",
    operation_id = "listReconciliation",
    params(BrandCodePath, ReconciliationQuery),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "The days.", body = ReconciliationList, examples(
            ("days" = (summary = "An agreed day", value = json!({"brandCode": 600123, "from": "2026-10-30", "to": "2026-11-28", "days": [{"brandCode": 600123, "date": "2026-11-28", "status": "agreed", "hash": "5d0c3d6c6e6b1f0a8f5d7b3e9c2a1f4e6d8b0a2c4e6f8a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9", "iysRows": 12, "hubRows": 12, "matched": 12, "missingInHub": 0, "missingInIys": 0, "mismatched": 0, "unreadable": 0, "applied": 0, "requeued": 0, "remaining": 0, "needsPerson": 0, "examples": [], "error": null, "attempts": 1, "nextAt": null, "agreedAt": "2026-11-29T01:10:00Z", "updatedAt": "2026-11-29T01:10:00Z"}]})))
        )),
        (status = 422, description = "A bad `from`/`to` (not YYYY-MM-DD, `from` after `to`, over 366 days) or an unknown query parameter, named in field.", body = ErrorResponse, examples(
            ("badDay" = (summary = "Not a day", value = json!({"error": {"code": "invalid_value", "message": "from must be a day, YYYY-MM-DD (Istanbul)", "field": "from", "value": "28.11.2026"}}))),
            ("unknownParameter" = (summary = "Unknown parameter", value = json!({"error": {"code": "invalid_value", "message": "unknown query parameter; allowed: from, to", "field": "day"}})))
        )),
    )
)]
pub async fn get_reconciliation<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
    query: Query<ReconciliationQuery>,
) -> ApiResult<Json<ReconciliationList>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let q = query.parse()?;
    let to = date_param(q.to.as_ref(), "to")?.unwrap_or_else(today);
    let from = date_param(q.from.as_ref(), "from")?.unwrap_or_else(|| back(to, DEFAULT_DAYS - 1));
    if from > to {
        return Err(
            ApiError::unprocessable("invalid_value", "from must not be after to")
                .field("from")
                .value(from.to_string()),
        );
    }
    if back(to, MAX_DAYS - 1) > from {
        return Err(ApiError::unprocessable(
            "invalid_value",
            format!("one listing covers at most {MAX_DAYS} days"),
        )
        .field("from")
        .value(from.to_string()));
    }
    let days = hub.store.reconcile_days(brand.brand_code, from, to).await?;
    Ok(Json(ReconciliationList {
        brand_code: brand.brand_code,
        from,
        to,
        days: days.into_iter().map(ReconciliationDay::from).collect(),
    }))
}

/// The figures of the days IYS still serves.
async fn figures<S: HubDb>(hub: &HubState<S>, brand: BrandCode) -> ApiResult<ReconcileFigures> {
    Ok(hub
        .store
        .reconcile_figures(brand, back(today(), IYS_DAYS))
        .await?)
}

/// The reconciliation part of `GET …/sync`.
pub(crate) async fn sync_summary<S: HubDb>(
    hub: &HubState<S>,
    brand: BrandCode,
) -> ApiResult<ReconciliationSummary> {
    Ok(figures(hub, brand).await?.into())
}

/// The reconciliation gauges of `/metrics` for one brand: the last agreed day (as the Unix time
/// of its start in Istanbul), days with drift, and days by status, over IYS's 7 days.
pub(crate) async fn gauges<S: HubDb>(hub: &HubState<S>, brand: BrandCode) -> Vec<Gauge> {
    let Ok(f) = figures(hub, brand).await else {
        return Vec::new();
    };
    let label = || vec![("brand", brand.to_string())];
    let mut out = vec![Gauge {
        name: "iyshub_reconcile_days_with_drift",
        labels: label(),
        value: f.days_with_drift as f64,
    }];
    if let Some(d) = f.last_agreed_day {
        let start = ConsentDate::from_civil(d.to_datetime(jiff::civil::Time::midnight()));
        out.push(Gauge {
            name: "iyshub_reconcile_last_agreed_day_timestamp_seconds",
            labels: label(),
            value: start.to_timestamp().as_second() as f64,
        });
    }
    // `consistent` is a dry run's answer, never stored.
    for status in DayStatus::ALL
        .into_iter()
        .filter(|s| *s != DayStatus::Consistent)
    {
        let n = f
            .days
            .iter()
            .find(|(s, _)| s == status.as_str())
            .map_or(0, |(_, n)| *n);
        let mut labels = label();
        labels.push(("status", status.as_str().to_owned()));
        out.push(Gauge {
            name: "iyshub_reconcile_days",
            labels,
            value: n as f64,
        });
    }
    out
}
