//! Unit tests of the calendar: pinned day kinds and deadlines per year, the bayram table, properties.

use super::*;
use jiff::civil::datetime;

use DayKind::{Business, HalfDay, Holiday, Weekend};

const fn at10(y: i16, m: i8, d: i8) -> DateTime {
    datetime(y, m, d, 10, 0, 0, 0)
}

/// Per year: pinned day kinds, and (what, consent, deadline with an eve as a business day,
/// deadline with an eve as half a day).
type YearCase = (
    i16,
    &'static [(Date, DayKind)],
    &'static [(&'static str, DateTime, DateTime, DateTime)],
);

const YEARS: [YearCase; 4] = [
    (
        2024,
        &[
            (date(2024, 4, 9), HalfDay(RAMAZAN_EVE)),
            (date(2024, 4, 10), Holiday("Ramazan Bayramı 1. gün")),
            (date(2024, 4, 12), Holiday("Ramazan Bayramı 3. gün")),
            (date(2024, 4, 13), Weekend),
            // Eve on a Saturday: nothing to work anyway.
            (date(2024, 6, 15), Weekend),
            (date(2024, 6, 16), Holiday("Kurban Bayramı 1. gün")),
            (date(2024, 6, 19), Holiday("Kurban Bayramı 4. gün")),
            (date(2024, 6, 20), Business),
            (
                date(2024, 4, 23),
                Holiday("Ulusal Egemenlik ve Çocuk Bayramı"),
            ),
            (date(2024, 7, 15), Holiday("Demokrasi ve Milli Birlik Günü")),
            (date(2024, 10, 28), HalfDay(REPUBLIC_DAY_EVE)),
            (date(2024, 10, 29), Holiday("Cumhuriyet Bayramı")),
            (date(2024, 1, 1), Holiday("Yılbaşı")),
        ],
        &[
            (
                "ordinary week",
                at10(2024, 3, 4),
                at10(2024, 3, 7),
                at10(2024, 3, 7),
            ),
            (
                "friday",
                at10(2024, 3, 8),
                at10(2024, 3, 13),
                at10(2024, 3, 13),
            ),
            // Mon 1 + Tue eve (1 or 1/2) + (Wed–Fri bayram) + Mon 1 → Mon, or Tue with half.
            (
                "before ramazan",
                at10(2024, 4, 5),
                at10(2024, 4, 15),
                at10(2024, 4, 16),
            ),
            (
                "before ramazan, monday",
                at10(2024, 4, 8),
                at10(2024, 4, 16),
                at10(2024, 4, 17),
            ),
            (
                "before kurban",
                at10(2024, 6, 13),
                at10(2024, 6, 21),
                at10(2024, 6, 21),
            ),
            (
                "saturday",
                at10(2024, 3, 9),
                at10(2024, 3, 13),
                at10(2024, 3, 13),
            ),
            (
                "on a holiday",
                at10(2024, 4, 23),
                at10(2024, 4, 26),
                at10(2024, 4, 26),
            ),
            (
                "15 july",
                at10(2024, 7, 12),
                at10(2024, 7, 18),
                at10(2024, 7, 18),
            ),
            (
                "28/29 october",
                at10(2024, 10, 25),
                at10(2024, 10, 31),
                at10(2024, 11, 1),
            ),
            (
                "new year",
                at10(2023, 12, 29),
                at10(2024, 1, 4),
                at10(2024, 1, 4),
            ),
        ],
    ),
    (
        2025,
        &[
            (date(2025, 3, 29), Weekend),
            (date(2025, 3, 30), Holiday("Ramazan Bayramı 1. gün")),
            (date(2025, 4, 1), Holiday("Ramazan Bayramı 3. gün")),
            (date(2025, 4, 2), Business),
            (date(2025, 6, 5), HalfDay(KURBAN_EVE)),
            (date(2025, 6, 6), Holiday("Kurban Bayramı 1. gün")),
            (date(2025, 6, 9), Holiday("Kurban Bayramı 4. gün")),
            (date(2025, 5, 1), Holiday("Emek ve Dayanışma Günü")),
            (date(2025, 7, 15), Holiday("Demokrasi ve Milli Birlik Günü")),
            (date(2025, 10, 28), HalfDay(REPUBLIC_DAY_EVE)),
            (date(2025, 10, 29), Holiday("Cumhuriyet Bayramı")),
        ],
        &[
            (
                "ordinary week",
                at10(2025, 3, 3),
                at10(2025, 3, 6),
                at10(2025, 3, 6),
            ),
            (
                "friday",
                at10(2025, 3, 7),
                at10(2025, 3, 12),
                at10(2025, 3, 12),
            ),
            (
                "before ramazan",
                at10(2025, 3, 27),
                at10(2025, 4, 3),
                at10(2025, 4, 3),
            ),
            // Wed 1 + Thu eve (1 or 1/2) + (Fri–Mon bayram) + Tue 1 → Tue, or Wed with half.
            (
                "before kurban",
                at10(2025, 6, 3),
                at10(2025, 6, 10),
                at10(2025, 6, 11),
            ),
            (
                "saturday",
                at10(2025, 3, 8),
                at10(2025, 3, 12),
                at10(2025, 3, 12),
            ),
            (
                "on a holiday",
                at10(2025, 5, 1),
                at10(2025, 5, 6),
                at10(2025, 5, 6),
            ),
            (
                "15 july",
                at10(2025, 7, 14),
                at10(2025, 7, 18),
                at10(2025, 7, 18),
            ),
            (
                "28/29 october",
                at10(2025, 10, 27),
                at10(2025, 10, 31),
                at10(2025, 11, 3),
            ),
            (
                "new year",
                at10(2024, 12, 30),
                at10(2025, 1, 3),
                at10(2025, 1, 3),
            ),
        ],
    ),
    (
        2026,
        &[
            (date(2026, 3, 19), HalfDay(RAMAZAN_EVE)),
            (date(2026, 3, 20), Holiday("Ramazan Bayramı 1. gün")),
            (date(2026, 3, 22), Holiday("Ramazan Bayramı 3. gün")),
            (date(2026, 5, 26), HalfDay(KURBAN_EVE)),
            (date(2026, 5, 27), Holiday("Kurban Bayramı 1. gün")),
            (date(2026, 5, 30), Holiday("Kurban Bayramı 4. gün")),
            (
                date(2026, 5, 19),
                Holiday("Atatürk'ü Anma, Gençlik ve Spor Bayramı"),
            ),
            (date(2026, 8, 30), Holiday("Zafer Bayramı")),
            (date(2026, 10, 28), HalfDay(REPUBLIC_DAY_EVE)),
            (date(2026, 10, 29), Holiday("Cumhuriyet Bayramı")),
        ],
        &[
            (
                "ordinary week",
                at10(2026, 3, 2),
                at10(2026, 3, 5),
                at10(2026, 3, 5),
            ),
            (
                "friday",
                at10(2026, 3, 6),
                at10(2026, 3, 11),
                at10(2026, 3, 11),
            ),
            (
                "before ramazan",
                at10(2026, 3, 17),
                at10(2026, 3, 23),
                at10(2026, 3, 24),
            ),
            (
                "before kurban",
                at10(2026, 5, 22),
                at10(2026, 6, 1),
                at10(2026, 6, 2),
            ),
            (
                "saturday",
                at10(2026, 3, 7),
                at10(2026, 3, 11),
                at10(2026, 3, 11),
            ),
            (
                "on a holiday",
                at10(2026, 5, 19),
                at10(2026, 5, 22),
                at10(2026, 5, 22),
            ),
            (
                "15 july",
                at10(2026, 7, 14),
                at10(2026, 7, 20),
                at10(2026, 7, 20),
            ),
            (
                "28/29 october",
                at10(2026, 10, 27),
                at10(2026, 11, 2),
                at10(2026, 11, 3),
            ),
            (
                "new year",
                at10(2025, 12, 31),
                at10(2026, 1, 6),
                at10(2026, 1, 6),
            ),
        ],
    ),
    (
        2027,
        &[
            (date(2027, 3, 8), HalfDay(RAMAZAN_EVE)),
            (date(2027, 3, 9), Holiday("Ramazan Bayramı 1. gün")),
            (date(2027, 3, 11), Holiday("Ramazan Bayramı 3. gün")),
            (date(2027, 5, 15), Weekend),
            (date(2027, 5, 16), Holiday("Kurban Bayramı 1. gün")),
            // Also 19 May: the day is simply a holiday.
            (date(2027, 5, 19), Holiday("Kurban Bayramı 4. gün")),
            (
                date(2027, 4, 23),
                Holiday("Ulusal Egemenlik ve Çocuk Bayramı"),
            ),
            (date(2027, 7, 15), Holiday("Demokrasi ve Milli Birlik Günü")),
            (date(2027, 10, 28), HalfDay(REPUBLIC_DAY_EVE)),
            (date(2027, 10, 29), Holiday("Cumhuriyet Bayramı")),
        ],
        &[
            (
                "ordinary week",
                at10(2027, 3, 1),
                at10(2027, 3, 4),
                at10(2027, 3, 4),
            ),
            (
                "friday",
                at10(2027, 2, 26),
                at10(2027, 3, 3),
                at10(2027, 3, 3),
            ),
            (
                "before ramazan",
                at10(2027, 3, 5),
                at10(2027, 3, 15),
                at10(2027, 3, 16),
            ),
            (
                "before kurban",
                at10(2027, 5, 13),
                at10(2027, 5, 21),
                at10(2027, 5, 21),
            ),
            (
                "saturday",
                at10(2027, 2, 27),
                at10(2027, 3, 3),
                at10(2027, 3, 3),
            ),
            (
                "on a holiday",
                at10(2027, 4, 23),
                at10(2027, 4, 28),
                at10(2027, 4, 28),
            ),
            (
                "15 july",
                at10(2027, 7, 14),
                at10(2027, 7, 20),
                at10(2027, 7, 20),
            ),
            (
                "28/29 october",
                at10(2027, 10, 27),
                at10(2027, 11, 2),
                at10(2027, 11, 3),
            ),
            (
                "new year",
                at10(2026, 12, 31),
                at10(2027, 1, 6),
                at10(2027, 1, 6),
            ),
        ],
    ),
];

