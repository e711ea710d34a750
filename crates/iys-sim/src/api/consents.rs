//! Single consents: add (v1 and v2), single status, multi-status and history.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use iys::rules::{MAX_BULK, validate_consent};
use iys::wire::MultiStatusResponse;
use iys::{ConsentType, HCode, IysError, IysErrors, Location, Recipient, RecipientType};

use super::{
    ApiError, ApiResult, BrandJson, SimState, consent_key, errors, ok, page_of, pagination, paging,
    parse_json, recipients_list,
};
use crate::state::Key;

/// Adds one consent; `V2` is IYS's v2 endpoint, whose replays IYS deduplicates.
pub(super) async fn add<const V2: bool>(
    State(sim): SimState,
    headers: HeaderMap,
    Path(codes): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let (brand, consent) = sim.open_checked(&headers, &codes, &body, |body| {
        validate_consent(&body, &sim.rules()).map_err(errors)
    })?;
    let now = sim.now();
    let mut state = sim.state.lock().expect("state lock");
    let id = state.add_consent(brand, &consent, V2, sim.quota(), now)?;
    let m = state.movement(id);
    ok(
        StatusCode::OK,
        iys::wire::AddConsentResponse {
            transaction_id: m.tx.to_hex(),
            creation_date: m.creation_date(),
        },
    )
}

/// Single status. IYS does not document the answer for a consent it never had; we answer
/// 404 with H401's "consent does not exist" message (see docs/simulator.md).
pub(super) async fn status(
    State(sim): SimState,
    BrandJson { brand, body }: BrandJson,
) -> ApiResult<Response> {
    let key = consent_key(brand, &body)?;
    let state = sim.state.lock().expect("state lock");
    match state.status(&key) {
        Some(s) => ok(StatusCode::OK, s),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            serde_json::to_value(IysErrors::one(
                IysError::new(HCode::H401).with_message("İzin bulunamadı."),
            ))
            .unwrap_or_default(),
        )),
    }
}

pub(super) async fn multi_status(
    State(sim): SimState,
    headers: HeaderMap,
    Path((iys_code, brand_code, recipient_type, consent_type)): Path<(
        String,
        String,
        String,
        String,
    )>,
    body: Bytes,
) -> ApiResult<Response> {
    let user = sim.authenticate(&headers)?;
    let body = parse_json(&body)?;
    let brand = sim.authorize(&user, &iys_code, Some(&brand_code))?;
    let rt: RecipientType = recipient_type.parse().map_err(|_| {
        IysError::new(HCode::H116)
            .at("recipientType")
            .with_value(recipient_type.as_str())
    })?;
    let ct: ConsentType = consent_type.parse().map_err(|_| {
        IysError::new(HCode::H117)
            .at("type")
            .with_value(consent_type.as_str())
    })?;
    let list = recipients_list(&body, MAX_BULK, HCode::H125)?;
    let mut errs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut recipients = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        match v.as_str().map(|s| Recipient::parse_iys_for(s, ct)) {
            Some(Ok(r)) => {
                if !seen.insert(r.clone()) {
                    errs.push(
                        IysError::new(HCode::H193)
                            .at_location(Location::indexed("recipients", i))
                            .with_value(v.clone()),
                    );
                }
                recipients.push(r);
            }
            _ => {
                let message = if ct.needs_phone() {
                    HCode::H464.message_tr().replacen("MESAJ", ct.as_str(), 1)
                } else {
                    format!(
                        "İzin tipi (type) {ct} için, alıcı (recipient) eposta formatında olmalıdır."
                    )
                };
                errs.push(
                    IysError::new(HCode::H464)
                        .with_message(message)
                        .at_location(Location::indexed("recipients", i))
                        .with_value(v.clone()),
                );
            }
        }
    }
    if !errs.is_empty() {
        return Err(errors(errs));
    }
    let state = sim.state.lock().expect("state lock");
    let onay: Vec<String> = recipients
        .iter()
        .filter(|r| {
            let key = Key {
                brand,
                recipient: Arc::from(r.as_str()),
                recipient_type: rt,
                consent_type: ct,
            };
            state
                .current(&key)
                .is_some_and(|m| m.status == iys::ConsentStatus::Onay)
        })
        .map(|r| r.as_str().to_owned())
        .collect();
    ok(
        StatusCode::OK,
        MultiStatusResponse {
            request_id: uuid::Uuid::new_v4().to_string(),
            list: onay,
        },
    )
}

pub(super) async fn history(
    State(sim): SimState,
    Query(q): Query<HashMap<String, String>>,
    BrandJson { brand, body }: BrandJson,
) -> ApiResult<Response> {
    let (limit, offset) = paging(&q, 100, 100)?;
    let key = consent_key(brand, &body)?;
    let state = sim.state.lock().expect("state lock");
    let all = state.history(&key);
    let list: Vec<Value> = page_of(&all, limit, offset)
        // citizenName belongs to the changes feed only.
        .map(|m| m.to_json(false))
        .collect();
    let pagination = pagination(all.len(), list.len(), offset);
    // HistoryResponse's shape, with movements that may lack a source (see Movement::to_json).
    ok(
        StatusCode::OK,
        serde_json::json!({"list": list, "pagination": pagination}),
    )
}
