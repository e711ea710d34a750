//! Writing exports: CSV and NDJSON in the names the reader takes by default, so an export
//! re-imports to the same state.

use std::fmt;
use std::io::{self, BufWriter, Write};

use serde_json::{Map, Value};

/// The export's columns, in order: the names [`crate::read`] maps by default. `evidence` holds
/// the evidence object as JSON text; `iysState` and `updatedAt` are informational and ignored on
/// import.
pub const EXPORT_COLUMNS: &[&str] = &[
    "recipient",
    "type",
    "channel",
    "recipientType",
    "status",
    "consentDate",
    "source",
    "category",
    "profileId",
    "evidence",
    "iysState",
    "updatedAt",
];

fn unknown_column(name: &str, columns: &[String]) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "no column {name:?} in this export (columns: {})",
            columns.join(", ")
        ),
    )
}

/// CSV: a header row, then one line per row; RFC 4180 quoting (a field is quoted when it holds
/// a comma, a quote, CR or LF, quotes doubled), `\n` line ends, UTF-8 without BOM. An absent
/// value is an empty field.
pub struct CsvWriter<W: Write> {
    w: csv::Writer<W>,
    columns: Vec<String>,
    row: Vec<Vec<u8>>,
}

impl<W: Write> fmt::Debug for CsvWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvWriter")
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

impl<W: Write> CsvWriter<W> {
    /// A writer of [`EXPORT_COLUMNS`]; writes the header row.
    pub fn new(w: W) -> io::Result<CsvWriter<W>> {
        CsvWriter::with_columns(w, EXPORT_COLUMNS)
    }

    /// A writer of these columns (e.g. [`EXPORT_COLUMNS`] plus `evidence.<name>` columns);
    /// writes the header row.
    pub fn with_columns(w: W, columns: &[&str]) -> io::Result<CsvWriter<W>> {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .quote_style(csv::QuoteStyle::Necessary)
            .buffer_capacity(1 << 16)
            .from_writer(w);
        w.write_record(columns)?;
        Ok(CsvWriter {
            w,
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            row: vec![Vec::new(); columns.len()],
        })
    }

    /// One row: each `(column, value)` into its column (`None` and unnamed columns are empty).
    /// A column the writer does not have is an `InvalidInput` error and nothing is written.
    pub fn write_row(&mut self, fields: &[(&str, Option<&str>)]) -> io::Result<()> {
        for cell in &mut self.row {
            cell.clear();
        }
        for (name, value) in fields {
            let i = self
                .columns
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| unknown_column(name, &self.columns))?;
            if let (Some(cell), Some(v)) = (self.row.get_mut(i), value) {
                cell.extend_from_slice(v.as_bytes());
            }
        }
        self.w.write_record(&self.row)?;
        Ok(())
    }

    /// Flushes and gives the writer back.
    pub fn finish(self) -> io::Result<W> {
        self.w.into_inner().map_err(|e| e.into_error())
    }
}

/// NDJSON: one JSON object per line (`\n`), in the API's shape: absent values are left out,
/// `evidence` (JSON text of an object) and `evidence.<name>` values go into one `evidence`
/// object, `hold` `true`/`false` are booleans; every other value is a string. Keys keep the
/// order given.
pub struct NdjsonWriter<W: Write> {
    w: BufWriter<W>,
    line: Vec<u8>,
}

impl<W: Write> fmt::Debug for NdjsonWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NdjsonWriter").finish_non_exhaustive()
    }
}

impl<W: Write> NdjsonWriter<W> {
    pub fn new(w: W) -> NdjsonWriter<W> {
        NdjsonWriter {
            w: BufWriter::with_capacity(1 << 16, w),
            line: Vec::new(),
        }
    }

    /// One row (see the type's doc for how values are written).
    pub fn write_row(&mut self, fields: &[(&str, Option<&str>)]) -> io::Result<()> {
        let mut evidence: Option<Map<String, Value>> = None;
        let mut raw_evidence: Option<&str> = None;
        self.line.clear();
        self.line.push(b'{');
        for (name, value) in fields {
            let Some(v) = value else { continue };
            if let Some(key) = name.strip_prefix("evidence.") {
                evidence
                    .get_or_insert_default()
                    .insert(key.to_owned(), Value::String((*v).to_owned()));
                continue;
            }
            if *name == "evidence" {
                match serde_json::from_str::<Value>(v) {
                    Ok(Value::Object(o)) => evidence.get_or_insert_default().extend(o),
                    _ => raw_evidence = Some(v),
                }
                continue;
            }
            self.key(name)?;
            match (*name, *v) {
                ("hold", "true") => self.line.extend_from_slice(b"true"),
                ("hold", "false") => self.line.extend_from_slice(b"false"),
                _ => serde_json::to_writer(&mut self.line, v)?,
            }
        }
        if let Some(raw) = raw_evidence {
            self.key("evidence")?;
            serde_json::to_writer(&mut self.line, raw)?;
        } else if let Some(e) = evidence {
            self.key("evidence")?;
            serde_json::to_writer(&mut self.line, &e)?;
        }
        self.line.extend_from_slice(b"}\n");
        self.w.write_all(&self.line)
    }

    /// One JSON object as it is, on one line.
    pub fn write_object(&mut self, object: &Map<String, Value>) -> io::Result<()> {
        serde_json::to_writer(&mut self.w, object)?;
        self.w.write_all(b"\n")
    }

    fn key(&mut self, name: &str) -> io::Result<()> {
        if self.line.len() > 1 {
            self.line.push(b',');
        }
        serde_json::to_writer(&mut self.line, name)?;
        self.line.push(b':');
        Ok(())
    }

    /// Flushes and gives the writer back.
    pub fn finish(self) -> io::Result<W> {
        self.w.into_inner().map_err(|e| e.into_error())
    }
}
