//! Domain types, parsed at the edges ("parse, don't validate").

use std::fmt;
use std::str::FromStr;

use iys::{ConsentDate, ConsentStatus, ConsentType, RecipientType, Source};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A value that is not one of a field's allowed values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {field}: expected {expected}")]
pub struct InvalidValue {
    pub field: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// `a, b or c`: a field's allowed values as [`InvalidValue::expected`] says them.
pub fn one_of(values: &[&str]) -> String {
    match values {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// A brand's IYS number (also its key in the hub).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BrandCode(pub u64);

impl fmt::Display for BrandCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for BrandCode {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(BrandCode)
            .ok_or_else(|| InvalidValue {
                field: "brandCode",
                value: s.to_owned(),
                expected: "a positive integer (the brand's IYS number)",
            })
    }
}

/// How the hub and IYS share mastership for a brand.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Default,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[serde(rename_all = "lowercase")]
#[strum(
    serialize_all = "lowercase",
    parse_err_ty = InvalidValue,
    parse_err_fn = invalid_mode
)]
pub enum Mode {
    /// IYS is the master: only recipients IYS already has are updated there; RETs always go.
    Sync,
    /// The hub is the master: every IYS-channel change is sent.
    #[default]
    Integrator,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

fn invalid_mode(s: &str) -> InvalidValue {
    InvalidValue {
        field: "mode",
        value: s.to_owned(),
        expected: "sync or integrator",
    }
}

/// A channel: IYS's three, or one only the hub tracks (never sent to IYS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Iys(ConsentType),
    Push,
    WebPush,
    InApp,
    Whatsapp,
}

impl Channel {
    pub const ALL: [Channel; 7] = [
        Channel::Iys(ConsentType::Mesaj),
        Channel::Iys(ConsentType::Arama),
        Channel::Iys(ConsentType::Eposta),
        Channel::Push,
        Channel::WebPush,
        Channel::InApp,
        Channel::Whatsapp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Iys(t) => t.as_str(),
            Channel::Push => "PUSH",
            Channel::WebPush => "WEB_PUSH",
            Channel::InApp => "IN_APP",
            Channel::Whatsapp => "WHATSAPP",
        }
    }

    /// The IYS `type`, for channels IYS knows.
    pub fn iys_type(self) -> Option<ConsentType> {
        match self {
            Channel::Iys(t) => Some(t),
            _ => None,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| InvalidValue {
                field: "channel",
                value: s.to_owned(),
                expected: "MESAJ, ARAMA, EPOSTA, PUSH, WEB_PUSH, IN_APP or WHATSAPP",
            })
    }
}

impl Serialize for Channel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Who or what made a change.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(
    serialize_all = "snake_case",
    parse_err_ty = InvalidValue,
    parse_err_fn = invalid_origin
)]
pub enum Origin {
    Api,
    Import,
    Console,
    IysPull,
    IysPush,
    Reconcile,
    ModeSwitch,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Movements that came from IYS itself (its changes feed, a push, or its daily movement
    /// file): IYS's truth, never echoed back.
    pub fn is_from_iys(self) -> bool {
        matches!(self, Origin::IysPull | Origin::IysPush | Origin::Reconcile)
    }
}

fn invalid_origin(s: &str) -> InvalidValue {
    InvalidValue {
        field: "origin",
        value: s.to_owned(),
        expected: "api, import, console, iys_pull, iys_push, reconcile or mode_switch",
    }
}

/// Where a consent stands with IYS.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(
    serialize_all = "snake_case",
    parse_err_ty = InvalidValue,
    parse_err_fn = invalid_iys_state
)]
pub enum IysState {
    /// IYS has this status (acknowledged with a transactionId, or learned from IYS).
    InIys,
    /// Waiting to be sent to IYS.
    Pending,
    /// Not sent, on purpose: sync mode and IYS does not have the recipient.
    Held,
    /// IYS refused it (see the error code).
    Rejected,
    /// IYS answered that it has no record (H175 to a RET): nothing to withdraw there.
    NotInIys,
    /// A hub-only channel.
    LocalOnly,
}

impl IysState {
    pub const ALL: [IysState; 6] = [
        IysState::InIys,
        IysState::Pending,
        IysState::Held,
        IysState::Rejected,
        IysState::NotInIys,
        IysState::LocalOnly,
    ];

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

fn invalid_iys_state(s: &str) -> InvalidValue {
    InvalidValue {
        field: "iysState",
        value: s.to_owned(),
        expected: "in_iys, pending, held, rejected, not_in_iys or local_only",
    }
}

/// The identity of a consent in the hub.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentKey {
    pub brand: BrandCode,
    /// Normalised: E.164 phone, lower-case e-mail, or an opaque id on hub-only channels.
    pub recipient: String,
    pub recipient_type: RecipientType,
    pub channel: Channel,
}

