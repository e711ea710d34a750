//! Listings: a brand's consents by filter and its audit log, a page at a time. Pages follow the
//! store's key order from a cursor, so a page costs the same however deep it is and a listing
//! neither skips nor repeats rows while others are added.

use axum::Json;
use axum::extract::State;
use hub_core::{BrandCode, Channel, ConsentKey, IysState};
use hub_store::{ConsentFilter, Scope};
use iys::{ConsentStatus, RecipientType, Source};

use crate::api::brand_for;
use crate::auth::Caller;
use crate::dto::consents::ChannelState;
use crate::dto::error::ErrorResponse;
use crate::dto::listing::{
    AuditEntry, AuditPage, ConsentListQuery, ConsentPage, ListedConsent, NewestFirstQuery,
};
use crate::dto::params::BrandCodePath;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::{HubDb, HubState};

/// `limit`: 1–1000, 100 when absent.
pub(crate) fn page_size(limit: Option<&str>) -> ApiResult<u32> {
    match limit {
        None => Ok(100),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::unprocessable("invalid_value", "limit must be 1–1000")
                    .field("limit")
                    .value(s)
            }),
    }
}

/// A query parameter read with `FromStr`, or 422 naming it.
pub(crate) fn param<T: std::str::FromStr>(
    field: &str,
    value: Option<&str>,
    rule: &str,
) -> ApiResult<Option<T>> {
    value
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError::unprocessable("invalid_value", format!("{field} must be {rule}"))
                    .field(field)
                    .value(v)
            })
        })
        .transpose()
}

/// Where a newest-first page by id starts (before the cursor's id) and how long it is.
pub(crate) fn newest_first(q: &NewestFirstQuery) -> ApiResult<(Option<i64>, u32)> {
    let limit = page_size(q.limit.as_deref())?;
    let before = param::<u64>(
        "cursor",
        q.cursor.as_deref(),
        "the nextCursor of a previous page",
    )?
    .map(|c| i64::try_from(c).unwrap_or(i64::MAX));
    Ok((before, limit))
}

/// The next page's cursor: the last id of a full page; none after a short one.
pub(crate) fn next_id(len: usize, limit: u32, last: Option<i64>) -> Option<String> {
    (len == limit as usize)
        .then(|| last.map(|id| id.to_string()))
        .flatten()
}

/// The filters of a consent listing or export, as given in the query.
pub(crate) struct FilterText<'a> {
    pub channel: Option<&'a str>,
    pub recipient_type: Option<&'a str>,
    pub status: Option<&'a str>,
    pub iys_state: Option<&'a str>,
    pub source: Option<&'a str>,
    pub changed_since: Option<&'a str>,
}

/// The filters read, or 422 naming the first that is not valid.
pub(crate) fn consent_filter(q: &FilterText<'_>) -> ApiResult<ConsentFilter> {
    Ok(ConsentFilter {
        channel: param::<Channel>("channel", q.channel, "a channel such as MESAJ")?,
        recipient_type: param::<RecipientType>(
            "recipientType",
            q.recipient_type,
            "BIREYSEL or TACIR",
        )?,
        status: param::<ConsentStatus>("status", q.status, "ONAY or RET")?,
        iys_state: param::<IysState>(
            "iysState",
            q.iys_state,
            "in_iys, pending, held, rejected, not_in_iys or local_only",
        )?,
        source: param::<Source>("source", q.source, "a source such as HS_WEB")?,
        changed_since: param::<jiff::Timestamp>(
            "changedSince",
            q.changed_since,
            "an RFC 3339 instant such as 2026-11-01T00:00:00Z",
        )?,
    })
}

/// A consent cursor is the last key of a page, hex-encoded JSON: opaque to clients, checked when
/// it comes back.
fn encode_cursor(key: &ConsentKey) -> String {
    let parts = [
        key.recipient.as_str(),
        key.recipient_type.as_str(),
        key.channel.as_str(),
    ];
    hex::encode(serde_json::to_vec(&parts).unwrap_or_default())
}

