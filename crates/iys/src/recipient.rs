//! Recipients: phone numbers in E.164 and e-mail addresses, as IYS accepts them.
//!
//! Two ways in: `parse_iys` accepts only what IYS itself accepts on the wire (the simulator and
//! the rules use it), `normalise` turns what people type (`0532 123 45 67`, ` Ayse@Example.COM `)
//! into that form (the hub uses it at its edge).

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use phonenumber::{Mode, country};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::enums::ConsentType;
use crate::error::IysError;
use crate::hcode::HCode;

/// IYS's maximum length of an E.164 number, `+` included (H160).
pub const MAX_PHONE_LEN: usize = 15;
/// IYS's e-mail length bounds.
pub const EMAIL_LEN: std::ops::RangeInclusive<usize> = 6..=265;

/// Why a recipient was refused; each maps to the H-code IYS would answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecipientError {
    #[error("{value:?} is not a valid phone number (E.164, e.g. +905321234567)")]
    InvalidPhone { value: String },
    #[error("{value:?} is longer than {MAX_PHONE_LEN} characters")]
    PhoneTooLong { value: String },
    #[error(
        "{value:?} is not an e-mail address IYS accepts (ASCII letters, digits and . _ - + only; no Turkish letters)"
    )]
    InvalidEmail { value: String },
}

impl RecipientError {
    pub fn value(&self) -> &str {
        match self {
            RecipientError::InvalidPhone { value }
            | RecipientError::PhoneTooLong { value }
            | RecipientError::InvalidEmail { value } => value,
        }
    }

    /// IYS's error items for this refusal (a too-long phone gives H160 and H121, as IYS does).
    pub fn iys_errors(&self, field: &str) -> Vec<IysError> {
        let item = |code| {
            IysError::new(code)
                .at(field)
                .with_value(Value::String(self.value().to_owned()))
        };
        match self {
            RecipientError::InvalidPhone { .. } => vec![item(HCode::H121)],
            RecipientError::PhoneTooLong { .. } => vec![item(HCode::H160), item(HCode::H121)],
            RecipientError::InvalidEmail { .. } => vec![item(HCode::H120)],
        }
    }
}

/// A phone number in canonical E.164 (`+905321234567`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

impl Phone {
    /// Accepts only what IYS accepts on the wire: `+`, digits, at most 15 characters, a valid
    /// number, already canonical. (IYS may store `+9005…`, but such a number is invisible to
    /// citizens and operators, so we refuse it.)
    pub fn parse_iys(s: &str) -> Result<Phone, RecipientError> {
        let invalid = || RecipientError::InvalidPhone {
            value: s.to_owned(),
        };
        if s.chars().count() > MAX_PHONE_LEN {
            return Err(RecipientError::PhoneTooLong {
                value: s.to_owned(),
            });
        }
        let digits = s.strip_prefix('+').ok_or_else(invalid)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let phone = match Self::turkish(s) {
            Some(known) => known,
            None => Self::from_libphonenumber(s),
        }
        .ok_or_else(invalid)?;
        if phone.0 != s {
            return Err(invalid());
        }
        Ok(phone)
    }

    /// Turns what people type into E.164, reading national numbers as Turkish:
    /// `0532 123 45 67`, `5321234567`, `+90 (532) 123-45-67`, `00905321234567`, `905321234567`.
    pub fn normalise(s: &str) -> Result<Phone, RecipientError> {
        let trimmed = s.trim();
        let invalid = || RecipientError::InvalidPhone {
            value: s.to_owned(),
        };
        // libphonenumber maps letters to keypad digits; a recipient with letters is a typo.
        let allowed = |c: char| c.is_ascii_digit() || " +-().\u{a0}/".contains(c);
        if trimmed.is_empty() || !trimmed.chars().all(allowed) {
            return Err(invalid());
        }
        if trimmed.bytes().filter(|b| b.is_ascii_digit()).count() > 17 {
            // Longer than any number with a 00 prefix could be.
            return Err(RecipientError::PhoneTooLong {
                value: s.to_owned(),
            });
        }
        // Only digits and pluses carry meaning; the separators go before libphonenumber sees
        // them, since it refuses some runs of them (`0532--123 45 67`, `0532/-1234567`).
        let compact: String = trimmed
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect();
        let phone = match Self::turkish(&compact) {
            Some(known) => known,
            None => Self::from_libphonenumber(&compact),
        }
        .ok_or_else(invalid)?;
        if phone.0.len() > MAX_PHONE_LEN {
            return Err(RecipientError::PhoneTooLong {
                value: s.to_owned(),
            });
        }
        Ok(phone)
    }

