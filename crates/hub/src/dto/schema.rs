//! Schemas of the values the API shares (enums, dates, codes) for the generated OpenAPI
//! document. The domain types (`hub_core`, `hub_store`, `iys`) serialise these values; the types
//! here only describe them, each under its component name (`#/components/schemas/Channel`), and
//! take their allowed values from the domain where it lists them.

use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr};

/// A string schema with a description.
fn string(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

/// A string enum schema.
fn string_enum<'a>(values: impl IntoIterator<Item = &'a str>, description: &str) -> Schema {
    string(description)
        .enum_values(Some(values.into_iter().map(str::to_owned)))
        .into()
}

/// A schema-only type: `$name` is the component's name, `$schema` its schema.
macro_rules! schema {
    ($(#[$meta:meta])* $name:ident => $schema:expr) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                RefOr::T($schema)
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

schema!(
    /// A channel (IYS's three, and the hub's own).
    Channel => string_enum(
        hub_core::Channel::ALL.iter().map(|c| c.as_str()),
        "MESAJ (SMS), ARAMA (voice calls) and EPOSTA (e-mail) are IYS's channels: their changes \
         are sent to IYS. PUSH, WEB_PUSH, IN_APP and WHATSAPP are tracked by the hub only and \
         never sent to IYS.",
    )
);

schema!(
    /// IYS's `recipientType`.
    RecipientType => string_enum(
        iys::RecipientType::ALL.iter().map(|t| t.as_str()),
        "Individual (default) or merchant.",
    )
);

schema!(
    /// IYS's `status`.
    ConsentStatus => string_enum(
        iys::ConsentStatus::ALL.iter().map(|s| s.as_str()),
        "Permission given (ONAY) or refused/withdrawn (RET).",
    )
);

schema!(
    /// The sources a service provider may send.
    HsSource => string_enum(
        iys::HsSource::ALL.iter().map(|s| s.as_str()),
        "The 13 sources a service provider may send. HS_2015: approved before 1 May 2015 \
         (consentDate must be 2015-05-01 00:00:00). HS_KARAR: RET by the provider's own \
         decision (status must be RET).",
    )
);

schema!(
    /// Any source: a provider's or one IYS sets.
    Source => AnyOfBuilder::new()
        .item(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("HsSource")))
        .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some("^IYS_[A-Z0-9_]+$")))
        .description(Some(format!(
            "Where a consent came from: one of the HS_* sources, or an IYS_* source set by IYS \
             when a citizen acted through IYS's own channels (known: {}; unknown IYS_* values \
             are kept verbatim).",
            iys::IysSource::known().map(|s| s.as_str().to_owned()).collect::<Vec<_>>().join(", ")
        )))
        .into()
);

schema!(
    /// IYS's date and time.
    ConsentDate => string(
        "IYS's date: `YYYY-MM-DD HH:MM:SS`, Turkey's wall-clock time (Europe/Istanbul), to the \
         second.",
    )
    .pattern(Some("^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"))
    .examples(["2026-11-28 14:05:00"])
    .into()
);

schema!(
    /// An instant.
    Timestamp => string("An instant in RFC 3339, UTC (`Z`), with fractional seconds when non-zero.")
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .examples(["2026-11-28T11:05:12.481Z"])
        .into()
);

schema!(
    /// A day.
    Date => string("A day, `YYYY-MM-DD`.")
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
        .examples(["2026-11-28"])
        .into()
);

schema!(
    /// A brand's code.
    BrandCodeValue => ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .description(Some("A brand's IYS number (its key in the hub)."))
        .examples([600123])
        .into()
);

schema!(
    /// A brand's mode.
    Mode => string_enum(
        [hub_core::Mode::Sync, hub_core::Mode::Integrator].map(hub_core::Mode::as_str),
        "integrator (default): the hub is the master; every IYS-channel change is queued for \
         IYS. sync: IYS is the master; a RET is always queued, an ONAY only for recipients IYS \
         already has (others stay `held`).",
    )
);

schema!(
    /// Where a consent stands with IYS.
    IysState => string_enum(
        ["in_iys", "pending", "held", "rejected", "not_in_iys", "local_only"],
        "Where a consent stands with IYS. in_iys: IYS has this status. pending: waiting to be \
         sent to IYS. held: not sent on purpose (sync mode, IYS is not known to have the \
         recipient). rejected: IYS refused it (see iysError). not_in_iys: a RET IYS answered \
         with H175: it never had the recipient, so there is nothing to withdraw. local_only: a \
         hub-only channel.",
    )
);

schema!(
    /// The outbox row a write queued.
    OutboxState => string_enum(
        ["pending", "held"],
        "The state of the outbox row written for IYS.",
    )
);

schema!(
    /// Every state of an outbox row.
    OutboxRowState => string_enum(
        hub_store::OutboxState::ALL.map(hub_store::OutboxState::as_str),
        "An outbox row's state. pending: due for IYS (or waiting for a retry or a paused \
         dispatch). awaiting_result: in a bulk request whose result is due. held: sync mode, IYS \
         is not known to have the recipient. done: IYS has it (or answered H174/H175 to a RET). \
         failed: IYS refused it; see lastError; can be requeued. superseded: overtaken by a \
         later change or by a movement from IYS; never sent.",
    )
);