fn decode_cursor(brand: BrandCode, cursor: &str) -> ApiResult<ConsentKey> {
    let invalid = || {
        ApiError::unprocessable(
            "invalid_value",
            "cursor must be the nextCursor of a previous page",
        )
        .field("cursor")
        .value(cursor)
    };
    let bytes = hex::decode(cursor).map_err(|_| invalid())?;
    let [recipient, recipient_type, channel]: [String; 3] =
        serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    Ok(ConsentKey {
        brand,
        recipient,
        recipient_type: recipient_type.parse().map_err(|_| invalid())?,
        channel: channel.parse().map_err(|_| invalid())?,
    })
}

/// List consents
///
/// Scope: read. The brand's consents on every channel, filtered, in key order (recipient,
/// recipient type, channel), `limit` at a time: pass the answer's `nextCursor` as `cursor` for
/// the next page. For exports of who may be contacted, incremental syncs (`changedSince`) and
/// audits of what is pending or refused in IYS.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/consents",
    tag = "consents",
    operation_id = "listConsents",
    params(BrandCodePath, ConsentListQuery),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "A page of consents.", body = ConsentPage),
        (status = 422, description = "A bad query parameter, named in field.", body = ErrorResponse),
    )
)]
pub async fn list_consents<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
    query: Query<ConsentListQuery>,
) -> ApiResult<Json<ConsentPage>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let q = query.parse()?;
    let limit = page_size(q.limit.as_deref())?;
    let filter = consent_filter(&FilterText {
        channel: q.channel.as_deref(),
        recipient_type: q.recipient_type.as_deref(),
        status: q.status.as_deref(),
        iys_state: q.iys_state.as_deref(),
        source: q.source.as_deref(),
        changed_since: q.changed_since.as_deref(),
    })?;
    let after = q
        .cursor
        .as_deref()
        .map(|c| decode_cursor(brand.brand_code, c))
        .transpose()?;
    let rows = hub
        .store
        .list_consents(brand.brand_code, &filter, after.as_ref(), limit)
        .await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| encode_cursor(&r.key)))
        .flatten();
    Ok(Json(ConsentPage {
        consents: rows
            .into_iter()
            .map(|r| ListedConsent {
                state: ChannelState::new(r.key.channel, r.key.recipient_type, &r.state),
                recipient: r.key.recipient,
            })
            .collect(),
        next_cursor,
    }))
}

/// The audit log
///
/// Scope: admin. Who did what to the brand and when, newest first: mode switches, IYS
/// connection and brand changes, API keys created, rotated and revoked, categories changed,
/// outbox requeues and reconciliation repairs. Pass the answer's `nextCursor` as `cursor` for
/// older entries.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/audit-log",
    tag = "brands",
    operation_id = "getAuditLog",
    params(BrandCodePath, NewestFirstQuery),
    security(("apiKey" = ["admin"])),
    responses(
        (status = 200, description = "A page of the audit log.", body = AuditPage),
        (status = 422, description = "A bad query parameter, named in field.", body = ErrorResponse),
    )
)]
pub async fn get_audit_log<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
    query: Query<NewestFirstQuery>,
) -> ApiResult<Json<AuditPage>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Admin).await?;
    let (before, limit) = newest_first(&query.parse()?)?;
    let entries = hub
        .store
        .audit_log(Some(brand.brand_code), before, limit)
        .await?;
    let next_cursor = next_id(entries.len(), limit, entries.last().map(|e| e.id));
    Ok(Json(AuditPage {
        entries: entries.into_iter().map(AuditEntry::from).collect(),
        next_cursor,
    }))
}

/// Records an administrative action in the audit log. The action is done already, so a failure
/// to record it is logged, not answered.
pub async fn audit<S: HubDb>(
    hub: &HubState<S>,
    brand: Option<BrandCode>,
    caller: &Caller,
    action: &str,
    detail: serde_json::Value,
) {
    if let Err(e) = hub.store.audit(brand, caller.name(), action, detail).await {
        tracing::warn!(error = %e, action, "could not record an action in the audit log");
    }
}
