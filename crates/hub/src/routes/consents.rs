//! Consent writes, recipient lookups, history and send-time checks.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hub_core::{CategoryKind, Channel, ConsentState, Origin, Policy, check};
use hub_store::{Applied, Event, Idempotency, Scope, Store, StoredAnswer};
use iys::RecipientType;
use jiff::Timestamp;
use serde_json::{Value, json};
use sha2::Digest;

use crate::api::{brand_for, cached_brand_for, cached_categories};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, body_bytes, json_body, parse_json};
use crate::input::{lookup_form, normalise_recipient, parse_change};
use crate::{HubState, MAX_CHANGES, MAX_CHECKS};

fn state_json(channel: Channel, recipient_type: RecipientType, s: &ConsentState) -> Value {
    json!({
        "channel": channel,
        "recipientType": recipient_type,
        "status": s.status,
        "consentDate": s.consent_date,
        "source": s.source,
        "iysState": s.iys_state,
        "iysError": s.iys_error,
        "conflict": s.conflict,
        "hold": s.hold,
        "deadline": s.deadline,
        "lastEventId": s.last_event_id,
        "updatedAt": s.updated_at,
    })
}

fn applied_json(index: usize, a: &Applied) -> Value {
    json!({
        "index": index,
        "status": "accepted",
        "eventId": a.event_id,
        "outcome": a.outcome,
        "iysState": a.state.as_ref().map(|s| s.iys_state),
        "deadline": a.state.as_ref().and_then(|s| s.deadline),
        "outbox": a.outbox,
    })
}

fn error_json(index: usize, e: &ApiError) -> Value {
    json!({"index": index, "status": "rejected", "error": e.body})
}

