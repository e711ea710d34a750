//! The brand's side of IYS: sync status, IYS's push deliveries and the backfill.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use hub_core::Origin;
use hub_store::Scope;
use jiff::Timestamp;
use serde_json::Value;

use crate::api::{brand_code, brand_for};
use crate::auth::Caller;
use crate::dto::error::ErrorResponse;
use crate::dto::params::BrandCodePath;
use crate::dto::sync::{
    BackfillPosition, BackfillStatus, Connection, ConnectionFrom, PullCursor, PushDelivery,
    PushReceipt, SyncStatus, TokenState,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, typed};
use crate::{HubDb, HubState};

/// A cursor not advanced for this long risks missing movements: IYS keeps 7 days.
const STALE_CURSOR_SECS: i64 = 6 * 86_400;

/// How the brand and IYS stand
///
/// Scope: read. Mode, pulls and cursor age, outbox rows by state, the oldest pending change's
/// IYS deadline, changes at risk of missing it, IYS refusals by H-code in the last 24 hours, the
/// IYS connection the engines use, the shared IYS token's state (never the token itself), a
/// paused dispatch, the reconciliation over IYS's 7 days, and movements quarantined for a
/// person.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/sync",
    tag = "sync",
    operation_id = "getSyncStatus",
    params(BrandCodePath),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "The status.", body = SyncStatus),
    )
)]
pub async fn get_sync<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Json<SyncStatus>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let now = Timestamp::now();
    let f = hub.store.sync_figures(brand.brand_code, now).await?;
    let pulls = f
        .pulls(brand.mode)
        .map(|c| {
            let age = c.last_success.map(|t| now.duration_since(t).as_secs());
            PullCursor {
                source: c.source.clone(),
                cursor: c.cursor.clone(),
                last_success: c.last_success,
                age_seconds: age,
                stale: age.is_none_or(|a| a > STALE_CURSOR_SECS),
            }
        })
        .collect();
    let (connection, token) = match hub.iys.resolve(&brand.iys) {
        Ok(c) => {
            let token = hub
                .store
                .load_token(&c.token_key())
                .await?
                .and_then(|s| TokenState::from_stored(&s));
            let from = if c.instance_default {
                ConnectionFrom::Instance
            } else {
                ConnectionFrom::Brand
            };
            (
                Connection::Connected {
                    base_url: c.base_url,
                    username: c.username,
                    from,
                },
                token,
            )
        }
        Err(why) => (
            Connection::NotConnected {
                reason: why.to_string(),
            },
            None,
        ),
    };
    Ok(Json(SyncStatus {
        brand_code: brand.brand_code,
        mode: brand.mode,
        pulls,
        outbox: f.outbox.into_iter().collect(),
        oldest_pending_deadline: f.oldest_pending_deadline,
        at_risk: f.at_risk,
        errors_last_24h: f.errors_last_24h.into_iter().collect(),
        connection,
        token,
        dispatch_paused: f.paused.map(Into::into),
        reconciliation: crate::routes::reconcile::sync_summary(&hub, brand.brand_code).await?,
        quarantined: f.quarantined,
    }))
}

/// Largest push delivery read (IYS sends lists of movements; ~250 bytes each).
const PUSH_MAX_BODY: usize = 1024 * 1024;

