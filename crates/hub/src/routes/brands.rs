//! Brands: create, list, read, update (name, IYS code, mode, IYS connection).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hub_store::{BrandPatch, IysConnection, IysPolicy, NewBrand, Scope};

use crate::api::{brand_code, brand_for, check_name};
use crate::auth::Caller;
use crate::dto::brands::{Brand, BrandCreate, BrandList, BrandUpdate, IysConnectionInput};
use crate::dto::error::ErrorResponse;
use crate::dto::params::BrandCodePath;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path};
use crate::routes::listing::audit;
use crate::{HubDb, HubState};

/// Create a brand
///
/// Needs an `admin` key of every brand (a key without brandCode).
#[utoipa::path(
    post,
    path = "/api/v1/brands",
    tag = "brands",
    operation_id = "createBrand",
    security(("apiKey" = ["admin"])),
    request_body(content = BrandCreate, examples(
        ("brand" = (summary = "A brand in sync mode", value = json!({"brandCode": 700456, "name": "Deneme Mağazası", "mode": "sync"}))),
        ("withIys" = (summary = "With its IYS connection", value = json!({"brandCode": 600123, "iysCode": 600123, "name": "Örnek Marka", "iys": {"baseUrl": "https://api.sandbox.iys.org.tr", "username": "ornek-api"}})))
    )),
    responses(
        (status = 201, description = "Created.", body = Brand, examples(
            ("created" = (summary = "Created", value = json!({"brandCode": 700456, "iysCode": 700456, "name": "Deneme Mağazası", "mode": "sync", "iys": {"baseUrl": null, "username": null, "passwordSet": false, "pushUsername": null, "pushPasswordSet": false}, "createdAt": "2026-11-28T09:15:02.891Z", "updatedAt": "2026-11-28T09:15:02.891Z"})))
        )),
        (status = 400, description = "Bad request (see the error code).", body = ErrorResponse, examples(
            ("badBrandCode" = (summary = "brandCode 0", value = json!({"error": {"code": "invalid_value", "message": "\"0\" is not a valid brandCode: expected a positive integer (the brand's IYS number)", "field": "brandCode", "value": "0"}})))
        )),
        (status = 403, description = "Not an admin key of every brand (or, setting `iys`, not the provider's admin key)."),
        (status = 409, description = "The brand exists.", body = ErrorResponse, examples(
            ("conflict" = (summary = "Exists", value = json!({"error": {"code": "conflict", "message": "brand 700456 already exists"}})))
        )),
        (status = 422, description = "The body breaks a rule (see the error code, field and value).", body = ErrorResponse, examples(
            ("unknownField" = (summary = "Unknown field", value = json!({"error": {"code": "invalid_body", "message": "unknown field `foo`, expected one of `brandCode`, `iysCode`, `name`, `mode`, `iys`", "field": "foo"}}))),
            ("missingField" = (summary = "Missing field", value = json!({"error": {"code": "invalid_body", "message": "missing field `brandCode`", "field": "brandCode"}}))),
            ("badMode" = (summary = "Unknown mode", value = json!({"error": {"code": "invalid_body", "message": "unknown variant `master`, expected `sync` or `integrator`", "field": "mode", "value": "master"}}))),
            ("badName" = (summary = "Blank name", value = json!({"error": {"code": "invalid_value", "message": "name must be 1–200 characters", "field": "name", "value": " "}}))),
            ("urlNotAllowed" = (summary = "An IYS URL not on the allowed list", value = json!({"error": {"code": "url_not_allowed", "message": "the IYS base URL must be one of: https://api.iys.org.tr, https://api.sandbox.iys.org.tr (an operator adds others with IYSHUB_IYS_ALLOWED_URLS)", "field": "iys.baseUrl", "value": "https://iys.example.com"}}))),
            ("noSecretKey" = (summary = "A password without the instance's secret key", value = json!({"error": {"code": "no_secret_key", "message": "this instance has no secret key (IYSHUB_SECRET_KEY) to seal IYS passwords with", "field": "iys.password"}})))
        )),
    )
)]
pub async fn create_brand<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    body: JsonBody<BrandCreate>,
) -> ApiResult<(StatusCode, Json<Brand>)> {
    caller.require(Scope::Admin, None)?;
    let input = body.parse()?;
    let code = brand_code(&input.brand_code.to_string())?;
    check_name(&input.name)?;
    let iys = match input.iys {
        Some(i) => apply(i, &hub.iys, IysConnection::default())?,
        None => IysConnection::default(),
    };
    let brand = hub
        .store
        .create_brand(NewBrand {
            brand_code: code,
            iys_code: input.iys_code.unwrap_or(input.brand_code),
            name: input.name,
            mode: input.mode.unwrap_or_default(),
            iys,
        })
        .await?;
    let detail = serde_json::json!({"name": brand.name, "iysCode": brand.iys_code, "mode": brand.mode.as_str(), "iysBaseUrl": brand.iys.base_url});
    audit(
        &hub,
        Some(brand.brand_code),
        &caller,
        "brand_created",
        detail,
    )
    .await;
    Ok((StatusCode::CREATED, Json((&brand).into())))
}

