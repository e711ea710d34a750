//! Cities and towns (`/info/…`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use iys::wire::{City, Code, Town};

use super::{ApiResult, SimState, ok};
use crate::info_data::{CITIES, TOWNS};

pub(super) async fn cities(State(sim): SimState, headers: HeaderMap) -> ApiResult<Response> {
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

pub(super) async fn city(
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

pub(super) async fn towns(State(sim): SimState, headers: HeaderMap) -> ApiResult<Response> {
    sim.authenticate(&headers)?;
    ok(
        StatusCode::OK,
        TOWNS.iter().map(town_of).collect::<Vec<_>>(),
    )
}

pub(super) async fn town(
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
