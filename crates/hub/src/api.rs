//! Routes: brands, categories, profiles, API keys, operations.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use hub_core::{BrandCode, Mode};
use hub_store::{
    BrandPatch, Category, EngineStore, IysConnection, IysPolicy, NewApiKey, NewBrand, Profile,
    Scope, Store,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::auth::{Caller, hash_key};
use crate::error::{ApiError, ApiResult};
use crate::{HubState, MAX_BODY, consents, input, new_key};

pub fn router(hub: HubState) -> Router {
    let b = "/api/v1/brands/{brandCode}";
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_with_key))
        .route("/api/openapi.json", get(openapi))
        .route("/api/v1/brands", post(create_brand).get(list_brands))
        .route("/api/v1/iys/push/{brandCode}", post(crate::sync::post_push))
        .route(b, get(get_brand).patch(patch_brand))
        .route(&format!("{b}/consents"), post(consents::post_consents))
        .route(
            &format!("{b}/recipients/{{recipient}}"),
            get(consents::get_recipient),
        )
        .route(
            &format!("{b}/recipients/{{recipient}}/history"),
            get(consents::get_history),
        )
        .route(&format!("{b}/check"), post(consents::post_check))
        .route(&format!("{b}/verify"), get(verify_chain))
        .route(&format!("{b}/sync"), get(crate::sync::get_sync))
        .route(&format!("{b}/outbox"), get(crate::sync::get_outbox))
        .route(
            &format!("{b}/reconciliation"),
            get(crate::reconcile::get_reconciliation),
        )
        .route(
            &format!("{b}/outbox/requeue"),
            post(crate::sync::post_requeue),
        )
        .route(
            &format!("{b}/backfill"),
            post(crate::sync::post_backfill).get(crate::sync::get_backfill),
        )
        .route(
            &format!("{b}/categories"),
            post(create_category).get(list_categories),
        )
        .route(
            &format!("{b}/categories/{{code}}"),
            get(get_category).put(put_category).delete(delete_category),
        )
        .route(
            &format!("{b}/profiles/{{externalId}}"),
            get(get_profile).put(put_profile).delete(delete_profile),
        )
        .route("/api/v1/api-keys", post(create_key).get(list_keys))
        .route("/api/v1/api-keys/{id}", delete(revoke_key))
        .route("/api/v1/api-keys/{id}/rotate", post(rotate_key))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // A request may take at most this long (a batch of 10,000 included), and at most this
        // many are served at once; the rest wait their turn instead of exhausting the database.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            crate::REQUEST_TIMEOUT,
        ))
        .layer(tower::limit::ConcurrencyLimitLayer::new(
            crate::MAX_CONCURRENT_REQUESTS,
        ))
        .with_state(hub)
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /api/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take this method; see /api/openapi.json",
    )
}

/// Path parameters, with rejections in the API's error shape: a segment that is not UTF-8 or
/// holds a NUL character → 400.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.path().to_ascii_lowercase().contains("%00") {
            return Err(ApiError::bad_request(
                "invalid_path",
                "the path must not contain the NUL character (%00)",
            ));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| ApiError::new(e.status(), "invalid_path", e.body_text()))
    }
}

/// The body as JSON, with errors in the API's shape (oversized → 413, unreadable → 400).
pub fn json_body(body: Result<Bytes, BytesRejection>) -> ApiResult<Value> {
    parse_json(&body_bytes(body)?)
}

/// The body's bytes; oversized → 413, unreadable → 400.
pub fn body_bytes(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is over {MAX_BODY} bytes"),
            )
        } else {
            ApiError::bad_request("invalid_body", e.body_text())
        }
    })
}

/// Bytes as JSON; not JSON → 400, text with NUL characters (which PostgreSQL cannot store) → 422.
pub fn parse_json(bytes: &[u8]) -> ApiResult<Value> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })?;
    if let Some(at) = nul_at(&v, "") {
        let e = ApiError::unprocessable(
            "invalid_value",
            "text must not contain the NUL character (U+0000)",
        );
        return Err(if at.is_empty() { e } else { e.field(at) });
    }
    Ok(v)
}

