//! A brand's webhooks: register (the signing secret shown once), the delivery log, redelivery.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hub::{HubDb, HubState};
use hub_store::{Brand, ConsoleRole, Webhook};
use jiff::Timestamp;
use maud::html;
use serde::Deserialize;

use crate::error::{PageError, PageResult, maud_response};
use crate::i18n::T;
use crate::layout::{self, Tab, csrf, when, when_opt};
use crate::session::{Posted, Session};
use crate::{audit, brand_page};

/// Deliveries shown on a webhook's page.
const DELIVERIES: u32 = 100;

async fn render<S: HubDb>(
    hub: &HubState<S>,
    s: &Session,
    brand: &Brand,
    created: Option<(&Webhook, &str)>,
) -> PageResult<Response> {
    let lang = s.lang;
    let hooks = hub.store.webhooks(brand.brand_code).await?;
    let base = format!("{}/webhooks", layout::brand_path(brand.brand_code));
    let body = html! {
        h1 { (lang.t(T::Webhooks)) }
        @if let Some((h, secret)) = created {
            section.card.notice #new-secret role="status" {
                p { (h.url) " — " (lang.t(T::Secret)) ": " (lang.t(T::KeyShownOnce)) }
                code.key { (secret) }
            }
        }
        div.scroll { table #webhooks {
            thead { tr { th { (lang.t(T::Url)) } th { (lang.t(T::EventTypes)) } th { (lang.t(T::State)) } th { (lang.t(T::Deliveries)) } } }
            tbody { @for h in &hooks { tr data-webhook=(h.id) {
                td { (h.url) @if let Some(d) = &h.description { br; span.muted { (d) } } }
                td { @if h.event_types.is_empty() { (lang.t(T::All)) } @else { (h.event_types.join(", ")) } }
                td { @if h.enabled { span.ok { (lang.t(T::Enabled)) } } @else { span.bad { (lang.t(T::Disabled)) } @if let Some(r) = &h.disabled_reason { br; (r) } }
                    @if h.failures > 0 { br; span.warn { (h.failures) " × " (when_opt(lang, h.failing_since)) } } }
                td { a href=(format!("{base}/{}", h.id)) { (lang.t(T::Deliveries)) } }
            } } }
        } }
        section.card {
            h2 { (lang.t(T::Register)) }
            form #create-webhook method="post" action=(base) {
                (csrf(s))
                label for="hook-url" { (lang.t(T::Url)) }
                input #hook-url name="url" type="url" required maxlength="2000" placeholder="https://crm.example.com/hooks/iyshub";
                label for="hook-description" { (lang.t(T::Description)) }
                input #hook-description name="description" maxlength="200";
                label for="hook-types" { (lang.t(T::EventTypes)) " (" (lang.t(T::All)) ")" }
                input #hook-types name="eventTypes" placeholder="consent.revoked, category.revoked";
                button type="submit" { (lang.t(T::Register)) }
            }
        }
    };
    Ok(maud_response(layout::page(
        s,
        &base,
        lang.t(T::Webhooks),
        Some((brand, Tab::Webhooks)),
        body,
    )))
}

