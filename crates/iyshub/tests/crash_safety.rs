//! Crash safety: `iyshub serve` is killed with SIGKILL at random moments while writes stream in,
//! then restarted on the same database, round after round. Every change the hub acknowledged
//! (a 2xx with its event id) must be there exactly once, in the history and in the current
//! state, and the hash chain must verify. Writes cut off by the kill may or may not be stored,
//! but never half-stored. Requests cut off with an `Idempotency-Key` are retried after the
//! restart with the same key and body, as a client would, and must not be applied twice.
//!
//! While the writes stream in, the chain is also verified over the API: a snapshot of a ledger
//! being written must verify too.
//!
//! Runs on SQLite, and on PostgreSQL when `IYSHUB_TEST_DATABASE_URL` is set. The seed of the
//! random choices (kill delays, batch sizes, keys) is printed; `IYSHUB_CRASH_SEED` reuses it.

mod common;

use common::{HubProcess, free_ports, tail};

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

const BRAND: u64 = 600_123;
const ADMIN_KEY: &str = "ihk_crash_safety_test_admin_key_0123456789";
const ROUNDS: usize = 10;
const WRITERS: u64 = 4;

// ---------------------------------------------------------------------------------------------
// A little randomness (xorshift64*), seeded per run and printed.

#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// In `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn seed() -> u64 {
    if let Some(s) = std::env::var("IYSHUB_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return s;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    nanos ^ (u64::from(std::process::id()) << 32)
}

// ---------------------------------------------------------------------------------------------
// The hub as a child process.

#[derive(Debug)]
enum Db {
    Sqlite,
    Postgres(String),
}

/// Where the hub keeps its data, and how to run the binary against it.
#[derive(Debug)]
struct Setup {
    dir: tempfile::TempDir,
    db: Db,
}

impl Setup {
    fn new(db: Db) -> Setup {
        Setup {
            dir: tempfile::tempdir().expect("temp dir"),
            db,
        }
    }

