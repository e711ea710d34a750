//! Change events end to end, through the real `iyshub serve` on SQLite: 10,000 consent changes
//! (2,000 recipients, five real flips each) written over the API, the hub killed with SIGKILL
//! half-way and started again on the same data directory, then every event read by polling and
//! checked against what a webhook receiver (in this process, answering 500 now and then) and
//! NATS JetStream got:
//!
//! - the receiver got every event at least once, a repeat carries the same body, the first
//!   receipts come in id order per recipient;
//! - JetStream holds every event exactly once (the hub republishes from its stored cursor after
//!   the crash; the stream drops repeats by `Nats-Msg-Id`), in id order per recipient.
//!
//! The kill lands while the webhook worker holds its 60 s lease on the webhook: the restarted
//! hub waits for that lease to run out before delivering again, which is most of this test's
//! run time (80–95 s in all on 2 cores, debug build).
//!
//! The brand code is random per run, so runs sharing a NATS server never see each other's
//! events; the test deletes its consumer and purges its subject at the end. Without a NATS server
//! (`IYSHUB_TEST_NATS_URL`, else 127.0.0.1:4222) the NATS half is skipped, a failure under `CI`.

mod common;

use common::{HubProcess, free_ports, tail};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use futures_util::StreamExt;
use hub_events::testkit::{nats_url, skip_or_fail};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "ihk_events_e2e_test_admin_key_0123456789";
const CHANGES: usize = 10_000;
const RECIPIENTS: usize = 2_000;
const BATCH: usize = 500;
/// The receiver answers 500 to request number `n` (1-based) when `n % FAIL_EVERY == FAIL_AT`.
/// The binary retries on its standard schedule, whose first delay is 5 s (±20%), and delivery
/// is in order, so each failure holds the webhook for ~5 s: a few failures, not one in seven.
/// With ~10,000 requests: the 2,500th and the 6,500th, after the restart.
const FAIL_EVERY: usize = 4_000;
const FAIL_AT: usize = 2_500;
/// How long delivery may take to catch up after the last write: the dead worker's lease (up to
/// 60 s), two retries (~10 s) and the deliveries themselves (~20 s), with room to spare.
const CATCH_UP: Duration = Duration::from_secs(150);

// ---------------------------------------------------------------------------------------------
// The webhook receiver.

