//! IYS's own endpoints, with IYS's paths, bodies, status codes and H-codes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jiff::SignedDuration;
use serde::Serialize;
use serde_json::Value;
use sha2::Digest;

use iys::rules::{MAX_BULK, RuleContext, validate_bulk, validate_consent};
use iys::wire::{
    AgreementCaptured, AgreementHash, Brand, BrandStats, ChangeSource, City, Code, CodeName,
    INVALID_CREDENTIALS, IntegratorBrand, IntegratorBrands, MessageResponse, MultiStatusResponse,
    Pagination, ProcessStatus, PushConnection, PushRegistrationItem, Retailer, RetailerCounts,
    RetailerCreated, RetailerList, RetailerStatus, Subscription, SubscriptionStatus, TokenRequest,
    TokenRequestFields, Town, TransactionReceipt,
};
use iys::{
    ConsentDate, ConsentType, HCode, IysError, IysErrors, Location, OAuthError, Recipient,
    RecipientType,
};

use crate::Sim;
use crate::faults::Verdict;
use crate::info_data::{CITIES, TOWNS};
use crate::limits::Hourly;
use crate::state::{Key, PushRegistration, TxId};

type SimState = State<Arc<Sim>>;

/// An IYS error answer.
#[derive(Debug)]
pub struct ApiError(StatusCode, Value);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
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

/// Statistics, per-second limit, hourly budgets, faults — for every IYS endpoint.
async fn guard(
    State(sim): SimState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let endpoint = endpoint_name(req.method(), matched.as_ref().map_or("", |m| m.as_str()));
    let cfg = sim.config();
    let now = sim.now();
    sim.stats
        .lock()
        .expect("stats lock")
        .arrival(Instant::now());
    sim.process_due();
    let limited = |code: HCode| {
        sim.stats.lock().expect("stats lock").rate_limited += 1;
        errors(vec![IysError::new(code)]).into_response()
    };
    let ip = peer.ip();
    let refused = if !cfg.limits.enabled {
        None
    } else if !sim.limiter.lock().expect("limiter lock").allow_request(
        ip,
        cfg.limits.requests_per_second,
        Instant::now(),
    ) {
        Some(limited(HCode::H124))
    } else {
        let mut l = sim.limiter.lock().expect("limiter lock");
        let secs = now.as_second();
        match endpoint {
            "token" if !l.allow_token(ip, cfg.limits.token_per_hour, secs) => Some(HCode::H084),
            "status" if !l.allow_hourly(Hourly::Status, ip, cfg.limits.status_per_hour, secs) => {
                Some(HCode::H086)
            }
            "history"
                if !l.allow_hourly(Hourly::History, ip, cfg.limits.history_per_hour, secs) =>
            {
                Some(HCode::H089)
            }
            _ => None,
        }
        .map(|code| {
            drop(l);
            limited(code)
        })
    };
    if endpoint == "token" {
        sim.stats.lock().expect("stats lock").token_call(now);
    }
    let response = match refused {
        Some(r) => r,
        None => {
            let (latency, verdict) = sim.faults.lock().expect("faults lock").roll(endpoint);
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            match verdict {
                Verdict::Pass => next.run(req).await,
                Verdict::Error { status, code } => {
                    sim.stats.lock().expect("stats lock").faults_injected += 1;
                    let status =
                        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    let message = code
                        .parse::<HCode>()
                        .map_or("Beklenmedik bir hata oluştu!", HCode::message_tr);
                    let body = serde_json::json!({"errors": [{"code": code, "message": message}]});
                    (status, Json(body)).into_response()
                }
                Verdict::Drop => {
                    sim.stats.lock().expect("stats lock").faults_injected += 1;
                    return dropped_connection();
                }
                Verdict::LoseAnswer => {
                    let done = next.run(req).await;
                    let mut stats = sim.stats.lock().expect("stats lock");
                    stats.faults_injected += 1;
                    stats.answered(endpoint, done.status().as_u16());
                    return dropped_connection();
                }
            }
        }
    };
    sim.stats
        .lock()
        .expect("stats lock")
        .answered(endpoint, response.status().as_u16());
    response
}

/// A response whose body fails at once: hyper cuts the connection, the client sees a reset.
fn dropped_connection() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("injected connection drop"))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_LENGTH, "100")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

