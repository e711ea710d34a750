//! Consents: add (v1/v2), bulk (v1/v2), bulk results.

use serde::{Deserialize, Serialize};

use crate::consent_date::ConsentDate;
use crate::enums::{ConsentStatus, ConsentType, RecipientType, Source};

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