#[test]
fn pinned_years() {
    for (year, kinds, deadlines) in YEARS {
        for &(day, kind) in kinds {
            assert_eq!(day.year(), year);
            assert_eq!(day_kind(day), kind, "{day}");
        }
        for &(what, consent, earliest, half) in deadlines {
            assert_eq!(earliest.year(), year, "{year} {what}");
            assert_eq!(iys_deadline(consent), earliest, "{year} {what}");
            assert_eq!(
                iys_deadline_with(consent, EveRule::BusinessDay),
                earliest,
                "{year} {what}"
            );
            assert_eq!(
                iys_deadline_with(consent, EveRule::HalfDay),
                half,
                "{year} {what}: half-day eves"
            );
            assert!(earliest <= half, "{year} {what}");
            // With eves off, never earlier than with half-day eves.
            assert!(iys_deadline_with(consent, EveRule::DayOff) >= half);
        }
    }
}

#[test]
fn deadline_keeps_time_of_day() {
    let consent = datetime(2025, 3, 3, 23, 59, 59, 123);
    assert_eq!(iys_deadline(consent), datetime(2025, 3, 6, 23, 59, 59, 123));
}

#[test]
fn democracy_day_from_2017() {
    assert_eq!(day_kind(date(2016, 7, 15)), Business);
    assert_eq!(
        day_kind(date(2017, 7, 15)),
        Holiday("Demokrasi ve Milli Birlik Günü")
    );
}

