//! Message categories of a brand (marketing or transactional).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hub_store::Scope;

use crate::api::{brand_for, check_name};
use crate::auth::Caller;
use crate::dto::categories::{Category, CategoryInput, CategoryList, CategoryReplace};
use crate::dto::error::ErrorResponse;
use crate::dto::params::{BrandCodePath, CategoryCodePath};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path};
use crate::routes::listing::audit;
use crate::{HubDb, HubState};

fn check_code(code: &str) -> ApiResult<()> {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !ok {
        return Err(ApiError::unprocessable(
            "invalid_value",
            "code must be 1–64 of a-z, 0-9, _ and -",
        )
        .field("code")
        .value(code));
    }
    Ok(())
}

/// Create a category
///
/// Scope: admin.
#[utoipa::path(
    post,
    path = "/api/v1/brands/{brandCode}/categories",
    tag = "categories",
    operation_id = "createCategory",
    params(BrandCodePath),
    security(("apiKey" = ["admin"])),
    request_body(content = CategoryInput, examples(
        ("marketing" = (summary = "A marketing category", value = json!({"code": "kampanya", "name": "Kampanya ve indirimler", "kind": "marketing"})))
    )),
    responses(
        (status = 201, description = "Created.", body = Category),
        (status = 409, description = "The category exists.", body = ErrorResponse, examples(
            ("conflict" = (summary = "Exists", value = json!({"error": {"code": "conflict", "message": "category kampanya already exists", "field": "code"}})))
        )),
        (status = 422, description = "The body breaks a rule (see the error code, field and value).", body = ErrorResponse, examples(
            ("badCode" = (summary = "Bad code", value = json!({"error": {"code": "invalid_value", "message": "code must be 1–64 of a-z, 0-9, _ and -", "field": "code", "value": "Kampanya!"}}))),
            ("badKind" = (summary = "Unknown kind", value = json!({"error": {"code": "invalid_body", "message": "unknown variant `promo`, expected `marketing` or `transactional`", "field": "kind", "value": "promo"}})))
        )),
    )
)]
pub async fn create_category<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
    body: JsonBody<CategoryInput>,
) -> ApiResult<(StatusCode, Json<Category>)> {
    let brand = brand_for(&hub, &caller, &code, Scope::Admin).await?;
    let input = body.parse()?;
    check_code(&input.code)?;
    check_name(&input.name)?;
    if hub
        .store
        .categories(brand.brand_code)
        .await?
        .iter()
        .any(|x| x.code == input.code)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("category {} already exists", input.code),
        )
        .field("code"));
    }
    let category = hub_store::Category {
        brand_code: Some(brand.brand_code),
        code: input.code,
        name: input.name,
        kind: input.kind,
    };
    let stored = save(&hub, &caller, category, "category_created").await?;
    Ok((StatusCode::CREATED, Json(stored.into())))
}

/// List categories
///
/// Scope: read.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/categories",
    tag = "categories",
    operation_id = "listCategories",
    params(BrandCodePath),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "The categories.", body = CategoryList, examples(
            ("list" = (summary = "Two categories", value = json!({"categories": [{"brandCode": 600123, "code": "kampanya", "name": "Kampanya ve indirimler", "kind": "marketing"}, {"brandCode": 600123, "code": "siparis", "name": "Sipariş bildirimleri", "kind": "transactional"}]})))
        )),
    )
)]
pub async fn list_categories<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Json<CategoryList>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let categories = hub.store.categories(brand.brand_code).await?;
    Ok(Json(CategoryList {
        categories: categories.into_iter().map(Category::from).collect(),
    }))
}

/// Get a category
///
/// Scope: read.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/categories/{code}",
    tag = "categories",
    operation_id = "getCategory",
    params(BrandCodePath, CategoryCodePath),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "The category.", body = Category),
        (status = 404, description = "Not found.", body = ErrorResponse, examples(
            ("categoryNotFound" = (summary = "No such category", value = json!({"error": {"code": "not_found", "message": "category yok not found"}})))
        )),
    )
)]
pub async fn get_category<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, cat)): Path<(String, String)>,
) -> ApiResult<Json<Category>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    hub.store
        .categories(brand.brand_code)
        .await?
        .into_iter()
        .find(|c| c.code == cat)
        .map(|c| Json(c.into()))
        .ok_or_else(|| ApiError::not_found(format!("category {cat} not found")))
}

