//! Listings: consents by filter, and the audit log, a page at a time with a cursor.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::dto::consents::ChannelState;
use crate::dto::schema;
use crate::extract::RequestBody;

/// The query of a consent listing. Every filter is optional; together they all apply.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ConsentListQuery {
    /// Only this channel (MESAJ, ARAMA, EPOSTA or a hub-only channel).
    #[param(value_type = Option<schema::Channel>)]
    pub channel: Option<String>,
    /// Only this recipient type.
    #[param(value_type = Option<schema::RecipientType>)]
    pub recipient_type: Option<String>,
    /// Only this status.
    #[param(value_type = Option<schema::ConsentStatus>)]
    pub status: Option<String>,
    /// Only consents in this IYS state.
    #[param(value_type = Option<schema::IysState>)]
    pub iys_state: Option<String>,
    /// Only consents whose last change came from this source (e.g. HS_WEB, IYS_MOBIL).
    #[param(value_type = Option<schema::Source>)]
    pub source: Option<String>,
    /// Only consents changed at or after this instant (RFC 3339).
    #[param(value_type = Option<schema::Timestamp>)]
    pub changed_since: Option<String>,
    /// Where to go on: the `nextCursor` of the previous page.
    #[param(value_type = Option<String>, pattern = "^[0-9a-f]+$")]
    pub cursor: Option<String>,
    /// How many consents a page has (1–1000; else 422 invalid_value).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<String>,
}

/// Other parameters are ignored.
impl RequestBody for ConsentListQuery {}

/// A consent of a listing: its recipient and its channel state.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListedConsent {
    /// The normalised recipient.
    pub recipient: String,
    #[serde(flatten)]
    pub state: ChannelState,
}

/// A page of consents, in key order (recipient, recipient type, channel).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsentPage {
    pub consents: Vec<ListedConsent>,
    /// The `cursor` of the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// The query of a page of a newest-first listing by id (the audit log, imports).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NewestFirstQuery {
    /// Where to go on: the `nextCursor` of the previous page (older entries).
    #[param(value_type = Option<String>, pattern = "^[0-9]+$")]
    pub cursor: Option<String>,
    /// How many entries a page has (1–1000; else 422 invalid_value).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<String>,
}

/// Other parameters are ignored.
impl RequestBody for NewestFirstQuery {}

/// Who did what to the brand, and when.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    #[schema(value_type = schema::Timestamp)]
    pub at: jiff::Timestamp,
    /// The API key's name (or the operator's name for command-line actions).
    pub actor: String,
    /// What was done, e.g. `mode_switch`, `api_key_created`, `category_deleted`,
    /// `outbox_requeue`, `reconcile_repair`.
    pub action: String,
    /// What the action changed (never a secret).
    #[schema(value_type = Option<Object>, required = true)]
    pub detail: Option<Value>,
}

impl From<hub_store::AuditEntry> for AuditEntry {
    fn from(e: hub_store::AuditEntry) -> Self {
        AuditEntry {
            id: e.id,
            at: e.at,
            actor: e.actor,
            action: e.action,
            detail: e.detail,
        }
    }
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// The `cursor` of the next (older) page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}
