//! The client against the simulator over real HTTP, with its faults, clock and statistics.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use iys::wire::{BulkItemStatus, ChangeSource, Consent, ConsentQuery};
use iys::{ConsentDate, ConsentStatus, ConsentType, HsSource, RecipientType, Source};
use iys_client::{
    ClientConfig, ClientError, Clock, IysClient, MemoryTokenStore, Secret, StoreFuture, TokenState,
    TokenStore,
};
use iys_sim::{Profile, Sim, SimConfig, SimServer};
use jiff::Timestamp;
use serde_json::{Value, json};

/// The client reads the simulator's clock, so both cross IYS's hours together.
#[derive(Debug)]
struct SimTime(Arc<Sim>);

impl Clock for SimTime {
    fn now(&self) -> Timestamp {
        self.0.now()
    }
}

struct Setup {
    server: SimServer,
}

impl Setup {
    async fn start(config: SimConfig) -> Setup {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = SimServer::start(config, listener, None).await.unwrap();
        Setup { server }
    }

    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new(
            self.server.base_url(),
            "demo",
            Secret::new("demo-password"),
            600_123,
        );
        c.retry.base_delay = Duration::from_millis(20);
        c.retry.max_delay = Duration::from_millis(300);
        c.retry.max_attempts = 30;
        c.budgets.per_second = 200;
        c.bulk.min_age = Duration::from_millis(150);
        c.bulk.schedule = vec![Duration::from_millis(100)];
        c.bulk.max_polls = 200;
        c
    }

    fn client(&self, config: ClientConfig, store: Arc<dyn TokenStore>) -> IysClient {
        IysClient::with_parts(config, store, Arc::new(SimTime(self.server.sim.clone()))).unwrap()
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        self.server.control(method, path, body).await.unwrap()
    }

    /// Revokes every access token at IYS, and with `refresh_too` every refresh token as well.
    async fn expire_tokens(&self, refresh_too: bool) -> Value {
        let body = if refresh_too {
            json!({"refreshToo": true})
        } else {
            json!({})
        };
        self.control(reqwest::Method::POST, "/_sim/tokens/expire", body)
            .await
    }

    async fn stats(&self) -> Value {
        self.server.stats().await.unwrap()
    }
}

fn consent(n: u64, status: ConsentStatus, date: ConsentDate) -> Consent {
    Consent {
        recipient: format!("+90532{:07}", n),
        consent_type: ConsentType::Mesaj,
        source: Some(Source::Hs(HsSource::HsWeb)),
        status,
        consent_date: Some(date),
        recipient_type: Some(RecipientType::Bireysel),
        retailer_code: None,
        retailer_access: None,
    }
}

