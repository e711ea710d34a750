//! The IYS side of a brand: sync status, the push receiver, and mode switches.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hub_core::Origin;
use hub_store::{EngineStore, OutboxState, Scope, Store};
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::HubState;
use crate::api::{brand_code, brand_for};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, json_body};
use crate::input::lookup_form;

/// A cursor not advanced for this long risks missing movements: IYS keeps 7 days.
const STALE_CURSOR_SECS: i64 = 6 * 86_400;

/// `GET /api/v1/brands/{brandCode}/sync`: how the brand and IYS stand.
pub async fn get_sync(
    State(hub): State<HubState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Json<Value>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let now = Timestamp::now();
    let f = hub.store.sync_figures(brand.brand_code, now).await?;
    let cursors: Vec<Value> = f
        .cursors
        .iter()
        .map(|c| {
            let age = c.last_success.map(|t| now.duration_since(t).as_secs());
            json!({
                "source": c.source,
                "cursor": c.cursor,
                "lastSuccess": c.last_success,
                "ageSeconds": age,
                "stale": age.is_none_or(|a| a > STALE_CURSOR_SECS),
            })
        })
        .collect();
    let (connection, token) = match hub.iys.resolve(&brand.iys) {
        Ok(c) => {
            let token = hub
                .store
                .load_token(&c.token_key())
                .await?
                .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                .map(|t| json!({"accessExpires": t["access_expires"], "refreshExpires": t["refresh_expires"], "haltUntil": t["halt_until"]}));
            let source = if c.instance_default {
                "instance"
            } else {
                "brand"
            };
            (
                json!({"state": "connected", "baseUrl": c.base_url, "username": c.username, "from": source}),
                token,
            )
        }
        Err(why) => (
            json!({"state": "not_connected", "reason": why.to_string()}),
            None,
        ),
    };
    Ok(Json(json!({
        "brandCode": brand.brand_code,
        "mode": brand.mode,
        "pulls": cursors,
        "outbox": f.outbox.iter().map(|(s, n)| (s.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "oldestPendingDeadline": f.oldest_pending_deadline,
        "atRisk": f.at_risk,
        "errorsLast24h": f.errors_last_24h.iter().map(|(c, n)| (c.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "connection": connection,
        "token": token,
        "dispatchPaused": f.paused,
        "reconciliation": crate::reconcile::sync_summary(&hub, brand.brand_code).await?,
        "quarantined": f.quarantined,
    })))
}

/// Largest push delivery read (IYS sends lists of movements; ~250 bytes each).
const PUSH_MAX_BODY: usize = 1024 * 1024;

/// `POST /api/v1/iys/push/{brandCode}`: IYS's push delivery, with the brand's Basic credentials.
/// The credentials are checked before the body is read; failed logins are throttled per brand
/// and address. Movements are applied like pulled ones (de-duplicated on their content, never
/// sent back).
pub async fn post_push(
    State(hub): State<HubState>,
    Path(code): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
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
    let body: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })?;
    let Some(list) = body.get("list").and_then(Value::as_array) else {
        return Err(ApiError::unprocessable(
            "invalid_body",
            "not an IYS push payload: expected {\"list\": [...]}",
        )
        .field("list"));
    };
    let received = list.len();
    // IYS's test payload (and anything for another brand) is not this brand's to apply.
    let mine: Vec<Value> = list
        .iter()
        .filter(|i| i.get("brandCode").and_then(Value::as_u64) == Some(code.0))
        .cloned()
        .collect();
    let now = Timestamp::now();
    let (changes, set_aside) = hub_core::screen_movements(code, mine, Origin::IysPush, now);
    if !set_aside.is_empty() {
        tracing::warn!(brand = %code, count = set_aside.len(), "pushed movements set aside for a person (quarantine)");
        hub.store.quarantine(code, "PUSH", &set_aside, now).await?;
    }
    let applied = if changes.is_empty() {
        Vec::new()
    } else {
        hub.store.apply(&brand, changes, None).await?
    };
    let new = applied.iter().filter(|a| a.event_id.is_some()).count();
    Ok(
        Json(json!({"received": received, "applied": new, "quarantined": set_aside.len()}))
            .into_response(),
    )
}

fn no_backfill() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "engines_not_running",
        "this instance runs no IYS engines (--role api); ask a worker instance or run `iyshub backfill`",
    )
}

/// `POST …/backfill`: starts sync mode's initial load in the background (admin).
pub async fn post_backfill(
    State(hub): State<HubState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
    Ok((StatusCode::ACCEPTED, Json(runner.report(code))))
}

/// `GET …/backfill`: whether a backfill runs, its progress, and the stored position per channel.
pub async fn get_backfill(
    State(hub): State<HubState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Json<Value>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let runner = hub.backfill.as_ref().ok_or_else(no_backfill)?;
    let mut v = runner.report(brand.brand_code);
    let positions: Vec<Value> = hub
        .store
        .sync_figures(brand.brand_code, Timestamp::now())
        .await?
        .cursors
        .into_iter()
        .filter_map(|c| {
            let channel = hub_core::backfill::cursor_channel(&c.source)?;
            let done = c.cursor.as_deref() == Some(hub_core::backfill::CURSOR_DONE);
            Some(json!({"channel": channel, "done": done, "updatedAt": c.updated_at}))
        })
        .collect();
    v["positions"] = json!(positions);
    Ok(Json(v))
}