/// IYS push receiver
///
/// Called by IYS (not by API keys): HTTP Basic auth with the brand's push credentials
/// (iys.pushUsername / iys.pushPassword), checked before the body is read; failed logins are
/// throttled per brand and address. Movements are applied like pulled ones: de-duplicated on
/// their content, the citizen wins unless the hub's state is strictly newer, never sent back to
/// IYS. A movement the hub cannot take is quarantined for a person; one for another brand (IYS's
/// test payload) is ignored.
#[utoipa::path(
    post,
    path = "/api/v1/iys/push/{brandCode}",
    tag = "sync",
    operation_id = "receiveIysPush",
    params(BrandCodePath),
    security(("iysPushBasic" = [])),
    request_body(content = PushDelivery, examples(
        ("delivery" = (summary = "One movement", value = json!({"list": [{"iysCode": 600123, "brandCode": 600123, "consentDate": "2026-11-28 14:05:00", "creationDate": "2026-11-28 14:05:03", "source": "IYS_MOBIL", "recipient": "+905321234567", "recipientType": "BIREYSEL", "status": "RET", "type": "MESAJ", "transactionId": "c2c4b2a0d6f1e0a9"}]})))
    )),
    responses(
        (status = 200, description = "Received and applied (new movements counted).", body = PushReceipt, examples(
            ("applied" = (summary = "Applied", value = json!({"received": 1, "applied": 1, "quarantined": 0})))
        )),
        (status = 401, description = "Missing or wrong Basic credentials (or a brand without push credentials).", body = ErrorResponse, examples(
            ("unauthorized" = (summary = "Wrong credentials", value = json!({"error": {"code": "unauthorized", "message": "IYS push needs the brand's Basic credentials"}})))
        )),
        (status = 413, description = "The delivery is over 1 MiB (1,048,576 bytes).", body = ErrorResponse, examples(
            ("bodyTooLarge" = (summary = "Over 1 MiB", value = json!({"error": {"code": "body_too_large", "message": "a push delivery is at most 1048576 bytes"}})))
        )),
        (status = 422, description = "Not an IYS push payload.", body = ErrorResponse, examples(
            ("notPush" = (summary = "No list", value = json!({"error": {"code": "invalid_body", "message": "not an IYS push payload: expected {\"list\": [...]}", "field": "list"}})))
        )),
        (status = 429, description = "Too many failed push logins for this brand from this address: `rate_limited`, also for correct credentials until `Retry-After` has passed.", body = ErrorResponse,
            headers(("Retry-After" = u32, description = "Seconds until logins are taken again."))),
    )
)]
pub async fn post_push<S: HubDb>(
    State(hub): State<HubState<S>>,
    Path(code): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<PushReceipt>> {
    let code = brand_code(&code)?;
    let who = (code, peer.ip());
    if let Some(wait) = hub.guards.push_failures.blocked(&who) {
        return Err(ApiError::too_many(
            wait,
            "too many failed push logins; try again later",
        ));
    }
    let brand = hub.store.brand(code).await?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let stored = brand.as_ref().and_then(|b| {
        Some((
            b.iys.push_username.clone()?,
            b.iys.push_password_hash.clone()?,
        ))
    });
    let ok = match (&given, &stored) {
        (Some(given), Some((user, hash))) => match given.split_once(':') {
            Some((u, p)) => {
                let (p, hash) = (p.to_owned(), hash.clone());
                // argon2 is deliberately slow: off the async threads.
                let password_ok =
                    tokio::task::spawn_blocking(move || hub_secrets::verify_password(&p, &hash))
                        .await
                        .unwrap_or(false);
                hub_secrets::same(u, user) & password_ok
            }
            None => false,
        },
        _ => false,
    };
    let brand = match (ok, brand) {
        (true, Some(b)) => b,
        _ => {
            if let Some(wait) = hub.guards.push_failures.hit(&who) {
                tracing::warn!(brand = %code, peer = %peer.ip(), "push logins throttled after repeated failures");
                return Err(ApiError::too_many(
                    wait,
                    "too many failed push logins; try again later",
                ));
            }
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "IYS push needs the brand's Basic credentials",
            ));
        }
    };
    hub.guards.push_failures.clear(&who);
    // A hash from an earlier version (unsalted SHA-256) is replaced by argon2 on first success.
    if let (Some(pw), Some(hash)) = (
        given
            .as_ref()
            .and_then(|g| g.split_once(':'))
            .map(|(_, p)| p.to_owned()),
        &brand.iys.push_password_hash,
    ) && hub_secrets::is_legacy_hash(hash)
        && let Ok(new_hash) = hub_secrets::hash_password(&pw)
    {
        let mut iys = brand.iys.clone();
        iys.push_password_hash = Some(new_hash);
        hub.store
            .update_brand(
                code,
                hub_store::BrandPatch {
                    iys: Some(iys),
                    ..Default::default()
                },
            )
            .await?;
    }
    let bytes = axum::body::to_bytes(body, PUSH_MAX_BODY)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("a push delivery is at most {PUSH_MAX_BODY} bytes"),
            )
        })?;
    // Each item is read on its own: one the hub cannot take (NUL characters included) is set
    // aside, the rest apply.
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })?;
    let list = typed::<PushDelivery>(&value)?.list;
    let received = list.len();
    // IYS's test payload (brandCode 121212) and anything for another brand are not this
    // brand's to apply. A brandCode written as text is read as its number; an item without a
    // readable one is set aside for a person rather than dropped unseen (it may be a RET).
    let mut mine: Vec<Value> = Vec::with_capacity(list.len());
    let mut unaddressed = Vec::new();
    for item in list {
        let brand_code = match item.get("brandCode") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match brand_code {
            Some(b) if b == code.0 => mine.push(item),
            Some(_) => {}
            None => unaddressed.push((item, "no readable brandCode".to_owned())),
        }
    }
    let now = Timestamp::now();
    let (changes, mut set_aside) = hub_core::screen_movements(code, mine, Origin::IysPush, now);
    set_aside.extend(unaddressed);
    if !set_aside.is_empty() {
        tracing::warn!(brand = %code, count = set_aside.len(), "pushed movements set aside for a person (quarantine)");
        hub.store.quarantine(code, "PUSH", &set_aside, now).await?;
    }
    let applied = if changes.is_empty() {
        Vec::new()
    } else {
        hub.store.apply(&brand, changes, None).await?
    };
    Ok(Json(PushReceipt {
        received,
        applied: applied.iter().filter(|a| a.event_id.is_some()).count(),
        quarantined: set_aside.len(),
    }))
}

