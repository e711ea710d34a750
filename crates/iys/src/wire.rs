//! Request and response bodies of IYS's API, field for field as in IYS's OpenAPI document.
//!
//! Optional fields are omitted when absent, never sent as `null` (IYS refuses `""` and `null`).
//! Recipients stay strings here: what IYS sends back is its canonical form, and one odd value
//! must not fail a whole page. Codes that IYS's examples write sometimes as numbers and
//! sometimes as strings use [`Code`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::consent_date::{ConsentDate, optional_lenient};
use crate::enums::{ConsentStatus, ConsentType, RecipientType, Source};
use crate::error::OAuthError;

/// A number IYS writes as `34` in one place and `"34"` in another (city codes, MERSİS numbers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Code {
    Number(u64),
    Text(String),
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Code::Number(n) => write!(f, "{n}"),
            Code::Text(s) => f.write_str(s),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Token: POST /oauth2/token (JSON or form)

/// A token request, tagged by `grant_type`. Serialises the same way as JSON or as a form.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "grant_type", rename_all = "snake_case")]
pub enum TokenRequest {
    Password { username: String, password: String },
    RefreshToken { refresh_token: String },
}

impl fmt::Debug for TokenRequest {
    /// Secrets never reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenRequest::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &"***")
                .finish(),
            TokenRequest::RefreshToken { .. } => f
                .debug_struct("RefreshToken")
                .field("refresh_token", &"***")
                .finish(),
        }
    }
}

/// The loose fields of a token request as they arrive, before IYS's checks.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenRequestFields {
    pub grant_type: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub refresh_token: Option<String>,
}

impl TokenRequestFields {
    /// IYS's checks, with its own OAuth error descriptions.
    pub fn parse(self) -> Result<TokenRequest, OAuthError> {
        let grant = self
            .grant_type
            .ok_or_else(|| OAuthError::invalid_request("Giriş yöntemi belirtilmemiş."))?;
        match grant.as_str() {
            "" => Err(OAuthError::invalid_grant("Giriş yöntemi boş olamaz.")),
            "password" => {
                let username = match self.username {
                    None => Err(OAuthError::invalid_request("Kullanıcı adı verilmemiş.")),
                    Some(u) if u.is_empty() => {
                        Err(OAuthError::invalid_grant("Kullanıcı adı boş bırakılamaz."))
                    }
                    Some(u) => Ok(u),
                }?;
                let password = match self.password {
                    None => Err(OAuthError::invalid_request("Şifre verilmemiş.")),
                    Some(p) if p.is_empty() => {
                        Err(OAuthError::invalid_grant("Şifre boş bırakılamaz."))
                    }
                    Some(p) => Ok(p),
                }?;
                Ok(TokenRequest::Password { username, password })
            }
            "refresh_token" => match self.refresh_token {
                None => Err(OAuthError::invalid_request("Yenileme jetonu verilmemiş.")),
                Some(t) if t.is_empty() => {
                    Err(OAuthError::invalid_grant("Yenileme jetonu boş olamaz."))
                }
                Some(refresh_token) => Ok(TokenRequest::RefreshToken { refresh_token }),
            },
            "client_credentials" | "authorization_code" | "implicit" => {
                Err(OAuthError::invalid_grant("Desteklenmeyen giriş yöntemi."))
            }
            _ => Err(OAuthError::invalid_request("Bilinmeyen giriş yöntemi.")),
        }
    }
}

/// IYS's answer for a wrong username or password.
pub const INVALID_CREDENTIALS: &str = "Kullanıcı kimlik bilgileri geçersiz.";

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds; 7200 at IYS.
    pub expires_in: u64,
    /// Seconds; 14400 at IYS.
    pub refresh_expires_in: u64,
    pub token_type: String,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"***")
            .field("refresh_token", &"***")
            .field("expires_in", &self.expires_in)
            .field("refresh_expires_in", &self.refresh_expires_in)
            .field("token_type", &self.token_type)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Consents: add (v1/v2), bulk (v1/v2), bulk results

/// One consent as sent to the add endpoints (schema `Consent`); a bulk body is `Vec<Consent>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Consent {
    pub recipient: String,
    #[serde(rename = "type")]
    pub consent_type: ConsentType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    pub status: ConsentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_date: Option<ConsentDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_type: Option<RecipientType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_code: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_access: Option<Vec<u64>>,
}

