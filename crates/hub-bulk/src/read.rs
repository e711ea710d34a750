//! Reading: CSV and NDJSON streamed record by record, XLSX through [`crate::xlsx`]; one
//! [`Rows`] iterator over all three.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, BufRead, BufReader, Chain, Cursor, Read};
use std::sync::{Arc, Mutex, PoisonError};

use csv::ByteRecord;
use serde_json::Value;

use crate::mapping::{Mapping, column_count, excerpt};
use crate::xlsx::XlsxRows;
use crate::{FileError, Format, MAX_LINE, Row, RowError};

pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The input, boxed.
type Input = Box<dyn Read + Send>;

/// The bytes read to choose the delimiter, put back in front of the rest of the input.
type Resumed = Chain<Cursor<Vec<u8>>, BufReader<Input>>;

/// How much of the header line is looked at to choose the delimiter.
const SNIFF: u64 = 64 << 10;

/// Reads a consent file.
///
/// CSV and NDJSON are streamed: only the current record is held (a record may be long: a 1 MB
/// line is fine). XLSX is read whole into memory first (calamine needs the whole workbook),
/// then its first sheet is read row by row.
///
/// The header row (CSV, XLSX) is read here: a [`FileError`] when the file is empty, its header
/// is not UTF-8 or lacks a required column, or an override does not fit (see
/// [`Mapping::from_headers`]). Rows are then read lazily by iterating the [`Rows`].
pub fn read(
    format: Format,
    input: Input,
    overrides: &[(String, String)],
) -> Result<Rows, FileError> {
    let inner = match format {
        Format::Csv => Inner::Csv(Box::new(CsvRows::open(input, overrides)?)),
        Format::Ndjson => Inner::Ndjson(NdjsonRows::new(input, MAX_LINE)),
        Format::Xlsx => Inner::Xlsx(Box::new(XlsxRows::open(input, overrides)?)),
    };
    Ok(Rows { inner })
}

/// The rows of a file, in file order: a [`Row`] or a [`RowError`] for each non-blank record
/// after the header. Blank lines (and CSV records whose cells are all blank) are skipped.
pub struct Rows {
    inner: Inner,
}

enum Inner {
    Csv(Box<CsvRows>),
    Ndjson(NdjsonRows),
    Xlsx(Box<XlsxRows>),
}

impl fmt::Debug for Rows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = match &self.inner {
            Inner::Csv(_) => Format::Csv,
            Inner::Ndjson(_) => Format::Ndjson,
            Inner::Xlsx(_) => Format::Xlsx,
        };
        f.debug_struct("Rows")
            .field("format", &format)
            .field("mapping", &self.mapping())
            .finish_non_exhaustive()
    }
}

impl Rows {
    /// The header mapping (CSV, XLSX); `None` for NDJSON, which is in the API's names.
    pub fn mapping(&self) -> Option<&Mapping> {
        match &self.inner {
            Inner::Csv(c) => Some(&c.mapping),
            Inner::Ndjson(_) => None,
            Inner::Xlsx(x) => Some(x.mapping()),
        }
    }

    /// Skips every record that starts on or before `line` without decoding it (to resume an
    /// import after its last committed row); the next item is the first record after `line`,
    /// with its line number counted as in a full read. A `line` before the current position
    /// skips nothing.
    pub fn skip_through(&mut self, line: u64) -> Result<(), FileError> {
        match &mut self.inner {
            Inner::Csv(c) => c.skip_through(line),
            Inner::Ndjson(n) => n.skip_through(line),
            Inner::Xlsx(x) => {
                x.skip_through(line);
                Ok(())
            }
        }
    }
}

impl Iterator for Rows {
    type Item = Result<Row, RowError>;

    fn next(&mut self) -> Option<Result<Row, RowError>> {
        match &mut self.inner {
            Inner::Csv(c) => c.next_row(),
            Inner::Ndjson(n) => n.next_row(),
            Inner::Xlsx(x) => x.next_row(),
        }
    }
}