    /// The binary with this setup's environment, and nothing of the caller's `IYSHUB_*`.
    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_iyshub"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("IYSHUB_") {
                cmd.env_remove(k);
            }
        }
        cmd.current_dir(self.dir.path())
            .env("IYSHUB_DATA_DIR", self.dir.path().join("data"))
            .env("IYSHUB_ADMIN_KEY", ADMIN_KEY)
            .env("RUST_LOG", "info");
        if let Db::Postgres(url) = &self.db {
            cmd.env("IYSHUB_DATABASE_URL", url);
        }
        cmd
    }

    /// Starts `iyshub serve` on free ports and waits for `/readyz`.
    async fn start(&self, http: &reqwest::Client, round: usize) -> HubProcess {
        for attempt in 0..5 {
            let (api, sim) = free_ports();
            let log = self
                .dir
                .path()
                .join(format!("serve-{round:02}-{attempt}.log"));
            let out = File::create(&log).expect("log file");
            let err = out.try_clone().expect("log file");
            let child = self
                .command()
                .arg("serve")
                .env("IYSHUB_BIND", api.to_string())
                .env("IYSHUB_SIM_BIND", sim.to_string())
                .env("IYSHUB_METRICS_BIND", "off")
                // The checks read every recipient back as fast as they can: not a rate test.
                .env("IYSHUB_RATE_LIMIT", "0")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("spawn iyshub serve");
            let mut hub = HubProcess {
                child,
                base: format!("http://{api}"),
                log,
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = hub.child.try_wait().expect("child status") {
                    let log = tail(&hub.log, 40);
                    // Someone took a port between our probe and the bind: try others.
                    assert!(
                        log.contains("binding"),
                        "iyshub serve exited ({status}) at start of round {round}:\n{log}"
                    );
                    eprintln!("iyshub serve could not bind (attempt {attempt}): {log}");
                    break;
                }
                if let Ok(r) = http.get(format!("{}/readyz", hub.base)).send().await
                    && r.status().is_success()
                {
                    return hub;
                }
                assert!(
                    Instant::now() < deadline,
                    "iyshub serve not ready after 30 s in round {round}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        panic!("iyshub serve did not start in round {round}");
    }
}

// ---------------------------------------------------------------------------------------------
// Writes.

#[derive(Debug, Clone)]
struct Change {
    recipient: String,
    consent_date: String,
}

#[derive(Debug, Clone)]
struct Request {
    changes: Vec<Change>,
    /// `{"changes": [...]}` rather than one bare change.
    batch: bool,
    key: Option<String>,
    /// The exact bytes sent (a retry with the same key must send the same body).
    body: String,
}

#[derive(Debug)]
enum Failure {
    /// No complete answer: the connection broke (the kill) or was refused (already dead).
    /// `live`: it broke before the kill began, so the running hub dropped it.
    Transport { why: String, live: bool },
    /// The hub answered, but not with a 2xx: never expected here.
    Status(u16, String),
}

#[derive(Debug)]
struct Acked {
    event_ids: Vec<i64>,
    replayed: bool,
}

/// Hands out distinct recipients and increasing consent dates to every writer.
#[derive(Debug)]
struct Source {
    next: AtomicU64,
    base: jiff::Timestamp,
}

impl Source {
    fn new() -> Source {
        Source {
            next: AtomicU64::new(0),
            // A day back, so even thousands of changes a second apart stay in the past.
            base: jiff::Timestamp::now()
                .checked_sub(jiff::SignedDuration::from_hours(24))
                .expect("a day ago"),
        }
    }

    fn change(&self) -> Change {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        assert!(n < 80_000, "more changes than the consent dates allow");
        let at = self
            .base
            .checked_add(jiff::SignedDuration::from_secs(n as i64))
            .expect("consent date");
        Change {
            recipient: format!("+90532{:07}", 1_000_000 + n),
            consent_date: iys::ConsentDate::from_timestamp(at).to_string(),
        }
    }

    fn request(&self, rng: &mut Rng) -> Request {
        let batch = rng.range(0, 9) >= 4;
        let n = if batch { rng.range(1, 8) } else { 1 };
        let changes: Vec<Change> = (0..n).map(|_| self.change()).collect();
        let items: Vec<Value> = changes
            .iter()
            .map(|c| {
                json!({
                    "recipient": c.recipient,
                    "type": "MESAJ",
                    "status": "ONAY",
                    "source": "HS_WEB",
                    "consentDate": c.consent_date,
                })
            })
            .collect();
        let body = if batch {
            json!({ "changes": items })
        } else {
            items[0].clone()
        };
        let key = (rng.range(0, 1) == 0).then(|| format!("crash-{}", changes[0].recipient));
        Request {
            changes,
            batch,
            key,
            body: body.to_string(),
        }
    }
}

async fn send(http: &reqwest::Client, base: &str, req: &Request) -> Result<Acked, Failure> {
    let mut r = http
        .post(format!("{base}/api/v1/brands/{BRAND}/consents"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body(req.body.clone());
    if let Some(k) = &req.key {
        r = r.header("idempotency-key", k.as_str());
    }
    let resp = r.send().await.map_err(|e| Failure::Transport {
        why: e.to_string(),
        live: false,
    })?;
    let status = resp.status();
    let replayed = resp.headers().get("idempotent-replayed").is_some();
    // A 200 whose body was cut off by the kill is no acknowledgement.
    let text = resp.text().await.map_err(|e| Failure::Transport {
        why: e.to_string(),
        live: false,
    })?;
    if !status.is_success() {
        return Err(Failure::Status(status.as_u16(), text));
    }
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("a 2xx with a body that is not JSON ({e}): {text}"));
    let results: Vec<&Value> = if req.batch {
        assert_eq!(body["accepted"], req.changes.len(), "{body}");
        assert_eq!(body["rejected"], 0, "{body}");
        body["results"]
            .as_array()
            .expect("results array")
            .iter()
            .collect()
    } else {
        vec![&body]
    };
    assert_eq!(results.len(), req.changes.len(), "{body}");
    let event_ids = results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            assert_eq!(r["index"], i, "{body}");
            assert_eq!(r["status"], "accepted", "{body}");
            assert_eq!(r["outcome"], "applied", "{body}");
            r["eventId"].as_i64().expect("eventId")
        })
        .collect();
    Ok(Acked {
        event_ids,
        replayed,
    })
}

/// Verifies the chain over the API while the writers write, until told to stop (just before the
/// kill) or until the hub stops answering. Returns how many verifications completed.
async fn observer(http: reqwest::Client, base: String, stop: Arc<AtomicBool>) -> usize {
    let mut done = 0;
    while !stop.load(Ordering::SeqCst) {
        let answer = match http
            .get(format!("{base}/api/v1/brands/{BRAND}/verify"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
        {
            Ok(resp) => {
                let status = resp.status();
                resp.text().await.map(|text| (status, text))
            }
            Err(e) => Err(e),
        };
        let (status, text) = match answer {
            Ok(a) => a,
            Err(e) => {
                assert!(
                    stop.load(Ordering::SeqCst),
                    "the running hub dropped a verify request: {e}"
                );
                break;
            }
        };
        assert_eq!(status, 200, "verify during writes: {text}");
        let report: Value = serde_json::from_str(&text).expect("verify answers JSON");
        assert_eq!(
            report["valid"], true,
            "verify during writes reports a broken chain: {report}"
        );
        done += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    done
}

/// Writes until told to stop or until the hub stops answering.
async fn writer(
    http: reqwest::Client,
    base: String,
    source: Arc<Source>,
    stop: Arc<AtomicBool>,
    mut rng: Rng,
) -> Vec<(Request, Result<Acked, Failure>)> {
    let mut done = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let req = source.request(&mut rng);
        let mut result = send(&http, &base, &req).await;
        if let Err(Failure::Transport { live, .. }) = &mut result {
            // `stop` is set before the kill: a failure seen before it is the running hub's.
            *live = !stop.load(Ordering::SeqCst);
        }
        let broken = result.is_err();
        done.push((req, result));
        if broken {
            break;
        }
    }
    done
}

// ---------------------------------------------------------------------------------------------
// What the client knows.

#[derive(Debug, Default)]
struct Ledger {
    /// Recipient → (event id, consent date) of every acknowledged change.
    acked: HashMap<String, (i64, String)>,
    /// Recipient → consent date of changes whose request never got an answer.
    unknown: HashMap<String, String>,
    requests_acked: usize,
    requests_cut: usize,
    retries_replayed: usize,
    retries_fresh: usize,
    /// How the last cut-off request failed (shown per round).
    last_cut: String,
}

impl Ledger {
    fn ack(&mut self, req: &Request, acked: &Acked) {
        self.requests_acked += 1;
        for (c, id) in req.changes.iter().zip(&acked.event_ids) {
            self.unknown.remove(&c.recipient);
            let old = self
                .acked
                .insert(c.recipient.clone(), (*id, c.consent_date.clone()));
            assert!(
                old.is_none(),
                "{} acknowledged twice: {old:?} and {id}",
                c.recipient
            );
        }
    }

    fn cut(&mut self, req: &Request, why: String) {
        self.requests_cut += 1;
        self.last_cut = why;
        for c in &req.changes {
            self.unknown
                .insert(c.recipient.clone(), c.consent_date.clone());
        }
    }
}

/// Retries, with the same key and body, the keyed requests the last kill cut off.
async fn retry(http: &reqwest::Client, hub: &HubProcess, ledger: &mut Ledger, reqs: Vec<Request>) {
    for req in reqs {
        match send(http, &hub.base, &req).await {
            Ok(acked) => {
                if acked.replayed {
                    ledger.retries_replayed += 1;
                } else {
                    ledger.retries_fresh += 1;
                }
                ledger.ack(&req, &acked);
            }
            Err(e) => panic!("retry of {:?} failed on a running hub: {e:?}", req.key),
        }
    }
}

/// The first look-up of a phone number loads libphonenumber's metadata, which takes seconds in
/// a debug build; done before the writes so that the kill lands among steady writes.
async fn warm_up(http: &reqwest::Client, hub: &HubProcess) {
    let (status, body) = get(
        http,
        format!(
            "{}/api/v1/brands/{BRAND}/recipients/%2B905320000000",
            hub.base
        ),
    )
    .await;
    assert_eq!(status, 404, "{body}");
}

async fn get(http: &reqwest::Client, url: String) -> (u16, Value) {
    let resp = http
        .get(&url)
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn verify_api(http: &reqwest::Client, hub: &HubProcess) -> Value {
    let (status, report) = get(http, format!("{}/api/v1/brands/{BRAND}/verify", hub.base)).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["valid"], true, "the hash chain is broken: {report}");
    report
}

/// Checks one recipient: acknowledged (`expected` event id) or not; returns its stored event id.
async fn check_recipient(
    http: reqwest::Client,
    base: String,
    recipient: String,
    expected: Option<i64>,
    consent_date: String,
) -> Option<i64> {
    let enc = recipient.replace('+', "%2B");
    let url = format!("{base}/api/v1/brands/{BRAND}/recipients/{enc}");
    let (s_state, state) = get(&http, url.clone()).await;
    let (s_hist, hist) = get(&http, format!("{url}/history")).await;
    match (s_state, s_hist, expected) {
        (404, 404, None) => return None,
        (200, 200, _) => {}
        _ => panic!(
            "{recipient} (acknowledged event {expected:?}): state answered {s_state}, history {s_hist}\nstate: {state}\nhistory: {hist}"
        ),
    }
    let events = hist["events"].as_array().expect("events");
    assert_eq!(
        events.len(),
        1,
        "{recipient}: one change sent, but history has {}: {hist}",
        events.len()
    );
    let ev = &events[0];
    let id = ev["id"].as_i64().expect("event id");
    if let Some(want) = expected {
        assert_eq!(
            id, want,
            "{recipient}: acknowledged event {want}, history has {ev}"
        );
    }
    assert_eq!(ev["channel"], "MESAJ", "{ev}");
    assert_eq!(ev["status"], "ONAY", "{ev}");
    assert_eq!(ev["consentDate"], consent_date, "{ev}");
    assert_eq!(ev["outcome"], "applied", "{ev}");
    assert_eq!(state["recipient"], recipient.as_str(), "{state}");
    let channels = state["channels"].as_array().expect("channels");
    assert_eq!(channels.len(), 1, "{recipient}: {state}");
    let ch = &channels[0];
    assert_eq!(ch["channel"], "MESAJ", "{state}");
    assert_eq!(ch["status"], "ONAY", "{recipient}: {state}");
    assert_eq!(ch["consentDate"], consent_date, "{state}");
    assert_eq!(
        ch["lastEventId"], id,
        "{recipient}: state and history disagree: {state} vs {hist}"
    );
    Some(id)
}

// ---------------------------------------------------------------------------------------------
// The test.

async fn crash_rounds(db: Db) {
    let seed = seed();
    let label = match &db {
        Db::Sqlite => "SQLite",
        Db::Postgres(_) => "PostgreSQL",
    };
    println!("crash safety on {label}: IYSHUB_CRASH_SEED={seed}");
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let setup = Setup::new(db);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client");
    let source = Arc::new(Source::new());
    let mut ledger = Ledger::default();
    let mut to_retry: Vec<Request> = Vec::new();

    for round in 1..=ROUNDS {
        let t0 = Instant::now();
        let hub = setup.start(&http, round).await;
        let t_start = t0.elapsed();
        // Whatever the last kill interrupted, the chain is whole at restart.
        verify_api(&http, &hub).await;
        warm_up(&http, &hub).await;
        retry(&http, &hub, &mut ledger, std::mem::take(&mut to_retry)).await;
        let t_ready = t0.elapsed();

        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                tokio::spawn(writer(
                    http.clone(),
                    hub.base.clone(),
                    source.clone(),
                    stop.clone(),
                    Rng::new(seed.wrapping_add((round as u64) << 8).wrapping_add(w + 1)),
                ))
            })
            .collect();
        let watching = tokio::spawn(observer(http.clone(), hub.base.clone(), stop.clone()));
        let delay = rng.range(50, 400);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        stop.store(true, Ordering::SeqCst);
        let log = hub.kill();
        assert!(
            !log.contains("panicked"),
            "iyshub serve panicked in round {round}:\n{log}"
        );

        let verified = watching.await.expect("observer task");
        let (before_acked, before_cut) = (ledger.requests_acked, ledger.requests_cut);
        for t in tasks {
            for (req, result) in t.await.expect("writer task") {
                match result {
                    Ok(acked) => ledger.ack(&req, &acked),
                    Err(Failure::Transport { why, live: true }) => {
                        panic!("round {round}: the running hub dropped a request: {why}\n{log}")
                    }
                    Err(Failure::Transport { why, live: false }) => {
                        ledger.cut(&req, why);
                        if req.key.is_some() {
                            to_retry.push(req);
                        }
                    }
                    Err(Failure::Status(status, body)) => {
                        panic!("round {round}: the hub answered {status}: {body}")
                    }
                }
            }
        }
        println!(
            "round {round:2}: up in {} ms, retried in {} ms; SIGKILL after {delay:3} ms of writes: {:3} requests acknowledged, {} cut off ({}); chain verified {verified} times meanwhile",
            t_start.as_millis(),
            (t_ready - t_start).as_millis(),
            ledger.requests_acked - before_acked,
            ledger.requests_cut - before_cut,
            ledger.last_cut,
        );
    }

    // Back up for good: retry what the last kill cut off, then check everything.
    let hub = setup.start(&http, ROUNDS + 1).await;
    warm_up(&http, &hub).await;
    retry(&http, &hub, &mut ledger, std::mem::take(&mut to_retry)).await;
    assert!(
        ledger.acked.len() >= 10,
        "too few acknowledged changes ({}) to say anything",
        ledger.acked.len()
    );

    let mut all: Vec<(String, Option<i64>, String)> = ledger
        .acked
        .iter()
        .map(|(r, (id, d))| (r.clone(), Some(*id), d.clone()))
        .collect();
    all.extend(
        ledger
            .unknown
            .iter()
            .map(|(r, d)| (r.clone(), None, d.clone())),
    );
    let t_check = Instant::now();
    let stored: Vec<(bool, i64)> = futures_util::stream::iter(all)
        .map(|(r, id, d)| {
            let (http, base) = (http.clone(), hub.base.clone());
            async move {
                let acked = id.is_some();
                check_recipient(http, base, r, id, d)
                    .await
                    .map(|got| (acked, got))
            }
        })
        .buffer_unordered(16)
        .filter_map(|x| async move { x })
        .collect()
        .await;
    let ids: HashSet<i64> = stored.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids.len(), stored.len(), "an event id is used twice");
    let stored_unacked = stored.iter().filter(|(acked, _)| !acked).count();
    assert_eq!(stored.len(), ledger.acked.len() + stored_unacked);

    println!(
        "checked {} recipients in {} ms",
        ledger.acked.len() + ledger.unknown.len(),
        t_check.elapsed().as_millis()
    );
    let report = verify_api(&http, &hub).await;
    let events = report["events"].as_u64().expect("events") as usize;
    assert!(events >= ledger.acked.len(), "{report}");
    assert_eq!(
        events,
        stored.len(),
        "the chain has events no recipient history accounts for: {report}"
    );

    let out = setup
        .command()
        .args(["verify", "--brand", &BRAND.to_string()])
        .output()
        .expect("run iyshub verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "iyshub verify failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_str(&stdout).expect("iyshub verify prints JSON");
    assert_eq!(cli["valid"], true, "{cli}");
    assert_eq!(cli["events"], events, "{cli}");
    // For the record (not checked: the embedded simulator forgets everything at each kill).
    let metrics = http
        .get(format!("{}/metrics", hub.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let outbox: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("iyshub_outbox_rows{"))
        .collect();
    println!("outbox at the end: {}", outbox.join(", "));
    let log = hub.kill();
    assert!(!log.contains("panicked"), "iyshub serve panicked:\n{log}");

    println!(
        "crash safety on {label}: {ROUNDS} SIGKILL rounds in {:.1} s; {} changes acknowledged ({} requests), each stored once; \
         {} requests cut off by the kills, the keyed ones retried ({} answered from the stored answer, {} applied then); \
         {} changes never acknowledged, {} of them stored anyway (whole); chain of {events} events valid",
        started.elapsed().as_secs_f64(),
        ledger.acked.len(),
        ledger.requests_acked,
        ledger.requests_cut,
        ledger.retries_replayed,
        ledger.retries_fresh,
        ledger.unknown.len(),
        stored_unacked,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_rounds_on_sqlite() {
    crash_rounds(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_rounds_on_postgres() {
    let Some(admin_url) = hub_store::testkit::admin_url_or_skip("PostgreSQL crash safety") else {
        return;
    };
    let (url, name) = hub_store::testkit::fresh_postgres(&admin_url, "iyshub_crash").await;
    crash_rounds(Db::Postgres(url)).await;
    // The hub is gone; its connections may linger a moment (the drop forces them closed).
    hub_store::testkit::drop_postgres(&admin_url, &name).await;
}
