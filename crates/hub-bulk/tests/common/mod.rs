//! Helpers shared by the tests.
#![allow(dead_code)]

use std::io::Cursor;

use hub_bulk::{FileError, Format, Row, RowError, Rows, read};

pub fn open(format: Format, data: impl Into<Vec<u8>>) -> Result<Rows, FileError> {
    open_map(format, data, &[])
}

pub fn open_map(
    format: Format,
    data: impl Into<Vec<u8>>,
    overrides: &[(&str, &str)],
) -> Result<Rows, FileError> {
    let overrides: Vec<(String, String)> = overrides
        .iter()
        .map(|(c, f)| ((*c).to_owned(), (*f).to_owned()))
        .collect();
    read(format, Box::new(Cursor::new(data.into())), &overrides)
}

pub fn csv(data: impl Into<Vec<u8>>) -> Vec<Result<Row, RowError>> {
    match open(Format::Csv, data) {
        Ok(rows) => rows.collect(),
        Err(e) => panic!("file error: {e}"),
    }
}

pub fn oks(items: &[Result<Row, RowError>]) -> Vec<&Row> {
    items.iter().filter_map(|r| r.as_ref().ok()).collect()
}

pub fn errs(items: &[Result<Row, RowError>]) -> Vec<&RowError> {
    items.iter().filter_map(|r| r.as_ref().err()).collect()
}

/// A field as text (`None` when absent or not a string).
pub fn get<'a>(row: &'a Row, k: &str) -> Option<&'a str> {
    row.fields.get(k).and_then(|v| v.as_str())
}
