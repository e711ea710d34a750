//! Analytics: a brand's consents now, and opt-ins and opt-outs per day.

use axum::Json;
use axum::extract::State;
use hub_store::Scope;
use jiff::civil::Date;

use crate::api::brand_for;
use crate::auth::Caller;
use crate::dto::error::ErrorResponse;
use crate::dto::events::{Stats, StatsCount, StatsDay, StatsQuery};
use crate::dto::params::BrandCodePath;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::routes::listing::param;
use crate::{HubDb, HubState};

/// The longest daily series one request may ask for.
const MAX_DAYS: i32 = 366;

/// Consent analytics
///
/// Scope: read. The brand's current consents counted by channel, status and IYS state, and its
/// opt-ins and opt-outs per Istanbul day, channel and origin (`iys_pull`: made in IYS, by the
/// citizen or the brand) from `from` to `to`. Read from counters kept with every write, so the
/// answer takes the same time at ten consents or ten million.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/stats",
    tag = "analytics",
    operation_id = "getStats",
    params(BrandCodePath, StatsQuery),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "The figures.", body = Stats),
        (status = 422, description = "A bad date or range, named in field.", body = ErrorResponse),
    )
)]
pub async fn get_stats<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
    query: Query<StatsQuery>,
) -> ApiResult<Json<Stats>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let q = query.parse()?;
    let today = iys::consent_date::ISTANBUL
        .to_datetime(jiff::Timestamp::now())
        .date();
    let to = param::<Date>("to", q.to.as_deref(), "a date YYYY-MM-DD")?.unwrap_or(today);
    let from = match param::<Date>("from", q.from.as_deref(), "a date YYYY-MM-DD")? {
        Some(f) => f,
        None => to.checked_sub(jiff::Span::new().days(29)).unwrap_or(to),
    };
    let days = (to - from).get_days();
    if days < 0 {
        return Err(
            ApiError::unprocessable("invalid_value", "from must not be after to")
                .field("from")
                .value(from.to_string()),
        );
    }
    if days >= MAX_DAYS {
        return Err(ApiError::unprocessable(
            "invalid_value",
            format!("at most {MAX_DAYS} days per request"),
        )
        .field("to")
        .value(to.to_string()));
    }
    let (from, to) = (from.to_string(), to.to_string());
    let current = hub.store.consent_tally(brand.brand_code).await?;
    let daily = hub.store.daily_counts(brand.brand_code, &from, &to).await?;
    Ok(Json(Stats {
        current: current
            .into_iter()
            .map(|t| StatsCount {
                channel: t.channel,
                status: t.status,
                iys_state: t.iys_state,
                count: t.count,
            })
            .collect(),
        from,
        to,
        daily: daily
            .into_iter()
            .map(|d| StatsDay {
                day: d.day,
                channel: d.channel,
                origin: d.origin,
                opt_ins: d.opt_ins,
                opt_outs: d.opt_outs,
            })
            .collect(),
    }))
}
