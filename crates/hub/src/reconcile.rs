//! The daily reconciliation with IYS's movement file, as people see it: each day's result, and
//! the figures `/sync` and `/metrics` show.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use hub_core::BrandCode;
use hub_store::{DayStatus, ReconcileFigures, ReconcileStore, Scope};
use iys::ConsentDate;
use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::{Value, json};

use crate::HubState;
use crate::api::brand_for;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::Path;

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

fn date_param(q: &HashMap<String, String>, field: &'static str) -> ApiResult<Option<Date>> {
    q.get(field)
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

/// `GET /api/v1/brands/{brandCode}/reconciliation?from=&to=`: each reconciled day's result,
/// newest first (by default the last 30 days).
pub async fn get_reconciliation(
    State(hub): State<HubState>,
    caller: Caller,
    Path(code): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    if let Some(k) = q.keys().find(|k| !["from", "to"].contains(&k.as_str())) {
        return Err(ApiError::unprocessable(
            "invalid_value",
            "unknown query parameter; allowed: from, to",
        )
        .field(k.as_str()));
    }
    let to = date_param(&q, "to")?.unwrap_or_else(today);
    let from = date_param(&q, "from")?.unwrap_or_else(|| back(to, DEFAULT_DAYS - 1));
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
    Ok(Json(json!({
        "brandCode": brand.brand_code,
        "from": from,
        "to": to,
        "days": days,
    })))
}

/// The figures of the days IYS still serves.
async fn figures(hub: &HubState, brand: BrandCode) -> ApiResult<ReconcileFigures> {
    Ok(hub
        .store
        .reconcile_figures(brand, back(today(), IYS_DAYS))
        .await?)
}

/// The reconciliation part of `GET …/sync`.
pub(crate) async fn sync_summary(hub: &HubState, brand: BrandCode) -> ApiResult<Value> {
    let f = figures(hub, brand).await?;
    Ok(json!({
        "lastAgreedDay": f.last_agreed_day,
        "daysWithDrift": f.days_with_drift,
        "days": f.days.iter().map(|(s, n)| (s.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
    }))
}

/// The reconciliation gauges of `/metrics` for one brand: the last agreed day (as the Unix time
/// of its start in Istanbul), days with drift, and days by status, over IYS's 7 days.
pub(crate) async fn gauges(hub: &HubState, brand: BrandCode) -> Vec<(String, String, f64)> {
    let Ok(f) = figures(hub, brand).await else {
        return Vec::new();
    };
    let label = format!("brand=\"{brand}\"");
    let mut out = vec![(
        "iyshub_reconcile_days_with_drift".to_owned(),
        label.clone(),
        f.days_with_drift as f64,
    )];
    if let Some(d) = f.last_agreed_day {
        let start = ConsentDate::from_civil(d.to_datetime(jiff::civil::Time::midnight()));
        out.push((
            "iyshub_reconcile_last_agreed_day_timestamp_seconds".to_owned(),
            label.clone(),
            start.to_timestamp().as_second() as f64,
        ));
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
        out.push((
            "iyshub_reconcile_days".to_owned(),
            format!("{label},status=\"{}\"", status.as_str()),
            n as f64,
        ));
    }
    out
}
