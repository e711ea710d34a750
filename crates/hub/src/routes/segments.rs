//! Segments (saved audiences: count, members) and the campaign filter.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use hub_core::CategoryKind;
use hub_store::{Scope, SegmentDefinition, StoreError};
use jiff::Timestamp;

use crate::api::brand_for;
use crate::audiences::{CampaignFilter, Format, count_members, run_filter, stream_members};
use crate::auth::Caller;
use crate::dto::error::ErrorResponse;
use crate::dto::params::BrandCodePath;
use crate::dto::segments::{
    CheckStreamQuery, MembersQuery, SegmentCount, SegmentInfo, SegmentInput, SegmentList,
    SegmentPath,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path, Query};
use crate::routes::checks::{category_kind, channel_param, policy_param, recipient_type_param};
use crate::routes::imports::streamed;
use crate::routes::listing::audit;
use crate::{HubDb, HubState};

fn segment_id(text: &str) -> ApiResult<i64> {
    text.parse::<i64>().map_err(|_| {
        ApiError::bad_request("invalid_value", "segmentId must be a number")
            .field("segmentId")
            .value(text)
    })
}

/// The rules serde cannot say; answers the definition's category kind.
async fn checked<S: HubDb>(
    hub: &HubState<S>,
    brand: hub_core::BrandCode,
    input: &SegmentInput,
) -> ApiResult<Option<CategoryKind>> {
    let refuse = |field: &str, rule: &str, value: String| {
        ApiError::unprocessable("invalid_value", rule.to_owned())
            .field(field)
            .value(value)
    };
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(refuse(
            "name",
            "name must be 1–200 characters without control characters",
            input.name.clone(),
        ));
    }
    if let Some(d) = &input.description
        && (d.chars().count() > 500 || d.chars().any(char::is_control))
    {
        return Err(refuse(
            "description",
            "description must be up to 500 characters without control characters",
            d.clone(),
        ));
    }
    let d = &input.definition;
    if d.attributes.len() > 10 {
        return Err(refuse(
            "definition.attributes",
            "at most 10 attributes",
            d.attributes.len().to_string(),
        ));
    }
    for (k, v) in &d.attributes {
        let ok_key = !k.is_empty()
            && k.len() <= 64
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !ok_key {
            return Err(refuse(
                "definition.attributes",
                "attribute names must be 1–64 letters, digits, `_`, `-` or `.`",
                k.clone(),
            ));
        }
        if v.len() > 256 {
            return Err(refuse(
                &format!("definition.attributes.{k}"),
                "attribute values must be up to 256 bytes",
                v.clone(),
            ));
        }
    }
    for (i, s) in d.sources.iter().enumerate() {
        if s.is_empty() || s.len() > 64 {
            return Err(refuse(
                &format!("definition.sources[{i}]"),
                "sources must be 1–64 characters",
                s.clone(),
            ));
        }
    }
    if let (Some(f), Some(t)) = (d.consent_date_from, d.consent_date_to)
        && f > t
    {
        return Err(refuse(
            "definition.consentDateFrom",
            "consentDateFrom must not be after consentDateTo",
            f.to_string(),
        ));
    }
    if let (Some(f), Some(t)) = (d.changed_from, d.changed_to)
        && f >= t
    {
        return Err(refuse(
            "definition.changedFrom",
            "changedFrom must be before changedTo",
            f.to_string(),
        ));
    }
    match &d.category {
        Some(c) => Ok(Some(
            category_kind(hub, brand, c, "definition.category").await?,
        )),
        None => Ok(None),
    }
}

fn conflict(e: StoreError, name: &str) -> ApiError {
    match e {
        StoreError::Conflict(_) => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("a segment named {name:?} exists already"),
        )
        .field("name")
        .value(name),
        other => other.into(),
    }
}

