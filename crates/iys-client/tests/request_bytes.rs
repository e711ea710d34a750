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
