//! Send-time checks: may a message on this channel (and category) go to these recipients?

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use std::sync::Arc;

use hub_core::{BrandCode, CategoryKind, Channel, Policy, SendState, check};
use hub_store::{Scope, category_statuses_apart, send_states_apart};
use iys::RecipientType;

use crate::api::{cached_brand_for, cached_categories};
use crate::auth::Caller;
use crate::dto::checks::{
    CheckItem, CheckManyResult, CheckOneResult, CheckProfileResult, CheckReason, CheckRequest,
    CheckResult, InvalidRecipient,
};
use crate::dto::error::ErrorResponse;
use crate::dto::params::BrandCodePath;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path};
use crate::input::normalise_recipient;
use crate::{HubDb, HubState, MAX_CHECKS};

/// The send states of `recipients` in their order; an unreadable stored consent (a value
/// outside its set, written by hand) comes back apart as (position, error), never allowed,
/// while the other recipients are decided as usual.
async fn states_one_by_one_if_unreadable<S: HubDb>(
    hub: &HubState<S>,
    brand: BrandCode,
    channel: Channel,
    recipient_type: RecipientType,
    recipients: Arc<[String]>,
) -> ApiResult<(Vec<Option<SendState>>, Vec<(usize, ApiError)>)> {
    let (states, unreadable) = send_states_apart(
        &*hub.store,
        brand,
        channel,
        recipient_type,
        recipients.clone(),
    )
    .await?;
    let unreadable = unreadable
        .into_iter()
        .map(|(place, what)| {
            let recipient = recipients
                .get(place)
                .map(String::as_str)
                .unwrap_or_default();
            (place, unreadable_error(recipient, &what))
        })
        .collect();
    Ok((states, unreadable))
}

/// A check item's error for a recipient whose stored consent (or category consent) cannot be
/// read; `what` names the column and the value.
fn unreadable_error(recipient: &str, what: &str) -> ApiError {
    ApiError::unprocessable(
        "unreadable_state",
        format!("the stored consent cannot be read ({what}); it is not sent to until it is mended"),
    )
    .field("recipient")
    .value(recipient)
}

/// The message's channel, or 422 naming `channel`.
pub(crate) fn channel_param(text: &str) -> ApiResult<Channel> {
    text.parse().map_err(|e: hub_core::InvalidValue| {
        ApiError::unprocessable("invalid_value", e.to_string())
            .field("channel")
            .value(text)
    })
}

/// `BIREYSEL` (the default) or `TACIR`, or 422 naming `recipientType`.
pub(crate) fn recipient_type_param(text: Option<&str>) -> ApiResult<RecipientType> {
    match text {
        None => Ok(RecipientType::default()),
        Some(s) => s.parse().map_err(|_| {
            ApiError::unprocessable("invalid_value", "recipientType must be BIREYSEL or TACIR")
                .field("recipientType")
                .value(s)
        }),
    }
}

/// `strict` (the default) or `lenient`, or 422 naming `policy`.
pub(crate) fn policy_param(text: Option<&str>) -> ApiResult<Policy> {
    match text {
        None | Some("strict") => Ok(Policy::Strict),
        Some("lenient") => Ok(Policy::Lenient),
        Some(other) => Err(ApiError::unprocessable(
            "invalid_value",
            "policy must be strict or lenient",
        )
        .field("policy")
        .value(other)),
    }
}

/// The category's kind, or 422 `unknown_category` naming `field` when the brand has none such.
pub(crate) async fn category_kind<S: HubDb>(
    hub: &HubState<S>,
    brand: BrandCode,
    code: &str,
    field: &str,
) -> ApiResult<CategoryKind> {
    cached_categories(hub, brand)
        .await?
        .iter()
        .find(|c| c.code == code)
        .map(|c| c.kind)
        .ok_or_else(|| {
            ApiError::unprocessable(
                "unknown_category",
                format!("category {code:?} is not defined for this brand"),
            )
            .field(field)
            .value(code)
        })
}

