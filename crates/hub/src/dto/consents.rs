//! Consent changes, a recipient's current state and history.
//!
//! A write's body is typed as far as its shape (one change, or `{"changes": [...]}`); each change
//! is then read on its own by [`crate::input::parse_change`], so a batch stores its good changes
//! and answers the bad ones item by item with IYS's own codes. [`ConsentChange`] documents a
//! change.

use hub_core::{Channel, ConsentState, IysState};
use iys::{ConsentDate, ConsentStatus, RecipientType, Source};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::dto::schema;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{BodyError, Misfit, RequestBody};

/// One permission change: IYS's fields plus the hub's own. Unknown fields are refused
/// (unknown_field, 400); a string field given another JSON type is invalid_type. Give `type` or
/// `channel`, and `recipient` unless it is a category consent of a profile (`category` and
/// `profileId`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsentChange {
    /// A phone number in any common form (`0532 123 45 67`, `5321234567`,
    /// `+90 (532) 123-45-67`; national numbers read as Turkish), normalised to E.164; an e-mail
    /// address, lower-cased (ASCII only, as IYS); on PUSH, WEB_PUSH and IN_APP also a device or
    /// user id (1–256 characters without spaces). WHATSAPP takes a phone. May be left out only
    /// for a category consent of a profile (`category` and `profileId` given).
    #[serde(default)]
    #[schema(examples("+905321234567", "0532 123 45 67", "ayse@example.com"))]
    pub recipient: Option<String>,
    /// The channel, under IYS's name for it (MESAJ, ARAMA, EPOSTA; the hub's own channel names
    /// are accepted too). Give `type` or `channel`; if both, they must be equal (else
    /// invalid_value). An unknown value is H117.
    #[serde(default, rename = "type")]
    #[schema(value_type = Option<schema::Channel>)]
    pub type_: Option<String>,
    /// The channel (the hub's name for `type`). An unknown value is invalid_value.
    #[serde(default)]
    #[schema(value_type = Option<schema::Channel>)]
    pub channel: Option<String>,
    /// Defaults to BIREYSEL. An unknown value is H116.
    #[serde(default)]
    #[schema(value_type = Option<schema::RecipientType>)]
    pub recipient_type: Option<String>,
    /// Required (H110); ONAY or RET (H115).
    #[schema(value_type = schema::ConsentStatus)]
    pub status: String,
    /// When the consent was given or withdrawn; defaults to the hub's clock. Checked as IYS
    /// does: format (H158), a real date (H157), not before 2015-05-01 (H156), exactly
    /// 2015-05-01 00:00:00 with HS_2015 (H155), not in the future (H162). A date older than
    /// IYS's 3 business days is recorded anyway: IYS gives its own answer (H467) later.
    #[serde(default)]
    #[schema(value_type = Option<schema::ConsentDate>)]
    pub consent_date: Option<String>,
    /// Required on IYS channels (H113); on hub-only channels defaults to HS_EORTAM. One of the
    /// 13 HS_* values (H119); HS_KARAR only with RET (H408).
    #[serde(default)]
    #[schema(value_type = Option<schema::HsSource>)]
    pub source: Option<String>,
    /// A message category of the brand (see /categories; else unknown_category): the change is
    /// then a category consent (e.g. a RET for `kampanya`), stored apart from the channel
    /// consent and never sent to IYS.
    #[serde(default)]
    #[schema(value_type = Option<schema::Identifier>)]
    pub category: Option<String>,
    /// The brand's user id. With `category`, the category consent is stored for the profile
    /// (subject `profile:{profileId}`) and counts in checks by profileId.
    #[serde(default)]
    #[schema(value_type = Option<schema::Identifier>)]
    pub profile_id: Option<String>,
    /// Proof of the consent (IP, form, recording id…): a JSON object of at most 8 KiB, kept in
    /// the history and covered by the hash chain.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub evidence: Option<Value>,
    /// true places a manual hold (checks deny with reason `hold` until it is lifted), false
    /// lifts it; absent leaves it as it is.
    #[serde(default)]
    pub hold: Option<bool>,
    /// Who made the change on your side (an agent, a system); recorded as
    /// `<API key name>:<actor>`. Without it the actor is the API key's name.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub actor: Option<String>,
}

