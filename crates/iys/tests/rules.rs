//! Table-driven tests of IYS's validation and transition rules: every rule, with the exact
//! H-code, HTTP status, `location` and `value` IYS answers with.

use iys::rules::{
    RuleContext, StoredConsent, ValidConsent, check_transition, validate_bulk, validate_consent,
};
use iys::{ConsentDate, ConsentStatus, HCode, IysError, RecipientType};
use serde_json::{Value, json};

/// Wednesday 2026-11-25 12:00:00 in Istanbul.
fn ctx() -> RuleContext {
    RuleContext::at(
        ConsentDate::parse("2026-11-25 12:00:00")
            .unwrap()
            .to_timestamp(),
    )
}

fn base() -> Value {
    json!({
        "recipient": "+905321234567",
        "type": "MESAJ",
        "source": "HS_WEB",
        "status": "ONAY",
        "consentDate": "2026-11-25 10:00:00",
        "recipientType": "BIREYSEL"
    })
}

/// `base()` with fields set (`Some`) or removed (`None`).
fn with(changes: &[(&str, Option<Value>)]) -> Value {
    let mut v = base();
    let obj = v.as_object_mut().unwrap();
    for (k, val) in changes {
        match val {
            Some(val) => obj.insert((*k).to_owned(), val.clone()),
            None => obj.remove(*k),
        };
    }
    v
}