/// The path (`changes[2].actor`) of the first string or key with a NUL character.
fn nul_at(v: &Value, path: &str) -> Option<String> {
    match v {
        Value::String(s) => s.contains('\0').then(|| path.to_owned()),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_at(x, &format!("{path}[{i}]"))),
        Value::Object(o) => o.iter().find_map(|(k, x)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(p)
            } else {
                nul_at(x, &p)
            }
        }),
        _ => None,
    }
}

/// A typed body; serde names the offending field in its message.
fn typed<T: DeserializeOwned>(v: Value) -> ApiResult<T> {
    serde_json::from_value(v).map_err(|e| ApiError::unprocessable("invalid_body", e.to_string()))
}

pub fn brand_code(s: &str) -> ApiResult<BrandCode> {
    s.parse().map_err(|e: hub_core::InvalidValue| {
        ApiError::bad_request("invalid_value", e.to_string())
            .field("brandCode")
            .value(s)
    })
}

/// The brand, if the caller may use it with `scope`.
pub async fn brand_for(
    hub: &HubState,
    caller: &Caller,
    code: &str,
    scope: Scope,
) -> ApiResult<hub_store::Brand> {
    let code = brand_code(code)?;
    caller.require(scope, Some(code))?;
    hub.store
        .brand(code)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("brand {code} not found")))
}

/// [`brand_for`] from the cache, for the hot paths (writes and checks) that use only the brand's
/// code: the store re-reads the mode under the brand's lock when it records.
pub async fn cached_brand_for(
    hub: &HubState,
    caller: &Caller,
    code: &str,
    scope: Scope,
) -> ApiResult<hub_store::Brand> {
    let code = brand_code(code)?;
    caller.require(scope, Some(code))?;
    if let Some(b) = hub.caches.brands.get(&code) {
        return Ok(b);
    }
    let brand = hub
        .store
        .brand(code)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("brand {code} not found")))?;
    hub.caches.brands.insert(code, brand.clone());
    Ok(brand)
}

/// The brand's categories, cached; dropped on every category change through this instance.
pub async fn cached_categories(
    hub: &HubState,
    brand: BrandCode,
) -> ApiResult<std::sync::Arc<Vec<Category>>> {
    if let Some(c) = hub.caches.categories.get(&brand) {
        return Ok(c);
    }
    let categories = std::sync::Arc::new(hub.store.categories(brand).await?);
    hub.caches.categories.insert(brand, categories.clone());
    Ok(categories)
}

