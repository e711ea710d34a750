//! Daily reconciliation: the day's summary and movement file, the agreement (hash and
//! confirmation) and the file's `.tsr` time stamp.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::Digest;

use iys::wire::{AgreementCaptured, AgreementHash, ProcessStatus};
use iys::{ConsentDate, HCode, IysError, RecipientType};

use super::{ApiResult, SimState, ok, parse_json};
use crate::Sim;

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

pub(super) async fn day_summary(
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

pub(super) async fn day_file(
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
pub(super) async fn agreement(
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

pub(super) async fn agreement_confirm(
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

/// The `.tsr` time stamp of a finished day's movement file; 204 like the file itself when
/// there is none (today, or a day without movements).
pub(super) async fn agreement_timestamp(
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
