//! Column headers to API fields: the default names (English and the Turkish headers brands
//! already use), `--map column=field` overrides, and turning one row of cell texts into a
//! [`Row`].

use serde_json::{Map, Value};

use crate::values::{self, Field};
use crate::{FileError, Row, RowError};

/// Where a column goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Field(Field),
    /// `evidence.<name>`: a key of the `evidence` object.
    Evidence(String),
    /// Not read (unknown, export-only, blank header, or mapped to `-`).
    Ignore,
}

/// Column headers mapped to the API's field names.
///
/// Built by [`Mapping::from_headers`] from a file's header row. Header names are matched
/// case-insensitively, with Turkish dotted/dotless i and other diacritics folded and spaces,
/// underscores, dashes and other punctuation ignored (`İZİN TÜRÜ`, `izin_turu` and `IzinTuru`
/// are one name).
#[derive(Debug, Clone)]
pub struct Mapping {
    headers: Vec<String>,
    targets: Vec<Target>,
}

/// Default header names, folded (see [`fold`]), for each field.
const ALIASES: &[(&str, Field)] = &[
    ("recipient", Field::Recipient),
    ("alici", Field::Recipient),
    ("phone", Field::Recipient),
    ("email", Field::Recipient),
    ("telefon", Field::Recipient),
    ("eposta", Field::Recipient),
    ("type", Field::Type),
    ("izinturu", Field::Type),
    ("channel", Field::Channel),
    ("kanal", Field::Channel),
    ("status", Field::Status),
    ("durum", Field::Status),
    ("onayret", Field::Status),
    ("onay1ret0", Field::Status),
    ("consentdate", Field::ConsentDate),
    ("izintarihi", Field::ConsentDate),
    ("source", Field::Source),
    ("izinkaynagi", Field::Source),
    ("recipienttype", Field::RecipientType),
    ("alicitipi", Field::RecipientType),
    ("category", Field::Category),
    ("kategori", Field::Category),
    ("profileid", Field::ProfileId),
    ("musterino", Field::ProfileId),
    ("actor", Field::Actor),
    ("hold", Field::Hold),
    ("evidence", Field::Evidence),
];

/// Export-only columns: read and ignored on import (never an error).
const EXPORT_ONLY: &[&str] = &["iysstate", "updatedat"];

/// Folds a header for matching: lower case, Turkish i's and common diacritics folded to ASCII,
/// everything but letters, digits and `.` dropped.
pub(crate) fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = match c {
            'İ' | 'I' | 'ı' | 'i' | 'Ì' | 'Í' | 'Î' | 'Ï' | 'ì' | 'í' | 'î' | 'ï' => 'i',
            'Ğ' | 'ğ' => 'g',
            'Ü' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'ù' | 'ú' | 'û' => 'u',
            'Ş' | 'ş' => 's',
            'Ö' | 'ö' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'ò' | 'ó' | 'ô' | 'õ' => 'o',
            'Ç' | 'ç' => 'c',
            'Â' | 'â' | 'À' | 'Á' | 'Ä' | 'Ã' | 'à' | 'á' | 'ä' | 'ã' => 'a',
            'É' | 'È' | 'Ê' | 'Ë' | 'é' | 'è' | 'ê' | 'ë' => 'e',
            'Ñ' | 'ñ' => 'n',
            c => c,
        };
        if c == '.' {
            out.push('.');
        } else if c.is_alphanumeric() {
            // Combining marks (a decomposed İ is I + U+0307) are not alphanumeric: dropped.
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// The default target of a header.
fn default_target(header: &str) -> Target {
    let trimmed = header.trim();
    if let Some(name) = evidence_key(trimmed) {
        return Target::Evidence(name.to_owned());
    }
    let f = fold(trimmed);
    if f.is_empty() || EXPORT_ONLY.contains(&f.as_str()) {
        return Target::Ignore;
    }
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == f)
        .map_or(Target::Ignore, |(_, field)| Target::Field(*field))
}

/// `evidence.<name>` (the prefix in any case) → `<name>`.
fn evidence_key(s: &str) -> Option<&str> {
    let prefix = s.get(..9)?;
    let name = s.get(9..)?.trim();
    (prefix.eq_ignore_ascii_case("evidence.") && !name.is_empty()).then_some(name)
}

/// The target an override names: an API field (by its name, case and punctuation ignored),
/// `evidence.<name>`, or `-`/empty to ignore the column.
fn override_target(field: &str) -> Option<Target> {
    let field = field.trim();
    if field.is_empty() || field == "-" {
        return Some(Target::Ignore);
    }
    if let Some(name) = evidence_key(field) {
        return Some(Target::Evidence(name.to_owned()));
    }
    let f = fold(field);
    if EXPORT_ONLY.contains(&f.as_str()) {
        return Some(Target::Ignore);
    }
    Field::ALL
        .iter()
        .find(|x| fold(x.name()) == f)
        .map(|x| Target::Field(*x))
}

