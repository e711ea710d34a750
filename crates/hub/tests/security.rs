//! Security and isolation over real sockets: IYS connections only from the provider's admin and
//! only to allowed hosts, passwords sealed and never answered, hostile dates, the push
//! receiver's authentication and throttling, API key revocation, rotation and expiry, per-key
//! rate limits, metrics behind a key.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hub::Hub;
use hub_store::{EngineStore, IysPolicy, SqlStore, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const ADMIN: &str = "provider-admin-key";
const ALLOWED: &str = "http://127.0.0.1:18690";

struct Server {
    base: String,
    http: reqwest::Client,
    store: Arc<SqlStore>,
    cancel: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(rate_limit: u32) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let url = SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
        let store = Arc::new(SqlStore::connect(&url).await.unwrap());
        hub::bootstrap_admin_key(&*store, Some(ADMIN))
            .await
            .unwrap();
        let mut allowed = IysPolicy::default().allowed_urls;
        allowed.push(ALLOWED.into());
        let hub = Arc::new(Hub {
            iys: IysPolicy {
                allowed_urls: allowed,
                secret_key: Some(hub_secrets::SecretKey::generate().unwrap()),
                default_connection: None,
            },
            guards: hub::Guards::new(rate_limit),
            ..Hub::new(store.clone())
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        tokio::spawn(hub::serve(hub, listener, cancel.clone()));
        let s = Server {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            store,
            cancel,
            _dir: dir,
        };
        s.call(
            reqwest::Method::POST,
            "/api/v1/brands",
            ADMIN,
            json!({"brandCode": 600123, "name": "A"}),
        )
        .await;
        s.call(
            reqwest::Method::POST,
            "/api/v1/brands",
            ADMIN,
            json!({"brandCode": 600124, "name": "B"}),
        )
        .await;
        s
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Value,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut r = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(key);
        if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
            r = r.json(&body);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            headers,
        )
    }

    /// A new key: (id, secret).
    async fn key(&self, brand: Option<u64>, scopes: &[&str]) -> (String, String) {
        let (s, v, _) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/api-keys",
                ADMIN,
                json!({"name": "k", "brandCode": brand, "scopes": scopes}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        (
            v["id"].as_str().unwrap().to_owned(),
            v["key"].as_str().unwrap().to_owned(),
        )
    }

    async fn push(
        &self,
        brand: u64,
        user: &str,
        password: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let r = self
            .http
            .post(format!("{}/api/v1/iys/push/{brand}", self.base))
            .header("authorization", format!("Basic {basic}"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[tokio::test]
async fn only_the_provider_admin_sets_connections_and_only_to_allowed_hosts() {
    let s = Server::start(0).await;
    let (_, brand_admin) = s.key(Some(600124), &["admin"]).await;
    let patch = |key: &str, iys: Value| {
        let key = key.to_owned();
        let s = &s;
        async move {
            s.call(
                reqwest::Method::PATCH,
                "/api/v1/brands/600124",
                &key,
                json!({"iys": iys}),
            )
            .await
        }
    };
    // The finding: a brand's admin pointed the hub's IYS credentials at its own listener.
    let (status, body, _) = patch(
        &brand_admin,
        json!({"baseUrl": ALLOWED, "username": "demo"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // Nor may it move the brand under another provider's IYS code, which the provider's
    // credentials would then act for.
    let (status, body, _) = s
        .call(
            reqwest::Method::PATCH,
            "/api/v1/brands/600124",
            &brand_admin,
            json!({"iysCode": 600999}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["field"], "iysCode", "{body}");
    // Its own other settings still work (the IYS code it has, given again, too).
    let (status, body, _) = s
        .call(
            reqwest::Method::GET,
            "/api/v1/brands/600124",
            &brand_admin,
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let own_code = body["iysCode"].clone();
    let (status, _, _) = s
        .call(
            reqwest::Method::PATCH,
            "/api/v1/brands/600124",
            &brand_admin,
            json!({"name": "B2", "iysCode": own_code}),
        )
        .await;
    assert_eq!(status, 200);
    for code in [json!(600_998), own_code] {
        let (status, body, _) = s
            .call(
                reqwest::Method::PATCH,
                "/api/v1/brands/600124",
                ADMIN,
                json!({ "iysCode": code }),
            )
            .await;
        assert_eq!(status, 200, "the provider's admin may: {body}");
    }
    for bad in [
        "http://127.0.0.1:18699",
        "file:///etc/passwd",
        "gopher://127.0.0.1/x",
        "http://169.254.169.254/latest",
        "not a url",
        "https://api.iys.org.tr.evil.example",
    ] {
        let (status, body, _) = patch(ADMIN, json!({"baseUrl": bad, "username": "demo"})).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(
            (&body["error"]["code"], &body["error"]["field"]),
            (&json!("url_not_allowed"), &json!("iys.baseUrl"))
        );
    }
    let (status, body, _) = patch(
        ADMIN,
        json!({"baseUrl": "https://api.sandbox.iys.org.tr/", "username": "ops", "password": "p4ss-w0rd", "pushUsername": "iyspush", "pushPassword": "push-secret"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["iys"],
        json!({"baseUrl": "https://api.sandbox.iys.org.tr", "username": "ops", "passwordSet": true, "pushUsername": "iyspush", "pushPasswordSet": true})
    );
    // Secrets are in no answer, and sealed at rest.
    let (_, one, _) = s
        .call(
            reqwest::Method::GET,
            "/api/v1/brands/600124",
            ADMIN,
            Value::Null,
        )
        .await;
    let (_, all, _) = s
        .call(reqwest::Method::GET, "/api/v1/brands", ADMIN, Value::Null)
        .await;
    for text in [one.to_string(), all.to_string()] {
        assert!(
            !text.contains("p4ss-w0rd")
                && !text.contains("push-secret")
                && !text.contains("argon2"),
            "{text}"
        );
    }
    let stored = s
        .store
        .brand(hub_core::BrandCode(600124))
        .await
        .unwrap()
        .unwrap();
    let sealed = stored.iys.password_sealed.unwrap();
    assert!(sealed.starts_with("v1:") && !sealed.contains("p4ss"));
    assert!(
        stored
            .iys
            .push_password_hash
            .unwrap()
            .starts_with("$argon2id$")
    );
    // Leaving the password out keeps it; an empty string clears it.
    let (_, body, _) = patch(ADMIN, json!({"username": "ops2"})).await;
    assert_eq!(body["iys"]["passwordSet"], true);
    let (_, body, _) = patch(ADMIN, json!({"password": ""})).await;
    assert_eq!(body["iys"]["passwordSet"], false);
}

#[tokio::test]
async fn far_future_dates_are_h162_and_oversized_attributes_are_refused() {
    let s = Server::start(0).await;
    let (status, body, _) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/brands/600123/consents",
            ADMIN,
            json!({"recipient": "+905321234567", "type": "MESAJ", "status": "ONAY", "source": "HS_WEB", "consentDate": "9999-12-31 23:59:59"}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), &body["error"]["code"]),
        (422, &json!("H162")),
        "{body}"
    );
    let big = "x".repeat(20_000);
    let (status, body, _) = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/brands/600123/profiles/user-1",
            ADMIN,
            json!({"addresses": ["+905321234567"], "attributes": {"note": big}}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), &body["error"]["field"]),
        (422, &json!("attributes"))
    );
}

#[tokio::test]
async fn the_push_receiver_checks_credentials_first_throttles_guessing_and_quarantines_poison() {
    let s = Server::start(0).await;
    s.call(
        reqwest::Method::PATCH,
        "/api/v1/brands/600123",
        ADMIN,
        json!({"iys": {"pushUsername": "iyspush", "pushPassword": "push-secret"}}),
    )
    .await;
    let movement = |date: &str, tx: &str| {
        json!({"list": [{"iysCode": 600123, "brandCode": 600123, "consentDate": date, "creationDate": "2026-11-20 10:00:01", "source": "IYS_MOBIL", "recipient": "+905321234567", "recipientType": "BIREYSEL", "status": "RET", "type": "MESAJ", "transactionId": tx}]})
        .to_string()
    };
    // A poison date is set aside; the brand's data is untouched and the receiver answers.
    let (status, body) = s
        .push(
            600123,
            "iyspush",
            "push-secret",
            &movement("9999-12-31 23:59:59", &"a".repeat(64)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["applied"].as_u64(), body["quarantined"].as_u64()),
        (Some(0), Some(1))
    );
    let q = s
        .store
        .quarantined(hub_core::BrandCode(600123), 10)
        .await
        .unwrap();
    assert_eq!(q.len(), 1);
    assert!(q[0].reason.contains("future"), "{q:?}");
    // A NUL character (which PostgreSQL cannot store) sets aside only its own item.
    let mut two: Value =
        serde_json::from_str(&movement("2026-11-20 09:00:00", &"d".repeat(64))).unwrap();
    let mut bad = two["list"][0].clone();
    bad["recipient"] = json!("+905321234568");
    bad["transactionId"] = json!(format!("{}\u{0}", "e".repeat(63)));
    two["list"].as_array_mut().unwrap().push(bad);
    let (status, body) = s
        .push(600123, "iyspush", "push-secret", &two.to_string())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["applied"].as_u64(), body["quarantined"].as_u64()),
        (Some(1), Some(1)),
        "{body}"
    );
    let (status, body) = s
        .push(
            600123,
            "iyspush",
            "push-secret",
            &movement("2026-11-20 10:00:00", &"b".repeat(64)),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["applied"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    // A brandCode written as text is the brand's; an item without a readable one is set aside
    // for a person, not dropped unseen; IYS's test payload (brandCode 121212) is not applied.
    let mut mixed: Value =
        serde_json::from_str(&movement("2026-11-20 11:00:00", &"f".repeat(64))).unwrap();
    mixed["list"][0]["brandCode"] = json!("600123");
    let mut unaddressed = mixed["list"][0].clone();
    unaddressed["recipient"] = json!("+905321234569");
    unaddressed["brandCode"] = json!("ours?");
    let mut test_payload = mixed["list"][0].clone();
    test_payload["brandCode"] = json!(121212);
    test_payload["recipient"] = json!("pushtest@iys.org.tr");
    test_payload["type"] = json!("EPOSTA");
    for item in [unaddressed, test_payload] {
        mixed["list"].as_array_mut().unwrap().push(item);
    }
    let (status, body) = s
        .push(600123, "iyspush", "push-secret", &mixed.to_string())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["received"].as_u64(),
            body["applied"].as_u64(),
            body["quarantined"].as_u64()
        ),
        (Some(3), Some(1), Some(1)),
        "{body}"
    );
    let q = s
        .store
        .quarantined(hub_core::BrandCode(600123), 10)
        .await
        .unwrap();
    assert!(q.iter().any(|r| r.reason.contains("brandCode")), "{q:?}");
    // Credentials before the body: a huge body with a wrong password is refused unread (401).
    let huge = "x".repeat(3 * 1024 * 1024);
    let (status, _) = s.push(600123, "iyspush", "wrong", &huge).await;
    assert_eq!(status, 401);
    // With the right password an oversized body is 413.
    let (status, _) = s.push(600123, "iyspush", "push-secret", &huge).await;
    assert_eq!(status, 413);
    // Guessing is throttled per brand and address, with Retry-After.
    let mut last = StatusCode::OK;
    for _ in 0..12 {
        last = s.push(600123, "iyspush", "guess", "{}").await.0;
    }
    assert_eq!(last, 429);
    let (status, _) = s
        .push(
            600123,
            "iyspush",
            "push-secret",
            &movement("2026-11-20 10:00:00", &"c".repeat(64)),
        )
        .await;
    assert_eq!(status, 429, "the right password waits out the throttle too");
    // Another brand is not throttled by it.
    let (status, _) = s.push(600124, "x", "y", "{}").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn keys_are_revoked_at_once_rotated_and_expire() {
    let s = Server::start(0).await;
    let (id, secret) = s.key(Some(600123), &["read"]).await;
    let get = |key: String| {
        let s = &s;
        async move {
            s.call(
                reqwest::Method::GET,
                "/api/v1/brands/600123",
                &key,
                Value::Null,
            )
            .await
            .0
        }
    };
    assert_eq!(get(secret.clone()).await, 200);
    let listed = s
        .call(reqwest::Method::GET, "/api/v1/api-keys", ADMIN, Value::Null)
        .await
        .1;
    let me = listed["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap()
        .clone();
    assert!(me["lastUsedAt"].is_string(), "{me}");
    // Rotation: the old secret stops, the new one works.
    let (status, rotated, _) = s
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/api-keys/{id}/rotate"),
            ADMIN,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(rotated["id"], id.as_str());
    assert_eq!(get(secret).await, 401);
    assert_eq!(get(new_secret.clone()).await, 200);
    // Another brand's admin cannot see or revoke it.
    let (_, other_admin) = s.key(Some(600124), &["admin"]).await;
    let (status, _, _) = s
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/api-keys/{id}"),
            &other_admin,
            Value::Null,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = s
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/api-keys/{id}"),
            ADMIN,
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(get(new_secret).await, 401, "revoked at once");
    // Expiry.
    let (status, body, _) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/api-keys",
            ADMIN,
            json!({"name": "short", "brandCode": 600123, "scopes": ["read"], "expiresAt": jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_secs(1)).unwrap().to_string()}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let short = body["key"].as_str().unwrap().to_owned();
    assert_eq!(get(short.clone()).await, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(get(short).await, 401);
    // The last provider admin key cannot be revoked; once another exists, it can.
    let bootstrap = s
        .store
        .api_key_by_hash(&hub::hash_key(ADMIN))
        .await
        .unwrap()
        .unwrap();
    let (status, body, _) = s
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/api-keys/{}", bootstrap.id),
            ADMIN,
            Value::Null,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (_, second_admin) = s.key(None, &["admin"]).await;
    let (status, _, _) = s
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/api-keys/{}", bootstrap.id),
            &second_admin,
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(get(ADMIN.to_owned()).await, 401);
}

#[tokio::test]
async fn a_key_over_its_rate_is_told_to_wait_and_metrics_need_the_provider_admin() {
    let s = Server::start(5).await;
    let (_, reader) = s.key(Some(600123), &["read"]).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..8 {
        let (status, _, headers) = s
            .call(
                reqwest::Method::GET,
                "/api/v1/brands/600123",
                &reader,
                Value::Null,
            )
            .await;
        statuses.push(status.as_u16());
        if status == 429 {
            retry_after = headers.get("retry-after").cloned();
        }
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(retry_after.is_some());
    // Other keys are not limited by it.
    let (_, other) = s.key(Some(600123), &["read"]).await;
    assert_eq!(
        s.call(
            reqwest::Method::GET,
            "/api/v1/brands/600123",
            &other,
            Value::Null
        )
        .await
        .0,
        200
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, _) = s
        .call(reqwest::Method::GET, "/metrics", &reader, Value::Null)
        .await;
    assert_eq!(status, 403, "a brand key sees no other brand's figures");
    let (status, text, _) = s
        .call(reqwest::Method::GET, "/metrics", ADMIN, Value::Null)
        .await;
    assert_eq!(status, 200);
    assert!(
        text.as_str()
            .unwrap_or_default()
            .contains("iyshub_outbox_rows")
            || text.to_string().contains("iyshub")
    );
}

#[tokio::test]
async fn failed_changes_are_listed_and_requeued_through_the_api() {
    let s = Server::start(0).await;
    let (status, body, _) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/brands/600123/consents",
            ADMIN,
            json!({"changes": [
                {"recipient": "+905320000001", "type": "MESAJ", "status": "ONAY", "source": "HS_WEB", "consentDate": "2026-11-20 10:00:00"},
                {"recipient": "+905320000002", "type": "MESAJ", "status": "RET", "source": "HS_WEB", "consentDate": "2026-11-20 10:00:00"}
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // IYS refuses the first (as the engines would record it).
    let rows = s
        .store
        .claim_pending(
            hub_core::BrandCode(600123),
            "w",
            jiff::Timestamp::now(),
            60_000,
            10,
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let refused = rows
        .iter()
        .find(|r| r.recipient == "+905320000001")
        .unwrap()
        .clone();
    s.store
        .settle(
            hub_core::BrandCode(600123),
            "w",
            vec![(
                refused,
                hub_store::Settlement::Refused {
                    code: "H467".into(),
                    message: "late".into(),
                },
            )],
            jiff::Timestamp::now(),
        )
        .await
        .unwrap();
    let (status, list, _) = s
        .call(
            reqwest::Method::GET,
            "/api/v1/brands/600123/outbox?state=failed&hcode=H467",
            ADMIN,
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        (
            &items[0]["recipient"],
            &items[0]["lastError"],
            &items[0]["state"]
        ),
        (&json!("+905320000001"), &json!("H467"), &json!("failed"))
    );
    let (status, body, _) = s
        .call(
            reqwest::Method::GET,
            "/api/v1/brands/600123/outbox?state=nope",
            ADMIN,
            Value::Null,
        )
        .await;
    assert_eq!(
        (status.as_u16(), &body["error"]["field"]),
        (422, &json!("state"))
    );
    // A brand's writer may list but not requeue; a dry run counts; the requeue sends.
    let (_, writer) = s.key(Some(600123), &["read", "write"]).await;
    let (status, _, _) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/brands/600123/outbox/requeue",
            &writer,
            json!({"hcode": "H467"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, dry, _) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/brands/600123/outbox/requeue",
            ADMIN,
            json!({"hcode": "H467", "dryRun": true}),
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(
        dry,
        json!({"matched": 1, "requeued": 1, "overtaken": 0, "dryRun": true})
    );
    let (status, body, _) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/brands/600123/outbox/requeue",
            ADMIN,
            json!({"state": "pending"}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), &body["error"]["field"]),
        (422, &json!("state"))
    );
    let (_, done, _) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/brands/600123/outbox/requeue",
            ADMIN,
            json!({"hcode": "H467"}),
        )
        .await;
    assert_eq!(done["requeued"], 1);
    let (_, list, _) = s
        .call(
            reqwest::Method::GET,
            "/api/v1/brands/600123/outbox?state=pending",
            ADMIN,
            Value::Null,
        )
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    let (_, state, _) = s
        .call(
            reqwest::Method::GET,
            "/api/v1/brands/600123/recipients/+905320000001",
            ADMIN,
            Value::Null,
        )
        .await;
    assert_eq!(state["channels"][0]["iysState"], "pending", "{state}");
}

#[tokio::test]
async fn a_brand_that_cannot_reach_iys_says_why_in_sync() {
    let s = Server::start(0).await;
    // No connection of its own and no instance default: not connected, with the reason.
    let (status, sync, _) = s
        .call(
            reqwest::Method::GET,
            "/api/v1/brands/600123/sync",
            ADMIN,
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{sync}");
    assert_eq!(sync["connection"]["state"], "not_connected");
    assert!(
        sync["connection"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no IYS connection"),
        "{sync}"
    );
    // A URL changed behind the hub's back (straight in the database) is not used either.
    let mut brand = s
        .store
        .brand(hub_core::BrandCode(600123))
        .await
        .unwrap()
        .unwrap();
    brand.iys.base_url = Some("http://169.254.169.254".into());
    brand.iys.username = Some("demo".into());
    s.store
        .update_brand(
            hub_core::BrandCode(600123),
            hub_store::BrandPatch {
                iys: Some(brand.iys),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (_, sync, _) = s
        .call(
            reqwest::Method::GET,
            "/api/v1/brands/600123/sync",
            ADMIN,
            Value::Null,
        )
        .await;
    assert_eq!(sync["connection"]["state"], "not_connected", "{sync}");
    assert!(
        sync["connection"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("not on the allowed list"),
        "{sync}"
    );
    // An allowed host is connected.
    let (status, _, _) = s
        .call(
            reqwest::Method::PATCH,
            "/api/v1/brands/600123",
            ADMIN,
            json!({"iys": {"baseUrl": ALLOWED, "username": "demo"}}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, sync, _) = s
        .call(
            reqwest::Method::GET,
            "/api/v1/brands/600123/sync",
            ADMIN,
            Value::Null,
        )
        .await;
    assert_eq!(
        (&sync["connection"]["state"], &sync["connection"]["from"]),
        (&json!("connected"), &json!("brand")),
        "{sync}"
    );
}

/// A second instance on the same database caches keys for its TTL: a key revoked elsewhere stops
/// there within the TTL, while consent states are never cached (a RET recorded on one instance
/// is denied by the other's very next check).
#[tokio::test]
async fn another_instance_sees_revocations_within_the_cache_ttl_and_consents_at_once() {
    let a = Server::start(0).await;
    let ttl = Duration::from_millis(300);
    let hub_b = Arc::new(Hub {
        guards: hub::Guards::new(0),
        caches: hub::cache::Caches::new(ttl),
        ..Hub::new(a.store.clone())
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(hub::serve(hub_b, listener, a.cancel.clone()));
    let (id, secret) = a.key(Some(600123), &["read", "write"]).await;
    let on_b = |path: &'static str, body: Value| {
        let (http, base, secret) = (a.http.clone(), b_base.clone(), secret.clone());
        async move {
            let r = http
                .post(format!("{base}{path}"))
                .bearer_auth(secret)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let consent = |status: &str, date: &str| {
        json!({"recipient": "+905321112233", "type": "MESAJ", "status": status,
               "consentDate": date, "source": "HS_WEB"})
    };
    let check = json!({"recipient": "+905321112233", "channel": "MESAJ", "policy": "lenient"});
    let (s, v) = on_b(
        "/api/v1/brands/600123/consents",
        json!({"changes": [consent("ONAY", "2026-01-02 10:00:00")]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = on_b("/api/v1/brands/600123/check", check.clone()).await;
    assert_eq!(
        (s.as_u16(), v["allowed"].clone()),
        (200, json!(true)),
        "{v}"
    );

    // A RET through instance A is seen by B's next check: states are not cached.
    let (s, v, _) = a
        .call(
            reqwest::Method::POST,
            "/api/v1/brands/600123/consents",
            &secret,
            json!({"changes": [consent("RET", "2026-01-02 11:00:00")]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = on_b("/api/v1/brands/600123/check", check.clone()).await;
    assert_eq!(v["allowed"], false, "{v}");

    // Revoked on A: B refuses the key once its cached copy is older than the TTL.
    let (s, _, _) = a
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/api-keys/{id}"),
            ADMIN,
            Value::Null,
        )
        .await;
    assert_eq!(s, 204);
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let (s, _) = on_b("/api/v1/brands/600123/check", check).await;
    assert_eq!(
        s, 401,
        "revoked on another instance: refused within the TTL"
    );
}