/// (code, HTTP status, location, value) of one expected error item.
type Expected = (&'static str, u16, Option<Value>, Option<Value>);

fn summary(e: &IysError) -> (String, u16, Option<Value>, Option<Value>) {
    (
        e.code.clone(),
        e.http_status(),
        e.location
            .as_ref()
            .map(|l| serde_json::to_value(l).unwrap()),
        e.value.clone(),
    )
}

fn expect_errors(name: &str, body: Value, expected: &[Expected]) {
    let errors = validate_consent(&body, &ctx())
        .err()
        .unwrap_or_else(|| panic!("{name}: expected {expected:?}, but the consent was accepted"));
    let got: Vec<_> = errors.iter().map(summary).collect();
    let want: Vec<_> = expected
        .iter()
        .map(|(c, s, l, v)| (c.to_string(), *s, l.clone(), v.clone()))
        .collect();
    assert_eq!(got, want, "{name}");
    for e in &errors {
        let code: HCode = e.code.parse().unwrap();
        if code == HCode::H118 {
            // IYS names the refused property at the start of H118's message.
            let field = e.location.as_ref().and_then(|l| l.first_field()).unwrap();
            assert!(
                e.message.starts_with(&format!("{field} kabul edilemedi.")),
                "{name}: {}",
                e.message
            );
        } else {
            assert_eq!(e.message, code.message_tr(), "{name}: IYS's own message");
        }
    }
}

fn loc(field: &str) -> Option<Value> {
    Some(json!([field]))
}

fn s(v: &str) -> Option<Value> {
    Some(json!(v))
}

#[test]
fn every_field_rule_answers_with_iys_code_status_location_and_value() {
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, Vec<Expected>)> = vec![
        // Unknown fields (H118), checked first.
        ("unknown field", with(&[("channel", Some(json!("SMS")))]), vec![("H118", 422, loc("channel"), s("SMS"))]),
        // Presence (H110–H114).
        ("missing status", with(&[("status", None)]), vec![("H110", 422, loc("status"), None)]),
        ("missing type", with(&[("type", None)]), vec![("H111", 422, loc("type"), None)]),
        ("missing consentDate", with(&[("consentDate", None)]), vec![("H112", 422, loc("consentDate"), None)]),
        ("missing source", with(&[("source", None)]), vec![("H113", 422, loc("source"), None)]),
        ("missing recipient", with(&[("recipient", None)]), vec![("H114", 422, loc("recipient"), None)]),
        ("null recipient", with(&[("recipient", Some(Value::Null))]), vec![("H114", 422, loc("recipient"), None)]),
        ("empty recipient", with(&[("recipient", Some(json!("")))]), vec![("H114", 422, loc("recipient"), None)]),
        ("empty source", with(&[("source", Some(json!("")))]), vec![("H113", 422, loc("source"), None)]),
        // Enums (H115–H117, H119).
        ("invalid status", with(&[("status", Some(json!("ONAYY")))]), vec![("H115", 422, loc("status"), s("ONAYY"))]),
        ("RED is not RET", with(&[("status", Some(json!("RED")))]), vec![("H115", 422, loc("status"), s("RED"))]),
        ("status of wrong type", with(&[("status", Some(json!(1)))]), vec![("H115", 422, loc("status"), Some(json!(1)))]),
        ("invalid recipientType", with(&[("recipientType", Some(json!("TACIRR")))]), vec![("H116", 422, loc("recipientType"), s("TACIRR"))]),
        ("invalid type", with(&[("type", Some(json!("EPOSTAa")))]), vec![("H117", 422, loc("type"), s("EPOSTAa"))]),
        ("EMAIL is not a type", with(&[("type", Some(json!("EMAIL")))]), vec![("H117", 422, loc("type"), s("EMAIL"))]),
        ("invalid source", with(&[("source", Some(json!("HS_FIZIKSEL_OTAM")))]), vec![("H119", 422, loc("source"), s("HS_FIZIKSEL_OTAM"))]),
        ("IYS source from a provider", with(&[("source", Some(json!("IYS_MOBIL")))]), vec![("H119", 422, loc("source"), s("IYS_MOBIL"))]),
        // Formats (H120, H121, H160, H157, H158).
        ("Turkish letters in e-mail", with(&[("type", Some(json!("EPOSTA"))), ("recipient", Some(json!("örnek@mail.com")))]), vec![("H120", 422, loc("recipient"), s("örnek@mail.com"))]),
        ("phone on EPOSTA", with(&[("type", Some(json!("EPOSTA")))]), vec![("H120", 422, loc("recipient"), s("+905321234567"))]),
        ("e-mail on MESAJ", with(&[("recipient", Some(json!("a@example.com")))]), vec![("H121", 422, loc("recipient"), s("a@example.com"))]),
        ("national phone format", with(&[("recipient", Some(json!("05321234567")))]), vec![("H121", 422, loc("recipient"), s("05321234567"))]),
        ("e-mail under IYS's minimum {1}@{2}.{2}", with(&[("type", Some(json!("EPOSTA"))), ("recipient", Some(json!("a@b.co")))]), vec![("H120", 422, loc("recipient"), s("a@b.co"))]),
        ("phone over 15 chars", with(&[("recipient", Some(json!("9055436100000000")))]), vec![
            ("H160", 422, loc("recipient"), s("9055436100000000")),
            ("H121", 422, loc("recipient"), s("9055436100000000")),
        ]),
        ("impossible date", with(&[("consentDate", Some(json!("2020-15-01 13:35:00")))]), vec![("H157", 422, loc("consentDate"), s("2020-15-01 13:35:00"))]),
        ("ISO date", with(&[("consentDate", Some(json!("2018-02-10T09:30Z")))]), vec![("H158", 422, loc("consentDate"), s("2018-02-10T09:30Z"))]),
        ("empty retailerCode", with(&[("retailerCode", Some(json!("")))]), vec![("H267", 400, loc("retailerCode"), s(""))]),
        ("empty retailerAccess", with(&[("retailerAccess", Some(json!([])))]), vec![("H163", 422, loc("retailerAccess"), None)]),
        ("retailerAccess over 100", with(&[("retailerAccess", Some(json!((1..=101).collect::<Vec<u64>>())))]), vec![("H126", 422, loc("retailerAccess"), None)]),
        // Date bounds (H156, H155, H162, H467).
        ("before 2015-05-01", with(&[("consentDate", Some(json!("2015-04-30 23:59:00")))]), vec![("H156", 422, loc("consentDate"), s("2015-04-30 23:59:00"))]),
        ("HS_2015 with another date", with(&[("source", Some(json!("HS_2015"))), ("consentDate", Some(json!("2020-04-30 23:59:00")))]), vec![("H155", 422, loc("consentDate"), s("2020-04-30 23:59:00"))]),
        // IYS's own bulk example answers this one item with both codes.
        ("HS_2015 before 2015-05-01", with(&[("source", Some(json!("HS_2015"))), ("consentDate", Some(json!("2015-02-10 09:30:00")))]), vec![
            ("H156", 422, loc("consentDate"), s("2015-02-10 09:30:00")),
            ("H155", 422, loc("consentDate"), s("2015-02-10 09:30:00")),
        ]),
        ("one second in the future", with(&[("consentDate", Some(json!("2026-11-25 12:00:01")))]), vec![("H162", 422, loc("consentDate"), s("2026-11-25 12:00:01"))]),
        // Past the last instant jiff can represent (9999-12-31 01:00:00 in Istanbul).
        ("far future", with(&[("consentDate", Some(json!("9999-12-31 23:59:59")))]), vec![("H162", 422, loc("consentDate"), s("9999-12-31 23:59:59"))]),
        ("just past the last instant", with(&[("consentDate", Some(json!("9999-12-31 01:00:01")))]), vec![("H162", 422, loc("consentDate"), s("9999-12-31 01:00:01"))]),
        ("the last instant", with(&[("consentDate", Some(json!("9999-12-31 01:00:00")))]), vec![("H162", 422, loc("consentDate"), s("9999-12-31 01:00:00"))]),
        // Thursday 11:00 → deadline Tuesday 11:00, past at Wednesday noon.
        ("older than 3 business days", with(&[("consentDate", Some(json!("2026-11-19 11:00:00")))]), vec![("H467", 422, loc("consentDate"), s("2026-11-19 11:00:00"))]),
        // Source and status fit (H408).
        ("HS_KARAR with ONAY", with(&[("source", Some(json!("HS_KARAR")))]), vec![("H408", 422, loc("status"), s("ONAY"))]),
        // TACIR may leave source and consentDate out, but not send them empty.
        ("TACIR null source", with(&[("recipientType", Some(json!("TACIR"))), ("source", Some(Value::Null))]), vec![("H119", 422, loc("source"), Some(Value::Null))]),
        ("TACIR empty source", with(&[("recipientType", Some(json!("TACIR"))), ("source", Some(json!("")))]), vec![("H119", 422, loc("source"), s(""))]),
        ("TACIR null consentDate", with(&[("recipientType", Some(json!("TACIR"))), ("consentDate", Some(Value::Null))]), vec![("H158", 422, loc("consentDate"), Some(Value::Null))]),
        ("TACIR empty consentDate", with(&[("recipientType", Some(json!("TACIR"))), ("consentDate", Some(json!("")))]), vec![("H158", 422, loc("consentDate"), s(""))]),
        ("TACIR both empty: the enum stage answers", with(&[("recipientType", Some(json!("TACIR"))), ("source", Some(json!(""))), ("consentDate", Some(json!("")))]), vec![("H119", 422, loc("source"), s(""))]),
    ];
    for (name, body, expected) in cases {
        expect_errors(name, body, &expected);
    }
}

