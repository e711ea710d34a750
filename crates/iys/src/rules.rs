//! IYS's validation and state-transition rules, checked in IYS's order.
//!
//! Stages, as IYS applies them (REFERENCE.md Appendix C): unknown fields (H118) → presence
//! (H110–H114) → enum values (H115–H117, H119) → formats (H120/H121/H160, H157/H158, dealer
//! fields) → date bounds (H156, H155, H162, H467) → source/status fit (H408). The first stage that
//! finds a problem answers, with every problem it found; later stages are not run, because their
//! checks need the earlier ones to have passed. The state rules ([`check_transition`]) run
//! against the stored consent afterwards: H175, H462/H463, H174, H178.
//!
//! Choices where IYS's documents are silent (REFERENCE.md §8): an equal consentDate is not
//! "older" (only strictly older is H178); `HS_2015` consents are exempt from H467 (their date is
//! fixed to 2015-05-01 by H155, so the rule could never pass); a bulk list with any invalid item
//! is refused as a whole, each item's errors carrying its `index`; a TACIR consent's optional
//! `source`/`consentDate` sent as `null` or `""` is an invalid value (H119/H158), since IYS
//! refuses empty optional fields but names no code for these two.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};

use crate::calendar::EveRule;
use crate::consent_date::{ConsentDate, ConsentDateError};
use crate::enums::{ConsentStatus, ConsentType, HsSource, RecipientType, Source};
use crate::error::{IysError, Location};
use crate::hcode::HCode;
use crate::recipient::Recipient;
use crate::wire::Consent;

/// The body fields IYS accepts on a consent (H118 lists exactly these).
pub const CONSENT_FIELDS: [&str; 8] = [
    "recipientType",
    "retailerAccess",
    "recipient",
    "retailerCode",
    "source",
    "type",
    "consentDate",
    "status",
];
/// Most consents in one bulk request (H091) and recipients in one multi-status query.
pub const MAX_BULK: usize = 1000;
/// Most dealers in `retailerAccess` (H126).
pub const MAX_RETAILER_ACCESS: usize = 100;
/// How many business days old a consent may be when it reaches IYS (H467).
pub const DEADLINE_BUSINESS_DAYS: u32 = 3;

/// What the rules need to know about the world.
#[derive(Debug, Clone, Copy)]
pub struct RuleContext {
    /// IYS's clock.
    pub now: Timestamp,
    /// How far in the future a consentDate may be before H162 (clock skew between systems).
    pub future_tolerance: SignedDuration,
    /// Whether H467 (older than 3 business days) refuses the consent. IYS does; the hub records
    /// such consents anyway and lets IYS answer, so the late answer is on record.
    pub enforce_deadline: bool,
    /// How a half-day eve counts towards H467's 3 business days. IYS does not say; the default
    /// is the earliest reading (a full business day).
    pub deadline_eves: EveRule,
}

impl RuleContext {
    pub fn at(now: Timestamp) -> Self {
        RuleContext {
            now,
            future_tolerance: SignedDuration::ZERO,
            enforce_deadline: true,
            deadline_eves: EveRule::BusinessDay,
        }
    }
}

/// A consent that passed IYS's field validation: typed, normalised, ready for the state rules.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidConsent {
    pub recipient: Recipient,
    pub consent_type: ConsentType,
    pub recipient_type: RecipientType,
    pub status: ConsentStatus,
    /// Absent only on a TACIR consent (allowed on its first insert, H463 on updates).
    pub source: Option<HsSource>,
    /// Absent only on a TACIR consent (allowed on its first insert, H462 on updates).
    pub consent_date: Option<ConsentDate>,
    pub retailer_code: Option<u64>,
    pub retailer_access: Option<Vec<u64>>,
}

impl ValidConsent {
    /// The wire body for IYS's add endpoints.
    pub fn to_wire(&self) -> Consent {
        Consent {
            recipient: self.recipient.as_str().to_owned(),
            consent_type: self.consent_type,
            source: self.source.map(Source::Hs),
            status: self.status,
            consent_date: self.consent_date,
            recipient_type: Some(self.recipient_type),
            retailer_code: self.retailer_code,
            retailer_access: self.retailer_access.clone(),
        }
    }

    /// The identity of a consent in IYS, without the brand.
    pub fn key(&self) -> (&Recipient, RecipientType, ConsentType) {
        (&self.recipient, self.recipient_type, self.consent_type)
    }
}

/// Validates one consent body exactly as IYS's add endpoints do.
pub fn validate_consent(body: &Value, ctx: &RuleContext) -> Result<ValidConsent, Vec<IysError>> {
    let Some(obj) = body.as_object() else {
        return Err(vec![IysError::new(HCode::H085)]);
    };
    Fields { obj }.validate(ctx)
}

