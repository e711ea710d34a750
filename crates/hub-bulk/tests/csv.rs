//! CSV reading with hostile and awkward files, all generated here.

mod common;

use common::{csv, errs, get, oks, open, open_map};
use hub_bulk::{FileError, Format, Mapping};
use serde_json::json;

#[test]
fn a_plain_file_is_mapped_and_normalised() {
    let items = csv("recipient,type,status,source,consentDate,recipientType\n\
         0532 123 45 67 , mesaj ,1,hs_web,01.02.2024 10:05,bireysel\n\
         ayse@example.com,EPOSTA,ret,HS_WEB,2024-02-01T10:05:07,\n");
    let rows = oks(&items);
    assert_eq!(rows.len(), 2);
    let r = &rows[0];
    assert_eq!(r.line, 2);
    assert_eq!(
        serde_json::Value::Object(r.fields.clone()),
        json!({"recipient":"0532 123 45 67","type":"MESAJ","status":"ONAY","source":"HS_WEB",
               "consentDate":"2024-02-01 10:05:00","recipientType":"BIREYSEL"})
    );
    let r = &rows[1];
    assert_eq!(r.line, 3);
    assert_eq!(get(r, "status"), Some("RET"));
    assert_eq!(get(r, "consentDate"), Some("2024-02-01 10:05:07"));
    assert!(!r.fields.contains_key("recipientType"), "empty → absent");
}

#[test]
fn unknown_values_pass_verbatim_for_the_hub_to_reject() {
    let items = csv("recipient,type,status,consentDate\n5321234567,FAX,belki,dün öğlen\n");
    let r = oks(&items)[0];
    assert_eq!(get(r, "type"), Some("FAX"));
    assert_eq!(get(r, "status"), Some("belki"));
    assert_eq!(get(r, "consentDate"), Some("dün öğlen"));
}

#[test]
fn hub_channels_given_as_type_move_to_channel() {
    let items = csv("recipient,type,status\ndevice-1,push,ONAY\n5321234567,WhatsApp,ONAY\n");
    let rows = oks(&items);
    assert_eq!(get(rows[0], "channel"), Some("PUSH"));
    assert!(!rows[0].fields.contains_key("type"));
    assert_eq!(get(rows[1], "channel"), Some("WHATSAPP"));
}

#[test]
fn invalid_utf8_in_one_row_rejects_that_row_only() {
    let mut data = b"recipient,status,note\n5321234567,ONAY,ok\n".to_vec();
    data.extend_from_slice(b"5321234568,ONAY,caf\xe9 \xfe\n"); // Latin-1/Windows-1254 bytes
    data.extend_from_slice(b"5321234569,RET,\xc5\x9fahane\n"); // UTF-8 ş
    data.extend_from_slice(b"5321234570,ONAY,nul\0byte\n");
    let items = csv(data);
    assert_eq!(items.len(), 4);
    let e = errs(&items);
    assert_eq!(e.len(), 2);
    assert_eq!((e[1].line, e[1].code), (5, "invalid_encoding"));
    assert!(e[1].message.contains("NUL"), "{}", e[1].message);
    assert_eq!((e[0].line, e[0].code), (3, "invalid_encoding"));
    assert_eq!(e[0].field.as_deref(), Some("note"));
    assert!(
        e[0].value
            .as_deref()
            .is_some_and(|v| v.contains('\u{FFFD}'))
    );
    let rows = oks(&items);
    assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 4]);
}

#[test]
fn semicolon_and_tab_files_are_detected() {
    for sep in [";", "\t"] {
        let data = format!("ALICI{sep}DURUM{sep}IZIN TURU\n5321234567{sep}1{sep}MESAJ\n");
        let items = csv(data);
        let r = oks(&items)[0];
        assert_eq!(get(r, "recipient"), Some("5321234567"));
        assert_eq!(get(r, "status"), Some("ONAY"));
        assert_eq!(get(r, "type"), Some("MESAJ"));
    }
    // Commas inside quotes do not count.
    let items = csv("\"a,b,c,d\";recipient;status\nx;5321234567;0\n");
    assert_eq!(get(oks(&items)[0], "status"), Some("RET"));
}