#[test]
fn overlaps_are_holidays() {
    // Eve of Ramazan Bayramı on 1 May 2022, of Kurban Bayramı on 23 Apr 2029.
    assert_eq!(
        day_kind(date(2022, 5, 1)),
        Holiday("Emek ve Dayanışma Günü")
    );
    assert_eq!(
        day_kind(date(2029, 4, 23)),
        Holiday("Ulusal Egemenlik ve Çocuk Bayramı")
    );
    assert_eq!(
        day_kind(date(2023, 4, 23)),
        Holiday("Ramazan Bayramı 3. gün")
    );
    // 2033: Ramazan Bayramı twice.
    assert_eq!(
        day_kind(date(2033, 1, 3)),
        Holiday("Ramazan Bayramı 2. gün")
    );
    assert_eq!(day_kind(date(2033, 12, 22)), HalfDay(RAMAZAN_EVE));
    assert_eq!(
        day_kind(date(2033, 12, 23)),
        Holiday("Ramazan Bayramı 1. gün")
    );
}

#[test]
fn coverage() {
    assert!(!is_covered(2014));
    assert!(is_covered(FIRST_YEAR));
    assert!(is_covered(LAST_YEAR));
    assert!(!is_covered(2036));
    // Outside the table only weekends and fixed holidays apply.
    assert!(is_business_day(date(2014, 7, 28)));
    assert_eq!(day_kind(date(2036, 1, 1)), Holiday("Yılbaşı"));
    assert_eq!(day_kind(date(2036, 10, 28)), HalfDay(REPUBLIC_DAY_EVE));
}

fn all_bayrams() -> Vec<(Bayram, Date)> {
    (FIRST_YEAR..=LAST_YEAR).flat_map(bayrams).collect()
}

