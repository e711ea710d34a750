//! The exact bytes the client sends, pinned against a wiremock IYS.

use std::time::Duration;

use iys::wire::{ChangeSource, Consent, ConsentQuery, PushConnection};
use iys::{ConsentDate, ConsentStatus, ConsentType, HsSource, RecipientType, Source};
use iys_client::{ClientConfig, ClientError, IysClient, Secret};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

async fn iys() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "AT", "refresh_token": "RT", "expires_in": 7200,
            "refresh_expires_in": 14400, "token_type": "bearer"
        })))
        .mount(&server)
        .await;
    server
}

fn client(server: &MockServer) -> IysClient {
    let mut cfg = ClientConfig::new(server.uri(), "api-user", Secret::new("s3cret"), 600_123);
    cfg.retry.base_delay = Duration::from_millis(5);
    cfg.retry.max_attempts = 3;
    IysClient::new(cfg).unwrap()
}

fn consent() -> Consent {
    Consent {
        recipient: "+905321234567".into(),
        consent_type: ConsentType::Mesaj,
        source: Some(Source::Hs(HsSource::HsWeb)),
        status: ConsentStatus::Onay,
        consent_date: Some(ConsentDate::parse("2026-11-27 10:15:00").unwrap()),
        recipient_type: None,
        retailer_code: None,
        retailer_access: None,
    }
}

/// The requests IYS received other than token calls.
async fn business(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() != "/oauth2/token")
        .collect()
}

fn body(r: &Request) -> String {
    String::from_utf8(r.body.clone()).unwrap()
}

#[tokio::test]
async fn token_request_is_a_json_password_grant() {
    let server = iys().await;
    client(&server).check_token().await.unwrap();
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method.as_str(), "POST");
    assert_eq!(
        reqs[0].headers.get("content-type").unwrap(),
        "application/json"
    );
    assert_eq!(
        body(&reqs[0]),
        r#"{"grant_type":"password","username":"api-user","password":"s3cret"}"#
    );
}

#[tokio::test]
async fn consent_writes_use_v2_with_bearer_and_no_nulls() {
    let server = iys().await;
    Mock::given(method("POST"))
        .and(path("/v2/sps/600123/brands/600124/consents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "transactionId": "a".repeat(64), "creationDate": "2026-11-27 10:15:07"
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/sps/600123/brands/600124/consents/request"))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_json(json!({"requestId": "r-1", "subRequests": []})),
        )
        .mount(&server)
        .await;
    let c = client(&server);
    c.add_consent(600_124, &consent()).await.unwrap();
    c.submit_bulk(600_124, &[consent()]).await.unwrap();
    let reqs = business(&server).await;
    assert_eq!(reqs[0].headers.get("authorization").unwrap(), "Bearer AT");
    assert_eq!(
        reqs[0].headers.get("content-type").unwrap(),
        "application/json"
    );
    assert_eq!(
        body(&reqs[0]),
        r#"{"recipient":"+905321234567","type":"MESAJ","source":"HS_WEB","status":"ONAY","consentDate":"2026-11-27 10:15:00"}"#
    );
    assert_eq!(
        body(&reqs[1]),
        format!("[{}]", body(&reqs[0])),
        "bulk is a bare array"
    );
}

#[tokio::test]
async fn queries_send_iys_shapes() {
    let server = iys().await;
    Mock::given(method("POST"))
        .and(path("/sps/600123/brands/600123/consents/status"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"errors":[{"code":"H401","message":"İzin bulunamadı."}]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(
            "/sps/600123/brands/600123/consents/BIREYSEL/status/MESAJ",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"requestId":"x","list":[]})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/sps/600123/brands/600123/consents/history"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"list":[],"pagination":{"totalCount":0,"pageSize":0,"offset":0}}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/sps/600123/brands/600123/consents/changes"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/v2/sps/600123/brands/600123/consents/request/5a2edd8e-dd6e-4293-b09b-6180b2c5d021",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/sps/600123/brands/600123/push/registration"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"message":"Bağlantı oluşturuldu"})),
        )
        .mount(&server)
        .await;
    let c = client(&server);
    let q = ConsentQuery {
        recipient: "+905321234567".into(),
        recipient_type: RecipientType::Bireysel,
        consent_type: ConsentType::Mesaj,
    };
    assert!(
        c.status(600_123, &q).await.unwrap().is_none(),
        "404 means IYS does not have it"
    );
    c.multi_status(
        600_123,
        RecipientType::Bireysel,
        ConsentType::Mesaj,
        &["+905321234567".into()],
    )
    .await
    .unwrap();
    c.history(600_123, &q).await.unwrap();
    assert!(
        c.changes_page(600_123, ChangeSource::Iys, Some("1597740617_ab"), 1000)
            .await
            .unwrap()
            .is_none()
    );
    c.bulk_result(600_123, "5a2edd8e-dd6e-4293-b09b-6180b2c5d021")
        .await
        .unwrap();
    c.push_register(
        600_123,
        vec![PushConnection {
            url: "https://hub.example.com/push".into(),
            consent_type: ConsentType::Eposta,
            username: "u".into(),
            password: "p".into(),
        }],
    )
    .await
    .unwrap();
    let reqs = business(&server).await;
    let q_body = r#"{"recipient":"+905321234567","recipientType":"BIREYSEL","type":"MESAJ"}"#;
    assert_eq!(body(&reqs[0]), q_body);
    assert_eq!(body(&reqs[1]), r#"{"recipients":["+905321234567"]}"#);
    assert_eq!(reqs[2].url.query(), Some("limit=100&offset=0"));
    assert_eq!(body(&reqs[2]), q_body);
    assert_eq!(
        reqs[3].url.query(),
        Some("source=IYS&limit=1000&after=1597740617_ab")
    );
    assert!(reqs[3].body.is_empty());
    assert_eq!(reqs[4].method.as_str(), "GET");
    assert_eq!(
        body(&reqs[5]),
        r#"{"connection":[{"url":"https://hub.example.com/push","type":"EPOSTA","username":"u","password":"p"}]}"#
    );
}

