//! The IYS side of a brand: sync status, the push receiver, and mode switches.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use hub_core::{Change, Origin};
use hub_store::{EngineStore, Scope, Store};
use jiff::Timestamp;
use serde_json::{Value, json};
use sha2::Digest;

use crate::HubState;
use crate::api::{Path, brand_code, brand_for, json_body};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

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
    let token = match (&brand.iys.base_url, &brand.iys.username) {
        (Some(base), Some(user)) => hub
            .store
            .load_token(&format!("{base}|{user}"))
            .await?
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .map(|t| json!({"accessExpires": t["access_expires"], "refreshExpires": t["refresh_expires"], "haltUntil": t["halt_until"]})),
        _ => None,
    };
    Ok(Json(json!({
        "brandCode": brand.brand_code,
        "mode": brand.mode,
        "pulls": cursors,
        "outbox": f.outbox.iter().map(|(s, n)| (s.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "oldestPendingDeadline": f.oldest_pending_deadline,
        "atRisk": f.at_risk,
        "errorsLast24h": f.errors_last_24h.iter().map(|(c, n)| (c.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "token": token,
    })))
}

/// `POST /api/v1/iys/push/{brandCode}`: IYS's push delivery, with the brand's Basic credentials.
/// Movements are applied like pulled ones (deduplicated by transactionId, never sent back).
pub async fn post_push(
    State(hub): State<HubState>,
    Path(code): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let code = brand_code(&code)?;
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "IYS push needs the brand's Basic credentials",
        )
    };
    let brand = hub.store.brand(code).await?.ok_or_else(unauthorized)?;
    let (Some(user), Some(hash)) = (&brand.iys.push_username, &brand.iys.push_password_sha256)
    else {
        return Err(unauthorized());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(unauthorized)?;
    let (u, p) = given.split_once(':').ok_or_else(unauthorized)?;
    if u != user || hex::encode(sha2::Sha256::digest(p.as_bytes())) != *hash {
        return Err(unauthorized());
    }
    let payload: iys::wire::PushPayload =
        serde_json::from_value(json_body(body)?).map_err(|e| {
            ApiError::unprocessable("invalid_body", format!("not an IYS push payload: {e}"))
        })?;
    let now = Timestamp::now();
    let changes: Vec<Change> = payload
        .list
        .iter()
        .filter(|i| i.brand_code == code.0)
        .map(|i| Change::from_iys(code, &i.movement, Origin::IysPush, now))
        .collect();
    let applied = if changes.is_empty() {
        Vec::new()
    } else {
        hub.store.apply(&brand, changes, None).await?
    };
    let new = applied.iter().filter(|a| a.event_id.is_some()).count();
    Ok(Json(
        json!({"received": payload.list.len(), "applied": new}),
    ))
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
    if !runner.start(brand) {
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
        .filter(|c| c.source.starts_with("backfill:"))
        .map(|c| json!({"channel": c.source.trim_start_matches("backfill:"), "done": c.cursor.as_deref() == Some("\u{10ffff}"), "updatedAt": c.updated_at}))
        .collect();
    v["positions"] = json!(positions);
    Ok(Json(v))
}