/// `POST /api/v1/brands/{brandCode}/consents`: one change, or `{"changes": [...]}` (≤ 10,000).
/// Good changes are stored even when others in the batch are refused; each answer item says which.
pub async fn post_consents(
    State(hub): State<HubState>,
    caller: Caller,
    Path(code): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let brand = cached_brand_for(&hub, &caller, &code, Scope::Write).await?;
    let idem_key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k) if !k.is_empty() && k.len() <= 255 => Some(k.to_owned()),
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_value",
                    "Idempotency-Key must be 1–255 visible ASCII characters",
                )
                .field("Idempotency-Key"));
            }
        },
    };
    let bytes = body_bytes(body)?;
    let request_hash = hex::encode(sha2::Sha256::digest(&bytes));
    if let Some(key) = &idem_key
        && let Some(answer) = hub.store.idempotent_answer(brand.brand_code, key).await?
    {
        return replay(answer, key, &request_hash);
    }
    let value = parse_json(&bytes)?;
    let (items, batch) = match value {
        Value::Object(mut o) if o.contains_key("changes") => {
            if let Some(extra) = o.keys().find(|k| *k != "changes") {
                return Err(ApiError::bad_request(
                    "unknown_field",
                    format!("a batch body has only \"changes\"; found {extra:?}"),
                )
                .field(extra.as_str()));
            }
            match o.remove("changes") {
                Some(Value::Array(a)) => (a, true),
                Some(other) => {
                    return Err(ApiError::unprocessable(
                        "invalid_type",
                        "changes must be an array",
                    )
                    .field("changes")
                    .value(other));
                }
                None => unreachable!("checked above"),
            }
        }
        other => (vec![other], false),
    };
    if items.is_empty() {
        return Err(
            ApiError::unprocessable("invalid_value", "changes must not be empty").field("changes"),
        );
    }
    if items.len() > MAX_CHANGES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_changes",
            format!("at most {MAX_CHANGES} changes per request; split the batch"),
        )
        .field("changes")
        .value(items.len()));
    }
    let now = Timestamp::now();
    let categories: HashMap<String, CategoryKind> = cached_categories(&hub, brand.brand_code)
        .await?
        .iter()
        .map(|c| (c.code.clone(), c.kind))
        .collect();
    let mut parsed: Vec<Result<hub_core::Change, ApiError>> = items
        .iter()
        .map(|v| parse_change(v, brand.brand_code, now, Origin::Api, caller.name()))
        .collect();
    for p in parsed.iter_mut() {
        if let Ok(c) = p
            && let Some(cat) = &c.category
            && !categories.contains_key(cat)
        {
            *p = Err(ApiError::unprocessable(
                "unknown_category",
                format!("category {cat:?} is not defined for this brand"),
            )
            .field("category")
            .value(cat.as_str()));
        }
    }
    if !batch {
        // A single change answers with its error directly.
        if let Some(Err(e)) = parsed.first() {
            return Err(e.clone());
        }
    }
    let errors: Vec<(usize, ApiError)> = parsed
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.as_ref().err().map(|e| (i, e.clone())))
        .collect();
    let good: Vec<(usize, hub_core::Change)> = parsed
        .into_iter()
        .enumerate()
        .filter_map(|(i, p)| p.ok().map(|c| (i, c)))
        .collect();
    let indexes: Vec<usize> = good.iter().map(|(i, _)| *i).collect();
    let changes: Vec<hub_core::Change> = good.into_iter().map(|(_, c)| c).collect();
    let total = items.len();
    // The answer is stored with the changes (same transaction) when an Idempotency-Key is given.
    let idem_key_again = idem_key.clone();
    let idempotency = idem_key.map(|key| {
        let (errors, indexes, hash) = (errors.clone(), indexes.clone(), request_hash.clone());
        Idempotency {
            key,
            request_hash: request_hash.clone(),
            render: Box::new(move |applied: &[Applied]| StoredAnswer {
                request_hash: hash.clone(),
                status: 200,
                body: render_answer(batch, total, applied, &errors, &indexes),
            }),
        }
    });
    // A batch refused as a whole is still recorded under its key, so a retry with another body
    // is a conflict like any other.
    let applied = if changes.is_empty() && idempotency.is_none() {
        Vec::new()
    } else {
        match hub.store.apply(&brand, changes, idempotency).await {
            Ok(applied) => applied,
            Err(e) => {
                // A request with the same key committed first (a client retrying while its first
                // try was in flight): this one rolled back; answer as a replay of that one.
                if let Some(key) = &idem_key_again
                    && let Some(answer) = hub.store.idempotent_answer(brand.brand_code, key).await?
                {
                    return replay(answer, key, &request_hash);
                }
                return Err(e.into());
            }
        }
    };
    for a in &applied {
        hub.metrics.inc(
            "iyshub_consent_changes_total",
            format!("brand=\"{}\",outcome=\"{}\"", brand.brand_code, a.outcome),
            1,
        );
    }
    let mut resp = (
        StatusCode::OK,
        render_answer(batch, total, &applied, &errors, &indexes),
    )
        .into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// The stored answer of an earlier write with the same `Idempotency-Key`, or a conflict when that
/// write had another body.
fn replay(answer: StoredAnswer, key: &str, request_hash: &str) -> ApiResult<Response> {
    if answer.request_hash != request_hash {
        return Err(ApiError::unprocessable(
            "idempotency_conflict",
            "this Idempotency-Key was used with a different body",
        )
        .field("Idempotency-Key")
        .value(key));
    }
    let mut resp = (
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK),
        answer.body,
    )
        .into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(resp)
}

/// The answer to a write: one result, or per item in request order (accepted or rejected).
fn render_answer(
    batch: bool,
    total: usize,
    applied: &[Applied],
    errors: &[(usize, ApiError)],
    indexes: &[usize],
) -> String {
    if !batch {
        return applied
            .first()
            .map_or(Value::Null, |a| applied_json(0, a))
            .to_string();
    }
    let mut results: Vec<(usize, Value)> = applied
        .iter()
        .zip(indexes)
        .map(|(a, i)| (*i, applied_json(*i, a)))
        .collect();
    results.extend(errors.iter().map(|(i, e)| (*i, error_json(*i, e))));
    results.sort_by_key(|(i, _)| *i);
    json!({
        "accepted": applied.len(),
        "rejected": total - applied.len(),
        "results": results.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    })
    .to_string()
}

