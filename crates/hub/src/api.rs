//! The router, and what the handlers share: reading the path's brand with the caller's rights,
//! the cached brands and categories, and common checks.
//!
//! Every operation is registered through `utoipa_axum`'s `routes!` in [`routes`], which adds the
//! handler to the router and its `#[utoipa::path]` (path, methods, parameters, bodies, answers)
//! to the OpenAPI document in one step: a route cannot be added without its documentation.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hub_core::BrandCode;
use hub_store::{Category, Scope};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::routes::{
    brands, categories, checks, consents, events, imports, keys, listing, ops, outbox, profiles,
    reconcile, segments, stats, sync,
};
use crate::{HubDb, HubState, MAX_BODY};

/// Where the reference page (Swagger UI) is served.
pub const DOCS_PATH: &str = "/api/docs";

/// Every documented operation: the router and the document are both built from this list.
pub fn routes<S: HubDb>() -> OpenApiRouter<HubState<S>> {
    OpenApiRouter::new()
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics_with_key))
        .routes(routes!(ops::openapi))
        .routes(routes!(brands::create_brand, brands::list_brands))
        .routes(routes!(brands::get_brand, brands::update_brand))
        .routes(routes!(consents::post_consents, listing::list_consents))
        .routes(routes!(listing::get_audit_log))
        .routes(routes!(consents::get_recipient))
        .routes(routes!(consents::get_history))
        .routes(routes!(checks::post_check))
        .routes(routes!(ops::verify_chain))
        .routes(routes!(
            categories::create_category,
            categories::list_categories
        ))
        .routes(routes!(
            categories::get_category,
            categories::put_category,
            categories::delete_category
        ))
        .routes(routes!(
            profiles::get_profile,
            profiles::put_profile,
            profiles::delete_profile
        ))
        .routes(routes!(keys::create_key, keys::list_keys))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(keys::rotate_key))
        .routes(routes!(sync::get_sync))
        .routes(routes!(sync::post_push))
        .routes(routes!(sync::post_backfill, sync::get_backfill))
        .routes(routes!(outbox::get_outbox))
        .routes(routes!(outbox::post_requeue))
        .routes(routes!(reconcile::get_reconciliation))
        .routes(routes!(imports::create_import, imports::list_imports))
        .routes(routes!(imports::get_import))
        .routes(routes!(imports::get_import_rejects))
        .routes(routes!(imports::export_consents))
        .routes(routes!(events::list_events))
        .routes(routes!(events::create_webhook, events::list_webhooks))
        .routes(routes!(
            events::get_webhook,
            events::update_webhook,
            events::delete_webhook
        ))
        .routes(routes!(events::list_deliveries))
        .routes(routes!(events::redeliver))
        .routes(routes!(stats::get_stats))
        .routes(routes!(segments::create_segment, segments::list_segments))
        .routes(routes!(
            segments::get_segment,
            segments::replace_segment,
            segments::delete_segment
        ))
        .routes(routes!(segments::count_segment))
        .routes(routes!(segments::segment_members))
        .routes(routes!(segments::check_stream))
}

/// The reference page: Swagger UI's assets, built into the binary, reading `/api/openapi.json`.
fn docs<S: HubDb>() -> Router<HubState<S>> {
    utoipa_swagger_ui::SwaggerUi::new(DOCS_PATH)
        .config(
            utoipa_swagger_ui::Config::new(["/api/openapi.json"])
                // Swagger UI would otherwise ask validator.swagger.io about the document.
                .validator_url("none")
                .try_it_out_enabled(true)
                .persist_authorization(false),
        )
        .into()
}

pub fn router<S: HubDb>(hub: HubState<S>, extra: Router<HubState<S>>) -> Router {
    let (api, _) = routes().split_for_parts();
    api.merge(docs())
        .merge(extra)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(hub.clone(), timed))
        // A request may take at most this long (a batch of 10,000 included), and at most this
        // many are served at once, over all routes; the rest wait their turn instead of
        // exhausting the database.
        .layer(axum::middleware::from_fn(time_limit))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            crate::MAX_CONCURRENT_REQUESTS,
        ))
        // Listings, histories and the OpenAPI document shrink ~10× with gzip; small answers
        // (checks, single writes) are not worth the CPU.
        .layer(
            CompressionLayer::new()
                .compress_when(DefaultPredicate::new().and(SizeAbove::new(COMPRESS_ABOVE))),
        )
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span))
        // Every answer carries `x-request-id`: the caller's own (to follow a request through
        // their systems and ours) or a new UUID; the request's log lines carry it too.
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
            tower_http::request_id::MakeRequestUuid,
        ))
        .with_state(hub)
}

/// A request may take `REQUEST_TIMEOUT` (its answer's head; a streamed body goes on), an import's
/// upload `UPLOAD_TIMEOUT`: a large file on a slow link takes long to arrive.
/// Routes that take a file upload (the API's and the console's).
const UPLOAD_PATHS: [&str; 2] = [
    "/api/v1/brands/{brandCode}/imports",
    "/brands/{code}/imports",
];

async fn time_limit(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let upload = request.method() == axum::http::Method::POST
        && request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .is_some_and(|p| UPLOAD_PATHS.contains(&p.as_str()));
    let limit = if upload {
        crate::UPLOAD_TIMEOUT
    } else {
        crate::REQUEST_TIMEOUT
    };
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        // Documented as an empty 503.
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// Answers smaller than this many bytes go uncompressed.
const COMPRESS_ABOVE: u16 = 1024;

/// The span of one request: its id, method and route template (never the path: it may hold a
/// phone number or an e-mail address).
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    tracing::info_span!("request", id, method = %request.method(), route)
}

/// Every answer's latency, per route template (never the path itself: brand codes and
/// recipients would make a series each), method and status.
async fn timed<S: HubDb>(
    axum::extract::State(hub): axum::extract::State<HubState<S>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    hub.metrics.observe(
        "iyshub_http_request_duration_seconds",
        &[
            ("method", method),
            ("route", route),
            ("status", response.status().as_u16().to_string()),
        ],
        started.elapsed().as_secs_f64(),
    );
    response
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

pub fn brand_code(s: &str) -> ApiResult<BrandCode> {
    s.parse().map_err(|e: hub_core::InvalidValue| {
        ApiError::bad_request("invalid_value", e.to_string())
            .field("brandCode")
            .value(s)
    })
}

/// The brand, if the caller may use it with `scope`.
pub async fn brand_for<S: HubDb>(
    hub: &HubState<S>,
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
pub async fn cached_brand_for<S: HubDb>(
    hub: &HubState<S>,
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
pub async fn cached_categories<S: HubDb>(
    hub: &HubState<S>,
    brand: BrandCode,
) -> ApiResult<std::sync::Arc<Vec<Category>>> {
    if let Some(c) = hub.caches.categories.get(&brand) {
        return Ok(c);
    }
    let categories = std::sync::Arc::new(hub.store.categories(brand).await?);
    hub.caches.categories.insert(brand, categories.clone());
    Ok(categories)
}

/// A name: 1–200 bytes, not blank.
pub fn check_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(
            ApiError::unprocessable("invalid_value", "name must be 1–200 characters")
                .field("name")
                .value(name),
        );
    }
    Ok(())
}
