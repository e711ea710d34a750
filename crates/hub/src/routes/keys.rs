//! API keys: create, list, revoke, rotate. Only a key's SHA-256 is stored.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hub_store::{NewApiKey, Scope};

use crate::auth::{Caller, hash_key};
use crate::dto::error::ErrorResponse;
use crate::dto::keys::{ApiKey, ApiKeyCreated, ApiKeyInput, ApiKeyList};
use crate::dto::params::KeyIdPath;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path};
use crate::routes::listing::audit;
use crate::{HubDb, HubState, api, new_key};

/// Create an API key
///
/// Needs an admin key of the brand (or of every brand; a key without brandCode needs a key of
/// every brand). The key is in the answer, once: only its SHA-256 is stored.
#[utoipa::path(
    post,
    path = "/api/v1/api-keys",
    tag = "api-keys",
    operation_id = "createApiKey",
    security(("apiKey" = ["admin"])),
    request_body(content = ApiKeyInput, examples(
        ("crm" = (summary = "A key for the CRM", value = json!({"name": "crm-prod", "brandCode": 600123, "scopes": ["read", "write"]}))),
        ("expiring" = (summary = "A read key that expires", value = json!({"name": "reporting", "brandCode": 600123, "scopes": ["read"], "expiresAt": "2027-01-01T00:00:00Z"})))
    )),
    responses(
        (status = 201, description = "Created; `key` is shown only here.", body = ApiKeyCreated, examples(
            ("created" = (summary = "Created", value = json!({"id": "0c29b26b-179f-4689-bc45-cd55f364b8fd", "name": "crm-prod", "brandCode": 600123, "scopes": ["read", "write"], "createdAt": "2026-11-28T09:20:46.4Z", "revoked": false, "lastUsedAt": null, "expiresAt": null, "key": "ihk_49ba9ee1e727bdce6a534a3c1e40856ab26c1d1e3baa30d21118857d308c3454"})))
        )),
        (status = 400, description = "Bad request (see the error code).", body = ErrorResponse, examples(
            ("badBrandCode" = (summary = "brandCode 0", value = json!({"error": {"code": "invalid_value", "message": "\"0\" is not a valid brandCode: expected a positive integer (the brand's IYS number)", "field": "brandCode", "value": "0"}})))
        )),
        (status = 404, description = "No such brand (or a key of another brand).", body = ErrorResponse, examples(
            ("brandNotFound" = (summary = "No such brand", value = json!({"error": {"code": "not_found", "message": "brand 600123 not found", "field": "brandCode"}})))
        )),
        (status = 422, description = "The body breaks a rule (see the error code, field and value).", body = ErrorResponse, examples(
            ("noScopes" = (summary = "No scope", value = json!({"error": {"code": "invalid_value", "message": "give at least one scope: read, write, admin", "field": "scopes"}}))),
            ("badScope" = (summary = "Unknown scope", value = json!({"error": {"code": "invalid_body", "message": "unknown variant `owner`, expected one of `read`, `write`, `admin`", "field": "scopes[0]", "value": "owner"}}))),
            ("pastExpiry" = (summary = "expiresAt in the past", value = json!({"error": {"code": "invalid_value", "message": "expiresAt must be in the future", "field": "expiresAt", "value": "2020-01-01T00:00:00Z"}})))
        )),
    )
)]
pub async fn create_key<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    body: JsonBody<ApiKeyInput>,
) -> ApiResult<(StatusCode, Json<ApiKeyCreated>)> {
    let k = body.parse()?;
    let brand = k
        .brand_code
        .map(|b| api::brand_code(&b.to_string()))
        .transpose()?;
    caller.require(Scope::Admin, brand)?;
    api::check_name(&k.name)?;
    if k.scopes.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_value",
            "give at least one scope: read, write, admin",
        )
        .field("scopes"));
    }
    if let Some(b) = brand
        && hub.store.brand(b).await?.is_none()
    {
        return Err(ApiError::not_found(format!("brand {b} not found")).field("brandCode"));
    }
    if let Some(t) = k.expires_at
        && t <= jiff::Timestamp::now()
    {
        return Err(
            ApiError::unprocessable("invalid_value", "expiresAt must be in the future")
                .field("expiresAt")
                .value(t.to_string()),
        );
    }
    let key = new_key();
    let stored = hub
        .store
        .create_api_key(NewApiKey {
            name: k.name,
            hash: hash_key(&key),
            brand_code: brand,
            scopes: k.scopes,
            expires_at: k.expires_at,
        })
        .await?;
    let detail = serde_json::json!({"id": stored.id, "name": stored.name, "scopes": stored.scopes, "expiresAt": stored.expires_at});
    audit(&hub, stored.brand_code, &caller, "api_key_created", detail).await;
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreated {
            api_key: stored.into(),
            key,
        }),
    ))
}

