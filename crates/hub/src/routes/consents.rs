//! Consent writes, a recipient's current state and history.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hub_core::{CategoryKind, Origin};
use hub_store::{Applied, Idempotency, Scope, StoredAnswer};
use jiff::Timestamp;
use serde_json::Value;
use sha2::Digest;

use crate::api::{brand_for, cached_brand_for, cached_categories};
use crate::auth::Caller;
use crate::dto::consents::{
    AcceptedItem, BatchResult, ChannelState, ConsentBatch, ConsentWrite, ConsentWriteResult,
    HistoryEvent, HistoryQuery, IdempotencyKeyHeader, RecipientConsents, RecipientHistory,
};
use crate::dto::error::ErrorResponse;
use crate::dto::params::{BrandCodePath, RecipientPath};
use crate::error::{ApiError, ApiResult};
use crate::extract::{BodyError, JsonBody, Misfit, Path, Query, RequestBody, parse_json};
use crate::input::{lookup_form, parse_change};
use crate::{HubDb, HubState, MAX_CHANGES};

/// A batch body's changes, moved out of it. The body holds `changes` and nothing else, refused
/// as `ConsentBatch` refuses; read by hand because deserializing `ConsentBatch` from the parsed
/// body copies every change (a twentieth of a 1,000-change batch's CPU in a profile).
fn batch_changes(body: Value) -> ApiResult<Vec<Value>> {
    let Value::Object(mut obj) = body else {
        return Err(ApiError::unprocessable(
            "invalid_body",
            "the body must be a JSON object",
        ));
    };
    if let Some(extra) = obj.keys().find(|k| k.as_str() != "changes") {
        return Err(ConsentBatch::refuse(BodyError {
            kind: Misfit::UnknownField,
            field: extra.clone(),
            message: format!("unknown field `{extra}`, expected `changes`"),
            value: None,
        }));
    }
    match obj.remove("changes") {
        Some(Value::Array(a)) => Ok(a),
        other => Err(
            ApiError::unprocessable("invalid_type", "changes must be an array")
                .field("changes")
                .value(other.unwrap_or(Value::Null)),
        ),
    }
}

