//! Audiences, analytics and events over real sockets (PostgreSQL with
//! `IYSHUB_TEST_DATABASE_URL`, else SQLite).
//!
//! - Webhooks: changes made through the API reach a local receiver as CloudEvents whose
//!   signatures the reference Standard Webhooks implementation (Python) accepts; a receiver that
//!   answers 500 gets the same event again (same id) until it takes it, in order; filters, the
//!   delivery log, manual redelivery, polling; a webhook that keeps failing is disabled with its
//!   reason while the others go on.
//! - Segments and the campaign filter: random recipients in every state a check denies for
//!   (pending, held, rejected by the brand or in IYS, manually held, category refused by the
//!   recipient or its profile, unknown, invalid); the filter lets through exactly those a
//!   sendable segment holds, and never one the send-time check would deny.
//! - Stats: the counts follow the writes.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hub_events::RetrySchedule;
use hub_events::testkit::PyVerifier;
use hub_store::EventStore;
use serde_json::{Value, json};
use tokio::net::TcpListener;

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

/// The served hub with a webhook worker (quick retries), and this file's helpers.
struct Server(common::Served);

impl std::ops::Deref for Server {
    type Target = common::Served;
    fn deref(&self) -> &common::Served {
        &self.0
    }
}

impl Server {
    async fn start() -> Server {
        let key = hub_secrets::SecretKey::generate().unwrap();
        let sealing = key.clone();
        let served = common::Served::start("iyshub_audiences_test", KEY, move |hub| {
            hub.iys.secret_key = Some(sealing);
        })
        .await;
        // Quick retries; a webhook failing for over 1.5 s is disabled.
        let schedule = RetrySchedule {
            delays: vec![Duration::from_millis(40), Duration::from_millis(80)],
            disable_after: Duration::from_millis(1500),
        };
        tokio::spawn(hub::events::deliver_webhooks(
            served.hub.store.clone(),
            Some(key),
            schedule,
            served.hub.webhooks_waiting.clone(),
            served.cancel.clone(),
        ));
        let server = Server(served);
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
        self.0.stop().await;
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

    // The delivery log is pruned by age: up to an hour ago removes nothing, up to tomorrow all.
    let store = &server.hub.store;
    let recent = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(1))
        .unwrap();
    assert_eq!(store.prune_webhook_deliveries(recent).await.unwrap(), 0);
    let later = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24))
        .unwrap();
    assert!(store.prune_webhook_deliveries(later).await.unwrap() > 0);
    let (_, log) = server
        .send(
            reqwest::Method::GET,
            &server.brand(&format!("/webhooks/{}/deliveries", hooks[0].0)),
            None,
        )
        .await;
    assert_eq!(log["deliveries"].as_array().map(Vec::len), Some(0), "{log}");

    server.stop().await;
}

/// A recipient's planned state, and what a check of a campaign SMS in `kampanya` must say.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Planned {
    Allowed,
    Pending,
    Rejected,
    RejectedInIys,
    Hold,
    CategoryRefused,
    ProfileRefused,
    Unknown,
}

impl Planned {
    const ALL: [Planned; 8] = [
        Planned::Allowed,
        Planned::Pending,
        Planned::Rejected,
        Planned::RejectedInIys,
        Planned::Hold,
        Planned::CategoryRefused,
        Planned::ProfileRefused,
        Planned::Unknown,
    ];

    fn reason(self) -> &'static str {
        match self {
            Planned::Allowed => "allowed",
            Planned::Pending => "pending_iys",
            Planned::Rejected => "rejected",
            Planned::RejectedInIys => "rejected_in_iys",
            Planned::Hold => "hold",
            Planned::CategoryRefused | Planned::ProfileRefused => "category_rejected",
            Planned::Unknown => "no_consent",
        }
    }
}

fn sms(recipient: &str, status: &str, date: &str) -> Value {
    json!({"recipient": recipient, "channel": "MESAJ", "status": status, "consentDate": date, "source": "HS_WEB"})
}

