//! The daily reconciler against the simulator over real HTTP: IYS's movement file of a day is
//! downloaded, verified, compared with the ledger, repaired, and the day confirmed only when
//! both sides agree.
//!
//! Each test sets IYS's clock to 10:00 (Istanbul) on a day D, makes that day's movements on both
//! sides, then moves IYS's clock a day on, so D is over and its file is served.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use hub_core::{Change, IysState, Mode, Origin};
use hub_engines::{EngineConfig, Engines, ReconcileConfig};
use hub_store::{
    DayStatus, DriftAction, DriftKind, EngineStore, ReconcileStore, Settlement, Store,
};
use iys::wire::Movement;
use iys::{ConsentDate, ConsentStatus, ConsentType, IysSource, RecipientType, Source};
use iys_client::IysClient;
use iys_sim::{Profile, SimConfig};
use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::{Value, json};

use common::*;

fn cd(s: &str) -> ConsentDate {
    ConsentDate::parse(s).unwrap()
}

/// The day the test plays on (today in Istanbul) and IYS's clock set to 10:00 that day.
async fn day_d(w: &World) -> Date {
    let d = ConsentDate::from_timestamp(Timestamp::now()).civil().date();
    w.control(
        reqwest::Method::POST,
        "/_sim/clock/set",
        json!({"now": format!("{d} 10:00:00")}),
    )
    .await;
    d
}

/// Moves IYS's clock a day on: D is over and its file is served.
async fn next_day(w: &World) {
    w.control(
        reqwest::Method::POST,
        "/_sim/clock/advance",
        json!({"seconds": 86_400}),
    )
    .await;
}

fn reconcile_config() -> ReconcileConfig {
    ReconcileConfig {
        grace: std::time::Duration::ZERO,
        retry_after: std::time::Duration::ZERO,
        check_every: std::time::Duration::ZERO,
        lease: std::time::Duration::from_secs(2),
        ..ReconcileConfig::default()
    }
}

/// Engines on IYS's clock, allowed to reach the simulator and `also` (a proxy).
fn engines(w: &World, also: Option<&str>) -> Arc<Engines> {
    let sim_url = w.sim.base_url();
    let mut config = EngineConfig {
        clock: Arc::new(SimTime(w.sim.sim.clone())),
        ..engine_config(&sim_url)
    };
    config.iys.allowed_urls.extend(also.map(str::to_owned));
    Arc::new(Engines::new(w.store.clone(), config).with_reconcile(reconcile_config()))
}

async fn client(e: &Engines, w: &World) -> IysClient {
    e.client(&w.brand().await).await.unwrap()
}

fn phone(n: u64) -> String {
    format!("+90532{n:07}")
}

/// A hub change on SMS, received at its consentDate (IYS's clock runs ahead of or behind real
/// time here; the outbox takes rows due from their receipt).
fn hub_change(n: u64, status: ConsentStatus, date: &str) -> Change {
    let mut c = change(n, status, cd(date));
    c.received_at = cd(date).to_timestamp();
    c
}