fn no_backfill() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "engines_not_running",
        "this instance runs no IYS engines (--role api); ask a worker instance or run `iyshub backfill`",
    )
}

/// The runner's report, typed (the engines write it as JSON).
fn report(
    runner: &dyn hub_core::Backfill,
    brand: hub_core::BrandCode,
) -> ApiResult<BackfillStatus> {
    serde_json::from_value(runner.report(brand)).map_err(ApiError::internal)
}

/// Start sync mode's initial load
///
/// Scope: admin. Asks IYS which of the brand's known recipients it has: multi-status for all of
/// them (1000 per call), then single status for held recipients within IYS's hourly budget (at
/// most 900 per run). Consents IYS has are marked known; in sync mode their held changes are
/// released. Progress is stored, so a backfill resumes after a restart. Runs in the background,
/// on an instance that runs the IYS engines.
#[utoipa::path(
    post,
    path = "/api/v1/brands/{brandCode}/backfill",
    tag = "sync",
    operation_id = "startBackfill",
    params(BrandCodePath),
    security(("apiKey" = ["admin"])),
    responses(
        (status = 202, description = "Started.", body = BackfillStatus, examples(
            ("started" = (summary = "Started", value = json!({"running": true, "report": null})))
        )),
        (status = 409, description = "A backfill of this brand is already running.", body = ErrorResponse, examples(
            ("running" = (summary = "Already running", value = json!({"error": {"code": "conflict", "message": "a backfill of this brand is already running"}})))
        )),
        (status = 503, description = "No IYS engines on this instance (or the request took over 60 s).", body = ErrorResponse, examples(
            ("noEngines" = (summary = "An API-only instance", value = json!({"error": {"code": "engines_not_running", "message": "this instance runs no IYS engines (--role api); ask a worker instance or run `iyshub backfill`"}})))
        )),
    )
)]
pub async fn post_backfill<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<(StatusCode, Json<BackfillStatus>)> {
    let brand = brand_for(&hub, &caller, &code, Scope::Admin).await?;
    let runner = hub.backfill.as_ref().ok_or_else(no_backfill)?;
    let code = brand.brand_code;
    if !runner.start(code) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "a backfill of this brand is already running",
        ));
    }
    Ok((StatusCode::ACCEPTED, Json(report(runner.as_ref(), code)?)))
}

/// Backfill progress
///
/// Scope: read. Whether a backfill runs on this instance, its last report, and the stored
/// position per channel and recipientType.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/backfill",
    tag = "sync",
    operation_id = "getBackfill",
    params(BrandCodePath),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "Progress.", body = BackfillStatus, examples(
            ("progress" = (summary = "Half-way", value = json!({"running": true, "report": {"checked": 1000, "onayInIys": 412, "singleChecked": 0, "released": 0, "complete": false}, "positions": [{"channel": "MESAJ:BIREYSEL", "done": true, "updatedAt": "2026-11-29T02:30:00Z"}, {"channel": "EPOSTA:BIREYSEL", "done": false, "updatedAt": "2026-11-29T02:31:10Z"}]})))
        )),
        (status = 503, description = "No IYS engines on this instance (or the request took over 60 s).", body = ErrorResponse),
    )
)]
pub async fn get_backfill<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Json<BackfillStatus>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let runner = hub.backfill.as_ref().ok_or_else(no_backfill)?;
    let mut status = report(runner.as_ref(), brand.brand_code)?;
    let positions = hub
        .store
        .sync_figures(brand.brand_code, Timestamp::now())
        .await?
        .cursors
        .into_iter()
        .filter_map(|c| {
            let channel = hub_core::backfill::cursor_channel(&c.source)?;
            Some(BackfillPosition {
                channel: channel.to_owned(),
                done: c.cursor.as_deref() == Some(hub_core::backfill::CURSOR_DONE),
                updated_at: c.updated_at,
            })
        })
        .collect();
    status.positions = Some(positions);
    Ok(Json(status))
}
