//! Turning request bodies into ledger changes: every field checked, each error naming the field,
//! the value and the rule. IYS channels get IYS's own rules and codes before any quota is spent.

use hub_core::{BrandCode, Change, Channel, ConsentKey, Origin};
use iys::rules::RuleContext;
use iys::{ConsentDate, ConsentStatus, HCode, HsSource, Recipient, RecipientType, Source};
use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Fields a change may carry (IYS's names plus the hub's own).
pub const CHANGE_FIELDS: [&str; 12] = [
    "recipient",
    "type",
    "channel",
    "recipientType",
    "status",
    "consentDate",
    "source",
    "category",
    "profileId",
    "evidence",
    "hold",
    "actor",
];

/// Longest opaque recipient (device tokens) and identifiers.
const MAX_ID: usize = 256;

fn iys_error(code: HCode, field: &str, value: Option<&Value>) -> ApiError {
    let mut e = iys::IysError::new(code).at(field);
    if let Some(v) = value {
        e = e.with_value(v.clone());
    }
    ApiError::from_iys(&e)
}

fn text<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(ApiError::unprocessable(
            "invalid_type",
            format!("{field} must be a string"),
        )
        .field(field)
        .value(other.clone())),
    }
}

/// An identifier: 1–256 printable characters without spaces.
fn identifier(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match text(obj, field)? {
        None => Ok(None),
        Some(s)
            if !s.is_empty()
                && s.len() <= MAX_ID
                && !s.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Ok(Some(s.to_owned()))
        }
        Some(s) => Err(ApiError::unprocessable(
            "invalid_value",
            format!("{field} must be 1–{MAX_ID} characters without spaces"),
        )
        .field(field)
        .value(s)),
    }
}

