//! IYS's enumerations: `type`, `recipientType`, `status` and `source`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An enum value that is not one IYS accepts; `field` names the IYS field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {field}")]
pub struct InvalidEnumValue {
    pub field: &'static str,
    pub value: String,
}

/// Implements `as_str`, `ALL`, `Display`, `FromStr` and string serde for a fieldless enum.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub const FIELD: &'static str = $field;

            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = InvalidEnumValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(InvalidEnumValue { field: $field, value: s.to_owned() }),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

string_enum!(
    /// The IYS channel (`type`): what kind of commercial message the consent covers.
    ConsentType, "type" {
        /// Voice calls to a phone number.
        Arama = "ARAMA",
        /// SMS to a phone number.
        Mesaj = "MESAJ",
        /// E-mail.
        Eposta = "EPOSTA",
    }
);

impl ConsentType {
    /// Whether the channel is addressed by a phone number (MESAJ, ARAMA) rather than an e-mail.
    pub const fn needs_phone(self) -> bool {
        matches!(self, ConsentType::Arama | ConsentType::Mesaj)
    }
}

string_enum!(
    /// `recipientType`: individual (the default when omitted) or merchant.
    RecipientType, "recipientType" {
        Bireysel = "BIREYSEL",
        Tacir = "TACIR",
    }
);

// The macro's derive list is shared by every enum, so `Default` is written by hand here.
#[allow(clippy::derivable_impls)]
impl Default for RecipientType {
    fn default() -> Self {
        RecipientType::Bireysel
    }
}

string_enum!(
    /// `status`: permission given (ONAY) or refused/withdrawn (RET).
    ConsentStatus, "status" {
        Onay = "ONAY",
        Ret = "RET",
    }
);

string_enum!(
    /// The 13 sources a service provider (HS) may send.
    HsSource, "source" {
        /// Approved before 1 May 2015; consentDate must be exactly 2015-05-01 00:00:00.
        Hs2015 = "HS_2015",
        /// RET by the provider's own decision; only with RET and never on a first insert.
        HsKarar = "HS_KARAR",
        HsFizikselOrtam = "HS_FIZIKSEL_ORTAM",
        HsIslakImza = "HS_ISLAK_IMZA",
        HsEtkinlik = "HS_ETKINLIK",
        HsAtm = "HS_ATM",
        HsEortam = "HS_EORTAM",
        HsWeb = "HS_WEB",
        HsMobil = "HS_MOBIL",
        HsMesaj = "HS_MESAJ",
        HsEposta = "HS_EPOSTA",
        HsCagriMerkezi = "HS_CAGRI_MERKEZI",
        HsSosyalMedya = "HS_SOSYAL_MEDYA",
    }
);

/// Sources only IYS sets: a citizen acting through IYS's own channels.
///
/// IYS adds such values over time (e.g. `IYS_FRAME_SMS` in 2.4.3), so unknown `IYS_*` values are
/// kept as [`IysSource::Other`] instead of failing a whole changes-feed page.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IysSource {
    /// IYS short number 3338.
    Kisamesaj,
    /// IYS call centre / IVR.
    Cm,
    /// IYS web site.
    Web,
    /// A citizen added the brand for the first time (comes with `citizenName`).
    WebYeni,
    /// IYS mobile app.
    Mobil,
    /// An e-mail sent by IYS.
    Eposta,
    /// Line closure notified by an operator.
    AhsHatKapatma,
    FrameEposta,
    FrameSms,
    /// An `IYS_*` value this version does not know yet, kept verbatim.
    Other(String),
}