#[test]
fn stages_run_in_iys_order_and_the_first_failing_stage_answers() {
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, Vec<Expected>)> = vec![
        ("unknown field before missing field", with(&[("foo", Some(json!(1))), ("status", None)]), vec![("H118", 422, loc("foo"), Some(json!(1)))]),
        ("missing before invalid", with(&[("status", None), ("type", Some(json!("SMS")))]), vec![("H110", 422, loc("status"), None)]),
        ("all missing fields at once", json!({"recipientType": "BIREYSEL"}), vec![
            ("H110", 422, loc("status"), None),
            ("H111", 422, loc("type"), None),
            ("H112", 422, loc("consentDate"), None),
            ("H113", 422, loc("source"), None),
            ("H114", 422, loc("recipient"), None),
        ]),
        ("enum before format", with(&[("status", Some(json!("X"))), ("recipient", Some(json!("bad")))]), vec![("H115", 422, loc("status"), s("X"))]),
        ("format before date bounds", with(&[("recipient", Some(json!("bad"))), ("consentDate", Some(json!("2014-01-01 00:00:00")))]), vec![("H121", 422, loc("recipient"), s("bad"))]),
        ("date bounds before HS_KARAR", with(&[("source", Some(json!("HS_KARAR"))), ("consentDate", Some(json!("2030-01-01 00:00:00")))]), vec![("H162", 422, loc("consentDate"), s("2030-01-01 00:00:00"))]),
    ];
    for (name, body, expected) in cases {
        expect_errors(name, body, &expected);
    }
}