/// Parses one change. `now` is the hub's clock; `actor` the API key's name.
pub fn parse_change(
    v: &Value,
    brand: BrandCode,
    now: Timestamp,
    origin: Origin,
    actor: &str,
) -> Result<Change, ApiError> {
    let Some(obj) = v.as_object() else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "a change must be a JSON object",
        ));
    };
    if let Some(unknown) = obj.keys().find(|k| !CHANGE_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(
            "unknown_field",
            format!(
                "unknown field {unknown:?}; a change has: {}",
                CHANGE_FIELDS.join(", ")
            ),
        )
        .field(unknown.as_str()));
    }
    let channel = match (text(obj, "channel")?, text(obj, "type")?) {
        (Some(c), Some(t)) if c != t => {
            return Err(ApiError::unprocessable(
                "invalid_value",
                "channel and type disagree; give one",
            )
            .field("channel")
            .value(c));
        }
        (Some(c), _) | (None, Some(c)) => c.parse::<Channel>().map_err(|e| {
            if text(obj, "type").ok().flatten().is_some() {
                iys_error(HCode::H117, "type", obj.get("type"))
            } else {
                ApiError::unprocessable("invalid_value", e.to_string())
                    .field("channel")
                    .value(c)
            }
        })?,
        (None, None) => {
            return Err(ApiError::unprocessable("missing_field", "type (MESAJ, ARAMA, EPOSTA) or channel (PUSH, WEB_PUSH, IN_APP, WHATSAPP) is required").field("type"));
        }
    };
    let status: ConsentStatus = match text(obj, "status")? {
        None => return Err(iys_error(HCode::H110, "status", None)),
        Some(s) => s
            .parse()
            .map_err(|_| iys_error(HCode::H115, "status", obj.get("status")))?,
    };
    let recipient_type: RecipientType = match text(obj, "recipientType")? {
        None => RecipientType::default(),
        Some(s) => s
            .parse()
            .map_err(|_| iys_error(HCode::H116, "recipientType", obj.get("recipientType")))?,
    };
    let category = identifier(obj, "category")?;
    let profile_id = identifier(obj, "profileId")?;
    let recipient = match text(obj, "recipient")? {
        Some(r) => normalise_recipient(r, channel)?,
        None if category.is_some() && profile_id.is_some() => {
            format!("profile:{}", profile_id.as_deref().unwrap_or_default())
        }
        None => return Err(iys_error(HCode::H114, "recipient", None)),
    };
    let consent_date = match text(obj, "consentDate")? {
        None => ConsentDate::from_timestamp(now),
        Some(s) => ConsentDate::parse(s)
            .map_err(|e| iys_error(e.hcode(), "consentDate", obj.get("consentDate")))?,
    };
    let source = match (text(obj, "source")?, channel.iys_type()) {
        (Some(s), _) => Source::Hs(
            s.parse::<HsSource>()
                .map_err(|_| iys_error(HCode::H119, "source", obj.get("source")))?,
        ),
        (None, Some(_)) => return Err(iys_error(HCode::H113, "source", None)),
        // Hub-only channels: an electronic environment of the brand unless told otherwise.
        (None, None) => Source::Hs(HsSource::HsEortam),
    };
    // IYS's own rules (dates, HS_2015, HS_KARAR), without H467: late consents are recorded and
    // IYS gives its answer.
    if let (Some(t), false) = (channel.iys_type(), recipient.starts_with("profile:")) {
        // What `validate_consent` would find in this change's IYS body, without building one:
        // every field is typed and present already, so only the recipient's IYS format and the
        // stages after the formats can refuse it (the first error answers, as IYS's would).
        let ctx = RuleContext {
            enforce_deadline: false,
            ..RuleContext::at(now)
        };
        let errors = match Recipient::parse_iys_for(&recipient, t) {
            Err(e) => e.iys_errors("recipient"),
            Ok(_) => iys::rules::after_formats(Some(consent_date), source.as_hs(), status, &ctx)
                .err()
                .unwrap_or_default(),
        };
        if let Some(first) = errors.first() {
            return Err(ApiError::from_iys(first));
        }
    } else {
        iys::rules::date_bounds(
            consent_date,
            source.as_hs(),
            &RuleContext {
                enforce_deadline: false,
                ..RuleContext::at(now)
            },
        )
        .map_err(|e| ApiError::from_iys(&e))?;
    }
    let evidence = match obj.get("evidence") {
        None | Some(Value::Null) => None,
        Some(e @ Value::Object(_)) if e.to_string().len() <= 8192 => Some(e.clone()),
        Some(other) => {
            return Err(ApiError::unprocessable(
                "invalid_value",
                "evidence must be a JSON object of at most 8 KiB",
            )
            .field("evidence")
            .value(other.clone()));
        }
    };
    let hold = match obj.get("hold") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(
                ApiError::unprocessable("invalid_type", "hold must be true or false")
                    .field("hold")
                    .value(other.clone()),
            );
        }
    };
    let actor = match text(obj, "actor")? {
        Some(a) if a.len() <= 200 => format!("{actor}:{a}"),
        Some(a) => {
            return Err(ApiError::unprocessable(
                "invalid_value",
                "actor must be at most 200 characters",
            )
            .field("actor")
            .value(a));
        }
        None => actor.to_owned(),
    };
    Ok(Change {
        key: ConsentKey {
            brand,
            recipient,
            recipient_type,
            channel,
        },
        status,
        consent_date,
        source,
        origin,
        actor: Some(actor),
        evidence,
        category,
        profile_id,
        hold,
        iys_transaction_id: None,
        iys_creation_date: None,
        received_at: now,
    })
}

/// The stored form of a recipient on a channel: E.164 for phones, lower-case e-mails, and on
/// PUSH/WEB_PUSH/IN_APP also opaque device or user ids.
pub fn normalise_recipient(input: &str, channel: Channel) -> Result<String, ApiError> {
    let refused = |e: iys::RecipientError| {
        let errors = e.iys_errors("recipient");
        ApiError::from_iys(errors.last().unwrap_or(&iys::IysError::new(HCode::H122)))
    };
    match channel {
        Channel::Iys(t) => Recipient::normalise_for(input, t)
            .map(|r| r.as_str().to_owned())
            .map_err(refused),
        Channel::Whatsapp => iys::Phone::normalise(input)
            .map(|p| p.as_str().to_owned())
            .map_err(refused),
        Channel::Push | Channel::WebPush | Channel::InApp => match Recipient::normalise(input) {
            Ok(r) => Ok(r.as_str().to_owned()),
            Err(_) => {
                let t = input.trim();
                if t.is_empty()
                    || t.len() > MAX_ID
                    || t.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    Err(ApiError::unprocessable("invalid_value", format!("recipient must be a phone, an e-mail or a device id of 1–{MAX_ID} characters without spaces"))
                        .field("recipient")
                        .value(input))
                } else {
                    Ok(t.to_owned())
                }
            }
        },
    }
}

/// A recipient as typed in a URL or a check: normalised when it is a phone or an e-mail.
pub fn lookup_form(input: &str) -> String {
    Recipient::normalise(input)
        .map(|r| r.as_str().to_owned())
        .unwrap_or_else(|_| input.trim().to_owned())
}
