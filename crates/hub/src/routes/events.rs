//! Automation events by polling, and the webhooks that receive them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hub_events::{CloudEvents, EventType, WebhookSecret};
use hub_store::{NewWebhook, Scope, WebhookUpdate};
use jiff::Timestamp;

use crate::api::brand_for;
use crate::auth::Caller;
use crate::dto::error::ErrorResponse;
use crate::dto::events::{
    DeliveryPage, EventPage, EventsQuery, RedeliverInput, RedeliveryQueued, WebhookInfo,
    WebhookInput, WebhookList, WebhookPatch, WebhookPath,
};
use crate::dto::listing::NewestFirstQuery;
use crate::dto::params::BrandCodePath;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path, Query};
use crate::routes::listing::{audit, newest_first, next_id, page_size, param};
use crate::{HubDb, HubState};

/// Read the brand's events
///
/// Scope: read. The brand's state changes as CloudEvents, oldest first, from `after`: the same
/// events webhooks and NATS receive, for consumers that poll. A change is here once it is
/// stored; keep `nextAfter` and ask again.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/events",
    tag = "events",
    operation_id = "listEvents",
    params(BrandCodePath, EventsQuery),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "A page of events.", body = EventPage),
        (status = 422, description = "A bad parameter, named in field.", body = ErrorResponse),
    )
)]
pub async fn list_events<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
    query: Query<EventsQuery>,
) -> ApiResult<Json<EventPage>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let q = query.parse()?;
    let limit = page_size(q.limit.as_deref())?;
    let after = param::<u64>("after", q.after.as_deref(), "an event id (0 or more)")?
        .map_or(0, |a| i64::try_from(a).unwrap_or(i64::MAX));
    let events = hub
        .store
        .change_events(brand.brand_code, after, limit)
        .await?;
    let next_after = events.last().map_or(after, |e| e.id);
    Ok(Json(EventPage {
        events: events.iter().map(|e| e.cloud_event()).collect(),
        next_after,
    }))
}

fn webhook_id(text: &str) -> ApiResult<i64> {
    text.parse::<i64>().map_err(|_| {
        ApiError::bad_request("invalid_value", "webhookId must be a number")
            .field("webhookId")
            .value(text)
    })
}

/// An `http(s)` URL with a host and no credentials.
fn webhook_url(text: &str) -> ApiResult<String> {
    let refuse = |rule: &str| {
        ApiError::unprocessable("invalid_value", format!("url {rule}"))
            .field("url")
            .value(text)
    };
    if text.len() > 2000 {
        return Err(refuse("must be at most 2000 characters"));
    }
    let url = reqwest::Url::parse(text).map_err(|e| refuse(&format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refuse("must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(refuse("must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("must not hold a user or password"));
    }
    Ok(url.to_string())
}

fn event_types(types: &[String]) -> ApiResult<Vec<String>> {
    let mut out = Vec::with_capacity(types.len());
    for (i, t) in types.iter().enumerate() {
        let parsed: EventType = t.parse().map_err(|e: hub_core::InvalidValue| {
            ApiError::unprocessable("invalid_value", e.to_string())
                .field(format!("eventTypes[{i}]"))
                .value(t.as_str())
        })?;
        let text = parsed.as_str().to_owned();
        if !out.contains(&text) {
            out.push(text);
        }
    }
    Ok(out)
}

fn description(d: Option<String>) -> ApiResult<Option<String>> {
    match d {
        Some(d) if d.chars().count() > 200 || d.chars().any(char::is_control) => {
            Err(ApiError::unprocessable(
                "invalid_value",
                "description must be up to 200 characters without control characters",
            )
            .field("description")
            .value(d))
        }
        d => Ok(d),
    }
}

/// A new secret, sealed for the store, and its text for the caller.
fn new_secret<S: HubDb>(hub: &HubState<S>) -> ApiResult<(String, String)> {
    let key = hub.iys.secret_key.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_secret_key",
            "this instance has no secret key (IYSHUB_SECRET_KEY) to seal webhook secrets with",
        )
    })?;
    let secret = WebhookSecret::generate().map_err(ApiError::internal)?;
    let sealed = key.seal(secret.as_str()).map_err(ApiError::internal)?;
    Ok((sealed, secret.as_str().to_owned()))
}

/// Checks and stores a new webhook of `brand`, records who did it, and wakes the deliverer.
/// Returns the webhook and its secret (to show once). Shared by the API and the console.
pub async fn register_webhook<S: HubDb>(
    hub: &HubState<S>,
    brand: hub_core::BrandCode,
    input: WebhookInput,
    actor: &str,
) -> ApiResult<(hub_store::Webhook, String)> {
    let url = webhook_url(&input.url)?;
    let types = event_types(&input.event_types)?;
    let description = description(input.description)?;
    let (sealed, secret) = new_secret(hub)?;
    let hook = hub
        .store
        .create_webhook(
            NewWebhook {
                brand_code: brand,
                url,
                description,
                event_types: types,
                sealed_secret: sealed,
            },
            Timestamp::now(),
        )
        .await?;
    let detail =
        serde_json::json!({"id": hook.id, "url": hook.url, "eventTypes": hook.event_types});
    if let Err(e) =
        hub_store::Store::audit(&*hub.store, Some(brand), actor, "webhook_created", detail).await
    {
        tracing::warn!(error = %e, "could not record a webhook's creation in the audit log");
    }
    hub.webhooks_waiting.notify_waiters();
    Ok((hook, secret))
}