/// Up to 10,000 changes. Each item is checked on its own: good items are stored even when others
/// are refused, and the answer says which, in request order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentBatch {
    /// The changes, read one by one (an array; else invalid_type).
    #[schema(value_type = Vec<ConsentChange>, min_items = 1, max_items = 10000)]
    pub changes: Value,
}

impl RequestBody for ConsentBatch {
    fn refuse(e: BodyError) -> ApiError {
        match e.kind {
            Misfit::UnknownField => ApiError::bad_request(
                "unknown_field",
                format!("a batch body has only \"changes\"; found {:?}", e.name()),
            )
            .field(e.name()),
            _ => e.invalid_body(),
        }
    }
}

/// A write: one change, or a batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // A schema: the handler reads the body as a batch or, change by change.
pub enum ConsentWrite {
    One(Box<ConsentChange>),
    Batch(ConsentBatch),
}

/// `accepted`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Accepted {
    Accepted,
}

/// `rejected`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rejected {
    Rejected,
}

/// A change the ledger took.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(examples(json!({"index": 0, "status": "accepted", "eventId": 1, "outcome": "applied", "iysState": "pending", "deadline": "2026-12-02T11:05:00Z", "outbox": "pending"})))]
pub struct AcceptedItem {
    /// Position in the request (0 for a single change).
    pub index: usize,
    pub status: Accepted,
    /// The history event written for the change.
    #[schema(required = true)]
    pub event_id: Option<i64>,
    #[schema(value_type = schema::Outcome)]
    pub outcome: String,
    /// The consent's IYS state after the change; null for category consents and unchanged
    /// states.
    #[schema(value_type = Option<schema::IysState>, required = true)]
    pub iys_state: Option<IysState>,
    /// IYS's 3-business-day deadline for the change, while it is pending or held.
    #[schema(value_type = Option<schema::Timestamp>, required = true)]
    pub deadline: Option<Timestamp>,
    /// The outbox row written for IYS, if any.
    #[schema(value_type = Option<schema::OutboxState>, required = true)]
    pub outbox: Option<String>,
}

impl AcceptedItem {
    pub fn new(index: usize, a: &hub_store::Applied) -> AcceptedItem {
        AcceptedItem {
            index,
            status: Accepted::Accepted,
            event_id: a.event_id,
            outcome: a.outcome.as_str().to_owned(),
            iys_state: a.state.as_ref().map(|s| s.iys_state),
            deadline: a.state.as_ref().and_then(|s| s.deadline),
            outbox: a.outbox.map(|o| o.as_str().to_owned()),
        }
    }
}

/// A change the ledger refused, with why.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedItem {
    pub index: usize,
    pub status: Rejected,
    pub error: ErrorBody,
}

/// One item of a batch's answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchItem {
    Accepted(AcceptedItem),
    Rejected(RejectedItem),
}

impl BatchItem {
    fn index(&self) -> usize {
        match self {
            BatchItem::Accepted(a) => a.index,
            BatchItem::Rejected(r) => r.index,
        }
    }
}

/// A batch's answer: the counts, and one item per change in request order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(examples(json!({"accepted": 1, "rejected": 1, "results": [
    {"index": 0, "status": "accepted", "eventId": 2, "outcome": "applied", "iysState": "pending", "deadline": "2026-12-02T11:20:35Z", "outbox": "pending"},
    {"index": 1, "status": "rejected", "error": {"code": "H162", "field": "consentDate", "message": "Date and time must not be in the future. (IYS: Mevcut tarih ve saatten ileri bir tarih ve saat girilmemelidir.)", "value": "2030-01-01 10:00:00"}}
]})))]
pub struct BatchResult {
    pub accepted: usize,
    pub rejected: usize,
    /// One item per change, in request order.
    pub results: Vec<BatchItem>,
}