#[test]
fn valid_consents_pass_and_are_normalised() {
    let ok = |name: &str, body: Value| -> ValidConsent {
        validate_consent(&body, &ctx()).unwrap_or_else(|e| panic!("{name}: {e:?}"))
    };
    let c = ok("base", base());
    assert_eq!(c.recipient.as_str(), "+905321234567");
    assert_eq!(c.status, ConsentStatus::Onay);
    let c = ok(
        "recipientType defaults to BIREYSEL",
        with(&[("recipientType", None)]),
    );
    assert_eq!(c.recipient_type, RecipientType::Bireysel);
    let c = ok(
        "upper-case e-mail is stored lower-case",
        with(&[
            ("type", Some(json!("EPOSTA"))),
            ("recipient", Some(json!("Ayse@Example.COM"))),
        ]),
    );
    assert_eq!(c.recipient.as_str(), "ayse@example.com");
    ok(
        "HS_2015 with its one date is exempt from H467",
        with(&[
            ("source", Some(json!("HS_2015"))),
            ("consentDate", Some(json!("2015-05-01 00:00:00"))),
        ]),
    );
    ok(
        "TACIR may omit source and consentDate on first insert",
        with(&[
            ("recipientType", Some(json!("TACIR"))),
            ("source", None),
            ("consentDate", None),
        ]),
    );
    ok(
        "HS_KARAR with RET",
        with(&[
            ("source", Some(json!("HS_KARAR"))),
            ("status", Some(json!("RET"))),
        ]),
    );
    // Friday 13:00 → deadline Wednesday 13:00, still ahead at Wednesday noon.
    ok(
        "within 3 business days",
        with(&[("consentDate", Some(json!("2026-11-20 13:00:00")))]),
    );
    ok(
        "exactly now",
        with(&[("consentDate", Some(json!("2026-11-25 12:00:00")))]),
    );
    let c = ok(
        "dealer fields",
        with(&[
            ("retailerCode", Some(json!(66438915))),
            ("retailerAccess", Some(json!([66438915, 71007289]))),
        ]),
    );
    assert_eq!(c.retailer_access, Some(vec![66438915, 71007289]));
    // The wire body omits nothing it was given and adds no nulls.
    let wire = serde_json::to_value(c.to_wire()).unwrap();
    assert_eq!(wire["retailerCode"], json!(66438915));
    assert!(!wire.to_string().contains("null"));
}

