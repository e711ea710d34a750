//! IYS's date type: `YYYY-MM-DD HH:MM:SS`, a wall-clock time in Turkey (Europe/Istanbul).

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hcode::HCode;

/// IYS dates are Turkey time. The zone (not a fixed +03:00) keeps dates before
/// September 2016, when Turkey still had summer time, right.
pub static ISTANBUL: LazyLock<TimeZone> = LazyLock::new(|| {
    TimeZone::get("Europe/Istanbul").expect("the bundled tz database has Europe/Istanbul")
});

const FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Why a date string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentDateError {
    /// Not in the shape `YYYY-MM-DD HH:MM:SS` (IYS: H158).
    #[error("{0:?} is not in the format YYYY-MM-DD HH:MM:SS")]
    WrongFormat(String),
    /// The right shape but no such date or time, e.g. month 15 (IYS: H157).
    #[error("{0:?} is not a real date and time")]
    Invalid(String),
}

impl ConsentDateError {
    pub fn hcode(&self) -> HCode {
        match self {
            ConsentDateError::WrongFormat(_) => HCode::H158,
            ConsentDateError::Invalid(_) => HCode::H157,
        }
    }

    pub fn value(&self) -> &str {
        match self {
            ConsentDateError::WrongFormat(v) | ConsentDateError::Invalid(v) => v,
        }
    }
}

/// A `consentDate` or `creationDate`: Istanbul wall clock, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsentDate(DateTime);

impl ConsentDate {
    /// The earliest date IYS accepts (H156) and the only one allowed with `HS_2015` (H155).
    pub const IYS_EPOCH: ConsentDate = ConsentDate(DateTime::constant(2015, 5, 1, 0, 0, 0, 0));

    pub fn parse(s: &str) -> Result<ConsentDate, ConsentDateError> {
        let shape_ok = s.len() == 19
            && s.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                10 => b == b' ',
                13 | 16 => b == b':',
                _ => b.is_ascii_digit(),
            });
        if !shape_ok {
            return Err(ConsentDateError::WrongFormat(s.to_owned()));
        }
        // The shape is right, so every field is ASCII digits: read them directly (strptime
        // parses its format string each time, and the ledger and exports read millions of
        // dates). `DateTime::new` refuses an impossible date, an hour of 24 and a second of 60.
        let number = |range: std::ops::Range<usize>| {
            s.as_bytes()
                .get(range)
                .unwrap_or_default()
                .iter()
                .fold(0i16, |n, d| n * 10 + i16::from(d - b'0'))
        };
        let small = |range| i8::try_from(number(range)).unwrap_or(i8::MAX);
        DateTime::new(
            number(0..4),
            small(5..7),
            small(8..10),
            small(11..13),
            small(14..16),
            small(17..19),
            0,
        )
        .map(ConsentDate)
        .map_err(|_| ConsentDateError::Invalid(s.to_owned()))
    }

    /// A wall-clock time, truncated to the second.
    pub fn from_civil(dt: DateTime) -> ConsentDate {
        ConsentDate(dt.with().subsec_nanosecond(0).build().unwrap_or(dt))
    }

    /// The Istanbul wall-clock time of an instant, truncated to the second.
    pub fn from_timestamp(ts: Timestamp) -> ConsentDate {
        Self::from_civil(ISTANBUL.to_datetime(ts))
    }

    /// The instant this wall-clock time denotes in Turkey. In the hour repeated when summer time
    /// ended (before 2016) the earlier instant is taken.
    ///
    /// A valid date may still lie outside jiff's instants (after 9999-12-30 22:00 UTC, i.e.
    /// 9999-12-31 01:00:00 in Istanbul, or near year -9999): it saturates to the nearest end,
    /// so a far-future consentDate compares as the latest possible instant (H162), never
    /// panics. [`ConsentDate::try_to_timestamp`] tells the two apart.
    pub fn to_timestamp(self) -> Timestamp {
        self.try_to_timestamp().unwrap_or(if self.0.year() > 0 {
            Timestamp::MAX
        } else {
            Timestamp::MIN
        })
    }

    /// The instant this wall-clock time denotes in Turkey, or `None` when it lies outside the
    /// range of instants jiff can represent.
    pub fn try_to_timestamp(self) -> Option<Timestamp> {
        ISTANBUL.to_ambiguous_timestamp(self.0).compatible().ok()
    }

    pub fn civil(self) -> DateTime {
        self.0
    }

    /// The earliest plausible IYS deadline for this consent: 3 business days later, a half-day
    /// eve counting as a full business day (see [`crate::calendar`]).
    pub fn iys_deadline(self) -> ConsentDate {
        ConsentDate(crate::calendar::iys_deadline(self.0))
    }

    /// IYS's deadline for this consent under a given reading of the half-day eves.
    pub fn iys_deadline_with(self, eves: crate::calendar::EveRule) -> ConsentDate {
        ConsentDate(crate::calendar::iys_deadline_with(self.0, eves))
    }
}

impl fmt::Display for ConsentDate {
    /// `YYYY-MM-DD HH:MM:SS`, written digit by digit: the ledger stores and exports write
    /// millions of dates, and `strftime` parses its format every time.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let Ok(year) = u16::try_from(d.year()) else {
            return write!(f, "{}", d.strftime(FORMAT));
        };
        let mut text = *b"0000-00-00 00:00:00";
        let mut put = |at: usize, width: usize, value: u16| {
            let mut v = value;
            for i in (at..at + width).rev() {
                if let Some(b) = text.get_mut(i) {
                    *b = b'0' + (v % 10) as u8;
                }
                v /= 10;
            }
        };
        put(0, 4, year);
        for (at, value) in [
            (5, d.month()),
            (8, d.day()),
            (11, d.hour()),
            (14, d.minute()),
            (17, d.second()),
        ] {
            put(at, 2, value.unsigned_abs().into());
        }
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for ConsentDate {
    type Err = ConsentDateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConsentDate::parse(s)
    }
}