    /// The usual Turkish forms (`+90` or `0` and ten digits, no separators) without
    /// libphonenumber's parse (about 7 µs a number, most of a batch check's time): TR's number
    /// patterns in libphonenumber's metadata constrain at most the first six digits of a
    /// ten-digit national number, so its answer for one number holds for every number with the
    /// same six digits and is remembered for them. `None`: not such a form, or one whose
    /// libphonenumber answer is not plain `+90` and the ten digits (left to libphonenumber).
    /// The tests check that both ways agree.
    fn turkish(compact: &str) -> Option<Option<Phone>> {
        /// Per six-digit prefix: 0 not yet known, 1 valid, 2 not valid.
        static BY_PREFIX: OnceLock<Box<[AtomicU8]>> = OnceLock::new();
        const UNKNOWN: u8 = 0;
        const VALID: u8 = 1;
        const INVALID: u8 = 2;
        let national = compact
            .strip_prefix("+90")
            .or_else(|| compact.strip_prefix('0'))?;
        if national.len() != 10
            || !national.bytes().all(|b| b.is_ascii_digit())
            || national.starts_with(['0', '1'])
        {
            return None;
        }
        let prefix: usize = national.get(..6)?.parse().ok()?;
        let slot = BY_PREFIX
            .get_or_init(|| (0..1_000_000).map(|_| AtomicU8::new(UNKNOWN)).collect())
            .get(prefix)?;
        let canonical = format!("+90{national}");
        match slot.load(Ordering::Relaxed) {
            VALID => Some(Some(Phone(canonical))),
            INVALID => Some(None),
            _ => match Self::from_libphonenumber(&canonical) {
                Some(phone) if phone.0 == canonical => {
                    slot.store(VALID, Ordering::Relaxed);
                    Some(Some(phone))
                }
                Some(_) => None,
                None => {
                    slot.store(INVALID, Ordering::Relaxed);
                    Some(None)
                }
            },
        }
    }