/// 200 answer of a single add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddConsentResponse {
    /// 64 hex characters.
    pub transaction_id: String,
    pub creation_date: ConsentDate,
}

/// 202 answer of a bulk add: receipt only, not a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkAccepted {
    pub request_id: String,
    pub sub_requests: Vec<SubRequest>,
}

/// One item of a bulk receipt, in the order submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubRequest {
    /// IYS's schema spells it `subrequestId`, its examples `subRequestId`.
    #[serde(alias = "subrequestId")]
    pub sub_request_id: String,
    #[serde(rename = "type")]
    pub consent_type: ConsentType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    pub recipient: String,
    pub status: ConsentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_date: Option<ConsentDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_type: Option<RecipientType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<ConsentDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_code: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_access: Option<Vec<u64>>,
}

/// Where a bulk item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BulkItemStatus {
    Success,
    Failure,
    /// Still queued at IYS: poll again later.
    Enqueue,
}

/// `{code, message}` of a failed bulk item (singular `error`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeMessage {
    pub code: String,
    pub message: String,
}

/// v2: the request that originally wrote a consent re-sent with the same data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OriginalRequestInformation {
    pub request_id: String,
    #[serde(alias = "subrequestId")]
    pub sub_request_id: String,
}

/// A boolean that IYS's v2 example writes as the string `"true"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LooseBool {
    Bool(bool),
    Text(String),
}

impl LooseBool {
    pub fn is_true(&self) -> bool {
        match self {
            LooseBool::Bool(b) => *b,
            LooseBool::Text(s) => s.eq_ignore_ascii_case("true"),
        }
    }
}

/// One item of a bulk result (`GET …/consents/request/{requestId}`, an array; `[]` = not yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkResultItem {
    pub index: usize,
    pub status: BulkItemStatus,
    #[serde(
        default,
        alias = "subrequestId",
        skip_serializing_if = "Option::is_none"
    )]
    pub sub_request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// Only on `success`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<ConsentDate>,
    /// Only on `failure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CodeMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_add_consent_v2_service: Option<LooseBool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_request_information: Option<OriginalRequestInformation>,
}

// ---------------------------------------------------------------------------------------------
// Status (single, multi), history, changes feed

/// Body of single status and history queries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentQuery {
    pub recipient: String,
    pub recipient_type: RecipientType,
    #[serde(rename = "type")]
    pub consent_type: ConsentType,
}

/// 200 answer of a single status query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentStatusResponse {
    #[serde(
        default,
        with = "optional_lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub consent_date: Option<ConsentDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<ConsentDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    pub recipient: String,
    pub recipient_type: RecipientType,
    pub status: ConsentStatus,
    #[serde(rename = "type")]
    pub consent_type: ConsentType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_code: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_access_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
}

/// Body of a multi-status query (`…/consents/{recipientType}/status/{type}`), ≤ 1000.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientList {
    pub recipients: Vec<String>,
}

/// Answer of a multi-status query: the recipients that are ONAY (RET and unknown are absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MultiStatusResponse {
    pub request_id: String,
    pub list: Vec<String>,
}

/// One movement as history, the changes feed and push deliver it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Movement {
    /// Empty for some TACIR records.
    #[serde(
        default,
        with = "optional_lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub consent_date: Option<ConsentDate>,
    pub creation_date: ConsentDate,
    pub source: Source,
    pub recipient: String,
    pub recipient_type: RecipientType,
    pub status: ConsentStatus,
    #[serde(rename = "type")]
    pub consent_type: ConsentType,
    pub transaction_id: String,
    /// Only in the changes feed, on `IYS_WEB_YENI` movements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citizen_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub total_count: u64,
    pub page_size: u64,
    pub offset: u64,
    /// Only on dealer lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_page: Option<u64>,
}

/// 200 answer of a history query, newest consentDate first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryResponse {
    pub list: Vec<Movement>,
    pub pagination: Pagination,
}

/// 200 answer of the changes feed; 204 (no body) when there is nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesResponse {
    /// Opaque cursor for the next call.
    pub after: String,
    pub list: Vec<Movement>,
}

/// `source` filter of the changes feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeSource {
    /// Movements citizens made through IYS (`IYS_*`), the default.
    #[default]
    Iys,
    /// The provider's own movements (`HS_*`).
    Hs,
}

