//! Large generated files, resuming, and export → import round trips.

mod common;

use std::collections::BTreeMap;
use std::io::Cursor;

use common::{csv, errs, oks, open};
use hub_bulk::{CsvWriter, EXPORT_COLUMNS, Format, NdjsonWriter, Row, RowError, read};
use serde_json::{Value, json};

/// 100,000 data rows, CRLF, with quoted newlines, blank lines and planted bad rows; returns the
/// file, the expected errors (line, code) and the expected good rows' (line, recipient).
/// Rejected rows as (line, code).
type Bad = Vec<(u64, &'static str)>;
/// Good rows as (line, recipient).
type Good = Vec<(u64, String)>;

fn generate() -> (Vec<u8>, Bad, Good) {
    let mut data =
        b"\xef\xbb\xbfrecipient;type;status;consentDate;source;evidence.note\r\n".to_vec();
    let mut line = 2u64;
    let mut bad = Vec::new();
    let mut good = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..100_000u64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let phone = format!("53{:08}", i);
        match seed % 1000 {
            0..=2 => {
                data.extend_from_slice(format!("{phone};MESAJ;ONAY\r\n").as_bytes());
                bad.push((line, "column_count"));
                line += 1;
            }
            3 | 4 => {
                data.extend_from_slice(
                    format!("{phone};MESAJ;ONAY;2024-01-01 10:00;HS_WEB;x;y\r\n").as_bytes(),
                );
                bad.push((line, "column_count"));
                line += 1;
            }
            5..=7 => {
                data.extend_from_slice(
                    format!("{phone};MESAJ;ONAY;01.02.2024 10:00;HS_WEB;").as_bytes(),
                );
                data.extend_from_slice(b"\"\xfc\xe7 \xfeube\"\r\n"); // Windows-1254 "üç şube"
                bad.push((line, "invalid_encoding"));
                line += 1;
            }
            8..=15 => {
                // A quoted note over three lines, then a blank line.
                data.extend_from_slice(
                    format!(
                        "{phone};mesaj;1;01.02.2024 10:00;HS_WEB;\"a;\r\nb \"\"q\"\"\r\nc\"\r\n\r\n"
                    )
                    .as_bytes(),
                );
                good.push((line, phone));
                line += 4;
            }
            16..=20 => {
                // A bare-LF blank line before the row.
                data.extend_from_slice(format!("\n{phone};MESAJ;0;;HS_WEB;\r\n").as_bytes());
                good.push((line + 1, phone));
                line += 2;
            }
            _ => {
                data.extend_from_slice(
                    format!(
                        "{phone};MESAJ;ONAY;2024-01-{:02} 10:00:00;HS_WEB;şube {i}\r\n",
                        i % 28 + 1
                    )
                    .as_bytes(),
                );
                good.push((line, phone));
                line += 1;
            }
        }
    }
    (data, bad, good)
}

