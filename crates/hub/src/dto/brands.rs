//! Brands: their name, IYS code, mode and IYS connection.

use hub_core::{BrandCode, Mode};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::dto::schema;
use crate::extract::RequestBody;

/// A brand to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrandCreate {
    /// The brand's IYS number: a positive integer (else 400 invalid_value).
    #[schema(value_type = schema::BrandCodeValue)]
    pub brand_code: u64,
    /// The service provider's IYS code; defaults to brandCode.
    #[serde(default)]
    pub iys_code: Option<u64>,
    /// 1–200 bytes, not blank.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Defaults to integrator.
    #[serde(default)]
    #[schema(value_type = Option<schema::Mode>)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub iys: Option<IysConnectionInput>,
}

impl RequestBody for BrandCreate {}

/// Changes to a brand: only the fields given change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrandUpdate {
    /// 1–200 bytes, not blank.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[serde(default)]
    pub iys_code: Option<u64>,
    /// A switch between sync and integrator re-evaluates the brand's pending and held changes.
    #[serde(default)]
    #[schema(value_type = Option<schema::Mode>)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub iys: Option<IysConnectionInput>,
}

impl RequestBody for BrandUpdate {}

/// How the hub reaches IYS for the brand. Only the provider's admin key (a key for every brand)
/// may set it (else 403 forbidden, field `iys`). The base URL must be on the instance's allowed
/// list. Fields left out keep their value; an empty string clears one. Passwords are write-only:
/// the API password is sealed with the instance's secret key (IYSHUB_SECRET_KEY), the push
/// password hashed with argon2; answers only say whether they are set. A brand without a
/// connection uses the instance's (IYSHUB_IYS_URL/IYSHUB_IYS_USERNAME or the built-in
/// simulator).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IysConnectionInput {
    /// IYS's base URL (else 422 url_not_allowed).
    #[serde(default)]
    #[schema(max_length = 256, examples("https://api.sandbox.iys.org.tr"))]
    pub base_url: Option<String>,
    /// The IYS API user.
    #[serde(default)]
    #[schema(max_length = 256, examples("ornek-api"))]
    pub username: Option<String>,
    /// The IYS API user's password (stored sealed). Without one the instance's
    /// IYSHUB_IYS_PASSWORD is used.
    #[serde(default)]
    #[schema(max_length = 256, write_only)]
    pub password: Option<String>,
    /// HTTP Basic user IYS uses for push deliveries to /api/v1/iys/push/{brandCode}.
    #[serde(default)]
    #[schema(max_length = 256, examples("iyspush"))]
    pub push_username: Option<String>,
    /// The push password (stored as an argon2 hash).
    #[serde(default)]
    #[schema(max_length = 256, write_only)]
    pub push_password: Option<String>,
}

/// A brand.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(examples(json!({
    "brandCode": 600123, "iysCode": 600123, "name": "Örnek Marka", "mode": "integrator",
    "iys": {"baseUrl": "https://api.sandbox.iys.org.tr", "username": "ornek-api", "passwordSet": true, "pushUsername": null, "pushPasswordSet": false},
    "createdAt": "2026-11-20T08:00:00.57Z", "updatedAt": "2026-11-28T09:12:44.879Z"
})))]
pub struct Brand {
    #[schema(value_type = schema::BrandCodeValue)]
    pub brand_code: BrandCode,
    /// The service provider's IYS code (defaults to brandCode).
    pub iys_code: u64,
    pub name: String,
    #[schema(value_type = schema::Mode)]
    pub mode: Mode,
    pub iys: IysConnectionView,
    #[schema(value_type = schema::Timestamp)]
    pub created_at: Timestamp,
    #[schema(value_type = schema::Timestamp)]
    pub updated_at: Timestamp,
}

/// A brand's IYS connection as answered: passwords only as whether they are set.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IysConnectionView {
    #[schema(required = true)]
    pub base_url: Option<String>,
    #[schema(required = true)]
    pub username: Option<String>,
    pub password_set: bool,
    #[schema(required = true)]
    pub push_username: Option<String>,
    pub push_password_set: bool,
}

impl From<&hub_store::Brand> for Brand {
    fn from(b: &hub_store::Brand) -> Self {
        Brand {
            brand_code: b.brand_code,
            iys_code: b.iys_code,
            name: b.name.clone(),
            mode: b.mode,
            iys: IysConnectionView {
                base_url: b.iys.base_url.clone(),
                username: b.iys.username.clone(),
                password_set: b.iys.password_sealed.is_some(),
                push_username: b.iys.push_username.clone(),
                push_password_set: b.iys.push_password_hash.is_some(),
            },
            created_at: b.created_at,
            updated_at: b.updated_at,
        }
    }
}

/// The brands a key may read.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrandList {
    pub brands: Vec<Brand>,
}
