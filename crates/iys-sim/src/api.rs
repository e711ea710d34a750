//! IYS's own endpoints, with IYS's paths, bodies, status codes and H-codes.
//!
//! This file holds the error answer, the routes and the steps every handler shares (token,
//! rights, consent keys, paging); the handlers live in one module per IYS tag: `token`,
//! `account` (brands, subscription), `consents` (add, status, multi-status, history), `bulk`,
//! `changes`, `push`, `dealers`, `reconciliation`, `info`, `integrator`; `guard` is the
//! middleware in front of them all (statistics, limits, faults).

mod account;
mod bulk;
mod changes;
mod consents;
mod dealers;
mod guard;
mod info;
mod integrator;
mod push;
mod reconciliation;
mod token;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use iys::rules::RuleContext;
use iys::wire::{Pagination, SubscriptionStatus};
use iys::{ConsentType, HCode, IysError, IysErrors, OAuthError, Recipient, RecipientType};

use crate::Sim;
use crate::state::Key;

use account::{brands, subscription};
use bulk::{bulk, bulk_result};
use changes::changes;
use consents::{add, history, multi_status, status};
use dealers::{
    access_grant, access_list, access_remove, access_replace, retailer_create, retailer_delete,
    retailer_get, retailer_list,
};
use guard::guard;
use info::{cities, city, town, towns};
use integrator::{integrator_brands, integrator_brands_of, integrator_subscription};
use push::{push_list, push_register, push_unregister};
use reconciliation::{agreement, agreement_confirm, agreement_timestamp, day_file, day_summary};
use token::token;

type SimState = State<Arc<Sim>>;

/// The API version of handlers that serve both (`add::<V2>`): v2 writes are deduplicated by IYS.
const V1: bool = false;
const V2: bool = true;

/// An IYS error answer.
#[derive(Debug)]
pub struct ApiError(StatusCode, Value);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl ApiError {
    /// The simulator itself failed (a panicked task): 500, as a server's own fault.
    fn internal(message: &str) -> ApiError {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "message": message }),
        )
    }
}

impl From<IysError> for ApiError {
    fn from(e: IysError) -> Self {
        errors(vec![e])
    }
}

impl From<OAuthError> for ApiError {
    fn from(e: OAuthError) -> Self {
        ApiError(
            StatusCode::BAD_REQUEST,
            serde_json::to_value(e).unwrap_or_default(),
        )
    }
}

/// IYS answers a list of errors with the status of the first.
pub fn errors(list: Vec<IysError>) -> ApiError {
    let body = IysErrors { errors: list };
    let status = StatusCode::from_u16(body.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    ApiError(status, serde_json::to_value(body).unwrap_or_default())
}

type ApiResult<T> = Result<T, ApiError>;

fn ok<T: Serialize>(status: StatusCode, body: T) -> ApiResult<Response> {
    Ok((status, Json(body)).into_response())
}

/// Endpoint names used by statistics, faults and limits.
pub fn endpoint_name(method: &Method, path: &str) -> &'static str {
    let p = path.trim_start_matches("/v2");
    let v2 = path.starts_with("/v2/");
    match (method.as_str(), p) {
        ("POST", "/oauth2/token") => "token",
        ("GET", "/sps/{iysCode}/brands") => "brands",
        ("GET", "/sps/{iysCode}/subscription") => "subscription",
        ("GET", "/integrator/{integratorCode}/subscription") => "integrator_subscription",
        ("GET", p) if p.starts_with("/integrator/") => "integrator",
        ("POST", "/sps/{iysCode}/brands/{brandCode}/consents") if v2 => "add_v2",
        ("POST", "/sps/{iysCode}/brands/{brandCode}/consents") => "add",
        ("POST", "/sps/{iysCode}/brands/{brandCode}/consents/request") if v2 => "bulk_v2",
        ("POST", "/sps/{iysCode}/brands/{brandCode}/consents/request") => "bulk",
        ("GET", "/sps/{iysCode}/brands/{brandCode}/consents/request/{requestId}") if v2 => {
            "bulk_result_v2"
        }
        ("GET", "/sps/{iysCode}/brands/{brandCode}/consents/request/{requestId}") => "bulk_result",
        ("POST", "/sps/{iysCode}/brands/{brandCode}/consents/status") => "status",
        ("POST", "/sps/{iysCode}/brands/{brandCode}/consents/{recipientType}/status/{type}") => {
            "multi_status"
        }
        ("POST", "/sps/{iysCode}/brands/{brandCode}/consents/history") => "history",
        ("GET", "/sps/{iysCode}/brands/{brandCode}/consents/changes") => "changes",
        ("POST", "/sps/{iysCode}/brands/{brandCode}/push/registration") => "push_register",
        ("GET", "/sps/{iysCode}/brands/{brandCode}/push/registration") => "push_list",
        ("POST", "/sps/{iysCode}/brands/{brandCode}/push/unregistration") => "push_unregister",
        (_, p) if p.contains("/retailers/access") => "retailer_access",
        (_, p) if p.contains("/retailers") => "retailers",
        (_, p) if p.contains("/agreements/") || p.contains("/changes/{reportDate}") => {
            "reconciliation"
        }
        (_, p) if p.starts_with("/info/") => "info",
        _ => "other",
    }
}