/// Sends every due change now, until the outbox has nothing pending.
async fn deliver(e: &Engines, w: &World) {
    let brand = w.brand().await;
    let c = client(e, w).await;
    for _ in 0..50 {
        e.dispatch(&brand, &c).await.unwrap();
        if !w.outbox().await.contains_key("pending") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("not delivered: {:?}", w.outbox().await);
}

async fn citizen(w: &World, n: u64, status: &str, source: &str) -> Value {
    w.control(
        reqwest::Method::POST,
        "/_sim/citizen",
        json!({"brandCode": 600123, "recipient": phone(n), "type": "MESAJ", "status": status, "source": source}),
    )
    .await
}

/// A delivery the hub believes IYS accepted, which IYS never recorded (IYS lost it, or a
/// delivery was settled wrongly): claimed and settled by hand, never sent.
async fn phantom_delivery(w: &World, n: u64, date: &str, created: &str) {
    let brand = w.brand().await;
    w.store
        .apply(&brand, vec![hub_change(n, ConsentStatus::Onay, date)], None)
        .await
        .unwrap();
    let now = cd(created).to_timestamp();
    let items = w
        .store
        .claim_pending(BRAND, "test", now, 60_000, 100)
        .await
        .unwrap();
    let item = items
        .into_iter()
        .find(|i| i.recipient == phone(n))
        .expect("the change is pending");
    w.store
        .settle(
            BRAND,
            "test",
            vec![(
                item,
                Settlement::Delivered {
                    transaction_id: format!("{n:064x}"),
                    creation_date: Some(cd(created)),
                },
            )],
            now,
        )
        .await
        .unwrap();
}

/// A movement from IYS, as a push would bring it.
fn from_iys(n: u64, status: ConsentStatus, tx: &str, created: &str, source: IysSource) -> Change {
    let m = Movement {
        consent_date: Some(cd(created)),
        creation_date: cd(created),
        source: Source::Iys(source),
        recipient: phone(n),
        recipient_type: RecipientType::Bireysel,
        status,
        consent_type: ConsentType::Mesaj,
        transaction_id: tx.to_owned(),
        citizen_name: None,
    };
    Change::from_iys(BRAND, &m, Origin::IysPush, cd(created).to_timestamp())
}

/// Runs the engines' daily step until it finds nothing due (at most `max` days), oldest day
/// first; returns how many days ran.
async fn run_due(e: &Engines, w: &World, c: &IysClient, max: usize) -> usize {
    let brand = w.brand().await;
    for n in 0..max {
        if !e.reconcile_due(&brand, c).await.unwrap() {
            return n;
        }
    }
    max
}

async fn iys_agreed(c: &IysClient, d: Date) -> bool {
    c.agreement(BRAND.0, d)
        .await
        .unwrap()
        .is_some_and(|a| a.agreement_status)
}

async fn events(w: &World, n: u64) -> Vec<hub_store::Event> {
    w.store.history(BRAND, &phone(n), 100).await.unwrap()
}

fn world() -> impl Future<Output = World> {
    World::start(
        SimConfig::for_profile(Profile::Fast),
        Mode::Integrator,
        None,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_in_both_directions_is_repaired_and_the_day_is_then_agreed() {
    let w = world().await;
    let e = engines(&w, None);
    let d = day_d(&w).await;
    let brand = w.brand().await;
    // Delivered normally: in both.
    w.store
        .apply(
            &brand,
            vec![
                hub_change(1, ConsentStatus::Onay, &format!("{d} 09:00:00")),
                hub_change(2, ConsentStatus::Onay, &format!("{d} 09:00:00")),
            ],
            None,
        )
        .await
        .unwrap();
    deliver(&e, &w).await;
    // Movements the hub missed while down (no pull runs here): a citizen's first ONAY, and a
    // citizen's RET of a consent the hub delivered.
    citizen(&w, 3, "ONAY", "IYS_WEB").await;
    citizen(&w, 1, "RET", "IYS_MOBIL").await;
    // A delivery IYS never recorded.
    phantom_delivery(&w, 4, &format!("{d} 09:30:00"), &format!("{d} 10:00:30")).await;
    next_day(&w).await;
    let c = client(&e, &w).await;

    let first = e.reconcile_day(&brand, d, false).await.unwrap();
    assert_eq!(first.status, DayStatus::Drift, "{first:#?}");
    assert_eq!(
        (
            first.missing_in_hub,
            first.missing_in_iys,
            first.mismatched,
            first.applied,
            first.requeued
        ),
        (2, 1, 0, 2, 1),
        "{first:#?}"
    );
    // Left: the requeued delivery, on its way; nothing for a person.
    assert_eq!((first.remaining, first.needs_person), (1, 0), "{first:#?}");
    assert!(first.hash.as_deref().is_some_and(|h| h.len() == 96));
    assert!(
        !iys_agreed(&c, d).await,
        "a day with open drift is not confirmed"
    );
    let requeued = first
        .examples
        .iter()
        .find(|x| x.kind == DriftKind::MissingInIys)
        .unwrap();
    assert_eq!(
        (requeued.action, requeued.recipient.as_deref()),
        (DriftAction::Requeued, Some(phone(4).as_str()))
    );
    // IYS's movements are in the ledger as IYS's truth: the citizen's RET wins, nothing goes back.
    let s1 = w.state_of(&phone(1)).await.unwrap();
    assert_eq!(
        (s1.status, s1.iys_state),
        (ConsentStatus::Ret, IysState::InIys)
    );
    assert!(
        events(&w, 3)
            .await
            .iter()
            .any(|ev| ev.origin == Origin::Reconcile)
    );
    assert_eq!(
        w.outbox().await.get("pending"),
        Some(&1),
        "only the requeued row"
    );

    // The requeued delivery reaches IYS (today: it leaves D's file for good), then D agrees.
    deliver(&e, &w).await;
    let second = e.reconcile_day(&brand, d, false).await.unwrap();
    assert_eq!(second.status, DayStatus::Agreed, "{second:#?}");
    assert_eq!((second.remaining, second.matched), (0, 4), "{second:#?}");
    assert_eq!(
        (second.applied, second.requeued, second.attempts),
        (2, 1, 2)
    );
    assert!(
        !second.examples.is_empty(),
        "the repaired differences stay visible"
    );
    assert!(iys_agreed(&c, d).await);
    assert_eq!(
        w.store.reconcile_day(BRAND, d).await.unwrap().unwrap(),
        second,
        "the result is stored"
    );
    // Five movements at IYS: two deliveries, two citizen actions, one redelivery. Nothing echoed.
    assert_eq!(w.stats().await["movements"], 5);
    assert!(w.store.verify_chain(BRAND).await.unwrap().valid);
    let figures = w.store.reconcile_figures(BRAND, d).await.unwrap();
    assert_eq!(
        (figures.last_agreed_day, figures.days_with_drift),
        (Some(d), 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_second_movements_sharing_a_transaction_id_are_compared_row_by_row() {
    let w = world().await;
    let e = engines(&w, None);
    let d = day_d(&w).await;
    let brand = w.brand().await;
    let c = client(&e, &w).await;
    w.control(reqwest::Method::POST, "/_sim/clock/freeze", json!({}))
        .await;
    // Second S: the hub delivers an ONAY for 1; the citizen writes ONAY then RET for 2, which
    // IYS pushes to the hub; then the citizen's RET for 1, whose push never arrives.
    w.store
        .apply(
            &brand,
            vec![hub_change(1, ConsentStatus::Onay, &format!("{d} 09:00:00"))],
            None,
        )
        .await
        .unwrap();
    e.dispatch(&brand, &c).await.unwrap();
    assert_eq!(w.outbox().await.get("done"), Some(&1));
    let mut pushed = Vec::new();
    for (status, source) in [("ONAY", "IYS_WEB"), ("RET", "IYS_MOBIL")] {
        let v = citizen(&w, 2, status, source).await;
        let m: Movement = serde_json::from_value(v["movements"][0].clone()).unwrap();
        pushed.push(Change::from_iys(
            BRAND,
            &m,
            Origin::IysPush,
            Timestamp::now(),
        ));
    }
    let applied = w.store.apply(&brand, pushed, None).await.unwrap();
    assert!(applied.iter().all(|a| a.event_id.is_some()));
    citizen(&w, 1, "RET", "IYS_MOBIL").await;
    w.control(reqwest::Method::POST, "/_sim/clock/unfreeze", json!({}))
        .await;
    next_day(&w).await;

    // The premise: IYS's file lists two rows per consent, each pair with one transactionId.
    let file = c.daily_file(BRAND.0, d).await.unwrap().unwrap();
    let rows: Vec<Vec<&str>> = file.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4, "{file}");
    for n in [1, 2] {
        let tx: Vec<&str> = rows
            .iter()
            .filter(|r| r[2] == phone(n))
            .map(|r| r[1])
            .collect();
        assert_eq!(tx.len(), 2);
        assert_eq!(tx[0], tx[1], "one transactionId for the second's movements");
    }

    let r = e.reconcile_day(&brand, d, false).await.unwrap();
    // The hub had 1's ONAY (delivered) and both of 2's: only 1's RET was missing, though its
    // transactionId was known.
    assert_eq!(
        (r.missing_in_hub, r.missing_in_iys, r.mismatched, r.applied),
        (1, 0, 0, 1),
        "{r:#?}"
    );
    let missing = &r.examples[0];
    assert_eq!(
        (missing.recipient.as_deref(), missing.status.as_deref()),
        (Some(phone(1).as_str()), Some("RET"))
    );
    assert_eq!((r.status, r.matched, r.iys_rows), (DayStatus::Agreed, 4, 4));
    assert!(iys_agreed(&c, d).await);
    assert_eq!(
        w.state_of(&phone(1)).await.unwrap().status,
        ConsentStatus::Ret
    );
    // 2's movements were not recorded a second time.
    assert_eq!(events(&w, 2).await.len(), 2);
    // Run again by hand: still in agreement, nothing more applied.
    let again = e.reconcile_day(&brand, d, true).await.unwrap();
    assert_eq!(
        (again.status, again.missing_in_hub, again.remaining),
        (DayStatus::Consistent, 0, 0)
    );
    assert_eq!(events(&w, 1).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_with_drift_no_one_can_repair_automatically_is_never_agreed() {
    let w = world().await;
    let e = engines(&w, None);
    let d = day_d(&w).await;
    let brand = w.brand().await;
    let c = client(&e, &w).await;
    w.store
        .apply(
            &brand,
            vec![hub_change(6, ConsentStatus::Onay, &format!("{d} 09:00:00"))],
            None,
        )
        .await
        .unwrap();
    deliver(&e, &w).await;
    let tx6 = events(&w, 6).await[0]
        .delivered_transaction_id
        .clone()
        .unwrap();
    let created = format!("{d} 10:00:05");
    // A movement "from IYS" that IYS's file does not have (a forged or garbled push), and one
    // with the transactionId of 6's real movement but another status.
    w.store
        .apply(
            &brand,
            vec![
                from_iys(
                    5,
                    ConsentStatus::Onay,
                    &"5".repeat(64),
                    &created,
                    IysSource::Web,
                ),
                from_iys(6, ConsentStatus::Ret, &tx6, &created, IysSource::Mobil),
            ],
            None,
        )
        .await
        .unwrap();
    next_day(&w).await;

    let before = w.stats().await["movements"].clone();
    for attempt in 1..=2 {
        let r = e.reconcile_day(&brand, d, false).await.unwrap();
        assert_eq!(r.status, DayStatus::Drift, "{r:#?}");
        assert_eq!(
            (r.missing_in_iys, r.mismatched, r.remaining, r.needs_person),
            (1, 1, 2, 2),
            "{r:#?}"
        );
        assert_eq!((r.applied, r.requeued, r.attempts), (0, 0, attempt));
        assert!(
            r.examples
                .iter()
                .all(|x| x.action == DriftAction::NeedsPerson && x.reason.is_some())
        );
        assert!(!iys_agreed(&c, d).await);
    }
    // The engines' daily step tries again (retry_after is 0 here) and still does not confirm:
    // the six empty days of IYS's window first, then D.
    assert_eq!(run_due(&e, &w, &c, 7).await, 7);
    let stored = w.store.reconcile_day(BRAND, d).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.attempts), (DayStatus::Drift, 3));
    assert!(!iys_agreed(&c, d).await);
    assert_eq!(w.stats().await["movements"], before, "nothing sent to IYS");
    let figures = w.store.reconcile_figures(BRAND, d).await.unwrap();
    assert_eq!(
        (figures.last_agreed_day, figures.days_with_drift),
        (None, 1)
    );
}

// ---------------------------------------------------------------------------------------------
// A man in the middle: forwards every request to the simulator, and on demand tampers with the
// daily movement file or holds the first confirmation of a day (as if the instance died there).

#[derive(Debug)]
struct Proxy {
    target: String,
    http: reqwest::Client,
    tamper: AtomicBool,
    hold_confirm: AtomicBool,
    held: tokio::sync::Notify,
    log: Mutex<Vec<String>>,
}

impl Proxy {
    async fn start(target: String) -> (Arc<Proxy>, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let proxy = Arc::new(Proxy {
            target,
            http: reqwest::Client::new(),
            tamper: AtomicBool::new(false),
            hold_confirm: AtomicBool::new(false),
            held: tokio::sync::Notify::new(),
            log: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(proxy.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (proxy, url)
    }

    fn requests(&self, what: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(what))
            .count()
    }
}

async fn forward(State(p): State<Arc<Proxy>>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |x| x.as_str())
        .to_owned();
    p.log
        .lock()
        .unwrap()
        .push(format!("{} {}", parts.method, parts.uri.path()));
    if parts.method == reqwest::Method::PUT
        && path.contains("/agreements/")
        && p.hold_confirm.swap(false, Ordering::SeqCst)
    {
        p.held.notify_one();
        std::future::pending::<()>().await;
    }
    let mut out = p
        .http
        .request(parts.method.clone(), format!("{}{path}", p.target));
    for (k, v) in &parts.headers {
        if k != reqwest::header::HOST && k != reqwest::header::CONTENT_LENGTH {
            out = out.header(k, v);
        }
    }
    let answer = out.body(body).send().await.unwrap();
    let status = answer.status();
    let headers = answer.headers().clone();
    let mut bytes = answer.bytes().await.unwrap().to_vec();
    if p.tamper.load(Ordering::SeqCst) && parts.uri.path().ends_with("/file") {
        // A withdrawal shown as a consent.
        let text = String::from_utf8(bytes)
            .unwrap()
            .replacen(",RET,", ",ONAY,", 1);
        bytes = text.into_bytes();
    }
    let mut resp = (status, bytes).into_response();
    for (k, v) in &headers {
        if k != reqwest::header::CONTENT_LENGTH && k != reqwest::header::TRANSFER_ENCODING {
            resp.headers_mut().insert(k, v.clone());
        }
    }
    resp
}

/// Points the brand at `url`.
async fn connect_to(w: &World, url: &str) {
    let mut iys = w.brand().await.iys;
    iys.base_url = Some(url.to_owned());
    w.store
        .update_brand(
            BRAND,
            hub_store::BrandPatch {
                iys: Some(iys),
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_does_not_match_iys_hash_is_refused_and_nothing_is_acted_on() {
    let w = world().await;
    let (proxy, url) = Proxy::start(w.sim.base_url()).await;
    connect_to(&w, &url).await;
    let e = engines(&w, Some(&url));
    let d = day_d(&w).await;
    citizen(&w, 7, "ONAY", "IYS_WEB").await;
    citizen(&w, 7, "RET", "IYS_MOBIL").await;
    next_day(&w).await;
    let brand = w.brand().await;
    let c = client(&e, &w).await;

    proxy.tamper.store(true, Ordering::SeqCst);
    let r = e.reconcile_day(&brand, d, false).await.unwrap();
    assert_eq!(r.status, DayStatus::HashMismatch, "{r:#?}");
    assert!(r.error.as_deref().unwrap().contains("refused"), "{r:#?}");
    assert_eq!((r.applied, r.requeued, r.matched, r.iys_rows), (0, 0, 0, 0));
    assert!(
        events(&w, 7).await.is_empty(),
        "nothing from a refused file"
    );
    assert!(w.state_of(&phone(7)).await.is_none());
    assert!(!iys_agreed(&c, d).await);
    assert_eq!(proxy.requests("PUT"), 0, "never confirmed");
    let figures = w.store.reconcile_figures(BRAND, d).await.unwrap();
    assert_eq!(figures.days_with_drift, 1);

    // Not final: once the file arrives intact, the day is repaired and agreed.
    proxy.tamper.store(false, Ordering::SeqCst);
    assert_eq!(
        run_due(&e, &w, &c, 20).await,
        7,
        "D and IYS's six other days"
    );
    let r = w.store.reconcile_day(BRAND, d).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.applied, r.attempts),
        (DayStatus::Agreed, 2, 2),
        "{r:#?}"
    );
    assert_eq!(
        w.state_of(&phone(7)).await.unwrap().status,
        ConsentStatus::Ret
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_resumes_after_a_restart_in_the_middle_of_a_day() {
    let w = world().await;
    let (proxy, url) = Proxy::start(w.sim.base_url()).await;
    connect_to(&w, &url).await;
    let d = day_d(&w).await;
    citizen(&w, 8, "ONAY", "IYS_WEB").await;
    citizen(&w, 9, "ONAY", "IYS_WEB").await;
    next_day(&w).await;
    let brand = w.brand().await;

    // Instance A repairs the day, and dies while confirming it: its lease is left behind and
    // its result never stored.
    let a = engines(&w, Some(&url));
    proxy.hold_confirm.store(true, Ordering::SeqCst);
    let run = tokio::spawn({
        let (a, brand) = (a.clone(), brand.clone());
        async move { a.reconcile_day(&brand, d, false).await }
    });
    tokio::time::timeout(std::time::Duration::from_secs(20), proxy.held.notified())
        .await
        .expect("instance A reached the confirmation");
    run.abort();
    let _ = run.await;
    drop(a);
    assert_eq!(events(&w, 8).await.len(), 1, "A's repair was committed");
    let left = w.store.reconcile_day(BRAND, d).await.unwrap().unwrap();
    assert_eq!(
        left.status,
        DayStatus::Pending,
        "A's result was never stored"
    );

    // Instance B starts on the same database. D is still leased to A at first: B does the
    // other days of IYS's window and leaves D.
    let b = engines(&w, Some(&url));
    let c = client(&b, &w).await;
    assert!(!iys_agreed(&c, d).await);
    assert_eq!(run_due(&b, &w, &c, 20).await, 6, "A's lease on D holds");
    assert_eq!(
        w.store
            .reconcile_day(BRAND, d)
            .await
            .unwrap()
            .unwrap()
            .status,
        DayStatus::Pending
    );
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    assert_eq!(run_due(&b, &w, &c, 20).await, 1);
    let r = w.store.reconcile_day(BRAND, d).await.unwrap().unwrap();
    assert_eq!(r.status, DayStatus::Agreed, "{r:#?}");
    assert_eq!(
        (r.missing_in_hub, r.applied, r.matched),
        (0, 0, 2),
        "{r:#?}"
    );
    assert!(iys_agreed(&c, d).await);
    // Nothing recorded twice.
    for n in [8, 9] {
        assert_eq!(events(&w, n).await.len(), 1);
    }
    assert!(w.store.verify_chain(BRAND).await.unwrap().valid);

    // An agreed day is not fetched again, by B or by a further restart.
    let files = proxy.requests("/file");
    assert!(!b.reconcile_due(&brand, &c).await.unwrap());
    let again = engines(&w, Some(&url));
    assert!(!again.reconcile_due(&brand, &c).await.unwrap());
    assert_eq!(proxy.requests("/file"), files);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_loop_reconciles_past_days_by_itself() {
    let w = world().await;
    let e = engines(&w, None);
    let d = day_d(&w).await;
    citizen(&w, 10, "ONAY", "IYS_WEB").await;
    next_day(&w).await;
    let cancel = run(&e);
    w.until(30, "D agreed by the engines", || async {
        w.store
            .reconcile_day(BRAND, d)
            .await
            .unwrap()
            .is_some_and(|r| r.status == DayStatus::Agreed)
    })
    .await;
    cancel.cancel();
    // The other days of IYS's window had no movement on either side.
    let days = w
        .store
        .reconcile_days(BRAND, d.checked_sub(jiff::Span::new().days(7)).unwrap(), d)
        .await
        .unwrap();
    assert_eq!(days.len(), 7, "{days:#?}");
    assert!(
        days.iter()
            .filter(|r| r.date != d)
            .all(|r| r.status == DayStatus::Empty)
    );
    let c = client(&e, &w).await;
    assert!(iys_agreed(&c, d).await);
    // The movement came through the pull or the reconciler, once.
    assert_eq!(events(&w, 10).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciles_on_postgres_too() {
    let Some(admin) = hub_store::testkit::admin_url_or_skip("reconciliation on PostgreSQL") else {
        return;
    };
    let (url, name) = hub_store::testkit::fresh_postgres(&admin, "iyshub_reconcile").await;
    {
        let w = World::start(
            SimConfig::for_profile(Profile::Fast),
            Mode::Integrator,
            Some(url),
        )
        .await;
        let e = engines(&w, None);
        let d = day_d(&w).await;
        citizen(&w, 11, "ONAY", "IYS_WEB").await;
        phantom_delivery(&w, 12, &format!("{d} 09:30:00"), &format!("{d} 10:00:30")).await;
        next_day(&w).await;
        let brand = w.brand().await;
        let r = e.reconcile_day(&brand, d, false).await.unwrap();
        assert_eq!(
            (r.status, r.applied, r.requeued, r.remaining),
            (DayStatus::Drift, 1, 1, 1),
            "{r:#?}"
        );
        deliver(&e, &w).await;
        let r = e.reconcile_day(&brand, d, false).await.unwrap();
        assert_eq!(r.status, DayStatus::Agreed, "{r:#?}");
        w.store.close().await;
    }
    hub_store::testkit::drop_postgres(&admin, &name).await;
}

/// Runs one statement on the world's SQLite file, as a person editing the table by hand would.
async fn by_hand(w: &World, sql: &str, binds: &[&str]) -> u64 {
    use sqlx::Connection;
    let dir = w._dir.as_ref().expect("a SQLite world");
    let url = hub_store::SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    for b in binds {
        q = q.bind(b.to_string());
    }
    q.execute(&mut conn).await.unwrap().rows_affected()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_history_event_is_left_out_and_the_rest_of_the_day_is_repaired() {
    let w = world().await;
    let e = engines(&w, None);
    let d = day_d(&w).await;
    let brand = w.brand().await;
    let at = format!("{d} 09:00:00");
    w.store
        .apply(
            &brand,
            vec![
                hub_change(21, ConsentStatus::Onay, &at),
                hub_change(22, ConsentStatus::Onay, &at),
            ],
            None,
        )
        .await
        .unwrap();
    deliver(&e, &w).await;
    // The hub missed a citizen's RET of 22 and a citizen's first ONAY of 23.
    citizen(&w, 22, "RET", "IYS_MOBIL").await;
    citizen(&w, 23, "ONAY", "IYS_WEB").await;
    // 21's delivered event is edited by hand into a value that cannot be read.
    let broken = "UPDATE consent_event SET consent_date = $1 WHERE recipient = $2 \
                  AND delivered_transaction_id IS NOT NULL";
    assert_eq!(by_hand(&w, broken, &["not a date", &phone(21)]).await, 1);
    next_day(&w).await;
    let c = client(&e, &w).await;

    // The rest of the day is compared and repaired: the citizen's RET wins.
    let r = e.reconcile_day(&brand, d, false).await.unwrap();
    assert_eq!(r.status, DayStatus::Drift, "{r:#?}");
    assert_eq!((r.applied, r.unreadable), (2, 1), "{r:#?}");
    let s22 = w.state_of(&phone(22)).await.unwrap();
    assert_eq!(s22.status, ConsentStatus::Ret);
    assert!(w.state_of(&phone(23)).await.is_some());
    // The unreadable event is listed with what is wrong; IYS's row of that transaction is left
    // for a person, not recorded a second time.
    let item = r
        .examples
        .iter()
        .find(|x| x.kind == DriftKind::Unreadable)
        .unwrap();
    assert_eq!(item.recipient.as_deref(), Some(phone(21).as_str()));
    assert!(item.event_id.is_some());
    assert!(
        item.reason.as_deref().unwrap().contains("not a date"),
        "{item:#?}"
    );
    let held = r
        .examples
        .iter()
        .find(|x| x.kind == DriftKind::MissingInHub && x.recipient.as_deref() == Some(&phone(21)))
        .unwrap();
    assert_eq!(held.action, DriftAction::NeedsPerson, "{held:#?}");
    assert!(
        !iys_agreed(&c, d).await,
        "never confirmed with a row unread"
    );

    // Mended, the day agrees.
    let mended = "UPDATE consent_event SET consent_date = $1 WHERE recipient = $2 \
                  AND delivered_transaction_id IS NOT NULL";
    assert_eq!(by_hand(&w, mended, &[&at, &phone(21)]).await, 1);
    let r = e.reconcile_day(&brand, d, false).await.unwrap();
    assert_eq!(r.status, DayStatus::Agreed, "{r:#?}");
    assert_eq!((r.unreadable, r.remaining), (0, 0), "{r:#?}");
    assert_eq!(
        events(&w, 21).await.len(),
        1,
        "IYS's row of the unreadable event was never recorded again"
    );
}