/// List brands
///
/// The brands the key may read (any valid key; a brand key sees its brand only if it has read
/// or admin).
#[utoipa::path(
    get,
    path = "/api/v1/brands",
    tag = "brands",
    operation_id = "listBrands",
    security(("apiKey" = [])),
    responses(
        (status = 200, description = "The brands.", body = BrandList, examples(
            ("brands" = (summary = "Two brands", value = json!({"brands": [
                {"brandCode": 600123, "iysCode": 600123, "name": "Örnek Marka", "mode": "integrator", "iys": {"baseUrl": "https://api.sandbox.iys.org.tr", "username": "ornek-api", "passwordSet": true, "pushUsername": "iyspush", "pushPasswordSet": true}, "createdAt": "2026-11-20T08:00:00.57Z", "updatedAt": "2026-11-28T09:12:44.879Z"},
                {"brandCode": 700456, "iysCode": 700456, "name": "Deneme Mağazası", "mode": "sync", "iys": {"baseUrl": null, "username": null, "passwordSet": false, "pushUsername": null, "pushPasswordSet": false}, "createdAt": "2026-11-28T09:15:02.891Z", "updatedAt": "2026-11-28T09:15:02.891Z"}
            ]})))
        )),
    )
)]
pub async fn list_brands<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
) -> ApiResult<Json<BrandList>> {
    let brands = hub
        .store
        .brands()
        .await?
        .iter()
        .filter(|b| caller.0.allows(Scope::Read, Some(b.brand_code)))
        .map(Brand::from)
        .collect();
    Ok(Json(BrandList { brands }))
}

/// Get a brand
///
/// Scope: read.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}",
    tag = "brands",
    operation_id = "getBrand",
    params(BrandCodePath),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "The brand.", body = Brand),
    )
)]
pub async fn get_brand<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Json<Brand>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    Ok(Json((&brand).into()))
}

/// Update a brand
///
/// Scope: admin. Changes name, iysCode, mode (switching between sync and integrator, which
/// re-evaluates the brand's pending and held changes) or the IYS connection (the IYS code and
/// connection only with the provider's admin key); fields left out stay.
#[utoipa::path(
    patch,
    path = "/api/v1/brands/{brandCode}",
    tag = "brands",
    operation_id = "updateBrand",
    params(BrandCodePath),
    security(("apiKey" = ["admin"])),
    request_body(content = BrandUpdate, examples(
        ("mode" = (summary = "Switch to sync mode", value = json!({"mode": "sync"}))),
        ("iys" = (summary = "Point at the IYS sandbox", value = json!({"iys": {"baseUrl": "https://api.sandbox.iys.org.tr", "username": "ornek-api"}})))
    )),
    responses(
        (status = 200, description = "The updated brand.", body = Brand),
        (status = 403, description = "The API key lacks the `admin` scope for this brand, or sets `iys` or another `iysCode` without being the provider's admin key.", body = ErrorResponse, examples(
            ("iys" = (summary = "A brand's admin setting the IYS connection", value = json!({"error": {"code": "forbidden", "message": "only the provider's admin key may set a brand's IYS connection", "field": "iys"}}))),
            ("iysCode" = (summary = "A brand's admin moving its IYS code", value = json!({"error": {"code": "forbidden", "message": "only the provider's admin key may set a brand's IYS code", "field": "iysCode"}})))
        )),
        (status = 422, description = "The body breaks a rule (see the error code, field and value).", body = ErrorResponse, examples(
            ("badMode" = (summary = "Unknown mode", value = json!({"error": {"code": "invalid_body", "message": "unknown variant `master`, expected `sync` or `integrator`", "field": "mode", "value": "master"}}))),
            ("badName" = (summary = "Blank name", value = json!({"error": {"code": "invalid_value", "message": "name must be 1–200 characters", "field": "name", "value": " "}})))
        )),
    )
)]
pub async fn update_brand<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
    body: JsonBody<BrandUpdate>,
) -> ApiResult<Json<Brand>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Admin).await?;
    let u = body.parse()?;
    if u.iys.is_some() {
        require_provider_admin(&caller, "iys")?;
    }
    // The IYS code is the provider's too: a brand's admin moving it would act under another
    // provider's code with the provider's credentials.
    if u.iys_code.is_some_and(|c| c != brand.iys_code) {
        require_provider_admin(&caller, "iysCode")?;
    }
    // Settings first: a refused one leaves the mode as it was.
    let updated =
        update_brand_settings(&hub, &brand, u.name, u.iys_code, u.iys, caller.name()).await?;
    // A mode switch is recorded and re-evaluates pending and held changes in one transaction.
    let updated = match u.mode.filter(|m| *m != brand.mode) {
        Some(mode) => {
            let switched = hub
                .store
                .switch_mode(brand.brand_code, mode, caller.name())
                .await?
                .ok_or_else(|| ApiError::not_found(format!("brand {code} not found")))?;
            hub.caches.brands.remove(&brand.brand_code);
            switched
        }
        None => updated,
    };
    Ok(Json((&updated).into()))
}