pub fn router(sim: Arc<Sim>) -> Router {
    let b = "/sps/{iysCode}/brands/{brandCode}";
    Router::new()
        .route("/oauth2/token", post(token))
        .route("/sps/{iysCode}/brands", get(brands))
        .route("/sps/{iysCode}/subscription", get(subscription))
        .route(&format!("{b}/consents"), post(add::<V1>))
        .route(&format!("/v2{b}/consents"), post(add::<V2>))
        .route(&format!("{b}/consents/request"), post(bulk::<V1>))
        .route(&format!("/v2{b}/consents/request"), post(bulk::<V2>))
        .route(
            &format!("{b}/consents/request/{{requestId}}"),
            get(bulk_result::<V1>),
        )
        .route(
            &format!("/v2{b}/consents/request/{{requestId}}"),
            get(bulk_result::<V2>),
        )
        .route(&format!("{b}/consents/status"), post(status))
        .route(
            &format!("{b}/consents/{{recipientType}}/status/{{type}}"),
            post(multi_status),
        )
        .route(&format!("{b}/consents/history"), post(history))
        .route(&format!("{b}/consents/changes"), get(changes))
        .route(
            &format!("{b}/push/registration"),
            post(push_register).get(push_list),
        )
        .route(&format!("{b}/push/unregistration"), post(push_unregister))
        .route(
            &format!("{b}/retailers"),
            post(retailer_create).get(retailer_list),
        )
        .route(
            &format!("{b}/retailers/{{retailerCode}}"),
            get(retailer_get).delete(retailer_delete),
        )
        .route(
            &format!("{b}/consents/retailers/access"),
            post(access_grant).put(access_replace),
        )
        .route(
            &format!("{b}/consent/retailers/access/list"),
            post(access_list),
        )
        .route(
            &format!("{b}/consents/retailers/access/remove"),
            post(access_remove::<false>),
        )
        .route(
            &format!("{b}/consents/retailers/access/remove/all"),
            post(access_remove::<true>),
        )
        .route(
            &format!("{b}/changes/{{reportDate}}/recipients/{{recipientType}}"),
            get(day_summary),
        )
        .route(&format!("{b}/changes/{{reportDate}}/file"), get(day_file))
        .route(
            &format!("{b}/agreements/{{reportDate}}"),
            get(agreement).put(agreement_confirm),
        )
        .route(
            &format!("{b}/agreements/{{reportDate}}/timestamp"),
            get(agreement_timestamp),
        )
        .route("/integrator/{integratorCode}/sps", get(integrator_brands))
        .route(
            "/integrator/{integratorCode}/sps/{iysCode}",
            get(integrator_brands_of),
        )
        .route(
            "/integrator/{integratorCode}/subscription",
            get(integrator_subscription),
        )
        .route("/info/city", get(cities))
        .route("/info/city/{code}", get(city))
        .route("/info/town", get(towns))
        .route("/info/town/{code}", get(town))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(sim.clone(), guard))
        .with_state(sim)
}

