//! Value normalisation for CSV and XLSX cells (NDJSON is the API's own shape and is passed
//! through). Only spelling is fixed here: status `1`/`0`/`evet`/`hayır`, upper-case codes,
//! common date shapes. Anything else is passed verbatim, so the hub's own validation rejects it
//! with IYS's H-codes. Phone numbers are not touched (the hub normalises them).

use serde_json::{Map, Value};

/// An API field a column can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Recipient,
    Type,
    Channel,
    RecipientType,
    Status,
    ConsentDate,
    Source,
    Category,
    ProfileId,
    Actor,
    Hold,
    /// The whole `evidence` object, as JSON text.
    Evidence,
}

impl Field {
    pub(crate) const ALL: &[Field] = &[
        Field::Recipient,
        Field::Type,
        Field::Channel,
        Field::RecipientType,
        Field::Status,
        Field::ConsentDate,
        Field::Source,
        Field::Category,
        Field::ProfileId,
        Field::Actor,
        Field::Hold,
        Field::Evidence,
    ];

    /// The API's name of the field.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Field::Recipient => "recipient",
            Field::Type => "type",
            Field::Channel => "channel",
            Field::RecipientType => "recipientType",
            Field::Status => "status",
            Field::ConsentDate => "consentDate",
            Field::Source => "source",
            Field::Category => "category",
            Field::ProfileId => "profileId",
            Field::Actor => "actor",
            Field::Hold => "hold",
            Field::Evidence => "evidence",
        }
    }
}

/// IYS's channel types, the only values `type` keeps.
const IYS_TYPES: &[&str] = &["MESAJ", "ARAMA", "EPOSTA"];
/// The hub's own channels: given as `type`, moved to `channel`.
const HUB_CHANNELS: &[&str] = &["PUSH", "WEB_PUSH", "IN_APP", "WHATSAPP"];

/// The normalised value of a trimmed, non-empty cell.
pub(crate) fn normalise(field: Field, v: &str) -> Value {
    let s = match field {
        Field::Status => status(v),
        Field::Type | Field::Channel | Field::RecipientType | Field::Source => upper(v),
        Field::ConsentDate => date(v).unwrap_or_else(|| v.to_owned()),
        Field::Hold => {
            if v.eq_ignore_ascii_case("true") {
                return Value::Bool(true);
            }
            if v.eq_ignore_ascii_case("false") {
                return Value::Bool(false);
            }
            v.to_owned()
        }
        Field::Recipient | Field::Category | Field::ProfileId | Field::Actor | Field::Evidence => {
            v.to_owned()
        }
    };
    Value::String(s)
}

/// `1`/`0`, onay/ret/evet/hayır in any case → ONAY/RET; else verbatim.
pub(crate) fn status(v: &str) -> String {
    match upper(v).as_str() {
        "1" | "ONAY" | "EVET" => "ONAY".to_owned(),
        "0" | "RET" | "HAYIR" => "RET".to_owned(),
        _ => v.to_owned(),
    }
}

/// Upper case for codes: ASCII, with Turkish `i`, `ı` and `İ` all becoming `I` (IYS's codes are
/// ASCII: `bireysel` → `BIREYSEL`, not `BİREYSEL`); other letters by Unicode's rules.
pub(crate) fn upper(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            'i' | 'ı' | 'İ' => out.push('I'),
            // A decomposed İ (I + combining dot above).
            '\u{307}' => {}
            c if c.is_ascii() => out.push(c.to_ascii_uppercase()),
            c => out.extend(c.to_uppercase()),
        }
    }
    out
}

/// A `type` that names a hub-only channel goes to `channel` (when `channel` is absent or the
/// same); a `type` that is neither stays for the hub to reject (H117).
pub(crate) fn move_hub_channel(fields: &mut Map<String, Value>) {
    let Some(Value::String(t)) = fields.get("type") else {
        return;
    };
    if IYS_TYPES.contains(&t.as_str()) || !HUB_CHANNELS.contains(&t.as_str()) {
        return;
    }
    let t = t.clone();
    match fields.get("channel") {
        None => {
            fields.remove("type");
            fields.insert("channel".to_owned(), Value::String(t));
        }
        Some(Value::String(c)) if *c == t => {
            fields.remove("type");
        }
        // Different: both stay, the hub answers that they disagree.
        Some(_) => {}
    }
}