pub fn router(sim: Arc<Sim>) -> Router {
    let b = "/sps/{iysCode}/brands/{brandCode}";
    Router::new()
        .route("/oauth2/token", post(token))
        .route("/sps/{iysCode}/brands", get(brands))
        .route("/sps/{iysCode}/subscription", get(subscription))
        .route(&format!("{b}/consents"), post(add_v1))
        .route(&format!("/v2{b}/consents"), post(add_v2))
        .route(&format!("{b}/consents/request"), post(bulk_v1))
        .route(&format!("/v2{b}/consents/request"), post(bulk_v2))
        .route(
            &format!("{b}/consents/request/{{requestId}}"),
            get(bulk_result_v1),
        )
        .route(
            &format!("/v2{b}/consents/request/{{requestId}}"),
            get(bulk_result_v2),
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
            post(access_remove),
        )
        .route(
            &format!("{b}/consents/retailers/access/remove/all"),
            post(access_remove_all),
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
        let user = self.authenticate(headers)?;
        let body = parse_json(body)?;
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

/// A `{recipient, recipientType, type}` body (status, history, dealer access) as a state key.
fn consent_key(brand: u64, body: &Value) -> ApiResult<Key> {
    let mut errs = Vec::new();
    let field = |name: &str| body.get(name).filter(|v| !v.is_null());
    let consent_type = match field("type") {
        None => {
            errs.push(IysError::new(HCode::H111).at("type"));
            None
        }
        Some(v) => v
            .as_str()
            .and_then(|s| s.parse::<ConsentType>().ok())
            .or_else(|| {
                errs.push(IysError::new(HCode::H117).at("type").with_value(v.clone()));
                None
            }),
    };
    let recipient_type = match field("recipientType") {
        None => {
            errs.push(IysError::new(HCode::H170).at("recipientType"));
            None
        }
        Some(v) => v
            .as_str()
            .and_then(|s| s.parse::<RecipientType>().ok())
            .or_else(|| {
                errs.push(
                    IysError::new(HCode::H116)
                        .at("recipientType")
                        .with_value(v.clone()),
                );
                None
            }),
    };
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

// ---------------------------------------------------------------------------------------------
// Token

async fn token(State(sim): SimState, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    // The token endpoint answers in OAuth's shape only: a body it cannot read (empty, not JSON,
    // fields of the wrong type) names no grant type.
    let unreadable = || OAuthError::invalid_request("Giriş yöntemi belirtilmemiş.");
    let fields: TokenRequestFields = if is_form {
        serde_urlencoded::from_bytes(&body).map_err(|_| unreadable())?
    } else {
        serde_json::from_slice(&body).map_err(|_| unreadable())?
    };
    let cfg = sim.config();
    let now = sim.now();
    let username = match fields.parse()? {
        TokenRequest::Password { username, password } => {
            let known = cfg
                .users
                .iter()
                .chain(&cfg.integrator.users)
                .any(|u| u.username == username && u.password == password);
            if !known {
                return Err(OAuthError::invalid_request(INVALID_CREDENTIALS).into());
            }
            username
        }
        TokenRequest::RefreshToken { refresh_token } => sim
            .auth
            .lock()
            .expect("auth lock")
            .take_refresh(&refresh_token, now)
            .ok_or_else(|| OAuthError::invalid_grant("Geçersiz yenileme jetonu."))?,
    };
    let t = &cfg.timing;
    let tokens = sim.auth.lock().expect("auth lock").issue(
        &username,
        now,
        t.access_token_ttl_s as i64,
        t.refresh_token_ttl_s as i64,
    );
    ok(StatusCode::OK, tokens)
}

// ---------------------------------------------------------------------------------------------
// Brands and subscription

async fn brands(
    State(sim): SimState,
    headers: HeaderMap,
    Path(iys_code): Path<String>,
) -> ApiResult<Response> {
    let user = sim.authenticate(&headers)?;
    sim.authorize(&user, &iys_code, None)?;
    let cfg = sim.config();
    let state = sim.state.lock().expect("state lock");
    let list: Vec<Brand> = cfg
        .brands
        .iter()
        .filter(|b| sim.may_act_for(&cfg, &user, b.brand_code))
        .map(|b| Brand {
            brand_code: b.brand_code,
            name: b.name.clone(),
            master: b.master,
            stats: BrandStats {
                consents: state.counts(b.brand_code),
                retailers: RetailerCounts {
                    total: state.dealer_count(b.brand_code),
                },
            },
        })
        .collect();
    ok(StatusCode::OK, list)
}

async fn subscription(
    State(sim): SimState,
    headers: HeaderMap,
    Path(iys_code): Path<String>,
) -> ApiResult<Response> {
    let _user = sim.authenticate(&headers)?;
    let cfg = sim.config();
    if iys_code.parse::<u64>().ok() != Some(cfg.iys_code) {
        return Err(IysError::new(HCode::H353).into());
    }
    let (start, end) = subscription_period(sim.now());
    let used = sim.state.lock().expect("state lock").consent_count() as u64;
    ok(
        StatusCode::OK,
        Subscription {
            subscription_id: Some(format!("sim-{}", cfg.iys_code)),
            start_date: start,
            expiration_date: end,
            subscription_package_name: cfg.subscription.package_name.clone(),
            status: cfg.subscription.status,
            consent_limit: Some(
                cfg.subscription
                    .consent_limit
                    .unwrap_or(u64::from(u32::MAX)),
            ),
            consent_limit_exceed: Some(cfg.subscription.consent_limit_exceed),
            used_consent_limit: Some(used),
            iys_code: None,
            via_subscription_package: None,
            via_pass_subscription_package: None,
        },
    )
}

/// The simulated subscriptions run for the current calendar year.
fn subscription_period(now: jiff::Timestamp) -> (ConsentDate, ConsentDate) {
    let now = ConsentDate::from_timestamp(now);
    let year = now.civil().year();
    let start = ConsentDate::parse(&format!("{year:04}-01-01 00:00:00")).unwrap_or(now);
    let end = ConsentDate::parse(&format!("{year:04}-12-31 23:59:59")).unwrap_or(now);
    (start, end)
}

// ---------------------------------------------------------------------------------------------
// Consents

async fn add(
    sim: Arc<Sim>,
    headers: HeaderMap,
    codes: (String, String),
    body: Bytes,
    v2: bool,
) -> ApiResult<Response> {
    let user = sim.authenticate(&headers)?;
    let body = parse_json(&body)?;
    let consent = validate_consent(&body, &sim.rules()).map_err(errors)?;
    let brand = sim.authorize(&user, &codes.0, Some(&codes.1))?;
    let now = sim.now();
    let mut state = sim.state.lock().expect("state lock");
    let id = state.add_consent(brand, &consent, v2, sim.quota(), now)?;
    let m = state.movement(id);
    ok(
        StatusCode::OK,
        iys::wire::AddConsentResponse {
            transaction_id: m.tx.to_hex(),
            creation_date: m.creation_date(),
        },
    )
}

async fn add_v1(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    add(sim, headers, codes, body, false).await
}

async fn add_v2(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    add(sim, headers, codes, body, true).await
}

async fn bulk(
    sim: Arc<Sim>,
    headers: HeaderMap,
    codes: (String, String),
    body: Bytes,
    v2: bool,
) -> ApiResult<Response> {
    let user = sim.authenticate(&headers)?;
    let body = parse_json(&body)?;
    let items = validate_bulk(&body, &sim.rules()).map_err(errors)?;
    let brand = sim.authorize(&user, &codes.0, Some(&codes.1))?;
    let cfg = sim.config();
    let now = sim.now();
    let accepted = sim
        .state
        .lock()
        .expect("state lock")
        .submit_bulk(
            brand,
            items,
            v2,
            sim.quota(),
            now,
            SignedDuration::from_millis(cfg.timing.bulk_delay_ms as i64),
            cfg.timing.bulk_item_ms,
        )
        .map_err(errors)?;
    ok(StatusCode::ACCEPTED, accepted)
}

async fn bulk_v1(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    bulk(sim, headers, codes, body, false).await
}

async fn bulk_v2(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    bulk(sim, headers, codes, body, true).await
}

fn check_request_id(id: &str) -> ApiResult<()> {
    let err = |code: HCode| ApiError::from(IysError::new(code).at("requestId").with_value(id));
    if id.chars().count() > 36 {
        return Err(err(HCode::H198));
    }
    if id.chars().all(char::is_alphabetic) {
        return Err(err(HCode::H199));
    }
    if id.chars().all(|c| c.is_ascii_digit()) {
        return Err(err(HCode::H400));
    }
    Ok(())
}

async fn bulk_result(
    sim: Arc<Sim>,
    headers: HeaderMap,
    codes: (String, String, String),
    v2: bool,
) -> ApiResult<Response> {
    let brand = sim.open_brand(&headers, &codes.0, &codes.1)?;
    check_request_id(&codes.2)?;
    let now = sim.now();
    let timing = sim.config().timing;
    let min_age = timing.bulk_min_poll_age_ms as i64;
    let state = sim.state.lock().expect("state lock");
    if let Some(req) = state.bulk(&codes.2)
        && now.duration_since(req.submitted) < SignedDuration::from_millis(min_age)
    {
        sim.stats.lock().expect("stats lock").early_bulk_polls += 1;
    }
    let mut items = state.bulk_results(brand, &codes.2, v2, now);
    timing.bulk_result_order.arrange(&mut items);
    ok(StatusCode::OK, items)
}

async fn bulk_result_v1(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String, String)>,
) -> ApiResult<Response> {
    bulk_result(sim, headers, codes, false).await
}

async fn bulk_result_v2(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String, String)>,
) -> ApiResult<Response> {
    bulk_result(sim, headers, codes, true).await
}

/// Single status. IYS does not document the answer for a consent it never had; we answer
/// 404 with H401's "consent does not exist" message (see docs/simulator.md).
async fn status(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let (brand, body) = sim.open(&headers, &codes, &body)?;
    let key = consent_key(brand, &body)?;
    let state = sim.state.lock().expect("state lock");
    match state.status(&key) {
        Some(s) => ok(StatusCode::OK, s),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            serde_json::to_value(IysErrors::one(
                IysError::new(HCode::H401).with_message("İzin bulunamadı."),
            ))
            .unwrap_or_default(),
        )),
    }
}