/// Validates a bulk body (a bare array of ≤ 1000 consents, no duplicate recipientType + type +
/// recipient). Errors carry the item's `index`.
pub fn validate_bulk(body: &Value, ctx: &RuleContext) -> Result<Vec<ValidConsent>, Vec<IysError>> {
    let Some(items) = body.as_array() else {
        return Err(vec![IysError::new(HCode::H092)]);
    };
    if items.is_empty() {
        return Err(vec![IysError::new(HCode::H092)]);
    }
    if items.len() > MAX_BULK {
        return Err(vec![IysError::new(HCode::H091)]);
    }
    let mut errors = Vec::new();
    let mut valid = Vec::with_capacity(items.len());
    let mut seen = std::collections::HashSet::new();
    for (index, item) in items.iter().enumerate() {
        match validate_consent(item, ctx) {
            Ok(c) => {
                let key = (c.recipient.clone(), c.recipient_type, c.consent_type);
                if !seen.insert(key) {
                    errors.push(
                        IysError::new(HCode::H194)
                            .with_index(index)
                            .at("recipient")
                            .with_value(c.recipient.as_str()),
                    );
                }
                valid.push(c);
            }
            Err(errs) => errors.extend(errs.into_iter().map(|e| e.with_index(index))),
        }
    }
    if errors.is_empty() {
        Ok(valid)
    } else {
        Err(errors)
    }
}

/// The stages after the formats, on values already typed: date bounds (H156, H155, H162, H467),
/// then the source's fit with the status (H408). [`validate_consent`] ends with them; a caller
/// that parsed a consent into typed values itself (the hub's API) runs them without a JSON body.
pub fn after_formats(
    consent_date: Option<ConsentDate>,
    source: Option<HsSource>,
    status: ConsentStatus,
    ctx: &RuleContext,
) -> Result<(), Vec<IysError>> {
    if let Some(date) = consent_date {
        date_bounds_all(date, source, ctx)?;
    }
    if source == Some(HsSource::HsKarar) && status != ConsentStatus::Ret {
        return Err(vec![
            IysError::new(HCode::H408)
                .at("status")
                .with_value(status.as_str()),
        ]);
    }
    Ok(())
}

/// The stored consent the state rules compare against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredConsent {
    pub status: ConsentStatus,
    pub consent_date: Option<ConsentDate>,
}

/// IYS's state rules for a new movement on a consent that is `current` (None: never seen).
pub fn check_transition(
    current: Option<&StoredConsent>,
    next: &ValidConsent,
) -> Result<(), IysError> {
    let Some(current) = current else {
        if next.status == ConsentStatus::Ret {
            return Err(IysError::new(HCode::H175));
        }
        return Ok(());
    };
    if next.recipient_type == RecipientType::Tacir {
        if next.consent_date.is_none() {
            return Err(IysError::new(HCode::H462));
        }
        if next.source.is_none() {
            return Err(IysError::new(HCode::H463));
        }
    }
    if current.status == ConsentStatus::Ret && next.status == ConsentStatus::Ret {
        return Err(IysError::new(HCode::H174));
    }
    if let (Some(stored), Some(new)) = (current.consent_date, next.consent_date)
        && new < stored
    {
        return Err(IysError::new(HCode::H178));
    }
    Ok(())
}

/// The fields of one consent body, read stage by stage.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
}

/// A required text field: absent, `null` and `""` all count as missing.
fn present<'v>(obj: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    match obj.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(v) => Some(v),
    }
}

fn enum_error(code: HCode, field: &str, value: &Value) -> IysError {
    IysError::new(code).at(field).with_value(value.clone())
}