impl BatchResult {
    /// The answer from the accepted changes (with their indexes in the request) and the
    /// refused ones.
    pub fn new(
        total: usize,
        applied: &[hub_store::Applied],
        indexes: &[usize],
        errors: &[(usize, ApiError)],
    ) -> BatchResult {
        let mut results: Vec<BatchItem> = applied
            .iter()
            .zip(indexes)
            .map(|(a, i)| BatchItem::Accepted(AcceptedItem::new(*i, a)))
            .chain(errors.iter().map(|(i, e)| {
                BatchItem::Rejected(RejectedItem {
                    index: *i,
                    status: Rejected::Rejected,
                    error: e.body.clone(),
                })
            }))
            .collect();
        results.sort_by_key(BatchItem::index);
        BatchResult {
            accepted: applied.len(),
            rejected: total - applied.len(),
            results,
        }
    }
}

/// A single change answers with its item; a batch with the counts and every item.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ConsentWriteResult {
    One(AcceptedItem),
    Batch(BatchResult),
}

/// `Idempotency-Key`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header, names("Idempotency-Key"))]
pub struct IdempotencyKeyHeader(
    /// Makes the write safe to retry: the first answer is stored with the changes (same
    /// transaction) and replayed for the same key and the same body bytes, with
    /// `Idempotent-Replayed: true`, without applying anything again. The same key with a
    /// different body is 422 idempotency_conflict. Keys are per brand; 1–255 visible ASCII
    /// characters (else 400 invalid_value). A batch with every item refused is kept under its
    /// key too; a refused single change (a 4xx answer) is not kept, so it may be corrected and
    /// sent again with the same key.
    #[param(min_length = 1, max_length = 255, example = "7f3c2a10-batch-0001")]
    pub Option<String>,
);

/// A channel consent's current state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelState {
    #[schema(value_type = schema::Channel)]
    pub channel: Channel,
    #[schema(value_type = schema::RecipientType)]
    pub recipient_type: RecipientType,
    #[schema(value_type = schema::ConsentStatus)]
    pub status: ConsentStatus,
    #[schema(value_type = schema::ConsentDate)]
    pub consent_date: ConsentDate,
    #[schema(value_type = schema::Source)]
    pub source: Source,
    #[schema(value_type = schema::IysState)]
    pub iys_state: IysState,
    /// IYS's error code when IYS refused the change.
    #[schema(required = true)]
    pub iys_error: Option<String>,
    /// Equal consentDates with different statuses met: RET won; a person should look.
    pub conflict: bool,
    /// A manual hold: checks deny until it is lifted.
    pub hold: bool,
    /// IYS's 3-business-day deadline while pending or held.
    #[schema(value_type = Option<schema::Timestamp>, required = true)]
    pub deadline: Option<Timestamp>,
    pub last_event_id: i64,
    #[schema(value_type = schema::Timestamp)]
    pub updated_at: Timestamp,
}

impl ChannelState {
    pub fn new(channel: Channel, recipient_type: RecipientType, s: &ConsentState) -> Self {
        ChannelState {
            channel,
            recipient_type,
            status: s.status,
            consent_date: s.consent_date,
            source: s.source.clone(),
            iys_state: s.iys_state,
            iys_error: s.iys_error.clone(),
            conflict: s.conflict,
            hold: s.hold,
            deadline: s.deadline,
            last_event_id: s.last_event_id,
            updated_at: s.updated_at,
        }
    }
}

/// A category consent (a recipient's, or a profile's).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategoryConsent {
    /// The recipient, or `profile:{externalId}`.
    pub subject: String,
    pub category: String,
    #[schema(value_type = schema::ConsentStatus)]
    pub status: ConsentStatus,
    #[schema(value_type = schema::ConsentDate)]
    pub consent_date: ConsentDate,
    #[schema(value_type = schema::Source)]
    pub source: Source,
    pub last_event_id: i64,
}