#[test]
fn table_is_sane() {
    for (i, row) in RELIGIOUS.iter().enumerate() {
        assert_eq!(usize::try_from(row.0 - FIRST_YEAR), Ok(i));
    }
    assert_eq!(RELIGIOUS.last().map(|r| r.0), Some(LAST_YEAR));

    let mut all = all_bayrams();
    all.sort_by_key(|&(_, first)| first);
    // 22 Ramazan (two in 2033) and 21 Kurban, strictly alternating.
    assert_eq!(all.len(), 43);
    assert_eq!(all[0].0, Bayram::Ramazan);
    for pair in all.windows(2) {
        let [(b1, d1), (b2, d2)] = [pair[0], pair[1]];
        assert_ne!(b1, b2, "{d1} {d2}");
        let gap = (d2 - d1).get_days();
        if b1 == Bayram::Ramazan {
            // 1 Şevval to 10 Zilhicce: two 29/30-day months plus 9 days.
            assert!((67..=69).contains(&gap), "{d1} {d2}: {gap}");
        } else {
            assert!((285..=288).contains(&gap), "{d1} {d2}: {gap}");
        }
    }
    for bayram in [Bayram::Ramazan, Bayram::Kurban] {
        let firsts: Vec<Date> = all
            .iter()
            .filter(|&&(b, _)| b == bayram)
            .map(|&(_, d)| d)
            .collect();
        for pair in firsts.windows(2) {
            // A Hijri year is 354 or 355 days.
            let gap = (pair[1] - pair[0]).get_days();
            assert!((354..=355).contains(&gap), "{bayram:?} {gap}");
        }
    }
}

#[test]
fn bayrams_stay_within_their_year() {
    for (bayram, first) in all_bayrams() {
        let eve = first.yesterday().unwrap();
        let len = i32::try_from(bayram.day_names().len()).unwrap();
        let last = first.checked_add(jiff::Span::new().days(len - 1)).unwrap();
        assert_eq!(eve.year(), first.year());
        assert_eq!(last.year(), first.year());
    }
}

#[test]
fn every_year_has_its_bayram_days() {
    for year in FIRST_YEAR..=LAST_YEAR {
        let ramazans = 1 + SECOND_RAMAZAN.iter().filter(|r| r.0 == year).count();
        let (mut ramazan, mut kurban, mut eves) = (0, 0, 0);
        let mut day = date(year, 1, 1);
        while day.year() == year {
            match religious_kind(day) {
                Some(Holiday(name)) if RAMAZAN_DAYS.contains(&name) => {
                    ramazan += 1;
                    assert_eq!(day_kind(day), Holiday(name));
                }
                Some(Holiday(name)) if KURBAN_DAYS.contains(&name) => {
                    kurban += 1;
                    assert_eq!(day_kind(day), Holiday(name));
                }
                Some(HalfDay(_)) => {
                    eves += 1;
                    assert_ne!(day_kind(day), Business);
                }
                None => {}
                other => panic!("{day}: {other:?}"),
            }
            day = day.tomorrow().unwrap();
        }
        assert_eq!(ramazan, 3 * ramazans, "{year}");
        assert_eq!(kurban, 4, "{year}");
        assert_eq!(eves, ramazans + 1, "{year}");
    }
}

#[test]
fn known_first_days() {
    for (y, m, d) in [(2024, 4, 10), (2025, 3, 30), (2026, 3, 20)] {
        assert_eq!(day_kind(date(y, m, d)), Holiday("Ramazan Bayramı 1. gün"));
    }
    for (y, m, d) in [(2024, 6, 16), (2025, 6, 6), (2026, 5, 27)] {
        assert_eq!(day_kind(date(y, m, d)), Holiday("Kurban Bayramı 1. gün"));
    }
}

#[test]
fn add_business_days_properties() {
    let mut day = date(FIRST_YEAR, 1, 1);
    while day.year() <= LAST_YEAR {
        let start = day.at(14, 30, 0, 0);
        for eves in [EveRule::BusinessDay, EveRule::HalfDay, EveRule::DayOff] {
            assert_eq!(add_business_days_with(start, 0, eves), start);
            let mut previous = start;
            for n in 1..=5 {
                let deadline = add_business_days_with(start, n, eves);
                assert!(deadline > previous, "{start} + {n} ({eves:?})");
                assert_eq!(deadline.time(), start.time());
                let kind = day_kind(deadline.date());
                let ok = match eves {
                    EveRule::DayOff => kind == Business,
                    _ => matches!(kind, Business | HalfDay(_)),
                };
                assert!(ok, "{start} + {n} = {deadline} ({eves:?})");
                previous = deadline;
            }
        }
        // The readings are ordered, and the default one is the earliest.
        let [early, half, off] = [EveRule::BusinessDay, EveRule::HalfDay, EveRule::DayOff]
            .map(|eves| iys_deadline_with(start, eves));
        assert!(early <= half && half <= off, "{start}");
        assert_eq!(iys_deadline(start), early);
        assert_eq!(add_business_days(start, 3), early);
        day = day.tomorrow().unwrap();
    }
}

#[test]
fn add_business_days_saturates() {
    let start = datetime(9999, 12, 30, 10, 0, 0, 0);
    assert_eq!(
        add_business_days(start, 10),
        datetime(9999, 12, 31, 10, 0, 0, 0)
    );
}