impl ChangeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeSource::Iys => "IYS",
            ChangeSource::Hs => "HS",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Push

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushConnection {
    pub url: String,
    #[serde(rename = "type")]
    pub consent_type: ConsentType,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for PushConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushConnection")
            .field("url", &self.url)
            .field("type", &self.consent_type)
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// Body of push registration; unregistration sends one [`PushConnection`] bare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRegistration {
    pub connection: Vec<PushConnection>,
}

/// One row of the push registration list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushRegistrationItem {
    pub url: String,
    #[serde(rename = "type")]
    pub consent_type: ConsentType,
    pub register_time: ConsentDate,
    /// Free Turkish text, e.g. "Bağlantı Oluşturuldu".
    pub status: String,
}

/// `{"message": "…"}` answers (push registration and removal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageResponse {
    pub message: String,
}

/// What IYS POSTs to a registered push URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushPayload {
    pub list: Vec<PushItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushItem {
    pub iys_code: u64,
    pub brand_code: u64,
    #[serde(flatten)]
    pub movement: Movement,
}

impl PushPayload {
    /// The fixed payload IYS posts to a URL when it is registered.
    pub fn test_payload() -> PushPayload {
        PushPayload {
            list: vec![PushItem {
                iys_code: 121212,
                brand_code: 121212,
                movement: Movement {
                    consent_date: ConsentDate::parse("2015-05-01 15:00:00").ok(),
                    creation_date: ConsentDate::parse("2015-05-01 15:00:00")
                        .expect("a valid constant"),
                    source: Source::Iys(crate::enums::IysSource::Mobil),
                    recipient: "pushtest@iys.org.tr".into(),
                    recipient_type: RecipientType::Bireysel,
                    status: ConsentStatus::Onay,
                    consent_type: ConsentType::Eposta,
                    transaction_id:
                        "e52ee305e3f16e2bf1e2df3fd93dd9a0f6c0d9b3e7a9d7d8f0c6c1d2a3b4c5d6".into(),
                    citizen_name: None,
                },
            }],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Brands, subscription, integrator

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Brand {
    pub brand_code: u64,
    pub name: String,
    pub master: bool,
    pub stats: BrandStats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BrandStats {
    pub consents: ConsentCounts,
    pub retailers: RetailerCounts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsentCounts {
    pub approval: u64,
    pub rejection: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RetailerCounts {
    pub total: u64,
}

/// Subscription status of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SubscriptionStatus {
    Active,
    Paused,
    Expired,
    Closed,
}

/// `GET /sps/{iysCode}/subscription`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// IYS misspells this key in several ways; all are read.
    #[serde(
        default,
        alias = "subscipritionId",
        alias = "subsciprtionId",
        skip_serializing_if = "Option::is_none"
    )]
    pub subscription_id: Option<String>,
    pub start_date: ConsentDate,
    pub expiration_date: ConsentDate,
    pub subscription_package_name: String,
    pub status: SubscriptionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_limit_exceed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_consent_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iys_code: Option<Code>,
    /// ViA add-ons, kept as IYS sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via_subscription_package: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via_pass_subscription_package: Option<serde_json::Value>,
}

/// One brand a partner (integrator) may act for, with its rights per consent type.
///
/// IYS's examples give the codes as numbers and as strings; both are read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegratorBrand {
    pub brand_code: Code,
    pub name: String,
    pub master: bool,
    pub title: String,
    pub iys_code: Code,
    /// May the partner reconcile (mutabakat) for the brand.
    pub agreement_control: bool,
    /// The partner's right on MESAJ consents; IYS documents only `"write"`.
    #[serde(rename = "MESAJ", default, skip_serializing_if = "Option::is_none")]
    pub mesaj: Option<String>,
    #[serde(rename = "ARAMA", default, skip_serializing_if = "Option::is_none")]
    pub arama: Option<String>,
    #[serde(rename = "EPOSTA", default, skip_serializing_if = "Option::is_none")]
    pub eposta: Option<String>,
    /// May the partner use ViA for the brand.
    pub via_control: bool,
}

/// `GET /integrator/{integratorCode}/sps[/{iysCode}]`: the brands a partner may act for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegratorBrands {
    pub pagination: Pagination,
    pub list: Vec<IntegratorBrand>,
}

// ---------------------------------------------------------------------------------------------
// Dealers (retailers) and their access to consents

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeName {
    pub code: Code,
    pub name: String,
}

/// Dealer status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetailerStatus {
    Active,
    Passive,
    Suspended,
}