impl From<hub_store::CategoryConsentRow> for CategoryConsent {
    fn from(c: hub_store::CategoryConsentRow) -> Self {
        CategoryConsent {
            subject: c.subject,
            category: c.category,
            status: c.status,
            consent_date: c.consent_date,
            source: c.source,
            last_event_id: c.last_event_id,
        }
    }
}

/// A recipient's consents.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecipientConsents {
    /// The normalised recipient.
    pub recipient: String,
    pub channels: Vec<ChannelState>,
    pub categories: Vec<CategoryConsent>,
}

/// What IYS said about an event.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventIys {
    /// IYS's transactionId: of a movement from IYS, or the one IYS gave the hub's delivery.
    #[schema(required = true)]
    pub transaction_id: Option<String>,
    /// IYS's creationDate of a movement from IYS.
    #[schema(required = true)]
    pub creation_date: Option<String>,
    /// IYS's error code when it refused the change.
    #[schema(required = true)]
    pub error: Option<String>,
}

/// One event of a recipient's history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEvent {
    pub id: i64,
    #[schema(value_type = schema::Channel)]
    pub channel: Channel,
    #[schema(value_type = schema::RecipientType)]
    pub recipient_type: RecipientType,
    #[schema(required = true)]
    pub category: Option<String>,
    #[schema(required = true)]
    pub profile_id: Option<String>,
    #[schema(value_type = schema::ConsentStatus)]
    pub status: ConsentStatus,
    #[schema(value_type = schema::ConsentDate)]
    pub consent_date: ConsentDate,
    #[schema(value_type = schema::Source)]
    pub source: Source,
    #[schema(value_type = schema::Origin)]
    pub origin: String,
    #[schema(required = true)]
    pub actor: Option<String>,
    #[schema(value_type = Option<Object>, required = true)]
    pub evidence: Option<Value>,
    #[schema(required = true)]
    pub hold: Option<bool>,
    #[schema(value_type = schema::Outcome)]
    pub outcome: String,
    #[schema(value_type = schema::Timestamp)]
    pub received_at: Timestamp,
    pub iys: EventIys,
    /// This event's link in the brand's hash chain: SHA-256 over the previous hash and the
    /// event's content.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub hash: String,
}

impl From<hub_store::Event> for HistoryEvent {
    fn from(e: hub_store::Event) -> Self {
        HistoryEvent {
            id: e.id,
            channel: e.key.channel,
            recipient_type: e.key.recipient_type,
            category: e.category,
            profile_id: e.profile_id,
            status: e.status,
            consent_date: e.consent_date,
            source: e.source,
            origin: e.origin.as_str().to_owned(),
            actor: e.actor,
            evidence: e.evidence,
            hold: e.hold,
            outcome: e.outcome.as_str().to_owned(),
            received_at: e.received_at,
            iys: EventIys {
                transaction_id: e.iys_transaction_id.or(e.delivered_transaction_id),
                creation_date: e.iys_creation_date,
                error: e.iys_error,
            },
            hash: e.hash,
        }
    }
}

/// A recipient's history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecipientHistory {
    pub recipient: String,
    /// Newest first.
    pub events: Vec<HistoryEvent>,
    /// The `cursor` of the next (older) page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// The query of a history.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// How many events, newest first (1–1000; else 422 invalid_value).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<String>,
    /// Where to go on: the `nextCursor` of the previous page (events older than it).
    #[param(value_type = Option<String>, pattern = "^[0-9]+$")]
    pub cursor: Option<String>,
}

/// Other parameters are ignored.
impl RequestBody for HistoryQuery {}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    use super::*;

    /// The fields [`crate::input::parse_change`] takes are the ones documented.
    #[test]
    fn a_change_documents_the_fields_parse_change_reads() {
        let schema = serde_json::to_value(ConsentChange::schema()).unwrap();
        let documented: std::collections::BTreeSet<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            documented,
            crate::input::CHANGE_FIELDS.into_iter().collect()
        );
        assert_eq!(schema["additionalProperties"], false);
    }
}