#[test]
fn mixed_delimiters_are_column_count_errors() {
    let items = csv(
        "recipient;status;type\n5321234567;ONAY;MESAJ\n5321234568,ONAY,MESAJ\n\
         5321234569;RET;MESAJ;extra\n5321234570;RET;MESAJ;;\n5321234571;RET\n",
    );
    let e = errs(&items);
    let got: Vec<_> = e.iter().map(|e| (e.line, e.code)).collect();
    assert_eq!(
        got,
        vec![
            (3, "column_count"),
            (4, "column_count"),
            (6, "column_count")
        ]
    );
    assert!(e[0].message.contains("1 column"), "{}", e[0].message);
    // Trailing empty cells (spreadsheet exports) are fine.
    assert_eq!(
        oks(&items).iter().map(|r| r.line).collect::<Vec<_>>(),
        vec![2, 5]
    );
}

#[test]
fn a_wrong_delimiter_names_the_one_column_found() {
    let err = open(Format::Csv, "recipient|status\n5321234567|ONAY\n").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FileError::MissingColumns { .. }), "{msg}");
    assert!(msg.contains("\"recipient|status\""), "{msg}");
    assert!(msg.contains("one column only"), "{msg}");
}

#[test]
fn missing_required_columns_are_named() {
    let err = open(Format::Csv, "recipient,type\n5321234567,MESAJ\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("status column"), "{msg}");
    assert!(!msg.contains("recipient column"), "{msg}");
    assert!(msg.contains("\"recipient\", \"type\""), "{msg}");
    let err = open(Format::Csv, "status,kanal,foo\nONAY,PUSH,x\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("recipient column"), "{msg}");
    assert!(msg.contains("\"foo\""), "{msg}");
    // profileId alone is enough (category consents of a profile).
    let items = csv("MUSTERI NO,status,category\nu-1,RET,kampanya\n");
    let r = oks(&items)[0];
    assert_eq!(get(r, "profileId"), Some("u-1"));
    assert_eq!(get(r, "category"), Some("kampanya"));
}

#[test]
fn a_one_megabyte_line_is_read() {
    let big = "x".repeat(1 << 20);
    let data = format!(
        "recipient,status,evidence.note\n5321234567,ONAY,{big}\n5321234568,RET,\"{big}\"\n5321234569,ONAY,short\n"
    );
    let items = csv(data);
    let rows = oks(&items);
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0].fields["evidence"]["note"].as_str().map(str::len),
        Some(1 << 20)
    );
    assert_eq!(
        rows[1].fields["evidence"]["note"].as_str().map(str::len),
        Some(1 << 20)
    );
    assert_eq!(
        rows.iter().map(|r| r.line).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
}

#[test]
fn bom_crlf_and_quoted_newlines() {
    let data = "\u{feff}recipient;status;evidence.note\r\n\
                5321234567;ONAY;\"two\r\nlines; and \"\"quotes\"\"\"\r\n\
                \r\n\
                5321234568;RET;plain\r\n";
    let items = csv(data);
    let rows = oks(&items);
    assert_eq!(rows.len(), 2, "{items:?}");
    assert_eq!(get(rows[0], "recipient"), Some("5321234567"));
    assert_eq!(
        rows[0].fields["evidence"]["note"],
        json!("two\r\nlines; and \"quotes\"")
    );
    assert_eq!(rows[0].line, 2);
    // The quoted newline takes a line, and the blank line another.
    assert_eq!(rows[1].line, 5);
    assert_eq!(get(rows[1], "status"), Some("RET"));
}

#[test]
fn turkish_headers_and_values() {
    let data = "ALICI;İZİN TÜRÜ;İZİN KAYNAĞI;İZİN TARİHİ;ONAY(1)-RET(0);ALICI TİPİ;KATEGORİ;Müşteri No;evidence.şube\n\
                0532 123 45 67;mesaj;hs_fızıksel_ortam;28.11.2026 14:30;1;tacir;kampanya;Ç-42;İstanbul Şişli\n\
                ayşe@örnek.com;EPOSTA;HS_WEB;28/11/2026 14:30:15;hayır;;;;\n";
    let rows = match open(Format::Csv, data) {
        Ok(rows) => rows,
        Err(e) => panic!("{e}"),
    };
    let cols = rows.mapping().map(Mapping::columns).unwrap_or_default();
    assert_eq!(
        cols.iter().map(|(_, f)| f.as_str()).collect::<Vec<_>>(),
        vec![
            "recipient",
            "type",
            "source",
            "consentDate",
            "status",
            "recipientType",
            "category",
            "profileId",
            "evidence.şube"
        ]
    );
    let items: Vec<_> = rows.collect();
    let rows = oks(&items);
    assert_eq!(
        serde_json::Value::Object(rows[0].fields.clone()),
        json!({"recipient":"0532 123 45 67","type":"MESAJ","source":"HS_FIZIKSEL_ORTAM",
               "consentDate":"2026-11-28 14:30:00","status":"ONAY","recipientType":"TACIR",
               "category":"kampanya","profileId":"Ç-42","evidence":{"şube":"İstanbul Şişli"}})
    );
    // Not normalised: the hub refuses a non-ASCII e-mail itself (H120).
    assert_eq!(get(rows[1], "recipient"), Some("ayşe@örnek.com"));
    assert_eq!(get(rows[1], "status"), Some("RET"));
    assert_eq!(get(rows[1], "consentDate"), Some("2026-11-28 14:30:15"));
}

#[test]
fn header_spellings() {
    for (header, field) in [
        ("IZIN TURU", "type"),
        ("izin_turu", "type"),
        ("İzin Türü", "type"),
        ("KANAL", "channel"),
        ("ONAY/RET", "status"),
        ("Durum", "status"),
        ("IZIN TARIHI", "consentDate"),
        ("consent_date", "consentDate"),
        ("IZIN KAYNAGI", "source"),
        ("ALICI TIPI", "recipientType"),
        ("recipient-type", "recipientType"),
        ("KATEGORI", "category"),
        ("profile id", "profileId"),
        ("actor", "actor"),
        ("E-posta", "recipient"),
        ("Telefon", "recipient"),
    ] {
        let others: &[&str] = match field {
            "recipient" | "profileId" => &["status"],
            "status" => &["recipient"],
            _ => &["recipient", "status"],
        };
        let mut headers: Vec<String> = others.iter().map(|h| (*h).to_owned()).collect();
        headers.push(header.to_owned());
        let m = match Mapping::from_headers(&headers, &[]) {
            Ok(m) => m,
            Err(e) => panic!("{header}: {e}"),
        };
        assert!(
            m.columns().contains(&(header.to_owned(), field.to_owned())),
            "{header} → {:?}",
            m.columns()
        );
    }
}

#[test]
fn export_only_and_unknown_columns_are_ignored() {
    let rows = match open(
        Format::Csv,
        "recipient,status,iysState,updatedAt,Notlar,\n5321234567,ONAY,in_iys,2026-01-01 00:00:00,x,\n",
    ) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        rows.mapping()
            .map(Mapping::ignored_columns)
            .unwrap_or_default(),
        vec!["iysState", "updatedAt", "Notlar"]
    );
    let items: Vec<_> = rows.collect();
    let r = oks(&items)[0];
    assert_eq!(r.fields.len(), 2, "{:?}", r.fields);
}