/// Create or replace a category
///
/// Scope: admin. Creates the category or replaces its name and kind.
#[utoipa::path(
    put,
    path = "/api/v1/brands/{brandCode}/categories/{code}",
    tag = "categories",
    operation_id = "putCategory",
    params(BrandCodePath, CategoryCodePath),
    security(("apiKey" = ["admin"])),
    request_body(content = CategoryReplace, examples(
        ("transactional" = (summary = "A transactional category", value = json!({"name": "Sipariş bildirimleri", "kind": "transactional"})))
    )),
    responses(
        (status = 200, description = "The category.", body = Category, examples(
            ("category" = (summary = "Stored", value = json!({"brandCode": 600123, "code": "siparis", "name": "Sipariş bildirimleri", "kind": "transactional"})))
        )),
        (status = 422, description = "The body breaks a rule (see the error code, field and value).", body = ErrorResponse, examples(
            ("codeDiffers" = (summary = "code differs from the path", value = json!({"error": {"code": "invalid_value", "message": "code in the body differs from the path", "field": "code", "value": "other"}}))),
            ("badCode" = (summary = "Bad code in the path", value = json!({"error": {"code": "invalid_value", "message": "code must be 1–64 of a-z, 0-9, _ and -", "field": "code", "value": "Not_OK"}})))
        )),
    )
)]
pub async fn put_category<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, cat)): Path<(String, String)>,
    body: JsonBody<CategoryReplace>,
) -> ApiResult<Json<Category>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Admin).await?;
    let input = body.parse()?;
    let given = input.code.unwrap_or_else(|| cat.clone());
    if given != cat {
        return Err(ApiError::unprocessable(
            "invalid_value",
            "code in the body differs from the path",
        )
        .field("code")
        .value(given));
    }
    check_code(&given)?;
    check_name(&input.name)?;
    let category = hub_store::Category {
        brand_code: Some(brand.brand_code),
        code: given,
        name: input.name,
        kind: input.kind,
    };
    let stored = save(&hub, &caller, category, "category_saved").await?;
    Ok(Json(stored.into()))
}

/// Delete a category
///
/// Scope: admin. Recorded category consents stay in the history.
#[utoipa::path(
    delete,
    path = "/api/v1/brands/{brandCode}/categories/{code}",
    tag = "categories",
    operation_id = "deleteCategory",
    params(BrandCodePath, CategoryCodePath),
    security(("apiKey" = ["admin"])),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "Not found.", body = ErrorResponse, examples(
            ("categoryNotFound" = (summary = "No such category", value = json!({"error": {"code": "not_found", "message": "category yok not found"}})))
        )),
    )
)]
pub async fn delete_category<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, cat)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let brand = brand_for(&hub, &caller, &code, Scope::Admin).await?;
    let deleted = hub.store.delete_category(brand.brand_code, &cat).await?;
    hub.caches.categories.remove(&brand.brand_code);
    if deleted {
        let detail = serde_json::json!({"code": cat});
        audit(
            &hub,
            Some(brand.brand_code),
            &caller,
            "category_deleted",
            detail,
        )
        .await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("category {cat} not found")))
    }
}

/// Stores a category, drops the instance's cached copy of the brand's categories and records
/// who did it.
async fn save<S: HubDb>(
    hub: &HubState<S>,
    caller: &Caller,
    category: hub_store::Category,
    action: &str,
) -> ApiResult<hub_store::Category> {
    let brand = category.brand_code;
    let stored = hub.store.upsert_category(category).await?;
    if let Some(b) = brand {
        hub.caches.categories.remove(&b);
    }
    let detail = serde_json::json!({"code": stored.code, "name": stored.name, "kind": stored.kind});
    audit(hub, brand, caller, action, detail).await;
    Ok(stored)
}