/// Register a webhook
///
/// Scope: admin. The brand's state changes from now on are POSTed to `url` as CloudEvents,
/// signed as the Standard Webhooks specification says (`webhook-id`, `webhook-timestamp`,
/// `webhook-signature`: HMAC-SHA256 with the secret in this answer, shown once). Delivered in
/// order, at least once; a failure is retried with growing delays, and after failing without a
/// break for 3 days the webhook is disabled with the reason.
#[utoipa::path(
    post,
    path = "/api/v1/brands/{brandCode}/webhooks",
    tag = "events",
    operation_id = "createWebhook",
    params(BrandCodePath),
    security(("apiKey" = ["admin"])),
    request_body(content = WebhookInput, examples(
        ("all" = (summary = "Every change", value = json!({"url": "https://crm.example.com/hooks/iyshub"}))),
        ("revocations" = (summary = "Only opt-outs", value = json!({"url": "https://crm.example.com/hooks/opt-outs", "description": "suppression list", "eventTypes": ["consent.revoked", "category.revoked"]})))
    )),
    responses(
        (status = 201, description = "Registered; `secret` is shown only here.", body = WebhookInfo),
        (status = 422, description = "A bad field, named in the error.", body = ErrorResponse),
        (status = 503, description = "The instance has no secret key.", body = ErrorResponse),
    )
)]
pub async fn create_webhook<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
    body: JsonBody<WebhookInput>,
) -> ApiResult<(StatusCode, Json<WebhookInfo>)> {
    let brand = brand_for(&hub, &caller, &code, Scope::Admin).await?;
    let input = body.parse()?;
    let (hook, secret) = register_webhook(&hub, brand.brand_code, input, caller.name()).await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookInfo::new(hook, Some(secret))),
    ))
}

/// List the brand's webhooks
///
/// Scope: admin. Secrets are never shown again.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/webhooks",
    tag = "events",
    operation_id = "listWebhooks",
    params(BrandCodePath),
    security(("apiKey" = ["admin"])),
    responses((status = 200, description = "The webhooks.", body = WebhookList))
)]
pub async fn list_webhooks<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Json<WebhookList>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Admin).await?;
    let hooks = hub.store.webhooks(brand.brand_code).await?;
    Ok(Json(WebhookList {
        webhooks: hooks
            .into_iter()
            .map(|h| WebhookInfo::new(h, None))
            .collect(),
    }))
}

async fn found<S: HubDb>(
    hub: &HubState<S>,
    caller: &Caller,
    code: &str,
    id: &str,
) -> ApiResult<(hub_store::Brand, hub_store::Webhook)> {
    let brand = brand_for(hub, caller, code, Scope::Admin).await?;
    let id = webhook_id(id)?;
    let hook = hub
        .store
        .webhook(brand.brand_code, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("webhook {id} not found")).field("webhookId"))?;
    Ok((brand, hook))
}

/// Read a webhook
///
/// Scope: admin. With its failure streak and, when disabled, why.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/webhooks/{webhookId}",
    tag = "events",
    operation_id = "getWebhook",
    params(WebhookPath),
    security(("apiKey" = ["admin"])),
    responses(
        (status = 200, description = "The webhook.", body = WebhookInfo),
        (status = 404, description = "No such webhook.", body = ErrorResponse),
    )
)]
pub async fn get_webhook<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, id)): Path<(String, String)>,
) -> ApiResult<Json<WebhookInfo>> {
    let (_, hook) = found(&hub, &caller, &code, &id).await?;
    Ok(Json(WebhookInfo::new(hook, None)))
}