// ---------------------------------------------------------------------------------------------
// Shared steps

fn parse_json(body: &Bytes) -> ApiResult<Value> {
    serde_json::from_slice(body).map_err(|_| IysError::new(HCode::H014).into())
}

/// The brand of a bodiless brand endpoint `/sps/{iysCode}/brands/{brandCode}/…` once
/// [`Sim::open_brand`] has passed (token and rights).
struct Brand(u64);

impl FromRequestParts<Arc<Sim>> for Brand {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, sim: &Arc<Sim>) -> Result<Self, Response> {
        let Path((iys_code, brand)) = Path::<(String, String)>::from_request_parts(parts, sim)
            .await
            .map_err(IntoResponse::into_response)?;
        sim.open_brand(&parts.headers, &iys_code, &brand)
            .map(Brand)
            .map_err(IntoResponse::into_response)
    }
}

/// A brand endpoint's body once [`Sim::open`] has passed: token, JSON body and rights for
/// `/sps/{iysCode}/brands/{brandCode}/…`. Extracts headers, path and body in the order the
/// handlers' own extractors did, so rejections stay the same.
struct BrandJson {
    brand: u64,
    body: Value,
}

impl FromRequest<Arc<Sim>> for BrandJson {
    type Rejection = Response;

    async fn from_request(req: Request, sim: &Arc<Sim>) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let headers = parts.headers.clone();
        let Path(codes) = Path::<(String, String)>::from_request_parts(&mut parts, sim)
            .await
            .map_err(IntoResponse::into_response)?;
        let bytes = Bytes::from_request(Request::from_parts(parts, body), sim)
            .await
            .map_err(IntoResponse::into_response)?;
        let (brand, body) = sim
            .open(&headers, &codes, &bytes)
            .map_err(IntoResponse::into_response)?;
        Ok(BrandJson { brand, body })
    }
}