/// Record consent changes
///
/// Scope: write. One change, or `{"changes":[…]}` with up to 10,000. Every field is checked
/// before anything is stored, with IYS's own rules and H-codes on IYS channels, so no IYS quota
/// is spent on a change IYS would refuse. Each accepted change appends an event to the brand's
/// hash-chained history, updates the current state and, on IYS channels, queues the change for
/// IYS (outbox) as the brand's mode says.
///
/// A single change answers 200 with its result, or with its error (4xx). A batch always answers
/// 200 when the body itself is well formed: good changes are stored even when others are
/// refused, and `results` has one item per change in request order.
#[utoipa::path(
    post,
    path = "/api/v1/brands/{brandCode}/consents",
    tag = "consents",
    operation_id = "postConsents",
    params(BrandCodePath, IdempotencyKeyHeader),
    security(("apiKey" = ["write"])),
    request_body(content = ConsentWrite, examples(
        ("single" = (summary = "Ayşe gives SMS permission on the web site", value = json!({"recipient": "0532 123 45 67", "type": "MESAJ", "status": "ONAY", "source": "HS_WEB", "consentDate": "2026-11-28 14:05:00", "evidence": {"ip": "203.0.113.7", "form": "signup-v3"}}))),
        ("batch" = (summary = "A batch (two good changes, two refused)", value = json!({"changes": [{"recipient": "ayse@example.com", "type": "EPOSTA", "status": "ONAY", "source": "HS_WEB"}, {"recipient": "ayşe@örnek.com", "type": "EPOSTA", "status": "ONAY", "source": "HS_WEB"}, {"recipient": "+905321234567", "channel": "PUSH", "status": "ONAY"}, {"recipient": "+905321234567", "type": "MESAJ", "status": "ONAY", "source": "HS_WEB", "consentDate": "2030-01-01 10:00:00"}]}))),
        ("categoryRet" = (summary = "Ayşe refuses campaign messages (a category consent)", value = json!({"recipient": "+905321234567", "type": "MESAJ", "status": "RET", "source": "HS_WEB", "category": "kampanya", "actor": "agent-mehmet"}))),
        ("hold" = (summary = "An agent places a manual hold", value = json!({"recipient": "+905321234567", "type": "MESAJ", "status": "ONAY", "source": "HS_CAGRI_MERKEZI", "consentDate": "2026-11-28 14:05:00", "hold": true, "actor": "agent-mehmet"}))),
        ("profileCategory" = (summary = "A profile's category consent, without a recipient", value = json!({"profileId": "musteri-48213", "channel": "PUSH", "category": "kampanya", "status": "RET"})))
    )),
    responses(
        (status = 200, description = "The result: one item for a single change, counts and items for a batch.", body = ConsentWriteResult,
            headers(("Idempotent-Replayed" = String, description = "`true` when the answer is the stored answer of an earlier request with the same Idempotency-Key.")),
            examples(
            ("single" = (summary = "A single change, queued for IYS", value = json!({"index": 0, "status": "accepted", "eventId": 1, "outcome": "applied", "iysState": "pending", "deadline": "2026-12-02T11:05:00Z", "outbox": "pending"}))),
            ("batch" = (summary = "A batch with two items refused", value = json!({"accepted": 2, "rejected": 2, "results": [{"index": 0, "status": "accepted", "eventId": 2, "outcome": "applied", "iysState": "pending", "deadline": "2026-12-02T11:20:35Z", "outbox": "pending"}, {"index": 1, "status": "rejected", "error": {"code": "H120", "field": "recipient", "message": "recipient is not a valid e-mail address. (IYS: Alıcı (recipient) kabul edilemedi. Geçerli bir eposta adresi giriniz.)", "value": "ayşe@örnek.com"}}, {"index": 2, "status": "accepted", "eventId": 3, "outcome": "applied", "iysState": "local_only", "deadline": null, "outbox": null}, {"index": 3, "status": "rejected", "error": {"code": "H162", "field": "consentDate", "message": "Date and time must not be in the future. (IYS: Mevcut tarih ve saatten ileri bir tarih ve saat girilmemelidir.)", "value": "2030-01-01 10:00:00"}}]})))
        )),
        (status = 400, description = "Bad request (see the error code).", body = ErrorResponse, examples(
            ("unknownField" = (summary = "Unknown field in a change", value = json!({"error": {"code": "unknown_field", "message": "unknown field \"foo\"; a change has: recipient, type, channel, recipientType, status, consentDate, source, category, profileId, evidence, hold, actor", "field": "foo"}}))),
            ("batchExtra" = (summary = "A batch body with more than changes", value = json!({"error": {"code": "unknown_field", "message": "a batch body has only \"changes\"; found \"x\"", "field": "x"}}))),
            ("notObject" = (summary = "Not a JSON object", value = json!({"error": {"code": "invalid_body", "message": "a change must be a JSON object"}}))),
            ("badIdempotencyKey" = (summary = "Empty or non-ASCII Idempotency-Key", value = json!({"error": {"code": "invalid_value", "message": "Idempotency-Key must be 1–255 visible ASCII characters", "field": "Idempotency-Key"}})))
        )),
        (status = 413, description = "Payload too large.", body = ErrorResponse, examples(
            ("tooManyChanges" = (summary = "Over 10,000 changes", value = json!({"error": {"code": "too_many_changes", "message": "at most 10000 changes per request; split the batch", "field": "changes", "value": 10001}})))
        )),
        (status = 422, description = "The body breaks a rule (see the error code, field and value).", body = ErrorResponse, examples(
            ("H121" = (summary = "Not a phone number", value = json!({"error": {"code": "H121", "message": "recipient must be an E.164 phone number, e.g. +905992000000. (IYS: Alıcı (recipient) için E164 uluslararası([+][country code][area code][local phone number]) formatına uygun bir telefon numarası girilmelidir. (örn. +905992000000))", "field": "recipient", "value": "12345"}}))),
            ("H120" = (summary = "Not an e-mail IYS accepts", value = json!({"error": {"code": "H120", "message": "recipient is not a valid e-mail address. (IYS: Alıcı (recipient) kabul edilemedi. Geçerli bir eposta adresi giriniz.)", "field": "recipient", "value": "örnek@mail.com"}}))),
            ("H110" = (summary = "status missing", value = json!({"error": {"code": "H110", "message": "status is missing. (IYS: Durum (status) bulunamadı.)", "field": "status"}}))),
            ("H115" = (summary = "Wrong status", value = json!({"error": {"code": "H115", "message": "status must be ONAY or RET. (IYS: Durum (status) için uygun değerler: ONAY, RET)", "field": "status", "value": "RED"}}))),
            ("H117" = (summary = "Wrong type", value = json!({"error": {"code": "H117", "message": "type must be ARAMA, MESAJ or EPOSTA. (IYS: İzin tipi (type) için uygun değerler: ARAMA, MESAJ, EPOSTA)", "field": "type", "value": "SMS"}}))),
            ("H119" = (summary = "Wrong source", value = json!({"error": {"code": "H119", "message": "source is not one of the accepted values (13 HS_* values incl. HS_KARAR). (IYS: İzin kaynağı (source) için uygun değerler: HS_FIZIKSEL_ORTAM, HS_ISLAK_IMZA, HS_WEB, HS_CAGRI_MERKEZI, HS_SOSYAL_MEDYA, HS_EPOSTA, HS_MESAJ, HS_MOBIL, HS_EORTAM, HS_ETKINLIK, HS_2015, HS_ATM, HS_KARAR)", "field": "source", "value": "WEB"}}))),
            ("H158" = (summary = "consentDate format", value = json!({"error": {"code": "H158", "message": "consentDate must have the format yyyy-mm-dd hh:mm:ss. (IYS: İzin tarihi yyyy-mm-dd hh:mm:ss formatında olmalıdır.)", "field": "consentDate", "value": "2026-11-28"}}))),
            ("H157" = (summary = "Impossible date", value = json!({"error": {"code": "H157", "message": "consentDate is not a valid date. (IYS: Geçerli bir tarih girilmelidir.)", "field": "consentDate", "value": "2026-13-28 10:00:00"}}))),
            ("H162" = (summary = "Future date", value = json!({"error": {"code": "H162", "message": "Date and time must not be in the future. (IYS: Mevcut tarih ve saatten ileri bir tarih ve saat girilmemelidir.)", "field": "consentDate", "value": "2030-01-01 10:00:00"}}))),
            ("H408" = (summary = "HS_KARAR with ONAY", value = json!({"error": {"code": "H408", "message": "Consents with source HS_KARAR must have status RET. (IYS: HS_KARAR kaynağından iletilen izinler için durum bilgisi RET olmalıdır.)", "field": "status", "value": "ONAY"}}))),
            ("missingField" = (summary = "No type or channel", value = json!({"error": {"code": "missing_field", "message": "type (MESAJ, ARAMA, EPOSTA) or channel (PUSH, WEB_PUSH, IN_APP, WHATSAPP) is required", "field": "type"}}))),
            ("invalidType" = (summary = "A number for a string", value = json!({"error": {"code": "invalid_type", "message": "status must be a string", "field": "status", "value": 1}}))),
            ("invalidChannel" = (summary = "Unknown channel", value = json!({"error": {"code": "invalid_value", "message": "\"SMS\" is not a valid channel: expected MESAJ, ARAMA, EPOSTA, PUSH, WEB_PUSH, IN_APP or WHATSAPP", "field": "channel", "value": "SMS"}}))),
            ("emptyBatch" = (summary = "Empty batch", value = json!({"error": {"code": "invalid_value", "message": "changes must not be empty", "field": "changes"}}))),
            ("changesNotArray" = (summary = "changes not an array", value = json!({"error": {"code": "invalid_type", "message": "changes must be an array", "field": "changes", "value": {}}}))),
            ("unknownCategory" = (summary = "Category not defined", value = json!({"error": {"code": "unknown_category", "message": "category \"kampanya\" is not defined for this brand", "field": "category", "value": "kampanya"}}))),
            ("idempotencyConflict" = (summary = "Key reused with another body", value = json!({"error": {"code": "idempotency_conflict", "message": "this Idempotency-Key was used with a different body", "field": "Idempotency-Key", "value": "7f3c2a10-batch-0001"}})))
        )),
    )
)]
pub async fn post_consents<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
    headers: HeaderMap,
    body: JsonBody<ConsentWrite>,
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
    let bytes = body.bytes()?;
    let request_hash = hex::encode(sha2::Sha256::digest(&bytes));
    if let Some(key) = &idem_key
        && let Some(answer) = hub.store.idempotent_answer(brand.brand_code, key).await?
    {
        return replay(answer, key, &request_hash);
    }
    let value = parse_json(&bytes)?;
    // A batch's changes are read one by one below.
    let batch = matches!(&value, Value::Object(o) if o.contains_key("changes"));
    let items = if batch {
        batch_changes(value)?
    } else {
        vec![value]
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
            &[
                ("brand", brand.brand_code.to_string()),
                ("outcome", a.outcome.as_str().to_owned()),
            ],
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
    let answer = if batch {
        Some(ConsentWriteResult::Batch(BatchResult::new(
            total, applied, indexes, errors,
        )))
    } else {
        applied
            .first()
            .map(|a| ConsentWriteResult::One(AcceptedItem::new(0, a)))
    };
    serde_json::to_string(&answer).expect("an answer is plain data")
}