async fn multi_status(
    State(sim): SimState,
    headers: HeaderMap,
    Path((iys_code, brand_code, recipient_type, consent_type)): Path<(
        String,
        String,
        String,
        String,
    )>,
    body: Bytes,
) -> ApiResult<Response> {
    let user = sim.authenticate(&headers)?;
    let body = parse_json(&body)?;
    let brand = sim.authorize(&user, &iys_code, Some(&brand_code))?;
    let rt: RecipientType = recipient_type.parse().map_err(|_| {
        IysError::new(HCode::H116)
            .at("recipientType")
            .with_value(recipient_type.as_str())
    })?;
    let ct: ConsentType = consent_type.parse().map_err(|_| {
        IysError::new(HCode::H117)
            .at("type")
            .with_value(consent_type.as_str())
    })?;
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
    if list.len() > MAX_BULK {
        return Err(IysError::new(HCode::H125).at("recipients").into());
    }
    let mut errs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut recipients = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        match v.as_str().map(|s| Recipient::parse_iys_for(s, ct)) {
            Some(Ok(r)) => {
                if !seen.insert(r.clone()) {
                    errs.push(
                        IysError::new(HCode::H193)
                            .at_location(Location::indexed("recipients", i))
                            .with_value(v.clone()),
                    );
                }
                recipients.push(r);
            }
            _ => {
                let message = if ct.needs_phone() {
                    HCode::H464.message_tr().replacen("MESAJ", ct.as_str(), 1)
                } else {
                    format!(
                        "İzin tipi (type) {ct} için, alıcı (recipient) eposta formatında olmalıdır."
                    )
                };
                errs.push(
                    IysError::new(HCode::H464)
                        .with_message(message)
                        .at_location(Location::indexed("recipients", i))
                        .with_value(v.clone()),
                );
            }
        }
    }
    if !errs.is_empty() {
        return Err(errors(errs));
    }
    let state = sim.state.lock().expect("state lock");
    let onay: Vec<String> = recipients
        .iter()
        .filter(|r| {
            let key = Key {
                brand,
                recipient: Arc::from(r.as_str()),
                recipient_type: rt,
                consent_type: ct,
            };
            state
                .current(&key)
                .is_some_and(|m| m.status == iys::ConsentStatus::Onay)
        })
        .map(|r| r.as_str().to_owned())
        .collect();
    ok(
        StatusCode::OK,
        MultiStatusResponse {
            request_id: uuid::Uuid::new_v4().to_string(),
            list: onay,
        },
    )
}

