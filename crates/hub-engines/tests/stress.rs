//! The race test of issue #12: two full instances (store, API on a real loopback socket, IYS
//! engines) share one fresh PostgreSQL database and one simulated IYS. For about 16 s:
//!
//! - four API writers (two per instance) send batches and single changes over HTTP, ONAY and
//!   RET, over a few hundred overlapping recipients; some requests go to both instances at once
//!   for the same recipients with the same consentDate (ties, same or opposite status), some go
//!   to both at once with the same `Idempotency-Key`;
//! - citizens change consents in IYS (ONAY and RET), which the engines pull;
//! - the engines dispatch (v2 single adds and v2 bulk requests, a 1 s bulk-result floor) under
//!   injected faults: transient 5xx on bulk submissions and results, slow single adds, now and
//!   then an account-level refusal (H353) that pauses dispatch and sends claimed rows back;
//! - brand one's mode is switched through `PATCH /brands/{code}` every ~1.3 s, on alternating
//!   instances; brand two stays in sync mode throughout (isolation).
//!
//! During the load a sampler reads the database every 250 ms, each sample in one REPEATABLE READ
//! snapshot (the mode and the rows seen together, so a switch is seen whole or not at all):
//! no `held` outbox row or consent while its brand is in integrator mode; in sync mode no
//! unleased pending ONAY (and no pending ONAY consent) for a recipient IYS is not known to have;
//! and, checked alongside, both hash chains intact.
//!
//! After the load brand one is left in integrator mode and the hub must settle: nothing pending,
//! awaiting a result or held (brand two: held only for ONAYs of recipients IYS does not have);
//! hub equal to IYS on every key; no lost `in_iys` (a consent whose status is IYS's is `in_iys`)
//! and no false one; no row sent after a newer row of its consent superseded it; no movement
//! recorded twice in the history (pulled twice, or the hub's own delivery pulled back as new) and
//! no keyed request applied twice; chains valid; IYS received no movement twice; brand two
//! untouched by brand one's switches; no engine step failed and PostgreSQL counted no deadlock.
//! The one accepted difference from IYS: two citizen actions on one consent in the same second
//! (same consentDate, RET then ONAY), which the hub keeps as a tie (RET, flagged for a person).
//!
//! `IYSHUB_STRESS_SEED` repeats a run's choices (timing still varies).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hub_core::{BrandCode, Mode};
use hub_engines::{EngineConfig, Engines};
use hub_store::{IysConnection, NewBrand, SqlStore, Store};
use iys::ConsentDate;
use iys_sim::{Profile, SimConfig};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio_util::sync::CancellationToken;

use common::*;

/// Switches modes all through the load.
const ONE: BrandCode = BRAND;
/// Stays in sync mode.
const TWO: BrandCode = BrandCode(600_124);
const ADMIN: &str = "stress-admin-key";
const LOAD: Duration = Duration::from_secs(16);
const ONE_RECIPIENTS: u64 = 600;
const TWO_RECIPIENTS: u64 = 300;
/// Citizens of brand two act only on these, so the others stay unknown to IYS (their ONAYs held).
const TWO_KNOWN: u64 = 150;

fn recipient(brand: BrandCode, n: u64) -> String {
    if brand == ONE {
        format!("+90532{n:07}")
    } else {
        format!("+90542{n:07}")
    }
}

/// A consent date whose second is odd (hub writes, 3 s in the past) or even (citizens, now), as
/// in `burst.rs`: a hub write never ties with a citizen's movement by accident, and a citizen's
/// movement is never dated before a hub change IYS already had when the citizen acted.
fn date(odd: bool) -> ConsentDate {
    let lag = if odd { 3 } else { 0 };
    let mut t = Timestamp::now()
        .saturating_sub(SignedDuration::from_secs(lag))
        .unwrap();
    if (t.as_second() % 2 == 1) != odd {
        t = t.saturating_sub(SignedDuration::from_secs(1)).unwrap();
    }
    ConsentDate::from_timestamp(t)
}

fn config(sim_url: &str) -> EngineConfig {
    EngineConfig {
        bulk_min_poll_age: Duration::from_secs(1),
        bulk_poll_every: Duration::from_millis(250),
        ..engine_config(sim_url)
    }
}

/// Warnings and errors of the run (engines, client, API), kept to look for failed store calls.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

/// One instance: a store (its own pool), the API on a loopback port and the engines.
struct Instance {
    api: String,
    cancel: CancellationToken,
}

