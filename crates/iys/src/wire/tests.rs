use super::*;
use crate::enums::{ConsentStatus, ConsentType, RecipientType};

#[test]
fn token_requests_serialise_as_json_and_form_alike() {
    let req = TokenRequest::Password {
        username: "demo".into(),
        password: "secret".into(),
    };
    let json = serde_json::to_value(&req).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"grant_type":"password","username":"demo","password":"secret"})
    );
    assert!(!format!("{req:?}").contains("secret"));
    let refresh: TokenRequest =
        serde_json::from_str(r#"{"grant_type":"refresh_token","refresh_token":"r1"}"#).unwrap();
    assert_eq!(
        refresh,
        TokenRequest::RefreshToken {
            refresh_token: "r1".into()
        }
    );
}

#[test]
fn token_fields_get_iys_oauth_errors() {
    let parse = |v: serde_json::Value| {
        serde_json::from_value::<TokenRequestFields>(v)
            .unwrap()
            .parse()
    };
    let e = parse(serde_json::json!({"username":"a","password":"b"})).unwrap_err();
    assert_eq!(e.error, "invalid_request");
    assert_eq!(e.error_description, "Giriş yöntemi belirtilmemiş.");
    let e = parse(serde_json::json!({"grant_type":"password","username":"a"})).unwrap_err();
    assert_eq!(e.error_description, "Şifre verilmemiş.");
    let e = parse(serde_json::json!({"grant_type":"magic"})).unwrap_err();
    assert_eq!(e.error_description, "Bilinmeyen giriş yöntemi.");
    let e =
        parse(serde_json::json!({"grant_type":"refresh_token","refresh_token":""})).unwrap_err();
    assert_eq!(e.error, "invalid_grant");
    assert!(
        parse(serde_json::json!({"grant_type":"password","username":"a","password":"b"})).is_ok()
    );
}

#[test]
fn absent_optionals_are_omitted() {
    let c = Consent {
        recipient: "+905321234567".into(),
        consent_type: ConsentType::Mesaj,
        source: None,
        status: ConsentStatus::Onay,
        consent_date: None,
        recipient_type: Some(RecipientType::Tacir),
        retailer_code: None,
        retailer_access: None,
    };
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(
        json,
        r#"{"recipient":"+905321234567","type":"MESAJ","status":"ONAY","recipientType":"TACIR"}"#
    );
}

#[test]
fn bulk_items_accept_both_sub_request_spellings() {
    let a: BulkResultItem =
        serde_json::from_str(r#"{"index":2,"status":"enqueue","subrequestId":"7ed0"}"#).unwrap();
    let b: BulkResultItem =
        serde_json::from_str(r#"{"index":2,"status":"enqueue","subRequestId":"7ed0"}"#).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.sub_request_id.as_deref(), Some("7ed0"));
}

#[test]
fn daily_csv_rows_round_trip_in_iys_column_order() {
    let line = "2026-05-03 23:58:53,f26ab9f26ab9f26ab9f26ab9f26ab9f26ab9f26ab9f26ab9f26ab9f26ab9f26a,ornek@mail.com,BIREYSEL,EPOSTA,ONAY,2026-05-03 19:39:28,HS_FIZIKSEL_ORTAM";
    let row = DailyCsvRow::parse_line(line).unwrap();
    assert_eq!(row.consent_type, ConsentType::Eposta);
    assert_eq!(row.to_line(), line);
    assert!(DailyCsvRow::parse_line("a,b").is_err());
}

#[test]
fn empty_consent_dates_read_as_absent() {
    let m: Movement = serde_json::from_str(
        r#"{"consentDate":"","creationDate":"2026-05-03 10:00:00","source":"IYS_AHS_HAT_KAPATMA","recipient":"+905321234567","recipientType":"TACIR","status":"RET","type":"MESAJ","transactionId":"ab"}"#,
    )
    .unwrap();
    assert_eq!(m.consent_date, None);
}