async fn history(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult<Response> {
    let (brand, body) = sim.open(&headers, &codes, &body)?;
    let (limit, offset) = paging(&q, 100, 100)?;
    let key = consent_key(brand, &body)?;
    let state = sim.state.lock().expect("state lock");
    let all = state.history(&key);
    let list: Vec<Value> = all
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        // citizenName belongs to the changes feed only.
        .map(|m| m.to_json(false))
        .collect();
    let pagination = Pagination {
        total_count: all.len() as u64,
        page_size: list.len() as u64,
        offset,
        current_page: None,
    };
    // HistoryResponse's shape, with movements that may lack a source (see Movement::to_json).
    ok(
        StatusCode::OK,
        serde_json::json!({"list": list, "pagination": pagination}),
    )
}

async fn changes(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let brand = sim.open_brand(&headers, &codes.0, &codes.1)?;
    let source = match q.get("source").map(String::as_str) {
        None | Some("IYS") => ChangeSource::Iys,
        Some("HS") => ChangeSource::Hs,
        Some(other) => {
            return Err(IysError::new(HCode::H506)
                .at("source")
                .with_value(other)
                .into());
        }
    };
    let limit = match q.get("limit") {
        None => 1000,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 1000 => {
                // IYS echoes the query parameter as given: `"value": "1500"`.
                return Err(IysError::new(HCode::H507)
                    .at("limit")
                    .with_value(s.as_str())
                    .into());
            }
            Ok(0) => return Err(IysError::new(HCode::H187).at("limit").with_value(0).into()),
            Ok(n) => n,
            Err(_) => {
                return Err(IysError::new(HCode::H183)
                    .at("limit")
                    .with_value(s.as_str())
                    .into());
            }
        },
    };
    let after = match q.get("after") {
        None => None,
        Some(cursor) => {
            let parsed = cursor
                .split_once('_')
                .and_then(|(secs, tx)| Some((secs.parse::<i64>().ok()?, TxId::from_hex(tx)?)));
            match parsed {
                Some(p) => Some(p),
                None => {
                    return Err(IysError::new(HCode::H098)
                        .at("after")
                        .with_value(cursor.as_str())
                        .into());
                }
            }
        }
    };
    let cfg = sim.config();
    let now = sim.now().as_second();
    let window_start = now - i64::from(cfg.timing.changes_window_days) * 86_400;
    // Even without IYS's hour, the current second stays hidden: movements of one consent in one
    // second share a transactionId (one cursor), so a second is served only once it is complete.
    let window_end = if cfg.timing.hide_last_hour {
        now - 3600
    } else {
        now - 1
    };
    let state = sim.state.lock().expect("state lock");
    match state.changes(brand, source, after, limit, (window_start, window_end)) {
        Some(page) => ok(StatusCode::OK, page),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

// ---------------------------------------------------------------------------------------------
// Push

fn push_connection(v: &Value, allow_http: bool) -> Result<PushConnection, IysError> {
    let text = |name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let consent_type = match v.get("type") {
        None | Some(Value::Null) => return Err(IysError::new(HCode::H111).at("type")),
        Some(t) => t
            .as_str()
            .and_then(|s| s.parse::<ConsentType>().ok())
            .ok_or_else(|| IysError::new(HCode::H117).at("type").with_value(t.clone()))?,
    };
    let (Some(username), Some(password)) = (text("username"), text("password")) else {
        return Err(IysError::new(HCode::H093)
            .with_message("Kullanıcı adı (username) ve şifre (password) verilmelidir."));
    };
    let url = text("url").ok_or_else(|| IysError::new(HCode::H531).at("url"))?;
    let scheme_ok = url.starts_with("https://") || (allow_http && url.starts_with("http://"));
    if !scheme_ok {
        return Err(IysError::new(HCode::H531).at("url").with_value(url));
    }
    Ok(PushConnection {
        url: url.to_owned(),
        consent_type,
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

async fn push_register(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let (brand, body) = sim.open(&headers, &codes, &body)?;
    let allow_http = sim.config().allow_insecure_push;
    let list = body
        .get("connection")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| IysError::new(HCode::H530).at("connection"))?;
    let conns = list
        .iter()
        .map(|c| push_connection(c, allow_http))
        .collect::<Result<Vec<_>, _>>()?;
    {
        let state = sim.state.lock().expect("state lock");
        let existing = state.push.get(&brand).map_or(&[][..], Vec::as_slice);
        for c in &conns {
            let same_type = existing
                .iter()
                .filter(|r| r.connection.consent_type == c.consent_type)
                .count()
                + conns
                    .iter()
                    .filter(|x| x.consent_type == c.consent_type)
                    .count();
            if same_type > 2 {
                return Err(IysError::new(HCode::H530)
                    .with_message("Her izin tipi için en fazla iki aktif bağlantı olabilir.")
                    .into());
            }
        }
    }
    // IYS posts its test payload; the URL must answer within 5 s.
    let http = crate::push::client();
    for c in &conns {
        if let Err(reason) =
            crate::push::deliver(&http, c, &iys::wire::PushPayload::test_payload()).await
        {
            let code = if reason == "timeout" {
                HCode::H191
            } else {
                HCode::H530
            };
            let message = if code == HCode::H191 {
                "Bağlantı zaman aşımına uğradı."
            } else {
                HCode::H530.message_tr()
            };
            return Err(IysError::new(code)
                .with_message(message)
                .at("url")
                .with_value(c.url.as_str())
                .into());
        }
    }
    let registered = ConsentDate::from_timestamp(sim.now());
    let mut state = sim.state.lock().expect("state lock");
    let regs = state.push.entry(brand).or_default();
    for connection in conns {
        regs.retain(|r| {
            !(r.connection.url == connection.url
                && r.connection.consent_type == connection.consent_type)
        });
        regs.push(PushRegistration {
            connection,
            registered,
        });
    }
    ok(
        StatusCode::OK,
        MessageResponse {
            message: "Bağlantı oluşturuldu".into(),
        },
    )
}

async fn push_list(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String)>,
) -> ApiResult<Response> {
    let brand = sim.open_brand(&headers, &codes.0, &codes.1)?;
    let state = sim.state.lock().expect("state lock");
    let list: Vec<PushRegistrationItem> = state
        .push
        .get(&brand)
        .map(|regs| {
            regs.iter()
                .map(|r| PushRegistrationItem {
                    url: r.connection.url.clone(),
                    consent_type: r.connection.consent_type,
                    register_time: r.registered,
                    status: "Bağlantı Oluşturuldu".into(),
                })
                .collect()
        })
        .unwrap_or_default();
    ok(StatusCode::OK, list)
}

async fn push_unregister(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let (brand, body) = sim.open(&headers, &codes, &body)?;
    let conn = push_connection(&body, true)?;
    let mut state = sim.state.lock().expect("state lock");
    let regs = state.push.entry(brand).or_default();
    let before = regs.len();
    regs.retain(|r| {
        !(r.connection.url == conn.url && r.connection.consent_type == conn.consent_type)
    });
    if regs.len() == before {
        return Err(IysError::new(HCode::H530)
            .with_message("Bağlantı kaldırılamadı.")
            .into());
    }
    ok(
        StatusCode::OK,
        MessageResponse {
            message: "Bağlantı Kaldırıldı".into(),
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Dealers

fn dealer_body(v: &Value) -> Result<Retailer, IysError> {
    let text = |name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let code_name = |name: &str, codes: [HCode; 3]| -> Result<CodeName, IysError> {
        let obj = v
            .get(name)
            .filter(|o| o.is_object())
            .ok_or_else(|| IysError::new(codes[0]).at(name))?;
        let code = match obj.get("code") {
            Some(Value::Number(n)) => n.as_u64().map(Code::Number),
            Some(Value::String(s)) if !s.is_empty() => Some(Code::Text(s.clone())),
            _ => None,
        }
        .ok_or_else(|| {
            IysError::new(codes[1]).at_location(Location(vec![
                iys::error::LocationPart::Field(name.into()),
                iys::error::LocationPart::Field("code".into()),
            ]))
        })?;
        let cname = obj
            .get("name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                IysError::new(codes[2]).at_location(Location(vec![
                    iys::error::LocationPart::Field(name.into()),
                    iys::error::LocationPart::Field("name".into()),
                ]))
            })?;
        Ok(CodeName {
            code,
            name: cname.to_owned(),
        })
    };
    let title = text("title").ok_or_else(|| IysError::new(HCode::H214).at("title"))?;
    if !title
        .chars()
        .all(|c| c.is_alphanumeric() || " .,&-'()".contains(c))
    {
        return Err(IysError::new(HCode::H229).at("title").with_value(title));
    }
    let name = text("name").ok_or_else(|| IysError::new(HCode::H215).at("name"))?;
    let tckn = text("tckn").ok_or_else(|| IysError::new(HCode::H216).at("tckn"))?;
    if tckn.len() != 11 || !tckn.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IysError::new(HCode::H226).at("tckn").with_value(tckn));
    }
    let tin = match v.get("tin") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(IysError::new(HCode::H288).at("tin")),
    };
    if !(tin.len() == 10 || tin.len() == 11) || !tin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IysError::new(HCode::H244).at("tin").with_value(tin));
    }
    let city = code_name("city", [HCode::H217, HCode::H218, HCode::H219])?;
    let town = code_name("town", [HCode::H220, HCode::H221, HCode::H222])?;
    // Optional, so absent; `null` and `""` are refused like any malformed MERSİS number.
    let mersis = match v.get("mersis") {
        None => None,
        Some(m) => {
            let s = m
                .as_str()
                .map(str::to_owned)
                .or_else(|| m.as_u64().map(|n| n.to_string()))
                .unwrap_or_default();
            if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(IysError::new(HCode::H228)
                    .at("mersis")
                    .with_value(m.clone()));
            }
            Some(Code::Text(s))
        }
    };
    let mobile = match text("mobile") {
        None => None,
        Some(m) => Some(
            iys::Phone::parse_iys(m)
                .map_err(|_| IysError::new(HCode::H224).at("mobile").with_value(m))?
                .as_str()
                .to_owned(),
        ),
    };
    let status = match v.get("status") {
        None | Some(Value::Null) => RetailerStatus::Active,
        Some(s) => serde_json::from_value(s.clone()).map_err(|_| {
            IysError::new(HCode::H201)
                .at("status")
                .with_value(s.clone())
        })?,
    };
    Ok(Retailer {
        retailer_code: None,
        title: title.to_owned(),
        name: Some(name.to_owned()),
        tckn: Some(tckn.to_owned()),
        tin: Some(Code::Text(tin)),
        mersis,
        alias: text("alias").map(str::to_owned),
        mobile,
        city,
        town: Some(town),
        status: Some(status),
        retailer_access_count: None,
        can_be_deleted: None,
    })
}

