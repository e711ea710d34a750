//! The outbox: the changes on their way to IYS (failed, held, at risk), and requeueing them.

use axum::Json;
use axum::extract::State;
use hub_store::{OutboxState, Scope};
use jiff::Timestamp;

use crate::api::brand_for;
use crate::auth::Caller;
use crate::dto::error::ErrorResponse;
use crate::dto::params::BrandCodePath;
use crate::dto::sync::{OutboxList, OutboxQuery, OutboxRow, RequeueReport, RequeueRequest};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path, Query};
use crate::input::lookup_form;
use crate::{HubDb, HubState};

/// The outbox filter of a listing's query or a requeue's body; every field narrows.
fn outbox_filter(get: impl Fn(&str) -> Option<String>) -> ApiResult<hub_store::OutboxFilter> {
    let instant = |field: &'static str| -> ApiResult<Option<Timestamp>> {
        get(field)
            .map(|s| {
                s.parse::<Timestamp>().map_err(|_| {
                    ApiError::unprocessable(
                        "invalid_value",
                        format!("{field} must be an RFC 3339 instant, e.g. 2026-11-29T10:00:00Z"),
                    )
                    .field(field)
                    .value(s)
                })
            })
            .transpose()
    };
    let state = get("state")
        .map(|s| {
            s.parse::<OutboxState>().map_err(|e| {
                ApiError::unprocessable("invalid_value", e.to_string())
                    .field("state")
                    .value(s)
            })
        })
        .transpose()?;
    let at_risk = match get("atRisk").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(
                ApiError::unprocessable("invalid_value", "atRisk must be true or false")
                    .field("atRisk")
                    .value(other),
            );
        }
    };
    Ok(hub_store::OutboxFilter {
        state,
        hcode: get("hcode").filter(|s| !s.is_empty()),
        recipient: get("recipient").map(|r| lookup_form(&r)),
        from: instant("from")?,
        to: instant("to")?,
        at_risk,
    })
}

/// Changes on their way to IYS, failed, held or at risk
///
/// Scope: read. Outbox rows oldest first, filtered, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/outbox",
    tag = "sync",
    operation_id = "listOutbox",
    params(BrandCodePath, OutboxQuery),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "A page of rows.", body = OutboxList, examples(
            ("failed" = (summary = "A failed row", value = json!({"items": [{"id": 41, "eventId": 97, "recipient": "+905321234567", "recipientType": "BIREYSEL", "channel": "MESAJ", "status": "ONAY", "consentDate": "2026-11-20 10:00:00", "state": "failed", "attempts": 1, "lastError": "H467", "deadline": "2026-11-25T07:00:00Z", "createdAt": "2026-11-28T09:00:00Z", "requestId": null, "supersededBy": null}], "nextCursor": null})))
        )),
        (status = 422, description = "A bad filter or an unknown query parameter, named in field.", body = ErrorResponse, examples(
            ("badState" = (summary = "Unknown state", value = json!({"error": {"code": "invalid_value", "message": "\"lost\" is not a valid state: expected pending, awaiting_result, held, done, failed or superseded", "field": "state", "value": "lost"}}))),
            ("badLimit" = (summary = "limit out of range", value = json!({"error": {"code": "invalid_value", "message": "limit must be a number in 1–1000", "field": "limit", "value": "0"}}))),
            ("unknownParameter" = (summary = "Unknown parameter", value = json!({"error": {"code": "invalid_value", "message": "unknown query parameter; allowed: state, hcode, recipient, from, to, atRisk, cursor, limit", "field": "page"}})))
        )),
    )
)]
pub async fn get_outbox<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
    query: Query<OutboxQuery>,
) -> ApiResult<Json<OutboxList>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let q = query.parse()?;
    let filter = outbox_filter(|k| match k {
        "state" => q.state.clone(),
        "hcode" => q.hcode.clone(),
        "recipient" => q.recipient.clone(),
        "from" => q.from.clone(),
        "to" => q.to.clone(),
        "atRisk" => q.at_risk.clone(),
        _ => None,
    })?;
    let number = |field: &'static str,
                  given: &Option<String>,
                  default: i64,
                  range: std::ops::RangeInclusive<i64>| {
        given.as_ref().map_or(Ok(default), |s| {
            s.parse::<i64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    ApiError::unprocessable(
                        "invalid_value",
                        format!(
                            "{field} must be a number in {}–{}",
                            range.start(),
                            range.end()
                        ),
                    )
                    .field(field)
                    .value(s.as_str())
                })
        })
    };
    let after = number("cursor", &q.cursor, 0, 0..=i64::MAX)?;
    let limit = number("limit", &q.limit, 100, 1..=1000)?;
    let page = hub
        .store
        .outbox_rows(brand.brand_code, &filter, Timestamp::now(), after, limit)
        .await?;
    Ok(Json(OutboxList {
        items: page.rows.into_iter().map(OutboxRow::from).collect(),
        next_cursor: page.next.map(|id| id.to_string()),
    }))
}