    fn from_libphonenumber(s: &str) -> Option<Phone> {
        let number = phonenumber::parse(Some(country::Id::TR), s).ok()?;
        number
            .is_valid()
            .then(|| Phone(number.format().mode(Mode::E164).to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For logs: `+90532*****67`.
    pub fn masked(&self) -> String {
        let s = &self.0;
        let keep_head = 6.min(s.len());
        let keep_tail = 2.min(s.len() - keep_head);
        let hidden = s.len() - keep_head - keep_tail;
        format!(
            "{}{}{}",
            &s[..keep_head],
            "*".repeat(hidden),
            &s[s.len() - keep_tail..]
        )
    }
}

/// An e-mail address as IYS stores it: lower-case ASCII.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    /// IYS's rules: 6–265 characters, no spaces, no Turkish letters or other non-ASCII, local part
    /// of letters, digits and `. _ - +` (leading `-`, `_`, `.` and doubled `__`/`--` allowed), a
    /// domain of dot-separated labels ending in an alphabetic TLD of at least two letters, with
    /// at least two characters before its last dot (IYS's minimum shape `{1}@{2}.{2}`).
    /// Upper-case is accepted and lower-cased, as IYS does.
    pub fn parse_iys(s: &str) -> Result<Email, RecipientError> {
        let invalid = || RecipientError::InvalidEmail {
            value: s.to_owned(),
        };
        if !EMAIL_LEN.contains(&s.len()) || !s.is_ascii() {
            return Err(invalid());
        }
        let lower = s.to_ascii_lowercase();
        let (local, domain) = lower.split_once('@').ok_or_else(invalid)?;
        let local_ok = !local.is_empty()
            && !local.contains("..")
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
        if !local_ok || !Self::domain_ok(domain) {
            return Err(invalid());
        }
        Ok(Email(lower))
    }

    fn domain_ok(domain: &str) -> bool {
        let labels: Vec<&str> = domain.split('.').collect();
        let Some(tld) = labels.last() else {
            return false;
        };
        // `{1}@{2}.{2}`: two characters before the last dot, two after it.
        let before_tld = domain.len().saturating_sub(tld.len() + 1);
        labels.len() >= 2
            && before_tld >= 2
            && tld.len() >= 2
            && tld.bytes().all(|b| b.is_ascii_alphabetic())
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    }

    /// Trims surrounding white space, then applies [`Email::parse_iys`].
    pub fn normalise(s: &str) -> Result<Email, RecipientError> {
        Self::parse_iys(s.trim()).map_err(|_| RecipientError::InvalidEmail {
            value: s.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For logs: `a***@example.com`.
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.split_once('@').unwrap_or((&self.0, ""));
        let first = local.chars().next().unwrap_or('*');
        format!("{first}***@{domain}")
    }
}

/// A consent's recipient: a phone number or an e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Recipient {
    Phone(Phone),
    Email(Email),
}

impl Recipient {
    /// What IYS accepts on the wire for this channel: a phone for MESAJ/ARAMA, an e-mail for EPOSTA.
    pub fn parse_iys_for(s: &str, channel: ConsentType) -> Result<Recipient, RecipientError> {
        if channel.needs_phone() {
            Phone::parse_iys(s).map(Recipient::Phone)
        } else {
            Email::parse_iys(s).map(Recipient::Email)
        }
    }

    /// Normalises what people type for this channel (see [`Phone::normalise`], [`Email::normalise`]).
    pub fn normalise_for(s: &str, channel: ConsentType) -> Result<Recipient, RecipientError> {
        if channel.needs_phone() {
            Phone::normalise(s).map(Recipient::Phone)
        } else {
            Email::normalise(s).map(Recipient::Email)
        }
    }

    /// Normalises without a channel: anything with an `@` is an e-mail, the rest a phone.
    pub fn normalise(s: &str) -> Result<Recipient, RecipientError> {
        if s.contains('@') {
            Email::normalise(s).map(Recipient::Email)
        } else {
            Phone::normalise(s).map(Recipient::Phone)
        }
    }

    /// Whether this recipient can be used on `channel`.
    pub fn fits(&self, channel: ConsentType) -> bool {
        matches!(self, Recipient::Phone(_)) == channel.needs_phone()
    }

    pub fn as_str(&self) -> &str {
        match self {
            Recipient::Phone(p) => p.as_str(),
            Recipient::Email(e) => e.as_str(),
        }
    }

    /// The recipient with personal data hidden, for logs.
    pub fn masked(&self) -> String {
        match self {
            Recipient::Phone(p) => p.masked(),
            Recipient::Email(e) => e.masked(),
        }
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Recipient {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Recipient {
    /// Reads IYS's canonical form (what IYS sends back); anything else is an error.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let parsed = if s.contains('@') {
            Email::parse_iys(&s).map(Recipient::Email)
        } else {
            Phone::parse_iys(&s).map(Recipient::Phone)
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (input, expected E.164 or None when refused) — shapes seen in real CRM exports.
    const PHONES: &[(&str, Option<&str>)] = &[
        ("0532 123 45 67", Some("+905321234567")),
        ("5321234567", Some("+905321234567")),
        ("+90 (532) 123-45-67", Some("+905321234567")),
        ("00905321234567", Some("+905321234567")),
        ("905321234567", Some("+905321234567")),
        ("+905321234567", Some("+905321234567")),
        ("0090 532 123 45 67", Some("+905321234567")),
        ("(0532) 123 4567", Some("+905321234567")),
        ("532-123-45-67", Some("+905321234567")),
        ("0532.123.45.67", Some("+905321234567")),
        ("  +90 532 123 45 67  ", Some("+905321234567")),
        ("+90 532 123 45 67\u{a0}", Some("+905321234567")),
        ("+9005321234567", Some("+905321234567")),
        ("0 (212) 555 12 12", Some("+902125551212")),
        ("+90 212 123 00 00", Some("+902121230000")),
        ("02121230000", Some("+902121230000")),
        ("0850 123 45 67", Some("+908501234567")),
        ("+90 392 123 45 67", Some("+903921234567")),
        ("0505 123 45 67", Some("+905051234567")),
        ("0542/123 45 67", Some("+905421234567")),
        ("0532--123 45 67", Some("+905321234567")),
        ("+90 532/-123 45 67", Some("+905321234567")),
        ("+90 (0) 532 123 45 67", Some("+905321234567")),
        ("+4915112345678", Some("+4915112345678")),
        ("0049 151 12345678", Some("+4915112345678")),
        ("+1 650 253 0000", Some("+16502530000")),
        ("+44 7911 123456", Some("+447911123456")),
        ("123", None),
        ("0532 123 45 6", None),
        ("+90532123456789", None),
        ("05321234567a", None),
        ("0532-CALL-NOW", None),
        ("", None),
        ("   ", None),
        ("+", None),
        ("+90 000 000 00 00", None),
        ("9055436100000000", None),
        ("0532 123 45 67 ext 5", None),
        ("☎ 0532 123 45 67", None),
    ];

    #[test]
    fn phones_from_real_life_normalise_or_are_refused() {
        for (input, expected) in PHONES {
            let got = Phone::normalise(input).map(|p| p.as_str().to_owned()).ok();
            assert_eq!(got.as_deref(), *expected, "input {input:?}");
        }
    }

    /// (input, expected stored form or None when IYS refuses it).
    const EMAILS: &[(&str, Option<&str>)] = &[
        ("ayse@example.com", Some("ayse@example.com")),
        ("Ayse.Yilmaz@Example.COM", Some("ayse.yilmaz@example.com")),
        ("  mehmet@firma.com.tr ", Some("mehmet@firma.com.tr")),
        ("user+news@gmail.com", Some("user+news@gmail.com")),
        ("_leading@example.org", Some("_leading@example.org")),
        ("-dash@example.org", Some("-dash@example.org")),
        (
            "double__under--dash@example.org",
            Some("double__under--dash@example.org"),
        ),
        ("a@bb.cc", Some("a@bb.cc")),
        // IYS's minimum shape is {1}@{2}.{2}: two characters before the last dot.
        ("a@b.co", None),
        ("abc@x.com", None),
        ("a@b.cd.co", Some("a@b.cd.co")),
        ("x@sub.domain-name.com.tr", Some("x@sub.domain-name.com.tr")),
        ("örnek@mail.com", None),
        ("ayşe@example.com", None),
        ("AYŞE@EXAMPLE.COM", None),
        ("İbrahim@example.com", None),
        ("ali@şirket.com.tr", None),
        ("ali veli@example.com", None),
        ("ali@example", None),
        ("ali@@example.com", None),
        ("ali@example.c", None),
        ("a@b.c", None),
        ("ali!@example.com", None),
        ("ali%x@example.com", None),
        ("ali(x)@example.com", None),
        ("ali..veli@example.com", None),
        ("ali@-example.com", None),
        ("ali@example..com", None),
        ("@example.com", None),
        ("ali@example.com2", None),
        ("", None),
    ];

    #[test]
    fn emails_from_real_life_normalise_or_are_refused() {
        for (input, expected) in EMAILS {
            let got = Email::normalise(input).map(|e| e.as_str().to_owned()).ok();
            assert_eq!(got.as_deref(), *expected, "input {input:?}");
        }
        let long_local = "a".repeat(260);
        assert!(Email::parse_iys(&format!("{long_local}@ex.com")).is_err());
    }

    #[test]
    fn iys_wire_form_is_strict() {
        assert!(Phone::parse_iys("+905321234567").is_ok());
        assert!(Phone::parse_iys("05321234567").is_err());
        assert!(Phone::parse_iys("+90 532 123 45 67").is_err());
        assert!(Phone::parse_iys("+9005321234567").is_err());
        assert!(Email::parse_iys(" ayse@example.com").is_err());
        // IYS accepts upper-case and stores it lower-cased.
        assert_eq!(
            Email::parse_iys("AYSE@EXAMPLE.COM").unwrap().as_str(),
            "ayse@example.com"
        );
    }

    #[test]
    fn refusals_map_to_iys_codes_like_iys_does() {
        let long = Phone::parse_iys("9055436100000000").unwrap_err();
        let codes: Vec<_> = long
            .iys_errors("recipient")
            .iter()
            .map(|e| e.code.clone())
            .collect();
        assert_eq!(codes, ["H160", "H121"]);
        let bad = Phone::parse_iys("+90532").unwrap_err();
        assert_eq!(bad.iys_errors("recipient")[0].code, "H121");
        let mail = Email::parse_iys("örnek@mail.com").unwrap_err();
        let e = &mail.iys_errors("recipient")[0];
        assert_eq!(e.code, "H120");
        assert_eq!(e.value, Some(Value::String("örnek@mail.com".into())));
    }

    #[test]
    fn channel_fit() {
        let phone = Recipient::normalise("0532 123 45 67").unwrap();
        let mail = Recipient::normalise("a@example.com").unwrap();
        assert!(phone.fits(ConsentType::Mesaj) && phone.fits(ConsentType::Arama));
        assert!(!phone.fits(ConsentType::Eposta));
        assert!(mail.fits(ConsentType::Eposta) && !mail.fits(ConsentType::Mesaj));
        assert!(Recipient::normalise_for("a@example.com", ConsentType::Mesaj).is_err());
        assert!(Recipient::normalise_for("05321234567", ConsentType::Eposta).is_err());
        assert!(Recipient::parse_iys_for("+905321234567", ConsentType::Arama).is_ok());
    }

    #[test]
    fn masking_hides_the_middle() {
        let p = Phone::normalise("05321234567").unwrap();
        assert_eq!(p.masked(), "+90532*****67");
        let e = Email::normalise("ayse@example.com").unwrap();
        assert_eq!(e.masked(), "a***@example.com");
    }

    /// The shortcut for Turkish numbers relies on libphonenumber judging a ten-digit national
    /// number by its first six digits; checked here across the whole range (every 37th prefix,
    /// with the lowest and highest four-digit ending) and at the patterns' longest prefixes.
    #[test]
    fn turkish_validity_follows_the_first_six_digits() {
        let edges = [
            561011, 561610, 561619, 592211, 592212, 592213, 592461, 512000, 850000,
        ];
        for prefix in (200_000..1_000_000).step_by(37).chain(edges) {
            let low = Phone::from_libphonenumber(&format!("+90{prefix}0000")).is_some();
            let high = Phone::from_libphonenumber(&format!("+90{prefix}9999")).is_some();
            assert_eq!(low, high, "prefix {prefix}");
        }
    }

    #[test]
    fn the_turkish_shortcut_answers_as_libphonenumber() {
        for national in [
            "5321234567",
            "5610111234",
            "5616191234",
            "5922111234",
            "2121234567",
            "8501234567",
            "5121234567",
            "5991234567",
            "9001234567",
            "4441234567",
        ] {
            for input in [format!("+90{national}"), format!("0{national}")] {
                let slow = Phone::from_libphonenumber(&input);
                // Twice: the first answer is learnt, the second remembered.
                assert_eq!(Phone::normalise(&input).ok(), slow, "{input}");
                assert_eq!(Phone::normalise(&input).ok(), slow, "{input}");
            }
            let canonical = format!("+90{national}");
            assert_eq!(
                Phone::parse_iys(&canonical).ok(),
                Phone::from_libphonenumber(&canonical).filter(|p| p.0 == canonical)
            );
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn turkish_numbers_take_the_shortcut_to_libphonenumber_s_answer(n in 2_000_000_000u64..=9_999_999_999u64, plus in any::<bool>()) {
                let input = if plus { format!("+90{n}") } else { format!("0{n}") };
                let slow = Phone::from_libphonenumber(&input);
                prop_assert_eq!(Phone::normalise(&input).ok(), slow.clone());
                prop_assert_eq!(Phone::normalise(&input).ok(), slow);
            }

            #[test]
            fn phone_normalisation_is_idempotent(s in "[0-9 ()+-]{0,20}") {
                if let Ok(p) = Phone::normalise(&s) {
                    prop_assert_eq!(Phone::normalise(p.as_str()).unwrap(), p.clone());
                    prop_assert_eq!(Phone::parse_iys(p.as_str()).unwrap(), p);
                }
            }

            #[test]
            fn turkish_mobiles_in_any_dress_normalise_alike(n in 500_000_000u64..=559_999_999u64, dress in 0usize..5) {
                let digits = n.to_string();
                let input = match dress {
                    0 => format!("0{digits}"),
                    1 => format!("+90 {} {} {} {}", &digits[..3], &digits[3..6], &digits[6..8], &digits[8..]),
                    2 => format!("0090{digits}"),
                    3 => format!("90{digits}"),
                    _ => digits.clone(),
                };
                if let Ok(p) = Phone::normalise(&input) {
                    prop_assert_eq!(p.as_str(), format!("+90{digits}"));
                }
            }

            #[test]
            fn email_normalisation_is_idempotent(s in "[ ]{0,2}[A-Za-z0-9._+-]{1,12}@[A-Za-z0-9-]{1,10}\\.[A-Za-z]{2,4}[ ]{0,2}") {
                if let Ok(e) = Email::normalise(&s) {
                    prop_assert_eq!(Email::normalise(e.as_str()).unwrap(), e.clone());
                    prop_assert_eq!(e.as_str(), e.as_str().to_ascii_lowercase());
                }
            }
        }
    }
}
