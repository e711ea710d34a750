//! Turkey's business-day calendar for 2015–2035, and IYS's "3 business days" deadline.
//!
//! IYS rejects a consent with H467 when it arrives more than 3 business days after its
//! `consentDate`, but it does not publish what it counts as a business day. Weekends and
//! official holidays do not count, and counting starts on the day after the consent; the
//! half-day eves (arife, 28 Oct) are the open question, so the reading is a parameter
//! ([`EveRule`]). [`iys_deadline`] uses the earliest plausible reading (an eve is a full
//! business day), so whoever relies on it never expects more time than IYS may give.
//!
//! Fixed holidays follow Law 2429. The religious bayrams move with the Hijri calendar, so they
//! are a table of dates as announced by Diyanet; outside [`FIRST_YEAR`]..=[`LAST_YEAR`] only
//! weekends and fixed holidays apply. Holidays falling on a weekend are not moved: Turkey has
//! no substitute days. Pure code, no I/O.

use jiff::civil::{Date, DateTime, Weekday, date};

/// First year covered by the religious-holiday table.
pub const FIRST_YEAR: i16 = 2015;
/// Last year covered by the religious-holiday table.
pub const LAST_YEAR: i16 = 2035;

/// What kind of day a date is in Turkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayKind {
    /// A full working day.
    Business,
    /// The afternoon is off (eve of a bayram, or 28 Oct). How it counts is an [`EveRule`].
    ///
    /// An eve on a Saturday or Sunday is a [`DayKind::Weekend`]: there is no morning to work.
    HalfDay(&'static str),
    /// Saturday or Sunday that is not an official holiday.
    Weekend,
    /// An official full-day holiday, whatever the weekday.
    Holiday(&'static str),
}

/// (month, day) in the Gregorian calendar.
type MonthDay = (i8, i8);

/// First days of the bayrams: (year, Ramazan Bayramı (month, day), Kurban Bayramı (month, day)).
///
/// Source: Diyanet's Hijri calendar (as collected by the `holidays` Python package, confirmed
/// there through 2032; 2033–2035 are its estimates, which agree with the Umm al-Qura calendar).
/// Rows are per Gregorian year, so from 2034 on Kurban Bayramı falls before Ramazan Bayramı.
const RELIGIOUS: [(i16, MonthDay, MonthDay); 21] = [
    (2015, (7, 17), (9, 24)),
    (2016, (7, 5), (9, 12)),
    (2017, (6, 25), (9, 1)),
    (2018, (6, 15), (8, 21)),
    (2019, (6, 4), (8, 11)),
    (2020, (5, 24), (7, 31)),
    (2021, (5, 13), (7, 20)),
    (2022, (5, 2), (7, 9)),
    (2023, (4, 21), (6, 28)),
    (2024, (4, 10), (6, 16)),
    (2025, (3, 30), (6, 6)),
    (2026, (3, 20), (5, 27)),
    (2027, (3, 9), (5, 16)),
    (2028, (2, 26), (5, 5)),
    (2029, (2, 14), (4, 24)),
    (2030, (2, 4), (4, 13)),
    (2031, (1, 24), (4, 2)),
    (2032, (1, 14), (3, 22)),
    (2033, (1, 2), (3, 11)),
    (2034, (12, 12), (3, 1)),
    (2035, (12, 1), (2, 18)),
];

/// The Hijri year is ~11 days shorter than the Gregorian one, so once in ~33 years a bayram
/// falls twice in the same year: Ramazan Bayramı does in 2033 (2 Jan and 23 Dec).
const SECOND_RAMAZAN: [(i16, MonthDay); 1] = [(2033, (12, 23))];

const RAMAZAN_DAYS: [&str; 3] = [
    "Ramazan Bayramı 1. gün",
    "Ramazan Bayramı 2. gün",
    "Ramazan Bayramı 3. gün",
];
const KURBAN_DAYS: [&str; 4] = [
    "Kurban Bayramı 1. gün",
    "Kurban Bayramı 2. gün",
    "Kurban Bayramı 3. gün",
    "Kurban Bayramı 4. gün",
];
const RAMAZAN_EVE: &str = "Ramazan Bayramı arifesi";
const KURBAN_EVE: &str = "Kurban Bayramı arifesi";
const REPUBLIC_DAY_EVE: &str = "Cumhuriyet Bayramı arifesi";

/// Fixed full-day holidays: (month, day, first year it applies, name).
const FIXED_HOLIDAYS: [(i8, i8, i16, &str); 7] = [
    (1, 1, i16::MIN, "Yılbaşı"),
    (4, 23, i16::MIN, "Ulusal Egemenlik ve Çocuk Bayramı"),
    (5, 1, i16::MIN, "Emek ve Dayanışma Günü"),
    (5, 19, i16::MIN, "Atatürk'ü Anma, Gençlik ve Spor Bayramı"),
    // Added to Law 2429 in 2017, after the events of 15 July 2016.
    (7, 15, 2017, "Demokrasi ve Milli Birlik Günü"),
    (8, 30, i16::MIN, "Zafer Bayramı"),
    (10, 29, i16::MIN, "Cumhuriyet Bayramı"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bayram {
    Ramazan,
    Kurban,
}

impl Bayram {
    fn day_names(self) -> &'static [&'static str] {
        match self {
            Bayram::Ramazan => &RAMAZAN_DAYS,
            Bayram::Kurban => &KURBAN_DAYS,
        }
    }

    fn eve_name(self) -> &'static str {
        match self {
            Bayram::Ramazan => RAMAZAN_EVE,
            Bayram::Kurban => KURBAN_EVE,
        }
    }
}

/// The bayrams whose first day falls in `year` (none outside the table).
fn bayrams(year: i16) -> impl Iterator<Item = (Bayram, Date)> {
    let row = usize::try_from(year - FIRST_YEAR)
        .ok()
        .and_then(|i| RELIGIOUS.get(i));
    let main = row.into_iter().flat_map(|&(y, (rm, rd), (km, kd))| {
        [
            (Bayram::Ramazan, date(y, rm, rd)),
            (Bayram::Kurban, date(y, km, kd)),
        ]
    });
    let second = SECOND_RAMAZAN
        .iter()
        .filter(move |&&(y, _)| y == year)
        .map(|&(y, (m, d))| (Bayram::Ramazan, date(y, m, d)));
    main.chain(second)
}

/// The religious holiday or eve on `day`, if any. Every bayram and its eve lie within the
/// year of its first day (checked by the tests), so day-of-year arithmetic is enough.
fn religious_kind(day: Date) -> Option<DayKind> {
    let mut eve = None;
    for (bayram, first) in bayrams(day.year()) {
        let offset = day.day_of_year() - first.day_of_year();
        if offset == -1 {
            eve = Some(DayKind::HalfDay(bayram.eve_name()));
        } else if let Ok(i) = usize::try_from(offset)
            && let Some(&name) = bayram.day_names().get(i)
        {
            return Some(DayKind::Holiday(name));
        }
    }
    eve
}

fn fixed_holiday(day: Date) -> Option<&'static str> {
    FIXED_HOLIDAYS
        .iter()
        .find(|&&(m, d, from, _)| m == day.month() && d == day.day() && day.year() >= from)
        .map(|&(_, _, _, name)| name)
}

