//! Bulk requests (v1 and v2) and their results.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use jiff::SignedDuration;

use iys::rules::validate_bulk;
use iys::{HCode, IysError};

use super::guard::Arrival;
use super::{ApiError, ApiResult, SimState, errors, ok};

/// Accepts a bulk request; `V2` is IYS's v2 endpoint, whose replays IYS deduplicates.
pub(super) async fn bulk<const V2: bool>(
    State(sim): SimState,
    arrival: Option<Extension<Arrival>>,
    headers: HeaderMap,
    Path(codes): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    // A request is submitted when it arrives: reading its body and validating a thousand items
    // take milliseconds, which must not move its time (IYS's quota and the bulk's age count
    // from it).
    let now = arrival.map_or_else(|| sim.now(), |Extension(Arrival(at))| at);
    // Reading and validating a thousand items is CPU work of milliseconds: on the blocking pool,
    // one body at a time, so the runtime's workers stay free to take (and stamp) the requests
    // arriving meanwhile, as IYS's gateway counts a burst's requests when they arrive, not when
    // each is validated.
    let _checking = sim
        .checking
        .acquire()
        .await
        .map_err(|e| ApiError::internal(&e.to_string()))?;
    let checker = sim.clone();
    let (brand, items) = tokio::task::spawn_blocking(move || {
        checker.open_checked(&headers, &codes, &body, |body| {
            validate_bulk(&body, &checker.rules()).map_err(errors)
        })
    })
    .await
    .map_err(|e| ApiError::internal(&e.to_string()))??;
    let cfg = sim.config();
    let accepted = sim
        .state
        .lock()
        .expect("state lock")
        .submit_bulk(
            brand,
            items,
            V2,
            sim.quota(),
            now,
            SignedDuration::from_millis(cfg.timing.bulk_delay_ms as i64),
            cfg.timing.bulk_item_ms,
        )
        .map_err(errors)?;
    ok(StatusCode::ACCEPTED, accepted)
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

/// The result array of a bulk request; `V2` answers in IYS's v2 shape.
pub(super) async fn bulk_result<const V2: bool>(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String, String)>,
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
    let mut items = state.bulk_results(brand, &codes.2, V2, now);
    timing.bulk_result_order.arrange(&mut items);
    ok(StatusCode::OK, items)
}