fn summary(items: &[Result<Row, RowError>]) -> (Bad, Good) {
    let bad = errs(items).iter().map(|e| (e.line, e.code)).collect();
    let good = oks(items)
        .iter()
        .map(|r| {
            (
                r.line,
                r.fields["recipient"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    (bad, good)
}

#[test]
fn a_hundred_thousand_rows_with_planted_bad_ones() {
    let (data, bad, good) = generate();
    assert!(bad.len() > 500 && bad.len() < 1500, "{}", bad.len());
    let items = csv(data.clone());
    assert_eq!(items.len(), 100_000);
    let (got_bad, got_good) = summary(&items);
    assert_eq!(got_bad, bad);
    assert_eq!(got_good, good);
    // The multi-line rows kept their note.
    let multi = oks(&items).into_iter().find(|r| {
        r.fields.get("status") == Some(&json!("ONAY"))
            && r.fields.get("type") == Some(&json!("MESAJ"))
            && r.fields["evidence"]["note"]
                .as_str()
                .is_some_and(|n| n.contains('\n'))
    });
    assert_eq!(
        multi.map(|r| r.fields["evidence"]["note"].clone()),
        Some(json!("a;\r\nb \"q\"\r\nc"))
    );

    // Resuming after any line gives exactly the rest of a full read.
    let lines: Vec<u64> = items
        .iter()
        .map(|r| match r {
            Ok(r) => r.line,
            Err(e) => e.line,
        })
        .collect();
    let mut seed = 7u64;
    for _ in 0..3 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let k = (seed >> 33) as usize % items.len();
        // After the k-th item's line, and from a line in the middle of a multi-line record.
        for at in [lines[k], lines[k] + 1] {
            let mut rows = match open(Format::Csv, data.clone()) {
                Ok(r) => r,
                Err(e) => panic!("{e}"),
            };
            if let Err(e) = rows.skip_through(at) {
                panic!("{e}");
            }
            let rest: Vec<_> = rows.collect();
            let start = lines.partition_point(|&l| l <= at);
            assert_eq!(rest.as_slice(), &items[start..], "skip_through({at})");
        }
    }
}

#[test]
fn skip_through_the_start_and_past_the_end() {
    let data = "recipient,status\n\n1,ONAY\n2,RET\n";
    for (at, n) in [(0, 2), (1, 2), (2, 2), (3, 1), (4, 0), (100, 0)] {
        let mut rows = match open(Format::Csv, data) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        if let Err(e) = rows.skip_through(at) {
            panic!("{e}");
        }
        assert_eq!(rows.count(), n, "skip_through({at})");
    }
}

/// Rows as an export would write them (hub-normalised values), awkward characters included.
fn export_rows() -> Vec<BTreeMap<&'static str, String>> {
    let mut out = Vec::new();
    let notes = [
        "plain",
        "comma, and \"quotes\"",
        "two\nlines",
        "Şişli; İstanbul\ttab",
        " ",
        "",
    ];
    for i in 0..60usize {
        let mut m = BTreeMap::new();
        let (kind, recipient) = match i % 3 {
            0 => ("MESAJ", format!("+90532{:07}", i)),
            1 => ("EPOSTA", format!("user{i}@example.com")),
            _ => ("PUSH", format!("device-{i}")),
        };
        m.insert("recipient", recipient);
        if kind == "PUSH" {
            m.insert("channel", kind.to_owned());
        } else {
            m.insert("type", kind.to_owned());
        }
        m.insert(
            "recipientType",
            if i % 5 == 0 { "TACIR" } else { "BIREYSEL" }.to_owned(),
        );
        m.insert("status", if i % 2 == 0 { "ONAY" } else { "RET" }.to_owned());
        m.insert(
            "consentDate",
            format!("2026-11-{:02} 14:30:{:02}", i % 28 + 1, i),
        );
        m.insert("source", "HS_WEB".to_owned());
        if i % 4 == 0 {
            m.insert("category", "kampanya".to_owned());
            m.insert("profileId", format!("müşteri-{i}"));
        }
        let note = notes[i % notes.len()];
        if !note.trim().is_empty() {
            m.insert(
                "evidence",
                json!({"ip":"203.0.113.7","note":note,"n":i}).to_string(),
            );
        }
        m.insert("iysState", "in_iys".to_owned());
        m.insert("updatedAt", "2026-11-29 10:00:00".to_owned());
        out.push(m);
    }
    out
}

/// What the importer should give for an exported row: the same fields, evidence as an object,
/// the informational columns gone.
fn expected(m: &BTreeMap<&str, String>) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for (k, v) in m {
        match *k {
            "iysState" | "updatedAt" => {}
            "evidence" => {
                out.insert(
                    "evidence".to_owned(),
                    serde_json::from_str(v).unwrap_or(Value::Null),
                );
            }
            _ => {
                out.insert((*k).to_owned(), Value::String(v.clone()));
            }
        }
    }
    out
}

fn as_fields<'a>(m: &'a BTreeMap<&'static str, String>) -> Vec<(&'static str, Option<&'a str>)> {
    EXPORT_COLUMNS
        .iter()
        .map(|c| (*c, m.get(c).map(String::as_str)))
        .collect()
}