#[derive(Debug, Default)]
struct Receiver {
    /// (`webhook-id`, body, arrival) of every request, in arrival order, whatever the answer.
    got: Mutex<Vec<(String, Bytes, Instant)>>,
    /// Requests answered 500.
    failed: AtomicUsize,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let n = {
        let mut got = r.got.lock().unwrap();
        got.push((id, body, Instant::now()));
        got.len()
    };
    if n % FAIL_EVERY == FAIL_AT {
        r.failed.fetch_add(1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::NO_CONTENT
}

async fn start_receiver(r: Arc<Receiver>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(r);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

// ---------------------------------------------------------------------------------------------
// The hub as a child process.

/// Starts `iyshub serve` on `dir` (SQLite, the built-in simulator) and waits for `/readyz`.
async fn start_hub(
    dir: &Path,
    nats: Option<&str>,
    http: &reqwest::Client,
    run: usize,
) -> HubProcess {
    for attempt in 0..5 {
        let (api, sim) = free_ports();
        let log = dir.join(format!("serve-{run}-{attempt}.log"));
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_iyshub"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("IYSHUB_") {
                cmd.env_remove(k);
            }
        }
        cmd.current_dir(dir)
            .arg("serve")
            .env("IYSHUB_DATA_DIR", dir.join("data"))
            .env("IYSHUB_ADMIN_KEY", ADMIN_KEY)
            .env("IYSHUB_BIND", api.to_string())
            .env("IYSHUB_SIM_BIND", sim.to_string())
            .env("IYSHUB_METRICS_BIND", "off")
            .env("IYSHUB_RATE_LIMIT", "0")
            // Debug for the sink's "JetStream dropped events it already had".
            .env("RUST_LOG", "info,hub_events=debug")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if let Some(url) = nats {
            cmd.env("IYSHUB_NATS_URL", url);
        }
        let child = cmd.spawn().expect("spawn iyshub serve");
        let mut hub = HubProcess {
            child,
            base: format!("http://{api}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = hub.child.try_wait().unwrap() {
                let log = tail(&hub.log, 40);
                // Someone took a port between our probe and the bind: try others.
                assert!(
                    log.contains("binding"),
                    "iyshub serve exited ({status}) at start {run}:\n{log}"
                );
                break;
            }
            if let Ok(r) = http.get(format!("{}/readyz", hub.base)).send().await
                && r.status().is_success()
            {
                return hub;
            }
            assert!(
                Instant::now() < deadline,
                "iyshub serve not ready after 30 s (start {run})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("iyshub serve did not start (start {run})");
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, &url).bearer_auth(ADMIN_KEY);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

// ---------------------------------------------------------------------------------------------
// Writes.

/// The brand: random per run among 9-digit codes, so NATS data of other runs never collides.
fn brand_code() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mixed = (nanos ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    700_000_000 + (mixed >> 16) % 100_000_000
}

fn recipient(r: usize) -> String {
    format!("+90532{:07}", 1_000_000 + r)
}

/// Change `k`: recipient `k % RECIPIENTS`, its `k / RECIPIENTS`-th flip (ONAY first), a consent
/// date one second after the previous change's, so every change is a real one.
fn change(k: usize, base: jiff::Timestamp) -> Value {
    let at = base
        .checked_add(jiff::SignedDuration::from_secs(k as i64))
        .unwrap();
    json!({
        "recipient": recipient(k % RECIPIENTS),
        "channel": "MESAJ",
        "status": if (k / RECIPIENTS).is_multiple_of(2) { "ONAY" } else { "RET" },
        "consentDate": iys::ConsentDate::from_timestamp(at).to_string(),
        "source": "HS_WEB",
    })
}

/// Writes batch `b` and checks every change was applied.
async fn write_batch(
    http: &reqwest::Client,
    base: &str,
    brand: u64,
    b: usize,
    at: jiff::Timestamp,
) {
    let changes: Vec<Value> = (b * BATCH..(b + 1) * BATCH)
        .map(|k| change(k, at))
        .collect();
    let (status, body) = call(
        http,
        reqwest::Method::POST,
        format!("{base}/api/v1/brands/{brand}/consents"),
        Some(json!({ "changes": changes })),
    )
    .await;
    assert_eq!(status, 200, "batch {b}: {body}");
    assert_eq!(body["accepted"], BATCH, "batch {b}: {body}");
    for r in body["results"].as_array().unwrap() {
        assert_eq!(r["outcome"], "applied", "batch {b}: {r}");
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the events back.

/// An event as read: its id, recipient and CloudEvent JSON.
#[derive(Debug, Clone)]
struct Event {
    id: i64,
    recipient: String,
    json: Value,
}

fn event(json: Value) -> Event {
    let id: i64 = json["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(json["data"]["id"], id, "{json}");
    Event {
        id,
        recipient: json["data"]["recipient"].as_str().unwrap().to_owned(),
        json,
    }
}

/// Reads the events after `polled`'s last by polling, appending them.
async fn poll(http: &reqwest::Client, base: &str, brand: u64, polled: &mut Vec<Event>) {
    loop {
        let after = polled.last().map_or(0, |e| e.id);
        let (status, page) = call(
            http,
            reqwest::Method::GET,
            format!("{base}/api/v1/brands/{brand}/events?after={after}&limit=1000"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            assert_eq!(page["nextAfter"], after, "{page}");
            return;
        }
        for e in events {
            let e = event(e.clone());
            assert!(e.id > after, "polling went back: {} after {after}", e.id);
            assert!(
                polled.last().is_none_or(|p| p.id < e.id),
                "polled ids not ascending at {}",
                e.id
            );
            polled.push(e);
        }
        assert_eq!(page["nextAfter"], polled.last().unwrap().id, "{page}");
    }
}

/// The ids out of order per recipient, as (recipient, earlier id, later-arriving smaller id).
fn order_breaks<'a>(seq: impl Iterator<Item = (&'a str, i64)>) -> Vec<(String, i64, i64)> {
    let mut last: HashMap<&str, i64> = HashMap::new();
    let mut breaks = Vec::new();
    for (r, id) in seq {
        if let Some(prev) = last.insert(r, id)
            && prev >= id
        {
            breaks.push((r.to_owned(), prev, id));
        }
    }
    breaks
}

// ---------------------------------------------------------------------------------------------
// NATS JetStream.

/// A message read from JetStream: the event and its `Nats-Msg-Id`.
#[derive(Debug)]
struct NatsMessage {
    event: Event,
    msg_id: Option<String>,
}

#[derive(Debug)]
struct NatsReader {
    stream: jetstream::stream::Stream,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    name: String,
    subject: String,
}

impl NatsReader {
    /// A pull consumer (no acks) of every message on the brand's subject, on the stream that
    /// the hub publishes to.
    async fn open(client: &async_nats::Client, brand: u64) -> NatsReader {
        let js = jetstream::new(client.clone());
        let subject = hub_events::subject(hub_core::BrandCode(brand));
        let stream_name = js
            .stream_by_subject(subject.as_str())
            .await
            .expect("a JetStream stream captures the brand's subject (the hub creates it)");
        let stream = js.get_stream(&stream_name).await.unwrap();
        let name = format!("events-e2e-{brand}");
        let consumer = stream
            .create_consumer(pull::Config {
                name: Some(name.clone()),
                filter_subject: subject.clone(),
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                ack_policy: jetstream::consumer::AckPolicy::None,
                // Gone by itself should the test die before deleting it.
                inactive_threshold: Duration::from_secs(300),
                ..Default::default()
            })
            .await
            .unwrap();
        NatsReader {
            stream,
            consumer,
            name,
            subject,
        }
    }

    /// Everything available now, appended to `out`.
    async fn drain(&self, out: &mut Vec<NatsMessage>) {
        loop {
            let mut got = 0;
            let mut batch = self
                .consumer
                .fetch()
                .max_messages(1000)
                .messages()
                .await
                .unwrap();
            while let Some(m) = batch.next().await {
                let m = m.unwrap();
                got += 1;
                let msg_id = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Msg-Id"))
                    .map(|v| v.as_str().to_owned());
                let json: Value = serde_json::from_slice(&m.payload).unwrap();
                out.push(NatsMessage {
                    event: event(json),
                    msg_id,
                });
            }
            if got == 0 {
                return;
            }
        }
    }

    /// Deletes the consumer and purges the brand's subject.
    async fn clean_up(self) {
        if let Err(e) = self.stream.delete_consumer(&self.name).await {
            eprintln!("cannot delete the NATS consumer {}: {e}", self.name);
        }
        if let Err(e) = self.stream.purge().filter(self.subject.as_str()).await {
            eprintln!("cannot purge {}: {e}", self.subject);
        }
    }
}

/// A client when a JetStream server answers; else `None` after saying the NATS half skips.
async fn nats_client(url: &str) -> Option<async_nats::Client> {
    const WHAT: &str = "change events on NATS JetStream across a SIGKILL";
    let client = match async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(3))
        .connect(url)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            skip_or_fail(WHAT, &format!("no NATS server at {url}: {e}"));
            return None;
        }
    };
    // Any JetStream API answer will do; "no stream" is one.
    match jetstream::new(client.clone())
        .stream_by_subject(hub_events::SUBJECTS)
        .await
    {
        Ok(_) => {}
        Err(e) if e.kind() == jetstream::context::GetStreamByNameErrorKind::NotFound => {}
        Err(e) => {
            skip_or_fail(
                WHAT,
                &format!("the NATS server at {url} has no JetStream: {e}"),
            );
            return None;
        }
    }
    Some(client)
}

// ---------------------------------------------------------------------------------------------
// The test.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_lost_across_sigkill_to_webhooks_and_nats() {
    let started = Instant::now();
    let brand = brand_code();
    let url = nats_url();
    let nats = nats_client(&url).await;
    println!(
        "brand {brand}; NATS {}",
        if nats.is_some() {
            url.as_str()
        } else {
            "skipped"
        }
    );
    let nats_for_hub = nats.as_ref().map(|_| url.as_str());

    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let receiver = Arc::new(Receiver::default());
    let hook_url = start_receiver(receiver.clone()).await;

    let hub = start_hub(dir.path(), nats_for_hub, &http, 1).await;
    let (status, body) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/brands", hub.base),
        Some(json!({"brandCode": brand, "name": "Events e2e"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, hook) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/brands/{brand}/webhooks", hub.base),
        Some(json!({"url": hook_url, "eventTypes": []})),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    assert!(
        hook["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_")),
        "{hook}"
    );
    let hook_id = hook["id"].as_i64().unwrap();

    // A day back, so the 10,000 changes a second apart all lie in the past.
    let at = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(24))
        .unwrap();
    let batches = CHANGES / BATCH;
    let t_writes = Instant::now();
    write_batch(&http, &hub.base, brand, 0, at).await;
    // The hub made the stream when it started; read from it from now on.
    let nats_reader = match &nats {
        Some(client) => Some(NatsReader::open(client, brand).await),
        None => None,
    };
    let mut from_nats: Vec<NatsMessage> = Vec::new();
    for b in 1..batches / 2 {
        write_batch(&http, &hub.base, brand, b, at).await;
    }
    // SIGKILL at once, with the sinks busy: webhooks deliver one event at a time and lag behind
    // the writes; NATS may be amid a page.
    let delivered_at_kill = receiver.got.lock().unwrap().len();
    let log1 = hub.kill();
    let t_kill = Instant::now();
    if let Some(reader) = &nats_reader {
        reader.drain(&mut from_nats).await;
    }
    assert!(
        !log1.contains("panicked"),
        "iyshub serve panicked before the kill:\n{log1}"
    );
    println!(
        "wrote {} changes in {} ms, then SIGKILL: the receiver had {delivered_at_kill} requests, JetStream {} events",
        batches / 2 * BATCH,
        t_writes.elapsed().as_millis(),
        from_nats.len()
    );
    assert!(
        delivered_at_kill > 0,
        "no webhook delivery had begun at the kill"
    );

    let t_restart = Instant::now();
    let hub = start_hub(dir.path(), nats_for_hub, &http, 2).await;
    println!("restarted in {} ms", t_restart.elapsed().as_millis());
    for b in batches / 2..batches {
        write_batch(&http, &hub.base, brand, b, at).await;
    }
    println!(
        "wrote all {CHANGES} changes in {} ms",
        t_writes.elapsed().as_millis()
    );

    // Wait for both sinks to have every event polling shows.
    let mut polled: Vec<Event> = Vec::new();
    let t_catch_up = Instant::now();
    let mut webhooks_done = None;
    let mut nats_done = None;
    let caught_up = loop {
        poll(&http, &hub.base, brand, &mut polled).await;
        let want: HashSet<i64> = polled.iter().map(|e| e.id).collect();
        if webhooks_done.is_none() {
            let got: HashSet<i64> = receiver
                .got
                .lock()
                .unwrap()
                .iter()
                .filter_map(|(id, _, _)| id.parse().ok())
                .collect();
            if want.is_subset(&got) {
                webhooks_done = Some(t_catch_up.elapsed());
            }
        }
        if let Some(reader) = &nats_reader {
            reader.drain(&mut from_nats).await;
            let got: HashSet<i64> = from_nats.iter().map(|m| m.event.id).collect();
            if nats_done.is_none() && want.is_subset(&got) {
                nats_done = Some(t_catch_up.elapsed());
            }
        } else {
            nats_done = Some(Duration::ZERO);
        }
        if webhooks_done.is_some() && nats_done.is_some() {
            break true;
        }
        if t_catch_up.elapsed() > CATCH_UP {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let (_, hook_now) = call(
        &http,
        reqwest::Method::GET,
        format!("{}/api/v1/brands/{brand}/webhooks/{hook_id}", hub.base),
        None,
    )
    .await;
    let log2 = hub.kill();
    // Nothing can be published any more: what JetStream holds now is all it will hold.
    if let Some(reader) = nats_reader {
        reader.drain(&mut from_nats).await;
        reader.clean_up().await;
    }
    let republished: u64 = log2
        .lines()
        .filter(|l| l.contains("JetStream dropped events it already had"))
        // JSON lines: standard error is not a terminal.
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["fields"]["duplicates"].as_u64())
        .sum();
    if nats.is_some() {
        println!(
            "after the restart the hub republished {republished} events JetStream already had"
        );
    }
    let received: Vec<(String, Bytes, Instant)> =
        std::mem::take(&mut *receiver.got.lock().unwrap());
    let failed = receiver.failed.load(Ordering::SeqCst);
    if let Some((id, _, at)) = received.iter().find(|(_, _, at)| *at > t_kill) {
        println!(
            "webhook delivery resumed {} ms after the SIGKILL (event {id})",
            at.duration_since(t_kill).as_millis()
        );
    }
    println!(
        "caught up after the last write: webhooks in {:?}, NATS in {:?}; webhook now: {hook_now}",
        webhooks_done, nats_done
    );

    // --- Diagnostics first, then the assertions.
    let by_id: BTreeMap<i64, &Event> = polled.iter().map(|e| (e.id, e)).collect();
    let mut origins: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &polled {
        *origins
            .entry(e.json["data"]["origin"].as_str().unwrap_or("?"))
            .or_default() += 1;
    }
    let mut first: HashMap<&str, &Bytes> = HashMap::new();
    let mut first_order: Vec<(&str, i64)> = Vec::new();
    let mut repeats = 0usize;
    let mut different_repeats: Vec<&str> = Vec::new();
    let mut unknown_ids: Vec<&str> = Vec::new();
    let mut repeated: Vec<&str> = Vec::new();
    for (id, body, _) in &received {
        match first.get(id.as_str()) {
            Some(b) => {
                repeats += 1;
                repeated.push(id);
                if *b != body {
                    different_repeats.push(id);
                }
            }
            None => {
                first.insert(id, body);
                match id.parse::<i64>().ok().and_then(|n| by_id.get(&n)) {
                    Some(e) => first_order.push((&e.recipient, e.id)),
                    None => unknown_ids.push(id),
                }
            }
        }
    }
    let missing_webhook: Vec<i64> = polled
        .iter()
        .map(|e| e.id)
        .filter(|id| !first.contains_key(id.to_string().as_str()))
        .collect();
    let global_inversions = first_order.windows(2).filter(|w| w[0].1 >= w[1].1).count();
    println!(
        "{} events polled (by origin: {origins:?}); webhook: {} requests, {} distinct ids, {repeats} repeats \
         (ids {:?}), {failed} answered 500, first receipts out of id order globally: {global_inversions}",
        polled.len(),
        received.len(),
        first.len(),
        &repeated[..repeated.len().min(10)],
    );

    if !caught_up {
        eprintln!(
            "--- serve log before the kill ---\n{}\n--- serve log after the restart ---\n{}",
            tail_text(&log1, 30),
            tail_text(&log2, 60)
        );
    }
    assert!(
        !log2.contains("panicked"),
        "iyshub serve panicked after the restart:\n{log2}"
    );
    let api_events = origins.get("api").copied().unwrap_or(0);
    assert_eq!(
        api_events, CHANGES,
        "{CHANGES} changes applied, {api_events} api events polled"
    );
    assert!(
        missing_webhook.is_empty(),
        "the webhook receiver never got {} of {} events (within {CATCH_UP:?} of the last write): \
         first missing {:?}; webhook: {hook_now}",
        missing_webhook.len(),
        polled.len(),
        &missing_webhook[..missing_webhook.len().min(20)]
    );
    assert!(
        unknown_ids.is_empty(),
        "the receiver got ids polling does not show: {:?}",
        &unknown_ids[..unknown_ids.len().min(20)]
    );
    assert!(
        different_repeats.is_empty(),
        "repeats with a different body for ids {:?}",
        &different_repeats[..different_repeats.len().min(20)]
    );
    for (id, body) in &first {
        let json: Value = serde_json::from_slice(body).unwrap();
        let e = by_id[&id.parse::<i64>().unwrap()];
        assert_eq!(
            json, e.json,
            "webhook body of event {id} differs from polling"
        );
    }
    let breaks = order_breaks(first_order.iter().copied());
    assert!(
        breaks.is_empty(),
        "{} first webhook receipts out of id order per recipient, e.g. {:?}",
        breaks.len(),
        &breaks[..breaks.len().min(10)]
    );
    assert!(failed > 0, "the receiver never failed: no retry was tested");

    if nats.is_some() {
        let mut count: HashMap<i64, usize> = HashMap::new();
        for m in &from_nats {
            *count.entry(m.event.id).or_default() += 1;
        }
        let twice: Vec<(i64, usize)> = {
            let mut t: Vec<(i64, usize)> = count
                .iter()
                .filter(|(_, n)| **n > 1)
                .map(|(i, n)| (*i, *n))
                .collect();
            t.sort_unstable();
            t
        };
        let missing: Vec<i64> = polled
            .iter()
            .map(|e| e.id)
            .filter(|id| !count.contains_key(id))
            .collect();
        let extra: Vec<i64> = count
            .keys()
            .copied()
            .filter(|id| !by_id.contains_key(id))
            .collect();
        println!(
            "NATS: {} messages, {} distinct events, {} more than once",
            from_nats.len(),
            count.len(),
            twice.len()
        );
        assert!(
            missing.is_empty(),
            "JetStream lacks {} of {} events: first {:?}",
            missing.len(),
            polled.len(),
            &missing[..missing.len().min(20)]
        );
        assert!(
            twice.is_empty(),
            "JetStream holds {} events more than once: {:?}",
            twice.len(),
            &twice[..twice.len().min(20)]
        );
        assert!(
            extra.is_empty(),
            "JetStream has events polling does not: {extra:?}"
        );
        for m in &from_nats {
            assert_eq!(
                m.msg_id.as_deref(),
                Some(format!("{brand}-{}", m.event.id).as_str()),
                "Nats-Msg-Id of event {}",
                m.event.id
            );
            assert_eq!(
                m.event.json, by_id[&m.event.id].json,
                "NATS payload of event {} differs from polling",
                m.event.id
            );
        }
        let breaks = order_breaks(
            from_nats
                .iter()
                .map(|m| (m.event.recipient.as_str(), m.event.id)),
        );
        assert!(
            breaks.is_empty(),
            "{} NATS messages out of id order per recipient, e.g. {:?}",
            breaks.len(),
            &breaks[..breaks.len().min(10)]
        );
    }
    assert!(caught_up, "delivery did not catch up within {CATCH_UP:?}");
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
}

fn tail_text(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