fn now_date(sim: &Sim) -> ConsentDate {
    ConsentDate::from_timestamp(sim.now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_refresh_expiry_and_401s_are_invisible_to_callers() {
    let s = Setup::start(SimConfig::for_profile(Profile::Fast)).await;
    let client = s.client(s.client_config(), Arc::new(MemoryTokenStore::default()));
    let date = now_date(&s.server.sim);
    for n in 0..40u64 {
        match n {
            // Access tokens revoked at IYS: a 401, one re-authentication (refresh grant).
            10 => s.expire_tokens(false).await,
            // Refresh tokens too: the refresh grant fails, the password grant takes over.
            20 => s.expire_tokens(true).await,
            // Two hours later: the client sees its token expiring and refreshes first.
            30 => {
                s.control(
                    reqwest::Method::POST,
                    "/_sim/clock/advance",
                    json!({"seconds": 7200}),
                )
                .await
            }
            _ => Value::Null,
        };
        let r = client
            .add_consent(600_123, &consent(n, ConsentStatus::Onay, date))
            .await;
        assert!(r.is_ok(), "add {n}: {r:?}");
    }
    let stats = s.stats().await;
    assert_eq!(stats["movements"], 40);
    let token_calls = stats["tokenCalls"].as_u64().unwrap();
    assert!((4..=6).contains(&token_calls), "token calls: {token_calls}");
    assert_eq!(stats["requests"]["add_v2"]["401"], 2, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h084_halts_token_calls_until_the_hour_is_over_even_across_a_restart() {
    let mut config = SimConfig::for_profile(Profile::Fast);
    config.limits.enabled = true;
    config.limits.requests_per_second = 1000;
    config.limits.token_per_hour = 3;
    let s = Setup::start(config).await;
    s.control(reqwest::Method::POST, "/_sim/clock/freeze", json!({}))
        .await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::default());
    let client = s.client(s.client_config(), store.clone());
    let date = now_date(&s.server.sim);
    // Token call 1 (password grant) succeeds. With every token revoked at IYS, the client tries
    // its refresh token (call 2, refused) then the password grant (call 3). Revoked again, the
    // refresh attempt (call 4) is over IYS's limit of 3 and answered H084.
    client
        .add_consent(600_123, &consent(1, ConsentStatus::Onay, date))
        .await
        .unwrap();
    s.expire_tokens(true).await;
    client
        .add_consent(600_123, &consent(2, ConsentStatus::Onay, date))
        .await
        .unwrap();
    s.expire_tokens(true).await;
    let err = client
        .add_consent(600_123, &consent(3, ConsentStatus::Onay, date))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::TokenHalted { .. }), "{err:?}");
    assert_eq!(s.stats().await["tokenCalls"], 4);

    // While halted: every caller gets the typed error and no token call is made.
    let mut elapsed = 0;
    for minutes in [0, 10, 30, 59] {
        let step = (minutes - elapsed) * 60;
        elapsed = minutes;
        s.control(
            reqwest::Method::POST,
            "/_sim/clock/advance",
            json!({ "seconds": step }),
        )
        .await;
        let err = client
            .add_consent(600_123, &consent(3, ConsentStatus::Onay, date))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::TokenHalted { .. }),
            "at +{minutes} min: {err:?}"
        );
        assert_eq!(err.codes(), ["H084"]);
    }
    // A restarted client sharing the token store honours the halt too.
    let restarted = s.client(s.client_config(), store.clone());
    assert!(matches!(
        restarted
            .add_consent(600_123, &consent(3, ConsentStatus::Onay, date))
            .await,
        Err(ClientError::TokenHalted { .. })
    ));
    assert_eq!(
        s.stats().await["tokenCalls"],
        4,
        "no token call while halted"
    );

    // The hour passes: the client resumes on its own.
    s.control(
        reqwest::Method::POST,
        "/_sim/clock/advance",
        json!({"seconds": 61}),
    )
    .await;
    restarted
        .add_consent(600_123, &consent(3, ConsentStatus::Onay, date))
        .await
        .unwrap();
    // The refresh token IYS revoked is tried once more, then the password grant.
    let calls = s.stats().await["tokenCalls"].as_u64().unwrap();
    assert!((5..=6).contains(&calls), "{calls}");
    assert!(store.load().await.unwrap().halt_until.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_500s_429_storms_and_lost_answers_every_consent_lands_once_within_budget() {
    let mut config = SimConfig::for_profile(Profile::Fast);
    config.limits.enabled = true;
    config.limits.requests_per_second = 40;
    config.limits.token_per_hour = 1000;
    config.seed = Some(42);
    let s = Setup::start(config).await;
    s.control(
        reqwest::Method::PUT,
        "/_sim/faults",
        json!({
            "bulk_v2": {"errorRate": 0.3, "status": 500, "code": "H015", "lostAnswerRate": 0.1},
            "add_v2": {"errorRate": 0.3, "status": 500, "code": "H015", "lostAnswerRate": 0.1},
            "bulk_result_v2": {"errorRate": 0.3, "status": 429, "code": "H124"},
            "token": {"errorRate": 0.2, "status": 503, "code": "H192"}
        }),
    )
    .await;
    let mut cfg = s.client_config();
    cfg.budgets.per_second = 40;
    // IYS's own limit must never be hit here, so the guard is wide: under a parallel test run
    // this machine can hold one request back by more than the default 10 ms.
    cfg.budgets.per_second_guard = Duration::from_millis(50);
    let client = s.client(cfg, Arc::new(MemoryTokenStore::default()));
    let date = now_date(&s.server.sim);
    // 10,000 through v2 bulk requests of 1000.
    let consents: Vec<Consent> = (0..10_000)
        .map(|n| consent(n, ConsentStatus::Onay, date))
        .collect();
    let submitted = s.server.sim.now();
    let accepted = client.submit_bulk(600_123, &consents).await.unwrap();
    assert_eq!(accepted.len(), 10);
    for a in &accepted {
        let items = client
            .wait_bulk(600_123, &a.request_id, submitted)
            .await
            .unwrap();
        assert_eq!(items.len(), 1000);
        assert!(
            items.iter().all(|i| i.status == BulkItemStatus::Success),
            "{items:?}"
        );
    }
    // And 200 single adds on top.
    for n in 10_000..10_200u64 {
        client
            .add_consent(600_123, &consent(n, ConsentStatus::Onay, date))
            .await
            .unwrap();
    }
    let stats = s.stats().await;
    assert_eq!(stats["consents"], 10_200, "{stats}");
    assert_eq!(
        stats["movements"], 10_200,
        "every consent exactly once: {stats}"
    );
    assert_eq!(stats["duplicateMovements"], 0);
    assert!(
        stats["faultsInjected"].as_u64().unwrap() > 50,
        "faults happened: {stats}"
    );
    let busiest = stats["maxRequestsPerSecond"].as_u64().unwrap();
    assert!(
        busiest <= 40,
        "busiest second {busiest} exceeds the budget of 40"
    );
    assert_eq!(
        stats["rateLimited"], 0,
        "the client never hit IYS's own limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_of_the_pace_widen_the_guard_and_other_429s_do_not() {
    let s = Setup::start(SimConfig::for_profile(Profile::Fast)).await;
    let mut cfg = s.client_config();
    cfg.budgets.per_second_guard = Duration::from_millis(2);
    cfg.retry.max_attempts = 3;
    let client = s.client(cfg, Arc::new(MemoryTokenStore::default()));
    let date = now_date(&s.server.sim);
    client
        .add_consent(600_123, &consent(1, ConsentStatus::Onay, date))
        .await
        .unwrap();
    assert_eq!(client.pace_guard().await, Duration::from_millis(2));
    let refuse = |code: &str| json!({"add_v2": {"errorRate": 1.0, "status": 429, "code": code}});
    // An hourly budget's 429 says nothing about the pace.
    s.control(reqwest::Method::PUT, "/_sim/faults", refuse("H086"))
        .await;
    let err = client
        .add_consent(600_123, &consent(2, ConsentStatus::Onay, date))
        .await
        .unwrap_err();
    assert!(err.codes().contains(&"H086"), "{err}");
    assert_eq!(client.pace_guard().await, Duration::from_millis(2));
    // Three refusals of the pace: 2 ms → 4 → 8 → 16.
    s.control(reqwest::Method::PUT, "/_sim/faults", refuse("H124"))
        .await;
    let err = client
        .add_consent(600_123, &consent(2, ConsentStatus::Onay, date))
        .await
        .unwrap_err();
    assert!(err.codes().contains(&"H124"), "{err}");
    assert_eq!(client.pace_guard().await, Duration::from_millis(16));
    s.control(reqwest::Method::DELETE, "/_sim/faults", json!({}))
        .await;
    client
        .add_consent(600_123, &consent(2, ConsentStatus::Onay, date))
        .await
        .unwrap();
    assert_eq!(s.stats().await["consents"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_sharing_limits_keep_within_one_ips_budget_together() {
    let mut config = SimConfig::for_profile(Profile::Fast);
    config.limits.enabled = true;
    config.limits.requests_per_second = 5;
    let s = Setup::start(config).await;
    let mut cfg = s.client_config();
    cfg.budgets.per_second = 5;
    cfg.budgets.per_second_guard = Duration::from_millis(50);
    let clock: Arc<dyn Clock> = Arc::new(SimTime(s.server.sim.clone()));
    let limits = iys_client::Limits::new(&cfg.budgets, clock.clone());
    let clients: Vec<IysClient> = (0..2)
        .map(|_| {
            IysClient::with_limits(
                cfg.clone(),
                Arc::new(MemoryTokenStore::default()),
                clock.clone(),
                limits.clone(),
            )
            .unwrap()
        })
        .collect();
    let date = now_date(&s.server.sim);
    let sends = clients.iter().enumerate().flat_map(|(c, client)| {
        (0..8u64).map(move |n| async move {
            client
                .add_consent(
                    600_123,
                    &consent(c as u64 * 100 + n, ConsentStatus::Onay, date),
                )
                .await
        })
    });
    for sent in futures_util::future::join_all(sends).await {
        sent.unwrap();
    }
    let stats = s.stats().await;
    assert_eq!(stats["consents"], 16, "{stats}");
    assert_eq!(stats["rateLimited"], 0, "{stats}");
    assert!(
        stats["maxRequestsPerSecond"].as_u64().unwrap() <= 5,
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_partial_failures_are_reported_per_item_and_polls_are_never_early() {
    let s = Setup::start(SimConfig::for_profile(Profile::Fast)).await;
    let client = s.client(s.client_config(), Arc::new(MemoryTokenStore::default()));
    let date = now_date(&s.server.sim);
    client
        .add_consent(600_123, &consent(7, ConsentStatus::Onay, date))
        .await
        .unwrap();
    let later = ConsentDate::from_timestamp(s.server.sim.now());
    let older = ConsentDate::from_timestamp(
        s.server
            .sim
            .now()
            .saturating_sub(jiff::SignedDuration::from_hours(1))
            .unwrap(),
    );
    let items = vec![
        consent(1, ConsentStatus::Onay, later), // fine
        consent(2, ConsentStatus::Ret, later),  // first-ever RET: H175
        consent(7, ConsentStatus::Ret, older),  // older than stored: H178
        consent(3, ConsentStatus::Onay, later), // fine
    ];
    let submitted = s.server.sim.now();
    let accepted = client.submit_bulk(600_123, &items).await.unwrap();
    let results = client
        .wait_bulk(600_123, &accepted[0].request_id, submitted)
        .await
        .unwrap();
    let summary: Vec<(BulkItemStatus, Option<String>)> = results
        .iter()
        .map(|r| (r.status, r.error.as_ref().map(|e| e.code.clone())))
        .collect();
    assert_eq!(
        summary,
        [
            (BulkItemStatus::Success, None),
            (BulkItemStatus::Failure, Some("H175".into())),
            (BulkItemStatus::Failure, Some("H178".into())),
            (BulkItemStatus::Success, None),
        ]
    );
    assert_eq!(s.stats().await["earlyBulkPolls"], 0);
    // Duplicates within one request are refused before anything is sent.
    let dup = vec![
        consent(9, ConsentStatus::Onay, later),
        consent(9, ConsentStatus::Onay, later),
    ];
    assert!(matches!(
        client.submit_bulk(600_123, &dup).await,
        Err(ClientError::Invalid(_))
    ));
    // Permanent errors come back at once with every IYS item.
    let mut bad = consent(10, ConsentStatus::Onay, later);
    bad.recipient = "+90532".into();
    let err = client.add_consent(600_123, &bad).await.unwrap_err();
    assert_eq!(err.codes(), ["H121"]);
    assert!(!err.is_transient());
    // Status and history through the client.
    let q = ConsentQuery {
        recipient: "+905320000007".into(),
        recipient_type: RecipientType::Bireysel,
        consent_type: ConsentType::Mesaj,
    };
    let st = client.status(600_123, &q).await.unwrap().unwrap();
    assert_eq!(st.status, ConsentStatus::Onay);
    let unknown = ConsentQuery {
        recipient: "+905329999999".into(),
        ..q.clone()
    };
    assert!(client.status(600_123, &unknown).await.unwrap().is_none());
    assert_eq!(client.history(600_123, &q).await.unwrap().len(), 1);
    let onay = client
        .multi_status(
            600_123,
            RecipientType::Bireysel,
            ConsentType::Mesaj,
            &["+905320000007".into(), "+905320000002".into()],
        )
        .await
        .unwrap();
    assert_eq!(onay, ["+905320000007"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_changes_stream_resumes_exactly_from_a_saved_cursor() {
    let s = Setup::start(SimConfig::for_profile(Profile::Fast)).await;
    let client = s.client(s.client_config(), Arc::new(MemoryTokenStore::default()));
    // 5,000 citizen movements, with provider movements in between that source=IYS must skip.
    let date = now_date(&s.server.sim);
    for chunk in 0..5u64 {
        let actions: Vec<Value> = (0..1000u64)
            .map(|i| {
                let n = chunk * 1000 + i;
                json!({"brandCode": 600123, "recipient": format!("+90533{:07}", n), "type": "MESAJ", "status": "RET", "source": "IYS_MOBIL"})
            })
            .collect();
        let r = s
            .control(
                reqwest::Method::POST,
                "/_sim/citizen",
                Value::Array(actions),
            )
            .await;
        assert_eq!(r["movements"].as_array().unwrap().len(), 1000);
        client
            .add_consent(600_123, &consent(chunk, ConsentStatus::Onay, date))
            .await
            .unwrap();
    }
    // The feed serves a second once it is over (movements of one second may share an id).
    s.control(
        reqwest::Method::POST,
        "/_sim/clock/advance",
        json!({"seconds": 1}),
    )
    .await;
    // Read two pages, keep the cursor, stop.
    let mut seen: Vec<String> = Vec::new();
    let mut cursor = None;
    {
        let stream = client.changes(600_123, ChangeSource::Iys, None, 1000);
        futures_util::pin_mut!(stream);
        for _ in 0..2 {
            let page = stream.next().await.unwrap().unwrap();
            seen.extend(page.list.iter().map(|m| m.transaction_id.clone()));
            cursor = Some(page.after.clone());
        }
    }
    // Resume from the saved cursor in a new stream.
    let rest: Vec<_> = client
        .changes(600_123, ChangeSource::Iys, cursor, 1000)
        .collect()
        .await;
    for page in rest {
        let page = page.unwrap();
        assert!(page.list.iter().all(|m| m.source.is_iys()));
        seen.extend(page.list.iter().map(|m| m.transaction_id.clone()));
    }
    assert_eq!(seen.len(), 5000, "no gap");
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 5000, "no repeat");
    // The same order as IYS's own list.
    let all: Vec<String> = client
        .changes(600_123, ChangeSource::Iys, None, 1000)
        .map(|p| {
            p.unwrap()
                .list
                .into_iter()
                .map(|m| m.transaction_id)
                .collect::<Vec<_>>()
        })
        .concat()
        .await;
    assert_eq!(seen, all);
    let hs: usize = client
        .changes(600_123, ChangeSource::Hs, None, 1000)
        .map(|p| p.unwrap().list.len())
        .fold(0, |a, b| async move { a + b })
        .await;
    assert_eq!(hs, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_file_is_verified_against_iys_hash_and_confirmed() {
    let s = Setup::start(SimConfig::for_profile(Profile::Fast)).await;
    s.control(
        reqwest::Method::POST,
        "/_sim/clock/set",
        json!({"now": "2026-11-25 10:00:00"}),
    )
    .await;
    let client = s.client(s.client_config(), Arc::new(MemoryTokenStore::default()));
    let date = ConsentDate::parse("2026-11-25 09:00:00").unwrap();
    for n in 0..5u64 {
        client
            .add_consent(600_123, &consent(n, ConsentStatus::Onay, date))
            .await
            .unwrap();
    }
    s.control(
        reqwest::Method::POST,
        "/_sim/clock/set",
        json!({"now": "2026-11-26 10:00:00"}),
    )
    .await;
    let day: jiff::civil::Date = "2026-11-25".parse().unwrap();
    let file = client
        .verified_daily_file(600_123, day)
        .await
        .unwrap()
        .expect("a file for the day");
    assert_eq!(file.lines().count(), 5);
    assert!(file.ends_with('\n'));
    let summary = client
        .day_summary(600_123, day, RecipientType::Bireysel)
        .await
        .unwrap();
    assert_eq!(summary.change_stats[0].consents[0].approval, 5);
    assert_eq!(
        client
            .agreement_confirm(600_123, day)
            .await
            .unwrap()
            .map(|c| c.agreement_captured),
        Some(true)
    );
    assert!(
        client
            .agreement(600_123, day)
            .await
            .unwrap()
            .unwrap()
            .agreement_status
    );
    let empty: jiff::civil::Date = "2026-11-24".parse().unwrap();
    assert!(
        client
            .verified_daily_file(600_123, empty)
            .await
            .unwrap()
            .is_none()
    );
    assert!(client.cities().await.unwrap().len() == 81);
    assert!(!client.brands().await.unwrap().is_empty());
    assert_eq!(
        client.subscription().await.unwrap().status,
        iys::wire::SubscriptionStatus::Active
    );
}

/// A token store that counts its reads.
#[derive(Debug, Default)]
struct CountingStore {
    inner: MemoryTokenStore,
    loads: std::sync::atomic::AtomicUsize,
}

impl CountingStore {
    fn loads(&self) -> usize {
        self.loads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl TokenStore for CountingStore {
    fn load(&self) -> StoreFuture<'_, TokenState> {
        self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.load()
    }

    fn save(&self, state: TokenState) -> StoreFuture<'_, ()> {
        self.inner.save(state)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_bulks_sent_side_by_side_share_token_reads_and_keep_the_pace() {
    let mut config = SimConfig::for_profile(Profile::Fast);
    config.limits.enabled = true;
    let s = Setup::start(config).await;
    let mut cfg = s.client_config();
    cfg.budgets.per_second = 10;
    // IYS's own limit must never be hit here: a parallel test run can hold a request back.
    cfg.budgets.per_second_guard = Duration::from_millis(50);
    let store = Arc::new(CountingStore::default());
    let client = s.client(cfg, store.clone());
    let date = now_date(&s.server.sim);
    let consents: Vec<Consent> = (0..1_200)
        .map(|n| consent(n, ConsentStatus::Onay, date))
        .collect();

    // Refused before anything is sent: more than IYS's 1000, or a recipient twice (H194).
    let err = client
        .prepare_bulk(600_123, &consents[..1_001])
        .unwrap_err();
    assert!(err.to_string().contains("at most 1000"), "{err}");
    let twice = [
        consents[0].clone(),
        consents[1].clone(),
        consents[0].clone(),
    ];
    let err = client.prepare_bulk(600_123, &twice).unwrap_err();
    assert!(err.to_string().contains("H194"), "{err}");

    client.check_token().await.unwrap();
    let loads = store.loads();
    // Twelve requests of 100, all prepared first and sent side by side: the budget lets ten go
    // at once and the last two a second later.
    let prepared = consents
        .chunks(100)
        .map(|chunk| client.prepare_bulk(600_123, chunk))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert!(prepared.iter().all(|p| p.items() == 100));
    let accepted =
        futures_util::future::join_all(prepared.into_iter().map(|p| client.send_prepared(p)))
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
    let ids: std::collections::HashSet<_> = accepted.iter().map(|a| &a.request_id).collect();
    assert_eq!(ids.len(), 12, "one request each");
    // Each call used to read the shared store (a database in the hub); calls close together
    // share what one read found.
    let read = store.loads() - loads;
    assert!(read <= 2, "{read} reads of the token store for 12 requests");
    let stats = s.stats().await;
    assert_eq!(stats["rateLimited"], 0, "IYS's pace was kept: {stats}");
    let busiest = stats["maxRequestsPerSecond"].as_u64().unwrap();
    assert!(busiest <= 10, "busiest second {busiest}: {stats}");
}