/// Send failed (or held) changes to IYS again
///
/// Scope: admin. Queues the matching failed rows again (held rows too in integrator mode; sync
/// mode never creates IYS records), each only while it still carries its consent's current
/// state. Recorded in the audit log. With dryRun, only counts.
#[utoipa::path(
    post,
    path = "/api/v1/brands/{brandCode}/outbox/requeue",
    tag = "sync",
    operation_id = "requeueOutbox",
    params(BrandCodePath),
    security(("apiKey" = ["admin"])),
    request_body(content = RequeueRequest, examples(
        ("h467" = (summary = "Count the rows IYS refused as late", value = json!({"hcode": "H467", "dryRun": true})))
    )),
    responses(
        (status = 200, description = "What was (or would be) requeued.", body = RequeueReport, examples(
            ("dry" = (summary = "A dry run", value = json!({"matched": 3, "requeued": 2, "overtaken": 1, "dryRun": true})))
        )),
        (status = 422, description = "A bad filter, named in field.", body = ErrorResponse, examples(
            ("notRequeueable" = (summary = "A state that is not failed or held", value = json!({"error": {"code": "invalid_value", "message": "only failed or held rows can be requeued", "field": "state", "value": "done"}}))),
            ("wrongType" = (summary = "A field of the wrong type", value = json!({"error": {"code": "invalid_value", "message": "dryRun has the wrong type", "field": "dryRun", "value": "yes"}}))),
            ("unknownField" = (summary = "Unknown field", value = json!({"error": {"code": "invalid_body", "message": "unknown field; allowed: state, hcode, recipient, from, to, atRisk, dryRun", "field": "all"}})))
        )),
    )
)]
pub async fn post_requeue<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
    body: JsonBody<RequeueRequest>,
) -> ApiResult<Json<RequeueReport>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Admin).await?;
    let r = body.parse()?;
    let filter = outbox_filter(|k| match k {
        "state" => r.state.clone(),
        "hcode" => r.hcode.clone(),
        "recipient" => r.recipient.clone(),
        "from" => r.from.clone(),
        "to" => r.to.clone(),
        "atRisk" => r.at_risk.map(|b| b.to_string()),
        _ => None,
    })?;
    if let Some(state) = filter.state
        && !matches!(state, OutboxState::Failed | OutboxState::Held)
    {
        return Err(ApiError::unprocessable(
            "invalid_value",
            "only failed or held rows can be requeued",
        )
        .field("state")
        .value(state.as_str()));
    }
    if filter.state == Some(OutboxState::Held) && brand.mode == hub_core::Mode::Sync {
        return Err(ApiError::unprocessable(
            "invalid_value",
            "sync mode never creates IYS records: held ONAYs go when IYS is known to have the recipient (run a backfill) or after a switch to integrator mode",
        )
        .field("state")
        .value("held"));
    }
    let report = hub
        .store
        .requeue(
            brand.brand_code,
            &filter,
            r.dry_run.unwrap_or(false),
            caller.name(),
            Timestamp::now(),
        )
        .await?;
    Ok(Json(report.into()))
}