async fn retailer_create(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let (brand, body) = sim.open(&headers, &codes, &body)?;
    let dealer = dealer_body(&body)?;
    let mut state = sim.state.lock().expect("state lock");
    for d in state.dealers(brand) {
        if d.body.tckn == dealer.tckn {
            return Err(IysError::new(HCode::H231).at("tckn").into());
        }
        if dealer.mersis.is_some() && d.body.mersis == dealer.mersis {
            return Err(IysError::new(HCode::H230).at("mersis").into());
        }
    }
    let retailer_code = state.add_dealer(brand, dealer);
    ok(StatusCode::CREATED, RetailerCreated { retailer_code })
}

fn dealer_view(
    state: &crate::state::IysState,
    brand: u64,
    d: &crate::state::Dealer,
    short: bool,
) -> Retailer {
    let mut r = d.body.clone();
    r.retailer_access_count = Some(0);
    r.can_be_deleted = Some(!state.dealer_in_use(brand, d.code));
    if short {
        r.name = None;
        r.tckn = None;
        r.tin = None;
        r.mersis = None;
        r.alias = None;
        r.mobile = None;
        r.town = None;
        r.can_be_deleted = None;
    }
    r
}

async fn retailer_list(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let brand = sim.open_brand(&headers, &codes.0, &codes.1)?;
    let (limit, offset) = paging(&q, 100, 100)?;
    let short = match q.get("short").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(IysError::new(HCode::H185)
                .at("short")
                .with_value(other)
                .into());
        }
    };
    let state = sim.state.lock().expect("state lock");
    let all: Vec<_> = state.dealers(brand).collect();
    let list: Vec<Retailer> = all
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|d| dealer_view(&state, brand, d, short))
        .collect();
    ok(
        StatusCode::OK,
        RetailerList {
            pagination: Pagination {
                total_count: all.len() as u64,
                page_size: list.len() as u64,
                offset,
                current_page: Some(offset / limit + 1),
            },
            list,
        },
    )
}