/// The outbox filter of a listing's query or a requeue's body; every field narrows.
fn outbox_filter(get: impl Fn(&str) -> Option<String>) -> ApiResult<hub_store::OutboxFilter> {
    let instant = |field: &'static str| -> ApiResult<Option<Timestamp>> {
        get(field)
            .map(|s| {
                s.parse::<Timestamp>().map_err(|_| {
                    ApiError::unprocessable(
                        "invalid_value",
                        format!("{field} must be an RFC 3339 instant, e.g. 2026-11-29T10:00:00Z"),
                    )
                    .field(field)
                    .value(s)
                })
            })
            .transpose()
    };
    let state = get("state")
        .map(|s| {
            s.parse::<OutboxState>().map_err(|e| {
                ApiError::unprocessable("invalid_value", e.to_string())
                    .field("state")
                    .value(s)
            })
        })
        .transpose()?;
    let at_risk = match get("atRisk").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(
                ApiError::unprocessable("invalid_value", "atRisk must be true or false")
                    .field("atRisk")
                    .value(other),
            );
        }
    };
    Ok(hub_store::OutboxFilter {
        state,
        hcode: get("hcode").filter(|s| !s.is_empty()),
        recipient: get("recipient").map(|r| lookup_form(&r)),
        from: instant("from")?,
        to: instant("to")?,
        at_risk,
    })
}

/// `GET …/outbox?state=&hcode=&recipient=&from=&to=&atRisk=&cursor=&limit=`: the changes on
/// their way to IYS, failed, held or at risk, oldest first, with a cursor to the next page.
pub async fn get_outbox(
    State(hub): State<HubState>,
    caller: Caller,
    Path(code): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    for k in q.keys() {
        if ![
            "state",
            "hcode",
            "recipient",
            "from",
            "to",
            "atRisk",
            "cursor",
            "limit",
        ]
        .contains(&k.as_str())
        {
            return Err(ApiError::unprocessable(
                "invalid_value",
                "unknown query parameter; allowed: state, hcode, recipient, from, to, atRisk, cursor, limit",
            )
            .field(k.as_str()));
        }
    }
    let filter = outbox_filter(|k| q.get(k).cloned())?;
    let number = |field: &'static str, default: i64, range: std::ops::RangeInclusive<i64>| {
        q.get(field).map_or(Ok(default), |s| {
            s.parse::<i64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    ApiError::unprocessable(
                        "invalid_value",
                        format!(
                            "{field} must be a number in {}–{}",
                            range.start(),
                            range.end()
                        ),
                    )
                    .field(field)
                    .value(s.as_str())
                })
        })
    };
    let after = number("cursor", 0, 0..=i64::MAX)?;
    let limit = number("limit", 100, 1..=1000)?;
    let rows = hub
        .store
        .outbox_rows(brand.brand_code, &filter, Timestamp::now(), after, limit)
        .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(json!({"items": rows, "nextCursor": next})))
}

/// `POST …/outbox/requeue` (admin): queues failed rows (and, in integrator mode, held ones)
/// again, unless a later change of the same consent overtook them. `dryRun` only counts.
pub async fn post_requeue(
    State(hub): State<HubState>,
    caller: Caller,
    Path(code): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Admin).await?;
    let v = json_body(body)?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::unprocessable("invalid_body", "the body must be a JSON object"))?;
    const FIELDS: [&str; 7] = [
        "state",
        "hcode",
        "recipient",
        "from",
        "to",
        "atRisk",
        "dryRun",
    ];
    for (k, x) in obj {
        if !FIELDS.contains(&k.as_str()) {
            return Err(ApiError::unprocessable(
                "invalid_body",
                "unknown field; allowed: state, hcode, recipient, from, to, atRisk, dryRun",
            )
            .field(k.as_str()));
        }
        let typed_ok = match k.as_str() {
            "atRisk" | "dryRun" => x.is_boolean(),
            _ => x.is_string(),
        };
        if !typed_ok {
            return Err(ApiError::unprocessable(
                "invalid_value",
                format!("{k} has the wrong type"),
            )
            .field(k.as_str())
            .value(x.clone()));
        }
    }
    let filter = outbox_filter(|k| match obj.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    })?;
    if let Some(state) = filter.state
        && !matches!(state, OutboxState::Failed | OutboxState::Held)
    {
        return Err(ApiError::unprocessable(
            "invalid_value",
            "only failed or held rows can be requeued",
        )
        .field("state")
        .value(state.as_str()));
    }
    if filter.state == Some(OutboxState::Held) && brand.mode == hub_core::Mode::Sync {
        return Err(ApiError::unprocessable(
            "invalid_value",
            "sync mode never creates IYS records: held ONAYs go when IYS is known to have the recipient (run a backfill) or after a switch to integrator mode",
        )
        .field("state")
        .value("held"));
    }
    let dry_run = obj.get("dryRun").and_then(Value::as_bool).unwrap_or(false);
    let report = hub
        .store
        .requeue(
            brand.brand_code,
            &filter,
            dry_run,
            caller.name(),
            Timestamp::now(),
        )
        .await?;
    Ok(Json(json!(report)))
}