// ---------------------------------------------------------------------------------------------
// Operations

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers and, on instances that run them, the IYS engines' loop is
/// alive. Causes are logged, not answered.
async fn readyz(State(hub): State<HubState>) -> Response {
    let database = match hub.store.ping().await {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            "unavailable"
        }
    };
    let engines = hub.engines.as_ref().map(|hb| {
        if hb.alive() {
            "ok"
        } else {
            tracing::warn!("readiness: the IYS engines' loop has stalled");
            "stalled"
        }
    });
    let ready = database == "ok" && engines.is_none_or(|e| e == "ok");
    let mut body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "database": database,
    });
    if let Some(e) = engines {
        body["engines"] = json!(e);
    }
    let body = Json(body);
    if ready {
        body.into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

/// `/metrics` on the API: the provider's admin key only (it names every brand). Operators can
/// also scrape it without a key on the metrics address (`IYSHUB_METRICS_BIND`, loopback).
async fn metrics_with_key(State(hub): State<HubState>, caller: Caller) -> ApiResult<Response> {
    caller.require(Scope::Admin, None)?;
    Ok(metrics(State(hub)).await)
}

pub(crate) async fn metrics(State(hub): State<HubState>) -> Response {
    // The sync status figures of every brand, as gauges.
    let mut extra: Vec<(String, String, f64)> = Vec::new();
    let now = jiff::Timestamp::now();
    if let Ok(brands) = hub.store.brands().await {
        for b in brands {
            let Ok(f) = hub.store.sync_figures(b.brand_code, now).await else {
                continue;
            };
            let brand = format!("brand=\"{}\"", b.brand_code);
            for (state, n) in &f.outbox {
                extra.push((
                    "iyshub_outbox_rows".into(),
                    format!("{brand},state=\"{state}\""),
                    *n as f64,
                ));
            }
            extra.push((
                "iyshub_changes_at_risk".into(),
                brand.clone(),
                f.at_risk as f64,
            ));
            if let Some(d) = f.oldest_pending_deadline {
                extra.push((
                    "iyshub_oldest_pending_deadline_seconds".into(),
                    brand.clone(),
                    d.duration_since(now).as_secs_f64(),
                ));
            }
            for (code, n) in &f.errors_last_24h {
                extra.push((
                    "iyshub_iys_errors_24h".into(),
                    format!("{brand},code=\"{code}\""),
                    *n as f64,
                ));
            }
            extra.push((
                "iyshub_dispatch_paused".into(),
                brand.clone(),
                f64::from(u8::from(f.paused.is_some())),
            ));
            for c in &f.cursors {
                if let Some(t) = c.last_success {
                    extra.push((
                        "iyshub_pull_cursor_age_seconds".into(),
                        format!("{brand},source=\"{}\"", c.source),
                        now.duration_since(t).as_secs_f64(),
                    ));
                }
            }
            extra.extend(crate::reconcile::gauges(&hub, b.brand_code).await);
        }
    }
    extra.sort_by(|a, b| a.0.cmp(&b.0));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        hub.metrics.render(&extra),
    )
        .into_response()
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

async fn verify_chain(
    State(hub): State<HubState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Json<Value>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let report = hub.store.verify_chain(brand.brand_code).await?;
    Ok(Json(
        serde_json::to_value(report).map_err(ApiError::internal)?,
    ))
}

// ---------------------------------------------------------------------------------------------
// Brands

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BrandInput {
    brand_code: u64,
    #[serde(default)]
    iys_code: Option<u64>,
    name: String,
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    iys: Option<IysInput>,
}

/// A brand's IYS connection as the API takes it. Fields left out keep their stored value; an
/// empty string clears one. Passwords are write-only: the API password is sealed with the
/// instance's secret key, the push password hashed with argon2.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IysInput {
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    push_username: Option<String>,
    #[serde(default)]
    push_password: Option<String>,
}

/// Longest user name or password the API takes.
const MAX_CREDENTIAL: usize = 256;

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

