//! Status (single, multi), history, changes feed.

use serde::{Deserialize, Serialize};

use crate::consent_date::{ConsentDate, optional_lenient};
use crate::enums::{ConsentStatus, ConsentType, RecipientType, Source};

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
