//! Dealers (retailers) and consents' dealer access.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use iys::wire::{
    Code, CodeName, Pagination, Retailer, RetailerCreated, RetailerList, RetailerStatus,
    TransactionReceipt,
};
use iys::{ConsentDate, HCode, IysError, Location};

use super::{
    ApiResult, Brand, BrandJson, SimState, consent_key, ok, page_of, pagination, paging,
    recipients_list,
};
use crate::state::Key;

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

pub(super) async fn retailer_create(
    State(sim): SimState,
    BrandJson { brand, body }: BrandJson,
) -> ApiResult<Response> {
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

pub(super) async fn retailer_list(
    State(sim): SimState,
    Brand(brand): Brand,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
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
    let list: Vec<Retailer> = page_of(&all, limit, offset)
        .map(|d| dealer_view(&state, brand, d, short))
        .collect();
    ok(
        StatusCode::OK,
        RetailerList {
            pagination: Pagination {
                current_page: Some(offset / limit + 1),
                ..pagination(all.len(), list.len(), offset)
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
pub(super) async fn retailer_get(
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

pub(super) async fn retailer_delete(
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
    recipients_list(body, 100, HCode::H127)?
        .iter()
        .map(|r| {
            let mut one = body.clone();
            if let Some(o) = one.as_object_mut() {
                o.insert("recipient".into(), r.clone());
            }
            consent_key(brand, &one)
        })
        .collect()
}

pub(super) async fn access_grant(
    State(sim): SimState,
    BrandJson { brand, body }: BrandJson,
) -> ApiResult<Response> {
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

pub(super) async fn access_replace(
    State(sim): SimState,
    BrandJson { brand, body }: BrandJson,
) -> ApiResult<Response> {
    let keys = access_keys(brand, &body)?;
    let dealers = access_codes(&body)?;
    let mut state = sim.state.lock().expect("state lock");
    state.check_dealer_codes(brand, &dealers)?;
    for key in keys {
        state.replace_access(key, &dealers);
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

pub(super) async fn access_list(
    State(sim): SimState,
    Query(q): Query<HashMap<String, String>>,
    BrandJson { brand, body }: BrandJson,
) -> ApiResult<Response> {
    let (limit, offset) = paging(&q, 100, 100)?;
    let key = consent_key(brand, &body)?;
    let state = sim.state.lock().expect("state lock");
    let all = state.access_of(&key);
    let list: Vec<Retailer> = page_of(&all, limit, offset)
        .filter_map(|c| state.dealer(brand, *c))
        .map(|d| dealer_view(&state, brand, d, false))
        .collect();
    ok(
        StatusCode::OK,
        RetailerList {
            pagination: pagination(all.len(), list.len(), offset),
            list,
        },
    )
}

/// Removes dealers' access: those in `retailerAccess`, or with `ALL` (`…/remove/all`) every
/// dealer's, whose body has no `retailerAccess`.
pub(super) async fn access_remove<const ALL: bool>(
    State(sim): SimState,
    BrandJson { brand, body }: BrandJson,
) -> ApiResult<Response> {
    let keys = access_keys(brand, &body)?;
    let dealers = if ALL {
        None
    } else {
        Some(access_codes(&body)?)
    };
    let mut state = sim.state.lock().expect("state lock");
    for key in &keys {
        state.remove_access(key, dealers.as_deref());
    }
    Ok(StatusCode::ACCEPTED.into_response())
}