/// `DD.MM.YYYY HH:MM[:SS]`, `DD/MM/YYYY HH:MM[:SS]`, `YYYY-MM-DD[T ]HH:MM[:SS]` →
/// `YYYY-MM-DD HH:MM:SS`. Day, month and hour may have one digit. Only the shape is checked
/// (`31.02.2024 10:00` becomes `2024-02-31 10:00:00`, for the hub to reject); other shapes are
/// `None`.
pub(crate) fn date(v: &str) -> Option<String> {
    let (d, t) = v.split_once(['T', ' '])?;
    let t = t.trim_start();
    let (y, m, d) = if let Some((y, rest)) = split3(d, '-') {
        if y.len() != 4 {
            return None;
        }
        (y, rest.0, rest.1)
    } else {
        let sep = if d.contains('.') { '.' } else { '/' };
        let (dd, (mm, yy)) = split3(d, sep)?;
        if yy.len() != 4 {
            return None;
        }
        (yy, mm, dd)
    };
    if !digits(y, 4, 4) || !digits(m, 1, 2) || !digits(d, 1, 2) {
        return None;
    }
    let mut parts = t.split(':');
    let hh = parts.next()?;
    let mi = parts.next()?;
    let ss = parts.next().unwrap_or("00");
    if parts.next().is_some() || !digits(hh, 1, 2) || !digits(mi, 2, 2) || !digits(ss, 2, 2) {
        return None;
    }
    Some(format!("{y}-{m:0>2}-{d:0>2} {hh:0>2}:{mi}:{ss}"))
}

/// `a<sep>b<sep>c` → (a, (b, c)).
fn split3(s: &str, sep: char) -> Option<(&str, (&str, &str))> {
    let (a, rest) = s.split_once(sep)?;
    let (b, c) = rest.split_once(sep)?;
    Some((a, (b, c)))
}

fn digits(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let ok = [
            ("01.02.2024 10:05", "2024-02-01 10:05:00"),
            ("01.02.2024 10:05:07", "2024-02-01 10:05:07"),
            ("1.2.2024 9:05", "2024-02-01 09:05:00"),
            ("01/02/2024 10:05:07", "2024-02-01 10:05:07"),
            ("2024-02-01T10:05:07", "2024-02-01 10:05:07"),
            ("2024-02-01 10:05", "2024-02-01 10:05:00"),
            ("2024-02-01 10:05:07", "2024-02-01 10:05:07"),
            ("2024-02-31 10:05:07", "2024-02-31 10:05:07"),
        ];
        for (i, o) in ok {
            assert_eq!(date(i).as_deref(), Some(o), "{i}");
        }
        for bad in [
            "2024-02-01",
            "01.02.2024",
            "2024-02-01T10:05:07Z",
            "2024-02-01T10:05:07.123",
            "24-02-01 10:05",
            "yesterday",
            "01.02.2024 10",
            "01.02.2024 10:5",
            "",
            "ş.ğ.ü ı:ö",
        ] {
            assert_eq!(date(bad), None, "{bad}");
        }
    }

    #[test]
    fn statuses_and_codes() {
        for (i, o) in [
            ("1", "ONAY"),
            ("0", "RET"),
            ("onay", "ONAY"),
            ("Ret", "RET"),
            ("evet", "ONAY"),
            ("Hayır", "RET"),
            ("HAYIR", "RET"),
            ("yes", "yes"),
            ("2", "2"),
        ] {
            assert_eq!(status(i), o);
        }
        assert_eq!(upper("mesaj"), "MESAJ");
        assert_eq!(upper("bireysel"), "BIREYSEL");
        assert_eq!(upper("BİREYSEL"), "BIREYSEL");
        assert_eq!(upper("tacır"), "TACIR");
        assert_eq!(upper("hs_web"), "HS_WEB");
        assert_eq!(upper("web_push"), "WEB_PUSH");
    }

    #[test]
    fn hub_channels_move() {
        let mut m = Map::new();
        m.insert("type".into(), "PUSH".into());
        move_hub_channel(&mut m);
        assert_eq!(m.get("channel"), Some(&Value::from("PUSH")));
        assert!(!m.contains_key("type"));
        let mut m = Map::new();
        m.insert("type".into(), "FAX".into());
        move_hub_channel(&mut m);
        assert_eq!(m.get("type"), Some(&Value::from("FAX")));
        let mut m = Map::new();
        m.insert("type".into(), "PUSH".into());
        m.insert("channel".into(), "IN_APP".into());
        move_hub_channel(&mut m);
        assert_eq!(m.len(), 2);
    }
}
