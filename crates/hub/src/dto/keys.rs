//! API keys: only their SHA-256 is stored; the key itself is shown once.

use hub_core::BrandCode;
use hub_store::Scope;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::dto::schema;
use crate::extract::RequestBody;

/// A key to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyInput {
    /// Recorded as the actor of the key's changes; 1–200 bytes, not blank.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// The brand the key is for; omitted or null: every brand (needs a key of every brand with
    /// admin).
    #[serde(default)]
    #[schema(value_type = Option<schema::BrandCodeValue>)]
    pub brand_code: Option<u64>,
    /// At least one.
    #[schema(value_type = Vec<schema::Scope>, min_items = 1)]
    pub scopes: Vec<Scope>,
    /// The key is refused after this instant (must be in the future).
    #[serde(default)]
    #[schema(value_type = Option<schema::Timestamp>)]
    pub expires_at: Option<Timestamp>,
}

impl RequestBody for ApiKeyInput {}

/// An API key, without its secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    #[schema(format = "uuid")]
    pub id: String,
    pub name: String,
    /// null: every brand (bootstrap admin keys).
    #[schema(value_type = Option<schema::BrandCodeValue>, required = true)]
    pub brand_code: Option<BrandCode>,
    #[schema(value_type = Vec<schema::Scope>)]
    pub scopes: Vec<Scope>,
    #[schema(value_type = schema::Timestamp)]
    pub created_at: Timestamp,
    pub revoked: bool,
    /// Recorded at most once a minute per instance.
    #[schema(value_type = Option<schema::Timestamp>, required = true)]
    pub last_used_at: Option<Timestamp>,
    /// After this instant the key is refused.
    #[schema(value_type = Option<schema::Timestamp>, required = true)]
    pub expires_at: Option<Timestamp>,
}

impl From<hub_store::ApiKey> for ApiKey {
    fn from(k: hub_store::ApiKey) -> Self {
        ApiKey {
            id: k.id,
            name: k.name,
            brand_code: k.brand_code,
            scopes: k.scopes,
            created_at: k.created_at,
            revoked: k.revoked,
            last_used_at: k.last_used_at,
            expires_at: k.expires_at,
        }
    }
}

/// A key with its secret, answered only when it is created or rotated.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The key itself, shown only in this answer: the hub keeps only its SHA-256.
    #[schema(pattern = "^ihk_[0-9a-f]{64}$")]
    pub key: String,
}

/// API keys.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKey>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_key_answers_as_the_store_writes_it() {
        let k = hub_store::ApiKey {
            id: "2b0c6f1e-4a4c-4f0e-9a43-3f0d5b1f2c11".into(),
            name: "crm".into(),
            brand_code: Some(BrandCode(600123)),
            scopes: vec![Scope::Read, Scope::Write],
            created_at: Timestamp::UNIX_EPOCH,
            revoked: false,
            last_used_at: None,
            expires_at: Some(Timestamp::UNIX_EPOCH),
        };
        crate::dto::same_json(&ApiKey::from(k.clone()), &k);
    }
}
