//! Brands, subscription, integrator.

use serde::{Deserialize, Serialize};

use super::{Code, Pagination};
use crate::consent_date::ConsentDate;

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