impl Sim {
    /// The user behind the bearer token, or 401 H351.
    fn authenticate(&self, headers: &HeaderMap) -> ApiResult<String> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let now = self.now();
        token
            .and_then(|t| self.auth.lock().expect("auth lock").check(t, now))
            .ok_or_else(|| IysError::new(HCode::H351).into())
    }

    /// Rights and subscription for a provider (and brand): H190/H191, H353, H52x.
    fn authorize(&self, user: &str, iys_code: &str, brand: Option<&str>) -> ApiResult<u64> {
        let cfg = self.config();
        let iys: u64 = iys_code
            .parse()
            .map_err(|_| IysError::new(HCode::H190).with_value(iys_code))?;
        let brand = match brand {
            Some(b) => Some(
                b.parse::<u64>()
                    .map_err(|_| IysError::new(HCode::H191).with_value(b))?,
            ),
            None => None,
        };
        let not_matched = |what: &str| {
            let message = HCode::H353.message_tr().replacen("iysCode", what, 1);
            ApiError::from(IysError::new(HCode::H353).with_message(message))
        };
        if iys != cfg.iys_code {
            return Err(not_matched("iysCode"));
        }
        if let Some(b) = brand
            && !self.may_act_for(&cfg, user, b)
        {
            return Err(not_matched("brandCode"));
        }
        match cfg.subscription.status {
            SubscriptionStatus::Closed => return Err(IysError::new(HCode::H521).into()),
            SubscriptionStatus::Paused | SubscriptionStatus::Expired => {
                return Err(IysError::new(HCode::H520).into());
            }
            SubscriptionStatus::Active => {}
        }
        if !cfg.subscription.has_api_right {
            return Err(IysError::new(HCode::H586).into());
        }
        Ok(brand.unwrap_or(iys))
    }

    /// Whether the user (the provider's or a partner's) may act for the brand.
    fn may_act_for(&self, cfg: &crate::SimConfig, user: &str, brand: u64) -> bool {
        let of_provider = cfg.brands.iter().any(|x| x.brand_code == brand);
        let provider_user = cfg.users.iter().find(|u| u.username == user);
        let partner_user = cfg.integrator.users.iter().find(|u| u.username == user);
        let listed = |list: &[u64]| list.is_empty() || list.contains(&brand);
        of_provider
            && match (provider_user, partner_user) {
                (Some(u), _) => listed(&u.brands),
                (None, Some(u)) => listed(&cfg.integrator.brands) && listed(&u.brands),
                (None, None) => false,
            }
    }

    /// Token, JSON body and rights for a brand endpoint (bodies without IYS's consent rules).
    fn open(
        &self,
        headers: &HeaderMap,
        codes: &(String, String),
        body: &Bytes,
    ) -> ApiResult<(u64, Value)> {
        self.open_checked(headers, codes, body, Ok)
    }

    /// Token, JSON body passed through `check`, then rights: IYS checks a body before the rights
    /// to the brand, so a bad body answers its H-codes even for a brand the user may not use.
    fn open_checked<T>(
        &self,
        headers: &HeaderMap,
        codes: &(String, String),
        body: &Bytes,
        check: impl FnOnce(Value) -> ApiResult<T>,
    ) -> ApiResult<(u64, T)> {
        let user = self.authenticate(headers)?;
        let body = check(parse_json(body)?)?;
        let brand = self.authorize(&user, &codes.0, Some(&codes.1))?;
        Ok((brand, body))
    }

    /// Token and rights for a brand endpoint without a body.
    fn open_brand(&self, headers: &HeaderMap, iys_code: &str, brand: &str) -> ApiResult<u64> {
        let user = self.authenticate(headers)?;
        self.authorize(&user, iys_code, Some(brand))
    }

    fn rules(&self) -> RuleContext {
        RuleContext {
            deadline_eves: self.config().deadline_eves,
            ..RuleContext::at(self.now())
        }
    }

    fn quota(&self) -> (Option<u64>, bool) {
        let cfg = self.config();
        (
            cfg.subscription.consent_limit,
            cfg.subscription.consent_limit_exceed,
        )
    }
}

/// A required text-enum field: `missing` when absent or null, `invalid` (with the value) when it
/// is not one of the enum's values; errors are collected so IYS can report them all at once.
fn enum_field<T: std::str::FromStr>(
    body: &Value,
    name: &str,
    missing: HCode,
    invalid: HCode,
    errs: &mut Vec<IysError>,
) -> Option<T> {
    match body.get(name).filter(|v| !v.is_null()) {
        None => {
            errs.push(IysError::new(missing).at(name));
            None
        }
        Some(v) => v.as_str().and_then(|s| s.parse::<T>().ok()).or_else(|| {
            errs.push(IysError::new(invalid).at(name).with_value(v.clone()));
            None
        }),
    }
}

