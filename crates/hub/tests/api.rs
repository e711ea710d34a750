//! The hub's REST API over real sockets: every endpoint, every validation error with its field,
//! value and code, auth, batches, idempotency, the ledger's rules and the send-time checks.
//!
//! Each test gets its own hub on 127.0.0.1 and its own database: SQLite in a temporary directory,
//! or a fresh PostgreSQL database when `IYSHUB_TEST_DATABASE_URL` is set (CI sets it), so the
//! same tests run on both backends.

use std::sync::Arc;
use std::time::Duration;

use hub::Hub;
use hub_store::SqlStore;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const ADMIN_KEY: &str = "test-admin-key";
const BRAND: u64 = 600_123;
const OTHER_BRAND: u64 = 600_124;

const PHONE: &str = "+905321234567";
const PHONE2: &str = "+905321234568";
const PHONE3: &str = "+905321234569";
const EMAIL: &str = "ayse@example.com";

/// Consent dates in the past, in order.
const D1: &str = "2025-11-20 10:00:00";
const D2: &str = "2025-11-21 10:00:00";
const D3: &str = "2025-11-22 10:00:00";

// ---------------------------------------------------------------------------------------------
// The test hub

use hub_store::testkit::{drop_postgres, fresh_postgres};

/// A hub serving on a real socket, with an admin key (`ADMIN_KEY`).
struct TestHub {
    base: String,
    http: reqwest::Client,
    hub: Arc<Hub>,
    cancel: CancellationToken,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
    /// The admin URL and the database's name, to drop it at the end.
    postgres: Option<(String, String)>,
}

impl TestHub {
    async fn start() -> TestHub {
        let (url, dir, postgres) = match std::env::var("IYSHUB_TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                let (url, name) = fresh_postgres(&admin_url, "iyshub_api_test").await;
                (url, None, Some((admin_url, name)))
            }
            _ => {
                let dir = tempfile::tempdir().unwrap();
                let url = SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
                (url, Some(dir), None)
            }
        };
        let store = SqlStore::connect(&url).await.unwrap();
        hub::bootstrap_admin_key(&store, Some(ADMIN_KEY))
            .await
            .unwrap();
        let hub = Arc::new(Hub::new(store.into()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let server = tokio::spawn(hub::serve(hub.clone(), listener, cancel.clone()));
        TestHub {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            hub,
            cancel,
            server: Some(server),
            _dir: dir,
            postgres,
        }
    }

    /// Shuts the server down, closes the store and drops the PostgreSQL database.
    async fn stop(mut self) {
        self.cancel.cancel();
        self.http = reqwest::Client::new();
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(30), server)
                .await
                .expect("the server stops")
                .unwrap()
                .unwrap();
        }
        self.hub.store.close().await;
        if let Some((admin_url, name)) = self.postgres.take() {
            drop_postgres(&admin_url, &name).await;
        }
    }

    fn admin(&self) -> Api<'_> {
        self.with_key(ADMIN_KEY)
    }

    fn with_key(&self, key: &str) -> Api<'_> {
        Api {
            hub: self,
            key: Some(key.to_owned()),
        }
    }

    fn anonymous(&self) -> Api<'_> {
        Api {
            hub: self,
            key: None,
        }
    }

    /// A hub with brand `BRAND` (integrator mode) already created.
    async fn with_brand() -> TestHub {
        let hub = TestHub::start().await;
        hub.admin()
            .create_brand(json!({"brandCode": BRAND, "name": "Örnek Marka"}))
            .await
            .expect(201);
        hub
    }
}

impl Drop for TestHub {
    /// A failed test still drops its PostgreSQL database.
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some((admin_url, name)) = self.postgres.take() {
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(drop_postgres(&admin_url, &name));
            })
            .join();
        }
    }
}

/// An answer: status, headers, the raw text and the JSON (`Null` when not JSON).
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: HeaderMap,
    text: String,
    json: Value,
}

impl Resp {
    /// Asserts the status and gives the JSON.
    #[track_caller]
    fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "expected {status}, got {}: {}",
            self.status, self.text
        );
        self.json
    }

    /// Asserts an error in the API's shape: status, code, field and value (`None`: absent).
    #[track_caller]
    fn error(&self, status: u16, code: &str, field: Option<&str>, value: Option<Value>) {
        assert_eq!(
            self.status, status,
            "expected {status} {code}, got {}: {}",
            self.status, self.text
        );
        let e = &self.json["error"];
        assert!(e.is_object(), "not the error shape: {}", self.text);
        assert_eq!(e["code"], code, "{}", self.text);
        assert!(
            e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "an error has a message: {}",
            self.text
        );
        match field {
            Some(f) => assert_eq!(e["field"], f, "field: {}", self.text),
            None => assert!(e.get("field").is_none(), "no field: {}", self.text),
        }
        match value {
            Some(v) => assert_eq!(e["value"], v, "value: {}", self.text),
            None => assert!(e.get("value").is_none(), "no value: {}", self.text),
        }
    }

    /// Asserts a 4xx answer in the API's error shape, whatever its code.
    #[track_caller]
    fn client_error(&self) {
        assert!(
            (400..500).contains(&self.status),
            "expected 4xx, got {}: {}",
            self.status,
            self.text
        );
        assert!(
            self.json["error"]["code"].is_string(),
            "not the error shape: {}",
            self.text
        );
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Percent-encodes a path segment.
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The values of `keys` in `v`, as a JSON array: `pick(&s, &["status", "conflict"])`.
fn pick(v: &Value, keys: &[&str]) -> Value {
    keys.iter().map(|k| v[*k].clone()).collect()
}

/// The API as one key (or none) sees it; a method per endpoint.
struct Api<'a> {
    hub: &'a TestHub,
    key: Option<String>,
}

impl Api<'_> {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self
            .hub
            .http
            .request(method, format!("{}{path}", self.hub.base));
        if let Some(k) = &self.key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.expect("the hub answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("a body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            json,
        }
    }

    async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None, &[]).await
    }

    async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None, &[]).await
    }

    async fn with_body(&self, method: Method, path: &str, body: &Value) -> Resp {
        self.send(method, path, Some(body.to_string().into_bytes()), &[])
            .await
    }

    async fn post(&self, path: &str, body: &Value) -> Resp {
        self.with_body(Method::POST, path, body).await
    }

    // Operations.
    async fn healthz(&self) -> Resp {
        self.get("/healthz").await
    }
    async fn readyz(&self) -> Resp {
        self.get("/readyz").await
    }
    async fn metrics(&self) -> Resp {
        self.get("/metrics").await
    }
    async fn openapi(&self) -> Resp {
        self.get("/api/openapi.json").await
    }

    // Brands.
    async fn create_brand(&self, body: Value) -> Resp {
        self.post("/api/v1/brands", &body).await
    }
    async fn list_brands(&self) -> Resp {
        self.get("/api/v1/brands").await
    }
    async fn brand(&self, brand: u64) -> Resp {
        self.get(&format!("/api/v1/brands/{brand}")).await
    }
    async fn patch_brand(&self, brand: u64, body: Value) -> Resp {
        self.with_body(Method::PATCH, &format!("/api/v1/brands/{brand}"), &body)
            .await
    }
    async fn verify(&self, brand: u64) -> Resp {
        self.get(&format!("/api/v1/brands/{brand}/verify")).await
    }

    // Consents.
    async fn consents(&self, brand: u64, body: Value) -> Resp {
        self.post(&format!("/api/v1/brands/{brand}/consents"), &body)
            .await
    }
    /// A write with an `Idempotency-Key`; the body is sent byte for byte.
    async fn consents_idem(&self, brand: u64, key: &str, body: &[u8]) -> Resp {
        self.send(
            Method::POST,
            &format!("/api/v1/brands/{brand}/consents"),
            Some(body.to_vec()),
            &[("idempotency-key", key)],
        )
        .await
    }
    async fn recipient(&self, brand: u64, recipient: &str) -> Resp {
        self.get(&format!(
            "/api/v1/brands/{brand}/recipients/{}",
            seg(recipient)
        ))
        .await
    }
    async fn history(&self, brand: u64, recipient: &str) -> Resp {
        self.get(&format!(
            "/api/v1/brands/{brand}/recipients/{}/history",
            seg(recipient)
        ))
        .await
    }
    async fn check(&self, brand: u64, body: Value) -> Resp {
        self.post(&format!("/api/v1/brands/{brand}/check"), &body)
            .await
    }

    // Categories.
    async fn create_category(&self, brand: u64, code: &str, kind: &str) -> Resp {
        self.post(
            &format!("/api/v1/brands/{brand}/categories"),
            &json!({"code": code, "name": format!("{code} messages"), "kind": kind}),
        )
        .await
    }
    async fn categories(&self, brand: u64) -> Resp {
        self.get(&format!("/api/v1/brands/{brand}/categories"))
            .await
    }
    async fn category(&self, brand: u64, code: &str) -> Resp {
        self.get(&format!("/api/v1/brands/{brand}/categories/{code}"))
            .await
    }
    async fn put_category(&self, brand: u64, code: &str, body: Value) -> Resp {
        self.with_body(
            Method::PUT,
            &format!("/api/v1/brands/{brand}/categories/{code}"),
            &body,
        )
        .await
    }
    async fn delete_category(&self, brand: u64, code: &str) -> Resp {
        self.delete(&format!("/api/v1/brands/{brand}/categories/{code}"))
            .await
    }

    // Profiles.
    async fn put_profile(&self, brand: u64, id: &str, body: Value) -> Resp {
        self.with_body(
            Method::PUT,
            &format!("/api/v1/brands/{brand}/profiles/{}", seg(id)),
            &body,
        )
        .await
    }
    async fn profile(&self, brand: u64, id: &str) -> Resp {
        self.get(&format!("/api/v1/brands/{brand}/profiles/{}", seg(id)))
            .await
    }
    async fn delete_profile(&self, brand: u64, id: &str) -> Resp {
        self.delete(&format!("/api/v1/brands/{brand}/profiles/{}", seg(id)))
            .await
    }

    // API keys.
    async fn create_key(&self, body: Value) -> Resp {
        self.post("/api/v1/api-keys", &body).await
    }
    async fn keys(&self) -> Resp {
        self.get("/api/v1/api-keys").await
    }
    /// A new key for `brand` with `scopes`; gives the key.
    async fn new_key(&self, brand: u64, scopes: &[&str]) -> String {
        let v = self
            .create_key(json!({"name": format!("key-{}", scopes.join("-")), "brandCode": brand, "scopes": scopes}))
            .await
            .expect(201);
        v["key"].as_str().unwrap().to_owned()
    }

    /// The current state of `recipient` on `channel`.
    async fn state(&self, brand: u64, recipient: &str, channel: &str) -> Value {
        let v = self.recipient(brand, recipient).await.expect(200);
        v["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["channel"] == channel)
            .cloned()
            .unwrap_or_else(|| panic!("no {channel} state in {v}"))
    }

    /// How many history events `recipient` has (0 when none).
    async fn event_count(&self, brand: u64, recipient: &str) -> usize {
        let r = self.history(brand, recipient).await;
        if r.status == 404 {
            return 0;
        }
        r.expect(200)["events"].as_array().unwrap().len()
    }
}