/// List API keys
///
/// Needs an admin key. The keys themselves are never shown again. A brand's admin key sees the
/// keys of its brand; the provider's admin key sees every key.
#[utoipa::path(
    get,
    path = "/api/v1/api-keys",
    tag = "api-keys",
    operation_id = "listApiKeys",
    security(("apiKey" = ["admin"])),
    responses(
        (status = 200, description = "The keys.", body = ApiKeyList, examples(
            ("keys" = (summary = "Two keys", value = json!({"apiKeys": [
                {"id": "54ac46ba-6354-4a63-9ab6-268a57670440", "name": "bootstrap-admin", "brandCode": null, "scopes": ["admin"], "createdAt": "2026-11-20T08:00:00.574Z", "revoked": false, "lastUsedAt": "2026-11-28T09:20:46.4Z", "expiresAt": null},
                {"id": "0c29b26b-179f-4689-bc45-cd55f364b8fd", "name": "crm-prod", "brandCode": 600123, "scopes": ["read", "write"], "createdAt": "2026-11-28T09:20:46.4Z", "revoked": false, "lastUsedAt": null, "expiresAt": null}
            ]})))
        )),
    )
)]
pub async fn list_keys<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
) -> ApiResult<Json<ApiKeyList>> {
    caller.require(Scope::Admin, caller.0.brand_code)?;
    let api_keys = hub
        .store
        .api_keys()
        .await?
        .into_iter()
        .filter(|k| caller.0.brand_code.is_none() || k.brand_code == caller.0.brand_code)
        .map(ApiKey::from)
        .collect();
    Ok(Json(ApiKeyList { api_keys }))
}

/// The key `id`, if the caller may manage it (admin of its brand, or the provider's admin).
async fn managed_key<S: HubDb>(
    hub: &HubState<S>,
    caller: &Caller,
    id: &str,
) -> ApiResult<hub_store::ApiKey> {
    let missing = || ApiError::not_found(format!("API key {id} not found"));
    let key = hub.store.api_key(id).await?.ok_or_else(missing)?;
    match (caller.0.brand_code, key.brand_code) {
        (None, _) => caller.require(Scope::Admin, None)?,
        (Some(mine), Some(theirs)) if mine == theirs => caller.require(Scope::Admin, Some(mine))?,
        // Another brand's key, or a provider key seen from a brand: as if it did not exist.
        _ => return Err(missing()),
    }
    Ok(key)
}

/// Revoke an API key
///
/// Scope: admin of the key's brand, or the provider's admin. Effective at once on this instance,
/// on others within the key cache's life (IYSHUB_CACHE_TTL_MS). The last usable provider admin
/// key cannot be revoked: create another first.
#[utoipa::path(
    delete,
    path = "/api/v1/api-keys/{id}",
    tag = "api-keys",
    operation_id = "revokeApiKey",
    params(KeyIdPath),
    security(("apiKey" = ["admin"])),
    responses(
        (status = 204, description = "Revoked."),
        (status = 404, description = "No such key (or one of another brand).", body = ErrorResponse, examples(
            ("keyNotFound" = (summary = "No such key", value = json!({"error": {"code": "not_found", "message": "API key 0c29b26b-179f-4689-bc45-cd55f364b8fd not found"}})))
        )),
        (status = 409, description = "The last usable provider admin key.", body = ErrorResponse),
    )
)]
pub async fn revoke_key<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let key = managed_key(&hub, &caller, &id).await?;
    hub.store
        .revoke_api_key(&key.id, jiff::Timestamp::now())
        .await?;
    hub.caches.api_keys.clear();
    tracing::info!(key = %key.id, name = %key.name, by = %caller.name(), "API key revoked");
    let detail = serde_json::json!({"id": key.id, "name": key.name});
    audit(&hub, key.brand_code, &caller, "api_key_revoked", detail).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Give an API key a new secret
///
/// Scope: admin of the key's brand, or the provider's admin. The key keeps its id, name, scopes
/// and expiry; the old secret stops working at once. The new one is in `key`, shown once.
#[utoipa::path(
    post,
    path = "/api/v1/api-keys/{id}/rotate",
    tag = "api-keys",
    operation_id = "rotateApiKey",
    params(KeyIdPath),
    security(("apiKey" = ["admin"])),
    responses(
        (status = 200, description = "The key with its new secret.", body = ApiKeyCreated),
        (status = 404, description = "No such key (or one of another brand).", body = ErrorResponse),
        (status = 409, description = "The key is revoked or expired.", body = ErrorResponse, examples(
            ("unusable" = (summary = "Revoked or expired", value = json!({"error": {"code": "conflict", "message": "a revoked or expired key cannot be rotated; create a new one"}})))
        )),
    )
)]
pub async fn rotate_key<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiKeyCreated>> {
    let key = managed_key(&hub, &caller, &id).await?;
    if !key.usable(jiff::Timestamp::now()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "a revoked or expired key cannot be rotated; create a new one",
        ));
    }
    let secret = new_key();
    let stored = hub
        .store
        .rotate_api_key(&key.id, &hash_key(&secret))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("API key {id} not found")))?;
    hub.caches.api_keys.clear();
    tracing::info!(key = %key.id, by = %caller.name(), "API key rotated");
    let detail = serde_json::json!({"id": key.id, "name": key.name});
    audit(&hub, key.brand_code, &caller, "api_key_rotated", detail).await;
    Ok(Json(ApiKeyCreated {
        api_key: stored.into(),
        key: secret,
    }))
}