impl IysSource {
    const KNOWN: &'static [(&'static str, IysSource)] = &[
        ("IYS_KISAMESAJ", IysSource::Kisamesaj),
        ("IYS_CM", IysSource::Cm),
        ("IYS_WEB", IysSource::Web),
        ("IYS_WEB_YENI", IysSource::WebYeni),
        ("IYS_MOBIL", IysSource::Mobil),
        ("IYS_EPOSTA", IysSource::Eposta),
        ("IYS_AHS_HAT_KAPATMA", IysSource::AhsHatKapatma),
        ("IYS_FRAME_EPOSTA", IysSource::FrameEposta),
        ("IYS_FRAME_SMS", IysSource::FrameSms),
    ];

    /// The known values, for documentation and the simulator's citizen actions.
    pub fn known() -> impl Iterator<Item = IysSource> {
        Self::KNOWN.iter().map(|(_, s)| s.clone())
    }

    pub fn as_str(&self) -> &str {
        match self {
            IysSource::Other(s) => s,
            known => Self::KNOWN
                .iter()
                .find(|(_, v)| v == known)
                .map(|(s, _)| *s)
                .unwrap_or_default(),
        }
    }

    fn parse(s: &str) -> Option<IysSource> {
        if let Some((_, v)) = Self::KNOWN.iter().find(|(k, _)| *k == s) {
            return Some(v.clone());
        }
        let rest = s.strip_prefix("IYS_")?;
        let plausible = !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        plausible.then(|| IysSource::Other(s.to_owned()))
    }
}

/// `source`: where a consent came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Hs(HsSource),
    Iys(IysSource),
}

impl Source {
    pub fn as_str(&self) -> &str {
        match self {
            Source::Hs(s) => s.as_str(),
            Source::Iys(s) => s.as_str(),
        }
    }

    /// Whether a citizen made this movement through IYS (as opposed to the provider).
    pub fn is_iys(&self) -> bool {
        matches!(self, Source::Iys(_))
    }

    /// The HS source, if the provider may send this value.
    pub fn as_hs(&self) -> Option<HsSource> {
        match self {
            Source::Hs(s) => Some(*s),
            Source::Iys(_) => None,
        }
    }
}

impl From<HsSource> for Source {
    fn from(s: HsSource) -> Self {
        Source::Hs(s)
    }
}

impl From<IysSource> for Source {
    fn from(s: IysSource) -> Self {
        Source::Iys(s)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Source {
    type Err = InvalidEnumValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(hs) = s.parse::<HsSource>() {
            return Ok(Source::Hs(hs));
        }
        IysSource::parse(s)
            .map(Source::Iys)
            .ok_or_else(|| InvalidEnumValue {
                field: "source",
                value: s.to_owned(),
            })
    }
}

impl Serialize for Source {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_their_strings() {
        for t in ConsentType::ALL {
            assert_eq!(t.as_str().parse::<ConsentType>().unwrap(), *t);
        }
        for t in RecipientType::ALL {
            assert_eq!(t.as_str().parse::<RecipientType>().unwrap(), *t);
        }
        for s in ConsentStatus::ALL {
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(serde_json::from_str::<ConsentStatus>(&json).unwrap(), *s);
        }
        assert_eq!(
            HsSource::ALL.len(),
            13,
            "IYS's H119 lists exactly 13 HS sources"
        );
        for s in HsSource::ALL {
            let src: Source = s.as_str().parse().unwrap();
            assert_eq!(src, Source::Hs(*s));
        }
        for s in IysSource::known() {
            let src: Source = s.as_str().parse().unwrap();
            assert_eq!(src, Source::Iys(s));
        }
    }

    #[test]
    fn wrong_spellings_are_refused() {
        assert!(
            "RED".parse::<ConsentStatus>().is_err(),
            "RED is a known client bug"
        );
        assert!("EMAIL".parse::<ConsentType>().is_err());
        assert!("KURUMSAL".parse::<RecipientType>().is_err());
        assert!("onay".parse::<ConsentStatus>().is_err());
        assert!("HS_FIZIKSEL_OTAM".parse::<Source>().is_err());
        assert!("IYS_".parse::<Source>().is_err());
        assert!("IYS_lower".parse::<Source>().is_err());
    }

    #[test]
    fn unknown_iys_sources_are_preserved() {
        let src: Source = serde_json::from_str("\"IYS_KISA_LINK\"").unwrap();
        assert_eq!(src, Source::Iys(IysSource::Other("IYS_KISA_LINK".into())));
        assert_eq!(serde_json::to_string(&src).unwrap(), "\"IYS_KISA_LINK\"");
        assert!(src.is_iys());
        assert_eq!(src.as_hs(), None);
    }

    #[test]
    fn recipient_type_defaults_to_bireysel() {
        assert_eq!(RecipientType::default(), RecipientType::Bireysel);
        assert!(ConsentType::Mesaj.needs_phone());
        assert!(ConsentType::Arama.needs_phone());
        assert!(!ConsentType::Eposta.needs_phone());
    }
}