/// A dealer: the body of `POST …/retailers` and the items of dealer lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retailer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_code: Option<u64>,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tckn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tin: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mersis: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    pub city: CodeName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub town: Option<CodeName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RetailerStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_access_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_be_deleted: Option<bool>,
}

/// 201 answer of dealer creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetailerCreated {
    pub retailer_code: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetailerList {
    pub pagination: Pagination,
    pub list: Vec<Retailer>,
}

/// `POST …/consents/retailers/access`: give dealers access to one consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetailerAccessGrant {
    #[serde(rename = "type")]
    pub consent_type: ConsentType,
    pub recipient: String,
    pub recipient_type: RecipientType,
    pub retailer_access: Vec<u64>,
}

/// PUT (replace), `…/remove` and `…/remove/all` bodies: many recipients at once (≤ 100).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetailerAccessBulk {
    #[serde(rename = "type")]
    pub consent_type: ConsentType,
    pub recipient_type: RecipientType,
    pub recipients: Vec<String>,
    /// Absent on `remove/all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_access: Option<Vec<u64>>,
}

/// 200 answer of a dealer-access grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionReceipt {
    pub transaction_id: String,
    pub creation_date: ConsentDate,
}

// ---------------------------------------------------------------------------------------------
// Reconciliation (mutabakat)

/// `GET …/changes/{reportDate}/recipients/{recipientType}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeSummary {
    pub change_stats: Vec<ChangeStat>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeStat {
    #[serde(rename = "type")]
    pub consent_type: ConsentType,
    pub consents: Vec<SourceCounts>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCounts {
    pub source: ChangeSource,
    pub approval: u64,
    pub rejection: u64,
    pub pending: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessStatus {
    Queued,
    Inprogress,
    Completed,
    Error,
}

/// `GET …/agreements/{reportDate}`: the daily file's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgreementHash {
    pub process_status: ProcessStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_method: Option<String>,
    pub agreement_status: bool,
}

/// `PUT …/agreements/{reportDate}` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgreementConfirm {
    pub agreement_status: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgreementCaptured {
    pub agreement_captured: bool,
}

/// One row of the daily movement file (`…/changes/{reportDate}/file`, text/csv), in IYS's
/// column order: creationDate, transactionId, recipient, recipientType, type, status,
/// consentDate, source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyCsvRow {
    pub creation_date: ConsentDate,
    pub transaction_id: String,
    pub recipient: String,
    pub recipient_type: RecipientType,
    pub consent_type: ConsentType,
    pub status: ConsentStatus,
    pub consent_date: Option<ConsentDate>,
    /// Empty for a TACIR record the provider sent without a source.
    pub source: Option<Source>,
}

/// Why a daily-file line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("daily file line {line:?}: {reason}")]
pub struct CsvRowError {
    pub line: String,
    pub reason: String,
}

impl DailyCsvRow {
    /// The line without its `\n`. No field can hold a comma (IYS's recipient rules forbid it).
    pub fn to_line(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{}",
            self.creation_date,
            self.transaction_id,
            self.recipient,
            self.recipient_type,
            self.consent_type,
            self.status,
            self.consent_date.map(|d| d.to_string()).unwrap_or_default(),
            self.source.as_ref().map(Source::as_str).unwrap_or_default()
        )
    }

    pub fn parse_line(line: &str) -> Result<DailyCsvRow, CsvRowError> {
        let err = |reason: String| CsvRowError {
            line: line.to_owned(),
            reason,
        };
        let cols: Vec<&str> = line.split(',').collect();
        let [creation, tx, recipient, rtype, ctype, status, cdate, source] = cols[..] else {
            return Err(err(format!("expected 8 columns, found {}", cols.len())));
        };
        Ok(DailyCsvRow {
            creation_date: creation.parse().map_err(|e| err(format!("{e}")))?,
            transaction_id: tx.to_owned(),
            recipient: recipient.to_owned(),
            recipient_type: rtype.parse().map_err(|e| err(format!("{e}")))?,
            consent_type: ctype.parse().map_err(|e| err(format!("{e}")))?,
            status: status.parse().map_err(|e| err(format!("{e}")))?,
            consent_date: if cdate.is_empty() {
                None
            } else {
                Some(cdate.parse().map_err(|e| err(format!("{e}")))?)
            },
            source: if source.is_empty() {
                None
            } else {
                Some(source.parse().map_err(|e| err(format!("{e}")))?)
            },
        })
    }

    /// The whole file: rows sorted by creationDate then transactionId, each ending in `\n`.
    pub fn render_file(rows: &mut [DailyCsvRow]) -> String {
        rows.sort_by(|a, b| {
            (a.creation_date, &a.transaction_id).cmp(&(b.creation_date, &b.transaction_id))
        });
        rows.iter().map(|r| r.to_line() + "\n").collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Info

/// `GET /info/city`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct City {
    pub code: Code,
    pub name: String,
}