/// Save a segment
///
/// Scope: write. A named audience: consents by channel, status, IYS state, source, recipient
/// type, consentDate and change-date ranges, category and profile attributes. A segment for
/// sending (`sendable`, the default) never holds anyone a message may not go to now: the
/// send-time check's rules apply to every member when it is read (strict policy by default),
/// so a citizen's RET in IYS takes a recipient out at once.
#[utoipa::path(
    post,
    path = "/api/v1/brands/{brandCode}/segments",
    tag = "audiences",
    operation_id = "createSegment",
    params(BrandCodePath),
    security(("apiKey" = ["write"])),
    request_body(content = SegmentInput, examples(
        ("sms" = (summary = "Who may get a campaign SMS", value = json!({"name": "sms-kampanya", "definition": {"channels": ["MESAJ"], "category": "kampanya"}}))),
        ("optouts" = (summary = "Opt-outs made in IYS in March (for analysis)", value = json!({"name": "mart-ret", "definition": {"status": "RET", "sources": ["IYS_MOBIL", "IYS_WEB", "IYS_KISAMESAJ"], "changedFrom": "2026-03-01T00:00:00Z", "changedTo": "2026-04-01T00:00:00Z", "sendable": false}})))
    )),
    responses(
        (status = 201, description = "Saved.", body = SegmentInfo),
        (status = 409, description = "The name is taken.", body = ErrorResponse),
        (status = 422, description = "A bad field, named in the error.", body = ErrorResponse),
    )
)]
pub async fn create_segment<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
    body: JsonBody<SegmentInput>,
) -> ApiResult<(StatusCode, Json<SegmentInfo>)> {
    let brand = brand_for(&hub, &caller, &code, Scope::Write).await?;
    let input = body.parse()?;
    let segment = save_segment(&hub, brand.brand_code, &input, caller.name()).await?;
    Ok((StatusCode::CREATED, Json(segment.into())))
}

/// Checks and saves a new segment of `brand`, recorded in the audit log as `actor`'s. Shared by
/// the API and the console.
pub async fn save_segment<S: HubDb>(
    hub: &HubState<S>,
    brand: hub_core::BrandCode,
    input: &SegmentInput,
    actor: &str,
) -> ApiResult<hub_store::Segment> {
    checked(hub, brand, input).await?;
    let name = input.name.trim();
    let segment = hub
        .store
        .create_segment(
            brand,
            name,
            input.description.as_deref(),
            &input.definition,
            Timestamp::now(),
        )
        .await
        .map_err(|e| conflict(e, name))?;
    let detail = serde_json::json!({"id": segment.id, "name": segment.name});
    if let Err(e) =
        hub_store::Store::audit(&*hub.store, Some(brand), actor, "segment_created", detail).await
    {
        tracing::warn!(error = %e, "could not record a segment's creation in the audit log");
    }
    Ok(segment)
}

/// List the brand's segments
///
/// Scope: read.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/segments",
    tag = "audiences",
    operation_id = "listSegments",
    params(BrandCodePath),
    security(("apiKey" = ["read"])),
    responses((status = 200, description = "The segments.", body = SegmentList))
)]
pub async fn list_segments<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Json<SegmentList>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let segments = hub.store.segments(brand.brand_code).await?;
    Ok(Json(SegmentList {
        segments: segments.into_iter().map(Into::into).collect(),
    }))
}

async fn found<S: HubDb>(
    hub: &HubState<S>,
    caller: &Caller,
    code: &str,
    id: &str,
    scope: Scope,
) -> ApiResult<(hub_store::Brand, hub_store::Segment)> {
    let brand = brand_for(hub, caller, code, scope).await?;
    let id = segment_id(id)?;
    let segment = hub
        .store
        .segment(brand.brand_code, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("segment {id} not found")).field("segmentId"))?;
    Ok((brand, segment))
}

/// Read a segment
///
/// Scope: read.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/segments/{segmentId}",
    tag = "audiences",
    operation_id = "getSegment",
    params(SegmentPath),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "The segment.", body = SegmentInfo),
        (status = 404, description = "No such segment.", body = ErrorResponse),
    )
)]
pub async fn get_segment<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, id)): Path<(String, String)>,
) -> ApiResult<Json<SegmentInfo>> {
    let (_, segment) = found(&hub, &caller, &code, &id, Scope::Read).await?;
    Ok(Json(segment.into()))
}

