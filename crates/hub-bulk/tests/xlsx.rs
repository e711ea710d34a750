//! XLSX reading: workbooks generated with rust_xlsxwriter.

mod common;

use common::{errs, get, oks, open};
use hub_bulk::{FileError, Format as FileFormat, Mapping, Row, RowError};
use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Workbook, Worksheet, XlsxError};
use serde_json::json;

fn book(fill: impl FnOnce(&mut Worksheet) -> Result<(), XlsxError>) -> Vec<u8> {
    let mut wb = Workbook::new();
    let sheet = wb.add_worksheet();
    if let Err(e) = fill(sheet) {
        panic!("{e}");
    }
    // A second sheet that must not be read.
    let other = wb.add_worksheet();
    if let Err(e) = other.write_string(0, 0, "not this one") {
        panic!("{e}");
    }
    match wb.save_to_buffer() {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

fn rows(data: Vec<u8>) -> Vec<Result<Row, RowError>> {
    match open(FileFormat::Xlsx, data) {
        Ok(r) => r.collect(),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn formulas_dates_as_numbers_and_numeric_phones() {
    let data = book(|s| {
        let datetime = Format::new().set_num_format("dd.mm.yyyy hh:mm:ss");
        let date_only = Format::new().set_num_format("dd/mm/yyyy");
        // Two empty rows above the header (a title row left blank), the header on row 3.
        for (c, h) in [
            "ALICI",
            "İZİN TÜRÜ",
            "ONAY(1)-RET(0)",
            "İZİN TARİHİ",
            "İZİN KAYNAĞI",
            "Notlar",
            "evidence.rate",
        ]
        .iter()
        .enumerate()
        {
            s.write_string(2, c as u16, *h)?;
        }
        // Row 4: a numeric phone, a numeric status, a date stored as a number in a
        // date-formatted cell (2025-10-13 12:59:02.4), a float.
        s.write_number(3, 0, 5_321_234_567.0)?;
        s.write_string(3, 1, "mesaj")?;
        s.write_number(3, 2, 1.0)?;
        s.write_number_with_format(3, 3, 45943.541, &datetime)?;
        s.write_string(3, 4, "HS_WEB")?;
        s.write_string(3, 5, "ignored")?;
        s.write_number(3, 6, 0.25)?;
        // Row 5 empty; row 6: formulas with cached values, a date-only cell, a real datetime.
        s.write_formula(
            5,
            0,
            Formula::new("=\"0532\"&\" 765 43 21\"").set_result("0532 765 43 21"),
        )?;
        s.write_formula(
            5,
            1,
            Formula::new("=UPPER(\"eposta\")").set_result("EPOSTA"),
        )?;
        s.write_formula(5, 2, Formula::new("=1-1").set_result("0"))?;
        s.write_number_with_format(5, 3, 45000.0, &date_only)?;
        s.write_formula(
            5,
            4,
            Formula::new("=\"HS_\"&\"FIZIKSEL_ORTAM\"").set_result("HS_FIZIKSEL_ORTAM"),
        )?;
        // Row 7: an ExcelDateTime written as a datetime, a phone as text with spaces.
        s.write_string(6, 0, "  0532 111 22 33 ")?;
        s.write_string(6, 1, "ARAMA")?;
        s.write_string(6, 2, "RET")?;
        let dt = ExcelDateTime::from_ymd(2026, 11, 28)?.and_hms(14, 30, 0)?;
        s.write_datetime_with_format(6, 3, &dt, &datetime)?;
        s.write_string(6, 4, "HS_CAGRI_MERKEZI")?;
        Ok(())
    });
    let items = rows(data);
    assert!(errs(&items).is_empty(), "{items:?}");
    let rows = oks(&items);
    assert_eq!(
        rows.iter().map(|r| r.line).collect::<Vec<_>>(),
        vec![4, 6, 7]
    );
    assert_eq!(
        serde_json::Value::Object(rows[0].fields.clone()),
        json!({"recipient":"5321234567","type":"MESAJ","status":"ONAY",
               "consentDate":"2025-10-13 12:59:02","source":"HS_WEB","evidence":{"rate":"0.25"}})
    );
    assert_eq!(
        serde_json::Value::Object(rows[1].fields.clone()),
        json!({"recipient":"0532 765 43 21","type":"EPOSTA","status":"RET",
               "consentDate":"2023-03-15 00:00:00","source":"HS_FIZIKSEL_ORTAM"})
    );
    assert_eq!(get(rows[2], "recipient"), Some("0532 111 22 33"));
    assert_eq!(get(rows[2], "consentDate"), Some("2026-11-28 14:30:00"));
}

#[test]
fn the_mapping_and_a_missing_column() {
    let data = book(|s| {
        s.write_string(0, 0, "telefon")?;
        s.write_string(0, 1, "iysState")?;
        s.write_string(0, 2, "Açıklama")?;
        s.write_number(1, 0, 5_321_234_567.0)?;
        Ok(())
    });
    let e = open(FileFormat::Xlsx, data).unwrap_err();
    assert!(matches!(e, FileError::MissingColumns { .. }), "{e}");
    assert!(e.to_string().contains("\"Açıklama\""), "{e}");

    let data = book(|s| {
        s.write_string(0, 0, "telefon")?;
        s.write_string(0, 1, "durum")?;
        s.write_string(0, 2, "Açıklama")?;
        Ok(())
    });
    let rows = match open(FileFormat::Xlsx, data) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let m = rows.mapping().cloned();
    assert_eq!(
        m.as_ref().map(Mapping::columns),
        Some(vec![
            ("telefon".to_owned(), "recipient".to_owned()),
            ("durum".to_owned(), "status".to_owned())
        ])
    );
    assert_eq!(
        m.as_ref().map(Mapping::ignored_columns),
        Some(vec!["Açıklama".to_owned()])
    );
    assert_eq!(rows.count(), 0, "a header only is zero rows");
}

#[test]
fn error_cells_reject_their_row() {
    let data = book(|s| {
        s.write_string(0, 0, "recipient")?;
        s.write_string(0, 1, "status")?;
        s.write_string(1, 0, "5321234567")?;
        s.write_formula(1, 1, Formula::new("=NA()").set_result("#N/A"))?;
        s.write_string(2, 0, "5321234568")?;
        s.write_boolean(2, 1, true)?;
        Ok(())
    });
    let items = rows(data);
    let e = errs(&items);
    assert_eq!(e.len(), 1, "{items:?}");
    assert_eq!((e[0].line, e[0].code), (2, "cell_error"));
    assert_eq!(e[0].field.as_deref(), Some("status"));
    assert_eq!(get(oks(&items)[0], "status"), Some("true"));
}

#[test]
fn skip_through_in_a_sheet() {
    let data = book(|s| {
        s.write_string(0, 0, "recipient")?;
        s.write_string(0, 1, "status")?;
        for r in 1..=20u32 {
            s.write_number(r, 0, 5_321_234_500.0 + f64::from(r))?;
            s.write_string(r, 1, "ONAY")?;
        }
        Ok(())
    });
    let all = rows(data.clone());
    let mut rows = match open(FileFormat::Xlsx, data) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    if let Err(e) = rows.skip_through(11) {
        panic!("{e}");
    }
    let rest: Vec<_> = rows.collect();
    assert_eq!(rest.len(), 10);
    assert_eq!(rest.as_slice(), &all[10..]);
    assert_eq!(rest[0].as_ref().map(|r| r.line), Ok(12));
}

#[test]
fn unreadable_and_empty_workbooks() {
    let e = open(FileFormat::Xlsx, Vec::new()).unwrap_err();
    assert!(matches!(e, FileError::Empty), "{e}");
    let e = open(FileFormat::Xlsx, b"PK\x03\x04 not really a zip".to_vec()).unwrap_err();
    assert!(matches!(e, FileError::Xlsx(_)), "{e}");
    let e = open(FileFormat::Xlsx, b"recipient,status\n".to_vec()).unwrap_err();
    assert!(matches!(e, FileError::Xlsx(_)), "{e}");
    let data = book(|_| Ok(()));
    let e = open(FileFormat::Xlsx, data).unwrap_err();
    assert!(matches!(e, FileError::Empty), "{e}");
    // A truncated workbook.
    let mut data = book(|s| {
        s.write_string(0, 0, "recipient")?;
        s.write_string(0, 1, "status")?;
        Ok(())
    });
    data.truncate(data.len() / 2);
    assert!(open(FileFormat::Xlsx, data).is_err());
}

#[test]
fn detection() {
    let data = book(|_| Ok(()));
    assert_eq!(FileFormat::detect(None, &data[..16]), FileFormat::Xlsx);
    assert_eq!(FileFormat::detect(Some("x.XLSX"), b""), FileFormat::Xlsx);
    assert_eq!(
        FileFormat::detect(Some("x.csv"), &data[..16]),
        FileFormat::Csv
    );
    assert_eq!(FileFormat::detect(Some("x.jsonl"), b""), FileFormat::Ndjson);
    assert_eq!(
        FileFormat::detect(None, b"\xef\xbb\xbf \n {\"a\":1}"),
        FileFormat::Ndjson
    );
    assert_eq!(
        FileFormat::detect(Some("noext"), b"recipient,status"),
        FileFormat::Csv
    );
    assert_eq!(FileFormat::detect(None, b""), FileFormat::Csv);
    assert_eq!("XLSX".parse::<FileFormat>().ok(), Some(FileFormat::Xlsx));
    assert_eq!(FileFormat::Ndjson.as_str(), "ndjson");
    assert!("xls".parse::<FileFormat>().is_err());
}
