//! NDJSON reading: the API's own shape, passed through.

mod common;

use common::{errs, oks, open};
use hub_bulk::{Format, Row, RowError};
use serde_json::json;

fn ndjson(data: impl Into<Vec<u8>>) -> Vec<Result<Row, RowError>> {
    match open(Format::Ndjson, data) {
        Ok(r) => {
            assert!(r.mapping().is_none());
            r.collect()
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn objects_pass_through_and_bad_lines_are_rejected() {
    let mut data = Vec::new();
    data.extend_from_slice(b"\xef\xbb\xbf{\"recipient\":\" 0532 123 45 67 \",\"type\":\"mesaj\",\"status\":\"1\",\"hold\":true}\r\n");
    data.extend_from_slice(b"\n   \n");
    data.extend_from_slice(b"{\"recipient\":\"a@b.c\",\"status\":\n"); // cut short
    data.extend_from_slice(b"[1,2]\n");
    data.extend_from_slice(b"\"just a string\"\n");
    data.extend_from_slice(b"{\"recipient\":\"caf\xe9\"}\n"); // not UTF-8
    data.extend_from_slice(
        b"{\"recipient\":\"ay\xc5\x9fe@example.com\",\"status\":\"RET\",\"iysState\":\"in_iys\",\"updatedAt\":\"x\",\"extra\":1}",
    ); // no final newline
    let items = ndjson(data);
    let got: Vec<_> = items
        .iter()
        .map(|r| match r {
            Ok(r) => (r.line, "ok"),
            Err(e) => (e.line, e.code),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "ok"),
            (4, "invalid_json"),
            (5, "invalid_json"),
            (6, "invalid_json"),
            (7, "invalid_encoding"),
            (8, "ok")
        ]
    );
    let rows = oks(&items);
    // Untouched: no trimming, no upper-casing, no status mapping.
    assert_eq!(
        serde_json::Value::Object(rows[0].fields.clone()),
        json!({"recipient":" 0532 123 45 67 ","type":"mesaj","status":"1","hold":true})
    );
    // Export-only keys are dropped; unknown keys stay for the hub to refuse.
    assert_eq!(
        serde_json::Value::Object(rows[1].fields.clone()),
        json!({"recipient":"ayşe@example.com","status":"RET","extra":1})
    );
    let e = errs(&items);
    assert!(e[1].message.contains("array"), "{}", e[1].message);
    assert_eq!(
        e[0].value.as_deref(),
        Some("{\"recipient\":\"a@b.c\",\"status\":")
    );
}

#[test]
fn empty_and_multi_megabyte_lines() {
    assert!(ndjson("").is_empty());
    assert!(ndjson("\n\n  \n").is_empty());
    let big = "é".repeat(3 << 20);
    let data = format!(
        "{{\"recipient\":\"1\",\"status\":\"ONAY\",\"evidence\":{{\"blob\":\"{big}\"}}}}\n{{\"recipient\":\"2\"}}\n"
    );
    let items = ndjson(data);
    let rows = oks(&items);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0].fields["evidence"]["blob"].as_str().map(str::len),
        Some(6 << 20)
    );
    assert_eq!(rows[1].line, 2);
}

#[test]
fn skip_through_counts_lines() {
    let mut data = String::new();
    for i in 1..=50 {
        if i % 7 == 0 {
            data.push('\n');
        } else if i % 11 == 0 {
            data.push_str("nope\n");
        } else {
            data.push_str(&format!("{{\"recipient\":\"{i}\",\"status\":\"ONAY\"}}\n"));
        }
    }
    let all = ndjson(data.clone());
    for at in [0, 1, 6, 7, 11, 30, 49, 50, 99] {
        let mut rows = match open(Format::Ndjson, data.clone()) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        if let Err(e) = rows.skip_through(at) {
            panic!("{e}");
        }
        let rest: Vec<_> = rows.collect();
        let expected: Vec<_> = all
            .iter()
            .filter(|r| match r {
                Ok(r) => r.line > at,
                Err(e) => e.line > at,
            })
            .cloned()
            .collect();
        assert_eq!(rest, expected, "skip_through({at})");
    }
}