impl IysInput {
    /// The stored connection after this input, checked against the instance's policy.
    fn apply(self, policy: &IysPolicy, mut c: IysConnection) -> ApiResult<IysConnection> {
        if let Some(url) = credential("baseUrl", self.base_url)? {
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
        if let Some(user) = credential("username", self.username)? {
            c.username = user;
        }
        if let Some(password) = credential("password", self.password)? {
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
        if let Some(user) = credential("pushUsername", self.push_username)? {
            c.push_username = user;
        }
        if let Some(password) = credential("pushPassword", self.push_password)? {
            c.push_password_hash = password
                .map(|p| hub_secrets::hash_password(&p))
                .transpose()
                .map_err(ApiError::internal)?;
        }
        Ok(c)
    }
}

/// A brand as answered: secrets only as whether they are set.
fn public(b: &hub_store::Brand) -> Value {
    json!({
        "brandCode": b.brand_code,
        "iysCode": b.iys_code,
        "name": b.name,
        "mode": b.mode,
        "iys": {
            "baseUrl": b.iys.base_url,
            "username": b.iys.username,
            "passwordSet": b.iys.password_sealed.is_some(),
            "pushUsername": b.iys.push_username,
            "pushPasswordSet": b.iys.push_password_hash.is_some(),
        },
        "createdAt": b.created_at,
        "updatedAt": b.updated_at,
    })
}

/// Only the provider's admin (a key for every brand) may set IYS connections: a brand's own
/// admin could otherwise point the hub's IYS credentials at a server of its choosing.
fn require_provider_admin(caller: &Caller) -> ApiResult<()> {
    caller.require(Scope::Admin, None).map_err(|_| {
        ApiError::forbidden("only the provider's admin key may set a brand's IYS connection")
            .field("iys")
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BrandUpdate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    iys_code: Option<u64>,
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    iys: Option<IysInput>,
}

fn check_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(
            ApiError::unprocessable("invalid_value", "name must be 1–200 characters")
                .field("name")
                .value(name),
        );
    }
    Ok(())
}

async fn create_brand(
    State(hub): State<HubState>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    caller.require(Scope::Admin, None)?;
    let input: BrandInput = typed(json_body(body)?)?;
    let code = brand_code(&input.brand_code.to_string())?;
    check_name(&input.name)?;
    let iys = match input.iys {
        Some(i) => i.apply(&hub.iys, IysConnection::default())?,
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
    Ok((StatusCode::CREATED, Json(public(&brand))).into_response())
}

async fn list_brands(State(hub): State<HubState>, caller: Caller) -> ApiResult<Json<Value>> {
    let brands: Vec<_> = hub
        .store
        .brands()
        .await?
        .into_iter()
        .filter(|b| caller.0.allows(Scope::Read, Some(b.brand_code)))
        .map(|b| public(&b))
        .collect();
    Ok(Json(json!({ "brands": brands })))
}

async fn get_brand(
    State(hub): State<HubState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(public(
        &brand_for(&hub, &caller, &code, Scope::Read).await?,
    )))
}

async fn patch_brand(
    State(hub): State<HubState>,
    caller: Caller,
    Path(code): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Admin).await?;
    let u: BrandUpdate = typed(json_body(body)?)?;
    if let Some(n) = &u.name {
        check_name(n)?;
    }
    let iys = match u.iys {
        Some(i) => {
            require_provider_admin(&caller)?;
            Some(i.apply(&hub.iys, brand.iys.clone())?)
        }
        None => None,
    };
    // A mode switch is recorded and re-evaluates pending and held changes in one transaction.
    if let Some(mode) = u.mode.filter(|m| *m != brand.mode) {
        hub.store
            .switch_mode(brand.brand_code, mode, caller.name())
            .await?;
    }
    let updated = hub
        .store
        .update_brand(
            brand.brand_code,
            BrandPatch {
                name: u.name,
                iys_code: u.iys_code,
                mode: None,
                iys,
            },
        )
        .await?
        .ok_or_else(|| ApiError::not_found(format!("brand {code} not found")))?;
    hub.caches.brands.remove(&brand.brand_code);
    Ok(Json(public(&updated)))
}

// ---------------------------------------------------------------------------------------------
// Categories

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

async fn create_category(
    State(hub): State<HubState>,
    caller: Caller,
    Path(code): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let brand = brand_for(&hub, &caller, &code, Scope::Admin).await?;
    let mut c: Category = typed(json_body(body)?)?;
    check_code(&c.code)?;
    check_name(&c.name)?;
    c.brand_code = Some(brand.brand_code);
    if hub
        .store
        .categories(brand.brand_code)
        .await?
        .iter()
        .any(|x| x.code == c.code)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("category {} already exists", c.code),
        )
        .field("code"));
    }
    let stored = hub.store.upsert_category(c).await?;
    hub.caches.categories.remove(&brand.brand_code);
    Ok((StatusCode::CREATED, Json(stored)).into_response())
}

async fn list_categories(
    State(hub): State<HubState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Json<Value>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    Ok(Json(
        json!({ "categories": hub.store.categories(brand.brand_code).await? }),
    ))
}

async fn get_category(
    State(hub): State<HubState>,
    caller: Caller,
    Path((code, cat)): Path<(String, String)>,
) -> ApiResult<Json<Category>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    hub.store
        .categories(brand.brand_code)
        .await?
        .into_iter()
        .find(|c| c.code == cat)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("category {cat} not found")))
}