/// A `{recipient, recipientType, type}` body (status, history, dealer access) as a state key.
fn consent_key(brand: u64, body: &Value) -> ApiResult<Key> {
    let mut errs = Vec::new();
    let field = |name: &str| body.get(name).filter(|v| !v.is_null());
    let consent_type: Option<ConsentType> =
        enum_field(body, "type", HCode::H111, HCode::H117, &mut errs);
    let recipient_type: Option<RecipientType> =
        enum_field(body, "recipientType", HCode::H170, HCode::H116, &mut errs);
    let recipient = match (field("recipient"), consent_type) {
        (None, _) => {
            errs.push(IysError::new(HCode::H114).at("recipient"));
            None
        }
        (Some(v), Some(t)) => match v.as_str().map(|s| Recipient::parse_iys_for(s, t)) {
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => {
                // Status and list endpoints use H166 for a too-long phone.
                errs.extend(e.iys_errors("recipient").into_iter().map(|mut x| {
                    if x.code == "H160" {
                        x.code = "H166".into();
                        x.message = HCode::H166.message_tr().into();
                    }
                    x
                }));
                None
            }
            None => {
                errs.push(
                    IysError::new(HCode::H121)
                        .at("recipient")
                        .with_value(v.clone()),
                );
                None
            }
        },
        (Some(_), None) => None,
    };
    match (recipient, recipient_type, consent_type) {
        (Some(r), Some(rt), Some(ct)) if errs.is_empty() => Ok(Key {
            brand,
            recipient: Arc::from(r.as_str()),
            recipient_type: rt,
            consent_type: ct,
        }),
        _ => Err(errors(errs)),
    }
}

/// `limit`/`offset` query parameters (H182, H183, H186, H187).
fn paging(q: &HashMap<String, String>, default_limit: u64, max: u64) -> ApiResult<(u64, u64)> {
    let limit = match q.get("limit") {
        None => default_limit,
        Some(s) => s.parse::<u64>().map_err(|_| {
            IysError::new(HCode::H183)
                .at("limit")
                .with_value(s.as_str())
        })?,
    };
    if limit == 0 {
        return Err(IysError::new(HCode::H187).at("limit").with_value(0).into());
    }
    if limit > max {
        return Err(IysError::new(HCode::H186)
            .at("limit")
            .with_value(limit)
            .into());
    }
    let offset = match q.get("offset") {
        None => 0,
        Some(s) => s.parse::<u64>().map_err(|_| {
            IysError::new(HCode::H182)
                .at("offset")
                .with_value(s.as_str())
        })?,
    };
    Ok((limit, offset))
}

/// The items of one page: `limit` of them from `offset`.
fn page_of<T>(all: &[T], limit: u64, offset: u64) -> impl Iterator<Item = &T> {
    all.iter().skip(offset as usize).take(limit as usize)
}

/// The pagination block of a page of `page_size` items out of `total_count`.
fn pagination(total_count: usize, page_size: usize, offset: u64) -> Pagination {
    Pagination {
        total_count: total_count as u64,
        page_size: page_size as u64,
        offset,
        current_page: None,
    }
}

/// The `recipients` array of a many-recipient body: H168 absent, H478 not an array, H164 empty,
/// `too_many` over `max` (the limit and its code differ per endpoint).
fn recipients_list(body: &Value, max: usize, too_many: HCode) -> ApiResult<&Vec<Value>> {
    let list = match body.get("recipients") {
        None | Some(Value::Null) => return Err(IysError::new(HCode::H168).at("recipients").into()),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(IysError::new(HCode::H478)
                .at("recipients")
                .with_value(other.clone())
                .into());
        }
    };
    if list.is_empty() {
        return Err(IysError::new(HCode::H164).at("recipients").into());
    }
    if list.len() > max {
        return Err(IysError::new(too_many).at("recipients").into());
    }
    Ok(list)
}

// ---------------------------------------------------------------------------------------------
// Anything else

/// An unknown path: IYS documents no answer; ours is JSON in IYS's error shape, so a client
/// that decodes every answer can read it (docs/simulator.md).
async fn unknown_route(method: Method, uri: axum::http::Uri) -> Response {
    not_routed(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "Kaynak bulunamadı",
        &method,
        &uri,
    )
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Response {
    not_routed(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "Bu kaynak için izin verilmeyen yöntem",
        &method,
        &uri,
    )
}

fn not_routed(
    status: StatusCode,
    code: &str,
    message: &str,
    method: &Method,
    uri: &axum::http::Uri,
) -> Response {
    let body = serde_json::json!({"errors": [{
        "code": code,
        "message": format!("{message}: {method} {}", uri.path()),
    }]});
    (status, Json(body)).into_response()
}