/// Change a webhook
///
/// Scope: admin. Change its URL, description or event types; disable it, or enable it again
/// (it resumes where it stopped, at once); `rotateSecret` gives it a new secret, shown in this
/// answer only.
#[utoipa::path(
    patch,
    path = "/api/v1/brands/{brandCode}/webhooks/{webhookId}",
    tag = "events",
    operation_id = "updateWebhook",
    params(WebhookPath),
    security(("apiKey" = ["admin"])),
    request_body(content = WebhookPatch, examples(
        ("enable" = (summary = "Enable again after a failure streak", value = json!({"enabled": true}))),
        ("rotate" = (summary = "A new secret", value = json!({"rotateSecret": true})))
    )),
    responses(
        (status = 200, description = "The webhook as it is now.", body = WebhookInfo),
        (status = 404, description = "No such webhook.", body = ErrorResponse),
        (status = 422, description = "A bad field, named in the error.", body = ErrorResponse),
    )
)]
pub async fn update_webhook<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, id)): Path<(String, String)>,
    body: JsonBody<WebhookPatch>,
) -> ApiResult<Json<WebhookInfo>> {
    let (brand, hook) = found(&hub, &caller, &code, &id).await?;
    let patch = body.parse()?;
    let url = patch.url.as_deref().map(webhook_url).transpose()?;
    let types = patch.event_types.as_deref().map(event_types).transpose()?;
    let description = description(patch.description)?;
    let (sealed, secret) = match patch.rotate_secret {
        Some(true) => {
            let (sealed, secret) = new_secret(&hub)?;
            (Some(sealed), Some(secret))
        }
        _ => (None, None),
    };
    let update = WebhookUpdate {
        url,
        description,
        event_types: types,
        enabled: patch.enabled,
        sealed_secret: sealed,
    };
    let hook = hub
        .store
        .update_webhook(brand.brand_code, hook.id, update, Timestamp::now())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("webhook {id} not found")).field("webhookId"))?;
    let detail = serde_json::json!({"id": hook.id, "url": hook.url, "enabled": hook.enabled, "eventTypes": hook.event_types, "secretRotated": secret.is_some()});
    audit(
        &hub,
        Some(brand.brand_code),
        &caller,
        "webhook_updated",
        detail,
    )
    .await;
    hub.webhooks_waiting.notify_waiters();
    Ok(Json(WebhookInfo::new(hook, secret)))
}

/// Remove a webhook
///
/// Scope: admin. Its delivery log goes with it.
#[utoipa::path(
    delete,
    path = "/api/v1/brands/{brandCode}/webhooks/{webhookId}",
    tag = "events",
    operation_id = "deleteWebhook",
    params(WebhookPath),
    security(("apiKey" = ["admin"])),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "No such webhook.", body = ErrorResponse),
    )
)]
pub async fn delete_webhook<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (brand, hook) = found(&hub, &caller, &code, &id).await?;
    hub.store.delete_webhook(brand.brand_code, hook.id).await?;
    let detail = serde_json::json!({"id": hook.id, "url": hook.url});
    audit(
        &hub,
        Some(brand.brand_code),
        &caller,
        "webhook_deleted",
        detail,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// A webhook's delivery log
///
/// Scope: admin. Every attempt, newest first: the event, the receiver's status or the error,
/// the start of its answer and how long it took.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/webhooks/{webhookId}/deliveries",
    tag = "events",
    operation_id = "listWebhookDeliveries",
    params(WebhookPath, NewestFirstQuery),
    security(("apiKey" = ["admin"])),
    responses(
        (status = 200, description = "A page of attempts.", body = DeliveryPage),
        (status = 404, description = "No such webhook.", body = ErrorResponse),
    )
)]
pub async fn list_deliveries<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, id)): Path<(String, String)>,
    query: Query<NewestFirstQuery>,
) -> ApiResult<Json<DeliveryPage>> {
    let (_, hook) = found(&hub, &caller, &code, &id).await?;
    let (before, limit) = newest_first(&query.parse()?)?;
    let page = hub.store.webhook_deliveries(hook.id, before, limit).await?;
    let next_cursor = next_id(page.len(), limit, page.last().map(|d| d.id));
    Ok(Json(DeliveryPage {
        deliveries: page.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Deliver an event again
///
/// Scope: admin. Queues one of the brand's events for this webhook, sent before the stream
/// goes on, with the same `webhook-id` as before.
#[utoipa::path(
    post,
    path = "/api/v1/brands/{brandCode}/webhooks/{webhookId}/redeliver",
    tag = "events",
    operation_id = "redeliverWebhookEvent",
    params(WebhookPath),
    security(("apiKey" = ["admin"])),
    request_body(content = RedeliverInput),
    responses(
        (status = 202, description = "Queued.", body = RedeliveryQueued),
        (status = 404, description = "No such webhook or event.", body = ErrorResponse),
    )
)]
pub async fn redeliver<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, id)): Path<(String, String)>,
    body: JsonBody<RedeliverInput>,
) -> ApiResult<(StatusCode, Json<RedeliveryQueued>)> {
    let (brand, hook) = found(&hub, &caller, &code, &id).await?;
    let input = body.parse()?;
    if hub
        .store
        .change_event(brand.brand_code, input.event_id)
        .await?
        .is_none()
    {
        return Err(
            ApiError::not_found(format!("event {} not found", input.event_id))
                .field("eventId")
                .value(input.event_id),
        );
    }
    hub.store
        .request_redelivery(hook.id, input.event_id, Timestamp::now())
        .await?;
    let detail = serde_json::json!({"id": hook.id, "eventId": input.event_id});
    audit(
        &hub,
        Some(brand.brand_code),
        &caller,
        "webhook_redelivery",
        detail,
    )
    .await;
    hub.webhooks_waiting.notify_waiters();
    Ok((
        StatusCode::ACCEPTED,
        Json(RedeliveryQueued {
            webhook_id: hook.id,
            event_id: input.event_id,
        }),
    ))
}