/// One permission change, validated and normalised, ready for the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub key: ConsentKey,
    pub status: ConsentStatus,
    pub consent_date: ConsentDate,
    pub source: Source,
    pub origin: Origin,
    pub actor: Option<String>,
    pub evidence: Option<serde_json::Value>,
    /// A message category this change is about (category consent) instead of the channel.
    pub category: Option<String>,
    pub profile_id: Option<String>,
    /// `Some(true)` places a manual hold, `Some(false)` lifts it.
    pub hold: Option<bool>,
    /// IYS's transactionId when the change came from IYS.
    pub iys_transaction_id: Option<String>,
    /// IYS's creationDate when the change came from IYS: which day of IYS's movement file the
    /// movement belongs to (the reconciler compares day by day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iys_creation_date: Option<ConsentDate>,
    pub received_at: Timestamp,
}

/// Why a movement from IYS cannot enter the ledger (it is quarantined for a person instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("the recipient {0:?} is not a valid address for its type")]
    Recipient(String),
    #[error("the consentDate {0} is in the future")]
    Future(ConsentDate),
    #[error("the consentDate {0} is before 2015-05-01, when IYS began")]
    TooOld(ConsentDate),
    #[error("the transactionId is empty or longer than 128 characters")]
    TransactionId,
}

/// Splits movements from IYS into ledger changes and those set aside with the reason: ones that
/// do not decode, and ones the ledger must not take (see `Change::try_from_iys`).
pub fn screen_movements(
    brand: BrandCode,
    items: Vec<serde_json::Value>,
    origin: Origin,
    now: Timestamp,
) -> (Vec<Change>, Vec<(serde_json::Value, String)>) {
    let mut changes = Vec::with_capacity(items.len());
    let mut set_aside = Vec::new();
    for item in items {
        // PostgreSQL's text cannot hold NUL: such a movement would fail the whole page, for ever.
        if has_nul(&item) {
            set_aside.push((item, "text with the NUL character (U+0000)".to_owned()));
            continue;
        }
        // Decoded from a borrow: a clone of each movement's tree cost more than decoding it.
        let decoded = iys::wire::Movement::deserialize(&item)
            .map_err(|e| format!("not a movement IYS documents: {e}"))
            .and_then(|m| Change::try_from_iys(brand, &m, origin, now).map_err(|e| e.to_string()));
        match decoded {
            Ok(c) => changes.push(c),
            Err(reason) => set_aside.push((item, reason)),
        }
    }
    (changes, set_aside)
}

/// Whether any string or key in `v` holds the NUL character.
fn has_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(a) => a.iter().any(has_nul),
        serde_json::Value::Object(o) => o.iter().any(|(k, x)| k.contains('\0') || has_nul(x)),
        _ => false,
    }
}

/// Slack for a movement's consentDate ahead of the hub's clock (clocks differ a little).
const FUTURE_SLACK_SECS: i64 = 86_400;

impl Change {
    /// A movement from IYS as a ledger change, if the hub can take it: a readable recipient, a
    /// consentDate neither in the future (a day of slack) nor before IYS began. A movement that
    /// fails would otherwise pin the consent forever (a far-future date wins every ordering).
    pub fn try_from_iys(
        brand: BrandCode,
        m: &iys::wire::Movement,
        origin: Origin,
        now: Timestamp,
    ) -> Result<Change, Unusable> {
        if m.transaction_id.is_empty() || m.transaction_id.len() > 128 {
            return Err(Unusable::TransactionId);
        }
        if iys::Recipient::normalise_for(&m.recipient, m.consent_type).is_err() {
            return Err(Unusable::Recipient(m.recipient.clone()));
        }
        let date = m.consent_date.unwrap_or(m.creation_date);
        let limit = now
            .saturating_add(jiff::SignedDuration::from_secs(FUTURE_SLACK_SECS))
            .unwrap_or(now);
        if date.to_timestamp() > limit {
            return Err(Unusable::Future(date));
        }
        if date < ConsentDate::IYS_EPOCH {
            return Err(Unusable::TooOld(date));
        }
        Ok(Change::from_iys(brand, m, origin, now))
    }