impl Fields<'_> {
    fn validate(&self, ctx: &RuleContext) -> Result<ValidConsent, Vec<IysError>> {
        self.unknown_fields()?;
        self.presence()?;
        let (consent_type, recipient_type, status, source) = self.enums()?;
        let (recipient, consent_date, retailer_code, retailer_access) =
            self.formats(consent_type)?;
        after_formats(consent_date, source, status, ctx)?;
        Ok(ValidConsent {
            recipient,
            consent_type,
            recipient_type,
            status,
            source,
            consent_date,
            retailer_code,
            retailer_access,
        })
    }

    fn unknown_fields(&self) -> Result<(), Vec<IysError>> {
        let errors: Vec<_> = self
            .obj
            .iter()
            .filter(|(k, _)| !CONSENT_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| {
                let message = HCode::H118.message_tr().replacen("Alan değeri", k, 1);
                IysError::new(HCode::H118)
                    .with_message(message)
                    .at(k)
                    .with_value(v.clone())
            })
            .collect();
        errors.is_empty().then_some(()).ok_or(errors)
    }

    fn is_tacir(&self) -> bool {
        self.obj.get("recipientType").and_then(Value::as_str) == Some("TACIR")
    }

    /// A field sent as `null` or `""`. IYS: optional fields must be left out, not sent empty
    /// ("hatalı isteğe neden olmaktadır"); required ones are already missing (H110–H114).
    fn blank(&self, name: &str) -> Option<&Value> {
        self.obj
            .get(name)
            .filter(|v| v.is_null() || v.as_str() == Some(""))
    }

    fn presence(&self) -> Result<(), Vec<IysError>> {
        // TACIR consents may omit source and consentDate on their first insert.
        let optional_for_tacir = self.is_tacir();
        let required = [
            ("status", HCode::H110, false),
            ("type", HCode::H111, false),
            ("consentDate", HCode::H112, optional_for_tacir),
            ("source", HCode::H113, optional_for_tacir),
            ("recipient", HCode::H114, false),
        ];
        let errors: Vec<_> = required
            .iter()
            .filter(|(name, _, optional)| !optional && present(self.obj, name).is_none())
            .map(|(name, code, _)| IysError::new(*code).at(name))
            .collect();
        errors.is_empty().then_some(()).ok_or(errors)
    }

    #[allow(clippy::type_complexity)]
    fn enums(
        &self,
    ) -> Result<(ConsentType, RecipientType, ConsentStatus, Option<HsSource>), Vec<IysError>> {
        let mut errors = Vec::new();
        let parse = |name: &str, code: HCode, errors: &mut Vec<IysError>| -> Option<String> {
            let v = present(self.obj, name)?;
            match v.as_str() {
                Some(s) => Some(s.to_owned()),
                None => {
                    errors.push(enum_error(code, name, v));
                    None
                }
            }
        };
        let status = parse("status", HCode::H115, &mut errors).and_then(|s| {
            check(
                s.parse::<ConsentStatus>(),
                HCode::H115,
                "status",
                &s,
                &mut errors,
            )
        });
        let consent_type = parse("type", HCode::H117, &mut errors).and_then(|s| {
            check(
                s.parse::<ConsentType>(),
                HCode::H117,
                "type",
                &s,
                &mut errors,
            )
        });
        let recipient_type = match self.obj.get("recipientType") {
            None => Some(RecipientType::default()),
            Some(Value::String(s)) => check(
                s.parse::<RecipientType>(),
                HCode::H116,
                "recipientType",
                s,
                &mut errors,
            ),
            Some(other) => {
                errors.push(enum_error(HCode::H116, "recipientType", other));
                None
            }
        };
        if let Some(blank) = self.blank("source") {
            // Only a TACIR consent gets here: elsewhere a blank source is missing (H113).
            errors.push(enum_error(HCode::H119, "source", blank));
        }
        let source = parse("source", HCode::H119, &mut errors).map(|s| {
            check(
                s.parse::<HsSource>(),
                HCode::H119,
                "source",
                &s,
                &mut errors,
            )
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok((
            consent_type.expect("checked above"),
            recipient_type.expect("checked above"),
            status.expect("checked above"),
            source.flatten(),
        ))
    }

    #[allow(clippy::type_complexity)]
    fn formats(
        &self,
        consent_type: ConsentType,
    ) -> Result<
        (
            Recipient,
            Option<ConsentDate>,
            Option<u64>,
            Option<Vec<u64>>,
        ),
        Vec<IysError>,
    > {
        let mut errors = Vec::new();
        let raw_recipient = present(self.obj, "recipient").expect("presence checked");
        let recipient = match raw_recipient.as_str() {
            Some(s) => Recipient::parse_iys_for(s, consent_type)
                .map_err(|e| errors.extend(e.iys_errors("recipient")))
                .ok(),
            None => {
                let code = if consent_type.needs_phone() {
                    HCode::H121
                } else {
                    HCode::H120
                };
                errors.push(enum_error(code, "recipient", raw_recipient));
                None
            }
        };
        if let Some(blank) = self.blank("consentDate") {
            // Only a TACIR consent gets here: elsewhere a blank date is missing (H112).
            errors.push(enum_error(HCode::H158, "consentDate", blank));
        }
        let consent_date = match present(self.obj, "consentDate") {
            None => None,
            Some(Value::String(s)) => match ConsentDate::parse(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    errors.push(date_error(&e));
                    None
                }
            },
            Some(other) => {
                errors.push(enum_error(HCode::H158, "consentDate", other));
                None
            }
        };
        let retailer_code = match self.obj.get("retailerCode") {
            None => None,
            Some(Value::Number(n)) if n.as_u64().is_some_and(|c| c > 0 && c <= 99_999_999) => {
                n.as_u64()
            }
            Some(other) => {
                errors.push(
                    IysError::new(HCode::H267)
                        .at("retailerCode")
                        .with_value(other.clone()),
                );
                None
            }
        };
        let retailer_access = match self.obj.get("retailerAccess") {
            None => None,
            Some(Value::Array(items)) if items.is_empty() => {
                errors.push(IysError::new(HCode::H163).at("retailerAccess"));
                None
            }
            Some(Value::Array(items)) if items.len() > MAX_RETAILER_ACCESS => {
                errors.push(IysError::new(HCode::H126).at("retailerAccess"));
                None
            }
            Some(Value::Array(items)) => {
                let codes: Vec<Option<u64>> = items.iter().map(Value::as_u64).collect();
                if let Some(bad) = codes.iter().position(Option::is_none) {
                    errors.push(
                        IysError::new(HCode::H180)
                            .at_location(Location::indexed("retailerAccess", bad))
                            .with_value(items[bad].clone()),
                    );
                    None
                } else {
                    Some(codes.into_iter().flatten().collect())
                }
            }
            Some(other) => {
                errors.push(
                    IysError::new(HCode::H163)
                        .at("retailerAccess")
                        .with_value(other.clone()),
                );
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok((
            recipient.expect("checked above"),
            consent_date,
            retailer_code,
            retailer_access,
        ))
    }
}

fn check<T>(
    parsed: Result<T, crate::enums::InvalidEnumValue>,
    code: HCode,
    field: &str,
    raw: &str,
    errors: &mut Vec<IysError>,
) -> Option<T> {
    parsed
        .map_err(|_| errors.push(IysError::new(code).at(field).with_value(raw)))
        .ok()
}

fn date_error(e: &ConsentDateError) -> IysError {
    IysError::new(e.hcode())
        .at("consentDate")
        .with_value(e.value())
}

/// H156 (before 2015-05-01), H155 (HS_2015 with another date), H162 (future), H467 (older than
/// 3 business days): the first that applies (see [`date_bounds_all`]).
pub fn date_bounds(
    date: ConsentDate,
    source: Option<HsSource>,
    ctx: &RuleContext,
) -> Result<(), IysError> {
    date_bounds_all(date, source, ctx).map_err(|mut errors| errors.swap_remove(0))
}

/// The date bounds as IYS answers them: the first that applies, except that an `HS_2015`
/// consent dated before 2015-05-01 breaks two at once and gets H156 and H155 together (IYS's
/// own example answers one such item with both). The error list is never empty.
pub fn date_bounds_all(
    date: ConsentDate,
    source: Option<HsSource>,
    ctx: &RuleContext,
) -> Result<(), Vec<IysError>> {
    let err = |code: HCode| {
        IysError::new(code)
            .at("consentDate")
            .with_value(date.to_string())
    };
    let hs_2015 = source == Some(HsSource::Hs2015);
    if date < ConsentDate::IYS_EPOCH {
        let mut errors = vec![err(HCode::H156)];
        if hs_2015 {
            errors.push(err(HCode::H155));
        }
        return Err(errors);
    }
    if hs_2015 {
        return if date == ConsentDate::IYS_EPOCH {
            Ok(())
        } else {
            Err(vec![err(HCode::H155)])
        };
    }
    let latest = ctx
        .now
        .saturating_add(ctx.future_tolerance)
        .unwrap_or(Timestamp::MAX);
    // Saturating: a date past jiff's last instant is simply in the future.
    if date.to_timestamp() > latest {
        return Err(vec![err(HCode::H162)]);
    }
    if ctx.enforce_deadline && is_past_deadline_with(date, ctx.now, ctx.deadline_eves) {
        return Err(vec![err(HCode::H467)]);
    }
    Ok(())
}

/// Whether a consent of `date` may be refused at `now` as older than 3 business days, on the
/// earliest plausible reading (an eve is a full business day).
pub fn is_past_deadline(date: ConsentDate, now: Timestamp) -> bool {
    is_past_deadline_with(date, now, EveRule::BusinessDay)
}

/// Whether IYS would refuse a consent of `date` at `now` as older than 3 business days, eves
/// counting as `eves` says.
pub fn is_past_deadline_with(date: ConsentDate, now: Timestamp, eves: EveRule) -> bool {
    date.iys_deadline_with(eves).to_timestamp() < now
}