/// `GET /info/town`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Town {
    pub name: String,
    pub code: Code,
    pub city_code: Code,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_requests_serialise_as_json_and_form_alike() {
        let req = TokenRequest::Password {
            username: "demo".into(),
            password: "secret".into(),
        };
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"grant_type":"password","username":"demo","password":"secret"})
        );
        assert!(!format!("{req:?}").contains("secret"));
        let refresh: TokenRequest =
            serde_json::from_str(r#"{"grant_type":"refresh_token","refresh_token":"r1"}"#).unwrap();
        assert_eq!(
            refresh,
            TokenRequest::RefreshToken {
                refresh_token: "r1".into()
            }
        );
    }

    #[test]
    fn token_fields_get_iys_oauth_errors() {
        let parse = |v: serde_json::Value| {
            serde_json::from_value::<TokenRequestFields>(v)
                .unwrap()
                .parse()
        };
        let e = parse(serde_json::json!({"username":"a","password":"b"})).unwrap_err();
        assert_eq!(e.error, "invalid_request");
        assert_eq!(e.error_description, "Giriş yöntemi belirtilmemiş.");
        let e = parse(serde_json::json!({"grant_type":"password","username":"a"})).unwrap_err();
        assert_eq!(e.error_description, "Şifre verilmemiş.");
        let e = parse(serde_json::json!({"grant_type":"magic"})).unwrap_err();
        assert_eq!(e.error_description, "Bilinmeyen giriş yöntemi.");
        let e = parse(serde_json::json!({"grant_type":"refresh_token","refresh_token":""}))
            .unwrap_err();
        assert_eq!(e.error, "invalid_grant");
        assert!(
            parse(serde_json::json!({"grant_type":"password","username":"a","password":"b"}))
                .is_ok()
        );
    }

    #[test]
    fn absent_optionals_are_omitted() {
        let c = Consent {
            recipient: "+905321234567".into(),
            consent_type: ConsentType::Mesaj,
            source: None,
            status: ConsentStatus::Onay,
            consent_date: None,
            recipient_type: Some(RecipientType::Tacir),
            retailer_code: None,
            retailer_access: None,
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"recipient":"+905321234567","type":"MESAJ","status":"ONAY","recipientType":"TACIR"}"#
        );
    }

    #[test]
    fn bulk_items_accept_both_sub_request_spellings() {
        let a: BulkResultItem =
            serde_json::from_str(r#"{"index":2,"status":"enqueue","subrequestId":"7ed0"}"#)
                .unwrap();
        let b: BulkResultItem =
            serde_json::from_str(r#"{"index":2,"status":"enqueue","subRequestId":"7ed0"}"#)
                .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.sub_request_id.as_deref(), Some("7ed0"));
    }

    #[test]
    fn daily_csv_rows_round_trip_in_iys_column_order() {
        let line = "2026-05-03 23:58:53,f26ab9f26ab9f26ab9f26ab9f26ab9f26ab9f26ab9f26ab9f26ab9f26ab9f26a,ornek@mail.com,BIREYSEL,EPOSTA,ONAY,2026-05-03 19:39:28,HS_FIZIKSEL_ORTAM";
        let row = DailyCsvRow::parse_line(line).unwrap();
        assert_eq!(row.consent_type, ConsentType::Eposta);
        assert_eq!(row.to_line(), line);
        assert!(DailyCsvRow::parse_line("a,b").is_err());
    }

    #[test]
    fn empty_consent_dates_read_as_absent() {
        let m: Movement = serde_json::from_str(
            r#"{"consentDate":"","creationDate":"2026-05-03 10:00:00","source":"IYS_AHS_HAT_KAPATMA","recipient":"+905321234567","recipientType":"TACIR","status":"RET","type":"MESAJ","transactionId":"ab"}"#,
        )
        .unwrap();
        assert_eq!(m.consent_date, None);
    }
}