#[test]
fn the_deadline_reading_of_half_day_eves_is_a_setting() {
    use iys::calendar::EveRule;
    // Tuesday 2026-03-17 10:00; Thursday 19 March is the eve of Ramazan Bayramı (20–22 March).
    // An eve as a business day: Wed, Thu, Mon → Monday 23 March 10:00. As half a day or as a
    // day off: Tuesday 24 March 10:00.
    let body = with(&[("consentDate", Some(json!("2026-03-17 10:00:00")))]);
    let at = |now: &str, eves: EveRule| RuleContext {
        deadline_eves: eves,
        ..RuleContext::at(ConsentDate::parse(now).unwrap().to_timestamp())
    };
    let code = |ctx: &RuleContext| {
        validate_consent(&body, ctx)
            .err()
            .map(|e| e[0].code.clone())
    };
    assert_eq!(
        RuleContext::at(jiff::Timestamp::UNIX_EPOCH).deadline_eves,
        EveRule::BusinessDay
    );
    for (now, eves, expected) in [
        ("2026-03-23 10:00:00", EveRule::BusinessDay, None),
        ("2026-03-23 10:00:01", EveRule::BusinessDay, Some("H467")),
        ("2026-03-23 10:00:01", EveRule::HalfDay, None),
        ("2026-03-24 10:00:01", EveRule::HalfDay, Some("H467")),
        ("2026-03-24 10:00:00", EveRule::DayOff, None),
        ("2026-03-24 10:00:01", EveRule::DayOff, Some("H467")),
    ] {
        assert_eq!(code(&at(now, eves)).as_deref(), expected, "{now} {eves:?}");
    }
    let date = ConsentDate::parse("2026-03-17 10:00:00").unwrap();
    let now = ConsentDate::parse("2026-03-23 10:00:01")
        .unwrap()
        .to_timestamp();
    assert!(iys::rules::is_past_deadline(date, now));
    assert!(!iys::rules::is_past_deadline_with(
        date,
        now,
        EveRule::HalfDay
    ));
    assert_eq!(date.iys_deadline().to_string(), "2026-03-23 10:00:00");
}

#[test]
fn a_body_that_is_not_an_object_is_h085() {
    let errors = validate_consent(&json!([1, 2]), &ctx()).unwrap_err();
    assert_eq!(errors[0].code, "H085");
    assert_eq!(errors[0].http_status(), 400);
}

fn stored(status: ConsentStatus, date: &str) -> StoredConsent {
    StoredConsent {
        status,
        consent_date: Some(ConsentDate::parse(date).unwrap()),
    }
}

fn next(
    status: &str,
    date: Option<&str>,
    recipient_type: &str,
    source: Option<&str>,
) -> ValidConsent {
    let mut body = with(&[
        ("status", Some(json!(status))),
        ("recipientType", Some(json!(recipient_type))),
        ("consentDate", date.map(|d| json!(d))),
        ("source", source.map(|s| json!(s))),
    ]);
    if recipient_type == "TACIR" {
        body.as_object_mut().unwrap().retain(|_, v| !v.is_null());
    }
    validate_consent(&body, &ctx()).unwrap()
}