impl Mapping {
    /// The default mapping of a header row, with the user's overrides `column=field` (from
    /// `--map`) on top.
    ///
    /// An override's column is the header as written or any spelling that folds to it; its
    /// field is an API field name (`recipient`, `type`, `channel`, `recipientType`, `status`,
    /// `consentDate`, `source`, `category`, `profileId`, `actor`, `hold`, `evidence`),
    /// `evidence.<name>`, or `-` to ignore the column. Columns nobody maps are ignored and listed
    /// by [`Mapping::ignored_columns`]; `iysState` and `updatedAt` (written by the export) are
    /// ignored too.
    ///
    /// Errors: an override naming a field that does not exist or a column the file does not
    /// have; two columns for one field; no recipient or profileId column; no status column.
    pub fn from_headers(
        headers: &[String],
        overrides: &[(String, String)],
    ) -> Result<Mapping, FileError> {
        let headers: Vec<String> = headers.iter().map(|h| h.trim().to_owned()).collect();
        let mut targets: Vec<Target> = headers.iter().map(|h| default_target(h)).collect();
        for (column, field) in overrides {
            let target = override_target(field).ok_or_else(|| FileError::UnknownField {
                column: column.clone(),
                field: field.clone(),
            })?;
            let col = column.trim();
            let exact: Vec<usize> = (0..headers.len()).filter(|&i| headers[i] == col).collect();
            let found = if exact.is_empty() {
                let f = fold(col);
                (0..headers.len())
                    .filter(|&i| !f.is_empty() && fold(&headers[i]) == f)
                    .collect()
            } else {
                exact
            };
            if found.is_empty() {
                return Err(FileError::UnknownColumn {
                    column: column.clone(),
                    found: non_blank(&headers),
                });
            }
            for i in found {
                if let Some(t) = targets.get_mut(i) {
                    *t = target.clone();
                }
            }
        }
        // One column per field (and per evidence key).
        for (i, t) in targets.iter().enumerate() {
            if matches!(t, Target::Ignore) {
                continue;
            }
            if let Some(j) = targets.iter().skip(i + 1).position(|u| u == t) {
                return Err(FileError::DuplicateField {
                    field: target_name(t),
                    first: headers[i].clone(),
                    second: headers[i + 1 + j].clone(),
                });
            }
        }
        let has = |f: Field| targets.contains(&Target::Field(f));
        let mut missing = Vec::new();
        if !has(Field::Recipient) && !has(Field::ProfileId) {
            missing.push(
                "a recipient column (recipient, ALICI, telefon, eposta, phone, email) \
                 or a profileId column (profileId, MUSTERI NO)",
            );
        }
        if !has(Field::Status) {
            missing.push("a status column (status, DURUM, ONAY/RET, ONAY(1)-RET(0))");
        }
        if !missing.is_empty() {
            return Err(FileError::MissingColumns {
                missing: missing.join(" and "),
                found: non_blank(&headers),
            });
        }
        Ok(Mapping { headers, targets })
    }

    /// The columns read, as (header, field) in file order; evidence columns as
    /// `evidence.<name>`.
    pub fn columns(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .zip(&self.targets)
            .filter(|(_, t)| !matches!(t, Target::Ignore))
            .map(|(h, t)| (h.clone(), target_name(t)))
            .collect()
    }

    /// The columns not read (unknown headers, export-only `iysState`/`updatedAt`, columns
    /// mapped to `-`), in file order; blank headers are left out.
    pub fn ignored_columns(&self) -> Vec<String> {
        self.headers
            .iter()
            .zip(&self.targets)
            .filter(|(h, t)| matches!(t, Target::Ignore) && !h.is_empty())
            .map(|(h, _)| h.clone())
            .collect()
    }

    /// The number of columns of the header row.
    pub(crate) fn width(&self) -> usize {
        self.headers.len()
    }

    /// The header of column `i` (for errors).
    pub(crate) fn header(&self, i: usize) -> &str {
        self.headers.get(i).map_or("", String::as_str)
    }

    /// Whether column `i` is read.
    pub(crate) fn is_used(&self, i: usize) -> bool {
        self.targets
            .get(i)
            .is_some_and(|t| !matches!(t, Target::Ignore))
    }

    /// One row of cell texts (column `i` of the header is `cells[i]`; missing cells are
    /// absent) → a [`Row`], values normalised (see [`crate::values`]).
    pub(crate) fn apply<S: AsRef<str>>(&self, line: u64, cells: &[Option<S>]) -> Row {
        let mut fields = Map::new();
        let mut evidence = Map::new();
        for (i, t) in self.targets.iter().enumerate() {
            let Some(Some(cell)) = cells.get(i) else {
                continue;
            };
            let v = cell.as_ref().trim();
            if v.is_empty() {
                continue;
            }
            match t {
                Target::Ignore => {}
                Target::Evidence(name) => {
                    evidence.insert(name.clone(), Value::String(v.to_owned()));
                }
                Target::Field(Field::Evidence) => {
                    // A JSON object in one column; its keys under any evidence.<name> columns.
                    match serde_json::from_str::<Value>(v) {
                        Ok(Value::Object(o)) => {
                            for (k, x) in o {
                                evidence.entry(k).or_insert(x);
                            }
                        }
                        _ => {
                            fields.insert("evidence".to_owned(), Value::String(v.to_owned()));
                        }
                    }
                }
                Target::Field(f) => {
                    fields.insert(f.name().to_owned(), values::normalise(*f, v));
                }
            }
        }
        if !evidence.is_empty() && !fields.contains_key("evidence") {
            fields.insert("evidence".to_owned(), Value::Object(evidence));
        }
        values::move_hub_channel(&mut fields);
        Row { line, fields }
    }
}

fn non_blank(headers: &[String]) -> Vec<String> {
    headers.iter().filter(|h| !h.is_empty()).cloned().collect()
}

fn target_name(t: &Target) -> String {
    match t {
        Target::Field(f) => f.name().to_owned(),
        Target::Evidence(name) => format!("evidence.{name}"),
        Target::Ignore => "-".to_owned(),
    }
}

/// A value cut to at most 200 characters, for error reports.
pub(crate) fn excerpt(s: &str) -> String {
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// A [`RowError`] for a row whose column count differs from the header's.
pub(crate) fn column_count(line: u64, expected: usize, found: usize) -> RowError {
    RowError {
        line,
        code: "column_count",
        field: None,
        value: None,
        message: format!(
            "line {line} has {found} column{} where the header has {expected}",
            if found == 1 { "" } else { "s" }
        ),
    }
}
