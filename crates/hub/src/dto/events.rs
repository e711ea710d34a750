//! Automation events (CloudEvents), webhooks and their deliveries, and analytics.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::dto::schema;
use crate::extract::RequestBody;

/// `{brandCode}` and `{webhookId}`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct WebhookPath {
    /// The brand's code.
    #[param(value_type = u64, rename = "brandCode")]
    pub brand_code: String,
    /// The webhook's id.
    #[param(value_type = i64, rename = "webhookId")]
    pub webhook_id: String,
}

/// Where a page of events starts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct EventsQuery {
    /// Events after this one (the `nextAfter` of the previous page); 0 or absent: from the
    /// first.
    #[param(value_type = Option<u64>)]
    pub after: Option<String>,
    /// How many events a page has (1–1000; else 422 invalid_value).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<String>,
}

impl RequestBody for EventsQuery {}

/// A change's details (the CloudEvent's `data`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EventData)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct EventDataSchema {
    /// The event's id, increasing per brand.
    id: i64,
    #[schema(value_type = schema::BrandCodeValue)]
    brand: u64,
    recipient: String,
    /// `BIREYSEL` or `TACIR`.
    recipient_type: String,
    /// The channel (for a category consent: the channel the change came with).
    channel: String,
    /// Set for a category consent.
    #[schema(required = true)]
    category: Option<String>,
    /// The status before (`ONAY` or `RET`); null for a first record.
    #[schema(required = true)]
    old: Option<String>,
    /// The status now.
    new: String,
    /// Where the change came from: api, import, console, iys_pull (a citizen or the brand in
    /// IYS), iys_push, reconcile, mode_switch.
    origin: String,
    /// The consent's IYS state after the change; null for a category consent.
    #[schema(required = true)]
    iys_state: Option<String>,
    #[schema(value_type = schema::Timestamp)]
    at: String,
}

/// A state change as a CloudEvents 1.0 event (JSON structured mode): the same document for
/// webhooks, NATS and polling.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CloudEvent)]
#[allow(dead_code)]
pub struct CloudEventSchema {
    /// `1.0`.
    specversion: String,
    /// The event's id (decimal): the same on every retry and redelivery.
    id: String,
    /// `/brands/{brandCode}`.
    source: String,
    /// `tr.iyshub.consent.granted`, `tr.iyshub.consent.revoked`, `tr.iyshub.category.granted`
    /// or `tr.iyshub.category.revoked`.
    #[serde(rename = "type")]
    ty: String,
    /// The channel.
    subject: String,
    #[schema(value_type = schema::Timestamp)]
    time: String,
    /// `application/json`.
    datacontenttype: String,
    data: EventDataSchema,
}

/// A page of a brand's events, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    #[schema(value_type = Vec<CloudEventSchema>)]
    pub events: Vec<hub_events::CloudEvent>,
    /// Ask with `after` set to this for the next page (the last event's id, or the `after` given
    /// when there were none).
    pub next_after: i64,
}

/// A webhook to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookInput {
    /// An `http` or `https` URL, without user or password.
    #[schema(max_length = 2000, example = "https://crm.example.com/hooks/iyshub")]
    pub url: String,
    #[serde(default)]
    #[schema(max_length = 200)]
    pub description: Option<String>,
    /// Event types to deliver (`consent.granted`, `consent.revoked`, `category.granted`,
    /// `category.revoked`); absent or empty: all.
    #[serde(default)]
    pub event_types: Vec<String>,
}

impl RequestBody for WebhookInput {}

/// Changes to a webhook; absent fields are kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookPatch {
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    #[serde(default)]
    #[schema(max_length = 200)]
    pub description: Option<String>,
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// `true` turns a disabled webhook back on: it resumes where it stopped, at once.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `true`: a new signing secret, shown in this answer only.
    #[serde(default)]
    pub rotate_secret: Option<bool>,
}

impl RequestBody for WebhookPatch {}