/// May we send?
///
/// Scope: read. Whether a message on `channel` (and `category`) may be sent, with the reason,
/// for one recipient, up to 10,000 recipients, or every fitting address of a profile. When in
/// doubt the answer is no: an IYS channel is allowed only when the status is ONAY and IYS has it
/// (`pending` too under the lenient policy); a manual hold always denies; a transactional
/// category needs no marketing consent. An invalid recipient is not an error: its item says
/// `invalid_recipient` with the error.
#[utoipa::path(
    post,
    path = "/api/v1/brands/{brandCode}/check",
    tag = "checks",
    operation_id = "check",
    params(BrandCodePath),
    security(("apiKey" = ["read"])),
    request_body(content = CheckRequest, examples(
        ("one" = (summary = "One recipient, strict", value = json!({"recipient": "+905321234567", "channel": "MESAJ"}))),
        ("lenient" = (summary = "Lenient policy, IYS's field name", value = json!({"recipient": "ayse@example.com", "type": "EPOSTA", "policy": "lenient"}))),
        ("many" = (summary = "Several recipients", value = json!({"recipients": ["+905321234567", "ayse@example.com", "+905551112233"], "channel": "PUSH"}))),
        ("profile" = (summary = "Every address of a profile, for a campaign", value = json!({"profileId": "musteri-48213", "channel": "PUSH", "category": "kampanya"})))
    )),
    responses(
        (status = 200, description = "The decision(s).", body = CheckResult, examples(
            ("one" = (summary = "Denied: ONAY not yet in IYS", value = json!({"recipient": "+905321234567", "allowed": false, "reason": "pending_iys", "channel": "MESAJ"}))),
            ("lenient" = (summary = "Allowed under the lenient policy", value = json!({"recipient": "ayse@example.com", "allowed": true, "reason": "pending_allowed", "channel": "EPOSTA"}))),
            ("invalid" = (summary = "An invalid recipient", value = json!({"recipient": "bad@", "allowed": false, "reason": "invalid_recipient", "channel": "EPOSTA", "error": {"code": "H120", "field": "recipient", "value": "bad@", "message": "recipient is not a valid e-mail address. (IYS: Alıcı (recipient) kabul edilemedi. Geçerli bir eposta adresi giriniz.)"}}))),
            ("many" = (summary = "Several recipients", value = json!({"channel": "PUSH", "allowedCount": 1, "deniedCount": 2, "results": [{"recipient": "+905321234567", "allowed": true, "reason": "consent"}, {"recipient": "ayse@example.com", "allowed": false, "reason": "no_consent"}, {"recipient": "+905551112233", "allowed": false, "reason": "no_consent"}]}))),
            ("profile" = (summary = "A profile that refused the category", value = json!({"channel": "PUSH", "profileId": "musteri-48213", "allowed": false, "allowedCount": 0, "deniedCount": 3, "results": [{"recipient": "+905321234567", "allowed": false, "reason": "category_rejected"}, {"recipient": "ayse@example.com", "allowed": false, "reason": "category_rejected"}, {"recipient": "fcm-token-9f8a7b", "allowed": false, "reason": "category_rejected"}]})))
        )),
        (status = 400, description = "Bad request (see the error code).", body = ErrorResponse, examples(
            ("unknownField" = (summary = "Unknown field", value = json!({"error": {"code": "unknown_field", "message": "unknown field \"x\"; a check has: recipient, recipients, profileId, channel, type, recipientType, category, policy", "field": "x"}}))),
            ("notObject" = (summary = "Not a JSON object", value = json!({"error": {"code": "invalid_body", "message": "the body must be a JSON object"}})))
        )),
        (status = 404, description = "Not found.", body = ErrorResponse, examples(
            ("profileNotFound" = (summary = "No such profile", value = json!({"error": {"code": "not_found", "message": "profile yok not found", "field": "profileId"}})))
        )),
        (status = 413, description = "Payload too large.", body = ErrorResponse, examples(
            ("tooManyRecipients" = (summary = "Over 10,000 recipients", value = json!({"error": {"code": "too_many_recipients", "message": "at most 10000 recipients per check", "field": "recipients"}})))
        )),
        (status = 422, description = "The body breaks a rule (see the error code, field and value).", body = ErrorResponse, examples(
            ("missingChannel" = (summary = "No channel", value = json!({"error": {"code": "missing_field", "message": "channel (or type) is required", "field": "channel"}}))),
            ("badChannel" = (summary = "Unknown channel", value = json!({"error": {"code": "invalid_value", "message": "\"SMS\" is not a valid channel: expected MESAJ, ARAMA, EPOSTA, PUSH, WEB_PUSH, IN_APP or WHATSAPP", "field": "channel", "value": "SMS"}}))),
            ("badPolicy" = (summary = "Unknown policy", value = json!({"error": {"code": "invalid_value", "message": "policy must be strict or lenient", "field": "policy", "value": "loose"}}))),
            ("badRecipientType" = (summary = "Unknown recipientType", value = json!({"error": {"code": "invalid_value", "message": "recipientType must be BIREYSEL or TACIR", "field": "recipientType", "value": "X"}}))),
            ("wrongType" = (summary = "A number for a string", value = json!({"error": {"code": "invalid_type", "message": "channel must be a string", "field": "channel", "value": 5}}))),
            ("unknownCategory" = (summary = "Category not defined", value = json!({"error": {"code": "unknown_category", "message": "category \"yok\" is not defined for this brand", "field": "category", "value": "yok"}}))),
            ("notExactlyOne" = (summary = "Not exactly one of recipient, recipients, profileId", value = json!({"error": {"code": "invalid_body", "message": "give exactly one of recipient, recipients or profileId", "field": "recipient"}})))
        )),
    )
)]
pub async fn post_check<S: HubDb>(
    State(hub): State<HubState<S>>,
    caller: Caller,
    Path(code): Path<String>,
    body: JsonBody<CheckRequest>,
) -> ApiResult<Json<CheckResult>> {
    let brand = cached_brand_for(&hub, &caller, &code, Scope::Read).await?;
    let req = body.parse()?;
    let channel_text = req
        .channel
        .as_deref()
        .or(req.type_.as_deref())
        .ok_or_else(|| {
            ApiError::unprocessable("missing_field", "channel (or type) is required")
                .field("channel")
        })?;
    let channel = channel_param(channel_text)?;
    let recipient_type = recipient_type_param(req.recipient_type.as_deref())?;
    let policy = policy_param(req.policy.as_deref())?;
    let category = match req.category.as_deref() {
        None => None,
        Some(c) => Some((
            c.to_owned(),
            category_kind(&hub, brand.brand_code, c, "category").await?,
        )),
    };
    let profile = req.profile_id.as_deref();
    let (recipients, single): (Vec<String>, bool) =
        match (&req.recipients, req.recipient.as_deref(), profile) {
            (Some(list), None, None) => {
                if list.len() > MAX_CHECKS {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too_many_recipients",
                        format!("at most {MAX_CHECKS} recipients per check"),
                    )
                    .field("recipients"));
                }
                // Items are read one by one: one that is not a string is an invalid recipient.
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
    let valid: Arc<[String]> = normalised
        .iter()
        .filter_map(|n| n.as_ref().ok().cloned())
        .collect();
    // In `valid`'s order, so each answer is found by position rather than by its recipient.
    let (states, unreadable) = states_one_by_one_if_unreadable(
        &hub,
        brand.brand_code,
        channel,
        recipient_type,
        valid.clone(),
    )
    .await?;
    let (categories, by_profile, refused_by_profile, unreadable_categories) = match &category {
        None => (
            Default::default(),
            None,
            Default::default(),
            Default::default(),
        ),
        Some((code, _)) => {
            let (mut by_profile, mut unreadable_profile) = (None, None);
            if let Some(p) = profile {
                let subject = [format!("profile:{p}")];
                let (status, unreadable) =
                    category_statuses_apart(&*hub.store, brand.brand_code, code, &subject).await?;
                by_profile = status.into_values().next();
                unreadable_profile = unreadable.into_values().next();
            }
            let (statuses, mut unreadable) =
                category_statuses_apart(&*hub.store, brand.brand_code, code, &valid).await?;
            // A profile's unreadable category consent stands for each of its addresses.
            if let Some(what) = unreadable_profile {
                for r in valid.iter() {
                    unreadable.entry(r.clone()).or_insert_with(|| what.clone());
                }
            }
            // An address of a profile that refused the category is refused too, whether the
            // check names the profile or not, as the campaign filter and segments decide.
            let refused = hub
                .store
                .refused_by_profile(brand.brand_code, code, &valid)
                .await?;
            (statuses, by_profile, refused, unreadable)
        }
    };
    let mut results = Vec::with_capacity(recipients.len());
    let mut states = states.into_iter().enumerate();
    let mut unreadable = unreadable.into_iter().peekable();
    for (r, n) in recipients.iter().zip(normalised) {
        let normalised = match n {
            Ok(n) => n,
            Err(e) => {
                results.push(CheckItem {
                    recipient: r.clone(),
                    allowed: false,
                    reason: CheckReason::Invalid(InvalidRecipient::InvalidRecipient),
                    error: Some(e.body),
                });
                continue;
            }
        };
        let cat = category.as_ref().map(|(_, kind)| {
            let status = categories.get(&normalised).copied();
            // A profile's RET or ONAY stands for its addresses unless one of them refused.
            let status = match status {
                _ if refused_by_profile.contains(&normalised) => Some(iys::ConsentStatus::Ret),
                Some(iys::ConsentStatus::Ret) => status,
                _ => by_profile.or(status),
            };
            (*kind, status)
        });
        let (place, state) = states.next().unwrap_or((usize::MAX, None));
        if let Some((_, e)) = unreadable.next_if(|(at, _)| *at == place) {
            results.push(CheckItem {
                recipient: normalised,
                allowed: false,
                reason: CheckReason::Invalid(InvalidRecipient::UnreadableState),
                error: Some(e.body),
            });
            continue;
        }
        if let Some(what) = unreadable_categories.get(&normalised) {
            let error = unreadable_error(&normalised, what);
            results.push(CheckItem {
                recipient: normalised,
                allowed: false,
                reason: CheckReason::Invalid(InvalidRecipient::UnreadableState),
                error: Some(error.body),
            });
            continue;
        }
        let d = check(channel, state.as_ref(), cat, policy);
        results.push(CheckItem {
            recipient: normalised,
            allowed: d.allowed,
            reason: CheckReason::Decided(d.reason),
            error: None,
        });
    }
    let allowed_count = results.iter().filter(|r| r.allowed).count();
    let denied_count = results.len() - allowed_count;
    for (allowed, n) in [(true, allowed_count), (false, denied_count)] {
        if n > 0 {
            hub.metrics.inc(
                "iyshub_checks_total",
                &[
                    ("brand", brand.brand_code.to_string()),
                    ("allowed", allowed.to_string()),
                ],
                n as u64,
            );
        }
    }
    Ok(Json(if single {
        let item = results
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::internal("a check of one recipient without its answer"))?;
        CheckResult::One(CheckOneResult { item, channel })
    } else if let Some(p) = profile {
        CheckResult::Profile(CheckProfileResult {
            channel,
            allowed_count,
            denied_count,
            results,
            profile_id: p.to_owned(),
            allowed: allowed_count > 0,
        })
    } else {
        CheckResult::Many(CheckManyResult {
            channel,
            allowed_count,
            denied_count,
            results,
        })
    }))
}
