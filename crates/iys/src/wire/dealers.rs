//! Dealers (retailers) and their access to consents.

use serde::{Deserialize, Serialize};

use super::{Code, Pagination};
use crate::consent_date::ConsentDate;
use crate::enums::{ConsentType, RecipientType};

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