/// A recipient's current consents
///
/// Scope: read. The state on every channel and recipient type (with `iysState` and IYS's
/// deadline), and the category consents recorded for the recipient.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/recipients/{recipient}",
    tag = "consents",
    operation_id = "getRecipient",
    params(BrandCodePath, RecipientPath),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "The recipient's consents.", body = RecipientConsents, examples(
            ("phone" = (summary = "SMS queued for IYS, push recorded locally, campaigns refused", value = json!({"recipient": "+905321234567", "channels": [{"channel": "MESAJ", "recipientType": "BIREYSEL", "status": "ONAY", "consentDate": "2026-11-28 14:05:00", "source": "HS_WEB", "iysState": "pending", "iysError": null, "conflict": false, "hold": false, "deadline": "2026-12-02T11:05:00Z", "lastEventId": 1, "updatedAt": "2026-11-28T11:05:12.481Z"}, {"channel": "PUSH", "recipientType": "BIREYSEL", "status": "ONAY", "consentDate": "2026-11-28 14:20:35", "source": "HS_EORTAM", "iysState": "local_only", "iysError": null, "conflict": false, "hold": false, "deadline": null, "lastEventId": 3, "updatedAt": "2026-11-28T11:20:35.582Z"}], "categories": [{"subject": "+905321234567", "category": "kampanya", "status": "RET", "consentDate": "2026-11-28 14:31:09", "source": "HS_WEB", "lastEventId": 6}]})))
        )),
        (status = 404, description = "Not found.", body = ErrorResponse, examples(
            ("noConsent" = (summary = "Nothing recorded for the recipient", value = json!({"error": {"code": "not_found", "message": "no consent recorded for +90555*****00", "field": "recipient"}})))
        )),
    )
)]
pub async fn get_recipient<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, recipient)): Path<(String, String)>,
) -> ApiResult<Json<RecipientConsents>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let r = lookup_form(&recipient);
    let rows = hub.store.consents(brand.brand_code, &r).await?;
    let cats = hub.store.category_consents(brand.brand_code, &r).await?;
    if rows.is_empty() && cats.is_empty() {
        return Err(
            ApiError::not_found(format!("no consent recorded for {}", mask(&r))).field("recipient"),
        );
    }
    Ok(Json(RecipientConsents {
        channels: rows
            .iter()
            .map(|row| ChannelState::new(row.key.channel, row.key.recipient_type, &row.state))
            .collect(),
        categories: cats.into_iter().map(Into::into).collect(),
        recipient: r,
    }))
}

