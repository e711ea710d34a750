//! The control API under `/_sim/` (not part of IYS): citizen actions, clock, faults, token
//! expiry, seeding, limits, reset and statistics. Documented in docs/simulator.md.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jiff::SignedDuration;
use serde::Deserialize;
use serde_json::{Value, json};

use iys::{ConsentDate, ConsentType, IysError, IysErrors};

use crate::config::{Limits, SubscriptionConfig, Timing};
use crate::faults::Fault;
use crate::state::CitizenAction;
use crate::{Sim, SimConfig};

type SimState = State<Arc<Sim>>;

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/_sim", get(index))
        .route("/_sim/citizen", post(citizen))
        .route("/_sim/clock", get(clock).delete(clock_reset))
        .route("/_sim/clock/advance", post(clock_advance))
        .route("/_sim/clock/set", post(clock_set))
        .route("/_sim/clock/freeze", post(clock_freeze))
        .route("/_sim/clock/unfreeze", post(clock_unfreeze))
        .route(
            "/_sim/faults",
            get(faults).put(faults_put).delete(faults_clear),
        )
        .route("/_sim/tokens/expire", post(tokens_expire))
        .route("/_sim/seed", post(seed))
        .route("/_sim/reset", post(reset))
        .route("/_sim/stats", get(stats).delete(stats_reset))
        .route("/_sim/consents/{brandCode}", get(consents))
        .route("/_sim/limits", get(limits).put(limits_put))
        .route("/_sim/timing", get(timing).put(timing_put))
        .route(
            "/_sim/subscription",
            get(subscription).put(subscription_put),
        )
        .with_state(sim)
}