/// What kind of day `date` is in Turkey.
///
/// Precedence: a full holiday (religious first, then fixed) wins over a weekend, which wins
/// over a half day; so an eve that is also a fixed holiday (e.g. 1 May 2022) is a holiday.
pub fn day_kind(date: Date) -> DayKind {
    let religious = religious_kind(date);
    if let Some(DayKind::Holiday(name)) = religious {
        return DayKind::Holiday(name);
    }
    if let Some(name) = fixed_holiday(date) {
        return DayKind::Holiday(name);
    }
    if matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) {
        return DayKind::Weekend;
    }
    if let Some(half) = religious {
        return half;
    }
    if date.month() == 10 && date.day() == 28 {
        return DayKind::HalfDay(REPUBLIC_DAY_EVE);
    }
    DayKind::Business
}

/// True only for full business days.
pub fn is_business_day(date: Date) -> bool {
    day_kind(date) == DayKind::Business
}

/// Whether the year is covered by the religious-holiday table (outside it only weekends and
/// fixed holidays apply).
pub fn is_covered(year: i16) -> bool {
    (FIRST_YEAR..=LAST_YEAR).contains(&year)
}

/// How a half-day eve (the afternoon off: bayram eves, 28 October) counts towards a deadline
/// in business days. IYS does not say which reading it applies.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum EveRule {
    /// A full business day (its morning is worked): the earliest deadline.
    #[default]
    BusinessDay,
    /// Half a business day.
    HalfDay,
    /// No business day at all: the latest deadline.
    DayOff,
}

/// How many half business days a day is worth; integers so that halves add up exactly.
fn half_days(kind: DayKind, eves: EveRule) -> u64 {
    match (kind, eves) {
        (DayKind::Business, _) | (DayKind::HalfDay(_), EveRule::BusinessDay) => 2,
        (DayKind::HalfDay(_), EveRule::HalfDay) => 1,
        (DayKind::HalfDay(_), EveRule::DayOff) | (DayKind::Weekend | DayKind::Holiday(_), _) => 0,
    }
}

/// The moment `days` business days after `start`, an eve counting as a full business day (the
/// earliest reading; see [`add_business_days_with`]).
pub fn add_business_days(start: DateTime, days: u32) -> DateTime {
    add_business_days_with(start, days, EveRule::BusinessDay)
}

/// The moment `days` business days after `start` (wall clock, Europe/Istanbul; no time zone
/// math needed here), eves counting as `eves` says.
///
/// Rule: walk forward day by day starting with the day AFTER start's date; a full business day
/// adds 1, an eve what `eves` gives it, weekends and holidays add 0; when the running total
/// reaches `days`, the answer is that day at start's time of day. `days == 0` gives `start`.
/// The start day never counts, since a consent given at 23:59 must not lose that day. Saturates
/// at the last representable date.
pub fn add_business_days_with(start: DateTime, days: u32, eves: EveRule) -> DateTime {
    let target = 2 * u64::from(days);
    let mut total = 0;
    let mut day = start.date();
    while total < target {
        day = match day.tomorrow() {
            Ok(next) => next,
            Err(_) => return Date::MAX.to_datetime(start.time()),
        };
        total += half_days(day_kind(day), eves);
    }
    day.to_datetime(start.time())
}

/// The earliest plausible IYS deadline for a consent given at `consent_date`: 3 business days,
/// an eve counting as a full one. A consent reaching IYS after this moment may be refused
/// with H467.
pub fn iys_deadline(consent_date: DateTime) -> DateTime {
    iys_deadline_with(consent_date, EveRule::BusinessDay)
}

/// IYS's deadline under a given reading of the eves.
pub fn iys_deadline_with(consent_date: DateTime, eves: EveRule) -> DateTime {
    add_business_days_with(consent_date, crate::rules::DEADLINE_BUSINESS_DAYS, eves)
}

#[cfg(test)]
mod tests;