async fn put_category(
    State(hub): State<HubState>,
    caller: Caller,
    Path((code, cat)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Category>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Admin).await?;
    let mut v = json_body(body)?;
    if let Some(o) = v.as_object_mut() {
        o.entry("code").or_insert(Value::String(cat.clone()));
    }
    let mut c: Category = typed(v)?;
    if c.code != cat {
        return Err(ApiError::unprocessable(
            "invalid_value",
            "code in the body differs from the path",
        )
        .field("code")
        .value(c.code));
    }
    check_code(&c.code)?;
    check_name(&c.name)?;
    c.brand_code = Some(brand.brand_code);
    let stored = hub.store.upsert_category(c).await?;
    hub.caches.categories.remove(&brand.brand_code);
    Ok(Json(stored))
}

async fn delete_category(
    State(hub): State<HubState>,
    caller: Caller,
    Path((code, cat)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let brand = brand_for(&hub, &caller, &code, Scope::Admin).await?;
    let deleted = hub.store.delete_category(brand.brand_code, &cat).await?;
    hub.caches.categories.remove(&brand.brand_code);
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("category {cat} not found")))
    }
}

// ---------------------------------------------------------------------------------------------
// Profiles

/// Largest profile `attributes` object, serialised.
const MAX_ATTRIBUTES: usize = 16 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileInput {
    addresses: Vec<String>,
    #[serde(default)]
    attributes: Option<Value>,
}

async fn put_profile(
    State(hub): State<HubState>,
    caller: Caller,
    Path((code, id)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
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
    let p: ProfileInput = typed(json_body(body)?)?;
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
    let profile = Profile {
        brand_code: Some(brand.brand_code),
        external_id: id,
        addresses,
        attributes: p.attributes,
    };
    Ok(Json(hub.store.upsert_profile(profile).await?))
}

async fn get_profile(
    State(hub): State<HubState>,
    caller: Caller,
    Path((code, id)): Path<(String, String)>,
) -> ApiResult<Json<Profile>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    hub.store
        .profile(brand.brand_code, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("profile {id} not found")))
}

async fn delete_profile(
    State(hub): State<HubState>,
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

// ---------------------------------------------------------------------------------------------
// API keys

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeyInput {
    name: String,
    #[serde(default)]
    brand_code: Option<u64>,
    scopes: Vec<Scope>,
    /// RFC 3339; the key is refused after it.
    #[serde(default)]
    expires_at: Option<jiff::Timestamp>,
}

async fn create_key(
    State(hub): State<HubState>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let k: KeyInput = typed(json_body(body)?)?;
    let brand = k
        .brand_code
        .map(|b| brand_code(&b.to_string()))
        .transpose()?;
    caller.require(Scope::Admin, brand)?;
    check_name(&k.name)?;
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
    let mut v = serde_json::to_value(stored).map_err(ApiError::internal)?;
    v["key"] = Value::String(key);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// The provider's admin sees every key; a brand's admin the keys of its brand.
async fn list_keys(State(hub): State<HubState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Scope::Admin, caller.0.brand_code)?;
    let keys: Vec<_> = hub
        .store
        .api_keys()
        .await?
        .into_iter()
        .filter(|k| caller.0.brand_code.is_none() || k.brand_code == caller.0.brand_code)
        .collect();
    Ok(Json(json!({ "apiKeys": keys })))
}

/// The key `id`, if the caller may manage it (admin of its brand, or the provider's admin).
async fn managed_key(hub: &HubState, caller: &Caller, id: &str) -> ApiResult<hub_store::ApiKey> {
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

/// `DELETE /api/v1/api-keys/{id}`: revokes the key at once.
async fn revoke_key(
    State(hub): State<HubState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let key = managed_key(&hub, &caller, &id).await?;
    hub.store
        .revoke_api_key(&key.id, jiff::Timestamp::now())
        .await?;
    hub.caches.api_keys.clear();
    tracing::info!(key = %key.id, name = %key.name, by = %caller.name(), "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/api-keys/{id}/rotate`: a new secret for the key; the old one stops at once.
async fn rotate_key(
    State(hub): State<HubState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
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
    let mut v = serde_json::to_value(stored).map_err(ApiError::internal)?;
    v["key"] = Value::String(secret);
    Ok(Json(v))
}