#[test]
fn overrides() {
    let data = "Cep Tel,Onay Durumu,Kanal Adı,Not,Ekstra\n5321234567,Evet,sms,hi,z\n";
    let rows = match open_map(
        Format::Csv,
        data,
        &[
            ("cep tel", "recipient"),
            ("Onay Durumu", "status"),
            ("Kanal Adı", "type"),
            ("Not", "evidence.note"),
            ("Ekstra", "-"),
        ],
    ) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        rows.mapping()
            .map(Mapping::ignored_columns)
            .unwrap_or_default(),
        vec!["Ekstra"]
    );
    let items: Vec<_> = rows.collect();
    assert_eq!(
        serde_json::Value::Object(oks(&items)[0].fields.clone()),
        json!({"recipient":"5321234567","status":"ONAY","type":"SMS","evidence":{"note":"hi"}})
    );
    // A field that does not exist, a column the file does not have.
    let e = open_map(Format::Csv, data, &[("Cep Tel", "telefon")]).unwrap_err();
    assert!(matches!(e, FileError::UnknownField { .. }), "{e}");
    assert!(e.to_string().contains("telefon"));
    let e = open_map(Format::Csv, data, &[("Mobile", "recipient")]).unwrap_err();
    assert!(matches!(e, FileError::UnknownColumn { .. }), "{e}");
    // Two columns for one field.
    let e = open(Format::Csv, "phone,email,status\n1,a@b.c,ONAY\n").unwrap_err();
    assert!(matches!(e, FileError::DuplicateField { .. }), "{e}");
    assert!(e.to_string().contains("\"email\""), "{e}");
    let ok = open_map(
        Format::Csv,
        "phone,email,status\n1,a@b.c,ONAY\n",
        &[("email", "evidence.email")],
    );
    assert!(ok.is_ok());
}