    /// A movement IYS reported (changes feed or push) as a ledger change. The recipient is
    /// normalised like the hub's own (IYS's form already is; this only guards odd values).
    pub fn from_iys(
        brand: BrandCode,
        m: &iys::wire::Movement,
        origin: Origin,
        now: Timestamp,
    ) -> Change {
        let recipient = iys::Recipient::normalise_for(&m.recipient, m.consent_type)
            .map(|r| r.as_str().to_owned())
            .unwrap_or_else(|_| m.recipient.clone());
        Change {
            key: ConsentKey {
                brand,
                recipient,
                recipient_type: m.recipient_type,
                channel: Channel::Iys(m.consent_type),
            },
            status: m.status,
            // TACIR records may come without a consentDate; IYS's creationDate stands in.
            consent_date: m.consent_date.unwrap_or(m.creation_date),
            source: m.source.clone(),
            origin,
            actor: Some("iys".into()),
            evidence: m
                .citizen_name
                .as_ref()
                .map(|n| serde_json::json!({ "citizenName": n })),
            category: None,
            profile_id: None,
            hold: None,
            iys_transaction_id: Some(m.transaction_id.clone()),
            iys_creation_date: Some(m.creation_date),
            received_at: now,
        }
    }
}

/// The current state of one consent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentState {
    pub status: ConsentStatus,
    pub consent_date: ConsentDate,
    pub source: Source,
    pub last_event_id: i64,
    pub iys_state: IysState,
    pub iys_error: Option<String>,
    /// Equal consentDates with different statuses met: RET won; a person should look.
    pub conflict: bool,
    /// A manual block by an agent: checks deny until an agent lifts it.
    pub hold: bool,
    /// IYS's 3-business-day deadline for the pending change.
    pub deadline: Option<Timestamp>,
    /// Whether IYS is known to have a record for this consent (from a pull, a push, an accepted
    /// send or a status query). Sync mode sends ONAYs only for such records.
    pub iys_known: bool,
    pub updated_at: Timestamp,
}

/// A message category of a brand (e.g. `campaigns`, `news`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[serde(rename_all = "lowercase")]
#[strum(
    serialize_all = "lowercase",
    parse_err_ty = InvalidValue,
    parse_err_fn = invalid_category_kind
)]
pub enum CategoryKind {
    /// Needs marketing consent on the channel.
    Marketing,
    /// Service messages: no marketing consent needed, a manual hold still applies.
    Transactional,
}

impl CategoryKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

fn invalid_category_kind(s: &str) -> InvalidValue {
    InvalidValue {
        field: "kind",
        value: s.to_owned(),
        expected: "marketing or transactional",
    }
}

#[cfg(test)]
mod tests {
    use strum::VariantNames;

    use super::*;

    /// Each text reads back as its value; anything else is refused naming the allowed values,
    /// listed as the enum declares them.
    fn round_trip<T>(values: &[T], expected: &str)
    where
        T: Copy
            + PartialEq
            + fmt::Debug
            + fmt::Display
            + FromStr<Err = InvalidValue>
            + VariantNames,
    {
        for v in values {
            assert_eq!(v.to_string().parse::<T>(), Ok(*v));
        }
        let names: Vec<String> = values.iter().map(ToString::to_string).collect();
        assert_eq!(names, T::VARIANTS);
        let err = "nope".parse::<T>().unwrap_err();
        assert_eq!((err.value.as_str(), err.expected), ("nope", expected));
        assert_eq!(err.expected, one_of(T::VARIANTS));
    }

    #[test]
    fn texts_are_the_stored_and_api_forms() {
        round_trip(&[Mode::Sync, Mode::Integrator], "sync or integrator");
        assert_eq!(
            "SYNC".parse::<Mode>().unwrap_err().to_string(),
            "\"SYNC\" is not a valid mode: expected sync or integrator"
        );
        round_trip(
            &[
                Origin::Api,
                Origin::Import,
                Origin::Console,
                Origin::IysPull,
                Origin::IysPush,
                Origin::Reconcile,
                Origin::ModeSwitch,
            ],
            "api, import, console, iys_pull, iys_push, reconcile or mode_switch",
        );
        round_trip(
            &IysState::ALL,
            "in_iys, pending, held, rejected, not_in_iys or local_only",
        );
        round_trip(
            &[CategoryKind::Marketing, CategoryKind::Transactional],
            "marketing or transactional",
        );
        assert_eq!(
            serde_json::to_value([IysState::NotInIys]).unwrap(),
            serde_json::json!(["not_in_iys"])
        );
    }
}
