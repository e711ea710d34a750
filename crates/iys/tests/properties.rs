//! Property tests of the `iys` crate's parsers on arbitrary input: recipients, IYS dates and
//! the deadline, the daily movement file and movements from IYS's JSON. Everything that reads
//! outside input must answer `Ok` or `Err`, never panic, and what it produces must read back
//! as itself. (Narrower in-module properties live beside the code: phone and e-mail idempotence
//! over plain alphabets, Turkish mobiles in five dresses, dates of 2015–2035 through text.)

use iys::calendar::EveRule;
use iys::wire::{ChangesResponse, DailyCsvRow, HistoryResponse, Movement};
use iys::{
    ConsentDate, ConsentStatus, ConsentType, Email, HsSource, IysSource, Phone, Recipient,
    RecipientType, Source,
};
use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use proptest::prelude::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Strategies

/// Strings people type into a phone field: digits, separators, pluses, the odd letter,
/// non-ASCII digits and white space.
fn phoneish() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9 +()./\u{a0}-]{0,24}",
        "[+]?(00)?(90)?[0-9]{0,14}",
        "[ ]*[+0]{0,3}[0-9 ]{8,20}[a-z٠-٩]{0,2}",
        any::<String>(),
    ]
}

/// Strings people type into an e-mail field, Turkish letters and stray symbols included.
fn emailish() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ \t]{0,2}[A-Za-z0-9._+çğıöşüÇĞİÖŞÜ!%-]{0,24}@[A-Za-z0-9.ş-]{0,24}[ \t]{0,2}",
        "[a-z0-9]{1,10}@[a-z0-9-]{1,10}\\.[a-zA-Z]{2,6}",
        "@{0,3}[.@a-zA-Z]{0,12}",
        any::<String>(),
    ]
}

/// Any civil date and time jiff has (years -9999 to 9999), to the second, weighted towards the
/// ends (where the deadline saturates) and IYS's own years.
fn any_civil() -> impl Strategy<Value = DateTime> {
    let year = prop_oneof![
        -9999i16..=9999,
        9998i16..=9999,
        -9999i16..=-9998,
        2014i16..=2036
    ];
    (year, 1i8..=12, 1i8..=31, 0i8..24, 0i8..60, 0i8..60).prop_map(|(y, mo, d, h, mi, s)| {
        // Days past the month's end are clamped to its last day.
        let day = d.min(Date::new(y, mo, 1).map_or(28, |first| first.days_in_month()));
        DateTime::new(y, mo, day, h, mi, s, 0).unwrap_or(DateTime::MIN)
    })
}