/// (name, stored consent, new movement, expected H-code and HTTP status or None for accepted).
type TransitionCase = (
    &'static str,
    Option<StoredConsent>,
    ValidConsent,
    Option<(&'static str, u16)>,
);

#[test]
fn every_transition_rule_answers_with_iys_code() {
    use ConsentStatus::{Onay, Ret};
    let d0 = "2026-11-24 10:00:00";
    let earlier = "2026-11-24 09:59:59";
    let later = "2026-11-24 10:00:01";
    #[rustfmt::skip]
    let cases: Vec<TransitionCase> = vec![
        ("first ever ONAY", None, next("ONAY", Some(d0), "BIREYSEL", Some("HS_WEB")), None),
        ("first ever RET", None, next("RET", Some(d0), "BIREYSEL", Some("HS_WEB")), Some(("H175", 400))),
        ("first ever HS_KARAR", None, next("RET", Some(d0), "BIREYSEL", Some("HS_KARAR")), Some(("H175", 400))),
        ("RET over RET", Some(stored(Ret, d0)), next("RET", Some(later), "BIREYSEL", Some("HS_WEB")), Some(("H174", 400))),
        ("RET over RET, older too: H174 first", Some(stored(Ret, d0)), next("RET", Some(earlier), "BIREYSEL", Some("HS_WEB")), Some(("H174", 400))),
        ("ONAY over ONAY is allowed", Some(stored(Onay, d0)), next("ONAY", Some(later), "BIREYSEL", Some("HS_WEB")), None),
        ("ONAY → RET later", Some(stored(Onay, d0)), next("RET", Some(later), "BIREYSEL", Some("HS_WEB")), None),
        ("RET → ONAY later", Some(stored(Ret, d0)), next("ONAY", Some(later), "BIREYSEL", Some("HS_WEB")), None),
        ("ONAY → RET older", Some(stored(Onay, d0)), next("RET", Some(earlier), "BIREYSEL", Some("HS_WEB")), Some(("H178", 400))),
        ("RET → ONAY older", Some(stored(Ret, d0)), next("ONAY", Some(earlier), "BIREYSEL", Some("HS_WEB")), Some(("H178", 400))),
        ("equal date is not older", Some(stored(Onay, d0)), next("RET", Some(d0), "BIREYSEL", Some("HS_WEB")), None),
        ("HS_KARAR RET on an existing consent", Some(stored(Onay, d0)), next("RET", Some(later), "BIREYSEL", Some("HS_KARAR")), None),
        ("TACIR first insert without date and source", None, next("ONAY", None, "TACIR", None), None),
        ("TACIR update without consentDate", Some(stored(Onay, d0)), next("RET", None, "TACIR", Some("HS_WEB")), Some(("H462", 400))),
        ("TACIR update without source", Some(stored(Onay, d0)), next("RET", Some(later), "TACIR", None), Some(("H463", 400))),
        ("TACIR update without both: H462 first", Some(stored(Onay, d0)), next("RET", None, "TACIR", None), Some(("H462", 400))),
        ("TACIR update with both", Some(stored(Onay, d0)), next("RET", Some(later), "TACIR", Some("HS_WEB")), None),
        ("update of a TACIR stored without date", Some(StoredConsent { status: Onay, consent_date: None }), next("RET", Some(later), "TACIR", Some("HS_WEB")), None),
    ];
    for (name, current, new, expected) in cases {
        let got = check_transition(current.as_ref(), &new)
            .err()
            .map(|e| (e.code.clone(), e.http_status(), e.message.clone()));
        match (got, expected) {
            (None, None) => {}
            (Some((code, status, message)), Some((want, want_status))) => {
                assert_eq!((code.as_str(), status), (want, want_status), "{name}");
                assert_eq!(
                    message,
                    want.parse::<HCode>().unwrap().message_tr(),
                    "{name}"
                );
            }
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn bulk_lists_follow_iys_rules() {
    let item = |recipient: &str| with(&[("recipient", Some(json!(recipient)))]);
    // Good list.
    let ok = validate_bulk(
        &json!([item("+905321234567"), item("+905321234568")]),
        &ctx(),
    )
    .unwrap();
    assert_eq!(ok.len(), 2);
    // Duplicate (recipientType, type, recipient) → H194 at the second index.
    let errors = validate_bulk(
        &json!([
            item("+905321234567"),
            item("+905321234568"),
            item("+905321234567")
        ]),
        &ctx(),
    )
    .unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0].code.as_str(), errors[0].index),
        ("H194", Some(2))
    );
    assert_eq!(errors[0].http_status(), 422);
    // Same recipient on another channel is not a duplicate.
    let arama = with(&[("type", Some(json!("ARAMA")))]);
    assert!(validate_bulk(&json!([base(), arama]), &ctx()).is_ok());
    // Item errors carry their index.
    let errors = validate_bulk(&json!([base(), with(&[("type", None)])]), &ctx()).unwrap_err();
    assert_eq!(
        (errors[0].code.as_str(), errors[0].index),
        ("H111", Some(1))
    );
    assert_eq!(errors[0].location.as_ref().unwrap().to_string(), "type");
    // Over 1000 → H091 without index; not an array → H092.
    let many: Vec<Value> = (0..1001)
        .map(|i| item(&format!("+90532{:07}", 1_000_000 + i)))
        .collect();
    let errors = validate_bulk(&Value::Array(many), &ctx()).unwrap_err();
    assert_eq!((errors[0].code.as_str(), errors[0].index), ("H091", None));
    assert_eq!(errors[0].http_status(), 422);
    assert_eq!(validate_bulk(&base(), &ctx()).unwrap_err()[0].code, "H092");
    assert_eq!(
        validate_bulk(&json!([]), &ctx()).unwrap_err()[0].code,
        "H092"
    );
}