/// Replace a segment
///
/// Scope: write. Its name, description and definition, all at once.
#[utoipa::path(
    put,
    path = "/api/v1/brands/{brandCode}/segments/{segmentId}",
    tag = "audiences",
    operation_id = "replaceSegment",
    params(SegmentPath),
    security(("apiKey" = ["write"])),
    request_body(content = SegmentInput),
    responses(
        (status = 200, description = "The segment as it is now.", body = SegmentInfo),
        (status = 404, description = "No such segment.", body = ErrorResponse),
        (status = 409, description = "The name is taken.", body = ErrorResponse),
        (status = 422, description = "A bad field, named in the error.", body = ErrorResponse),
    )
)]
pub async fn replace_segment<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, id)): Path<(String, String)>,
    body: JsonBody<SegmentInput>,
) -> ApiResult<Json<SegmentInfo>> {
    let (brand, segment) = found(&hub, &caller, &code, &id, Scope::Write).await?;
    let input = body.parse()?;
    checked(&hub, brand.brand_code, &input).await?;
    let name = input.name.trim();
    let segment = hub
        .store
        .update_segment(
            brand.brand_code,
            segment.id,
            name,
            input.description.as_deref(),
            &input.definition,
            Timestamp::now(),
        )
        .await
        .map_err(|e| conflict(e, name))?
        .ok_or_else(|| ApiError::not_found(format!("segment {id} not found")).field("segmentId"))?;
    let detail = serde_json::json!({"id": segment.id, "name": segment.name});
    audit(
        &hub,
        Some(brand.brand_code),
        &caller,
        "segment_updated",
        detail,
    )
    .await;
    Ok(Json(segment.into()))
}

/// Delete a segment
///
/// Scope: write.
#[utoipa::path(
    delete,
    path = "/api/v1/brands/{brandCode}/segments/{segmentId}",
    tag = "audiences",
    operation_id = "deleteSegment",
    params(SegmentPath),
    security(("apiKey" = ["write"])),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such segment.", body = ErrorResponse),
    )
)]
pub async fn delete_segment<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (brand, segment) = found(&hub, &caller, &code, &id, Scope::Write).await?;
    hub.store
        .delete_segment(brand.brand_code, segment.id)
        .await?;
    let detail = serde_json::json!({"id": segment.id, "name": segment.name});
    audit(
        &hub,
        Some(brand.brand_code),
        &caller,
        "segment_deleted",
        detail,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The kind of a saved definition's category; a category deleted since counts as marketing
/// (the stricter reading: its refusals still keep people out).
pub async fn saved_kind<S: HubDb>(
    hub: &HubState<S>,
    brand: hub_core::BrandCode,
    d: &SegmentDefinition,
) -> ApiResult<Option<CategoryKind>> {
    match &d.category {
        None => Ok(None),
        Some(c) => Ok(Some(
            category_kind(hub, brand, c, "definition.category")
                .await
                .unwrap_or(CategoryKind::Marketing),
        )),
    }
}

/// Count a segment
///
/// Scope: read. How many consents are in it now (a recipient counts once per channel).
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/segments/{segmentId}/count",
    tag = "audiences",
    operation_id = "countSegment",
    params(SegmentPath),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "The count.", body = SegmentCount),
        (status = 404, description = "No such segment.", body = ErrorResponse),
    )
)]
pub async fn count_segment<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, id)): Path<(String, String)>,
) -> ApiResult<Json<SegmentCount>> {
    let (brand, segment) = found(&hub, &caller, &code, &id, Scope::Read).await?;
    let kind = saved_kind(&hub, brand.brand_code, &segment.definition).await?;
    let counted_at = Timestamp::now();
    let count = count_members(&*hub.store, brand.brand_code, &segment.definition, kind).await?;
    Ok(Json(SegmentCount {
        segment_id: segment.id,
        count,
        counted_at,
    }))
}