/// `GET /api/v1/brands/{brandCode}/recipients/{recipient}`: current state on every channel and category.
pub async fn get_recipient(
    State(hub): State<HubState>,
    caller: Caller,
    Path((code, recipient)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let r = lookup_form(&recipient);
    let rows = hub.store.consents(brand.brand_code, &r).await?;
    let cats = hub.store.category_consents(brand.brand_code, &r).await?;
    if rows.is_empty() && cats.is_empty() {
        return Err(
            ApiError::not_found(format!("no consent recorded for {}", mask(&r))).field("recipient"),
        );
    }
    Ok(Json(json!({
        "recipient": r,
        "channels": rows.iter().map(|row| state_json(row.key.channel, row.key.recipient_type, &row.state)).collect::<Vec<_>>(),
        "categories": cats,
    })))
}

fn mask(r: &str) -> String {
    iys::Recipient::normalise(r)
        .map(|x| x.masked())
        .unwrap_or_else(|_| "this recipient".into())
}

fn event_json(e: &Event) -> Value {
    json!({
        "id": e.id,
        "channel": e.key.channel,
        "recipientType": e.key.recipient_type,
        "category": e.category,
        "profileId": e.profile_id,
        "status": e.status,
        "consentDate": e.consent_date,
        "source": e.source,
        "origin": e.origin,
        "actor": e.actor,
        "evidence": e.evidence,
        "hold": e.hold,
        "outcome": e.outcome,
        "receivedAt": e.received_at,
        "iys": {"transactionId": e.iys_transaction_id.as_ref().or(e.delivered_transaction_id.as_ref()), "creationDate": e.iys_creation_date, "error": e.iys_error},
        "hash": e.hash,
    })
}

/// `GET …/recipients/{recipient}/history?limit=`: every event, newest first.
pub async fn get_history(
    State(hub): State<HubState>,
    caller: Caller,
    Path((code, recipient)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let limit = match q.get("limit") {
        None => 100,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::unprocessable("invalid_value", "limit must be 1–1000")
                    .field("limit")
                    .value(s.as_str())
            })?,
    };
    let r = lookup_form(&recipient);
    let events = hub.store.history(brand.brand_code, &r, limit).await?;
    if events.is_empty() {
        return Err(ApiError::not_found(format!("no history for {}", mask(&r))).field("recipient"));
    }
    Ok(Json(
        json!({"recipient": r, "events": events.iter().map(event_json).collect::<Vec<_>>()}),
    ))
}