/// `current` with the fields of `patch` laid over it; unknown fields are refused.
fn merged<T: serde::Serialize + serde::de::DeserializeOwned>(
    current: &T,
    patch: Value,
) -> Result<T, String> {
    let mut base = serde_json::to_value(current).map_err(|e| e.to_string())?;
    let (Some(obj), Value::Object(patch)) = (base.as_object_mut(), patch) else {
        return Err("expected a JSON object".into());
    };
    for (k, v) in patch {
        if !obj.contains_key(&k) {
            return Err(format!(
                "unknown field {k:?}; known: {}",
                obj.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        obj.insert(k, v);
    }
    serde_json::from_value(base).map_err(|e| e.to_string())
}

/// Merges `patch` into one section of the configuration and answers with the new section.
fn patch_section<T>(sim: &Sim, patch: Value, section: fn(&mut SimConfig) -> &mut T) -> Response
where
    T: Clone + serde::Serialize + serde::de::DeserializeOwned,
{
    let mut cfg = sim.config.write().expect("config lock");
    let current = section(&mut cfg);
    match merged(current, patch) {
        Ok(v) => {
            *current = v;
            Json(current.clone()).into_response()
        }
        Err(e) => bad_request(e),
    }
}

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

async fn index(State(sim): SimState) -> Json<Value> {
    let cfg = sim.config();
    Json(json!({
        "simulator": "iyshub IYS simulator",
        "profile": cfg.profile,
        "iysCode": cfg.iys_code,
        "brands": cfg.brands,
        "users": cfg.users.iter().map(|u| &u.username).collect::<Vec<_>>(),
        "docs": "docs/simulator.md",
    }))
}

/// One action or a list; every valid action is applied, invalid ones are reported by index.
async fn citizen(State(sim): SimState, Json(body): Json<Value>) -> Response {
    let (items, single) = match body {
        Value::Array(items) => (items, false),
        other => (vec![other], true),
    };
    let now = sim.now();
    let mut movements = Vec::new();
    let mut errors: Vec<IysError> = Vec::new();
    let mut to_push = Vec::new();
    {
        let mut state = sim.state.lock().expect("state lock");
        for (index, item) in items.into_iter().enumerate() {
            let action: CitizenAction = match serde_json::from_value(item) {
                Ok(a) => a,
                Err(e) => {
                    errors.push(
                        IysError::new(iys::HCode::H085)
                            .with_message(e.to_string())
                            .with_index(index),
                    );
                    continue;
                }
            };
            if !sim
                .config()
                .brands
                .iter()
                .any(|b| b.brand_code == action.brand_code)
            {
                errors.push(
                    IysError::new(iys::HCode::H018)
                        .with_value(action.brand_code)
                        .with_index(index),
                );
                continue;
            }
            match state.citizen(&action, now) {
                Ok(id) => {
                    movements.push(state.movement(id).to_json(true));
                    to_push.push(id);
                }
                Err(e) => errors.push(e.with_index(index)),
            }
        }
    }
    for id in to_push {
        sim.push_movement(id);
    }
    if single && !errors.is_empty() {
        let status =
            StatusCode::from_u16(errors[0].http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        return (status, Json(IysErrors { errors })).into_response();
    }
    Json(json!({"movements": movements, "errors": errors})).into_response()
}

async fn clock(State(sim): SimState) -> Json<Value> {
    let v = sim.clock.view();
    Json(json!({
        "now": v.now,
        "istanbul": ConsentDate::from_timestamp(v.now),
        "offsetSeconds": v.offset_seconds,
        "frozen": v.frozen,
    }))
}

#[derive(Debug, Deserialize)]
struct Advance {
    seconds: i64,
}

async fn clock_advance(State(sim): SimState, Json(a): Json<Advance>) -> Json<Value> {
    sim.clock.advance(SignedDuration::from_secs(a.seconds));
    clock(State(sim)).await
}

#[derive(Debug, Deserialize)]
struct SetClock {
    /// Istanbul wall clock, `YYYY-MM-DD HH:MM:SS`.
    now: ConsentDate,
}

async fn clock_set(State(sim): SimState, Json(s): Json<SetClock>) -> Json<Value> {
    sim.clock.set(s.now.to_timestamp());
    clock(State(sim)).await
}

async fn clock_freeze(State(sim): SimState) -> Json<Value> {
    sim.clock.freeze();
    clock(State(sim)).await
}

async fn clock_unfreeze(State(sim): SimState) -> Json<Value> {
    sim.clock.unfreeze();
    clock(State(sim)).await
}

async fn clock_reset(State(sim): SimState) -> Json<Value> {
    sim.clock.reset();
    clock(State(sim)).await
}

async fn faults(State(sim): SimState) -> Json<BTreeMap<String, Fault>> {
    Json(sim.faults.lock().expect("faults lock").by_endpoint.clone())
}

/// Sets faults per endpoint name (`add`, `token`, `bulk_v2`, … or `*`), keeping others.
async fn faults_put(
    State(sim): SimState,
    Json(body): Json<BTreeMap<String, Fault>>,
) -> Json<BTreeMap<String, Fault>> {
    let mut f = sim.faults.lock().expect("faults lock");
    f.by_endpoint.extend(body);
    Json(f.by_endpoint.clone())
}

async fn faults_clear(State(sim): SimState) -> StatusCode {
    sim.faults.lock().expect("faults lock").by_endpoint.clear();
    StatusCode::NO_CONTENT
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Expire {
    #[serde(default)]
    refresh_too: bool,
}

async fn tokens_expire(State(sim): SimState, body: Option<Json<Expire>>) -> StatusCode {
    let e = body.map(|b| b.0).unwrap_or_default();
    sim.auth.lock().expect("auth lock").expire(e.refresh_too);
    StatusCode::NO_CONTENT
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Seed {
    brand_code: u64,
    #[serde(rename = "type", default = "default_type")]
    consent_type: ConsentType,
    count: u64,
    /// First sequence number (recipients are +90532NNNNNNN or seedN@example.com).
    #[serde(default)]
    start: u64,
}

fn default_type() -> ConsentType {
    ConsentType::Mesaj
}

async fn seed(State(sim): SimState, Json(s): Json<Seed>) -> Response {
    if !sim
        .config()
        .brands
        .iter()
        .any(|b| b.brand_code == s.brand_code)
    {
        return bad_request(format!("unknown brandCode {}", s.brand_code));
    }
    if s.consent_type.needs_phone() && s.start + s.count > 10_000_000 {
        return bad_request("phone seeding covers at most 10,000,000 numbers (+90532NNNNNNN)");
    }
    let now = sim.now();
    let started = std::time::Instant::now();
    let added = sim.state.lock().expect("state lock").seed(
        s.brand_code,
        s.consent_type,
        s.count,
        s.start,
        now,
    );
    Json(json!({"added": added, "millis": started.elapsed().as_millis() as u64})).into_response()
}

async fn reset(State(sim): SimState) -> StatusCode {
    sim.reset();
    StatusCode::NO_CONTENT
}

async fn stats(State(sim): SimState) -> Json<Value> {
    let mut v = serde_json::to_value(&*sim.stats.lock().expect("stats lock")).unwrap_or_default();
    let now = sim.now();
    let cfg = sim.config();
    let state = sim.state.lock().expect("state lock");
    let brands: BTreeMap<String, Value> = cfg
        .brands
        .iter()
        .map(|b| {
            (
                b.brand_code.to_string(),
                serde_json::to_value(state.counts(b.brand_code)).unwrap_or_default(),
            )
        })
        .collect();
    if let Some(o) = v.as_object_mut() {
        o.insert("movements".into(), json!(state.movement_count()));
        o.insert("consents".into(), json!(state.consent_count()));
        o.insert(
            "duplicateMovements".into(),
            json!(state.duplicate_movements),
        );
        o.insert("brands".into(), json!(brands));
        o.insert(
            "activeAccessTokens".into(),
            json!(
                sim.auth
                    .lock()
                    .expect("auth lock")
                    .active_access_tokens(now)
            ),
        );
    }
    Json(v)
}

async fn stats_reset(State(sim): SimState) -> StatusCode {
    *sim.stats.lock().expect("stats lock") = Default::default();
    StatusCode::NO_CONTENT
}

/// Current state of a brand's consents (paged), for tests comparing IYS with the hub.
async fn consents(
    State(sim): SimState,
    Path(brand): Path<u64>,
    Query(q): Query<HashMap<String, usize>>,
) -> Json<Value> {
    let offset = q.get("offset").copied().unwrap_or(0);
    let limit = q.get("limit").copied().unwrap_or(10_000);
    let state = sim.state.lock().expect("state lock");
    let mut all: Vec<_> = state.consents_of(brand).collect();
    all.sort_by(|a, b| a.key.cmp(&b.key));
    let list: Vec<_> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|m| m.to_json(true))
        .collect();
    Json(json!({"total": all.len(), "offset": offset, "list": list}))
}

async fn limits(State(sim): SimState) -> Json<Limits> {
    Json(sim.config().limits)
}

async fn limits_put(State(sim): SimState, Json(patch): Json<Value>) -> Response {
    patch_section(&sim, patch, |cfg| &mut cfg.limits)
}

async fn timing(State(sim): SimState) -> Json<Timing> {
    Json(sim.config().timing)
}

async fn timing_put(State(sim): SimState, Json(patch): Json<Value>) -> Response {
    patch_section(&sim, patch, |cfg| &mut cfg.timing)
}

async fn subscription(State(sim): SimState) -> Json<SubscriptionConfig> {
    Json(sim.config().subscription)
}

async fn subscription_put(State(sim): SimState, Json(patch): Json<Value>) -> Response {
    patch_section(&sim, patch, |cfg| &mut cfg.subscription)
}