fn format_param(field: &str, value: Option<&str>, default: Format) -> ApiResult<Format> {
    match value {
        None => Ok(default),
        Some("csv") => Ok(Format::Csv),
        Some("ndjson") => Ok(Format::Ndjson),
        Some(other) => Err(ApiError::unprocessable(
            "invalid_value",
            format!("{field} must be csv or ndjson"),
        )
        .field(field)
        .value(other)),
    }
}

/// A segment's members
///
/// Scope: read. Streamed as CSV (default) or NDJSON, in recipient order: `recipient`,
/// `recipientType`, `channel`, `status`, `iysState`, `source`, `consentDate`, `updatedAt`.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/segments/{segmentId}/members",
    tag = "audiences",
    operation_id = "segmentMembers",
    params(SegmentPath, MembersQuery),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "The members, streamed.", content_type = "text/csv", body = String),
        (status = 404, description = "No such segment.", body = ErrorResponse),
        (status = 422, description = "A bad parameter, named in field.", body = ErrorResponse),
    )
)]
pub async fn segment_members<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, id)): Path<(String, String)>,
    query: Query<MembersQuery>,
) -> ApiResult<Response> {
    let (brand, segment) = found(&hub, &caller, &code, &id, Scope::Read).await?;
    let q = query.parse()?;
    let format = format_param("format", q.format.as_deref(), Format::Csv)?;
    let kind = saved_kind(&hub, brand.brand_code, &segment.definition).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let store = hub.store.clone();
    let b = brand.brand_code;
    let definition = segment.definition.clone();
    tokio::spawn(async move {
        stream_members(&*store, b, &definition, kind, format, tx).await;
    });
    Ok(streamed(
        rx,
        format.content_type(),
        &format!("segment-{}.{}", segment.id, format.extension()),
    ))
}

/// Filter a campaign list
///
/// Scope: read. The body is the list of recipients, streamed (tens of millions are fine): one a
/// line, or a CSV whose first column is the recipient, or NDJSON. The answer streams back the
/// recipients a message on `channel` (and `category`) may go to now, in the list's order, as
/// the hub stores them; its last line is the summary: how many were read, allowed, and denied
/// by reason (`{"summary": …}` in NDJSON; `# summary {…}` in CSV). The same rules as `/check`
/// (strict policy by default), and a profile's refusal of the category counts for its
/// addresses.
#[utoipa::path(
    post,
    path = "/api/v1/brands/{brandCode}/check/stream",
    tag = "audiences",
    operation_id = "checkStream",
    params(BrandCodePath, CheckStreamQuery),
    security(("apiKey" = ["read"])),
    request_body(content = String, content_type = "text/csv", description = "The recipients: one a line (a CSV's first column), or NDJSON."),
    responses(
        (status = 200, description = "The allowed recipients, then the summary.", content_type = "application/x-ndjson", body = String),
        (status = 422, description = "A bad parameter, named in field.", body = ErrorResponse),
    )
)]
pub async fn check_stream<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
    query: Query<CheckStreamQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let q = query.parse()?;
    let channel_text = q.channel.as_deref().ok_or_else(|| {
        ApiError::unprocessable("missing_field", "channel is required").field("channel")
    })?;
    let channel = channel_param(channel_text)?;
    let policy = policy_param(q.policy.as_deref())?;
    let recipient_type = recipient_type_param(q.recipient_type.as_deref())?;
    let category = match q.category.as_deref() {
        None => None,
        Some(c) => Some((
            c.to_owned(),
            category_kind(&hub, brand.brand_code, c, "category").await?,
        )),
    };
    let ndjson_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("ndjson"));
    let default_input = if ndjson_body {
        Format::Ndjson
    } else {
        Format::Csv
    };
    let input = format_param("input", q.input.as_deref(), default_input)?;
    let output = format_param("format", q.format.as_deref(), Format::Ndjson)?;
    let filter = CampaignFilter {
        brand: brand.brand_code,
        channel,
        recipient_type,
        category,
        policy,
        input,
        output,
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(run_filter(hub.clone(), filter, body, tx));
    Ok(streamed(
        rx,
        output.content_type(),
        &format!("allowed-{}.{}", brand.brand_code, output.extension()),
    ))
}
