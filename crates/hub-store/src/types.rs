//! What the store takes and gives.

use hub_core::{BrandCode, CategoryKind, ConsentKey, ConsentState, Mode, Origin, Outcome};
use iys::{ConsentDate, ConsentStatus, Source};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::OutboxState;

/// How the hub reaches IYS for a brand. Set only by the provider's admin (a brand's own keys
/// cannot): the base URL must be on the instance's allowed list, and the API password is stored
/// sealed with the instance's secret key, never in clear and never in an API answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct IysConnection {
    pub base_url: Option<String>,
    pub username: Option<String>,
    /// The IYS API user's password, sealed (`hub_secrets::SecretKey::seal`). Without one the
    /// instance's password (`IYSHUB_IYS_PASSWORD`) is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_sealed: Option<String>,
    /// HTTP Basic credentials IYS uses for push deliveries to this brand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_username: Option<String>,
    /// The push password as an argon2 PHC string (earlier versions: unsalted SHA-256).
    #[serde(
        default,
        alias = "pushPasswordSha256",
        skip_serializing_if = "Option::is_none"
    )]
    pub push_password_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Brand {
    pub brand_code: BrandCode,
    pub iys_code: u64,
    pub name: String,
    pub mode: Mode,
    pub iys: IysConnection,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBrand {
    pub brand_code: BrandCode,
    pub iys_code: u64,
    pub name: String,
    pub mode: Mode,
    pub iys: IysConnection,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrandPatch {
    pub name: Option<String>,
    pub iys_code: Option<u64>,
    pub mode: Option<Mode>,
    pub iys: Option<IysConnection>,
}

/// Renders the stored answer of an idempotent write from its outcomes.
pub type RenderAnswer = Box<dyn Fn(&[Applied]) -> StoredAnswer + Send + Sync>;

/// An `Idempotency-Key` write: the key, a hash of the request, and how to render the answer
/// from the outcomes (stored in the same transaction).
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
    pub render: RenderAnswer,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub request_hash: String,
    pub status: u16,
    pub body: String,
}

/// What happened to one change of a batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// The history event; `None` for a movement from IYS already recorded (same transactionId).
    pub event_id: Option<i64>,
    pub outcome: Outcome,
    /// The consent's state after the change (channel consents only).
    pub state: Option<ConsentState>,
    /// Whether an outbox row was written, and its state.
    pub outbox: Option<OutboxState>,
}

/// A consent's current state with its key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentRow {
    pub key: ConsentKey,
    pub state: ConsentState,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CategoryConsentRow {
    pub subject: String,
    pub category: String,
    pub status: ConsentStatus,
    pub consent_date: ConsentDate,
    pub source: Source,
    pub last_event_id: i64,
}

/// One history event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: i64,
    pub key: ConsentKey,
    pub category: Option<String>,
    pub profile_id: Option<String>,
    pub status: ConsentStatus,
    pub consent_date: ConsentDate,
    pub source: Source,
    pub origin: Origin,
    pub actor: Option<String>,
    pub evidence: Option<serde_json::Value>,
    pub hold: Option<bool>,
    pub outcome: Outcome,
    pub received_at: Timestamp,
    /// The transactionId of a movement that came from IYS.
    pub iys_transaction_id: Option<String>,
    /// The transactionId IYS gave when the hub delivered this change.
    pub delivered_transaction_id: Option<String>,
    pub iys_creation_date: Option<String>,
    pub iys_error: Option<String>,
    pub hash: String,
}

/// The result of recomputing a brand's hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainReport {
    pub events: u64,
    pub valid: bool,
    /// The first event whose hash or link does not match.
    pub first_broken_event: Option<i64>,
    pub head: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Category {
    #[serde(skip_deserializing)]
    pub brand_code: Option<BrandCode>,
    pub code: String,
    pub name: String,
    pub kind: CategoryKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    #[serde(skip_deserializing)]
    pub brand_code: Option<BrandCode>,
    pub external_id: String,
    /// Normalised recipients (phones in E.164, lower-case e-mails, device ids).
    pub addresses: Vec<String>,
    #[serde(default)]
    pub attributes: Option<serde_json::Value>,
}

/// API key scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    pub name: String,
    /// SHA-256 of the key, lower hex; the key itself is never stored.
    pub hash: String,
    /// `None`: every brand (bootstrap admin keys).
    pub brand_code: Option<BrandCode>,
    pub scopes: Vec<Scope>,
    /// After this instant the key is refused.
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub brand_code: Option<BrandCode>,
    pub scopes: Vec<Scope>,
    pub created_at: Timestamp,
    pub revoked: bool,
    /// Recorded at most once a minute per instance.
    pub last_used_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
}

impl ApiKey {
    /// Whether the key may be used at `now`: not revoked, not expired.
    pub fn usable(&self, now: Timestamp) -> bool {
        !self.revoked && self.expires_at.is_none_or(|t| t > now)
    }

    /// A key for every brand with the admin scope: the provider's admin.
    pub fn is_provider_admin(&self) -> bool {
        self.brand_code.is_none() && self.scopes.contains(&Scope::Admin)
    }

    pub fn allows(&self, scope: Scope, brand: Option<BrandCode>) -> bool {
        let scope_ok = self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin);
        let brand_ok = match (self.brand_code, brand) {
            (None, _) => true,
            (Some(mine), Some(b)) => mine == b,
            (Some(_), None) => false,
        };
        !self.revoked && scope_ok && brand_ok
    }
}

/// Which consents a listing returns; every filter is optional and they all apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsentFilter {
    pub channel: Option<hub_core::Channel>,
    pub recipient_type: Option<iys::RecipientType>,
    pub status: Option<ConsentStatus>,
    pub iys_state: Option<hub_core::IysState>,
    pub source: Option<Source>,
    /// Consents whose state changed at or after this instant.
    pub changed_since: Option<Timestamp>,
}

/// One entry of the audit log: who did what to a brand (or to the instance) and when.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    pub brand_code: Option<BrandCode>,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    /// What the action changed, as recorded (a JSON object for the hub's own actions).
    pub detail: Option<serde_json::Value>,
}