schema!(
    /// What the ledger did with a change.
    Outcome => string_enum(
        ["applied", "noop", "resent", "older", "conflict", "kept_local", "hold_changed", "duplicate"],
        "What the ledger did with a change. applied: the state changed. noop: same status, and \
         IYS holds it (or it is already on its way): nothing changed. resent: same status, but \
         IYS's last answer was a refusal or \"no record\": queued for IYS again. older: dated \
         before the stored consent, kept in the history only. conflict: same consentDate, \
         different status (RET wins; a person should look). kept_local: only in history \
         written by earlier versions, which kept a first RET locally; every such RET has since \
         been queued for IYS. hold_changed: only the manual hold changed. duplicate: a movement \
         from IYS already recorded (same transactionId and content; not produced by this API).",
    )
);

schema!(
    /// Who made a change.
    Origin => string_enum(
        ["api", "import", "console", "iys_pull", "iys_push", "reconcile", "mode_switch"],
        "Who or what made a change; `api` for this API.",
    )
);

schema!(
    /// Why a send is allowed or denied.
    CheckReason => string_enum(
        [
            "consent", "pending_allowed", "transactional", "no_consent", "rejected",
            "rejected_in_iys", "pending_iys", "held_not_in_iys", "iys_rejected", "hold",
            "category_rejected", "invalid_recipient", "unreadable_state",
        ],
        "Why a send is allowed or denied. Allowed: consent (ONAY and IYS has it, or a hub-only \
         channel), pending_allowed (ONAY on its way to IYS, lenient policy), transactional (a \
         transactional category). Denied: no_consent, rejected (RET from the provider), \
         rejected_in_iys (RET from the citizen through IYS), pending_iys (ONAY not yet in IYS, \
         strict policy), held_not_in_iys (sync mode, IYS does not have the recipient), \
         iys_rejected (IYS refused the ONAY), hold (a manual hold), category_rejected (the \
         recipient refused the marketing category), invalid_recipient (the recipient is not \
         valid for the channel; see `error`), unreadable_state (the stored consent, or category \
         consent, could not be read, e.g. a value written by hand outside its set; see `error`).",
    )
);

schema!(
    /// A check's policy.
    Policy => string(
        "strict: an IYS channel needs IYS to have the ONAY. lenient: an ONAY still on its way \
         to IYS is enough.",
    )
    .enum_values(Some(["strict", "lenient"]))
    .default(Some("strict".into()))
    .into()
);

schema!(
    /// A category's kind.
    CategoryKind => string_enum(
        [hub_core::CategoryKind::Marketing, hub_core::CategoryKind::Transactional]
            .map(hub_core::CategoryKind::as_str),
        "marketing: needs marketing consent on the channel and no RET for the category. \
         transactional: service messages; no marketing consent needed, a manual hold still \
         denies.",
    )
);

schema!(
    /// An API key's scope.
    Scope => string_enum(
        [hub_store::Scope::Read, hub_store::Scope::Write, hub_store::Scope::Admin]
            .map(hub_store::Scope::as_str),
        "read: lookups, history, checks, verify. write: consent changes and profiles. admin: \
         everything (implies read and write). write does not imply read.",
    )
);

schema!(
    /// An identifier.
    Identifier => string("1–256 characters without spaces or control characters.")
        .min_length(Some(1))
        .max_length(Some(256))
        .pattern(Some("^[^\\s]+$"))
        .into()
);

schema!(
    /// A reconciled day's status.
    ReconciliationStatus => string_enum(
        hub_store::DayStatus::ALL
            .into_iter()
            // A dry run's answer, never stored.
            .filter(|s| *s != hub_store::DayStatus::Consistent)
            .map(hub_store::DayStatus::as_str),
        "pending: not reconciled yet (or running). agreed: both sides agree and the day was \
         confirmed to IYS. empty: no movement on either side, nothing to confirm. drift: \
         differences remain after repair; the day is not confirmed and is tried again later. \
         hash_mismatch: IYS's file did not match IYS's SHA-384; refused, nothing acted on; \
         tried again later. not_ready: IYS has not published the day's file and hash yet. \
         error: IYS could not be asked (see error). expired: IYS no longer serves the day \
         (H502; it keeps 7 days). Final: agreed, empty, expired.",
    )
);

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use utoipa::PartialSchema;

    use super::*;

    fn values<T: PartialSchema>() -> Vec<String> {
        let v = serde_json::to_value(T::schema()).expect("a schema serialises");
        v["enum"]
            .as_array()
            .expect("an enum")
            .iter()
            .map(|x| x.as_str().expect("a string").to_owned())
            .collect()
    }

    /// Every documented value is one the domain type reads, and writes back the same.
    fn round_trip<S: PartialSchema, T: DeserializeOwned + serde::Serialize>() {
        for v in values::<S>() {
            let t: T = serde_json::from_value(serde_json::Value::String(v.clone()))
                .unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(serde_json::to_value(t).unwrap(), v.as_str());
        }
    }

    #[test]
    fn documented_values_are_the_domains() {
        round_trip::<Channel, hub_core::Channel>();
        round_trip::<RecipientType, iys::RecipientType>();
        round_trip::<ConsentStatus, iys::ConsentStatus>();
        round_trip::<HsSource, iys::HsSource>();
        round_trip::<Mode, hub_core::Mode>();
        round_trip::<IysState, hub_core::IysState>();
        round_trip::<Origin, hub_core::Origin>();
        round_trip::<Policy, hub_core::Policy>();
        round_trip::<CategoryKind, hub_core::CategoryKind>();
        round_trip::<Scope, hub_store::Scope>();
        round_trip::<ReconciliationStatus, hub_store::DayStatus>();
        for state in values::<OutboxRowState>() {
            assert!(state.parse::<hub_store::OutboxState>().is_ok(), "{state}");
        }
    }
}