#[test]
fn csv_export_reimports_to_the_same_fields() {
    let rows = export_rows();
    let mut w = match CsvWriter::new(Vec::new()) {
        Ok(w) => w,
        Err(e) => panic!("{e}"),
    };
    for m in &rows {
        if let Err(e) = w.write_row(&as_fields(m)) {
            panic!("{e}");
        }
    }
    let bytes = match w.finish() {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with(
        "recipient,type,channel,recipientType,status,consentDate,source,category,profileId,evidence,iysState,updatedAt\n"
    ));
    assert!(!text.contains('\r'));

    let reader = match read(Format::Csv, Box::new(Cursor::new(bytes)), &[]) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        reader
            .mapping()
            .map(hub_bulk::Mapping::ignored_columns)
            .unwrap_or_default(),
        vec!["iysState", "updatedAt"]
    );
    let items: Vec<_> = reader.collect();
    assert!(errs(&items).is_empty(), "{:?}", errs(&items));
    let got: Vec<_> = oks(&items).iter().map(|r| r.fields.clone()).collect();
    let want: Vec<_> = rows.iter().map(expected).collect();
    assert_eq!(got, want);
}

#[test]
fn csv_quoting_is_rfc4180() {
    let mut w = match CsvWriter::with_columns(Vec::new(), &["recipient", "status", "evidence.note"])
    {
        Ok(w) => w,
        Err(e) => panic!("{e}"),
    };
    let written = w
        .write_row(&[
            ("recipient", Some("a,b")),
            ("evidence.note", Some("say \"hi\"\r\nbye")),
            ("status", None),
        ])
        .and_then(|()| w.write_row(&[("recipient", Some("plain")), ("status", Some("ONAY"))]));
    assert!(written.is_ok());
    let err = w.write_row(&[("nope", Some("x"))]);
    assert_eq!(
        err.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::InvalidInput)
    );
    let bytes = w.finish().unwrap_or_default();
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        "recipient,status,evidence.note\n\"a,b\",,\"say \"\"hi\"\"\r\nbye\"\nplain,ONAY,\n"
    );
    let items = csv(bytes);
    let rows = oks(&items);
    assert_eq!(
        rows[0].fields["evidence"]["note"],
        json!("say \"hi\"\r\nbye")
    );
    assert_eq!(rows[1].line, 4);
}

#[test]
fn ndjson_export_reimports_to_the_same_fields() {
    let rows = export_rows();
    let mut w = NdjsonWriter::new(Vec::new());
    for m in &rows {
        if let Err(e) = w.write_row(&as_fields(m)) {
            panic!("{e}");
        }
    }
    let extra: serde_json::Map<String, Value> =
        serde_json::from_value(json!({"recipient":"x","status":"RET","hold":true}))
            .unwrap_or_default();
    assert!(w.write_object(&extra).is_ok());
    assert!(
        w.write_row(&[
            ("recipient", Some("y")),
            ("evidence.ip", Some("1.2.3.4")),
            ("hold", Some("false")),
            ("status", Some("ONAY"))
        ])
        .is_ok()
    );
    let bytes = match w.finish() {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    // Keys in the order given.
    assert!(
        text.starts_with(
            "{\"recipient\":\"+905320000000\",\"type\":\"MESAJ\",\"recipientType\":\"TACIR\""
        ),
        "{text}"
    );
    assert!(text.ends_with("{\"recipient\":\"y\",\"hold\":false,\"status\":\"ONAY\",\"evidence\":{\"ip\":\"1.2.3.4\"}}\n"), "{text}");
    let items: Vec<_> = match read(Format::Ndjson, Box::new(Cursor::new(bytes)), &[]) {
        Ok(r) => r.collect(),
        Err(e) => panic!("{e}"),
    };
    assert!(errs(&items).is_empty());
    let got: Vec<_> = oks(&items).iter().map(|r| r.fields.clone()).collect();
    let mut want: Vec<_> = rows.iter().map(expected).collect();
    want.push(extra);
    want.push(
        serde_json::from_value(
            json!({"recipient":"y","status":"ONAY","hold":false,"evidence":{"ip":"1.2.3.4"}}),
        )
        .unwrap_or_default(),
    );
    assert_eq!(got, want);
}
