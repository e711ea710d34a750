//! What the engine tests share: a simulator, a store with one brand, engines and helpers.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hub_core::{BrandCode, Change, Channel, ConsentKey, Mode, Origin};
use hub_engines::{EngineConfig, Engines};
use hub_store::{Brand, IysConnection, NewBrand, SqlStore, Store};
use iys::{ConsentDate, ConsentStatus, ConsentType, HsSource, RecipientType, Source};
use iys_client::Secret;
use iys_sim::{SimConfig, SimServer};
use jiff::Timestamp;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub const BRAND: BrandCode = BrandCode(600_123);

pub struct World {
    pub sim: SimServer,
    pub store: Arc<SqlStore>,
    pub http: reqwest::Client,
    pub _dir: Option<tempfile::TempDir>,
}

impl World {
    pub async fn start(sim_config: SimConfig, mode: Mode, postgres: Option<String>) -> World {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = SimServer::start(sim_config, listener, None).await.unwrap();
        let (url, dir) = match postgres {
            Some(u) => (u, None),
            None => {
                let dir = tempfile::tempdir().unwrap();
                (
                    SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap(),
                    Some(dir),
                )
            }
        };
        let store = Arc::new(SqlStore::connect(&url).await.unwrap());
        store
            .create_brand(NewBrand {
                brand_code: BRAND,
                iys_code: 600_123,
                name: "e2e".into(),
                mode,
                iys: IysConnection {
                    base_url: Some(sim.base_url()),
                    username: Some("demo".into()),
                    ..IysConnection::default()
                },
            })
            .await
            .unwrap();
        World {
            sim,
            store,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    pub fn engines(&self) -> Arc<Engines> {
        Arc::new(Engines::new(
            self.store.clone(),
            engine_config(&self.sim.base_url()),
        ))
    }

    /// Engines that read the simulator's clock, so tests can cross IYS's hour.
    pub fn engines_on_sim_time(&self) -> Arc<Engines> {
        let config = EngineConfig {
            clock: Arc::new(SimTime(self.sim.sim.clone())),
            ..engine_config(&self.sim.base_url())
        };
        Arc::new(Engines::new(self.store.clone(), config))
    }

    pub async fn brand(&self) -> Brand {
        self.store.brand(BRAND).await.unwrap().unwrap()
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        self.sim.control(method, path, body).await.unwrap()
    }

    pub async fn stats(&self) -> Value {
        self.sim.stats().await.unwrap()
    }

    /// The simulator's current state of every consent of the brand: recipient → status.
    pub async fn iys_state(&self) -> std::collections::BTreeMap<String, String> {
        let v: Value = self
            .http
            .get(format!(
                "{}/_sim/consents/600123?limit=100000",
                self.sim.base_url()
            ))
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
            .map(|m| {
                (
                    format!(
                        "{}/{}",
                        m["recipient"].as_str().unwrap(),
                        m["type"].as_str().unwrap()
                    ),
                    m["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    pub async fn outbox(&self) -> std::collections::BTreeMap<String, i64> {
        self.store
            .outbox_counts(BRAND)
            .await
            .unwrap()
            .into_iter()
            .collect()
    }

    /// Waits until `cond` holds (checked every 100 ms), failing after `secs`.
    pub async fn until<F, Fut>(&self, secs: u64, what: &str, mut cond: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !cond().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for: {what}; outbox {:?}",
                self.outbox().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn state_of(&self, recipient: &str) -> Option<hub_core::ConsentState> {
        self.store
            .consents(BRAND, recipient)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.key.channel == SMS)
            .map(|r| r.state)
    }
}

pub const SMS: Channel = Channel::Iys(ConsentType::Mesaj);

#[derive(Debug)]
pub struct SimTime(pub Arc<iys_sim::Sim>);

impl iys_client::Clock for SimTime {
    fn now(&self) -> Timestamp {
        self.0.now()
    }
}

/// The engines' settings for tests, allowed to reach the simulator at `sim_url`.
pub fn engine_config(sim_url: &str) -> EngineConfig {
    EngineConfig {
        iys: hub_store::IysPolicy {
            allowed_urls: vec![sim_url.to_owned()],
            ..Default::default()
        },
        pull_interval: Duration::from_secs(1),
        dispatch_interval: Duration::from_millis(50),
        single_max: 25,
        bulks_at_once: 10,
        bulk_min_poll_age: Duration::from_millis(150),
        bulk_poll_every: Duration::from_millis(100),
        retry_schedule: vec![
            Duration::from_millis(100),
            Duration::from_millis(300),
            Duration::from_secs(1),
        ],
        lease: Duration::from_secs(30),
        pause_base: Duration::from_millis(300),
        pause_max: Duration::from_secs(2),
        bulk_result_timeout: Duration::from_secs(3600),
        iys_password: Secret::new("demo-password"),
        budgets: iys_client::Budgets {
            per_second: 200,
            ..Default::default()
        },
        clock: Arc::new(iys_client::SystemClock),
    }
}

pub fn change(n: u64, status: ConsentStatus, date: ConsentDate) -> Change {
    Change {
        key: ConsentKey {
            brand: BRAND,
            recipient: format!("+90532{n:07}"),
            recipient_type: RecipientType::Bireysel,
            channel: SMS,
        },
        status,
        consent_date: date,
        source: Source::Hs(HsSource::HsWeb),
        origin: Origin::Api,
        actor: Some("e2e".into()),
        evidence: None,
        category: None,
        profile_id: None,
        hold: None,
        iys_transaction_id: None,
        iys_creation_date: None,
        received_at: Timestamp::now(),
    }
}

pub fn now_date() -> ConsentDate {
    ConsentDate::from_timestamp(
        Timestamp::now()
            .saturating_sub(jiff::SignedDuration::from_secs(5))
            .unwrap(),
    )
}

pub fn run(engines: &Arc<Engines>) -> CancellationToken {
    let cancel = CancellationToken::new();
    tokio::spawn(engines.clone().run(cancel.clone()));
    cancel
}
