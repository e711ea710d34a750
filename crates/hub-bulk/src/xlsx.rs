//! XLSX: the first sheet of a workbook, read whole by calamine. The first non-empty row is the
//! header; cells become text as a person sees them in Excel: whole numbers without `.0` (phone
//! numbers are often numeric cells), date cells as `YYYY-MM-DD HH:MM:SS`, formulas as their
//! cached value.

use std::borrow::Cow;
use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};

use calamine::{Data, ExcelDateTime, ExcelDateTimeType, Range, Reader, Xlsx};

use crate::mapping::{Mapping, excerpt};
use crate::{FileError, Row, RowError};

pub(crate) struct XlsxRows {
    range: Range<Data>,
    mapping: Mapping,
    /// The sheet row number (0-based) of the range's first row.
    first_row: u64,
    /// The next row to read, relative to the range.
    next: usize,
}

impl XlsxRows {
    pub(crate) fn open(
        mut input: Box<dyn Read + Send>,
        overrides: &[(String, String)],
    ) -> Result<XlsxRows, FileError> {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes)?;
        if bytes.is_empty() {
            return Err(FileError::Empty);
        }
        // calamine is not known to panic on malformed workbooks, but a hostile file must not
        // take the importer down if it does.
        let range = catch_unwind(AssertUnwindSafe(|| first_sheet(bytes)))
            .map_err(|_| FileError::Xlsx("the workbook is malformed".to_owned()))??;
        let first_row = range.start().map_or(0, |(r, _)| u64::from(r));
        let height = range.height();
        let header_at = (0..height)
            .find(|&r| !row_is_empty(&range, r))
            .ok_or(FileError::Empty)?;
        let headers: Vec<String> = (0..range.width())
            .map(|c| {
                range
                    .get((header_at, c))
                    .map(|d| text(d).map(Cow::into_owned).unwrap_or_default())
                    .unwrap_or_default()
            })
            .collect();
        let mapping = Mapping::from_headers(&headers, overrides)?;
        Ok(XlsxRows {
            range,
            mapping,
            first_row,
            next: header_at + 1,
        })
    }

    pub(crate) fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    pub(crate) fn next_row(&mut self) -> Option<Result<Row, RowError>> {
        while self.next < self.range.height() {
            let r = self.next;
            self.next += 1;
            if row_is_empty(&self.range, r) {
                continue;
            }
            return Some(self.convert(r));
        }
        None
    }

    fn convert(&self, r: usize) -> Result<Row, RowError> {
        let line = self.first_row + r as u64 + 1;
        let width = self.mapping.width();
        let mut cells: Vec<Option<Cow<'_, str>>> = Vec::with_capacity(width);
        for c in 0..width {
            if !self.mapping.is_used(c) {
                cells.push(None);
                continue;
            }
            match self.range.get((r, c)) {
                Some(Data::Error(e)) => {
                    let header = self.mapping.header(c);
                    return Err(RowError {
                        line,
                        code: "cell_error",
                        field: Some(header.to_owned()),
                        value: Some(excerpt(&e.to_string())),
                        message: format!(
                            "row {line}: the cell of column {header:?} holds the error {e}"
                        ),
                    });
                }
                Some(d) => cells.push(text(d)),
                None => cells.push(None),
            }
        }
        Ok(self.mapping.apply(line, &cells))
    }

    pub(crate) fn skip_through(&mut self, line: u64) {
        // Row r is on sheet row first_row + r + 1.
        let after = usize::try_from(line.saturating_sub(self.first_row)).unwrap_or(usize::MAX);
        self.next = self.next.max(after);
    }
}

fn first_sheet(bytes: Vec<u8>) -> Result<Range<Data>, FileError> {
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(xlsx_error)?;
    match book.worksheet_range_at(0) {
        None => Err(FileError::Xlsx("the workbook has no sheet".to_owned())),
        Some(r) => r.map_err(xlsx_error),
    }
}

fn xlsx_error(e: calamine::XlsxError) -> FileError {
    FileError::Xlsx(e.to_string())
}

fn row_is_empty(range: &Range<Data>, r: usize) -> bool {
    (0..range.width()).all(|c| match range.get((r, c)) {
        None | Some(Data::Empty) => true,
        Some(Data::String(s)) => s.trim().is_empty(),
        Some(_) => false,
    })
}

/// A cell as text; `None` when empty.
fn text(d: &Data) -> Option<Cow<'_, str>> {
    Some(match d {
        Data::Empty => return None,
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => Cow::Borrowed(s),
        Data::Int(i) => Cow::Owned(i.to_string()),
        Data::Float(f) => Cow::Owned(number(*f)),
        Data::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Data::DateTime(dt) if dt.is_datetime() => Cow::Owned(datetime(dt)),
        Data::DateTime(dt) => Cow::Owned(number(dt.as_f64())),
        Data::Error(e) => Cow::Owned(e.to_string()),
    })
}

/// A whole number without `.0` (up to 2^53, where floats stop being exact); others as Rust
/// prints them (the shortest text that reads back the same).
fn number(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// An Excel date/time serial as `YYYY-MM-DD HH:MM:SS`, rounded to the second.
fn datetime(dt: &ExcelDateTime) -> String {
    let rounded = (dt.as_f64() * 86_400.0).round() / 86_400.0;
    // The workbook's epoch (1900 or 1904) is private to calamine: the same serial read with the
    // 1900 epoch gives another date exactly when the workbook uses 1904.
    let is_1904 = dt.to_ymd_hms_milli()
        != ExcelDateTime::new(dt.as_f64(), ExcelDateTimeType::DateTime, false).to_ymd_hms_milli();
    let (y, mo, d, h, mi, s, _) =
        ExcelDateTime::new(rounded, ExcelDateTimeType::DateTime, is_1904).to_ymd_hms_milli();
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}
