//! The changes feed (`source=IYS|HS`, `after` cursor).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use iys::wire::ChangeSource;
use iys::{HCode, IysError};

use super::{ApiResult, Brand, SimState, ok};
use crate::state::TxId;

pub(super) async fn changes(
    State(sim): SimState,
    Brand(brand): Brand,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
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