/// A webhook.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookInfo {
    pub id: i64,
    #[schema(value_type = schema::BrandCodeValue)]
    pub brand_code: u64,
    pub url: String,
    #[schema(required = true)]
    pub description: Option<String>,
    /// Empty: every type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why it is disabled: after failing without a break for days, or by a person.
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
    /// The last event delivered (or passed over by the filter).
    pub cursor: i64,
    /// Failed attempts in a row.
    pub failures: i64,
    #[schema(value_type = Option<schema::Timestamp>, required = true)]
    pub failing_since: Option<jiff::Timestamp>,
    #[schema(value_type = schema::Timestamp)]
    pub next_attempt_at: jiff::Timestamp,
    #[schema(value_type = schema::Timestamp)]
    pub created_at: jiff::Timestamp,
    #[schema(value_type = schema::Timestamp)]
    pub updated_at: jiff::Timestamp,
    /// The signing secret (`whsec_…`), only in the answer that created or rotated it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookInfo {
    pub fn new(w: hub_store::Webhook, secret: Option<String>) -> WebhookInfo {
        WebhookInfo {
            id: w.id,
            brand_code: w.brand_code.0,
            url: w.url,
            description: w.description,
            event_types: w.event_types,
            enabled: w.enabled,
            disabled_reason: w.disabled_reason,
            cursor: w.cursor,
            failures: w.failures,
            failing_since: w.failing_since,
            next_attempt_at: w.next_attempt_at,
            created_at: w.created_at,
            updated_at: w.updated_at,
            secret,
        }
    }
}

/// A brand's webhooks.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookInfo>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryInfo {
    pub id: i64,
    /// The event delivered (its `webhook-id`).
    pub event_id: i64,
    /// The attempt's number for this event (1 for the first).
    pub attempt: i64,
    /// A redelivery asked for by a person.
    pub manual: bool,
    /// The receiver's HTTP status; null when there was no answer.
    #[schema(required = true)]
    pub status_code: Option<i64>,
    #[schema(required = true)]
    pub error: Option<String>,
    /// The start of the receiver's answer.
    #[schema(required = true)]
    pub response: Option<String>,
    pub duration_ms: i64,
    #[schema(value_type = schema::Timestamp)]
    pub at: jiff::Timestamp,
}

impl From<hub_store::WebhookDelivery> for DeliveryInfo {
    fn from(d: hub_store::WebhookDelivery) -> Self {
        DeliveryInfo {
            id: d.id,
            event_id: d.event_id,
            attempt: d.attempt,
            manual: d.manual,
            status_code: d.status_code,
            error: d.error,
            response: d.response,
            duration_ms: d.duration_ms,
            at: d.at,
        }
    }
}

/// A page of a webhook's delivery log, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryInfo>,
    /// Pass as `cursor` for older attempts; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// An event to deliver again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedeliverInput {
    /// The event's id (a delivery's `eventId`, or a CloudEvent's `id`).
    pub event_id: i64,
}

impl RequestBody for RedeliverInput {}

/// A redelivery queued.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedeliveryQueued {
    pub webhook_id: i64,
    pub event_id: i64,
}

/// The days of the daily series.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct StatsQuery {
    /// First day (`YYYY-MM-DD`, Istanbul); default: 29 days before `to`.
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<String>,
    /// Last day (`YYYY-MM-DD`, Istanbul); default: today. At most 366 days after `from`.
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<String>,
}

impl RequestBody for StatsQuery {}

/// Current consents of one channel, status and IYS state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsCount {
    pub channel: String,
    /// `ONAY` or `RET`.
    pub status: String,
    /// in_iys, pending, held, rejected, not_in_iys or local_only.
    pub iys_state: String,
    pub count: i64,
}

/// Opt-ins and opt-outs of one day, channel and origin.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsDay {
    #[schema(format = Date)]
    pub day: String,
    pub channel: String,
    /// api, import, console, iys_pull (in IYS: by the citizen or the brand), iys_push,
    /// reconcile or mode_switch.
    pub origin: String,
    pub opt_ins: i64,
    pub opt_outs: i64,
}

/// A brand's consents now, and opt-ins and opt-outs per day.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Consents by channel, status and IYS state (zero counts left out).
    pub current: Vec<StatsCount>,
    #[schema(format = Date)]
    pub from: String,
    #[schema(format = Date)]
    pub to: String,
    /// Days without changes are left out.
    pub daily: Vec<StatsDay>,
}
