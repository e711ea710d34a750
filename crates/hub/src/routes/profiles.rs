//! Profiles: a brand's user ids with their addresses, for checks by profileId.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hub_store::Scope;

use crate::api::brand_for;
use crate::auth::Caller;
use crate::dto::error::ErrorResponse;
use crate::dto::params::{BrandCodePath, ExternalIdPath};
use crate::dto::profiles::{Profile, ProfileInput};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path};
use crate::input;
use crate::{HubDb, HubState};

/// Largest profile `attributes` object, serialised.
const MAX_ATTRIBUTES: usize = 16 * 1024;

/// Create or replace a profile
///
/// Scope: write. A user id with its addresses, for checks by profileId; the addresses are
/// replaced as a whole.
#[utoipa::path(
    put,
    path = "/api/v1/brands/{brandCode}/profiles/{externalId}",
    tag = "profiles",
    operation_id = "putProfile",
    params(BrandCodePath, ExternalIdPath),
    security(("apiKey" = ["write"])),
    request_body(content = ProfileInput, examples(
        ("profile" = (summary = "Ayşe's phone, e-mail and app", value = json!({"addresses": ["0532 123 45 67", "Ayse@Example.com", "fcm-token-9f8a7b"], "attributes": {"segment": "gold", "city": "İzmir"}})))
    )),
    responses(
        (status = 200, description = "The stored profile (addresses normalised).", body = Profile),
        (status = 422, description = "The body breaks a rule (see the error code, field and value).", body = ErrorResponse, examples(
            ("badAddress" = (summary = "A bad address", value = json!({"error": {"code": "invalid_value", "message": "recipient must be a phone, an e-mail or a device id of 1–256 characters without spaces", "field": "addresses[0]", "value": "bad address"}}))),
            ("tooMany" = (summary = "Over 100 addresses", value = json!({"error": {"code": "invalid_value", "message": "at most 100 addresses", "field": "addresses"}}))),
            ("badId" = (summary = "externalId with a space", value = json!({"error": {"code": "invalid_value", "message": "externalId must be 1–256 characters without spaces", "field": "externalId", "value": "musteri 1"}}))),
            ("badAttributes" = (summary = "attributes not an object", value = json!({"error": {"code": "invalid_value", "message": "attributes must be a JSON object of at most 16384 bytes", "field": "attributes"}})))
        )),
    )
)]
pub async fn put_profile<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, id)): Path<(String, String)>,
    body: JsonBody<ProfileInput>,
) -> ApiResult<Json<Profile>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Write).await?;
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_whitespace) {
        return Err(ApiError::unprocessable(
            "invalid_value",
            "externalId must be 1–256 characters without spaces",
        )
        .field("externalId")
        .value(id));
    }
    let p = body.parse()?;
    if let Some(a) = &p.attributes
        && (!a.is_object() || a.to_string().len() > MAX_ATTRIBUTES)
    {
        return Err(ApiError::unprocessable(
            "invalid_value",
            format!("attributes must be a JSON object of at most {MAX_ATTRIBUTES} bytes"),
        )
        .field("attributes"));
    }
    if p.addresses.len() > 100 {
        return Err(
            ApiError::unprocessable("invalid_value", "at most 100 addresses").field("addresses"),
        );
    }
    let mut addresses = Vec::with_capacity(p.addresses.len());
    for (i, a) in p.addresses.iter().enumerate() {
        let normalised = iys::Recipient::normalise(a)
            .map(|r| r.as_str().to_owned())
            .or_else(|_| input::normalise_recipient(a, hub_core::Channel::Push))
            .map_err(|e| e.field(format!("addresses[{i}]")))?;
        addresses.push(normalised);
    }
    let profile = hub_store::Profile {
        brand_code: Some(brand.brand_code),
        external_id: id,
        addresses,
        attributes: p.attributes,
    };
    Ok(Json(hub.store.upsert_profile(profile).await?.into()))
}

/// Get a profile
///
/// Scope: read.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/profiles/{externalId}",
    tag = "profiles",
    operation_id = "getProfile",
    params(BrandCodePath, ExternalIdPath),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "The profile.", body = Profile),
        (status = 404, description = "Not found.", body = ErrorResponse, examples(
            ("profileNotFound" = (summary = "No such profile", value = json!({"error": {"code": "not_found", "message": "profile yok not found"}})))
        )),
    )
)]
pub async fn get_profile<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, id)): Path<(String, String)>,
) -> ApiResult<Json<Profile>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    hub.store
        .profile(brand.brand_code, &id)
        .await?
        .map(|p| Json(p.into()))
        .ok_or_else(|| ApiError::not_found(format!("profile {id} not found")))
}

/// Delete a profile
///
/// Scope: write. The profile's category consents and history stay.
#[utoipa::path(
    delete,
    path = "/api/v1/brands/{brandCode}/profiles/{externalId}",
    tag = "profiles",
    operation_id = "deleteProfile",
    params(BrandCodePath, ExternalIdPath),
    security(("apiKey" = ["write"])),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "Not found.", body = ErrorResponse, examples(
            ("profileNotFound" = (summary = "No such profile", value = json!({"error": {"code": "not_found", "message": "profile musteri-48213 not found"}})))
        )),
    )
)]
pub async fn delete_profile<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let brand = brand_for(&hub, &caller, &code, Scope::Write).await?;
    if hub.store.delete_profile(brand.brand_code, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("profile {id} not found")))
    }
}