#[tokio::test]
async fn permanent_errors_are_not_retried_and_keep_every_item() {
    let server = iys().await;
    Mock::given(method("POST"))
        .and(path("/v2/sps/600123/brands/600123/consents"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({"errors":[
            {"location":["recipient"],"value":"9055436100000000","code":"H160","message":"…"},
            {"location":["recipient"],"value":"9055436100000000","code":"H121","message":"…"}
        ]})))
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server)
        .add_consent(600_123, &consent())
        .await
        .unwrap_err();
    match &err {
        ClientError::Iys {
            status: 422,
            errors,
        } => {
            assert_eq!(errors.len(), 2);
            assert_eq!(
                errors[1].location.as_ref().unwrap().to_string(),
                "recipient"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.codes(), ["H160", "H121"]);
}

#[tokio::test]
async fn a_401_re_authenticates_once_and_retries() {
    let server = iys().await;
    Mock::given(method("POST"))
        .and(path("/v2/sps/600123/brands/600123/consents"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"errors":[{"code":"H351","message":"Eksik veya geçersiz jeton!"}]}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/sps/600123/brands/600123/consents"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"transactionId":"b","creationDate":"2026-11-27 10:15:07"})),
        )
        .mount(&server)
        .await;
    client(&server)
        .add_consent(600_123, &consent())
        .await
        .unwrap();
    let all = server.received_requests().await.unwrap();
    let tokens = all
        .iter()
        .filter(|r| r.url.path() == "/oauth2/token")
        .count();
    assert_eq!(
        tokens, 2,
        "one token, then one re-authentication (refresh grant)"
    );
    assert!(
        body(&all[2]).contains(r#""grant_type":"refresh_token""#),
        "{}",
        body(&all[2])
    );
}

#[tokio::test]
async fn a_lost_answer_to_a_v1_add_is_not_resent() {
    let server = iys().await;
    Mock::given(method("POST"))
        .and(path("/sps/600123/brands/600123/consents"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let mut cfg = ClientConfig::new(server.uri(), "api-user", Secret::new("s3cret"), 600_123);
    cfg.timeout = Duration::from_millis(300);
    let c = IysClient::new(cfg).unwrap();
    let err = c.add_consent_v1(600_123, &consent()).await.unwrap_err();
    assert!(matches!(err, ClientError::Ambiguous(_)), "{err:?}");
    assert_eq!(business(&server).await.len(), 1, "sent once");
}

/// Mounts `answer` for one method and path.
async fn answer(server: &MockServer, m: &str, p: &str, r: ResponseTemplate) {
    Mock::given(method(m))
        .and(path(p))
        .respond_with(r)
        .mount(server)
        .await;
}

#[tokio::test]
async fn every_other_endpoint_sends_iys_shapes() {
    let server = iys().await;
    let b = "/sps/600123/brands/600123";
    let ok = |v: serde_json::Value| ResponseTemplate::new(200).set_body_json(v);
    let receipt = json!({"transactionId": "27bb8f2f-19c6-4b93-bfcd-bfd188095765", "creationDate": "2026-11-27 14:36:42"});
    let list = json!({"pagination": {"offset": 0, "pageSize": 0, "totalCount": 0}, "list": []});
    answer(
        &server,
        "POST",
        &format!("{b}/consents"),
        ok(receipt.clone()),
    )
    .await;
    answer(
        &server,
        "GET",
        &format!("{b}/push/registration"),
        ok(json!([])),
    )
    .await;
    answer(
        &server,
        "POST",
        &format!("{b}/push/unregistration"),
        ok(json!({"message": "Bağlantı Kaldırıldı"})),
    )
    .await;
    answer(&server, "GET", "/sps/600123/brands", ok(json!([]))).await;
    answer(&server, "GET", "/sps/600123/subscription", ok(json!({"startDate": "2026-01-01 00:00:00", "expirationDate": "2026-12-31 23:59:59", "subscriptionPackageName": "İleti+", "status": "ACTIVE"}))).await;
    answer(
        &server,
        "GET",
        "/info/city",
        ok(json!([{"code": 34, "name": "İstanbul"}])),
    )
    .await;
    answer(
        &server,
        "GET",
        "/info/town",
        ok(json!([{"code": 1, "name": "Seyhan", "city_code": 1}])),
    )
    .await;
    answer(
        &server,
        "POST",
        &format!("{b}/retailers"),
        ResponseTemplate::new(201).set_body_json(json!({"retailerCode": 58954386})),
    )
    .await;
    answer(&server, "GET", &format!("{b}/retailers"), ok(list.clone())).await;
    answer(
        &server,
        "GET",
        &format!("{b}/retailers/58954386"),
        ok(json!({})),
    )
    .await;
    answer(
        &server,
        "DELETE",
        &format!("{b}/retailers/58954386"),
        ResponseTemplate::new(200).set_body_string("Başarı"),
    )
    .await;
    answer(
        &server,
        "POST",
        &format!("{b}/consents/retailers/access"),
        ok(receipt),
    )
    .await;
    answer(
        &server,
        "PUT",
        &format!("{b}/consents/retailers/access"),
        ResponseTemplate::new(202),
    )
    .await;
    answer(
        &server,
        "POST",
        &format!("{b}/consent/retailers/access/list"),
        ok(list),
    )
    .await;
    answer(
        &server,
        "POST",
        &format!("{b}/consents/retailers/access/remove"),
        ResponseTemplate::new(202),
    )
    .await;
    answer(
        &server,
        "POST",
        &format!("{b}/consents/retailers/access/remove/all"),
        ResponseTemplate::new(202),
    )
    .await;
    answer(
        &server,
        "GET",
        &format!("{b}/changes/2026-11-27/recipients/BIREYSEL"),
        ok(json!({"changeStats": []})),
    )
    .await;
    answer(&server, "GET", &format!("{b}/agreements/2026-11-27"), ok(json!({"processStatus": "completed", "hashValue": "x", "hashMethod": "SHA-384", "agreementStatus": false}))).await;
    answer(
        &server,
        "PUT",
        &format!("{b}/agreements/2026-11-27"),
        ok(json!({"agreementCaptured": true})),
    )
    .await;
    answer(
        &server,
        "GET",
        &format!("{b}/changes/2026-11-27/file"),
        ResponseTemplate::new(200).set_body_string("a,b\n"),
    )
    .await;

    let c = client(&server);
    let day: jiff::civil::Date = "2026-11-27".parse().unwrap();
    let conn = PushConnection {
        url: "https://hub.example.com/push".into(),
        consent_type: ConsentType::Mesaj,
        username: "u".into(),
        password: "p".into(),
    };
    let retailer: iys::wire::Retailer = serde_json::from_value(json!({
        "title": "XYZ Ticaret", "name": "Ad Soyad", "tckn": "57703411244", "tin": "8450525470",
        "city": {"code": "34", "name": "İstanbul"}, "town": {"code": "01", "name": "Kadıköy"}
    }))
    .unwrap();
    let access = iys::wire::RetailerAccessBulk {
        consent_type: ConsentType::Mesaj,
        recipient_type: RecipientType::Bireysel,
        recipients: vec!["+905321234567".into()],
        retailer_access: Some(vec![58954386]),
    };
    let q = ConsentQuery {
        recipient: "+905321234567".into(),
        recipient_type: RecipientType::Bireysel,
        consent_type: ConsentType::Mesaj,
    };
    c.add_consent_v1(600_123, &consent()).await.unwrap();
    c.push_list(600_123).await.unwrap();
    c.push_unregister(600_123, &conn).await.unwrap();
    c.brands().await.unwrap();
    c.subscription().await.unwrap();
    c.cities().await.unwrap();
    c.towns().await.unwrap();
    assert_eq!(
        c.retailer_create(600_123, &retailer)
            .await
            .unwrap()
            .retailer_code,
        58954386
    );
    c.retailer_list(600_123, 0, 100).await.unwrap();
    assert!(
        c.retailer_get(600_123, 58954386).await.unwrap().is_none(),
        "IYS answers {{}} for an unknown dealer"
    );
    c.retailer_delete(600_123, 58954386).await.unwrap();
    c.retailer_access_grant(
        600_123,
        &iys::wire::RetailerAccessGrant {
            consent_type: ConsentType::Mesaj,
            recipient: "+905321234567".into(),
            recipient_type: RecipientType::Bireysel,
            retailer_access: vec![58954386],
        },
    )
    .await
    .unwrap();
    c.retailer_access_replace(600_123, &access).await.unwrap();
    c.retailer_access_list(600_123, &q).await.unwrap();
    c.retailer_access_remove(600_123, &access).await.unwrap();
    c.retailer_access_remove(
        600_123,
        &iys::wire::RetailerAccessBulk {
            retailer_access: None,
            ..access.clone()
        },
    )
    .await
    .unwrap();
    c.day_summary(600_123, day, RecipientType::Bireysel)
        .await
        .unwrap();
    c.agreement(600_123, day).await.unwrap();
    c.agreement_confirm(600_123, day).await.unwrap();
    assert_eq!(
        c.daily_file(600_123, day).await.unwrap().as_deref(),
        Some("a,b\n")
    );

    let reqs = business(&server).await;
    let seen: Vec<(String, String, Option<String>, String)> = reqs
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.url.path().to_owned(),
                r.url.query().map(str::to_owned),
                body(r),
            )
        })
        .collect();
    let expect = |m: &str, p: String, q: Option<&str>, body: &str| {
        (m.to_owned(), p, q.map(str::to_owned), body.to_owned())
    };
    let conn_body =
        r#"{"url":"https://hub.example.com/push","type":"MESAJ","username":"u","password":"p"}"#;
    let access_body = r#"{"type":"MESAJ","recipientType":"BIREYSEL","recipients":["+905321234567"],"retailerAccess":[58954386]}"#;
    let wanted = vec![
        expect(
            "POST",
            format!("{b}/consents"),
            None,
            r#"{"recipient":"+905321234567","type":"MESAJ","source":"HS_WEB","status":"ONAY","consentDate":"2026-11-27 10:15:00"}"#,
        ),
        expect("GET", format!("{b}/push/registration"), None, ""),
        expect("POST", format!("{b}/push/unregistration"), None, conn_body),
        expect("GET", "/sps/600123/brands".into(), None, ""),
        expect("GET", "/sps/600123/subscription".into(), None, ""),
        expect("GET", "/info/city".into(), None, ""),
        expect("GET", "/info/town".into(), None, ""),
        expect(
            "POST",
            format!("{b}/retailers"),
            None,
            r#"{"title":"XYZ Ticaret","name":"Ad Soyad","tckn":"57703411244","tin":"8450525470","city":{"code":"34","name":"İstanbul"},"town":{"code":"01","name":"Kadıköy"}}"#,
        ),
        expect(
            "GET",
            format!("{b}/retailers"),
            Some("offset=0&limit=100"),
            "",
        ),
        expect("GET", format!("{b}/retailers/58954386"), None, ""),
        expect("DELETE", format!("{b}/retailers/58954386"), None, ""),
        expect(
            "POST",
            format!("{b}/consents/retailers/access"),
            None,
            r#"{"type":"MESAJ","recipient":"+905321234567","recipientType":"BIREYSEL","retailerAccess":[58954386]}"#,
        ),
        expect(
            "PUT",
            format!("{b}/consents/retailers/access"),
            None,
            access_body,
        ),
        expect(
            "POST",
            format!("{b}/consent/retailers/access/list"),
            None,
            r#"{"recipient":"+905321234567","recipientType":"BIREYSEL","type":"MESAJ"}"#,
        ),
        expect(
            "POST",
            format!("{b}/consents/retailers/access/remove"),
            None,
            access_body,
        ),
        expect(
            "POST",
            format!("{b}/consents/retailers/access/remove/all"),
            None,
            r#"{"type":"MESAJ","recipientType":"BIREYSEL","recipients":["+905321234567"]}"#,
        ),
        expect(
            "GET",
            format!("{b}/changes/2026-11-27/recipients/BIREYSEL"),
            None,
            "",
        ),
        expect("GET", format!("{b}/agreements/2026-11-27"), None, ""),
        expect(
            "PUT",
            format!("{b}/agreements/2026-11-27"),
            None,
            r#"{"agreementStatus":true}"#,
        ),
        expect("GET", format!("{b}/changes/2026-11-27/file"), None, ""),
    ];
    assert_eq!(seen, wanted);
    assert!(
        reqs.iter()
            .all(|r| r.headers.get("authorization").unwrap() == "Bearer AT")
    );
    assert!(
        reqs.iter()
            .filter(|r| !r.body.is_empty())
            .all(|r| r.headers.get("content-type").unwrap() == "application/json")
    );
}