/// `POST …/check`: may we send on this channel (and category) to these recipients?
pub async fn post_check(
    State(hub): State<HubState>,
    caller: Caller,
    Path(code): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let brand = cached_brand_for(&hub, &caller, &code, Scope::Read).await?;
    let v = json_body(body)?;
    let Some(obj) = v.as_object() else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object",
        ));
    };
    const FIELDS: [&str; 8] = [
        "recipient",
        "recipients",
        "profileId",
        "channel",
        "type",
        "recipientType",
        "category",
        "policy",
    ];
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(
            "unknown_field",
            format!(
                "unknown field {unknown:?}; a check has: {}",
                FIELDS.join(", ")
            ),
        )
        .field(unknown.as_str()));
    }
    let str_field = |f: &str| obj.get(f).and_then(Value::as_str);
    let channel_text = str_field("channel").or(str_field("type")).ok_or_else(|| {
        ApiError::unprocessable("missing_field", "channel (or type) is required").field("channel")
    })?;
    let channel: Channel = channel_text.parse().map_err(|e: hub_core::InvalidValue| {
        ApiError::unprocessable("invalid_value", e.to_string())
            .field("channel")
            .value(channel_text)
    })?;
    let recipient_type: RecipientType = match str_field("recipientType") {
        None => RecipientType::default(),
        Some(s) => s.parse().map_err(|_| {
            ApiError::unprocessable("invalid_value", "recipientType must be BIREYSEL or TACIR")
                .field("recipientType")
                .value(s)
        })?,
    };
    let policy = match str_field("policy") {
        None | Some("strict") => Policy::Strict,
        Some("lenient") => Policy::Lenient,
        Some(other) => {
            return Err(ApiError::unprocessable(
                "invalid_value",
                "policy must be strict or lenient",
            )
            .field("policy")
            .value(other));
        }
    };
    let category = match str_field("category") {
        None => None,
        Some(c) => {
            let kind = cached_categories(&hub, brand.brand_code)
                .await?
                .iter()
                .find(|x| x.code == c)
                .map(|x| x.kind);
            Some((
                c.to_owned(),
                kind.ok_or_else(|| {
                    ApiError::unprocessable(
                        "unknown_category",
                        format!("category {c:?} is not defined for this brand"),
                    )
                    .field("category")
                    .value(c)
                })?,
            ))
        }
    };
    let profile = str_field("profileId");
    let (recipients, single): (Vec<String>, bool) =
        match (obj.get("recipients"), str_field("recipient"), profile) {
            (Some(Value::Array(list)), None, None) => {
                if list.len() > MAX_CHECKS {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too_many_recipients",
                        format!("at most {MAX_CHECKS} recipients per check"),
                    )
                    .field("recipients"));
                }
                (
                    list.iter()
                        .map(|v| v.as_str().unwrap_or_default().to_owned())
                        .collect(),
                    false,
                )
            }
            (None, Some(r), None) => (vec![r.to_owned()], true),
            (None, None, Some(p)) => {
                let prof = hub
                    .store
                    .profile(brand.brand_code, p)
                    .await?
                    .ok_or_else(|| {
                        ApiError::not_found(format!("profile {p} not found")).field("profileId")
                    })?;
                (
                    prof.addresses
                        .into_iter()
                        .filter(|a| normalise_recipient(a, channel).is_ok())
                        .collect(),
                    false,
                )
            }
            _ => {
                return Err(ApiError::unprocessable(
                    "invalid_body",
                    "give exactly one of recipient, recipients or profileId",
                )
                .field("recipient"));
            }
        };
    // The recipients' states (and category statuses) in one query per 500, not one per recipient.
    let normalised: Vec<Result<String, ApiError>> =
        hub.caches
            .recipients
            .normalise_all(&recipients, channel, normalise_recipient);
    let valid: Vec<String> = normalised
        .iter()
        .filter_map(|n| n.as_ref().ok().cloned())
        .collect();
    let states = hub
        .store
        .send_states(brand.brand_code, channel, recipient_type, &valid)
        .await?;
    let (categories, by_profile) = match &category {
        None => (Default::default(), None),
        Some((code, _)) => {
            let by_profile = match profile {
                Some(p) => hub
                    .store
                    .category_statuses(brand.brand_code, code, &[format!("profile:{p}")])
                    .await?
                    .into_values()
                    .next(),
                None => None,
            };
            (
                hub.store
                    .category_statuses(brand.brand_code, code, &valid)
                    .await?,
                by_profile,
            )
        }
    };
    let mut results = Vec::with_capacity(recipients.len());
    let mut allowed_total = 0u64;
    for (r, n) in recipients.iter().zip(normalised) {
        let normalised = match n {
            Ok(n) => n,
            Err(e) => {
                results.push(json!({"recipient": r, "allowed": false, "reason": "invalid_recipient", "error": e.body}));
                continue;
            }
        };
        let cat = category.as_ref().map(|(_, kind)| {
            let status = categories.get(&normalised).copied();
            // A profile's RET or ONAY stands for its addresses unless one of them refused.
            let status = match status {
                Some(iys::ConsentStatus::Ret) => status,
                _ => by_profile.or(status),
            };
            (*kind, status)
        });
        let d = check(channel, states.get(&normalised), cat, policy);
        allowed_total += u64::from(d.allowed);
        results.push(json!({"recipient": normalised, "allowed": d.allowed, "reason": d.reason}));
    }
    let denied_total = results.len() as u64 - allowed_total;
    for (allowed, n) in [(true, allowed_total), (false, denied_total)] {
        if n > 0 {
            hub.metrics.inc(
                "iyshub_checks_total",
                format!("brand=\"{}\",allowed=\"{allowed}\"", brand.brand_code),
                n,
            );
        }
    }
    if single {
        let mut one = results.into_iter().next().unwrap_or(Value::Null);
        one["channel"] = json!(channel);
        return Ok(Json(one));
    }
    let allowed = results.iter().filter(|r| r["allowed"] == true).count();
    let mut out = json!({"channel": channel, "allowedCount": allowed, "deniedCount": results.len() - allowed, "results": results});
    if let Some(p) = profile {
        out["profileId"] = json!(p);
        out["allowed"] = json!(allowed > 0);
    }
    Ok(Json(out))
}