/// A change on an IYS channel from the brand's web form.
fn change(recipient: &str, channel: &str, status: &str, date: &str) -> Value {
    json!({
        "recipient": recipient,
        "type": channel,
        "status": status,
        "consentDate": date,
        "source": "HS_WEB",
    })
}

// ---------------------------------------------------------------------------------------------
// Every endpoint

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_a_success() {
    let hub = TestHub::start().await;
    let api = hub.admin();
    let anon = hub.anonymous();

    // Operations.
    assert_eq!(anon.healthz().await.expect(200)["status"], "ok");
    let ready = anon.readyz().await.expect(200);
    assert_eq!(
        pick(&ready, &["status", "database"]),
        json!(["ready", "ok"])
    );
    // Metrics name every brand: on the API only with the provider's admin key.
    assert_eq!(anon.metrics().await.status, 401);
    let m = api.metrics().await;
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let spec = anon.openapi().await;
    assert!(
        spec.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert!(spec.expect(200)["openapi"].is_string());

    // Brands.
    let brand = api
        .create_brand(json!({"brandCode": BRAND, "name": "Örnek Marka", "mode": "integrator"}))
        .await
        .expect(201);
    assert_eq!(
        pick(&brand, &["brandCode", "iysCode", "name", "mode"]),
        json!([BRAND, BRAND, "Örnek Marka", "integrator"])
    );
    let list = api.list_brands().await.expect(200);
    assert_eq!(list["brands"].as_array().unwrap().len(), 1);
    assert_eq!(api.brand(BRAND).await.expect(200)["name"], "Örnek Marka");
    let patched = api
        .patch_brand(BRAND, json!({"name": "Yeni Ad", "mode": "sync"}))
        .await
        .expect(200);
    assert_eq!(
        pick(&patched, &["name", "mode"]),
        json!(["Yeni Ad", "sync"])
    );
    api.patch_brand(BRAND, json!({"mode": "integrator"}))
        .await
        .expect(200);

    // Categories.
    let cat = api
        .create_category(BRAND, "campaigns", "marketing")
        .await
        .expect(201);
    assert_eq!(
        pick(&cat, &["code", "kind"]),
        json!(["campaigns", "marketing"])
    );
    let cats = api.categories(BRAND).await.expect(200);
    assert_eq!(cats["categories"][0]["code"], "campaigns");
    assert_eq!(
        api.category(BRAND, "campaigns").await.expect(200)["kind"],
        "marketing"
    );
    let put = api
        .put_category(
            BRAND,
            "orders",
            json!({"name": "Orders", "kind": "transactional"}),
        )
        .await
        .expect(200);
    assert_eq!(
        pick(&put, &["code", "kind"]),
        json!(["orders", "transactional"])
    );
    assert_eq!(api.delete_category(BRAND, "orders").await.status, 204);
    api.category(BRAND, "orders")
        .await
        .error(404, "not_found", None, None);

    // Profiles.
    let profile = api
        .put_profile(
            BRAND,
            "customer-1",
            json!({"addresses": ["0532 123 45 67", "Ayse@Example.COM"], "attributes": {"tier": "gold"}}),
        )
        .await
        .expect(200);
    assert_eq!(profile["addresses"], json!([PHONE, EMAIL]));
    let got = api.profile(BRAND, "customer-1").await.expect(200);
    assert_eq!(
        (&got["externalId"], &got["attributes"]["tier"]),
        (&json!("customer-1"), &json!("gold"))
    );
    api.put_profile(BRAND, "customer-2", json!({"addresses": [PHONE2]}))
        .await
        .expect(200);
    assert_eq!(api.delete_profile(BRAND, "customer-2").await.status, 204);
    api.profile(BRAND, "customer-2")
        .await
        .error(404, "not_found", None, None);

    // API keys.
    let key = api
        .create_key(json!({"name": "crm", "brandCode": BRAND, "scopes": ["read", "write"]}))
        .await
        .expect(201);
    assert!(key["key"].as_str().unwrap().starts_with("ihk_"));
    assert_eq!(
        pick(&key, &["brandCode", "scopes"]),
        json!([BRAND, ["read", "write"]])
    );
    let keys = api.keys().await.expect(200);
    let names: Vec<&str> = keys["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"crm") && names.contains(&"bootstrap-admin"),
        "{names:?}"
    );
    assert!(
        !keys.to_string().contains(key["key"].as_str().unwrap()),
        "keys are never listed"
    );

    // Consents, recipients, history, checks, verify.
    let one = api
        .consents(BRAND, change("0532 123 45 67", "MESAJ", "ONAY", D1))
        .await
        .expect(200);
    assert_eq!(
        pick(&one, &["index", "status", "outcome", "iysState", "outbox"]),
        json!([0, "accepted", "applied", "pending", "pending"])
    );
    assert!(
        one["eventId"].is_i64() && one["deadline"].is_string(),
        "{one}"
    );
    let batch = api
        .consents(
            BRAND,
            json!({"changes": [change(EMAIL, "EPOSTA", "ONAY", D1)]}),
        )
        .await
        .expect(200);
    assert_eq!(pick(&batch, &["accepted", "rejected"]), json!([1, 0]));
    let r = api.recipient(BRAND, PHONE).await.expect(200);
    assert_eq!(r["recipient"], PHONE);
    assert_eq!(
        pick(&r["channels"][0], &["channel", "status", "consentDate"]),
        json!(["MESAJ", "ONAY", D1])
    );
    let h = api.history(BRAND, PHONE).await.expect(200);
    assert_eq!(h["events"].as_array().unwrap().len(), 1);
    let c = api
        .check(
            BRAND,
            json!({"recipient": PHONE, "channel": "MESAJ", "policy": "lenient"}),
        )
        .await
        .expect(200);
    assert_eq!(
        pick(&c, &["allowed", "reason", "channel"]),
        json!([true, "pending_allowed", "MESAJ"])
    );
    let v = api.verify(BRAND).await.expect(200);
    assert_eq!(pick(&v, &["valid", "events"]), json!([true, 2]));
    hub.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Validation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_name_the_field_the_value_and_the_code() {
    let hub = TestHub::with_brand().await;
    let api = hub.admin();
    let without = |field: &str| {
        let mut c = change(PHONE, "MESAJ", "ONAY", D1);
        c.as_object_mut().unwrap().remove(field);
        c
    };
    let with = |field: &str, value: Value| {
        let mut c = change(PHONE, "MESAJ", "ONAY", D1);
        c[field] = value;
        c
    };

    api.consents(BRAND, without("status"))
        .await
        .error(422, "H110", Some("status"), None);
    api.consents(BRAND, with("type", json!("SMS"))).await.error(
        422,
        "H117",
        Some("type"),
        Some(json!("SMS")),
    );
    api.consents(BRAND, with("recipient", json!("12345")))
        .await
        .error(422, "H121", Some("recipient"), Some(json!("12345")));
    api.consents(BRAND, change("ayşe@örnek.com", "EPOSTA", "ONAY", D1))
        .await
        .error(
            422,
            "H120",
            Some("recipient"),
            Some(json!("ayşe@örnek.com")),
        );
    api.consents(BRAND, with("consentDate", json!("2099-01-01 10:00:00")))
        .await
        .error(
            422,
            "H162",
            Some("consentDate"),
            Some(json!("2099-01-01 10:00:00")),
        );
    api.consents(BRAND, with("source", json!("HS_KARAR")))
        .await
        .error(422, "H408", Some("status"), Some(json!("ONAY")));
    api.consents(BRAND, with("favouriteColour", json!("blue")))
        .await
        .error(400, "unknown_field", Some("favouriteColour"), None);
    // A batch body holds `changes` and nothing else, and `changes` is a non-empty array.
    let r = api
        .consents(
            BRAND,
            json!({"changes": [change(PHONE, "MESAJ", "ONAY", D1)], "x": 1}),
        )
        .await;
    r.error(400, "unknown_field", Some("x"), None);
    assert_eq!(
        r.json["error"]["message"],
        "a batch body has only \"changes\"; found \"x\""
    );
    api.consents(BRAND, json!({"changes": {}})).await.error(
        422,
        "invalid_type",
        Some("changes"),
        Some(json!({})),
    );
    api.consents(BRAND, json!({"changes": null})).await.error(
        422,
        "invalid_type",
        Some("changes"),
        Some(Value::Null),
    );
    api.consents(BRAND, json!({"changes": []})).await.error(
        422,
        "invalid_value",
        Some("changes"),
        None,
    );
    api.consents(BRAND, with("category", json!("nope")))
        .await
        .error(
            422,
            "unknown_category",
            Some("category"),
            Some(json!("nope")),
        );
    // A few more of IYS's rules, and the hub's own.
    api.consents(BRAND, with("status", json!("EVET")))
        .await
        .error(422, "H115", Some("status"), Some(json!("EVET")));
    api.consents(BRAND, with("recipientType", json!("KURUM")))
        .await
        .error(422, "H116", Some("recipientType"), Some(json!("KURUM")));
    api.consents(BRAND, with("source", json!("HS_FAX")))
        .await
        .error(422, "H119", Some("source"), Some(json!("HS_FAX")));
    api.consents(BRAND, without("source"))
        .await
        .error(422, "H113", Some("source"), None);
    api.consents(BRAND, without("recipient"))
        .await
        .error(422, "H114", Some("recipient"), None);
    api.consents(BRAND, with("consentDate", json!("2014-01-01 10:00:00")))
        .await
        .error(
            422,
            "H156",
            Some("consentDate"),
            Some(json!("2014-01-01 10:00:00")),
        );
    let r = api
        .consents(BRAND, with("consentDate", json!("yesterday")))
        .await;
    r.client_error();
    assert_eq!(r.json["error"]["field"], "consentDate");
    api.consents(BRAND, without("type"))
        .await
        .error(422, "missing_field", Some("type"), None);
    api.consents(BRAND, with("channel", json!("FAX")))
        .await
        .error(422, "invalid_value", Some("channel"), Some(json!("FAX")));
    api.consents(
        BRAND,
        json!({"recipient": "device-1", "channel": "FAX", "status": "ONAY"}),
    )
    .await
    .error(422, "invalid_value", Some("channel"), Some(json!("FAX")));
    api.consents(BRAND, with("hold", json!("yes"))).await.error(
        422,
        "invalid_type",
        Some("hold"),
        Some(json!("yes")),
    );
    api.consents(BRAND, with("evidence", json!("a string")))
        .await
        .error(
            422,
            "invalid_value",
            Some("evidence"),
            Some(json!("a string")),
        );
    // Nothing of it was stored.
    api.recipient(BRAND, PHONE)
        .await
        .error(404, "not_found", Some("recipient"), None);
    assert_eq!(api.verify(BRAND).await.expect(200)["events"], 0);
    hub.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Auth

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_keys_scopes_and_brands() {
    let hub = TestHub::with_brand().await;
    let admin = hub.admin();
    admin
        .create_brand(json!({"brandCode": OTHER_BRAND, "name": "Başka Marka"}))
        .await
        .expect(201);
    let good = change(PHONE, "MESAJ", "ONAY", D1);

    // No key, a wrong key, a malformed header: 401.
    let anon = hub.anonymous();
    anon.list_brands()
        .await
        .error(401, "unauthorized", None, None);
    anon.consents(BRAND, good.clone())
        .await
        .error(401, "unauthorized", None, None);
    anon.recipient(BRAND, PHONE)
        .await
        .error(401, "unauthorized", None, None);
    hub.with_key("ihk_not-a-key")
        .brand(BRAND)
        .await
        .error(401, "unauthorized", None, None);
    let raw = anon
        .send(
            Method::GET,
            "/api/v1/brands",
            None,
            &[("authorization", ADMIN_KEY)],
        )
        .await;
    raw.error(401, "unauthorized", None, None);

    // A key of another brand: 404 for this brand, as if it did not exist.
    let other = admin.new_key(OTHER_BRAND, &["read", "write"]).await;
    let other = hub.with_key(&other);
    other.brand(BRAND).await.error(404, "not_found", None, None);
    other
        .consents(BRAND, good.clone())
        .await
        .error(404, "not_found", None, None);
    other
        .recipient(BRAND, PHONE)
        .await
        .error(404, "not_found", None, None);
    other
        .check(BRAND, json!({"recipient": PHONE, "channel": "MESAJ"}))
        .await
        .error(404, "not_found", None, None);
    other
        .verify(BRAND)
        .await
        .error(404, "not_found", None, None);
    other.brand(OTHER_BRAND).await.expect(200);
    let seen = other.list_brands().await.expect(200);
    assert_eq!(seen["brands"].as_array().unwrap().len(), 1);
    assert_eq!(seen["brands"][0]["brandCode"], OTHER_BRAND);

    // A read-only key reads and checks but cannot write.
    let reader = admin.new_key(BRAND, &["read"]).await;
    let reader = hub.with_key(&reader);
    reader
        .consents(BRAND, good.clone())
        .await
        .error(403, "forbidden", None, None);
    reader
        .put_profile(BRAND, "p1", json!({"addresses": [PHONE]}))
        .await
        .error(403, "forbidden", None, None);
    reader
        .check(BRAND, json!({"recipient": PHONE, "channel": "MESAJ"}))
        .await
        .expect(200);
    reader.brand(BRAND).await.expect(200);
    reader.verify(BRAND).await.expect(200);

    // A write key writes consents and profiles but cannot create brands or keys.
    let writer = admin.new_key(BRAND, &["write"]).await;
    let writer = hub.with_key(&writer);
    writer.consents(BRAND, good.clone()).await.expect(200);
    writer
        .put_profile(BRAND, "p1", json!({"addresses": [PHONE]}))
        .await
        .expect(200);
    writer
        .create_brand(json!({"brandCode": 600_125, "name": "Yeni"}))
        .await
        .error(403, "forbidden", None, None);
    writer
        .create_key(json!({"name": "mine", "brandCode": BRAND, "scopes": ["admin"]}))
        .await
        .error(403, "forbidden", None, None);
    writer
        .create_key(json!({"name": "global", "scopes": ["read"]}))
        .await
        .error(403, "forbidden", None, None);
    writer.keys().await.error(403, "forbidden", None, None);
    writer
        .create_category(BRAND, "news", "marketing")
        .await
        .error(403, "forbidden", None, None);
    writer
        .patch_brand(BRAND, json!({"name": "Ele geçirildi"}))
        .await
        .error(403, "forbidden", None, None);
    assert_eq!(admin.brand(BRAND).await.expect(200)["name"], "Örnek Marka");
    // The writer's change is attributed to its key.
    let h = admin.history(BRAND, PHONE).await.expect(200);
    assert_eq!(h["events"][0]["actor"], "key-write");

    // A brand's admin key manages its own brand and keys only.
    let brand_admin = admin.new_key(BRAND, &["admin"]).await;
    let brand_admin = hub.with_key(&brand_admin);
    brand_admin
        .create_category(BRAND, "news", "marketing")
        .await
        .expect(201);
    brand_admin
        .create_key(json!({"name": "reader-2", "brandCode": BRAND, "scopes": ["read"]}))
        .await
        .expect(201);
    brand_admin
        .create_key(json!({"name": "theirs", "brandCode": OTHER_BRAND, "scopes": ["read"]}))
        .await
        .error(404, "not_found", None, None);
    brand_admin
        .create_brand(json!({"brandCode": 600_125, "name": "Yeni"}))
        .await
        .error(403, "forbidden", None, None);
    hub.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Batches and idempotency

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_stores_the_good_and_reports_the_bad_by_index() {
    let hub = TestHub::with_brand().await;
    let api = hub.admin();
    let mut unknown = change(PHONE3, "MESAJ", "ONAY", D1);
    unknown["colour"] = json!("red");
    let answer = api
        .consents(
            BRAND,
            json!({"changes": [
                change(PHONE, "MESAJ", "ONAY", D1),
                change("12345", "MESAJ", "ONAY", D1),
                change(EMAIL, "EPOSTA", "ONAY", D1),
                unknown,
                "not an object",
                change(PHONE2, "ARAMA", "ONAY", "2099-01-01 00:00:00"),
            ]}),
        )
        .await
        .expect(200);
    assert_eq!(pick(&answer, &["accepted", "rejected"]), json!([2, 4]));
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i, "{r}");
    }
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "accepted", "rejected", "accepted", "rejected", "rejected", "rejected"
        ]
    );
    assert_eq!(results[0]["outcome"], "applied");
    assert_eq!(
        results[1]["error"],
        json!({"code": "H121", "message": results[1]["error"]["message"], "field": "recipient", "value": "12345"})
    );
    assert_eq!(
        pick(&results[3]["error"], &["code", "field"]),
        json!(["unknown_field", "colour"])
    );
    assert_eq!(results[4]["error"]["code"], "invalid_body");
    assert_eq!(
        pick(&results[5]["error"], &["code", "field"]),
        json!(["H162", "consentDate"])
    );
    // The good ones are stored, the bad ones are not.
    assert_eq!(api.state(BRAND, PHONE, "MESAJ").await["status"], "ONAY");
    assert_eq!(api.state(BRAND, EMAIL, "EPOSTA").await["status"], "ONAY");
    api.recipient(BRAND, PHONE2)
        .await
        .error(404, "not_found", Some("recipient"), None);
    api.recipient(BRAND, PHONE3)
        .await
        .error(404, "not_found", Some("recipient"), None);

    // A batch of only bad items stores nothing and still answers per item.
    let bad = api
        .consents(
            BRAND,
            json!({"changes": [change("12345", "MESAJ", "ONAY", D1)]}),
        )
        .await
        .expect(200);
    assert_eq!(pick(&bad, &["accepted", "rejected"]), json!([0, 1]));
    // The batch's own shape.
    api.consents(BRAND, json!({"changes": [], })).await.error(
        422,
        "invalid_value",
        Some("changes"),
        None,
    );
    api.consents(BRAND, json!({"changes": "all of them"}))
        .await
        .error(
            422,
            "invalid_type",
            Some("changes"),
            Some(json!("all of them")),
        );
    api.consents(
        BRAND,
        json!({"changes": [change(PHONE, "MESAJ", "ONAY", D1)], "dryRun": true}),
    )
    .await
    .error(400, "unknown_field", Some("dryRun"), None);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_replays_answer_the_same_and_store_nothing_new() {
    let hub = TestHub::with_brand().await;
    let api = hub.admin();
    let body = json!({"changes": [
        change(PHONE, "MESAJ", "ONAY", D1),
        change("12345", "MESAJ", "ONAY", D1),
        change(EMAIL, "EPOSTA", "RET", D1),
    ]})
    .to_string();
    let first = api.consents_idem(BRAND, "order-42", body.as_bytes()).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(pick(&first.json, &["accepted", "rejected"]), json!([2, 1]));
    let events = (
        api.event_count(BRAND, PHONE).await,
        api.event_count(BRAND, EMAIL).await,
    );
    assert_eq!(events, (1, 1));

    let again = api.consents_idem(BRAND, "order-42", body.as_bytes()).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert!(
        again
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(
        again.text, first.text,
        "a replay answers byte for byte the same"
    );
    assert_eq!(
        (
            api.event_count(BRAND, PHONE).await,
            api.event_count(BRAND, EMAIL).await,
        ),
        events,
        "a replay stores no new history events"
    );
    assert_eq!(api.verify(BRAND).await.expect(200)["events"], 2);

    // The same key with another body.
    let other = json!({"changes": [change(PHONE, "MESAJ", "RET", D2)]}).to_string();
    api.consents_idem(BRAND, "order-42", other.as_bytes())
        .await
        .error(
            422,
            "idempotency_conflict",
            Some("Idempotency-Key"),
            Some(json!("order-42")),
        );
    assert_eq!(api.state(BRAND, PHONE, "MESAJ").await["status"], "ONAY");

    // A batch refused as a whole is recorded under its key too.
    let refused = json!({"changes": [{"recipient": "bad", "type": "MESAJ", "status": "ONAY", "source": "HS_WEB"}]}).to_string();
    let r1 = api
        .consents_idem(BRAND, "all-bad", refused.as_bytes())
        .await;
    assert_eq!(r1.status, 200, "{}", r1.text);
    let r2 = api
        .consents_idem(BRAND, "all-bad", refused.as_bytes())
        .await;
    assert_eq!(
        (r2.header("idempotent-replayed"), r2.text.as_str()),
        (Some("true"), r1.text.as_str())
    );
    api.consents_idem(BRAND, "all-bad", other.as_bytes())
        .await
        .error(
            422,
            "idempotency_conflict",
            Some("Idempotency-Key"),
            Some(json!("all-bad")),
        );

    // A single change replays too; another key is another write.
    let single = change(PHONE2, "MESAJ", "ONAY", D1).to_string();
    let a = api
        .consents_idem(BRAND, "single-1", single.as_bytes())
        .await;
    let b = api
        .consents_idem(BRAND, "single-1", single.as_bytes())
        .await;
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(a.text, b.text);
    assert_eq!(b.header("idempotent-replayed"), Some("true"));
    assert_eq!(api.event_count(BRAND, PHONE2).await, 1);
    let c = api
        .consents_idem(BRAND, "single-2", single.as_bytes())
        .await;
    assert_eq!(c.expect(200)["outcome"], "noop");
    assert_eq!(api.event_count(BRAND, PHONE2).await, 2);
    // Keys are per brand.
    api.create_brand(json!({"brandCode": OTHER_BRAND, "name": "Başka"}))
        .await
        .expect(201);
    let d = api
        .consents_idem(OTHER_BRAND, "single-1", single.as_bytes())
        .await;
    assert_eq!(d.status, 200, "{}", d.text);
    assert_eq!(d.header("idempotent-replayed"), None);
    // An empty key is refused.
    api.consents_idem(BRAND, "", single.as_bytes()).await.error(
        400,
        "invalid_value",
        Some("Idempotency-Key"),
        None,
    );
    hub.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The ledger's rules through the API

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_semantics() {
    let hub = TestHub::with_brand().await;
    let api = hub.admin();

    // An older consentDate changes nothing.
    let first = api
        .consents(BRAND, change(PHONE, "MESAJ", "ONAY", D2))
        .await
        .expect(200);
    assert_eq!(first["outcome"], "applied");
    let older = api
        .consents(BRAND, change(PHONE, "MESAJ", "RET", D1))
        .await
        .expect(200);
    assert_eq!(pick(&older, &["outcome", "outbox"]), json!(["older", null]));
    let s = api.state(BRAND, PHONE, "MESAJ").await;
    assert_eq!(
        pick(&s, &["status", "consentDate", "iysState"]),
        json!(["ONAY", D2, "pending"])
    );
    // The same status again: a no-op.
    let noop = api
        .consents(BRAND, change(PHONE, "MESAJ", "ONAY", D3))
        .await
        .expect(200);
    assert_eq!(pick(&noop, &["outcome", "outbox"]), json!(["noop", null]));
    assert_eq!(api.state(BRAND, PHONE, "MESAJ").await["consentDate"], D2);
    assert_eq!(
        api.event_count(BRAND, PHONE).await,
        3,
        "every change is in history"
    );

    // A first RET on MESAJ goes to IYS: IYS may hold an ONAY the hub never saw.
    let first_ret = api
        .consents(BRAND, change(PHONE2, "MESAJ", "RET", D1))
        .await
        .expect(200);
    assert_eq!(
        pick(&first_ret, &["outcome", "iysState", "outbox"]),
        json!(["applied", "pending", "pending"])
    );
    let s = api.state(BRAND, PHONE2, "MESAJ").await;
    assert_eq!(pick(&s, &["status", "iysState"]), json!(["RET", "pending"]));

    // Equal consentDates: RET wins and the consent is flagged, in either order.
    let conflict = api
        .consents(BRAND, change(PHONE, "MESAJ", "RET", D2))
        .await
        .expect(200);
    assert_eq!(conflict["outcome"], "conflict");
    let s = api.state(BRAND, PHONE, "MESAJ").await;
    assert_eq!(pick(&s, &["status", "conflict"]), json!(["RET", true]));
    let conflict = api
        .consents(BRAND, change(PHONE2, "MESAJ", "ONAY", D1))
        .await
        .expect(200);
    assert_eq!(conflict["outcome"], "conflict");
    let s = api.state(BRAND, PHONE2, "MESAJ").await;
    assert_eq!(pick(&s, &["status", "conflict"]), json!(["RET", true]));

    // A hold denies every check until it is lifted.
    let mut held = change(PHONE3, "MESAJ", "ONAY", D1);
    held["hold"] = json!(true);
    api.consents(BRAND, held).await.expect(200);
    assert_eq!(api.state(BRAND, PHONE3, "MESAJ").await["hold"], true);
    for policy in ["strict", "lenient"] {
        let c = api
            .check(
                BRAND,
                json!({"recipient": PHONE3, "channel": "MESAJ", "policy": policy}),
            )
            .await
            .expect(200);
        assert_eq!(
            pick(&c, &["allowed", "reason"]),
            json!([false, "hold"]),
            "{policy}"
        );
    }
    let mut lift = change(PHONE3, "MESAJ", "ONAY", D2);
    lift["hold"] = json!(false);
    let lifted = api.consents(BRAND, lift).await.expect(200);
    assert_eq!(lifted["outcome"], "hold_changed");
    let c = api
        .check(
            BRAND,
            json!({"recipient": PHONE3, "channel": "MESAJ", "policy": "lenient"}),
        )
        .await
        .expect(200);
    assert_eq!(
        pick(&c, &["allowed", "reason"]),
        json!([true, "pending_allowed"])
    );

    // A hub-only channel: never sent to IYS, allowed on its own.
    let push = api
        .consents(
            BRAND,
            json!({"recipient": "device-token-abc", "channel": "PUSH", "status": "ONAY"}),
        )
        .await
        .expect(200);
    assert_eq!(
        pick(&push, &["outcome", "iysState", "outbox", "deadline"]),
        json!(["applied", "local_only", null, null])
    );
    let s = api.state(BRAND, "device-token-abc", "PUSH").await;
    assert_eq!(
        pick(&s, &["iysState", "source"]),
        json!(["local_only", "HS_EORTAM"])
    );
    let c = api
        .check(
            BRAND,
            json!({"recipient": "device-token-abc", "channel": "PUSH"}),
        )
        .await
        .expect(200);
    assert_eq!(pick(&c, &["allowed", "reason"]), json!([true, "consent"]));
    // WHATSAPP takes phones only.
    api.consents(
        BRAND,
        json!({"recipient": "device-token-abc", "channel": "WHATSAPP", "status": "ONAY"}),
    )
    .await
    .error(
        422,
        "H121",
        Some("recipient"),
        Some(json!("device-token-abc")),
    );
    assert_eq!(api.verify(BRAND).await.expect(200)["valid"], true);

    // Sync mode never creates IYS records: a first ONAY is held, and checks deny it.
    api.create_brand(json!({"brandCode": OTHER_BRAND, "name": "Senkron", "mode": "sync"}))
        .await
        .expect(201);
    let held = api
        .consents(OTHER_BRAND, change(PHONE, "MESAJ", "ONAY", D1))
        .await
        .expect(200);
    assert_eq!(
        pick(&held, &["outcome", "iysState", "outbox"]),
        json!(["applied", "held", "held"])
    );
    let c = api
        .check(
            OTHER_BRAND,
            json!({"recipient": PHONE, "channel": "MESAJ", "policy": "lenient"}),
        )
        .await
        .expect(200);
    assert_eq!(
        pick(&c, &["allowed", "reason"]),
        json!([false, "held_not_in_iys"])
    );
    // The brands' ledgers are apart.
    assert_eq!(api.state(BRAND, PHONE, "MESAJ").await["status"], "RET");
    hub.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Checks

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_time_checks() {
    let hub = TestHub::with_brand().await;
    let api = hub.admin();
    let check = |body: Value| api.check(BRAND, body);

    // No consent at all.
    let c = check(json!({"recipient": PHONE, "channel": "MESAJ"}))
        .await
        .expect(200);
    assert_eq!(
        pick(&c, &["recipient", "allowed", "reason"]),
        json!([PHONE, false, "no_consent"])
    );
    // An ONAY on its way to IYS: denied under strict (the default), allowed under lenient.
    api.consents(BRAND, change(PHONE, "MESAJ", "ONAY", D1))
        .await
        .expect(200);
    let c = check(json!({"recipient": "0532 123 45 67", "type": "MESAJ"}))
        .await
        .expect(200);
    assert_eq!(
        pick(&c, &["recipient", "allowed", "reason"]),
        json!([PHONE, false, "pending_iys"])
    );
    let c = check(json!({"recipient": PHONE, "channel": "MESAJ", "policy": "strict"}))
        .await
        .expect(200);
    assert_eq!(
        pick(&c, &["allowed", "reason"]),
        json!([false, "pending_iys"])
    );
    let c = check(json!({"recipient": PHONE, "channel": "MESAJ", "policy": "lenient"}))
        .await
        .expect(200);
    assert_eq!(
        pick(&c, &["allowed", "reason"]),
        json!([true, "pending_allowed"])
    );
    // Another channel of the same recipient has no consent.
    let c = check(json!({"recipient": PHONE, "channel": "ARAMA", "policy": "lenient"}))
        .await
        .expect(200);
    assert_eq!(c["reason"], "no_consent");
    // A RET from the brand.
    api.consents(BRAND, change(PHONE2, "MESAJ", "RET", D1))
        .await
        .expect(200);
    let c = check(json!({"recipient": PHONE2, "channel": "MESAJ", "policy": "lenient"}))
        .await
        .expect(200);
    assert_eq!(pick(&c, &["allowed", "reason"]), json!([false, "rejected"]));

    // Many recipients at once, an invalid one among them.
    let many = check(json!({
        "recipients": [PHONE, PHONE2, PHONE3, "12345"],
        "channel": "MESAJ",
        "policy": "lenient",
    }))
    .await
    .expect(200);
    assert_eq!(
        pick(&many, &["channel", "allowedCount", "deniedCount"]),
        json!(["MESAJ", 1, 3])
    );
    let reasons: Vec<&str> = many["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "pending_allowed",
            "rejected",
            "no_consent",
            "invalid_recipient"
        ]
    );
    assert_eq!(many["results"][3]["error"]["code"], "H121");

    // By profile: its addresses that fit the channel.
    api.put_profile(
        BRAND,
        "customer-7",
        json!({"addresses": [PHONE3, "Ayse@Example.com"]}),
    )
    .await
    .expect(200);
    api.consents(BRAND, change(EMAIL, "EPOSTA", "ONAY", D1))
        .await
        .expect(200);
    let by_profile =
        check(json!({"profileId": "customer-7", "channel": "EPOSTA", "policy": "lenient"}))
            .await
            .expect(200);
    assert_eq!(
        pick(&by_profile, &["profileId", "allowed", "allowedCount"]),
        json!(["customer-7", true, 1])
    );
    assert_eq!(by_profile["results"].as_array().unwrap().len(), 1);
    assert_eq!(by_profile["results"][0]["recipient"], EMAIL);
    let by_profile =
        check(json!({"profileId": "customer-7", "channel": "MESAJ", "policy": "lenient"}))
            .await
            .expect(200);
    assert_eq!(
        pick(&by_profile, &["allowed", "deniedCount"]),
        json!([false, 1])
    );
    check(json!({"profileId": "nobody", "channel": "MESAJ"}))
        .await
        .error(404, "not_found", Some("profileId"), None);

    // Categories: transactional needs no marketing consent; a refused marketing category denies.
    api.create_category(BRAND, "orders", "transactional")
        .await
        .expect(201);
    api.create_category(BRAND, "campaigns", "marketing")
        .await
        .expect(201);
    let c = check(json!({"recipient": PHONE3, "channel": "MESAJ", "category": "orders"}))
        .await
        .expect(200);
    assert_eq!(
        pick(&c, &["allowed", "reason"]),
        json!([true, "transactional"])
    );
    let mut refuse = change(PHONE, "MESAJ", "RET", D2);
    refuse["category"] = json!("campaigns");
    let refused = api.consents(BRAND, refuse).await.expect(200);
    assert_eq!(refused["status"], "accepted");
    let r = api.recipient(BRAND, PHONE).await.expect(200);
    assert_eq!(
        pick(&r["categories"][0], &["category", "status"]),
        json!(["campaigns", "RET"])
    );
    assert_eq!(
        api.state(BRAND, PHONE, "MESAJ").await["status"],
        "ONAY",
        "the channel is untouched"
    );
    let c = check(json!({"recipient": PHONE, "channel": "MESAJ", "category": "campaigns", "policy": "lenient"}))
        .await
        .expect(200);
    assert_eq!(
        pick(&c, &["allowed", "reason"]),
        json!([false, "category_rejected"])
    );
    let c = check(json!({"recipient": PHONE, "channel": "MESAJ", "category": "orders"}))
        .await
        .expect(200);
    assert_eq!(
        pick(&c, &["allowed", "reason"]),
        json!([true, "transactional"])
    );
    // A category refused for a profile applies to its addresses.
    api.consents(
        BRAND,
        json!({"profileId": "customer-7", "category": "campaigns", "type": "EPOSTA", "status": "RET", "consentDate": D2, "source": "HS_WEB"}),
    )
    .await
    .expect(200);
    let c = check(json!({"profileId": "customer-7", "channel": "EPOSTA", "category": "campaigns", "policy": "lenient"}))
        .await
        .expect(200);
    assert_eq!(c["results"][0]["reason"], "category_rejected");
    // Also when the check names the address rather than the profile, alone or in a list, as the
    // campaign filter and segments decide.
    let c = check(json!({"recipient": EMAIL, "channel": "EPOSTA", "category": "campaigns", "policy": "lenient"}))
        .await
        .expect(200);
    assert_eq!(
        pick(&c, &["allowed", "reason"]),
        json!([false, "category_rejected"])
    );
    let c = check(json!({"recipients": [EMAIL], "channel": "EPOSTA", "category": "campaigns", "policy": "lenient"}))
        .await
        .expect(200);
    assert_eq!(c["results"][0]["reason"], "category_rejected");

    // The check's own validation.
    check(json!({"recipient": PHONE, "channel": "MESAJ", "category": "nope"}))
        .await
        .error(
            422,
            "unknown_category",
            Some("category"),
            Some(json!("nope")),
        );
    check(json!({"recipient": PHONE}))
        .await
        .error(422, "missing_field", Some("channel"), None);
    check(json!({"recipient": PHONE, "channel": "FAX"}))
        .await
        .error(422, "invalid_value", Some("channel"), Some(json!("FAX")));
    check(json!({"recipient": PHONE, "channel": "MESAJ", "policy": "yolo"}))
        .await
        .error(422, "invalid_value", Some("policy"), Some(json!("yolo")));
    check(json!({"recipient": PHONE, "channel": "MESAJ", "urgent": true}))
        .await
        .error(400, "unknown_field", Some("urgent"), None);
    check(json!({"recipient": PHONE, "recipients": [PHONE], "channel": "MESAJ"}))
        .await
        .error(422, "invalid_body", Some("recipient"), None);
    hub.stop().await;
}

// ---------------------------------------------------------------------------------------------
// History and verify

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_newest_first_with_origin_actor_and_evidence() {
    let hub = TestHub::with_brand().await;
    let api = hub.admin();
    let mut a = change(PHONE, "MESAJ", "ONAY", D1);
    a["evidence"] = json!({"ip": "192.0.2.1", "form": "signup-v3"});
    a["actor"] = json!("agent-7");
    api.consents(BRAND, a).await.expect(200);
    let mut b = change(PHONE, "MESAJ", "RET", D2);
    b["evidence"] = json!({"sms": "IPTAL"});
    api.consents(BRAND, b).await.expect(200);

    let h = api.history(BRAND, "0532 123 45 67").await.expect(200);
    assert_eq!(h["recipient"], PHONE);
    let events = h["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert!(
        events[0]["id"].as_i64() > events[1]["id"].as_i64(),
        "newest first"
    );
    assert_eq!(
        pick(&events[0], &["status", "origin", "actor", "evidence"]),
        json!(["RET", "api", "bootstrap-admin", {"sms": "IPTAL"}])
    );
    assert_eq!(
        pick(&events[1], &["status", "origin", "actor", "evidence"]),
        json!(["ONAY", "api", "bootstrap-admin:agent-7", {"ip": "192.0.2.1", "form": "signup-v3"}])
    );
    assert_eq!(
        pick(&events[1], &["consentDate", "source", "outcome", "channel"]),
        json!([D1, "HS_WEB", "applied", "MESAJ"])
    );
    assert!(
        events
            .iter()
            .all(|e| e["hash"].as_str().is_some_and(|h| !h.is_empty()))
    );
    let limited = api
        .get(&format!(
            "/api/v1/brands/{BRAND}/recipients/{}/history?limit=1",
            seg(PHONE)
        ))
        .await
        .expect(200);
    assert_eq!(limited["events"].as_array().unwrap().len(), 1);
    assert_eq!(limited["events"][0]["status"], "RET");
    api.get(&format!(
        "/api/v1/brands/{BRAND}/recipients/{}/history?limit=0",
        seg(PHONE)
    ))
    .await
    .error(422, "invalid_value", Some("limit"), Some(json!("0")));
    api.get(&format!(
        "/api/v1/brands/{BRAND}/recipients/{}/history?limit=lots",
        seg(PHONE)
    ))
    .await
    .error(422, "invalid_value", Some("limit"), Some(json!("lots")));
    api.history(BRAND, PHONE2)
        .await
        .error(404, "not_found", Some("recipient"), None);

    let v = api.verify(BRAND).await.expect(200);
    assert_eq!(
        pick(&v, &["valid", "events", "firstBrokenEvent"]),
        json!([true, 2, null])
    );
    assert_eq!(v["head"], events[0]["hash"]);
    hub.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Bad input never yields a 500

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_never_a_500() {
    let hub = TestHub::with_brand().await;
    let api = hub.admin();
    let consents = format!("/api/v1/brands/{BRAND}/consents");
    let api_ref = &api;
    let raw = |path: &str, method: Method, body: &str| {
        let (path, body) = (path.to_owned(), body.as_bytes().to_vec());
        async move { api_ref.send(method, &path, Some(body), &[]).await }
    };

    // Not JSON.
    for body in ["{", "not json", "", "{\"recipient\": }", "\u{feff}{}"] {
        raw(&consents, Method::POST, body)
            .await
            .error(400, "invalid_json", None, None);
    }
    raw("/api/v1/brands", Method::POST, "{")
        .await
        .error(400, "invalid_json", None, None);
    raw(
        &format!("/api/v1/brands/{BRAND}/check"),
        Method::POST,
        "[1,",
    )
    .await
    .error(400, "invalid_json", None, None);
    raw(
        &format!("/api/v1/brands/{BRAND}/profiles/p1"),
        Method::PUT,
        "nope",
    )
    .await
    .error(400, "invalid_json", None, None);
    // Not UTF-8.
    let r = api
        .send(
            Method::POST,
            &consents,
            Some(vec![b'"', 0xff, 0xfe, b'"']),
            &[],
        )
        .await;
    r.error(400, "invalid_json", None, None);

    // Wrong types, anywhere.
    let wrong_types = [
        json!({"recipient": 5325551234u64, "type": "MESAJ", "status": "ONAY", "source": "HS_WEB"}),
        json!({"recipient": PHONE, "type": ["MESAJ"], "status": "ONAY", "source": "HS_WEB"}),
        json!({"recipient": PHONE, "type": "MESAJ", "status": true, "source": "HS_WEB"}),
        json!({"recipient": PHONE, "type": "MESAJ", "status": "ONAY", "source": {"x": 1}}),
        json!({"recipient": PHONE, "type": "MESAJ", "status": "ONAY", "source": "HS_WEB", "consentDate": 20261120}),
        json!({"recipient": PHONE, "type": "MESAJ", "status": "ONAY", "source": "HS_WEB", "category": 7}),
        json!({"recipient": PHONE, "type": "MESAJ", "status": "ONAY", "source": "HS_WEB", "actor": false}),
        json!([1, 2, 3]),
        json!("a string"),
        json!(42),
        json!(null),
        json!({"changes": null}),
    ];
    for body in wrong_types {
        let r = api.consents(BRAND, body.clone()).await;
        r.client_error();
        assert_ne!(r.status, 500, "{body}");
    }
    // A batch of wrongly typed items answers per item.
    let batch = api
        .consents(BRAND, json!({"changes": [[], null, 1]}))
        .await
        .expect(200);
    assert_eq!(batch["rejected"], 3);
    assert!(
        batch["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["error"]["code"] == "invalid_body")
    );
    let r = api
        .consents(
            BRAND,
            json!({"recipient": PHONE, "type": "MESAJ", "status": 1, "source": "HS_WEB"}),
        )
        .await;
    r.error(422, "invalid_type", Some("status"), Some(json!(1)));
    let wrong_brand_bodies = [
        json!({"brandCode": "abc", "name": "x"}),
        json!({"brandCode": -1, "name": "x"}),
        json!({"brandCode": 0, "name": "x"}),
        json!({"brandCode": 1.5, "name": "x"}),
        json!({"brandCode": 600_200, "name": ""}),
        json!({"brandCode": 600_200, "name": 5}),
        json!({"brandCode": 600_200, "name": "x", "mode": "chaos"}),
        json!({"brandCode": 600_200, "name": "x", "owner": "me"}),
        json!({"brandCode": 600_200, "name": "x", "iys": "http://x"}),
        json!([]),
    ];
    for body in wrong_brand_bodies {
        let r = api.create_brand(body.clone()).await;
        r.client_error();
    }
    // The largest numbers are no 500 either (they are stored and read back as given).
    api.create_brand(json!({"brandCode": u64::MAX, "iysCode": u64::MAX, "name": "big"}))
        .await
        .expect(201);
    assert_eq!(api.brand(u64::MAX).await.expect(200)["iysCode"], u64::MAX);
    api.consents(u64::MAX, change(PHONE, "MESAJ", "ONAY", D1))
        .await
        .expect(200);
    assert_eq!(api.verify(u64::MAX).await.expect(200)["valid"], true);
    api.create_brand(json!({"brandCode": BRAND, "name": "again"}))
        .await
        .error(409, "conflict", None, None);
    for body in [
        json!({"name": 1}),
        json!({"mode": "chaos"}),
        json!({"name": ""}),
        json!({"unknown": 1}),
        json!({"iysCode": -5}),
        json!("x"),
    ] {
        api.patch_brand(BRAND, body).await.client_error();
    }
    for body in [
        json!({"code": "Bad Code", "name": "x", "kind": "marketing"}),
        json!({"code": "ok", "name": "x", "kind": "spam"}),
        json!({"code": "ok", "name": "x"}),
        json!({"code": 5, "name": "x", "kind": "marketing"}),
        json!({"code": "ok", "name": "", "kind": "marketing"}),
        json!(null),
    ] {
        api.post(&format!("/api/v1/brands/{BRAND}/categories"), &body)
            .await
            .client_error();
    }
    api.put_category(
        BRAND,
        "ok",
        json!({"code": "other", "name": "x", "kind": "marketing"}),
    )
    .await
    .error(422, "invalid_value", Some("code"), Some(json!("other")));
    api.put_category(BRAND, "Not_OK", json!({"name": "x", "kind": "marketing"}))
        .await
        .error(422, "invalid_value", Some("code"), Some(json!("Not_OK")));
    api.create_category(BRAND, "dup", "marketing")
        .await
        .expect(201);
    api.create_category(BRAND, "dup", "marketing")
        .await
        .error(409, "conflict", Some("code"), None);
    api.delete_category(BRAND, "never")
        .await
        .error(404, "not_found", None, None);
    for body in [
        json!({"addresses": "0532"}),
        json!({"addresses": [5]}),
        json!({"addresses": ["not a phone or e-mail"]}),
        json!({"addresses": [], "extra": 1}),
        json!({}),
        json!({"addresses": vec![PHONE; 101]}),
    ] {
        api.put_profile(BRAND, "p1", body).await.client_error();
    }
    api.put_profile(
        BRAND,
        "p1",
        json!({"addresses": [PHONE, "no such address"]}),
    )
    .await
    .error(
        422,
        "invalid_value",
        Some("addresses[1]"),
        Some(json!("no such address")),
    );
    api.put_profile(BRAND, &"x".repeat(300), json!({"addresses": []}))
        .await
        .client_error();
    api.delete_profile(BRAND, "never")
        .await
        .error(404, "not_found", None, None);
    for body in [
        json!({"name": "k", "scopes": ["root"]}),
        json!({"name": "k", "scopes": []}),
        json!({"name": "k", "scopes": "read"}),
        json!({"name": "", "scopes": ["read"]}),
        json!({"name": "k", "brandCode": "abc", "scopes": ["read"]}),
        json!({"name": "k", "brandCode": 0, "scopes": ["read"]}),
        json!({"name": "k", "brandCode": 999_999, "scopes": ["read"]}),
        json!({"name": "k", "brandCode": u64::MAX - 1, "scopes": ["read"]}),
        json!({"name": "k", "scopes": ["read"], "admin": true}),
    ] {
        api.create_key(body).await.client_error();
    }
    for body in [
        json!({"recipients": [1, null, {}], "channel": "MESAJ"}),
        json!({"recipients": "all", "channel": "MESAJ"}),
        json!({"recipient": 5, "channel": "MESAJ"}),
        json!({"recipient": PHONE, "channel": 5}),
        json!({"recipient": PHONE, "channel": "MESAJ", "recipientType": "KURUM"}),
        json!({"profileId": 5, "channel": "MESAJ"}),
        json!([]),
    ] {
        let r = api.check(BRAND, body.clone()).await;
        assert!(r.status < 500, "{body}: {}", r.text);
    }

    // Unknown and malformed brands.
    api.brand(999_999).await.error(404, "not_found", None, None);
    api.consents(999_999, change(PHONE, "MESAJ", "ONAY", D1))
        .await
        .error(404, "not_found", None, None);
    api.recipient(999_999, PHONE)
        .await
        .error(404, "not_found", None, None);
    api.check(999_999, json!({"recipient": PHONE, "channel": "MESAJ"}))
        .await
        .error(404, "not_found", None, None);
    api.verify(999_999)
        .await
        .error(404, "not_found", None, None);
    api.brand(u64::MAX - 1)
        .await
        .error(404, "not_found", None, None);
    api.get("/api/v1/brands/abc").await.error(
        400,
        "invalid_value",
        Some("brandCode"),
        Some(json!("abc")),
    );
    api.get("/api/v1/brands/0").await.error(
        400,
        "invalid_value",
        Some("brandCode"),
        Some(json!("0")),
    );
    api.get("/api/v1/brands/99999999999999999999999")
        .await
        .client_error();

    // Unknown routes and methods.
    let r = api.get("/api/v1/nothing-here").await;
    r.error(404, "not_found", None, None);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    hub.anonymous()
        .get("/favicon.ico")
        .await
        .error(404, "not_found", None, None);
    api.get(&format!("/api/v1/brands/{BRAND}/consents/extra/segments"))
        .await
        .error(404, "not_found", None, None);
    let r = api.delete("/api/v1/brands").await;
    r.error(405, "method_not_allowed", None, None);
    assert!(
        r.header("allow").is_some_and(|a| a.contains("POST")),
        "{:?}",
        r.headers
    );
    api.delete(&consents)
        .await
        .error(405, "method_not_allowed", None, None);

    // Odd recipients in paths. NUL characters are refused everywhere: PostgreSQL cannot store
    // them in text.
    api.recipient(BRAND, "\u{7f}ü")
        .await
        .error(404, "not_found", Some("recipient"), None);
    for path in [
        format!("/api/v1/brands/{BRAND}/recipients/%00"),
        format!("/api/v1/brands/{BRAND}/recipients/a%00b/history"),
        format!("/api/v1/brands/{BRAND}/profiles/p%00"),
        format!("/api/v1/brands/{BRAND}/categories/c%00"),
    ] {
        api.get(&path).await.error(400, "invalid_path", None, None);
        api.delete(&path).await.client_error();
    }
    api.put_profile(BRAND, "p\u{0}1", json!({"addresses": [PHONE]}))
        .await
        .error(400, "invalid_path", None, None);
    let mut nul = change(PHONE, "MESAJ", "ONAY", D1);
    nul["actor"] = json!("agent\u{0}7");
    api.consents(BRAND, nul.clone())
        .await
        .error(422, "invalid_value", Some("actor"), None);
    nul["actor"] = json!("agent-7");
    nul["evidence"] = json!({"note": ["ok", "n\u{0}o"]});
    api.consents(
        BRAND,
        json!({"changes": [change(PHONE2, "MESAJ", "ONAY", D1), nul]}),
    )
    .await
    .error(
        422,
        "invalid_value",
        Some("changes[1].evidence.note[1]"),
        None,
    );
    api.create_brand(json!({"brandCode": 600_300, "name": "a\u{0}b"}))
        .await
        .error(422, "invalid_value", Some("name"), None);
    api.put_profile(
        BRAND,
        "p2",
        json!({"addresses": [PHONE], "attributes": {"k\u{0}": 1}}),
    )
    .await
    .error(422, "invalid_value", Some("attributes.k\u{0}"), None);
    api.create_key(json!({"name": "\u{0}", "scopes": ["read"]}))
        .await
        .error(422, "invalid_value", Some("name"), None);
    api.check(BRAND, json!({"profileId": "\u{0}", "channel": "MESAJ"}))
        .await
        .error(422, "invalid_value", Some("profileId"), None);
    api.recipient(BRAND, &"9".repeat(2000))
        .await
        .error(404, "not_found", Some("recipient"), None);
    api.get(&format!("/api/v1/brands/{BRAND}/recipients/%FF%FE"))
        .await
        .error(400, "invalid_path", None, None);
    api.get(&format!("/api/v1/brands/{BRAND}/recipients/%FF/history"))
        .await
        .error(400, "invalid_path", None, None);
    api.get(&format!("/api/v1/brands/{BRAND}/categories/%C3%28"))
        .await
        .error(400, "invalid_path", None, None);
    api.get(&format!(
        "/api/v1/brands/{BRAND}/recipients/{}/history?limit=%FF&limit=2&x",
        seg(PHONE)
    ))
    .await
    .client_error();

    // After all of that the hub is fine and stored nothing.
    assert_eq!(api.verify(BRAND).await.expect(200)["events"], 0);
    hub.anonymous().readyz().await.expect(200);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_413() {
    let hub = TestHub::with_brand().await;
    let api = hub.admin();
    let big = vec![b' '; hub::MAX_BODY + 1];
    let r = api
        .send(
            Method::POST,
            &format!("/api/v1/brands/{BRAND}/consents"),
            Some(big.clone()),
            &[],
        )
        .await;
    r.error(413, "body_too_large", None, None);
    // With an Idempotency-Key already used for a small body, too.
    let small = change(PHONE, "MESAJ", "ONAY", D1).to_string();
    api.consents_idem(BRAND, "big-1", small.as_bytes())
        .await
        .expect(200);
    let r = api
        .send(
            Method::POST,
            &format!("/api/v1/brands/{BRAND}/consents"),
            Some(big),
            &[("idempotency-key", "big-1")],
        )
        .await;
    r.error(413, "body_too_large", None, None);
    hub.anonymous().healthz().await.expect(200);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_10000_changes_is_413() {
    let hub = TestHub::with_brand().await;
    let api = hub.admin();
    let item = change(PHONE, "MESAJ", "ONAY", D1);
    let body = json!({"changes": vec![item; hub::MAX_CHANGES + 1]});
    api.consents(BRAND, body).await.error(
        413,
        "too_many_changes",
        Some("changes"),
        Some(json!(10_001)),
    );
    let recipients = vec![json!(PHONE); hub::MAX_CHECKS + 1];
    api.check(BRAND, json!({"recipients": recipients, "channel": "MESAJ"}))
        .await
        .error(413, "too_many_recipients", Some("recipients"), None);
    assert_eq!(api.verify(BRAND).await.expect(200)["events"], 0);
    hub.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Operations

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_openapi() {
    let hub = TestHub::with_brand().await;
    let anon = hub.anonymous();
    assert_eq!(anon.healthz().await.expect(200), json!({"status": "ok"}));
    assert_eq!(
        anon.readyz().await.expect(200),
        json!({"status": "ready", "database": "ok"})
    );
    let api = hub.admin();
    api.consents(BRAND, change(PHONE, "MESAJ", "ONAY", D1))
        .await
        .expect(200);
    api.consents(BRAND, change(PHONE, "MESAJ", "ONAY", D2))
        .await
        .expect(200);
    api.check(BRAND, json!({"recipient": PHONE, "channel": "MESAJ"}))
        .await
        .expect(200);
    let m = api.metrics().await;
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    assert!(
        m.text
            .contains("# TYPE iyshub_consent_changes_total counter"),
        "{}",
        m.text
    );
    assert!(
        m.text.contains(&format!(
            "iyshub_consent_changes_total{{brand=\"{BRAND}\",outcome=\"applied\"}} 1"
        )),
        "{}",
        m.text
    );
    assert!(
        m.text.contains(&format!(
            "iyshub_consent_changes_total{{brand=\"{BRAND}\",outcome=\"noop\"}} 1"
        )),
        "{}",
        m.text
    );
    assert!(m.text.contains("iyshub_checks_total"), "{}", m.text);
    assert!(m.text.contains("iyshub_outbox_rows"), "{}", m.text);
    // Latency per route template, never per brand or recipient.
    assert!(
        m.text.contains(
            "iyshub_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/brands/{brandCode}/check\",status=\"200\"} 1"
        ),
        "{}",
        m.text
    );
    let spec = anon.openapi().await;
    assert!(
        spec.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let spec = spec.expect(200);
    assert!(spec.is_object() && spec["openapi"].as_str().unwrap().starts_with("3."));
    hub.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Concurrency

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_and_retries_with_one_idempotency_key() {
    let hub = TestHub::with_brand().await;
    let api = hub.admin();
    // A client retrying while its first request is still in flight: every answer is the one
    // answer, and the change is stored once.
    let body = json!({"changes": [change(PHONE, "MESAJ", "ONAY", D1), change(EMAIL, "EPOSTA", "ONAY", D1)]})
        .to_string();
    let answers =
        futures_join_all((0..8).map(|_| api.consents_idem(BRAND, "retry-1", body.as_bytes())))
            .await;
    for a in &answers {
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.text, answers[0].text);
    }
    let fresh = answers
        .iter()
        .filter(|a| a.header("idempotent-replayed").is_none())
        .count();
    assert_eq!(fresh, 1, "one request did the write, the rest replayed it");
    assert_eq!(api.event_count(BRAND, PHONE).await, 1);
    assert_eq!(api.event_count(BRAND, EMAIL).await, 1);

    // Many writers at once keep the hash chain whole.
    let phones: Vec<String> = (0..20).map(|i| format!("+9053212345{i:02}")).collect();
    let answers = futures_join_all(
        phones
            .iter()
            .map(|p| api.consents(BRAND, change(p, "MESAJ", "ONAY", D1))),
    )
    .await;
    for a in &answers {
        assert_eq!(a.status, 200, "{}", a.text);
    }
    let v = api.verify(BRAND).await.expect(200);
    assert_eq!(pick(&v, &["valid", "events"]), json!([true, 22]));
    hub.stop().await;
}

/// Runs the futures concurrently and gives their outputs in order.
async fn futures_join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

/// Listings over the API: consents filtered and paged with a cursor (each once, in key order),
/// a recipient's history paged past its first page, and the audit log of administrative
/// actions, newest first; bad parameters are named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consents_history_and_the_audit_log_are_listed_page_by_page() {
    let hub = TestHub::with_brand().await;
    let api = hub.admin();
    let changes: Vec<Value> = (0..25)
        .map(|n| {
            json!({"recipient": format!("+90532{n:07}"), "type": "MESAJ",
                   "status": if n % 5 == 0 { "RET" } else { "ONAY" },
                   "consentDate": D1, "source": "HS_WEB"})
        })
        .chain([json!({"recipient": EMAIL, "type": "EPOSTA", "status": "ONAY", "consentDate": D1, "source": "HS_WEB"})])
        .collect();
    api.consents(BRAND, json!({"changes": changes}))
        .await
        .expect(200);

    let list = |query: String| {
        let api = hub.admin();
        async move {
            api.get(&format!("/api/v1/brands/{BRAND}/consents{query}"))
                .await
        }
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            None => "?limit=7".to_owned(),
            Some(c) => format!("?limit=7&cursor={c}"),
        };
        let page = list(q).await.expect(200);
        for c in page["consents"].as_array().unwrap() {
            seen.push((
                c["recipient"].as_str().unwrap().to_owned(),
                c["channel"].as_str().unwrap().to_owned(),
            ));
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 26);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "each once, in key order");

    let rets = list("?channel=MESAJ&status=RET&limit=100".into())
        .await
        .expect(200);
    assert_eq!(rets["consents"].as_array().unwrap().len(), 5);
    assert_eq!(rets["nextCursor"], Value::Null);
    let first = &rets["consents"][0];
    assert_eq!(first["recipient"], "+905320000000");
    assert_eq!(first["iysState"], "pending");
    let mails = list("?channel=EPOSTA&iysState=pending&source=HS_WEB".into())
        .await
        .expect(200);
    assert_eq!(mails["consents"][0]["recipient"], EMAIL);
    let future = list("?changedSince=2999-01-01T00:00:00Z".into())
        .await
        .expect(200);
    assert!(future["consents"].as_array().unwrap().is_empty());
    list("?status=MAYBE".into()).await.error(
        422,
        "invalid_value",
        Some("status"),
        Some(json!("MAYBE")),
    );
    list("?cursor=zz".into())
        .await
        .error(422, "invalid_value", Some("cursor"), Some(json!("zz")));
    list("?limit=0".into())
        .await
        .error(422, "invalid_value", Some("limit"), Some(json!("0")));

    // History: 12 events of one recipient, 5 at a time.
    let flips: Vec<Value> = (0..11)
        .map(|i| {
            json!({"recipient": PHONE, "type": "MESAJ",
                   "status": if i % 2 == 0 { "RET" } else { "ONAY" },
                   "consentDate": format!("2025-11-21 10:00:{i:02}"), "source": "HS_WEB"})
        })
        .collect();
    api.consents(BRAND, json!({"changes": [{"recipient": PHONE, "type": "MESAJ", "status": "ONAY", "consentDate": D1, "source": "HS_WEB"}]}))
        .await
        .expect(200);
    api.consents(BRAND, json!({"changes": flips}))
        .await
        .expect(200);
    let mut ids: Vec<i64> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!(
                "/api/v1/brands/{BRAND}/recipients/{}/history?limit=5",
                seg(PHONE)
            ),
            Some(c) => format!(
                "/api/v1/brands/{BRAND}/recipients/{}/history?limit=5&cursor={c}",
                seg(PHONE)
            ),
        };
        let page = api.get(&path).await.expect(200);
        ids.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_i64().unwrap()),
        );
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(ids.len(), 12, "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

    // The audit log: what admins did to the brand, newest first.
    api.create_category(BRAND, "kampanya", "marketing")
        .await
        .expect(201);
    api.post(
        "/api/v1/api-keys",
        &json!({"name": "crm", "brandCode": BRAND, "scopes": ["read"]}),
    )
    .await
    .expect(201);
    api.patch_brand(BRAND, json!({"mode": "sync"}))
        .await
        .expect(200);
    let log = api
        .get(&format!("/api/v1/brands/{BRAND}/audit-log?limit=2"))
        .await
        .expect(200);
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["mode_switch", "api_key_created"]);
    assert_eq!(log["entries"][1]["detail"]["name"], "crm");
    let older = api
        .get(&format!(
            "/api/v1/brands/{BRAND}/audit-log?cursor={}",
            log["nextCursor"].as_str().unwrap()
        ))
        .await
        .expect(200);
    let actions: Vec<&str> = older["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["category_created", "brand_created"]);
    // Another brand's admin may not read it.
    hub.stop().await;
}
