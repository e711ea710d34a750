//! Consent files for bulk import and export.
//!
//! [`read`] turns a CSV, NDJSON or XLSX file into [`Row`]s in the API's field names (the body of
//! one change of `POST /api/v1/brands/{b}/consents`), ready for the hub's change parser, with a
//! [`RowError`] for each row that cannot become a change at all and a [`FileError`] when the file
//! as a whole cannot be read. CSV and NDJSON are streamed; XLSX is read whole (calamine needs the
//! whole workbook).
//!
//! - CSV and XLSX: a header row, mapped to fields by [`Mapping`] (English and the Turkish headers
//!   brands use, plus `--map column=field` overrides), values normalised by spelling only
//!   (status `1`/`0`, upper-case codes, common date shapes).
//! - NDJSON: one JSON object per line in the API's own shape, passed through untouched except
//!   that the export-only keys `iysState` and `updatedAt` are dropped.
//!
//! [`CsvWriter`] and [`NdjsonWriter`] write exports in the columns the reader takes by default
//! ([`EXPORT_COLUMNS`]), so an export re-imports to the same state.

mod mapping;
mod read;
mod values;
mod write;
mod xlsx;

use std::fmt;
use std::str::FromStr;

pub use mapping::Mapping;
pub use read::{Rows, read};
pub use write::{CsvWriter, EXPORT_COLUMNS, NdjsonWriter};

/// The API fields a column can be mapped to (besides `evidence.<name>`, and `-` to ignore it).
pub fn field_names() -> impl Iterator<Item = &'static str> {
    values::Field::ALL.iter().map(|f| f.name())
}

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Csv,
    Ndjson,
    Xlsx,
}

impl Format {
    /// `csv`, `ndjson` or `xlsx`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::Xlsx => "xlsx",
        }
    }

    /// The format of a file: by its name's extension (`.csv`/`.tsv`/`.txt`, `.ndjson`/`.jsonl`/
    /// `.json`, `.xlsx`/`.xlsm`), else by its first bytes: a ZIP (`PK\x03\x04`) is XLSX, a first
    /// non-blank byte `{` is NDJSON, anything else CSV.
    pub fn detect(file_name: Option<&str>, head: &[u8]) -> Format {
        if let Some(ext) = file_name
            .and_then(|n| n.rsplit_once('.'))
            .map(|(_, e)| e.to_ascii_lowercase())
        {
            match ext.as_str() {
                "csv" | "tsv" | "txt" => return Format::Csv,
                "ndjson" | "jsonl" | "json" => return Format::Ndjson,
                "xlsx" | "xlsm" => return Format::Xlsx,
                _ => {}
            }
        }
        if head.starts_with(b"PK\x03\x04") {
            return Format::Xlsx;
        }
        let head = head.strip_prefix(read::BOM).unwrap_or(head);
        match head.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Format::Ndjson,
            _ => Format::Csv,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = FileError;

    /// `csv`, `ndjson` or `xlsx`, in any case.
    fn from_str(s: &str) -> Result<Format, FileError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "ndjson" => Ok(Format::Ndjson),
            "xlsx" => Ok(Format::Xlsx),
            _ => Err(FileError::UnknownFormat(s.to_owned())),
        }
    }
}

/// One data row, in the API's field names, ready for the hub's change parser.
///
/// From CSV and XLSX, every value is a JSON string except `hold` (`true`/`false` become booleans)
/// and `evidence` (an object of the `evidence.<name>` columns and/or an `evidence` column's JSON
/// object); empty cells are absent. From NDJSON, the line's object as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The 1-based physical line where the record starts (CSV, NDJSON; the header is line 1 when
    /// nothing precedes it), or the sheet's row number (XLSX).
    pub line: u64,
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// A row that cannot become a change at all.
///
/// Codes: `invalid_encoding` (bytes that are not UTF-8; `field` names the column),
/// `column_count` (more or fewer cells than the header), `invalid_json` (an NDJSON line that is
/// not a JSON object), `line_too_long` (an NDJSON line over [`MAX_LINE`]), `cell_error` (an XLSX
/// cell holding an error such as `#N/A`), and `read_failed` (the file could not be read further:
/// this one is fatal, the iteration ends after it; see [`RowError::is_fatal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub code: &'static str,
    /// The column's header (CSV, XLSX) or the key (NDJSON) at fault, when one is.
    pub field: Option<String>,
    /// The offending value, cut to 200 characters (invalid bytes replaced by U+FFFD).
    pub value: Option<String>,
    pub message: String,
}

impl RowError {
    /// Whether the file could not be read past this point (the import should stop, not go on
    /// as if the rest of the file were empty).
    pub fn is_fatal(&self) -> bool {
        self.code == "read_failed"
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {} ({})", self.line, self.message, self.code)
    }
}

impl std::error::Error for RowError {}

/// The longest NDJSON line read (64 MiB); longer lines are a `line_too_long` [`RowError`],
/// skipped without being held in memory.
pub const MAX_LINE: usize = 64 << 20;

/// A problem with the whole file. An empty CSV or XLSX file (no header) is one; a header with no
/// rows is not (it yields zero rows), nor is an empty NDJSON file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("reading the file failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the file is empty: a header row is expected on its first non-blank line")]
    Empty,
    #[error("the header row (line {line}) is not UTF-8 text: save the file as UTF-8")]
    HeaderNotUtf8 { line: u64 },
    #[error(
        "missing {missing}; the header row has {}{}",
        list(found),
        one_column_hint(found)
    )]
    MissingColumns { missing: String, found: Vec<String> },
    #[error(
        "the columns {first:?} and {second:?} are both read as {field}: map one of them to another field, or to - to ignore it (--map {second:?}=-)"
    )]
    DuplicateField {
        field: String,
        first: String,
        second: String,
    },
    #[error(
        "--map {column}={field}: there is no field {field:?}; the fields are recipient, type, channel, recipientType, status, consentDate, source, category, profileId, actor, hold, evidence, evidence.<name>, or - to ignore the column"
    )]
    UnknownField { column: String, field: String },
    #[error(
        "--map {column}=…: the file has no column {column:?}; the header row has {}",
        list(found)
    )]
    UnknownColumn { column: String, found: Vec<String> },
    #[error("the XLSX file cannot be read: {0}")]
    Xlsx(String),
    #[error("unknown format {0:?}: csv, ndjson or xlsx")]
    UnknownFormat(String),
}

fn list(found: &[String]) -> String {
    if found.is_empty() {
        return "no columns".to_owned();
    }
    found
        .iter()
        .map(|h| format!("{h:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn one_column_hint(found: &[String]) -> &'static str {
    if found.len() == 1 {
        " (one column only: is the file separated by something other than a comma, a semicolon or a tab?)"
    } else {
        ""
    }
}