/// Any instant jiff has, weighted towards its ends.
fn any_instant() -> impl Strategy<Value = Timestamp> {
    let (lo, hi) = (Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    prop_oneof![
        lo..=hi,
        lo..=lo + 40 * 86_400,
        hi - 40 * 86_400..=hi,
        1_420_070_400i64..2_082_758_400i64,
    ]
    .prop_map(|s| Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// A date in IYS's shape, of IYS's years.
fn iys_date() -> impl Strategy<Value = ConsentDate> {
    (1_420_070_400i64..2_082_758_400i64).prop_map(|s| {
        ConsentDate::from_timestamp(Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH))
    })
}

fn any_source() -> impl Strategy<Value = Source> {
    prop_oneof![
        prop::sample::select(HsSource::ALL).prop_map(Source::Hs),
        prop::sample::select(IysSource::known().collect::<Vec<_>>()).prop_map(Source::Iys),
        "IYS_[A-Z0-9_]{1,12}".prop_map(|s| s.parse().unwrap_or(Source::Hs(HsSource::HsWeb))),
    ]
}

/// A recipient as IYS stores it: a Turkish mobile or a lower-case e-mail.
fn iys_recipient() -> impl Strategy<Value = String> {
    prop_oneof![
        (5_000_000_000u64..5_599_999_999u64).prop_map(|n| format!("+90{n}")),
        "[a-z0-9]{1,10}@[a-z0-9]{2,10}\\.(com|net|org|com\\.tr)",
    ]
}

/// A valid daily-file row.
fn daily_row() -> impl Strategy<Value = DailyCsvRow> {
    (
        iys_date(),
        "[0-9a-f]{64}",
        iys_recipient(),
        prop::sample::select(RecipientType::ALL),
        prop::sample::select(ConsentType::ALL),
        prop::sample::select(ConsentStatus::ALL),
        prop::option::of(iys_date()),
        prop::option::of(any_source()),
    )
        .prop_map(
            |(creation_date, transaction_id, recipient, rt, ct, status, consent_date, source)| {
                DailyCsvRow {
                    creation_date,
                    transaction_id,
                    recipient,
                    recipient_type: rt,
                    consent_type: ct,
                    status,
                    consent_date,
                    source,
                }
            },
        )
}

/// A valid movement.
fn movement() -> impl Strategy<Value = Movement> {
    (
        prop::option::of(iys_date()),
        iys_date(),
        any_source(),
        iys_recipient(),
        prop::sample::select(RecipientType::ALL),
        prop::sample::select(ConsentStatus::ALL),
        prop::sample::select(ConsentType::ALL),
        "[0-9a-f]{64}",
        prop::option::of(".{0,20}"),
    )
        .prop_map(
            |(consent_date, creation_date, source, recipient, rt, status, ct, tx, name)| Movement {
                consent_date,
                creation_date,
                source,
                recipient,
                recipient_type: rt,
                status,
                consent_type: ct,
                transaction_id: tx,
                citizen_name: name,
            },
        )
}

/// Arbitrary JSON, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,24}".prop_map(Value::String),
        "[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn is_e164(s: &str) -> bool {
    s.len() <= iys::recipient::MAX_PHONE_LEN
        && s.strip_prefix('+').is_some_and(|d| {
            !d.is_empty() && !d.starts_with('0') && d.bytes().all(|b| b.is_ascii_digit())
        })
}

// ---------------------------------------------------------------------------------------------
// Recipients

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn recipient_functions_never_panic(s in prop_oneof![phoneish(), emailish()]) {
        let _ = Recipient::normalise(&s).map(|r| r.masked());
        for t in ConsentType::ALL {
            let _ = Recipient::normalise_for(&s, *t).map(|r| r.masked());
            let _ = Recipient::parse_iys_for(&s, *t).map(|r| r.masked());
        }
        let _ = Phone::parse_iys(&s).map(|p| p.masked());
        let _ = Email::parse_iys(&s).map(|e| e.masked());
        let _ = serde_json::from_value::<Recipient>(Value::String(s.clone()));
        if let Err(e) = Recipient::normalise(&s) {
            // The refusal names the input and maps to IYS's codes.
            prop_assert_eq!(e.value(), s.as_str());
            prop_assert!(!e.iys_errors("recipient").is_empty());
        }
    }

    #[test]
    fn normalising_twice_is_stable(s in prop_oneof![phoneish(), emailish()]) {
        if let Ok(r) = Recipient::normalise(&s) {
            prop_assert_eq!(Recipient::normalise(r.as_str()), Ok(r.clone()));
            // What the hub stores is what IYS accepts on the wire, on the channels it fits.
            for t in ConsentType::ALL.iter().filter(|t| r.fits(**t)) {
                prop_assert_eq!(Recipient::parse_iys_for(r.as_str(), *t), Ok(r.clone()));
                prop_assert_eq!(Recipient::normalise_for(&s, *t), Ok(r.clone()));
            }
            let json = serde_json::to_value(&r).unwrap_or_default();
            prop_assert_eq!(serde_json::from_value::<Recipient>(json).ok(), Some(r));
        }
    }

    #[test]
    fn a_normalised_phone_is_e164_and_turkish_unless_dialled_abroad(s in phoneish()) {
        if let Ok(p) = Phone::normalise(&s) {
            prop_assert!(is_e164(p.as_str()), "{:?} → {:?}", s, p);
            prop_assert_eq!(Phone::parse_iys(p.as_str()), Ok(p.clone()));
            let digits: String = s.chars().filter(char::is_ascii_digit).collect();
            if !s.contains('+') && !digits.starts_with("00") {
                prop_assert!(p.as_str().starts_with("+90"), "{:?} → {:?}", s, p);
            }
        }
    }

    #[test]
    fn turkish_numbers_with_any_separators_normalise_to_plus_90(
        area in prop::sample::select(vec![212u64, 216, 232, 312, 322, 505, 532, 542, 555, 850]),
        rest in 1_000_000u64..9_999_999u64,
        prefix in prop::sample::select(vec!["", "0", "90", "+90", "0090", "+90 0"]),
        seps in prop::collection::vec(prop::sample::select(vec!["", " ", "-", ".", "/", "\u{a0}"]), 10),
    ) {
        let digits = format!("{area}{rest}");
        let mut dressed = prefix.to_owned();
        for (d, sep) in digits.chars().zip(&seps) {
            dressed.push_str(sep);
            dressed.push(d);
        }
        let p = Phone::normalise(&dressed);
        prop_assert_eq!(p.map(|p| p.as_str().to_owned()), Ok(format!("+90{digits}")), "{:?}", dressed);
    }

    #[test]
    fn a_normalised_email_is_lower_case_and_passes_iys_rules(s in emailish()) {
        if let Ok(e) = Email::normalise(&s) {
            let text = e.as_str();
            prop_assert!(text.is_ascii());
            prop_assert_eq!(text, text.to_ascii_lowercase());
            prop_assert_eq!(text, s.trim().to_ascii_lowercase());
            prop_assert!(iys::recipient::EMAIL_LEN.contains(&text.len()));
            prop_assert!(!text.contains(char::is_whitespace));
            prop_assert_eq!(Email::parse_iys(text), Ok(e.clone()));
            prop_assert_eq!(Recipient::normalise(&s), Ok(Recipient::Email(e)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dates and the deadline

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn parsing_any_string_never_panics_and_accepts_only_the_canonical_form(
        s in prop_oneof![
            any::<String>(),
            "[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}",
            // Nearly real dates: day 29–31 of any month, hour 24, second 60 (a leap second).
            "(00|19|20|99)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]) ([01][0-9]|2[0-4]):[0-5][0-9]:([0-5][0-9]|6[0-9])",
            "[0-9٠-٩]{4}-[0-9]{1,2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}[Z.0-9]{0,4}",
        ]
    ) {
        match ConsentDate::parse(&s) {
            Ok(d) => {
                prop_assert_eq!(d.to_string(), s.clone());
                let _ = (d.to_timestamp(), d.try_to_timestamp(), d.iys_deadline());
            }
            Err(e) => {
                prop_assert_eq!(e.value(), s.as_str());
                prop_assert!(matches!(e.hcode(), iys::HCode::H157 | iys::HCode::H158));
            }
        }
        let _ = serde_json::from_value::<ConsentDate>(Value::String(s));
    }

    #[test]
    fn any_instant_gives_a_date_that_reads_back(ts in any_instant()) {
        let d = ConsentDate::from_timestamp(ts);
        let text = d.to_string();
        // IYS's format has four-digit years: years 0–9999 read back, earlier ones are refused.
        match ConsentDate::parse(&text) {
            Ok(back) => prop_assert_eq!(back, d),
            Err(_) => prop_assert!(d.civil().year() < 0, "{text}"),
        }
        // The instant of a wall-clock time taken from an instant gives that wall-clock time again
        // (an hour repeated at the end of summer time maps to its earlier instant).
        prop_assert_eq!(ConsentDate::from_timestamp(d.to_timestamp()), d);
        let json = serde_json::to_string(&d).unwrap_or_default();
        if d.civil().year() >= 0 {
            prop_assert_eq!(serde_json::from_str::<ConsentDate>(&json).ok(), Some(d));
        }
    }

    #[test]
    fn any_wall_clock_time_converts_without_panicking(dt in any_civil()) {
        let d = ConsentDate::from_civil(dt);
        let ts = d.to_timestamp();
        match d.try_to_timestamp() {
            Some(exact) => prop_assert_eq!(exact, ts),
            None => prop_assert!(ts == Timestamp::MAX || ts == Timestamp::MIN),
        }
        let _ = d.to_string();
    }

    #[test]
    fn the_deadline_never_panics_and_comes_after_the_date(dt in any_civil()) {
        let d = ConsentDate::from_civil(dt);
        let deadline = d.iys_deadline();
        prop_assert_eq!(deadline.civil().time(), d.civil().time(), "the same time of day");
        let saturated = deadline.civil().date() == Date::MAX;
        if saturated {
            prop_assert!(deadline >= d);
        } else {
            prop_assert!(deadline > d);
            // Three business days: at least three days later, at most a holiday week more.
            let days = deadline.civil().date().since(d.civil().date()).map_or(0, |s| s.get_days());
            prop_assert!((3..=14).contains(&days), "{} → {}: {} days", d, deadline, days);
        }
        // The later readings of the half-day eves never give less time.
        let half = d.iys_deadline_with(EveRule::HalfDay);
        let off = d.iys_deadline_with(EveRule::DayOff);
        prop_assert_eq!(d.iys_deadline_with(EveRule::BusinessDay), deadline);
        prop_assert!(deadline <= half && half <= off, "{} {} {}", deadline, half, off);
        // The deadline's instant exists or saturates; it never runs backwards.
        prop_assert!(deadline.to_timestamp() >= d.to_timestamp());
    }
}

// ---------------------------------------------------------------------------------------------
// The daily movement file and movements

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn a_daily_file_line_parses_or_is_refused_and_reads_back_as_itself(
        line in prop_oneof![
            any::<String>(),
            // Eight columns of anything.
            prop::collection::vec("[^,]{0,20}", 8).prop_map(|c| c.join(",")),
            // A valid row with one column replaced by junk.
            (daily_row(), 0usize..8, "[^,]{0,20}").prop_map(|(r, i, junk)| {
                let line = r.to_line();
                let mut cols: Vec<&str> = line.split(',').collect();
                if let Some(c) = cols.get_mut(i) { *c = &junk; }
                cols.join(",")
            }),
        ]
    ) {
        match DailyCsvRow::parse_line(&line) {
            Ok(row) => prop_assert_eq!(row.to_line(), line),
            Err(e) => prop_assert_eq!(e.line, line),
        }
    }

    #[test]
    fn valid_daily_rows_round_trip(mut rows in prop::collection::vec(daily_row(), 0..8)) {
        for row in &rows {
            prop_assert_eq!(DailyCsvRow::parse_line(&row.to_line()), Ok(row.clone()));
        }
        let file = DailyCsvRow::render_file(&mut rows);
        let back: Vec<DailyCsvRow> = file
            .lines()
            .map(DailyCsvRow::parse_line)
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        prop_assert_eq!(back, rows);
    }

    #[test]
    fn decoding_movements_never_panics(
        text in prop_oneof![any::<String>(), any_json().prop_map(|v| v.to_string())],
    ) {
        let _ = serde_json::from_str::<Movement>(&text);
        let _ = serde_json::from_str::<ChangesResponse>(&text);
        let _ = serde_json::from_str::<HistoryResponse>(&text);
    }

    #[test]
    fn a_movement_with_one_field_replaced_decodes_or_is_refused(
        m in movement(),
        field in prop::sample::select(vec![
            "consentDate", "creationDate", "source", "recipient", "recipientType", "status",
            "type", "transactionId", "citizenName", "unknownField",
        ]),
        junk in any_json(),
    ) {
        let mut v = serde_json::to_value(&m).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert(field.to_owned(), junk);
        }
        // A decoded movement encodes to what IYS would send for it, and decodes to itself again.
        if let Ok(decoded) = serde_json::from_value::<Movement>(v) {
            let again = serde_json::to_value(&decoded).unwrap_or_default();
            prop_assert_eq!(serde_json::from_value::<Movement>(again).ok(), Some(decoded));
        }
    }

    #[test]
    fn valid_movements_round_trip(m in movement()) {
        let text = serde_json::to_string(&m).unwrap_or_default();
        prop_assert_eq!(serde_json::from_str::<Movement>(&text).ok(), Some(m.clone()));
        let page = ChangesResponse { after: "1597740617_ab".into(), list: vec![m] };
        let text = serde_json::to_string(&page).unwrap_or_default();
        prop_assert_eq!(serde_json::from_str::<ChangesResponse>(&text).ok(), Some(page));
    }
}
