//! End to end: the hub's store and engines against the IYS simulator over real HTTP.

mod common;

use std::sync::Arc;
use std::time::Duration;

use hub_core::{BrandCode, Change, IysState, Mode, Origin, Outcome};
use hub_engines::Engines;
use hub_store::{EngineStore, IysConnection, NewBrand, OutboxState, SqlStore, Store};
use iys::{ConsentDate, ConsentStatus, ConsentType, RecipientType};
use iys_sim::{Profile, SimConfig};
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrator_delivers_5000_changes_and_iys_equals_the_hub() {
    let w = World::start(
        SimConfig::for_profile(Profile::Fast),
        Mode::Integrator,
        None,
    )
    .await;
    let date = now_date();
    let brand = w.brand().await;
    for chunk in 0..5u64 {
        let changes: Vec<Change> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|n| change(n, ConsentStatus::Onay, date))
            .collect();
        w.store.apply(&brand, changes, None).await.unwrap();
    }
    let cancel = run(&w.engines());
    w.until(120, "all 5000 delivered", || async {
        w.outbox().await.get("done") == Some(&5000)
    })
    .await;
    cancel.cancel();
    let iys = w.iys_state().await;
    assert_eq!(iys.len(), 5000);
    for n in [0u64, 1234, 4999] {
        let r = format!("+90532{n:07}");
        let s = w.state_of(&r).await.unwrap();
        assert_eq!(
            (s.status, s.iys_state, s.iys_known),
            (ConsentStatus::Onay, IysState::InIys, true)
        );
        assert_eq!(
            iys.get(&format!("{r}/MESAJ")).map(String::as_str),
            Some("ONAY")
        );
    }
    let stats = w.stats().await;
    assert_eq!(stats["movements"], 5000, "{stats}");
    assert_eq!(stats["duplicateMovements"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_ret_reaches_the_hub_within_a_pull_and_is_never_sent_back() {
    let w = World::start(
        SimConfig::for_profile(Profile::Fast),
        Mode::Integrator,
        None,
    )
    .await;
    let brand = w.brand().await;
    w.store
        .apply(
            &brand,
            vec![change(1, ConsentStatus::Onay, now_date())],
            None,
        )
        .await
        .unwrap();
    let cancel = run(&w.engines());
    w.until(20, "ONAY delivered", || async {
        w.state_of("+905320000001")
            .await
            .is_some_and(|s| s.iys_state == IysState::InIys)
    })
    .await;
    w.control(reqwest::Method::POST, "/_sim/citizen", json!({"brandCode": 600123, "recipient": "+905320000001", "type": "MESAJ", "status": "RET", "source": "IYS_KISAMESAJ"})).await;
    w.until(10, "citizen RET pulled", || async {
        w.state_of("+905320000001")
            .await
            .is_some_and(|s| s.status == ConsentStatus::Ret)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    cancel.cancel();
    let s = w.state_of("+905320000001").await.unwrap();
    assert_eq!(
        (s.iys_state, s.source.as_str()),
        (IysState::InIys, "IYS_KISAMESAJ")
    );
    let stats = w.stats().await;
    assert_eq!(
        stats["movements"], 2,
        "the RET was not echoed back: {stats}"
    );
    assert_eq!(w.outbox().await.get("pending"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_mode_holds_unknown_recipients_and_switching_releases_them() {
    let w = World::start(SimConfig::for_profile(Profile::Fast), Mode::Sync, None).await;
    let cancel = run(&w.engines());
    // IYS knows recipient 2: a citizen refused there first.
    w.control(reqwest::Method::POST, "/_sim/citizen", json!({"brandCode": 600123, "recipient": "+905320000002", "type": "MESAJ", "status": "RET", "source": "IYS_WEB"})).await;
    w.until(10, "citizen RET pulled", || async {
        w.state_of("+905320000002")
            .await
            .is_some_and(|s| s.iys_known)
    })
    .await;
    // The ONAY below must be later than the citizen's RET (a new second): neither older nor a tie.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let brand = w.brand().await;
    w.store
        .apply(
            &brand,
            vec![
                change(
                    2,
                    ConsentStatus::Onay,
                    ConsentDate::from_timestamp(Timestamp::now()),
                ),
                change(3, ConsentStatus::Onay, now_date()),
            ],
            None,
        )
        .await
        .unwrap();
    w.until(10, "known recipient sent", || async {
        w.state_of("+905320000002")
            .await
            .is_some_and(|s| s.iys_state == IysState::InIys && s.status == ConsentStatus::Onay)
    })
    .await;
    let unknown = w.state_of("+905320000003").await.unwrap();
    assert_eq!(
        unknown.iys_state,
        IysState::Held,
        "sync mode never creates IYS records"
    );
    assert_eq!(w.outbox().await.get("held"), Some(&1));
    // Switch to integrator: the held change is released and sent.
    w.store
        .switch_mode(BRAND, Mode::Integrator, "e2e")
        .await
        .unwrap();
    w.until(10, "released change sent", || async {
        w.state_of("+905320000003")
            .await
            .is_some_and(|s| s.iys_state == IysState::InIys)
    })
    .await;
    // Back to sync: a new unknown recipient is held again.
    w.store.switch_mode(BRAND, Mode::Sync, "e2e").await.unwrap();
    let brand = w.brand().await;
    w.store
        .apply(
            &brand,
            vec![change(4, ConsentStatus::Onay, now_date())],
            None,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    cancel.cancel();
    assert_eq!(
        w.state_of("+905320000004").await.unwrap().iys_state,
        IysState::Held
    );
    let iys = w.iys_state().await;
    assert_eq!(
        iys.get("+905320000003/MESAJ").map(String::as_str),
        Some("ONAY")
    );
    assert!(!iys.contains_key("+905320000004/MESAJ"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_500s_429_storms_and_an_outage_everything_lands_once() {
    let mut cfg = SimConfig::for_profile(Profile::Fast);
    cfg.limits.enabled = true;
    cfg.limits.requests_per_second = 200;
    cfg.limits.token_per_hour = 1000;
    cfg.seed = Some(7);
    let w = World::start(cfg, Mode::Integrator, None).await;
    let brand = w.brand().await;
    let date = now_date();
    let changes: Vec<Change> = (0..600)
        .map(|n| change(n, ConsentStatus::Onay, date))
        .collect();
    w.store.apply(&brand, changes, None).await.unwrap();
    // A full outage first, then 30 % 500s and 429 storms with lost answers.
    w.control(
        reqwest::Method::PUT,
        "/_sim/faults",
        json!({"*": {"errorRate": 1.0, "status": 503, "code": "H192"}}),
    )
    .await;
    let cancel = run(&w.engines());
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        w.stats().await["movements"],
        0,
        "nothing got through the outage"
    );
    w.control(reqwest::Method::DELETE, "/_sim/faults", json!({}))
        .await;
    w.control(
        reqwest::Method::PUT,
        "/_sim/faults",
        json!({
            "add_v2": {"errorRate": 0.3, "status": 500, "code": "H015", "lostAnswerRate": 0.1},
            "bulk_v2": {"errorRate": 0.3, "status": 429, "code": "H124", "lostAnswerRate": 0.1},
            "bulk_result_v2": {"errorRate": 0.3, "status": 500, "code": "H015"}
        }),
    )
    .await;
    let more: Vec<Change> = (600..620)
        .map(|n| change(n, ConsentStatus::Onay, date))
        .collect();
    w.store.apply(&w.brand().await, more, None).await.unwrap();
    w.until(120, "all delivered after the faults", || async {
        w.outbox().await.get("done") == Some(&620)
    })
    .await;
    cancel.cancel();
    let stats = w.stats().await;
    assert_eq!(stats["movements"], 620, "each change exactly once: {stats}");
    assert_eq!(stats["duplicateMovements"], 0);
    assert!(stats["maxRequestsPerSecond"].as_u64().unwrap() <= 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_bulk_submit_and_results_collects_without_resubmitting() {
    let mut cfg = SimConfig::for_profile(Profile::Fast);
    cfg.timing.bulk_delay_ms = 1500;
    let w = World::start(cfg, Mode::Integrator, None).await;
    let brand = w.brand().await;
    let changes: Vec<Change> = (0..300)
        .map(|n| change(n, ConsentStatus::Onay, now_date()))
        .collect();
    w.store.apply(&brand, changes, None).await.unwrap();
    let first = w.engines();
    let sent = first
        .dispatch(&brand, &first.client(&brand).await.unwrap())
        .await
        .unwrap();
    assert_eq!(sent, 300);
    assert_eq!(w.outbox().await.get("awaiting_result"), Some(&300));
    drop(first); // the instance dies before collecting the results
    let second = w.engines();
    let cancel = run(&second);
    w.until(20, "results collected after the restart", || async {
        w.outbox().await.get("done") == Some(&300)
    })
    .await;
    cancel.cancel();
    let stats = w.stats().await;
    assert_eq!(
        stats["requests"]["bulk_v2"]["202"], 1,
        "submitted once: {stats}"
    );
    assert_eq!(stats["movements"], 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_older_than_3_business_days_is_sent_and_h467_is_recorded() {
    let w = World::start(
        SimConfig::for_profile(Profile::Fast),
        Mode::Integrator,
        None,
    )
    .await;
    let brand = w.brand().await;
    let old = ConsentDate::from_timestamp(
        Timestamp::now()
            .saturating_sub(jiff::SignedDuration::from_hours(24 * 10))
            .unwrap(),
    );
    w.store
        .apply(&brand, vec![change(9, ConsentStatus::Onay, old)], None)
        .await
        .unwrap();
    let cancel = run(&w.engines());
    w.until(10, "refused by IYS", || async {
        w.outbox().await.get("failed") == Some(&1)
    })
    .await;
    cancel.cancel();
    let s = w.state_of("+905320000009").await.unwrap();
    assert_eq!(
        (s.iys_state, s.iys_error.as_deref()),
        (IysState::Rejected, Some("H467"))
    );
    let history = w.store.history(BRAND, "+905320000009", 10).await.unwrap();
    assert!(history[0].iys_error.as_deref().unwrap().starts_with("H467"));
    let figures = w.store.sync_figures(BRAND, Timestamp::now()).await.unwrap();
    assert_eq!(figures.errors_last_24h, vec![("H467".to_owned(), 1)]);
    assert!(
        w.store.verify_chain(BRAND).await.unwrap().valid,
        "delivery fields do not break the chain"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_deliver_each_change_exactly_once() {
    let Some(admin) = hub_store::testkit::admin_url_or_skip("two instances on PostgreSQL") else {
        return;
    };
    let (url, name) = hub_store::testkit::fresh_postgres(&admin, "iyshub_e2e").await;
    let w = World::start(
        SimConfig::for_profile(Profile::Fast),
        Mode::Integrator,
        Some(url.clone()),
    )
    .await;
    let brand = w.brand().await;
    let date = now_date();
    for chunk in 0..10u64 {
        let changes: Vec<Change> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|n| change(n, ConsentStatus::Onay, date))
            .collect();
        w.store.apply(&brand, changes, None).await.unwrap();
    }
    // A second instance: its own store connection pool and engines.
    let other = Arc::new(SqlStore::connect(&url).await.unwrap());
    let e1 = w.engines();
    let e2 = Arc::new(Engines::new(other, engine_config(&w.sim.base_url())));
    let (c1, c2) = (run(&e1), run(&e2));
    w.until(180, "10,000 delivered", || async {
        w.outbox().await.get("done") == Some(&10_000)
    })
    .await;
    c1.cancel();
    c2.cancel();
    let stats = w.stats().await;
    assert_eq!(
        stats["movements"], 10_000,
        "each sent exactly once: {stats}"
    );
    assert_eq!(stats["duplicateMovements"], 0);
    hub_store::testkit::drop_postgres(&admin, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_deliveries_mode_switches_and_sync_status_through_the_api() {
    let w = World::start(
        SimConfig::for_profile(Profile::Fast),
        Mode::Integrator,
        None,
    )
    .await;
    hub::bootstrap_admin_key(&*w.store, Some("admin-key"))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let cancel = CancellationToken::new();
    let hub = Arc::new(hub::Hub {
        backfill: Some(Arc::new(hub_engines::Backfills::new(w.engines()))),
        iys: hub_store::IysPolicy {
            allowed_urls: vec![w.sim.base_url()],
            ..Default::default()
        },
        ..hub::Hub::new(w.store.clone())
    });
    tokio::spawn(hub::serve(hub, listener, cancel.clone()));
    let call = |m: reqwest::Method, path: &str, body: Value| {
        w.http
            .request(m, format!("{api}{path}"))
            .bearer_auth("admin-key")
            .json(&body)
            .send()
    };
    // Push credentials for the brand, then register the receiver with IYS (the simulator).
    let r = call(reqwest::Method::PATCH, "/api/v1/brands/600123", json!({"iys": {"baseUrl": w.sim.base_url(), "username": "demo", "pushUsername": "iyspush", "pushPassword": "s3cret"}})).await.unwrap();
    assert_eq!(r.status(), 200);
    let shown: Value = r.json().await.unwrap();
    assert_eq!(
        (
            &shown["iys"]["pushPasswordSet"],
            shown["iys"].get("pushPasswordHash")
        ),
        (&json!(true), None),
        "the hash is not shown"
    );
    let client = w.engines().client(&w.brand().await).await.unwrap();
    let url = format!("{api}/api/v1/iys/push/600123");
    client
        .push_register(
            600_123,
            vec![iys::wire::PushConnection {
                url: url.clone(),
                consent_type: ConsentType::Mesaj,
                username: "iyspush".into(),
                password: "s3cret".into(),
            }],
        )
        .await
        .unwrap();
    // Wrong credentials are refused.
    let bad = w
        .http
        .post(&url)
        .basic_auth("iyspush", Some("wrong"))
        .json(&json!({"list": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    // A citizen's ONAY is pushed and applied (no engines running: it came by push).
    w.control(reqwest::Method::POST, "/_sim/citizen", json!({"brandCode": 600123, "recipient": "+905320000077", "type": "MESAJ", "status": "ONAY", "source": "IYS_WEB_YENI", "citizenName": "Ayşe Yılmaz"})).await;
    w.until(10, "push applied", || async {
        w.state_of("+905320000077")
            .await
            .is_some_and(|s| s.iys_known)
    })
    .await;
    let s = w.state_of("+905320000077").await.unwrap();
    assert_eq!(
        (s.status, s.iys_state),
        (ConsentStatus::Onay, IysState::InIys)
    );
    let history = w.store.history(BRAND, "+905320000077", 10).await.unwrap();
    assert_eq!(history[0].origin, Origin::IysPush);
    // Mode switch through the API: sync holds a new unknown recipient's ONAY.
    let r = call(
        reqwest::Method::PATCH,
        "/api/v1/brands/600123",
        json!({"mode": "sync"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let r = call(reqwest::Method::POST, "/api/v1/brands/600123/consents", json!({"recipient": "+905320000078", "type": "MESAJ", "status": "ONAY", "source": "HS_WEB"})).await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["iysState"], "held", "{v}");
    let sync: Value = call(
        reqwest::Method::GET,
        "/api/v1/brands/600123/sync",
        Value::Null,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(sync["mode"], "sync");
    assert_eq!(sync["outbox"]["held"], 1, "{sync}");
    assert!(sync["oldestPendingDeadline"].is_string());
    // A backfill through the API: IYS has none of the held recipient, so it stays held.
    let r = call(
        reqwest::Method::POST,
        "/api/v1/brands/600123/backfill",
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    w.until(10, "backfill finished", || async {
        let v: Value = call(
            reqwest::Method::GET,
            "/api/v1/brands/600123/backfill",
            Value::Null,
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        v["running"] == false && v["report"]["checked"].as_u64() == Some(2)
    })
    .await;
    assert_eq!(w.outbox().await.get("held"), Some(&1));
    // Switching back releases it.
    call(
        reqwest::Method::PATCH,
        "/api/v1/brands/600123",
        json!({"mode": "integrator"}),
    )
    .await
    .unwrap();
    assert_eq!(w.outbox().await.get("pending"), Some(&1));
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_of_20000_known_recipients_resumes_after_an_interruption() {
    let w = World::start(SimConfig::for_profile(Profile::Fast), Mode::Sync, None).await;
    // IYS has 15,000 of the hub's 20,000 recipients as ONAY.
    w.control(
        reqwest::Method::POST,
        "/_sim/seed",
        json!({"brandCode": 600123, "type": "MESAJ", "count": 15000, "start": 0}),
    )
    .await;
    let brand = w.brand().await;
    let date = now_date();
    for chunk in 0..20u64 {
        let changes: Vec<Change> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|n| change(n, ConsentStatus::Onay, date))
            .collect();
        w.store.apply(&brand, changes, None).await.unwrap();
    }
    assert_eq!(
        w.outbox().await.get("held"),
        Some(&20_000),
        "sync mode: unknown to the hub, so held"
    );
    // A first run is interrupted part-way.
    let engines = w.engines();
    let first = {
        let (e, b) = (engines.clone(), brand.clone());
        tokio::spawn(async move { e.backfill(&b, 50, |_| {}).await })
    };
    w.until(60, "some progress", || async {
        w.store
            .cursor(
                BRAND,
                &hub_core::backfill::cursor_source(ConsentType::Mesaj, RecipientType::Bireysel),
            )
            .await
            .unwrap()
            .is_some()
    })
    .await;
    first.abort();
    let _ = first.await;
    // A new instance resumes from the stored progress.
    let report = w.engines().backfill(&brand, 50, |_| {}).await.unwrap();
    let multi = w.stats().await["requests"]["multi_status"]["200"]
        .as_u64()
        .unwrap();
    assert!(
        (20..=21).contains(&multi),
        "20 pages of 1000, at most one asked twice: {multi}"
    );
    assert!(
        report.checked <= 20_000 && report.checked >= 1000,
        "{report:?}"
    );
    assert_eq!(
        report.single_checked, 50,
        "single status within this run's budget"
    );
    assert!(!report.complete);
    let outbox = w.outbox().await;
    assert_eq!(outbox.get("held"), Some(&5000), "{outbox:?}");
    assert_eq!(
        outbox.get("pending"),
        Some(&15_000),
        "IYS's recipients released"
    );
    assert!(w.state_of("+905320014999").await.unwrap().iys_known);
    assert!(!w.state_of("+905320015000").await.unwrap().iys_known);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h084_stops_token_calls_until_the_halt_ends_also_across_a_restart() {
    let mut cfg = SimConfig::for_profile(Profile::Fast);
    cfg.limits.enabled = true;
    cfg.limits.requests_per_second = 1000;
    cfg.limits.token_per_hour = 2;
    let w = World::start(cfg, Mode::Integrator, None).await;
    let brand = w.brand().await;
    let date = ConsentDate::from_timestamp(
        w.sim
            .sim
            .now()
            .saturating_sub(jiff::SignedDuration::from_secs(5))
            .unwrap(),
    );
    w.store
        .apply(&brand, vec![change(1, ConsentStatus::Onay, date)], None)
        .await
        .unwrap();
    let first = w.engines_on_sim_time();
    let c1 = run(&first);
    w.until(10, "first change delivered", || async {
        w.outbox().await.get("done") == Some(&1)
    })
    .await;
    // IYS revokes every token: the refresh attempt and the password grant exceed IYS's limit of 2.
    w.control(
        reqwest::Method::POST,
        "/_sim/tokens/expire",
        json!({"refreshToo": true}),
    )
    .await;
    w.store
        .apply(&brand, vec![change(2, ConsentStatus::Onay, date)], None)
        .await
        .unwrap();
    w.until(10, "the halt is stored", || async {
        w.store
            .load_token(
                &hub_store::ResolvedConnection {
                    base_url: w.sim.base_url(),
                    username: "demo".into(),
                    password: None,
                    instance_default: false,
                }
                .token_key(),
            )
            .await
            .unwrap()
            .is_some_and(|t| t.contains("halt_until\":\"2"))
    })
    .await;
    let calls = w.stats().await["tokenCalls"].as_u64().unwrap();
    assert_eq!(
        calls, 3,
        "one token, then a refresh and a password grant: the last answered H084"
    );
    // Restart: a new instance reads the halt from the database and makes no token call.
    c1.cancel();
    let second = w.engines_on_sim_time();
    let c2 = run(&second);
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.control(
        reqwest::Method::POST,
        "/_sim/clock/advance",
        json!({"seconds": 1800}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        w.stats().await["tokenCalls"],
        calls,
        "no token call while halted, across the restart"
    );
    assert_eq!(w.outbox().await.get("pending"), Some(&1));
    // The hour passes: the engines resume on their own.
    w.control(
        reqwest::Method::POST,
        "/_sim/clock/advance",
        json!({"seconds": 1860}),
    )
    .await;
    w.until(15, "delivered after the halt", || async {
        w.outbox().await.get("done") == Some(&2)
    })
    .await;
    c2.cancel();
    assert!(w.stats().await["tokenCalls"].as_u64().unwrap() > calls);
}

/// A recipient's current status in the simulator ("ONAY", "RET"), if IYS has one.
async fn iys_status(w: &World, recipient: &str) -> Option<String> {
    w.iys_state().await.remove(&format!("{recipient}/MESAJ"))
}

fn ago(secs: i64) -> ConsentDate {
    ConsentDate::from_timestamp(
        Timestamp::now()
            .saturating_sub(jiff::SignedDuration::from_secs(secs))
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_ret_reaches_iys_for_a_recipient_known_only_to_iys_in_both_modes() {
    for mode in [Mode::Integrator, Mode::Sync] {
        let w = World::start(SimConfig::for_profile(Profile::Fast), mode, None).await;
        // Another system (or the citizen) gave IYS an ONAY the hub never saw.
        w.control(
            reqwest::Method::POST,
            "/_sim/citizen",
            json!({"brandCode": 600123, "recipient": "+905320000001", "type": "MESAJ", "status": "ONAY", "source": "IYS_WEB", "consentDate": ago(120).to_string()}),
        )
        .await;
        let brand = w.brand().await;
        let applied = w
            .store
            .apply(
                &brand,
                vec![
                    change(1, ConsentStatus::Ret, ago(5)),
                    // And a RET for someone IYS never had: IYS answers H175, harmlessly.
                    change(2, ConsentStatus::Ret, ago(5)),
                ],
                None,
            )
            .await
            .unwrap();
        assert!(
            applied
                .iter()
                .all(|a| a.outbox == Some(OutboxState::Pending)),
            "{mode:?}: {applied:?}"
        );
        let cancel = run(&w.engines());
        w.until(20, "the first RET reaches IYS", || async {
            iys_status(&w, "+905320000001").await.as_deref() == Some("RET")
        })
        .await;
        w.until(20, "the H175 answer settles", || async {
            w.state_of("+905320000002")
                .await
                .is_some_and(|s| s.iys_state == IysState::NotInIys)
        })
        .await;
        cancel.cancel();
        let s = w.state_of("+905320000001").await.unwrap();
        assert_eq!(
            (s.status, s.iys_state),
            (ConsentStatus::Ret, IysState::InIys)
        );
        assert_eq!(iys_status(&w, "+905320000002").await, None);
        let outbox = w.outbox().await;
        assert_eq!(outbox.get("done"), Some(&2), "{mode:?}: {outbox:?}");
        assert_eq!(outbox.get("failed"), None, "H175 is not an error");
        let figures = w.store.sync_figures(BRAND, Timestamp::now()).await.unwrap();
        assert!(figures.errors_last_24h.is_empty(), "{figures:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_second_citizen_pairs_and_equal_date_pairs_end_as_ret() {
    let w = World::start(
        SimConfig::for_profile(Profile::Fast),
        Mode::Integrator,
        None,
    )
    .await;
    let cancel = run(&w.engines());
    let citizen = |n: u64, status: &str, date: Option<ConsentDate>| {
        let mut body = json!({"brandCode": 600123, "recipient": format!("+90532{n:07}"), "type": "MESAJ", "status": status, "source": "IYS_MOBIL"});
        if let Some(d) = date {
            body["consentDate"] = json!(d.to_string());
        }
        body
    };
    // Given and withdrawn within a second: IYS gives both movements one transactionId.
    for n in 0..100 {
        let date = ago(1);
        w.control(
            reqwest::Method::POST,
            "/_sim/citizen",
            citizen(n, "ONAY", Some(date)),
        )
        .await;
        w.control(
            reqwest::Method::POST,
            "/_sim/citizen",
            citizen(n, "RET", Some(date)),
        )
        .await;
    }
    // The same consentDate in different seconds: distinct transactionIds, the tie rule.
    let date = ago(30);
    for n in 100..120 {
        w.control(
            reqwest::Method::POST,
            "/_sim/citizen",
            citizen(n, "ONAY", Some(date)),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for n in 100..120 {
        w.control(
            reqwest::Method::POST,
            "/_sim/citizen",
            citizen(n, "RET", Some(date)),
        )
        .await;
    }
    let iys = w.iys_state().await;
    assert_eq!(iys.len(), 120);
    assert!(iys.values().all(|s| s == "RET"));
    w.until(20, "every pair pulled", || async {
        let mut all = true;
        for n in 0..120 {
            all &= w
                .state_of(&format!("+90532{n:07}"))
                .await
                .is_some_and(|s| s.status == ConsentStatus::Ret);
        }
        all
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    cancel.cancel();
    for n in 0..120 {
        let s = w.state_of(&format!("+90532{n:07}")).await.unwrap();
        assert_eq!(
            (s.status, s.iys_state),
            (ConsentStatus::Ret, IysState::InIys),
            "{n}"
        );
        assert!(
            s.conflict,
            "{n}: equal dates, different statuses are flagged"
        );
        let history = w
            .store
            .history(BRAND, &format!("+90532{n:07}"), 10)
            .await
            .unwrap();
        assert_eq!(history.len(), 2, "{n}: both movements are in history");
    }
    // Nothing was echoed back to IYS.
    assert_eq!(w.stats().await["movements"], 240);
    let check = hub_core::check(
        SMS,
        w.state_of("+905320000000")
            .await
            .as_ref()
            .map(hub_core::SendState::from)
            .as_ref(),
        None,
        hub_core::Policy::Lenient,
    );
    assert!(!check.allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_changes_are_resent_when_repeated_and_can_be_requeued() {
    let w = World::start(
        SimConfig::for_profile(Profile::Fast),
        Mode::Integrator,
        None,
    )
    .await;
    // IYS refuses every single add for a while with a permanent code.
    w.control(
        reqwest::Method::PUT,
        "/_sim/faults",
        json!({"add_v2": {"errorRate": 1.0, "status": 422, "code": "H119"}}),
    )
    .await;
    let brand = w.brand().await;
    let changes: Vec<Change> = (0..6)
        .map(|n| change(n, ConsentStatus::Onay, ago(60)))
        .collect();
    w.store.apply(&brand, changes, None).await.unwrap();
    let cancel = run(&w.engines());
    w.until(20, "all refused", || async {
        w.outbox().await.get("failed") == Some(&6)
    })
    .await;
    w.control(reqwest::Method::DELETE, "/_sim/faults", json!({}))
        .await;
    assert_eq!(
        w.state_of("+905320000000").await.unwrap().iys_state,
        IysState::Rejected
    );
    // The same status again is not a no-op after a refusal: it goes again.
    let again = w
        .store
        .apply(&brand, vec![change(0, ConsentStatus::Onay, ago(30))], None)
        .await
        .unwrap();
    assert_eq!(
        (again[0].outcome, again[0].outbox),
        (Outcome::Resent, Some(OutboxState::Pending))
    );
    w.until(20, "the repeated ONAY reaches IYS", || async {
        iys_status(&w, "+905320000000").await.as_deref() == Some("ONAY")
    })
    .await;
    // Requeue the rest by H-code: a dry run counts, the real one sends. Recipient 0's refused
    // row was overtaken by its repeat and stays put.
    let filter = hub_store::OutboxFilter {
        hcode: Some("H119".into()),
        ..Default::default()
    };
    let dry = w
        .store
        .requeue(BRAND, &filter, true, "test", Timestamp::now())
        .await
        .unwrap();
    assert_eq!((dry.matched, dry.requeued, dry.overtaken), (6, 5, 1));
    assert_eq!(
        w.outbox().await.get("failed"),
        Some(&6),
        "a dry run changes nothing"
    );
    let done = w
        .store
        .requeue(BRAND, &filter, false, "test", Timestamp::now())
        .await
        .unwrap();
    assert_eq!(done.requeued, 5);
    w.until(20, "requeued rows delivered", || async {
        w.outbox().await.get("done") == Some(&6)
    })
    .await;
    cancel.cancel();
    assert_eq!(w.iys_state().await.len(), 6);
    for n in 0..6 {
        let s = w.state_of(&format!("+90532{n:07}")).await.unwrap();
        assert_eq!(s.iys_state, IysState::InIys, "{n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_level_failure_pauses_one_brand_while_another_keeps_flowing() {
    let w = World::start(
        SimConfig::for_profile(Profile::Fast),
        Mode::Integrator,
        None,
    )
    .await;
    let other = BrandCode(600_124);
    let broken = w
        .store
        .create_brand(NewBrand {
            brand_code: other,
            iys_code: 600_123,
            name: "wrong credentials".into(),
            mode: Mode::Integrator,
            iys: IysConnection {
                base_url: Some(w.sim.base_url()),
                username: Some("nobody".into()),
                ..IysConnection::default()
            },
        })
        .await
        .unwrap();
    let mut theirs: Vec<Change> = (0..30)
        .map(|n| change(n, ConsentStatus::Onay, ago(60)))
        .collect();
    for c in &mut theirs {
        c.key.brand = other;
    }
    w.store.apply(&broken, theirs, None).await.unwrap();
    let cancel = run(&w.engines());
    let ours: Vec<Change> = (0..30)
        .map(|n| change(n, ConsentStatus::Onay, ago(60)))
        .collect();
    w.store.apply(&w.brand().await, ours, None).await.unwrap();
    w.until(20, "the healthy brand delivers", || async {
        w.outbox().await.get("done") == Some(&30)
    })
    .await;
    // The two brands' tasks run side by side: the healthy one may finish before the broken
    // one's first refusal is recorded.
    w.until(20, "the broken brand pauses", || async {
        w.store
            .sync_figures(other, Timestamp::now())
            .await
            .is_ok_and(|f| f.paused.is_some())
    })
    .await;
    let figures = w.store.sync_figures(other, Timestamp::now()).await.unwrap();
    // The recorded pause: the figures show it only while it runs (300 ms at first in these
    // tests), and it may have run out since the wait above saw it.
    let paused = w
        .store
        .dispatch_pause(other)
        .await
        .unwrap()
        .expect("the broken brand is paused");
    assert!(paused.reason.contains("credentials"), "{paused:?}");
    assert_eq!(
        figures.outbox,
        vec![("pending".to_owned(), 30)],
        "never failed one by one"
    );
    let rows = w
        .store
        .outbox_rows(other, &Default::default(), Timestamp::now(), 0, 100)
        .await
        .unwrap()
        .rows;
    assert!(
        rows.iter().all(|r| r.attempts == 0),
        "a pause is not an attempt"
    );
    // The operator fixes the connection: the pause ends and everything goes.
    w.store
        .update_brand(
            other,
            hub_store::BrandPatch {
                iys: Some(IysConnection {
                    base_url: Some(w.sim.base_url()),
                    username: Some("demo".into()),
                    ..IysConnection::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    w.until(30, "the repaired brand delivers", || async {
        w.store.outbox_counts(other).await.unwrap() == vec![("done".to_owned(), 30)]
    })
    .await;
    cancel.cancel();
    assert!(w.store.dispatch_pause(other).await.unwrap().is_none());
}

/// A round that delivers some changes and then meets an account-level refusal keeps the new
/// pause: the earlier deliveries must not lift it (they once did, when a pause had expired
/// before the round).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_set_in_a_round_stands_though_earlier_sends_of_the_round_went_through() {
    let mut sim = SimConfig::for_profile(Profile::Fast);
    sim.subscription.consent_limit = Some(3);
    let w = World::start(sim, Mode::Integrator, None).await;
    let ours: Vec<Change> = (0..5)
        .map(|n| change(n, ConsentStatus::Onay, ago(60)))
        .collect();
    w.store.apply(&w.brand().await, ours, None).await.unwrap();
    // An earlier pause, over by now: the round starts as "was paused".
    let long_ago = Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(1))
        .unwrap();
    w.store
        .pause_dispatch(BRAND, "H353: an earlier refusal", long_ago, 1_000, 1_000)
        .await
        .unwrap();

    // One round: three single adds fit the subscription, the fourth is refused (H525).
    let engines = w.engines();
    engines.tick(&w.brand().await).await.unwrap();
    let stats = w.stats().await;
    assert_eq!(stats["requests"]["add_v2"]["200"], 3, "{stats}");
    assert_eq!(stats["requests"]["add_v2"]["422"], 1, "{stats}");
    let pause = w
        .store
        .dispatch_pause(BRAND)
        .await
        .unwrap()
        .expect("the round's H525 pause stands");
    assert!(pause.reason.starts_with("H525"), "{pause:?}");
    assert_eq!(w.outbox().await.get("done"), Some(&3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_movement_is_quarantined_and_stops_no_brand() {
    let w = World::start(
        SimConfig::for_profile(Profile::Fast),
        Mode::Integrator,
        None,
    )
    .await;
    let other = BrandCode(600_124);
    w.store
        .create_brand(NewBrand {
            brand_code: other,
            iys_code: 600_123,
            name: "second".into(),
            mode: Mode::Integrator,
            iys: IysConnection {
                base_url: Some(w.sim.base_url()),
                username: Some("demo".into()),
                ..IysConnection::default()
            },
        })
        .await
        .unwrap();
    // In 600124's feed: a movement dated at the end of time (it would pin the consent for ever
    // and used to panic the engine), then an ordinary one behind it.
    let poison = w
        .sim
        .control(
            reqwest::Method::POST,
            "/_sim/citizen",
            json!({"brandCode": 600124, "recipient": "+905320000001", "type": "MESAJ", "status": "ONAY", "source": "IYS_WEB", "consentDate": "9999-12-31 23:59:59"}),
        )
        .await;
    assert!(poison.is_ok(), "the simulator takes the poison: {poison:?}");
    w.control(
        reqwest::Method::POST,
        "/_sim/citizen",
        json!({"brandCode": 600124, "recipient": "+905320000002", "type": "MESAJ", "status": "ONAY", "source": "IYS_WEB", "consentDate": ago(60).to_string()}),
    )
    .await;
    let cancel = run(&w.engines());
    let ours: Vec<Change> = (0..20)
        .map(|n| change(n, ConsentStatus::Onay, ago(30)))
        .collect();
    w.store.apply(&w.brand().await, ours, None).await.unwrap();
    w.until(20, "the healthy brand delivers", || async {
        w.outbox().await.get("done") == Some(&20)
    })
    .await;
    w.until(20, "the movement behind the poison is applied", || async {
        w.store
            .consents(other, "+905320000002")
            .await
            .unwrap()
            .first()
            .is_some_and(|r| r.state.status == ConsentStatus::Onay)
    })
    .await;
    cancel.cancel();
    assert!(
        w.store
            .consents(other, "+905320000001")
            .await
            .unwrap()
            .is_empty()
    );
    let q = w.store.quarantined(other, 10).await.unwrap();
    assert_eq!(q.len(), 1, "{q:?}");
    assert!(q[0].reason.contains("future"), "{q:?}");
    assert_eq!(q[0].movement["consentDate"], "9999-12-31 23:59:59");
    let figures = w.store.sync_figures(other, Timestamp::now()).await.unwrap();
    assert_eq!(figures.quarantined, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_queued_behind_an_unsettled_movement_reach_iys_as_one() {
    let w = World::start(
        SimConfig::for_profile(Profile::Fast),
        Mode::Integrator,
        None,
    )
    .await;
    // IYS takes its time with bulk requests: their rows stay unsettled meanwhile.
    w.control(
        reqwest::Method::PUT,
        "/_sim/timing",
        json!({"bulk_delay_ms": 3000}),
    )
    .await;
    let brand = w.brand().await;
    let first: Vec<Change> = (0..30)
        .map(|n| change(n, ConsentStatus::Onay, ago(600)))
        .collect();
    w.store.apply(&brand, first, None).await.unwrap();
    let cancel = run(&w.engines());
    w.until(10, "the bulk request is submitted", || async {
        w.outbox().await.get("awaiting_result") == Some(&30)
    })
    .await;
    // Five changes of recipient 0 behind its unsettled ONAY, and one of recipient 1.
    let statuses = [
        ConsentStatus::Ret,
        ConsentStatus::Onay,
        ConsentStatus::Ret,
        ConsentStatus::Onay,
        ConsentStatus::Ret,
    ];
    for (i, status) in statuses.into_iter().enumerate() {
        let secs = 300 - 10 * i as i64;
        w.store
            .apply(&brand, vec![change(0, status, ago(secs))], None)
            .await
            .unwrap();
    }
    w.store
        .apply(&brand, vec![change(1, ConsentStatus::Ret, ago(100))], None)
        .await
        .unwrap();
    let outbox = w.outbox().await;
    assert_eq!(
        (outbox.get("pending"), outbox.get("superseded")),
        (Some(&2), Some(&4)),
        "{outbox:?}"
    );
    w.until(30, "everything settled", || async {
        let o = w.outbox().await;
        !o.contains_key("pending") && !o.contains_key("awaiting_result")
    })
    .await;
    cancel.cancel();
    assert_eq!(
        w.stats().await["movements"],
        32,
        "30 ONAYs, then one movement each for recipients 0 and 1"
    );
    let iys = w.iys_state().await;
    assert_eq!(
        iys.get("+905320000000/MESAJ").map(String::as_str),
        Some("RET")
    );
    assert_eq!(
        iys.get("+905320000001/MESAJ").map(String::as_str),
        Some("RET")
    );
    let s = w.state_of("+905320000000").await.unwrap();
    assert_eq!(
        (s.status, s.iys_state),
        (ConsentStatus::Ret, IysState::InIys)
    );
    let rows = w
        .store
        .outbox_rows(
            BRAND,
            &hub_store::OutboxFilter {
                recipient: Some("+905320000000".into()),
                ..Default::default()
            },
            Timestamp::now(),
            0,
            100,
        )
        .await
        .unwrap()
        .rows;
    let carrier = rows.last().unwrap();
    assert_eq!(carrier.state, OutboxState::Done);
    assert!(
        rows.iter()
            .filter(|r| r.state == OutboxState::Superseded)
            .all(|r| r.superseded_by == Some(carrier.id))
    );
}

/// A feed of more pages than one transaction takes (the puller reads ahead and applies several
/// pages at once): every movement is applied once and in the feed's order, and the next pull
/// finds nothing new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_of_many_pages_is_applied_once_and_in_order() {
    let w = World::start(
        SimConfig::for_profile(Profile::Fast),
        Mode::Integrator,
        None,
    )
    .await;
    let brand = w.brand().await;
    let placed = 7_321u64;
    {
        let now = w.sim.sim.now();
        let later = ConsentDate::from_timestamp(now + jiff::SignedDuration::from_secs(1));
        let mut state = w.sim.sim.state.lock().unwrap();
        let action = |n: u64, status, consent_date| iys_sim::state::CitizenAction {
            brand_code: BRAND.0,
            recipient: format!("+90532{n:07}"),
            consent_type: ConsentType::Mesaj,
            recipient_type: RecipientType::Bireysel,
            status,
            source: None,
            consent_date,
            citizen_name: None,
        };
        for n in 0..placed {
            state
                .citizen(&action(n, ConsentStatus::Onay, None), now)
                .unwrap();
        }
        // Refusals at the end of the feed, for recipients whose ONAY came on its first page.
        for n in 0..3 {
            state
                .citizen(&action(n, ConsentStatus::Ret, Some(later)), now)
                .unwrap();
        }
    }
    // The feed serves a second only once it is over.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let engines = w.engines();
    let client = engines.client(&brand).await.unwrap();
    assert_eq!(
        engines.pull(&brand, &client).await.unwrap(),
        placed as usize + 3
    );
    assert_eq!(engines.pull(&brand, &client).await.unwrap(), 0);
    for n in 0..3 {
        let s = w.state_of(&format!("+90532{n:07}")).await.unwrap();
        assert_eq!(s.status, ConsentStatus::Ret, "recipient {n}");
    }
    for n in [3, 4_999, placed - 1] {
        let s = w.state_of(&format!("+90532{n:07}")).await.unwrap();
        assert_eq!(
            (s.status, s.iys_known),
            (ConsentStatus::Onay, true),
            "recipient {n}"
        );
    }
    let events = w.store.history(BRAND, "+905320000000", 10).await.unwrap();
    assert_eq!(events.len(), 2, "the ONAY and the RET, each once");
}

/// Over the subscription's quota (H525) IYS refuses only new records: a RET queued behind
/// refused ONAYs still reaches IYS, whether the round sends single adds or a bulk request.
/// (It used to wait for the pause's end, then meet the same ONAYs first, and never go.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_quota_a_ret_behind_refused_onays_still_reaches_iys() {
    // One new ONAY (single adds) and thirty (a bulk request) ahead of the RET.
    for new_onays in [1_u64, 30] {
        let mut sim = SimConfig::for_profile(Profile::Fast);
        sim.subscription.consent_limit = Some(2);
        let w = World::start(sim, Mode::Integrator, None).await;
        let brand = w.brand().await;
        let engines = w.engines();
        let known: Vec<Change> = (0..2)
            .map(|n| change(n, ConsentStatus::Onay, ago(600)))
            .collect();
        w.store.apply(&brand, known, None).await.unwrap();
        let cancel = run(&engines);
        w.until(
            20,
            "the two the subscription holds are delivered",
            || async { w.outbox().await.get("done") == Some(&2) },
        )
        .await;
        cancel.cancel();
        // New ONAYs (over the quota) first in deadline order, then a RET of a known one.
        let mut later: Vec<Change> = (0..new_onays)
            .map(|n| change(100 + n, ConsentStatus::Onay, ago(300)))
            .collect();
        later.push(change(0, ConsentStatus::Ret, ago(60)));
        w.store.apply(&brand, later, None).await.unwrap();
        let cancel = run(&engines);
        w.until(20, "the RET reaches IYS while the ONAYs wait", || async {
            w.state_of("+905320000000")
                .await
                .is_some_and(|s| s.status == ConsentStatus::Ret && s.iys_state == IysState::InIys)
        })
        .await;
        cancel.cancel();
        let pause = w.store.dispatch_pause(BRAND).await.unwrap();
        assert!(
            pause.is_some_and(|p| p.reason.starts_with("H525")),
            "{new_onays} new ONAYs: the quota pause stands"
        );
        let new_one = w.state_of("+905320000100").await.unwrap();
        assert_eq!(new_one.iys_state, IysState::Pending, "{new_onays}");
    }
}

/// Sync mode: an ONAY held while an earlier change of the same consent was on its way is
/// released once IYS accepts that change (the hub's own accepted delivery shows IYS has the
/// record, as a pulled movement does). It used to stay held until IYS's feed happened to show
/// the recipient again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_mode_releases_a_held_onay_when_an_earlier_delivery_shows_iys_has_the_record() {
    let w = World::start(SimConfig::for_profile(Profile::Fast), Mode::Sync, None).await;
    let brand = w.brand().await;
    let engines = w.engines();
    let client = engines.client(&brand).await.unwrap();
    // IYS has recipient 5 (another system of the brand wrote it); no pull runs in this test.
    w.control(reqwest::Method::POST, "/_sim/citizen", json!({"brandCode": 600123, "recipient": "+905320000005", "type": "MESAJ", "status": "ONAY", "source": "IYS_WEB", "consentDate": ago(600).to_string()})).await;
    // The RET goes (a RET always does) and is on its way, slowly, when the ONAY comes: unknown
    // yet, the ONAY is held.
    w.store
        .apply(&brand, vec![change(5, ConsentStatus::Ret, ago(300))], None)
        .await
        .unwrap();
    w.control(
        reqwest::Method::PUT,
        "/_sim/faults",
        json!({"add_v2": {"latencyMs": 1500}}),
    )
    .await;
    let sending = {
        let (engines, brand, client) = (engines.clone(), brand.clone(), client.clone());
        tokio::spawn(async move { engines.dispatch(&brand, &client).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    w.store
        .apply(&brand, vec![change(5, ConsentStatus::Onay, ago(120))], None)
        .await
        .unwrap();
    assert_eq!(w.outbox().await.get("held"), Some(&1), "unknown yet: held");
    // IYS accepts the RET: the record is there.
    assert_eq!(sending.await.unwrap(), 1);
    w.control(reqwest::Method::DELETE, "/_sim/faults", json!({}))
        .await;
    let s = w.state_of("+905320000005").await.unwrap();
    assert!(s.iys_known, "{s:?} {:?}", w.outbox().await);
    assert_eq!(
        (s.status, s.iys_state),
        (ConsentStatus::Onay, IysState::Pending),
        "the held ONAY is released"
    );
    assert_eq!(w.outbox().await.get("held"), None);
    w.until(10, "the released ONAY reaches IYS", || async {
        engines.dispatch(&brand, &client).await.unwrap();
        w.state_of("+905320000005")
            .await
            .is_some_and(|s| s.status == ConsentStatus::Onay && s.iys_state == IysState::InIys)
    })
    .await;
}