fn mask(r: &str) -> String {
    iys::Recipient::normalise(r)
        .map(|x| x.masked())
        .unwrap_or_else(|_| "this recipient".into())
}

/// A recipient's history
///
/// Scope: read. Every event recorded for the recipient, newest first, `limit` at a time (pass
/// the answer's `nextCursor` as `cursor` for older events): origin, actor, evidence,
/// outcome, IYS's answer and the event's hash.
#[utoipa::path(
    get,
    path = "/api/v1/brands/{brandCode}/recipients/{recipient}/history",
    tag = "consents",
    operation_id = "getRecipientHistory",
    params(BrandCodePath, RecipientPath, HistoryQuery),
    security(("apiKey" = ["read"])),
    responses(
        (status = 200, description = "The events.", body = RecipientHistory, examples(
            ("history" = (summary = "Two events", value = json!({"recipient": "+905321234567", "events": [{"id": 6, "channel": "MESAJ", "recipientType": "BIREYSEL", "category": "kampanya", "profileId": null, "status": "RET", "consentDate": "2026-11-28 14:31:09", "source": "HS_WEB", "origin": "api", "actor": "crm-prod:agent-mehmet", "evidence": null, "hold": null, "outcome": "applied", "receivedAt": "2026-11-28T11:31:09.120Z", "iys": {"transactionId": null, "creationDate": null, "error": null}, "hash": "903e22159b9e5827046ebd8fba0be822080a86252b2e6632e162a99abd77e7a9"}, {"id": 1, "channel": "MESAJ", "recipientType": "BIREYSEL", "category": null, "profileId": null, "status": "ONAY", "consentDate": "2026-11-28 14:05:00", "source": "HS_WEB", "origin": "api", "actor": "crm-prod", "evidence": {"ip": "203.0.113.7", "form": "signup-v3"}, "hold": null, "outcome": "applied", "receivedAt": "2026-11-28T11:05:12.481Z", "iys": {"transactionId": null, "creationDate": null, "error": null}, "hash": "a41f0c8e7b2d9f63c5e1b8a0d4f7c2e96b3a5d8f1c0e7b4a9d2f6c3e8b1a5d70"}], "nextCursor": null})))
        )),
        (status = 404, description = "Not found.", body = ErrorResponse, examples(
            ("noHistory" = (summary = "No events for the recipient", value = json!({"error": {"code": "not_found", "message": "no history for +90555*****00", "field": "recipient"}})))
        )),
        (status = 422, description = "A bad query parameter, named in field.", body = ErrorResponse, examples(
            ("badLimit" = (summary = "limit out of range", value = json!({"error": {"code": "invalid_value", "message": "limit must be 1–1000", "field": "limit", "value": "0"}})))
        )),
    )
)]
pub async fn get_history<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path((code, recipient)): Path<(String, String)>,
    query: Query<HistoryQuery>,
) -> ApiResult<Json<RecipientHistory>> {
    let brand = brand_for(&hub, &caller, &code, Scope::Read).await?;
    let q = query.parse()?;
    let limit = match &q.limit {
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
    let before = match &q.cursor {
        None => None,
        Some(c) => Some(c.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_value",
                "cursor must be the nextCursor of a previous page",
            )
            .field("cursor")
            .value(c.as_str())
        })?),
    };
    let r = lookup_form(&recipient);
    let events = hub
        .store
        .history_page(brand.brand_code, &r, before, limit)
        .await?;
    // Past the last page the history is empty, not missing.
    if events.is_empty() && before.is_none() {
        return Err(ApiError::not_found(format!("no history for {}", mask(&r))).field("recipient"));
    }
    let next_cursor = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.id.to_string()))
        .flatten();
    Ok(Json(RecipientHistory {
        recipient: r,
        events: events.into_iter().map(HistoryEvent::from).collect(),
        next_cursor,
    }))
}