async fn start_instance(store: Arc<SqlStore>, sim_url: &str) -> Instance {
    let engines = Arc::new(Engines::new(store.clone(), config(sim_url)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let cancel = CancellationToken::new();
    let hub = Arc::new(hub::Hub {
        iys: hub_store::IysPolicy {
            allowed_urls: vec![sim_url.to_owned()],
            ..Default::default()
        },
        engines: Some(engines.heartbeat()),
        ..hub::Hub::new(store)
    });
    tokio::spawn(hub::serve(hub, listener, cancel.clone()));
    tokio::spawn(engines.run(cancel.clone()));
    Instance { api, cancel }
}

/// What the load saw go wrong, and what it did.
#[derive(Default)]
struct Tally {
    problems: Mutex<Vec<String>>,
    requests: AtomicU64,
    changes: AtomicU64,
    ties: AtomicU64,
    keyed: Mutex<Vec<(String, usize)>>,
}

impl Tally {
    fn problem(&self, p: String) {
        let mut ps = self.problems.lock().unwrap();
        if ps.len() < 50 {
            ps.push(p);
        }
    }
}

fn change_json(brand: BrandCode, n: u64, onay: bool, date: ConsentDate) -> Value {
    json!({
        "recipient": recipient(brand, n),
        "type": "MESAJ",
        "status": if onay { "ONAY" } else { "RET" },
        "source": "HS_WEB",
        "consentDate": date.to_string(),
    })
}

/// Posts a write; returns the answer's body if it was 200.
async fn post(
    http: &reqwest::Client,
    api: &str,
    brand: BrandCode,
    body: &Value,
    key: Option<&str>,
    tally: &Tally,
) -> Option<String> {
    let mut req = http
        .post(format!("{api}/api/v1/brands/{}/consents", brand.0))
        .bearer_auth(ADMIN)
        .json(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    tally.requests.fetch_add(1, Ordering::Relaxed);
    match req.send().await {
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            if status == 200 {
                Some(text)
            } else {
                tally.problem(format!("write to {api} answered {status}: {text}"));
                None
            }
        }
        Err(e) => {
            tally.problem(format!("write to {api} failed: {e}"));
            None
        }
    }
}

/// One API writer: batches, single changes, ties across the two instances and keyed requests
/// sent to both instances at once.
async fn writer(id: u64, seed: u64, apis: [String; 2], stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let http = reqwest::Client::new();
    let mut rng = fastrand::Rng::with_seed(seed ^ (id + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let (mine, theirs) = (&apis[(id % 2) as usize], &apis[((id + 1) % 2) as usize]);
    let mut keyed = 0;
    while !stop.load(Ordering::Relaxed) {
        let brand = if rng.u8(..10) < 7 { ONE } else { TWO };
        let count = if brand == ONE {
            ONE_RECIPIENTS
        } else {
            TWO_RECIPIENTS
        };
        // Brand two mostly gives consent, so its unknown recipients' ONAYs are held.
        let onay_share = if brand == ONE { 55 } else { 75 };
        let pick = |rng: &mut fastrand::Rng| (rng.u64(..count), rng.u8(..100) < onay_share);
        match rng.u8(..10) {
            // A batch.
            0..=4 => {
                let d = date(true);
                let changes: Vec<Value> = (0..rng.usize(2..=80))
                    .map(|_| {
                        let (n, onay) = pick(&mut rng);
                        change_json(brand, n, onay, d)
                    })
                    .collect();
                tally
                    .changes
                    .fetch_add(changes.len() as u64, Ordering::Relaxed);
                post(
                    &http,
                    mine,
                    brand,
                    &json!({ "changes": changes }),
                    None,
                    &tally,
                )
                .await;
            }
            // A single change.
            5..=6 => {
                let (n, onay) = pick(&mut rng);
                tally.changes.fetch_add(1, Ordering::Relaxed);
                post(
                    &http,
                    mine,
                    brand,
                    &change_json(brand, n, onay, date(true)),
                    None,
                    &tally,
                )
                .await;
            }
            // The same recipients with the same consentDate on both instances at once: the same
            // status (a duplicate) or the opposite (a tie: RET wins, flagged).
            7 => {
                let d = date(true);
                let opposite = rng.bool();
                let (a, b): (Vec<Value>, Vec<Value>) = (0..rng.usize(1..=10))
                    .map(|_| {
                        let (n, onay) = pick(&mut rng);
                        (
                            change_json(brand, n, onay, d),
                            change_json(brand, n, onay ^ opposite, d),
                        )
                    })
                    .unzip();
                tally
                    .changes
                    .fetch_add((a.len() + b.len()) as u64, Ordering::Relaxed);
                tally.ties.fetch_add(a.len() as u64, Ordering::Relaxed);
                let (ba, bb) = (json!({ "changes": a }), json!({ "changes": b }));
                tokio::join!(
                    post(&http, mine, brand, &ba, None, &tally),
                    post(&http, theirs, brand, &bb, None, &tally)
                );
            }
            // One keyed request sent to both instances at once: applied once, the same answer
            // to both. The evidence marks its events.
            _ => {
                keyed += 1;
                let key = format!("stress-{seed}-{id}-{keyed}");
                let d = date(true);
                let changes: Vec<Value> = (0..rng.usize(1..=30))
                    .map(|_| {
                        let (n, onay) = pick(&mut rng);
                        let mut c = change_json(brand, n, onay, d);
                        c["evidence"] = json!({ "stressKey": key });
                        c
                    })
                    .collect();
                let size = changes.len();
                tally.changes.fetch_add(size as u64, Ordering::Relaxed);
                let body = json!({ "changes": changes });
                let (x, y) = tokio::join!(
                    post(&http, mine, brand, &body, Some(&key), &tally),
                    post(&http, theirs, brand, &body, Some(&key), &tally)
                );
                if let (Some(x), Some(y)) = (&x, &y)
                    && serde_json::from_str::<Value>(x).ok()
                        != serde_json::from_str::<Value>(y).ok()
                {
                    tally.problem(format!(
                        "keyed request {key}: the two instances answered differently: {x} / {y}"
                    ));
                }
                tally.keyed.lock().unwrap().push((key, size));
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(20..60))).await;
    }
}

/// What one sample found.
#[derive(Default)]
struct Samples {
    taken: u64,
    /// Samples that saw brand one in each mode.
    sync_seen: u64,
    integrator_seen: u64,
    /// Samples in sync mode with rows of brand one in flight (leased) or awaiting a bulk result.
    sync_in_flight: u64,
    /// Samples in sync mode with held rows of brand one.
    sync_held: u64,
    /// Held rows of a consent IYS is known to have, in sync mode (waiting for a pull or a switch).
    held_but_known: u64,
    violations: Vec<String>,
}

fn row_text(r: &sqlx::postgres::PgRow) -> String {
    let s = |c: &str| r.try_get::<Option<String>, _>(c).ok().flatten();
    let i = |c: &str| r.try_get::<Option<i64>, _>(c).ok().flatten();
    format!(
        "{} brand={:?} id={:?} {:?} {:?} state={:?} event={:?} consent_event={:?} lease_owner={:?} lease_until={:?} attempts={:?} error={:?}",
        s("what").unwrap_or_default(),
        i("brand_code"),
        i("id"),
        s("recipient"),
        s("status"),
        s("st"),
        i("event_id"),
        i("last_event_id"),
        s("lease_owner"),
        i("lease_until_ms"),
        i("attempts"),
        s("last_error"),
    )
}

/// The invariants that must hold at every instant, read in one REPEATABLE READ snapshot.
async fn sample(db: &PgPool, s: &mut Samples) {
    let now = Timestamp::now().as_millisecond();
    let mut tx = db.begin().await.unwrap();
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .unwrap();
    let modes: BTreeMap<i64, String> = sqlx::query("SELECT brand_code, mode FROM brand")
        .fetch_all(&mut *tx)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("brand_code"), r.get("mode")))
        .collect();
    // No held row or consent while the brand is in integrator mode.
    let held = sqlx::query(
        "SELECT 'held outbox row in integrator mode' AS what, o.brand_code, o.id, o.recipient, o.status, o.state AS st, o.event_id, \
                NULL::BIGINT AS last_event_id, o.lease_owner, o.lease_until_ms, o.attempts, o.last_error \
         FROM outbox o JOIN brand b ON b.brand_code = o.brand_code \
         WHERE b.mode = 'integrator' AND o.state = 'held' \
         UNION ALL \
         SELECT 'held consent in integrator mode', c.brand_code, NULL, c.recipient, c.status, c.iys_state, NULL, c.last_event_id, NULL, NULL, NULL, c.iys_error \
         FROM consent c JOIN brand b ON b.brand_code = c.brand_code \
         WHERE b.mode = 'integrator' AND c.iys_state = 'held' \
         LIMIT 10",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    // In sync mode no ONAY goes to IYS for a recipient IYS is not known to have: no such row
    // waiting to be claimed (a row leased before a switch is already on its way), and no such
    // consent marked pending.
    let unknown = sqlx::query(
        "SELECT 'pending ONAY for an unknown recipient in sync mode' AS what, o.brand_code, o.id, o.recipient, o.status, o.state AS st, o.event_id, \
                c.last_event_id, o.lease_owner, o.lease_until_ms, o.attempts, o.last_error \
         FROM outbox o JOIN brand b ON b.brand_code = o.brand_code \
         JOIN consent c ON c.brand_code = o.brand_code AND c.recipient = o.recipient AND c.recipient_type = o.recipient_type AND c.channel = o.channel \
         WHERE b.mode = 'sync' AND o.state = 'pending' AND o.status = 'ONAY' AND c.iys_known = 0 \
           AND (o.lease_until_ms IS NULL OR o.lease_until_ms < $1) \
         UNION ALL \
         SELECT 'pending ONAY consent of an unknown recipient in sync mode', c.brand_code, NULL, c.recipient, c.status, c.iys_state, NULL, c.last_event_id, NULL, NULL, NULL, c.iys_error \
         FROM consent c JOIN brand b ON b.brand_code = c.brand_code \
         WHERE b.mode = 'sync' AND c.status = 'ONAY' AND c.iys_state = 'pending' AND c.iys_known = 0 \
         LIMIT 10",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    // What brand one's rows were doing (to show the samples met switches mid-flight).
    let activity = sqlx::query(
        "SELECT COUNT(*) FILTER (WHERE state = 'awaiting_result' OR (state = 'pending' AND lease_until_ms >= $2)) AS in_flight, \
                COUNT(*) FILTER (WHERE state = 'held') AS held \
         FROM outbox WHERE brand_code = $1 AND state IN ('pending', 'awaiting_result', 'held')",
    )
    .bind(ONE.0 as i64)
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let held_but_known: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM outbox o JOIN consent c ON c.brand_code = o.brand_code AND c.recipient = o.recipient \
         AND c.recipient_type = o.recipient_type AND c.channel = o.channel WHERE o.state = 'held' AND c.iys_known = 1",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap()
    .get("n");
    tx.commit().await.unwrap();

    s.taken += 1;
    let one_mode = modes.get(&(ONE.0 as i64)).map(String::as_str);
    let (in_flight, held_rows): (i64, i64) = (activity.get("in_flight"), activity.get("held"));
    match one_mode {
        Some("sync") => {
            s.sync_seen += 1;
            s.sync_in_flight += u64::from(in_flight > 0);
            s.sync_held += u64::from(held_rows > 0);
        }
        _ => s.integrator_seen += 1,
    }
    s.held_but_known += u64::from(held_but_known > 0);
    if modes.get(&(TWO.0 as i64)).map(String::as_str) != Some("sync") {
        s.violations
            .push(format!("brand two left sync mode: {modes:?}"));
    }
    for r in held.iter().chain(unknown.iter()) {
        if s.violations.len() < 40 {
            s.violations.push(format!(
                "sample {} (modes {modes:?}, now {now}): {}",
                s.taken,
                row_text(r)
            ));
        }
    }
}

/// A consent as the hub has it: status, consentDate, iys_state, iys_known, conflict.
type HubConsent = (String, String, String, bool, bool);

/// The hub's consents of a brand, by recipient.
async fn hub_state(db: &PgPool, brand: BrandCode) -> BTreeMap<String, HubConsent> {
    sqlx::query(
        "SELECT recipient, status, consent_date, iys_state, iys_known, conflict FROM consent \
         WHERE brand_code = $1 AND channel = 'MESAJ' AND recipient_type = 'BIREYSEL'",
    )
    .bind(brand.0 as i64)
    .fetch_all(db)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.get("recipient"),
            (
                r.get("status"),
                r.get("consent_date"),
                r.get("iys_state"),
                r.get::<i64, _>("iys_known") != 0,
                r.get::<i64, _>("conflict") != 0,
            ),
        )
    })
    .collect()
}

/// IYS's (the simulator's) consents of a brand: recipient → (status, consentDate).
async fn iys_state(
    http: &reqwest::Client,
    sim: &str,
    brand: BrandCode,
) -> BTreeMap<String, (String, String)> {
    let v: Value = http
        .get(format!("{sim}/_sim/consents/{}?limit=100000", brand.0))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == "MESAJ")
        .map(|m| {
            (
                m["recipient"].as_str().unwrap().to_owned(),
                (
                    m["status"].as_str().unwrap().to_owned(),
                    m["consentDate"].as_str().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect()
}

/// How the hub and IYS compare on a brand's keys.
#[derive(Default)]
struct Comparison {
    /// Keys where they differ, or where the hub's `in_iys` mark is wrong (lost or false).
    differ: Vec<String>,
    /// Keys where IYS itself has two movements with the same consentDate and different statuses
    /// (here: two citizen actions in one second): the hub keeps the RET and flags the consent
    /// for a person, as the ledger's tie rule says, while IYS keeps its later movement.
    flagged_ties: Vec<String>,
}

async fn compare(db: &PgPool, http: &reqwest::Client, sim: &str, brand: BrandCode) -> Comparison {
    let hub = hub_state(db, brand).await;
    let iys = iys_state(http, sim, brand).await;
    let keys: BTreeSet<&String> = hub.keys().chain(iys.keys()).collect();
    let mut out = Comparison::default();
    for k in keys {
        let h = hub.get(k);
        let i = iys.get(k);
        let ok = match (h, i) {
            (Some((status, date, state, _, conflict)), Some((theirs, their_date))) => {
                if status == theirs {
                    // Equal, and then marked in IYS: no lost in_iys.
                    state == "in_iys"
                } else if *conflict && status == "RET" && date == their_date {
                    out.flagged_ties
                        .push(format!("brand {} {k}: hub {h:?}, IYS {i:?}", brand.0));
                    true
                } else {
                    false
                }
            }
            // A RET of a recipient IYS never had: nothing to withdraw (H175); no false in_iys.
            (Some((status, _, state, _, _)), None) if status == "RET" => state != "in_iys",
            // Brand two (sync mode) holds the ONAYs of recipients IYS does not have.
            (Some((status, _, state, known, _)), None) => {
                brand == TWO && status == "ONAY" && state == "held" && !known
            }
            (None, Some(_)) => false,
            (None, None) => true,
        };
        if !ok {
            out.differ
                .push(format!("brand {} {k}: hub {h:?}, IYS {i:?}", brand.0));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_under_concurrent_writes_pulls_settles_and_mode_switches_keep_the_invariants()
{
    let Some(admin) = hub_store::testkit::admin_url_or_skip("the two-instance stress test") else {
        return;
    };
    let started = Instant::now();
    let logs = Logs::default();
    let _ = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .try_init();
    let seed: u64 = std::env::var("IYSHUB_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..1_000_000));
    eprintln!("stress seed {seed} (IYSHUB_STRESS_SEED={seed} repeats the choices)");
    let (url, name) = hub_store::testkit::fresh_postgres(&admin, "iyshub_stress").await;
    let mut sim = SimConfig::for_profile(Profile::Fast);
    sim.timing.bulk_min_poll_age_ms = 1_000;
    sim.seed = Some(seed);
    let w = World::start(sim, Mode::Integrator, Some(url.clone())).await;
    let sim_url = w.sim.base_url();
    w.store
        .create_brand(NewBrand {
            brand_code: TWO,
            iys_code: 600_123,
            name: "stress two".into(),
            mode: Mode::Sync,
            iys: IysConnection {
                base_url: Some(sim_url.clone()),
                username: Some("demo".into()),
                ..IysConnection::default()
            },
        })
        .await
        .unwrap();
    hub::bootstrap_admin_key(&*w.store, Some(ADMIN))
        .await
        .unwrap();
    let db = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    // Half of brand two's recipients exist in IYS before the hub starts.
    for n in 0..TWO_KNOWN {
        w.control(
            reqwest::Method::POST,
            "/_sim/citizen",
            json!({"brandCode": TWO.0, "recipient": recipient(TWO, n), "type": "MESAJ", "status": "ONAY", "source": "IYS_WEB", "consentDate": date(false).to_string()}),
        )
        .await;
    }
    let other = Arc::new(SqlStore::connect(&url).await.unwrap());
    let instances = [
        start_instance(w.store.clone(), &sim_url).await,
        start_instance(other.clone(), &sim_url).await,
    ];
    let apis = [instances[0].api.clone(), instances[1].api.clone()];
    // Faults while the load runs: slow, flaky bulk submissions and results (the client retries,
    // so rows stay in flight across switches), and now and then an account-level refusal of a
    // single add (dispatch pauses; the claimed rows go back).
    w.control(
        reqwest::Method::PUT,
        "/_sim/faults",
        json!({
            "add_v2": {"errorRate": 0.08, "status": 403, "code": "H353", "latencyMs": 40},
            "bulk_v2": {"errorRate": 0.2, "status": 503, "code": "H015", "latencyMs": 40},
            "bulk_result": {"errorRate": 0.1, "status": 500, "code": "H015"},
        }),
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut writers = Vec::new();
    for id in 0..4 {
        writers.push(tokio::spawn(writer(
            id,
            seed,
            apis.clone(),
            stop.clone(),
            tally.clone(),
        )));
    }
    let switcher = {
        let (apis, stop, tally) = (apis.clone(), stop.clone(), tally.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut rng = fastrand::Rng::with_seed(seed ^ 0x5157);
            let mut flips = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(rng.u64(1_000..1_600))).await;
                let mode = if flips.is_multiple_of(2) {
                    "sync"
                } else {
                    "integrator"
                };
                let api = &apis[(flips % 2) as usize];
                match http
                    .patch(format!("{api}/api/v1/brands/{}", ONE.0))
                    .bearer_auth(ADMIN)
                    .json(&json!({ "mode": mode }))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        let v: Value = r.json().await.unwrap_or_default();
                        if v["mode"] != mode {
                            tally.problem(format!("switch to {mode} answered {v}"));
                        }
                    }
                    Ok(r) => tally.problem(format!(
                        "switch to {mode} answered {}: {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )),
                    Err(e) => tally.problem(format!("switch to {mode} failed: {e}")),
                }
                flips += 1;
            }
            flips
        })
    };
    let citizens = {
        let (sim_url, stop) = (sim_url.clone(), stop.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut rng = fastrand::Rng::with_seed(seed ^ 0xC171);
            let (mut sent, mut taken) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let (brand, n) = if rng.u8(..4) < 3 {
                    (ONE, rng.u64(..ONE_RECIPIENTS))
                } else {
                    (TWO, rng.u64(..TWO_KNOWN))
                };
                let status = if rng.u8(..100) < 45 { "ONAY" } else { "RET" };
                // Refused (H174) when IYS already holds that status: fine.
                let r = http
                    .post(format!("{sim_url}/_sim/citizen"))
                    .json(&json!({"brandCode": brand.0, "recipient": recipient(brand, n), "type": "MESAJ", "status": status, "source": "IYS_MOBIL", "consentDate": date(false).to_string()}))
                    .send()
                    .await;
                sent += 1;
                taken += u64::from(r.is_ok_and(|r| r.status().is_success()));
                tokio::time::sleep(Duration::from_millis(rng.u64(10..25))).await;
            }
            (sent, taken)
        })
    };
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (db, sampling) = (db.clone(), sampling.clone());
        tokio::spawn(async move {
            let mut s = Samples::default();
            while sampling.load(Ordering::Relaxed) {
                let next = tokio::time::Instant::now() + Duration::from_millis(250);
                sample(&db, &mut s).await;
                tokio::time::sleep_until(next).await;
            }
            s
        })
    };
    // The chains, checked over and over alongside (each check reads one snapshot).
    let chains = {
        let (store, sampling) = (w.store.clone(), sampling.clone());
        tokio::spawn(async move {
            let (mut checks, mut slowest, mut broken) = (0u64, 0u128, Vec::new());
            while sampling.load(Ordering::Relaxed) {
                let next = tokio::time::Instant::now() + Duration::from_millis(500);
                let t = Instant::now();
                for brand in [ONE, TWO] {
                    let chain = store.verify_chain(brand).await.unwrap();
                    if !chain.valid && broken.len() < 5 {
                        broken.push(format!(
                            "check {checks}: chain of {brand} broken: {chain:?}"
                        ));
                    }
                }
                checks += 1;
                slowest = slowest.max(t.elapsed().as_millis());
                tokio::time::sleep_until(next).await;
            }
            (checks, slowest, broken)
        })
    };

    tokio::time::sleep(LOAD).await;
    stop.store(true, Ordering::Relaxed);
    for t in writers {
        t.await.unwrap();
    }
    let flips = switcher.await.unwrap();
    let (citizen_actions, citizen_taken) = citizens.await.unwrap();
    w.control(reqwest::Method::DELETE, "/_sim/faults", json!({}))
        .await;
    // Leave brand one in integrator mode (through the API, like the switches).
    let r = http
        .patch(format!("{}/api/v1/brands/{}", apis[0], ONE.0))
        .bearer_auth(ADMIN)
        .json(&json!({"mode": "integrator"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let stopped = Instant::now();
    eprintln!(
        "load: {} requests, {} changes ({} tied), {} keyed requests, {flips} mode switches, {citizen_taken}/{citizen_actions} citizen actions taken by IYS",
        tally.requests.load(Ordering::Relaxed),
        tally.changes.load(Ordering::Relaxed),
        tally.ties.load(Ordering::Relaxed),
        tally.keyed.lock().unwrap().len(),
    );

    // Quiescence: nothing pending or awaiting a result; nothing held in integrator mode.
    let quiet = || async {
        let unsettled: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM outbox o JOIN brand b ON b.brand_code = o.brand_code \
             WHERE o.state IN ('pending', 'awaiting_result') OR (o.state = 'held' AND b.mode = 'integrator')",
        )
        .fetch_one(&db)
        .await
        .unwrap()
        .get("n");
        unsettled == 0
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut no_quiescence = None;
    while !quiet().await {
        if Instant::now() > deadline {
            no_quiescence = Some(format!(
                "after 30 s: outbox one {:?}, two {:?}",
                w.store.outbox_counts(ONE).await.unwrap(),
                w.store.outbox_counts(TWO).await.unwrap()
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settled_in = stopped.elapsed();
    // The citizens' last movements reach the feed a second after they happen: wait for the
    // hub to agree with IYS (a few pulls), then judge.
    let wait = if no_quiescence.is_some() { 0 } else { 10 };
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        let one = compare(&db, &http, &sim_url, ONE).await;
        let two = compare(&db, &http, &sim_url, TWO).await;
        if (one.differ.is_empty() && two.differ.is_empty()) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    sampling.store(false, Ordering::Relaxed);
    let samples = sampler.await.unwrap();
    let (chain_checks, chain_ms, broken_chains) = chains.await.unwrap();
    for i in &instances {
        i.cancel.cancel();
    }
    // Let the engines finish their round (their last settle) before the final reads.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut failures: Vec<String> = Vec::new();
    let mut fail = |what: &str, items: Vec<String>| {
        if !items.is_empty() {
            failures.push(format!(
                "{what} ({}):\n    {}",
                items.len(),
                items
                    .iter()
                    .take(12)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n    ")
            ));
        }
    };
    fail(
        "API writes or switches that failed",
        tally.problems.lock().unwrap().clone(),
    );
    fail(
        "invariants broken during the load",
        samples.violations.clone(),
    );
    fail("hash chains broken during the load", broken_chains);
    fail(
        "no quiescence (nothing pending, awaiting or held in integrator mode)",
        no_quiescence.into_iter().collect(),
    );

    // Hub equal to IYS on every key, no lost or false in_iys.
    let (one, two) = (
        compare(&db, &http, &sim_url, ONE).await,
        compare(&db, &http, &sim_url, TWO).await,
    );
    let differ: Vec<String> = one.differ.into_iter().chain(two.differ).collect();
    let flagged_ties: Vec<String> = one
        .flagged_ties
        .into_iter()
        .chain(two.flagged_ties)
        .collect();
    let examples: Vec<String> = differ.iter().take(2).cloned().collect();
    for d in examples {
        let r = d
            .split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .trim_end_matches(':');
        let brand = if d.starts_with(&format!("brand {} ", ONE.0)) {
            ONE
        } else {
            TWO
        };
        for e in w.store.history(brand, r, 30).await.unwrap().iter().rev() {
            eprintln!(
                "  {r} #{} {} {} {} {} tx={:?} delivered={:?} err={:?}",
                e.id,
                e.status,
                e.consent_date,
                e.origin,
                e.outcome,
                e.iys_transaction_id,
                e.delivered_transaction_id,
                e.iys_error
            );
        }
    }
    fail("keys where the hub and IYS differ", differ);

    // Nothing left to do: nothing pending, awaiting or held (brand two: held ONAYs of recipients
    // IYS does not have, and only those).
    let unsettled = sqlx::query(
        "SELECT 'unsettled row' AS what, o.brand_code, o.id, o.recipient, o.status, o.state AS st, o.event_id, c.last_event_id, \
                o.lease_owner, o.lease_until_ms, o.attempts, o.last_error \
         FROM outbox o JOIN brand b ON b.brand_code = o.brand_code \
         LEFT JOIN consent c ON c.brand_code = o.brand_code AND c.recipient = o.recipient AND c.recipient_type = o.recipient_type AND c.channel = o.channel \
         WHERE o.state IN ('pending', 'awaiting_result') \
            OR (o.state = 'held' AND (b.mode = 'integrator' OR o.status <> 'ONAY' OR c.iys_known <> 0)) \
         UNION ALL \
         SELECT 'unsettled consent', c.brand_code, NULL, c.recipient, c.status, c.iys_state, NULL, c.last_event_id, NULL, NULL, NULL, c.iys_error \
         FROM consent c JOIN brand b ON b.brand_code = c.brand_code \
         WHERE c.iys_state = 'pending' OR (c.iys_state = 'held' AND (b.mode = 'integrator' OR c.status <> 'ONAY' OR c.iys_known <> 0)) \
         LIMIT 20",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    fail(
        "left pending, awaiting a result or held",
        unsettled.iter().map(row_text).collect(),
    );

    // A row carried by a newer row of its consent is never sent: the newer one carries the
    // consent's state, and it is sent only after every older row of the consent has settled.
    let carried_but_sent = sqlx::query(
        "SELECT 'carried by a newer row, yet sent' AS what, o.brand_code, o.id, o.recipient, o.status, o.state AS st, o.event_id, \
                o.superseded_by AS last_event_id, o.lease_owner, o.lease_until_ms, o.attempts, o.last_error \
         FROM outbox o WHERE o.superseded_by IS NOT NULL AND o.state <> 'superseded' LIMIT 20",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    fail(
        "rows superseded by a newer row that went to IYS anyway (consent_event = the newer row)",
        carried_but_sent.iter().map(row_text).collect(),
    );

    // No movement recorded twice: pulled twice, or the hub's own delivery pulled back as new.
    let twice: Vec<String> = sqlx::query(
        "SELECT brand_code, iys_transaction_id, recipient, status, consent_date, source, COUNT(*) AS n FROM consent_event \
         WHERE iys_transaction_id IS NOT NULL \
         GROUP BY brand_code, iys_transaction_id, recipient, recipient_type, channel, status, consent_date, source HAVING COUNT(*) > 1 LIMIT 20",
    )
    .fetch_all(&db)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        format!(
            "brand {} tx {} {} {} {} {}: {} events",
            r.get::<i64, _>("brand_code"),
            r.get::<String, _>("iys_transaction_id"),
            r.get::<String, _>("recipient"),
            r.get::<String, _>("status"),
            r.get::<String, _>("consent_date"),
            r.get::<String, _>("source"),
            r.get::<i64, _>("n")
        )
    })
    .collect();
    fail("movements from IYS recorded twice", twice);
    let echoes: Vec<String> = sqlx::query(
        "SELECT p.brand_code, p.id AS pulled, d.id AS delivered, p.origin, p.iys_transaction_id, p.recipient, p.status, p.consent_date, p.source \
         FROM consent_event p JOIN consent_event d ON d.brand_code = p.brand_code AND d.delivered_transaction_id = p.iys_transaction_id \
           AND d.recipient = p.recipient AND d.recipient_type = p.recipient_type AND d.channel = p.channel \
           AND d.status = p.status AND d.consent_date = p.consent_date AND d.source = p.source \
         WHERE p.iys_transaction_id IS NOT NULL LIMIT 20",
    )
    .fetch_all(&db)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        format!(
            "brand {} event #{} ({}) repeats delivery #{}: tx {} {} {} {} {}",
            r.get::<i64, _>("brand_code"),
            r.get::<i64, _>("pulled"),
            r.get::<String, _>("origin"),
            r.get::<i64, _>("delivered"),
            r.get::<String, _>("iys_transaction_id"),
            r.get::<String, _>("recipient"),
            r.get::<String, _>("status"),
            r.get::<String, _>("consent_date"),
            r.get::<String, _>("source"),
        )
    })
    .collect();
    fail(
        "the hub's own deliveries recorded again as movements from IYS",
        echoes,
    );
    // Each keyed request applied once, though both instances received it.
    let applied: BTreeMap<String, i64> = sqlx::query(
        "SELECT evidence, COUNT(*) AS n FROM consent_event WHERE evidence LIKE '%stressKey%' GROUP BY evidence",
    )
    .fetch_all(&db)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        let e: Value = serde_json::from_str(&r.get::<String, _>("evidence")).unwrap();
        (e["stressKey"].as_str().unwrap().to_owned(), r.get("n"))
    })
    .collect();
    let keyed = tally.keyed.lock().unwrap().clone();
    fail(
        "keyed requests not applied exactly once",
        keyed
            .iter()
            .filter(|(k, size)| applied.get(k).copied().unwrap_or(0) != *size as i64)
            .map(|(k, size)| format!("{k}: {size} changes, {:?} events", applied.get(k)))
            .collect(),
    );

    // Chains valid, their heads at the last event.
    for brand in [ONE, TWO] {
        let chain = w.store.verify_chain(brand).await.unwrap();
        if !chain.valid || chain.events == 0 {
            fail("hash chain", vec![format!("brand {}: {chain:?}", brand.0)]);
        }
    }

    // Isolation: brand two never switched, its held ONAYs were never released by brand one's
    // switches to integrator mode, and only brand one's switches were recorded.
    let switches: BTreeMap<i64, i64> = sqlx::query(
        "SELECT brand_code, COUNT(*) AS n FROM audit_log WHERE action = 'mode_switch' GROUP BY brand_code",
    )
    .fetch_all(&db)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("brand_code"), r.get("n")))
    .collect();
    let two_held: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE brand_code = $1 AND state = 'held'")
            .bind(TWO.0 as i64)
            .fetch_one(&db)
            .await
            .unwrap()
            .get("n");
    let two_mode = w.store.brand(TWO).await.unwrap().unwrap().mode;
    let one_mode = w.store.brand(ONE).await.unwrap().unwrap().mode;
    if two_mode != Mode::Sync
        || switches.contains_key(&(TWO.0 as i64))
        || two_held == 0
        || one_mode != Mode::Integrator
        || switches.get(&(ONE.0 as i64)).copied().unwrap_or(0) < flips as i64
    {
        fail(
            "isolation of brand two",
            vec![format!(
                "brand two {two_mode:?} with {two_held} held rows, brand one {one_mode:?}; switches recorded {switches:?}, made {flips}"
            )],
        );
    }

    // IYS received no movement twice; both dispatch paths and both pull sources were used.
    let stats = w.stats().await;
    if stats["duplicateMovements"] != 0 {
        fail("movements IYS received twice", vec![stats.to_string()]);
    }
    let ok_calls = |endpoint: &str| -> u64 {
        stats["requests"][endpoint]
            .as_object()
            .map(|by_status| {
                by_status
                    .iter()
                    .filter(|(status, _)| status.starts_with('2'))
                    .filter_map(|(_, n)| n.as_u64())
                    .sum()
            })
            .unwrap_or(0)
    };
    let pulled: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM consent_event WHERE origin = 'iys_pull'")
            .fetch_one(&db)
            .await
            .unwrap()
            .get("n");
    if ok_calls("add_v2") == 0 || ok_calls("bulk_v2") == 0 || pulled == 0 {
        fail(
            "coverage",
            vec![format!(
                "single adds {}, bulk requests {}, pulled movements {pulled}",
                ok_calls("add_v2"),
                ok_calls("bulk_v2")
            )],
        );
    }
    if samples.taken < 20 || samples.sync_seen == 0 || samples.integrator_seen == 0 {
        fail(
            "sampling",
            vec![format!(
                "{} samples, {} in sync mode, {} in integrator mode",
                samples.taken, samples.sync_seen, samples.integrator_seen
            )],
        );
    }

    // No store call failed in the engines (a deadlock or serialization failure would show here),
    // and PostgreSQL counted no deadlock in the database.
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    eprintln!(
        "{} warnings logged (transient IYS failures, pauses…), none may be a failed engine step",
        logs.lines().count()
    );
    fail(
        "engine steps that failed",
        logs.lines()
            .filter(|l| {
                l.contains("IYS engine step failed")
                    || l.contains("deadlock detected")
                    || l.contains("could not serialize access")
            })
            .map(str::to_owned)
            .collect(),
    );
    let deadlocks: i64 =
        sqlx::query("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            .fetch_one(&db)
            .await
            .unwrap()
            .get("deadlocks");
    if deadlocks > 0 {
        fail("PostgreSQL deadlocks", vec![format!("{deadlocks}")]);
    }

    let refusals: Vec<String> = sqlx::query(
        "SELECT brand_code, COALESCE(last_error, '') AS e, COUNT(*) AS n FROM outbox WHERE state = 'failed' GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&db)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        format!(
            "{} {}: {}",
            r.get::<i64, _>("brand_code"),
            r.get::<String, _>("e"),
            r.get::<i64, _>("n")
        )
    })
    .collect();
    eprintln!("refused by IYS (expected: H178 for a change older than a citizen's): {refusals:?}");
    let o1 = w.store.outbox_counts(ONE).await.unwrap();
    let o2 = w.store.outbox_counts(TWO).await.unwrap();
    eprintln!(
        "{} keys where IYS has a same-second ONAY after a RET, flagged as ties by the hub (RET kept){}",
        flagged_ties.len(),
        flagged_ties
            .first()
            .map(|t| format!(", e.g. {t}"))
            .unwrap_or_default()
    );
    eprintln!(
        "samples: {} ({} in sync mode: {} with rows in flight, {} with held rows; {} in integrator mode; {} with a held row of a known consent); {chain_checks} chain checks, slowest {chain_ms} ms",
        samples.taken,
        samples.sync_seen,
        samples.sync_in_flight,
        samples.sync_held,
        samples.integrator_seen,
        samples.held_but_known,
    );
    eprintln!(
        "settled {:.1} s after the load stopped; outbox one {o1:?}, two {o2:?}; IYS movements {}, single adds {}, bulk requests {}, pulled events {pulled}; {:.1} s in all",
        settled_in.as_secs_f64(),
        stats["movements"],
        ok_calls("add_v2"),
        ok_calls("bulk_v2"),
        started.elapsed().as_secs_f64()
    );
    db.close().await;
    other.close().await;
    w.store.close().await;
    if failures.is_empty() {
        hub_store::testkit::drop_postgres(&admin, &name).await;
    } else {
        eprintln!("database {name} kept for a look");
    }
    assert!(
        failures.is_empty(),
        "seed {seed}: {} invariant(s) broken:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