/// The `read_failed` error that ends an iteration.
fn read_failed(line: u64, e: &dyn fmt::Display) -> RowError {
    RowError {
        line,
        code: "read_failed",
        field: None,
        value: None,
        message: format!("reading the file failed after line {line}: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// CSV

struct CsvRows {
    reader: csv::Reader<LineTap<Resumed>>,
    /// Where the empty lines are that the CSV parser skips (see [`LineTap`]).
    blanks: Blanks,
    mapping: Mapping,
    rec: ByteRecord,
    /// `rec` holds a record read ahead by `skip_through`.
    pending: bool,
    done: bool,
    /// The line of the last record read (for `read_failed`).
    last_line: u64,
}

impl CsvRows {
    fn open(input: Input, overrides: &[(String, String)]) -> Result<CsvRows, FileError> {
        let mut br = BufReader::with_capacity(1 << 16, input);
        // The first non-blank line (its first 64 KiB) chooses the delimiter. What is read here
        // is put back in front of the rest.
        let mut prefix = Vec::new();
        let mut sniff = 0..0;
        loop {
            let start = prefix.len();
            let n = (&mut br).take(SNIFF).read_until(b'\n', &mut prefix)?;
            if start == 0 && prefix.starts_with(BOM) {
                prefix.drain(..BOM.len());
            }
            if n == 0 {
                break;
            }
            let line = prefix.get(start..).unwrap_or_default();
            if !line.iter().all(u8::is_ascii_whitespace) {
                sniff = start..prefix.len();
                break;
            }
            if prefix.len() > 1 << 20 {
                break; // a megabyte of blank lines: stop looking
            }
        }
        let delimiter = detect_delimiter(prefix.get(sniff).unwrap_or_default());
        let blanks = Blanks::default();
        let tap = LineTap {
            inner: Cursor::new(prefix).chain(br),
            pos: 0,
            after_newline: true,
            blanks: blanks.clone(),
        };
        // Records end at LF only (a CR before it stays in the last cell and is trimmed away
        // with the other white space): the parser's line count is right only then.
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .terminator(csv::Terminator::Any(b'\n'))
            .buffer_capacity(1 << 16)
            .from_reader(tap);
        let mut rec = ByteRecord::new();
        let header_line = loop {
            if !reader.read_byte_record(&mut rec).map_err(io::Error::from)? {
                return Err(FileError::Empty);
            }
            if !is_blank(&rec) {
                break blanks.line_of(&rec);
            }
        };
        let headers = rec
            .iter()
            .map(|h| std::str::from_utf8(h).map(str::to_owned))
            .collect::<Result<Vec<String>, _>>()
            .map_err(|_| FileError::HeaderNotUtf8 { line: header_line })?;
        let mapping = Mapping::from_headers(&headers, overrides)?;
        Ok(CsvRows {
            reader,
            blanks,
            mapping,
            rec,
            pending: false,
            done: false,
            last_line: header_line,
        })
    }

    /// Reads the next record into `rec` (or takes the one read ahead): false at the end.
    fn advance(&mut self) -> Result<bool, csv::Error> {
        if self.pending {
            self.pending = false;
            return Ok(true);
        }
        if self.done {
            return Ok(false);
        }
        match self.reader.read_byte_record(&mut self.rec) {
            Ok(true) => {
                self.last_line = self.blanks.line_of(&self.rec);
                Ok(true)
            }
            Ok(false) => {
                self.done = true;
                Ok(false)
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }

    fn next_row(&mut self) -> Option<Result<Row, RowError>> {
        loop {
            match self.advance() {
                Ok(true) if is_blank(&self.rec) => continue,
                Ok(true) => return Some(self.convert()),
                Ok(false) => return None,
                Err(e) => return Some(Err(read_failed(self.last_line, &e))),
            }
        }
    }

    fn convert(&self) -> Result<Row, RowError> {
        let line = self.last_line;
        let width = self.mapping.width();
        let n = self.rec.len();
        if n < width || (n > width && !self.rec.iter().skip(width).all(blank)) {
            return Err(column_count(line, width, n));
        }
        let mut cells = Vec::with_capacity(width);
        for (i, raw) in self.rec.iter().take(width).enumerate() {
            match std::str::from_utf8(raw) {
                Ok(s) if !s.contains('\0') => cells.push(self.mapping.is_used(i).then_some(s)),
                utf8 => {
                    let header = self.mapping.header(i);
                    let what = if utf8.is_ok() {
                        "holds the NUL character (U+0000), which no text field can store"
                    } else {
                        "is not UTF-8 text (save the file as UTF-8)"
                    };
                    return Err(RowError {
                        line,
                        code: "invalid_encoding",
                        field: Some(header.to_owned()),
                        value: Some(excerpt(&String::from_utf8_lossy(raw))),
                        message: format!("line {line}: the value of column {header:?} {what}"),
                    });
                }
            }
        }
        Ok(self.mapping.apply(line, &cells))
    }

    fn skip_through(&mut self, line: u64) -> Result<(), FileError> {
        loop {
            if !self.advance().map_err(io::Error::from)? {
                return Ok(());
            }
            if self.last_line > line {
                self.pending = true;
                return Ok(());
            }
        }
    }
}

/// The byte offsets of empty lines (a LF at the start of a line) not yet passed by the parser.
///
/// The `csv` parser skips empty lines but reports a record that follows them at the first empty
/// line's position; the tap below notes where empty lines are, so that a record's line can be
/// moved past them. Only offsets in the parser's read-ahead are kept.
#[derive(Clone, Default)]
struct Blanks(Arc<Mutex<VecDeque<u64>>>);

impl Blanks {
    /// The physical line where a record starts.
    fn line_of(&self, rec: &ByteRecord) -> u64 {
        let Some(p) = rec.position() else {
            return 0;
        };
        let start = p.byte();
        let mut blanks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        while blanks.front().is_some_and(|&b| b < start) {
            blanks.pop_front();
        }
        let mut skipped = 0;
        while blanks.front() == Some(&(start + skipped)) {
            blanks.pop_front();
            skipped += 1;
        }
        p.line() + skipped
    }
}

/// A reader that notes the offsets of empty lines in [`Blanks`] as bytes go through it.
struct LineTap<R> {
    inner: R,
    pos: u64,
    after_newline: bool,
    blanks: Blanks,
}

impl<R: Read> Read for LineTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut found = Vec::new();
        for (i, &b) in buf.iter().take(n).enumerate() {
            if b == b'\n' {
                if self.after_newline {
                    found.push(self.pos + i as u64);
                }
                self.after_newline = true;
            } else {
                self.after_newline = false;
            }
        }
        self.pos += n as u64;
        if !found.is_empty() {
            self.blanks
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(found);
        }
        Ok(n)
    }
}

fn blank(field: &[u8]) -> bool {
    field.iter().all(u8::is_ascii_whitespace)
}

fn is_blank(rec: &ByteRecord) -> bool {
    rec.iter().all(blank)
}

/// `,`, `;` or tab: the one that splits the line into the most fields (outside double quotes);
/// a comma on a tie or when none occurs.
pub(crate) fn detect_delimiter(line: &[u8]) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for &b in line {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let mut best = (b',', counts[0]);
    for (d, c) in [(b';', counts[1]), (b'\t', counts[2])] {
        if c > best.1 {
            best = (d, c);
        }
    }
    best.0
}

// ---------------------------------------------------------------------------------------------
// NDJSON

/// Keys the export writes that are not part of a change: dropped on import.
const EXPORT_ONLY_KEYS: &[&str] = &["iysState", "updatedAt"];

struct NdjsonRows {
    input: BufReader<Input>,
    buf: Vec<u8>,
    /// The line last read.
    line: u64,
    done: bool,
    max_line: usize,
}

/// What `read_line` found.
enum Line {
    Eof,
    Text,
    TooLong,
}

impl NdjsonRows {
    fn new(input: Input, max_line: usize) -> NdjsonRows {
        NdjsonRows {
            input: BufReader::with_capacity(1 << 16, input),
            buf: Vec::new(),
            line: 0,
            done: false,
            max_line,
        }
    }

    /// The next physical line into `buf`; a line over `max_line` is skipped to its end without
    /// being held.
    fn read_line(&mut self) -> io::Result<Line> {
        self.buf.clear();
        if self.done {
            return Ok(Line::Eof);
        }
        let limit = self.max_line as u64 + 1;
        let n = match (&mut self.input)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
        {
            Ok(n) => n,
            Err(e) => {
                self.done = true;
                return Err(e);
            }
        };
        if n == 0 {
            self.done = true;
            return Ok(Line::Eof);
        }
        self.line += 1;
        if self.buf.last() != Some(&b'\n') && self.buf.len() > self.max_line {
            self.buf.clear();
            loop {
                let avail = self.input.fill_buf()?;
                if avail.is_empty() {
                    break;
                }
                if let Some(i) = avail.iter().position(|&b| b == b'\n') {
                    self.input.consume(i + 1);
                    break;
                }
                let all = avail.len();
                self.input.consume(all);
            }
            return Ok(Line::TooLong);
        }
        Ok(Line::Text)
    }

    fn next_row(&mut self) -> Option<Result<Row, RowError>> {
        loop {
            match self.read_line() {
                Ok(Line::Eof) => return None,
                Ok(Line::TooLong) => {
                    let line = self.line;
                    return Some(Err(RowError {
                        line,
                        code: "line_too_long",
                        field: None,
                        value: None,
                        message: format!("line {line} is longer than {} MiB", self.max_line >> 20),
                    }));
                }
                Ok(Line::Text) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(read_failed(self.line, &e)));
                }
            }
            let mut bytes = self.buf.as_slice();
            if self.line == 1 {
                bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
            }
            if blank(bytes) {
                continue;
            }
            return Some(self.convert(bytes));
        }
    }

    fn convert(&self, bytes: &[u8]) -> Result<Row, RowError> {
        let line = self.line;
        let text = std::str::from_utf8(bytes).map_err(|_| RowError {
            line,
            code: "invalid_encoding",
            field: None,
            value: Some(excerpt(String::from_utf8_lossy(bytes).trim())),
            message: format!("line {line} is not UTF-8 text"),
        })?;
        let invalid = |message: String| RowError {
            line,
            code: "invalid_json",
            field: None,
            value: Some(excerpt(text.trim())),
            message,
        };
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(mut fields)) => {
                for k in EXPORT_ONLY_KEYS {
                    fields.remove(*k);
                }
                Ok(Row { line, fields })
            }
            Ok(other) => Err(invalid(format!(
                "line {line} is a JSON {}, not an object",
                kind(&other)
            ))),
            Err(e) => Err(invalid(format!("line {line} is not valid JSON: {e}"))),
        }
    }

    fn skip_through(&mut self, line: u64) -> Result<(), FileError> {
        while self.line < line {
            if let Line::Eof = self.read_line()? {
                break;
            }
        }
        Ok(())
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_can_move_to_another_thread() {
        fn send<T: Send>() {}
        send::<Rows>();
        send::<crate::CsvWriter<Vec<u8>>>();
        send::<crate::NdjsonWriter<Vec<u8>>>();
    }

    #[test]
    fn delimiters() {
        assert_eq!(detect_delimiter(b"a,b,c\n"), b',');
        assert_eq!(detect_delimiter(b"a;b;c\r\n"), b';');
        assert_eq!(detect_delimiter(b"a\tb\tc"), b'\t');
        assert_eq!(detect_delimiter(b"\"a;b\",c"), b',');
        assert_eq!(detect_delimiter(b"a;b,c;d"), b';');
        assert_eq!(detect_delimiter(b"a"), b',');
        assert_eq!(detect_delimiter(b""), b',');
    }

    #[test]
    fn ndjson_long_lines_are_skipped() {
        let mut data = b"{\"a\":\"1\"}\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 100));
        data.extend(b"\n{\"a\":\"3\"}\n");
        data.extend(std::iter::repeat_n(b'y', 100)); // too long, at the end, no newline
        let mut rows = NdjsonRows::new(Box::new(Cursor::new(data)), 50);
        let got: Vec<_> = std::iter::from_fn(|| rows.next_row()).collect();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].as_ref().map(|r| r.line), Ok(1));
        assert_eq!(
            got[1].as_ref().map_err(|e| (e.line, e.code)),
            Err((2, "line_too_long"))
        );
        assert_eq!(got[2].as_ref().map(|r| r.line), Ok(3));
        assert_eq!(
            got[3].as_ref().map_err(|e| (e.line, e.code)),
            Err((4, "line_too_long"))
        );
    }
}