pub async fn list<S: HubDb>(
    State(hub): State<HubState<S>>,
    s: Session,
    Path(code): Path<String>,
) -> PageResult<Response> {
    let brand = brand_page(&hub, &s, &code, ConsoleRole::Admin).await?;
    render(&hub, &s, &brand, None).await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookForm {
    url: String,
    description: Option<String>,
    event_types: Option<String>,
}

pub async fn create<S: HubDb>(
    State(hub): State<HubState<S>>,
    Path(code): Path<String>,
    posted: Posted<WebhookForm>,
) -> PageResult<Response> {
    let s = &posted.session;
    let f = &posted.form;
    let brand = brand_page(&hub, s, &code, ConsoleRole::Admin).await?;
    let input = hub::dto::events::WebhookInput {
        url: f.url.trim().to_owned(),
        description: f
            .description
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_owned),
        event_types: f
            .event_types
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    let (hook, secret) = hub::register_webhook(&hub, brand.brand_code, input, &s.actor()).await?;
    let mut resp = render(&hub, s, &brand, Some((&hook, &secret))).await?;
    *resp.status_mut() = StatusCode::CREATED;
    Ok(resp)
}

async fn brand_hook<S: HubDb>(hub: &HubState<S>, brand: &Brand, id: &str) -> PageResult<Webhook> {
    let id = id.parse::<i64>().map_err(|_| PageError::NotFound)?;
    hub.store
        .webhook(brand.brand_code, id)
        .await?
        .ok_or(PageError::NotFound)
}

pub async fn detail<S: HubDb>(
    State(hub): State<HubState<S>>,
    s: Session,
    Path((code, id)): Path<(String, String)>,
) -> PageResult<Response> {
    let brand = brand_page(&hub, &s, &code, ConsoleRole::Admin).await?;
    let hook = brand_hook(&hub, &brand, &id).await?;
    let lang = s.lang;
    let deliveries = hub
        .store
        .webhook_deliveries(hook.id, None, DELIVERIES)
        .await?;
    let path = format!(
        "{}/webhooks/{}",
        layout::brand_path(brand.brand_code),
        hook.id
    );
    let body = html! {
        h1 { (lang.t(T::Deliveries)) }
        p { code { (hook.url) } " — " @if hook.enabled { span.ok { (lang.t(T::Enabled)) } } @else { span.bad { (lang.t(T::Disabled)) } } }
        div.scroll { table #deliveries {
            thead { tr { th { (lang.t(T::When)) } th { "event" } th { "#" } th { (lang.t(T::Status)) } th { "ms" } th { (lang.t(T::Action)) } } }
            tbody { @for d in &deliveries { tr {
                td { (when(d.at)) }
                td { (d.event_id) @if d.manual { " (manual)" } }
                td { (d.attempt) }
                td { @match (d.status_code, &d.error) {
                    (Some(c), _) if (200..300).contains(&c) => span.ok { (c) },
                    (Some(c), _) => span.bad { (c) },
                    (None, Some(e)) => span.bad { (e) },
                    (None, None) => span { "-" },
                } }
                td { (d.duration_ms) }
                td { form.inline method="post" action=(format!("{path}/redeliver")) {
                    (csrf(&s)) input type="hidden" name="eventId" value=(d.event_id);
                    button type="submit" { (lang.t(T::Redeliver)) }
                } }
            } } }
        } }
    };
    Ok(maud_response(layout::page(
        &s,
        &path,
        lang.t(T::Deliveries),
        Some((&brand, Tab::Webhooks)),
        body,
    )))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedeliverForm {
    event_id: i64,
}

pub async fn redeliver<S: HubDb>(
    State(hub): State<HubState<S>>,
    Path((code, id)): Path<(String, String)>,
    posted: Posted<RedeliverForm>,
) -> PageResult<Response> {
    let s = &posted.session;
    let brand = brand_page(&hub, s, &code, ConsoleRole::Admin).await?;
    let hook = brand_hook(&hub, &brand, &id).await?;
    let event = posted.form.event_id;
    if hub
        .store
        .change_event(brand.brand_code, event)
        .await?
        .is_none()
    {
        return Err(PageError::BadInput(format!(
            "eventId: event {event} not found"
        )));
    }
    hub.store
        .request_redelivery(hook.id, event, Timestamp::now())
        .await?;
    audit(
        &hub,
        s,
        Some(brand.brand_code),
        "webhook_redelivery",
        serde_json::json!({"id": hook.id, "eventId": event}),
    )
    .await;
    hub.webhooks_waiting.notify_waiters();
    let back = format!(
        "{}/webhooks/{}",
        layout::brand_path(brand.brand_code),
        hook.id
    );
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, back)]).into_response())
}
