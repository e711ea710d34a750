//! Profiles: a brand's user ids with their addresses, for checks by profileId.

use hub_core::BrandCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::dto::schema;
use crate::extract::RequestBody;

/// A profile's addresses and attributes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileInput {
    /// Phones, e-mails or device ids (1–256 characters without spaces); each normalised. A bad
    /// one is refused with field `addresses[i]`.
    #[schema(max_items = 100)]
    pub addresses: Vec<String>,
    /// A JSON object (segment, city…), at most 16 KiB serialised; stored as given.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Value>,
}

impl RequestBody for ProfileInput {}

/// A profile.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(examples(json!({"brandCode": 600123, "externalId": "musteri-48213", "addresses": ["+905321234567", "ayse@example.com", "fcm-token-9f8a7b"], "attributes": {"segment": "gold", "city": "İzmir"}})))]
pub struct Profile {
    #[schema(value_type = schema::BrandCodeValue)]
    pub brand_code: Option<BrandCode>,
    pub external_id: String,
    /// Normalised: phones in E.164, lower-case e-mails, device ids as given.
    pub addresses: Vec<String>,
    /// The JSON object given with the profile, or null.
    #[schema(value_type = Option<Object>, required = true)]
    pub attributes: Option<Value>,
}

impl From<hub_store::Profile> for Profile {
    fn from(p: hub_store::Profile) -> Self {
        Profile {
            brand_code: p.brand_code,
            external_id: p.external_id,
            addresses: p.addresses,
            attributes: p.attributes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_answers_as_the_store_writes_it() {
        let p = hub_store::Profile {
            brand_code: Some(BrandCode(600123)),
            external_id: "m-1".into(),
            addresses: vec!["+905321234567".into()],
            attributes: Some(serde_json::json!({"a": 1})),
        };
        crate::dto::same_json(&Profile::from(p.clone()), &p);
    }
}
