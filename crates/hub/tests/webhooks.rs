//! Webhooks over real sockets (PostgreSQL with `IYSHUB_TEST_DATABASE_URL`, else SQLite):
//! changes made through the API reach a local receiver as CloudEvents whose signatures the
//! reference Standard Webhooks implementation (Python) accepts; a receiver that answers 500 gets
//! the same event again (same id) until it takes it, in order; filters, the delivery log, manual
//! redelivery, polling, and a webhook that keeps failing is disabled with its reason while the
//! others go on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hub::Hub;
use hub_events::RetrySchedule;
use hub_events::testkit::PyVerifier;
use hub_store::SqlStore;
use hub_store::testkit::{drop_postgres, fresh_postgres};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const KEY: &str = "webhooks-admin-key";
const BRAND: u64 = 600_777;

/// What a receiver got: the `webhook-id`, its headers and body.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

#[derive(Debug, Default)]
struct Receiver {
    got: Mutex<Vec<Received>>,
    /// Answer 500 to this many requests first.
    fail_first: Mutex<usize>,
    always_fail: bool,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let headers = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    r.got.lock().unwrap().push(Received { id, headers, body });
    let mut fail = r.fail_first.lock().unwrap();
    if r.always_fail {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    if *fail > 0 {
        *fail -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::NO_CONTENT
}

async fn start_receiver(r: Arc<Receiver>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(r);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

struct Server {
    base: String,
    http: reqwest::Client,
    cancel: CancellationToken,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl Server {
    async fn start() -> Server {
        let (url, dir, postgres) = match std::env::var("IYSHUB_TEST_DATABASE_URL") {
            Ok(admin) if !admin.is_empty() => {
                let (url, name) = fresh_postgres(&admin, "iyshub_webhooks_test").await;
                (url, None, Some((admin, name)))
            }
            _ => {
                let dir = tempfile::tempdir().unwrap();
                let url = SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
                (url, Some(dir), None)
            }
        };
        let store = SqlStore::connect(&url).await.unwrap();
        hub::bootstrap_admin_key(&store, Some(KEY)).await.unwrap();
        let key = hub_secrets::SecretKey::generate().unwrap();
        let mut hub = Hub::new(store.into());
        hub.iys.secret_key = Some(key.clone());
        let hub = Arc::new(hub);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let cancel = CancellationToken::new();
        tokio::spawn(hub::serve(hub.clone(), listener, cancel.clone()));
        // Quick retries; a webhook failing for over 1.5 s is disabled.
        let schedule = RetrySchedule {
            delays: vec![Duration::from_millis(40), Duration::from_millis(80)],
            disable_after: Duration::from_millis(1500),
        };
        tokio::spawn(hub::events::deliver_webhooks(
            hub.store.clone(),
            Some(key),
            schedule,
            hub.webhooks_waiting.clone(),
            cancel.clone(),
        ));
        let server = Server {
            base,
            http: reqwest::Client::new(),
            cancel,
            _dir: dir,
            postgres,
        };
        let (status, _) = server
            .send(
                reqwest::Method::POST,
                "/api/v1/brands",
                Some(json!({"brandCode": BRAND, "name": "Webhooks"})),
            )
            .await;
        assert_eq!(status, 201);
        server
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn brand(&self, path: &str) -> String {
        format!("/api/v1/brands/{BRAND}{path}")
    }

    async fn stop(self) {
        self.cancel.cancel();
        if let Some((admin, name)) = &self.postgres {
            drop_postgres(admin, name).await;
        }
    }
}

/// Waits until `done` holds, or fails after 20 s saying `what`.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn ids(r: &Receiver) -> Vec<String> {
    r.got.lock().unwrap().iter().map(|g| g.id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_deliver_signed_in_order_and_retry() {
    let verifier = PyVerifier::find("webhook signatures checked by the reference implementation");
    let server = Server::start().await;
    let all = Arc::new(Receiver {
        fail_first: Mutex::new(3),
        ..Default::default()
    });
    let revoked_only = Arc::new(Receiver::default());
    let broken = Arc::new(Receiver {
        always_fail: true,
        ..Default::default()
    });
    let mut hooks = Vec::new();
    for (receiver, types) in [
        (&all, json!([])),
        (&revoked_only, json!(["consent.revoked"])),
        (&broken, json!([])),
    ] {
        let url = start_receiver(receiver.clone()).await;
        let (status, hook) = server
            .send(
                reqwest::Method::POST,
                &server.brand("/webhooks"),
                Some(json!({"url": url, "eventTypes": types})),
            )
            .await;
        assert_eq!(status, 201, "{hook}");
        let secret = hook["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"));
        hooks.push((hook["id"].as_i64().unwrap(), secret));
    }
    // Secrets are shown once.
    let (_, list) = server
        .send(reqwest::Method::GET, &server.brand("/webhooks"), None)
        .await;
    assert!(!list.to_string().contains("whsec_"), "{list}");
    let (status, bad) = server
        .send(
            reqwest::Method::POST,
            &server.brand("/webhooks"),
            Some(json!({"url": "ftp://x", "eventTypes": ["consent.maybe"]})),
        )
        .await;
    assert_eq!((status, bad["error"]["field"].as_str()), (422, Some("url")));

    // 10 recipients: ONAY, then RET for the even ones, then a repeated RET (no event).
    let phones: Vec<String> = (0..10).map(|i| format!("+90532100{i:04}")).collect();
    for (status, date, which) in [
        ("ONAY", "2026-03-02 10:00:00", 0..10),
        ("RET", "2026-03-03 10:00:00", 0..10),
        ("RET", "2026-03-04 10:00:00", 0..10),
    ] {
        let changes: Vec<Value> = phones[which]
            .iter()
            .enumerate()
            .filter(|(i, _)| status == "ONAY" || i % 2 == 0)
            .map(|(_, p)| json!({"recipient": p, "channel": "MESAJ", "status": status, "consentDate": date, "source": "HS_WEB"}))
            .collect();
        let (code, body) = server
            .send(
                reqwest::Method::POST,
                &server.brand("/consents"),
                Some(json!({ "changes": changes })),
            )
            .await;
        assert_eq!(code, 200, "{body}");
    }

    // Polling gives the 15 events; the webhook for every type gets each, in order.
    let (_, page) = server
        .send(
            reqwest::Method::GET,
            &server.brand("/events?limit=1000"),
            None,
        )
        .await;
    let events = page["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 15, "{page}");
    let event_ids: Vec<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    until("every event at the first webhook", || {
        let got = ids(&all);
        let mut firsts: Vec<String> = Vec::new();
        for id in got {
            if !firsts.contains(&id) {
                firsts.push(id);
            }
        }
        firsts == event_ids
    })
    .await;
    let got = all.got.lock().unwrap().clone();
    // The first event was refused three times: four receipts, one id, one body.
    assert_eq!(got.iter().filter(|g| g.id == event_ids[0]).count(), 4);
    for g in &got {
        let first = got.iter().find(|x| x.id == g.id).unwrap();
        assert_eq!(g.body, first.body, "a repeat carries the same event");
    }
    // Each receipt is a CloudEvent equal to the polled one.
    for (id, polled) in event_ids.iter().zip(&events) {
        let body = &got.iter().find(|g| &g.id == id).unwrap().body;
        let sent: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(&sent, polled);
    }
    assert_eq!(events[0]["type"], "tr.iyshub.consent.granted");
    assert_eq!(events[0]["data"]["old"], Value::Null);
    assert_eq!(events[14]["type"], "tr.iyshub.consent.revoked");
    assert_eq!(events[14]["data"]["old"], "ONAY");
    if let Some(v) = &verifier {
        for g in got.iter().take(6) {
            v.verify(&hooks[0].1, &g.headers, &g.body)
                .await
                .unwrap_or_else(|e| panic!("the reference implementation refused: {e}"));
        }
        let wrong = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert!(
            v.verify(wrong, &got[0].headers, &got[0].body)
                .await
                .is_err()
        );
    }

    // The filtered webhook: only the five revocations.
    let revoked: Vec<String> = event_ids[10..].to_vec();
    until("the revocations at the filtered webhook", || {
        ids(&revoked_only) == revoked
    })
    .await;

    // The delivery log shows the refusals and the success.
    let (_, log) = server
        .send(
            reqwest::Method::GET,
            &server.brand(&format!("/webhooks/{}/deliveries?limit=1000", hooks[0].0)),
            None,
        )
        .await;
    let log = log["deliveries"].as_array().unwrap().clone();
    let first_event: i64 = event_ids[0].parse().unwrap();
    let attempts: Vec<(i64, Option<i64>)> = log
        .iter()
        .rev()
        .filter(|d| d["eventId"] == first_event)
        .map(|d| (d["attempt"].as_i64().unwrap(), d["statusCode"].as_i64()))
        .collect();
    assert_eq!(
        attempts,
        vec![
            (1, Some(500)),
            (2, Some(500)),
            (3, Some(500)),
            (4, Some(204))
        ]
    );

    // A manual redelivery: the same id again.
    let before = ids(&all).len();
    let (status, _) = server
        .send(
            reqwest::Method::POST,
            &server.brand(&format!("/webhooks/{}/redeliver", hooks[0].0)),
            Some(json!({"eventId": first_event})),
        )
        .await;
    assert_eq!(status, 202);
    until("the redelivery", || ids(&all).len() == before + 1).await;
    assert_eq!(ids(&all).last(), Some(&event_ids[0]));

    // The broken receiver: disabled with the reason once it failed for 1.5 s; it was never
    // given a second event.
    until("the broken webhook disabled", || {
        ids(&broken).len() > 3 && ids(&broken).iter().all(|i| i == &event_ids[0])
    })
    .await;
    let mut disabled = Value::Null;
    for _ in 0..100 {
        let (_, h) = server
            .send(
                reqwest::Method::GET,
                &server.brand(&format!("/webhooks/{}", hooks[2].0)),
                None,
            )
            .await;
        if h["enabled"] == false {
            disabled = h;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reason = disabled["disabledReason"].as_str().unwrap_or_default();
    assert!(reason.contains("HTTP 500"), "{disabled}");
    assert!(ids(&broken).iter().all(|i| i == &event_ids[0]));
    // Enabled again, it resumes with the same event.
    let n = ids(&broken).len();
    let (status, h) = server
        .send(
            reqwest::Method::PATCH,
            &server.brand(&format!("/webhooks/{}", hooks[2].0)),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!((status, h["enabled"].as_bool()), (200, Some(true)), "{h}");
    until("the retry after enabling", || ids(&broken).len() > n).await;
    assert_eq!(ids(&broken).last(), Some(&event_ids[0]));

    server.stop().await;
}