impl Serialize for ConsentDate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConsentDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ConsentDate::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Serde helpers for an optional date that IYS sometimes sends as `""` (TACIR first inserts).
pub mod optional_lenient {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<ConsentDate>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => d.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ConsentDate>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => ConsentDate::parse(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_formats_iys_dates() {
        let d = ConsentDate::parse("2026-05-04 10:15:00").unwrap();
        assert_eq!(d.to_string(), "2026-05-04 10:15:00");
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            "\"2026-05-04 10:15:00\""
        );
    }

    proptest! {
        #[test]
        fn read_digit_by_digit_as_strptime_reads(
            fields in proptest::collection::vec(0u16..10_000, 6),
        ) {
            let f = |i: usize, m: u16| fields.get(i).copied().unwrap_or(0) % m;
            let s = format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                f(0, 10_000), f(1, 14), f(2, 33), f(3, 26), f(4, 62), f(5, 62)
            );
            // strptime reads a leap second `:60` as `:59`; IYS's dates have none.
            let strptime = DateTime::strptime(FORMAT, &s)
                .ok()
                .filter(|_| f(5, 62) < 60)
                .map(ConsentDate);
            prop_assert_eq!(ConsentDate::parse(&s).ok(), strptime, "{}", s);
        }

        #[test]
        fn written_digit_by_digit_as_strftime_writes(
            year in -9999i16..=9999, month in 1i8..=12, day in 1i8..=28,
            hour in 0i8..=23, minute in 0i8..=59, second in 0i8..=59,
        ) {
            let d = DateTime::new(year, month, day, hour, minute, second, 0).unwrap();
            prop_assert_eq!(ConsentDate(d).to_string(), d.strftime(FORMAT).to_string());
        }
    }

    #[test]
    fn wrong_shapes_are_h158_and_impossible_dates_h157() {
        for s in [
            "2018-02-10T09:30Z",
            "2026-05-04",
            "2026-05-04 10:15",
            "04.05.2026 10:15:00",
            "2026-05-04  10:15:00",
            "2026-5-4 10:15:00",
            "",
            "2026-05-04 10:15:00.123",
            "２０２６-05-04 10:15:00",
        ] {
            let e = ConsentDate::parse(s).unwrap_err();
            assert_eq!(e.hcode(), HCode::H158, "{s:?}");
        }
        for s in [
            "2020-15-01 13:35:00",
            "2026-02-30 10:00:00",
            "2026-05-04 24:00:00",
            "2026-05-04 10:60:00",
            "2025-02-29 00:00:00",
            "2026-05-04 10:15:60",
            "2016-12-31 23:59:60",
        ] {
            let e = ConsentDate::parse(s).unwrap_err();
            assert_eq!(e.hcode(), HCode::H157, "{s:?}");
            assert_eq!(e.value(), s);
        }
    }

    #[test]
    fn converts_with_the_istanbul_zone() {
        // 1597740617 s is the cursor in IYS's own pull example: 2020-08-18 11:50:17 Turkey time.
        let ts = Timestamp::from_second(1_597_740_617).unwrap();
        let d = ConsentDate::from_timestamp(ts);
        assert_eq!(d.to_string(), "2020-08-18 11:50:17");
        assert_eq!(d.to_timestamp(), ts);
        // Winter 2015: Turkey was on +02:00.
        let winter = ConsentDate::parse("2015-12-01 12:00:00").unwrap();
        assert_eq!(winter.to_timestamp().to_string(), "2015-12-01T10:00:00Z");
    }

    #[test]
    fn orders_chronologically() {
        let a = ConsentDate::parse("2026-05-04 10:15:00").unwrap();
        let b = ConsentDate::parse("2026-05-04 10:15:01").unwrap();
        assert!(a < b);
        assert!(ConsentDate::IYS_EPOCH < a);
        assert_eq!(ConsentDate::IYS_EPOCH.to_string(), "2015-05-01 00:00:00");
    }

    #[test]
    fn dates_beyond_jiffs_instants_saturate() {
        // 9999-12-31 01:00:00 in Istanbul is the last instant jiff has.
        let last = ConsentDate::parse("9999-12-31 01:00:00").unwrap();
        assert!(last.try_to_timestamp().is_some());
        for s in ["9999-12-31 01:00:01", "9999-12-31 23:59:59"] {
            let d = ConsentDate::parse(s).unwrap();
            assert_eq!(d.try_to_timestamp(), None, "{s}");
            assert_eq!(d.to_timestamp(), Timestamp::MAX, "{s}");
            assert!(d.to_timestamp() > last.to_timestamp());
            // The deadline saturates too.
            assert_eq!(d.iys_deadline().to_timestamp(), Timestamp::MAX);
        }
        let first = ConsentDate::parse("-009999-01-01 00:00:00");
        assert!(first.is_err(), "IYS's format has four-digit years");
        let tiny = ConsentDate::from_civil(DateTime::MIN);
        assert_eq!(tiny.to_timestamp(), Timestamp::MIN);
    }

    proptest! {
        #[test]
        fn round_trips_through_text(secs in 1_430_438_400i64..2_051_222_400i64) {
            let d = ConsentDate::from_timestamp(Timestamp::from_second(secs).unwrap());
            let text = d.to_string();
            prop_assert_eq!(ConsentDate::parse(&text).unwrap(), d);
            prop_assert_eq!(ConsentDate::from_timestamp(d.to_timestamp()), d);
        }
    }
}