/// Changes a brand's name, IYS code or IYS connection (fields left `None` stay), checked as the
/// API checks them, and records what changed (never the secrets) in the audit log. The caller
/// has already made sure `actor` may; shared by the API and the console.
pub async fn update_brand_settings<S: HubDb>(
    hub: &HubState<S>,
    brand: &hub_store::Brand,
    name: Option<String>,
    iys_code: Option<u64>,
    iys: Option<IysConnectionInput>,
    actor: &str,
) -> ApiResult<hub_store::Brand> {
    if let Some(n) = &name {
        check_name(n)?;
    }
    // What changed, for the audit log (never the secrets themselves).
    let detail = serde_json::json!({
        "name": name, "iysCode": iys_code,
        "iysConnection": iys.is_some(),
    });
    let iys = match iys {
        Some(i) => Some(apply(i, &hub.iys, brand.iys.clone())?),
        None => None,
    };
    let updated = hub
        .store
        .update_brand(
            brand.brand_code,
            BrandPatch {
                name,
                iys_code,
                mode: None,
                iys,
            },
        )
        .await?
        .ok_or_else(|| ApiError::not_found(format!("brand {} not found", brand.brand_code)))?;
    hub.caches.brands.remove(&brand.brand_code);
    let connection_changed = updated.iys != brand.iys;
    if detail["name"] != serde_json::Value::Null || iys_code.is_some() || connection_changed {
        let mut detail = detail;
        detail["iysConnection"] = serde_json::json!(connection_changed.then(|| serde_json::json!({
            "baseUrl": updated.iys.base_url, "username": updated.iys.username,
            "passwordChanged": updated.iys.password_sealed != brand.iys.password_sealed,
            "pushUsername": updated.iys.push_username,
            "pushPasswordChanged": updated.iys.push_password_hash != brand.iys.push_password_hash,
        })));
        if let Err(e) = hub
            .store
            .audit(Some(brand.brand_code), actor, "brand_updated", detail)
            .await
        {
            tracing::warn!(error = %e, "could not record a brand update in the audit log");
        }
    }
    Ok(updated)
}

/// Only the provider's admin (a key for every brand) may set IYS connections and IYS codes: a
/// brand's own admin could otherwise point the hub's IYS credentials at a server of its
/// choosing, or at another provider's brands.
fn require_provider_admin(caller: &Caller, field: &str) -> ApiResult<()> {
    caller.require(Scope::Admin, None).map_err(|_| {
        ApiError::forbidden(format!(
            "only the provider's admin key may set a brand's {}",
            if field == "iys" {
                "IYS connection"
            } else {
                "IYS code"
            }
        ))
        .field(field)
    })
}

/// Longest user name or password the API takes.
const MAX_CREDENTIAL: usize = 256;

/// A credential as given: left out (`None`), cleared (`Some(None)`, an empty string) or set.
fn credential(field: &str, v: Option<String>) -> ApiResult<Option<Option<String>>> {
    match v {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(Some(None)),
        Some(s) if s.len() > MAX_CREDENTIAL || s.chars().any(char::is_control) => Err(
            ApiError::unprocessable(
                "invalid_value",
                format!("{field} must be at most {MAX_CREDENTIAL} characters, none of them control characters"),
            )
            .field(format!("iys.{field}")),
        ),
        Some(s) => Ok(Some(Some(s))),
    }
}

/// The stored connection after `input`, checked against the instance's policy. Passwords are
/// write-only: the API password is sealed with the instance's secret key, the push password
/// hashed with argon2.
fn apply(
    input: IysConnectionInput,
    policy: &IysPolicy,
    mut c: IysConnection,
) -> ApiResult<IysConnection> {
    if let Some(url) = credential("baseUrl", input.base_url)? {
        if let Some(u) = &url
            && !policy.allows(u)
        {
            return Err(ApiError::unprocessable(
                "url_not_allowed",
                format!(
                    "the IYS base URL must be one of: {} (an operator adds others with IYSHUB_IYS_ALLOWED_URLS)",
                    policy.allowed_urls.join(", ")
                ),
            )
            .field("iys.baseUrl")
            .value(u.as_str()));
        }
        c.base_url = url.map(|u| u.trim_end_matches('/').to_owned());
    }
    if let Some(user) = credential("username", input.username)? {
        c.username = user;
    }
    if let Some(password) = credential("password", input.password)? {
        c.password_sealed = match password {
            None => None,
            Some(p) => {
                let key = policy.secret_key.as_ref().ok_or_else(|| {
                    ApiError::unprocessable(
                        "no_secret_key",
                        "this instance has no secret key (IYSHUB_SECRET_KEY) to seal IYS passwords with",
                    )
                    .field("iys.password")
                })?;
                Some(key.seal(&p).map_err(ApiError::internal)?)
            }
        };
    }
    if let Some(user) = credential("pushUsername", input.push_username)? {
        c.push_username = user;
    }
    if let Some(password) = credential("pushPassword", input.push_password)? {
        c.push_password_hash = password
            .map(|p| hub_secrets::hash_password(&p))
            .transpose()
            .map_err(ApiError::internal)?;
    }
    Ok(c)
}