/// A `retailerCode` path parameter: not an integer is invalid input (400 H016), not an unknown
/// dealer (see docs/simulator.md).
fn dealer_code(s: &str) -> ApiResult<u64> {
    s.parse().map_err(|_| {
        IysError::new(HCode::H016)
            .with_message("Geçersiz girdi tespit edildi: retailerCode integer bir değer olmalıdır.")
            .at("retailerCode")
            .with_value(s)
            .into()
    })
}

/// Get one dealer; IYS answers 200 with no data for an unknown code (release note 0.2.0).
async fn retailer_get(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let brand = sim.open_brand(&headers, &codes.0, &codes.1)?;
    let code = dealer_code(&codes.2)?;
    let state = sim.state.lock().expect("state lock");
    match state.dealer(brand, code) {
        Some(d) => ok(StatusCode::OK, dealer_view(&state, brand, d, false)),
        None => ok(StatusCode::OK, serde_json::json!({})),
    }
}

async fn retailer_delete(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let brand = sim.open_brand(&headers, &codes.0, &codes.1)?;
    let code = dealer_code(&codes.2)?;
    let mut state = sim.state.lock().expect("state lock");
    if state.dealer(brand, code).is_none() {
        let message = HCode::H058
            .message_tr()
            .replace("{{retailerCode}}", &code.to_string());
        return Err(IysError::new(HCode::H058).with_message(message).into());
    }
    if state.dealer_in_use(brand, code) {
        return Err(IysError::new(HCode::H016)
            .with_message("İzin ilişkisi bulunan bayi silinemez.")
            .with_value(code)
            .into());
    }
    state.remove_dealer(brand, code);
    let mut resp = "Başarı".into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(resp)
}

/// `retailerAccess` of an access body (H169 missing, H163 empty, H126 over 100).
fn access_codes(body: &Value) -> Result<Vec<u64>, IysError> {
    let list = match body.get("retailerAccess") {
        None | Some(Value::Null) => return Err(IysError::new(HCode::H169).at("retailerAccess")),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(IysError::new(HCode::H163)
                .at("retailerAccess")
                .with_value(other.clone()));
        }
    };
    if list.is_empty() {
        return Err(IysError::new(HCode::H163).at("retailerAccess"));
    }
    if list.len() > 100 {
        return Err(IysError::new(HCode::H126).at("retailerAccess"));
    }
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_u64().ok_or_else(|| {
                IysError::new(HCode::H180)
                    .at_location(Location::indexed("retailerAccess", i))
                    .with_value(v.clone())
            })
        })
        .collect()
}

