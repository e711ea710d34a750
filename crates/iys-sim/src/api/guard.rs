//! Statistics, the per-second limit, hourly budgets and injected faults, in front of every
//! IYS endpoint.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use iys::{HCode, IysError};

use super::{SimState, endpoint_name, errors};
use crate::faults::Verdict;
use crate::limits::Hourly;

/// When a request arrived (the simulator's clock), for the handlers: a bulk request is submitted
/// when it arrives, however long its body then takes to read and check.
#[derive(Debug, Clone, Copy)]
pub(super) struct Arrival(pub(super) jiff::Timestamp);

/// Statistics, per-second limit, hourly budgets, faults — for every IYS endpoint.
pub(super) async fn guard(
    State(sim): SimState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let endpoint = endpoint_name(req.method(), matched.as_ref().map_or("", |m| m.as_str()));
    // The request's arrival, taken first: IYS's quota counts arrivals, and the work below
    // (due bulk items) must not move it.
    let arrived = Instant::now();
    let cfg = sim.config();
    let now = sim.now();
    req.extensions_mut().insert(Arrival(now));
    sim.stats.lock().expect("stats lock").arrival(arrived);
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
        arrived,
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