impl Server {
    /// A streamed POST: the body as given, the answer's text.
    async fn stream(&self, path: &str, content_type: &str, body: String) -> (u16, String) {
        self.0.post_text(KEY, path, content_type, body).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_and_the_campaign_filter_follow_the_check() {
    use hub_store::{EngineStore, Settlement, Store};

    let server = Server::start().await;
    let store = server.hub.store.clone();
    let (status, _) = server
        .send(
            reqwest::Method::POST,
            &server.brand("/categories"),
            Some(json!({"code": "kampanya", "name": "Kampanya", "kind": "marketing"})),
        )
        .await;
    assert_eq!(status, 201);

    // 240 recipients, each in a random planned state.
    let mut rng = fastrand::Rng::with_seed(20261129);
    let people: Vec<(String, Planned)> = (0..240)
        .map(|i| {
            let p = Planned::ALL[rng.usize(..Planned::ALL.len())];
            (format!("+90533{i:07}"), p)
        })
        .collect();
    let onay: Vec<Value> = people
        .iter()
        .filter(|(_, p)| *p != Planned::Unknown)
        .map(|(r, _)| sms(r, "ONAY", "2026-03-02 10:00:00"))
        .collect();
    let (code, body) = server
        .send(
            reqwest::Method::POST,
            &server.brand("/consents"),
            Some(json!({"changes": onay})),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    // Deliver every ONAY to IYS except the pending ones'.
    let brand = hub_core::BrandCode(BRAND);
    let claimed = store
        .claim_pending(brand, "t", jiff::Timestamp::now(), 60_000, 10_000)
        .await
        .unwrap();
    let pending: Vec<&String> = people
        .iter()
        .filter(|(_, p)| *p == Planned::Pending)
        .map(|(r, _)| r)
        .collect();
    let settled = claimed
        .into_iter()
        .filter(|item| !pending.contains(&&item.recipient))
        .enumerate()
        .map(|(i, item)| {
            let s = Settlement::Delivered {
                transaction_id: format!("tx-{i}"),
                creation_date: None,
            };
            (item, s)
        })
        .collect();
    store
        .settle(brand, "t", settled, jiff::Timestamp::now())
        .await
        .unwrap();
    let mut later = Vec::new();
    for (i, (r, p)) in people.iter().enumerate() {
        match p {
            Planned::Rejected => later.push(sms(r, "RET", "2026-03-03 10:00:00")),
            Planned::Hold => later.push(json!({"recipient": r, "channel": "MESAJ", "status": "ONAY", "consentDate": "2026-03-02 10:00:00", "source": "HS_WEB", "hold": true})),
            Planned::CategoryRefused => later.push(json!({"recipient": r, "channel": "MESAJ", "status": "RET", "consentDate": "2026-03-03 10:00:00", "source": "HS_WEB", "category": "kampanya"})),
            Planned::ProfileRefused => {
                let (status, _) = server
                    .send(
                        reqwest::Method::PUT,
                        &server.brand(&format!("/profiles/musteri-{i}")),
                        Some(json!({"addresses": [r]})),
                    )
                    .await;
                assert!(status == 200 || status == 201, "profile {status}");
                later.push(json!({"profileId": format!("musteri-{i}"), "channel": "MESAJ", "status": "RET", "consentDate": "2026-03-03 10:00:00", "source": "HS_WEB", "category": "kampanya"}));
            }
            _ => {}
        }
    }
    let (code, body) = server
        .send(
            reqwest::Method::POST,
            &server.brand("/consents"),
            Some(json!({"changes": later})),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    // Citizens' RETs pulled from IYS.
    let brand_row = store.brand(brand).await.unwrap().unwrap();
    let citizen: Vec<hub_core::Change> = people
        .iter()
        .filter(|(_, p)| *p == Planned::RejectedInIys)
        .map(|(r, _)| {
            let mut ch = hub_store::testkit::change(
                brand,
                r,
                hub_core::Channel::Iys(iys::ConsentType::Mesaj),
                iys::ConsentStatus::Ret,
                hub_store::testkit::date("2026-03-04 10:00:00"),
            );
            ch.origin = hub_core::Origin::IysPull;
            ch.source = iys::Source::Iys(iys::IysSource::Kisamesaj);
            ch
        })
        .collect();
    store.apply(&brand_row, citizen, None).await.unwrap();

    // The segment: who may get a campaign SMS now.
    let (status, seg) = server
        .send(
            reqwest::Method::POST,
            &server.brand("/segments"),
            Some(json!({"name": "sms-kampanya", "definition": {"channels": ["MESAJ"], "category": "kampanya"}})),
        )
        .await;
    assert_eq!(status, 201, "{seg}");
    let id = seg["id"].as_i64().unwrap();
    let want: Vec<&String> = people
        .iter()
        .filter(|(_, p)| *p == Planned::Allowed)
        .map(|(r, _)| r)
        .collect();
    let (_, count) = server
        .send(
            reqwest::Method::GET,
            &server.brand(&format!("/segments/{id}/count")),
            None,
        )
        .await;
    assert_eq!(count["count"].as_u64(), Some(want.len() as u64), "{count}");
    let members = server
        .http
        .get(format!(
            "{}{}",
            server.base,
            server.brand(&format!("/segments/{id}/members"))
        ))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let listed: Vec<&str> = members
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let mut sorted = want.clone();
    sorted.sort();
    assert_eq!(
        listed,
        sorted.iter().map(|s| s.as_str()).collect::<Vec<_>>()
    );
    let (status, err) = server
        .send(
            reqwest::Method::POST,
            &server.brand("/segments"),
            Some(json!({"name": "x", "definition": {"channels": ["MESAJ"], "category": "yok"}})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (422, Some("definition.category")),
        "{err}"
    );

    // The campaign filter over the list (plus an invalid line and a non-canonical spelling of
    // an allowed phone): exactly the segment's members, in the list's order.
    let mut list = String::from("recipient\n");
    for (r, _) in &people {
        list.push_str(r);
        list.push('\n');
    }
    list.push_str("12345\n");
    let spelled = want[0].replace("+90", "0");
    list.push_str(&format!("{spelled}\n"));
    let (status, text) = server
        .stream(
            &server.brand("/check/stream?channel=MESAJ&category=kampanya"),
            "text/csv",
            list,
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let (allowed, summary) = common::filter_answer(&text);
    let mut expected: Vec<&str> = want.iter().map(|s| s.as_str()).collect();
    expected.push(want[0].as_str());
    assert_eq!(allowed, expected);
    assert_eq!(summary["received"], people.len() + 2);
    assert_eq!(summary["allowed"], want.len() + 1);
    for p in Planned::ALL.iter().filter(|p| **p != Planned::Allowed) {
        let n = people
            .iter()
            .filter(|(_, q)| q.reason() == p.reason())
            .count();
        assert_eq!(summary["denied"][p.reason()], n, "{summary}");
    }
    assert_eq!(summary["denied"]["invalid_recipient"], 1);
    // Lenient: pending ONAYs go through too; NDJSON in, CSV out.
    let ndjson: String = people
        .iter()
        .map(|(r, _)| format!("{{\"recipient\": \"{r}\"}}\n"))
        .collect();
    let (status, text) = server
        .stream(
            &server
                .brand("/check/stream?channel=MESAJ&category=kampanya&policy=lenient&format=csv"),
            "application/x-ndjson",
            ndjson,
        )
        .await;
    assert_eq!(status, 200);
    let out: Vec<&str> = text.lines().collect();
    assert_eq!(out.first(), Some(&"recipient"));
    assert!(out.last().unwrap().starts_with("# summary "));
    let lenient = people
        .iter()
        .filter(|(_, p)| matches!(p, Planned::Allowed | Planned::Pending))
        .count();
    assert_eq!(out.len() - 2, lenient);

    // Stats follow: current SMS consents by state, and today's opt-ins and opt-outs.
    let (_, stats) = server
        .send(reqwest::Method::GET, &server.brand("/stats"), None)
        .await;
    let current = stats["current"].as_array().unwrap();
    let total: i64 = current.iter().map(|c| c["count"].as_i64().unwrap()).sum();
    let known = people
        .iter()
        .filter(|(_, p)| *p != Planned::Unknown)
        .count();
    assert_eq!(total as usize, known, "{stats}");
    let ins: i64 = stats["daily"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["optIns"].as_i64().unwrap())
        .sum();
    assert_eq!(ins as usize, known);
    assert!(
        stats["daily"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["origin"] == "iys_pull")
    );
    let (status, bad) = server
        .send(
            reqwest::Method::GET,
            &server.brand("/stats?from=2026-05-01&to=2026-04-01"),
            None,
        )
        .await;
    assert_eq!(
        (status, bad["error"]["field"].as_str()),
        (422, Some("from"))
    );

    server.stop().await;
}