/// The keys of a many-recipients access body (H168, H164, H127 over 100).
fn access_keys(brand: u64, body: &Value) -> ApiResult<Vec<Key>> {
    let list = match body.get("recipients") {
        None | Some(Value::Null) => return Err(IysError::new(HCode::H168).at("recipients").into()),
        Some(Value::Array(a)) => a.clone(),
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
    if list.len() > 100 {
        return Err(IysError::new(HCode::H127).at("recipients").into());
    }
    list.into_iter()
        .map(|r| {
            let mut one = body.clone();
            if let Some(o) = one.as_object_mut() {
                o.insert("recipient".into(), r);
            }
            consent_key(brand, &one)
        })
        .collect()
}

async fn access_grant(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let (brand, body) = sim.open(&headers, &codes, &body)?;
    let key = consent_key(brand, &body)?;
    let dealers = access_codes(&body)?;
    let mut state = sim.state.lock().expect("state lock");
    state.check_dealer_codes(brand, &dealers)?;
    state.grant_access(key, &dealers)?;
    ok(
        StatusCode::OK,
        TransactionReceipt {
            transaction_id: uuid::Uuid::new_v4().to_string(),
            creation_date: ConsentDate::from_timestamp(sim.now()),
        },
    )
}

async fn access_replace(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let (brand, body) = sim.open(&headers, &codes, &body)?;
    let keys = access_keys(brand, &body)?;
    let dealers = access_codes(&body)?;
    let mut state = sim.state.lock().expect("state lock");
    state.check_dealer_codes(brand, &dealers)?;
    for key in keys {
        state.replace_access(key, &dealers);
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn access_list(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult<Response> {
    let (brand, body) = sim.open(&headers, &codes, &body)?;
    let (limit, offset) = paging(&q, 100, 100)?;
    let key = consent_key(brand, &body)?;
    let state = sim.state.lock().expect("state lock");
    let all = state.access_of(&key);
    let list: Vec<Retailer> = all
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .filter_map(|c| state.dealer(brand, *c))
        .map(|d| dealer_view(&state, brand, d, false))
        .collect();
    ok(
        StatusCode::OK,
        RetailerList {
            pagination: Pagination {
                total_count: all.len() as u64,
                page_size: list.len() as u64,
                offset,
                current_page: None,
            },
            list,
        },
    )
}

async fn access_remove(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let (brand, body) = sim.open(&headers, &codes, &body)?;
    let keys = access_keys(brand, &body)?;
    let dealers = access_codes(&body)?;
    let mut state = sim.state.lock().expect("state lock");
    for key in &keys {
        state.remove_access(key, Some(&dealers));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn access_remove_all(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let (brand, body) = sim.open(&headers, &codes, &body)?;
    let keys = access_keys(brand, &body)?;
    let mut state = sim.state.lock().expect("state lock");
    for key in &keys {
        state.remove_access(key, None);
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

// ---------------------------------------------------------------------------------------------
// Reconciliation

/// `reportDate`: `YYYY-MM-DD` (H501), within the last 7 days and not in the future (H502).
fn report_date(sim: &Sim, s: &str) -> ApiResult<jiff::civil::Date> {
    let shape_ok = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    let date: jiff::civil::Date = shape_ok
        .then(|| s.parse().ok())
        .flatten()
        .ok_or_else(|| IysError::new(HCode::H501).at("reportDate").with_value(s))?;
    let today = ConsentDate::from_timestamp(sim.now()).civil().date();
    let oldest = today
        .checked_sub(jiff::Span::new().days(7))
        .unwrap_or(today);
    if date < oldest || date > today {
        return Err(IysError::new(HCode::H502)
            .at("reportDate")
            .with_value(s)
            .into());
    }
    Ok(date)
}

async fn day_summary(
    State(sim): SimState,
    headers: HeaderMap,
    Path(p): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    let user = sim.authenticate(&headers)?;
    let brand = sim.authorize(&user, &p.0, Some(&p.1))?;
    let date = report_date(&sim, &p.2)?;
    let rt: RecipientType = p.3.parse().map_err(|_| {
        IysError::new(HCode::H116)
            .at("recipientType")
            .with_value(p.3.as_str())
    })?;
    let state = sim.state.lock().expect("state lock");
    ok(StatusCode::OK, state.day_summary(brand, date, rt))
}

/// The movement file of a finished day (path: iysCode, brandCode, reportDate) with its brand
/// and date;
/// `None` for today (IYS writes the file when the day is over) or a day without movements.
fn finished_day_file(
    sim: &Arc<Sim>,
    headers: &HeaderMap,
    p: &(String, String, String),
) -> ApiResult<Option<(u64, jiff::civil::Date, String)>> {
    let user = sim.authenticate(headers)?;
    let brand = sim.authorize(&user, &p.0, Some(&p.1))?;
    let date = report_date(sim, &p.2)?;
    let today = ConsentDate::from_timestamp(sim.now()).civil().date();
    if date >= today {
        return Ok(None);
    }
    let file = sim.state.lock().expect("state lock").day_file(brand, date);
    Ok((!file.is_empty()).then_some((brand, date, file)))
}

async fn day_file(
    State(sim): SimState,
    headers: HeaderMap,
    Path(p): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let Some((_, _, file)) = finished_day_file(&sim, &headers, &p)? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let mut resp = file.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    Ok(resp)
}

/// The daily file's hash; IYS computes it once the day is over.
async fn agreement(
    State(sim): SimState,
    headers: HeaderMap,
    Path(p): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let user = sim.authenticate(&headers)?;
    let brand = sim.authorize(&user, &p.0, Some(&p.1))?;
    let date = report_date(&sim, &p.2)?;
    let today = ConsentDate::from_timestamp(sim.now()).civil().date();
    let state = sim.state.lock().expect("state lock");
    if !state.has_day(brand, date) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let body = if date < today {
        let hash = sha2::Sha384::digest(state.day_file(brand, date).as_bytes());
        AgreementHash {
            process_status: ProcessStatus::Completed,
            hash_value: Some(hex::encode(hash)),
            hash_method: Some("SHA-384".into()),
            agreement_status: state.agreed(brand, date),
        }
    } else {
        AgreementHash {
            process_status: ProcessStatus::Inprogress,
            hash_value: None,
            hash_method: None,
            agreement_status: false,
        }
    };
    ok(StatusCode::OK, body)
}

async fn agreement_confirm(
    State(sim): SimState,
    headers: HeaderMap,
    Path(p): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let user = sim.authenticate(&headers)?;
    let body = parse_json(&body)?;
    let brand = sim.authorize(&user, &p.0, Some(&p.1))?;
    let date = report_date(&sim, &p.2)?;
    if body.get("agreementStatus") != Some(&Value::Bool(true)) {
        let value = body.get("agreementStatus").cloned().unwrap_or(Value::Null);
        return Err(IysError::new(HCode::H512)
            .at("agreementStatus")
            .with_value(value)
            .into());
    }
    let mut state = sim.state.lock().expect("state lock");
    if !state.has_day(brand, date) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    state.agree(brand, date);
    ok(
        StatusCode::OK,
        AgreementCaptured {
            agreement_captured: true,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Info

async fn cities(State(sim): SimState, headers: HeaderMap) -> ApiResult<Response> {
    sim.authenticate(&headers)?;
    let list: Vec<City> = CITIES
        .iter()
        .map(|(code, name)| City {
            code: Code::Number(u64::from(*code)),
            name: (*name).into(),
        })
        .collect();
    ok(StatusCode::OK, list)
}

async fn city(
    State(sim): SimState,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> ApiResult<Response> {
    sim.authenticate(&headers)?;
    match CITIES
        .iter()
        .find(|(c, _)| c.to_string() == code.trim_start_matches('0'))
    {
        Some((c, name)) => ok(
            StatusCode::OK,
            City {
                code: Code::Number(u64::from(*c)),
                name: (*name).into(),
            },
        ),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

fn town_of(t: &(u16, &str, u16)) -> Town {
    Town {
        name: t.1.into(),
        code: Code::Number(u64::from(t.0)),
        city_code: Code::Number(u64::from(t.2)),
    }
}

async fn towns(State(sim): SimState, headers: HeaderMap) -> ApiResult<Response> {
    sim.authenticate(&headers)?;
    ok(
        StatusCode::OK,
        TOWNS.iter().map(town_of).collect::<Vec<_>>(),
    )
}

async fn town(
    State(sim): SimState,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> ApiResult<Response> {
    sim.authenticate(&headers)?;
    match TOWNS.iter().find(|t| t.0.to_string() == code) {
        Some(t) => ok(StatusCode::OK, town_of(t)),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

// ---------------------------------------------------------------------------------------------
// Time stamp of a day's file

/// The `.tsr` time stamp of a finished day's movement file; 204 like the file itself when
/// there is none (today, or a day without movements).
async fn agreement_timestamp(
    State(sim): SimState,
    headers: HeaderMap,
    Path(p): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let Some((brand, date, file)) = finished_day_file(&sim, &headers, &p)? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let digest: [u8; 48] = sha2::Sha384::digest(file.as_bytes()).into();
    // Stamped when the day ends (00:00 the next day, Istanbul).
    let stamped_at = date
        .tomorrow()
        .map(crate::state::day_start)
        .ok()
        .and_then(|secs| jiff::Timestamp::from_second(secs).ok())
        .unwrap_or_else(|| sim.now());
    let body = crate::tsr::time_stamp_response(&digest, stamped_at);
    let mut resp = body.into_response();
    // IYS's document declares text/plain for this binary file.
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{brand}_{date}.tsr\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

// ---------------------------------------------------------------------------------------------
// Partners (integrators)

/// A partner user's own integratorCode checked: 422 H190-style for a non-integer code, 400
/// H363 for a provider's user, 403 H353 for another partner's code, then the partner's
/// subscription (H521/H520).
fn open_integrator(sim: &Sim, headers: &HeaderMap, code: &str) -> ApiResult<crate::SimConfig> {
    let user = sim.authenticate(headers)?;
    let cfg = sim.config();
    let integrator: u64 = code.parse().map_err(|_| {
        IysError::new(HCode::H190)
            .with_message("integratorCode integer bir değer olmalıdır.")
            .at("integratorCode")
            .with_value(code)
    })?;
    if !cfg.integrator.users.iter().any(|u| u.username == user) {
        return Err(IysError::new(HCode::H363).into());
    }
    if integrator != cfg.integrator.integrator_code {
        let message = HCode::H353
            .message_tr()
            .replacen("iysCode", "integratorIysCode", 1);
        return Err(IysError::new(HCode::H353).with_message(message).into());
    }
    match cfg.integrator.status {
        SubscriptionStatus::Closed => Err(IysError::new(HCode::H521).into()),
        SubscriptionStatus::Paused | SubscriptionStatus::Expired => {
            Err(IysError::new(HCode::H520).into())
        }
        SubscriptionStatus::Active => Ok(cfg),
    }
}

fn integrator_list(
    sim: &Sim,
    headers: &HeaderMap,
    code: &str,
    iys_code: Option<&str>,
    q: &HashMap<String, String>,
) -> ApiResult<Response> {
    let cfg = open_integrator(sim, headers, code)?;
    let (limit, offset) = paging(q, 100, 100)?;
    if let Some(iys) = iys_code {
        let iys: u64 = iys
            .parse()
            .map_err(|_| IysError::new(HCode::H190).at("iysCode").with_value(iys))?;
        if iys != cfg.iys_code {
            return Err(IysError::new(HCode::H353).into());
        }
    }
    let user = sim.authenticate(headers)?;
    let all: Vec<IntegratorBrand> = cfg
        .brands
        .iter()
        .filter(|b| sim.may_act_for(&cfg, &user, b.brand_code))
        .map(|b| IntegratorBrand {
            brand_code: Code::Number(b.brand_code),
            name: b.name.clone(),
            master: b.master,
            title: cfg.provider_title.clone(),
            iys_code: Code::Number(cfg.iys_code),
            agreement_control: true,
            mesaj: Some("write".into()),
            arama: Some("write".into()),
            eposta: Some("write".into()),
            via_control: false,
        })
        .collect();
    let list: Vec<IntegratorBrand> = all
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .cloned()
        .collect();
    ok(
        StatusCode::OK,
        IntegratorBrands {
            pagination: Pagination {
                total_count: all.len() as u64,
                page_size: list.len() as u64,
                offset,
                current_page: None,
            },
            list,
        },
    )
}

async fn integrator_brands(
    State(sim): SimState,
    headers: HeaderMap,
    Path(code): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    integrator_list(&sim, &headers, &code, None, &q)
}

async fn integrator_brands_of(
    State(sim): SimState,
    headers: HeaderMap,
    Path((code, iys_code)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    integrator_list(&sim, &headers, &code, Some(&iys_code), &q)
}

/// The partner's own subscription; usable in every subscription state, as IYS's H520 says.
async fn integrator_subscription(
    State(sim): SimState,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> ApiResult<Response> {
    let user = sim.authenticate(&headers)?;
    let cfg = sim.config();
    if !cfg.integrator.users.iter().any(|u| u.username == user) {
        return Err(IysError::new(HCode::H522).into());
    }
    let partner = &cfg.integrator;
    if code.parse::<u64>().ok() != Some(partner.integrator_code) {
        let message = HCode::H437.message_tr().replace("{{iysCode}}", &code);
        return Err(IysError::new(HCode::H437).with_message(message).into());
    }
    let (start, end) = subscription_period(sim.now());
    ok(
        StatusCode::OK,
        Subscription {
            subscription_id: Some(format!("sim-{}", partner.integrator_code)),
            start_date: start,
            expiration_date: end,
            subscription_package_name: partner.package_name.clone(),
            status: partner.status,
            consent_limit: None,
            consent_limit_exceed: None,
            used_consent_limit: None,
            // The schema types it a string (the example has a number).
            iys_code: Some(Code::Text(partner.integrator_code.to_string())),
            via_subscription_package: None,
            via_pass_subscription_package: None,
        },
    )
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