#[test]
fn evidence_json_column_and_hold() {
    let data = "recipient,status,evidence,evidence.form,hold\n\
                5321234567,ONAY,\"{\"\"ip\"\":\"\"203.0.113.7\"\"}\",signup,TRUE\n\
                5321234568,ONAY,not json,,false\n\
                5321234569,ONAY,,,maybe\n";
    let items = csv(data);
    let rows = oks(&items);
    assert_eq!(
        rows[0].fields["evidence"],
        json!({"ip":"203.0.113.7","form":"signup"})
    );
    assert_eq!(rows[0].fields["hold"], json!(true));
    assert_eq!(rows[1].fields["evidence"], json!("not json"));
    assert_eq!(rows[1].fields["hold"], json!(false));
    assert!(!rows[2].fields.contains_key("evidence"));
    assert_eq!(rows[2].fields["hold"], json!("maybe"));
}

#[test]
fn empty_files_and_header_only() {
    for empty in ["", "\n\n", "\u{feff}", "  \r\n \n"] {
        let e = open(Format::Csv, empty).unwrap_err();
        assert!(matches!(e, FileError::Empty), "{empty:?}: {e}");
    }
    for header_only in [
        "recipient,status",
        "recipient,status\n",
        "\u{feff}recipient,status\r\n\r\n",
    ] {
        assert!(csv(header_only).is_empty(), "{header_only:?}");
    }
    // Blank lines before the header: lines still count from the top.
    let items = csv("\n\nrecipient,status\n5321234567,ONAY\n");
    assert_eq!(oks(&items)[0].line, 4);
}

#[test]
fn a_header_that_is_not_utf8_is_a_file_error() {
    let e = open(Format::Csv, b"al\xfdc\xfd,status\n1,1\n".to_vec()).unwrap_err();
    assert!(matches!(e, FileError::HeaderNotUtf8 { line: 1 }), "{e}");
}

#[test]
fn duplicate_keys_are_all_returned_in_order() {
    let items = csv("recipient,type,status,consentDate\n\
         5321234567,MESAJ,ONAY,2024-01-01 10:00:00\n\
         5321234567,MESAJ,RET,2024-01-02 10:00:00\n\
         5321234567,MESAJ,ONAY,2024-01-03 10:00:00\n");
    let rows = oks(&items);
    assert_eq!(
        rows.iter()
            .map(|r| (r.line, get(r, "status").unwrap_or_default()))
            .collect::<Vec<_>>(),
        vec![(2, "ONAY"), (3, "RET"), (4, "ONAY")]
    );
}

#[test]
fn an_unterminated_quote_does_not_panic() {
    let items = csv("recipient,status\n\"5321234567,ONAY\n5321234568,RET\n");
    // The open quote swallows the rest of the file into one cell: one short record.
    assert_eq!(items.len(), 1);
    assert_eq!(errs(&items)[0].code, "column_count");
}

#[test]
fn garbage_does_not_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..200 {
        let mut data = b"recipient,status,type\n".to_vec();
        for _ in 0..300 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let alphabet = b"a1,;\t\"\r\n\xff\xc3 ";
            data.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        if let Ok(rows) = open(Format::Csv, data) {
            for item in rows {
                let _ = item;
            }
        }
    }
}

#[test]
fn line_numbers_across_blank_lines_and_quoted_blank_lines() {
    // 1 header, 2-3 blank, 4 row, 5-8 one record whose quoted cell holds blank lines,
    // 9 blank (CRLF), 10 row, 11-12 blank, 13 row without a final newline.
    let data = "recipient,status,evidence.note\n\n\n1,ONAY,a\n2,RET,\"x\n\n\ny\"\n\r\n3,ONAY,b\n\n\n4,RET,c";
    let items = csv(data);
    let rows = oks(&items);
    assert_eq!(
        rows.iter()
            .map(|r| (r.line, get(r, "recipient").unwrap_or_default()))
            .collect::<Vec<_>>(),
        vec![(4, "1"), (5, "2"), (10, "3"), (13, "4")]
    );
    assert_eq!(rows[1].fields["evidence"]["note"], json!("x\n\n\ny"));
}
