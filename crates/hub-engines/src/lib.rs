//! The IYS engines, run by every `iyshub serve` instance (or by worker-only instances):
//!
//! - **dispatcher**: claims pending outbox rows (closest IYS deadline first, one per consent at a
//!   time so order holds), sends them as v2 single adds while the queue is short and as a v2 bulk
//!   request when it is long, and settles each row; transient failures retry on a schedule;
//! - **bulk poller**: collects bulk results no sooner than IYS allows and settles each item;
//! - **puller**: reads IYS's changes feed from the stored cursor (`source=IYS`, and in sync mode
//!   also `source=HS`) and applies the movements through the ledger, advancing the cursor in the
//!   same transaction.
//!
//! - **reconciler**: compares the day's movements with IYS's daily file and repairs drift;
//! - **backfill**: in sync mode, learns which known recipients IYS already has.
//!
//! All of them share one IYS token per API user through the database, so instances and restarts
//! honour an H084 halt. Layout: this file holds the configuration, the per-brand loop and the
//! IYS clients; `dispatch`, `poller`, `puller`, `reconcile` and `backfill` one engine each;
//! `account` the account-level failures that pause a brand's dispatch; `batch` the pure
//! single-or-bulk plan; `tokens` the shared token in the database.

mod account;
mod backfill;
mod batch;
mod dispatch;
mod poller;
mod puller;
mod reconcile;
mod tokens;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hub_core::BrandCode;
use hub_store::{Brand, EngineStore, ReconcileStore, SqlStore, Store};
use iys_client::{Budgets, ClientConfig, IysClient, Limits, Secret};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// Records how long each change that IYS has now answered for good took from the ledger to that
/// answer (`iyshub_outbox_age_seconds`, by outcome): the hub's side of IYS's 3-business-day rule.
fn observe_ages(settled: &[(hub_store::OutboxItem, hub_store::Settlement)], now: Timestamp) {
    for (item, settlement) in settled {
        let outcome = match settlement {
            hub_store::Settlement::Delivered { .. } => "delivered",
            hub_store::Settlement::Refused { .. } => "refused",
            _ => continue,
        };
        let age = now.duration_since(item.created_at).as_secs_f64().max(0.0);
        metrics::histogram!("iyshub_outbox_age_seconds", "outcome" => outcome).record(age);
    }
}

pub use backfill::{BackfillReport, Backfills};
pub use batch::{Send as SendPlan, plan};
pub use poller::BULK_RESULT_MISSING;
pub use reconcile::{ReconcileConfig, ReconcileError};
pub use tokens::DbTokenStore;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How often the changes feed is read.
    pub pull_interval: Duration,
    /// How often the outbox is looked at when it was empty.
    pub dispatch_interval: Duration,
    /// Up to this many due rows go as single adds; more go as bulk requests.
    pub single_max: usize,
    /// Bulk requests of 1,000 sent side by side when the queue is long. The client's budget
    /// keeps them within IYS's rate (10 requests a second), so a burst goes out in one round.
    pub bulks_at_once: usize,
    /// IYS asks for no bulk-result poll sooner than this after submission.
    pub bulk_min_poll_age: Duration,
    pub bulk_poll_every: Duration,
    /// Waits before retry 1, 2, …; the last repeats.
    pub retry_schedule: Vec<Duration>,
    /// How long a claimed row stays with this instance.
    pub lease: Duration,
    /// First pause of a brand's dispatch after an account-level failure; doubles with each
    /// failure in a row up to `pause_max`.
    pub pause_base: Duration,
    pub pause_max: Duration,
    /// A bulk request with no result this long after submission is sent again (IYS keeps
    /// requestIds for 60 days; a day without a result means something went wrong there).
    pub bulk_result_timeout: Duration,
    /// The instance's IYS API password, for connections without their own.
    pub iys_password: Secret,
    /// Allowed IYS base URLs, the key that opens connection passwords, the default connection.
    pub iys: hub_store::IysPolicy,
    pub budgets: Budgets,
    /// Where the engines and their IYS clients read the time (tests use the simulator's clock).
    pub clock: Arc<dyn iys_client::Clock>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            pull_interval: Duration::from_secs(60),
            dispatch_interval: Duration::from_secs(1),
            single_max: 25,
            bulks_at_once: 10,
            bulk_min_poll_age: Duration::from_secs(300),
            bulk_poll_every: Duration::from_secs(60),
            retry_schedule: [5, 30, 120, 600, 1800, 3600]
                .map(Duration::from_secs)
                .to_vec(),
            lease: Duration::from_secs(300),
            pause_base: Duration::from_secs(30),
            pause_max: Duration::from_secs(900),
            bulk_result_timeout: Duration::from_secs(86_400),
            iys_password: Secret::new(""),
            iys: hub_store::IysPolicy::default(),
            budgets: Budgets::default(),
            clock: Arc::new(iys_client::SystemClock),
        }
    }
}

/// What the engines need of the database: the ledger ([`Store`]), the outbox, cursors and
/// tokens ([`EngineStore`]) and the daily reconciliation ([`ReconcileStore`]).
pub trait EngineDb: Store + EngineStore + ReconcileStore + std::fmt::Debug + 'static {}

impl<T: Store + EngineStore + ReconcileStore + std::fmt::Debug + 'static> EngineDb for T {}

/// The engines of one instance, on any database that gives them what they need ([`EngineDb`];
/// the hub runs them on [`SqlStore`]).
#[derive(Debug)]
pub struct Engines<S = SqlStore> {
    store: Arc<S>,
    config: EngineConfig,
    /// Identifies this instance's leases.
    owner: String,
    /// Clients by (base URL, user, password seal, iysCode): brands of one API user share one.
    clients: Mutex<HashMap<(String, String, String, u64), IysClient>>,
    /// IYS's limits by base URL: IYS counts them per IP, and this instance's clients of every
    /// account leave through its one IP, so they share one set of budgets.
    limits: Mutex<HashMap<String, Arc<Limits>>>,
    /// Why each brand that cannot reach IYS cannot (logged once per change).
    not_connected: Mutex<HashMap<BrandCode, String>>,
    /// Beats on every round of the engines' supervisor (`/readyz`).
    heartbeat: Arc<hub_core::Heartbeat>,
    reconciler: reconcile::Reconciler,
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

fn later(now: Timestamp, d: Duration) -> Timestamp {
    now.saturating_add(signed(d)).unwrap_or(now)
}

impl<S: EngineDb> Engines<S> {
    pub fn new(store: Arc<S>, config: EngineConfig) -> Self {
        Engines {
            store,
            config,
            owner: format!("iyshub-{}", uuid::Uuid::new_v4().simple()),
            clients: Mutex::new(HashMap::new()),
            limits: Mutex::new(HashMap::new()),
            not_connected: Mutex::new(HashMap::new()),
            heartbeat: Arc::new(hub_core::Heartbeat::new(Duration::from_secs(60))),
            reconciler: reconcile::Reconciler::default(),
        }
    }

    fn now(&self) -> Timestamp {
        self.config.clock.now()
    }

    pub fn pull_interval(&self) -> Duration {
        self.config.pull_interval
    }

    /// The engines' heartbeat, for `/readyz`.
    pub fn heartbeat(&self) -> Arc<hub_core::Heartbeat> {
        self.heartbeat.clone()
    }

    /// The IYS client of a brand's connection (shared by brands with the same API user), or why
    /// the brand cannot reach IYS.
    pub async fn client(&self, brand: &Brand) -> Result<IysClient, hub_store::NotConnected> {
        let c = self.config.iys.resolve(&brand.iys)?;
        let seal = brand.iys.password_sealed.clone().unwrap_or_default();
        let key = (c.base_url.clone(), c.username.clone(), seal, brand.iys_code);
        let mut clients = self.clients.lock().await;
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let password = c
            .password
            .clone()
            .map(Secret::new)
            .unwrap_or_else(|| self.config.iys_password.clone());
        let mut cfg = ClientConfig::new(
            c.base_url.clone(),
            c.username.clone(),
            password,
            brand.iys_code,
        );
        cfg.budgets = self.config.budgets.clone();
        cfg.bulk.min_age = self.config.bulk_min_poll_age;
        let store = Arc::new(DbTokenStore::new(self.store.clone(), c.token_key()));
        let limits = self
            .limits
            .lock()
            .await
            .entry(c.base_url.clone())
            .or_insert_with(|| Limits::new(&self.config.budgets, self.config.clock.clone()))
            .clone();
        let client = IysClient::with_limits(cfg, store, self.config.clock.clone(), limits)
            .map_err(|e| hub_store::NotConnected::Password(e.to_string()))?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// Runs until `cancel` fires: one task per brand, so one brand's back-off, bad data or slow
    /// IYS never delays another; a task that dies is started again on the next round.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut tasks: HashMap<BrandCode, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            self.heartbeat.beat();
            match self.store.brands().await {
                Ok(brands) => {
                    for brand in brands {
                        let code = brand.brand_code;
                        if tasks.get(&code).is_some_and(|t| !t.is_finished()) {
                            continue;
                        }
                        if let Some(done) = tasks.remove(&code)
                            && let Err(e) = done.await
                        {
                            tracing::error!(brand = %code, error = %e, "a brand's IYS engine died; starting it again");
                        }
                        let engines = self.clone();
                        let cancel = cancel.clone();
                        tasks.insert(
                            code,
                            tokio::spawn(async move { engines.brand_loop(code, cancel).await }),
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not list brands"),
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        for (_, task) in tasks {
            // Each task ends on the same cancellation; a task that panicked has nothing to wait for.
            let _ = task.await;
        }
    }

    /// One brand's engine loop, until the brand is gone or `cancel` fires.
    async fn brand_loop(self: Arc<Self>, code: BrandCode, cancel: CancellationToken) {
        loop {
            let busy = match self.store.brand(code).await {
                Ok(Some(brand)) => match self.tick(&brand).await {
                    Ok(worked) => worked,
                    Err(e) => {
                        tracing::warn!(brand = %code, error = %e, "IYS engine step failed");
                        false
                    }
                },
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(brand = %code, error = %e, "could not read the brand");
                    false
                }
            };
            let pause = if busy {
                Duration::from_millis(10)
            } else {
                self.config.dispatch_interval
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One round for one brand: dispatch, poll bulk results, pull when due. True if work was done.
    pub async fn tick(&self, brand: &Brand) -> Result<bool, hub_store::StoreError> {
        let client = match self.client(brand).await {
            Ok(c) => {
                self.not_connected.lock().await.remove(&brand.brand_code);
                c
            }
            Err(why) => {
                let why = why.to_string();
                let mut seen = self.not_connected.lock().await;
                if seen.get(&brand.brand_code) != Some(&why) {
                    tracing::warn!(brand = %brand.brand_code, reason = %why, "brand not connected to IYS: nothing is sent or pulled");
                    seen.insert(brand.brand_code, why);
                }
                return Ok(false);
            }
        };
        let sent = self.dispatch(brand, &client).await?;
        let polled = self.poll_bulks(brand, &client).await?;
        let every = self.config.pull_interval.as_millis() as i64;
        let pulled = if self
            .store
            .claim_pull(brand.brand_code, self.now(), every)
            .await?
        {
            self.pull(brand, &client).await?
        } else {
            0
        };
        let reconciled = self.reconcile_due(brand, &client).await?;
        Ok(sent + polled + pulled > 0 || reconciled)
    }
}

#[cfg(test)]
mod tests {
    use hub_core::Channel;
    use hub_store::{OutboxItem, Settlement};
    use iys::{ConsentDate, ConsentStatus, ConsentType, HsSource, RecipientType, Source};
    use jiff::Timestamp;

    fn item(created: i64) -> OutboxItem {
        OutboxItem {
            id: 1,
            event_id: 1,
            recipient: "+905321234567".into(),
            recipient_type: RecipientType::Bireysel,
            channel: Channel::Iys(ConsentType::Mesaj),
            status: ConsentStatus::Ret,
            consent_date: ConsentDate::parse("2026-11-27 10:00:00").unwrap(),
            source: Source::Hs(HsSource::HsWeb),
            attempts: 0,
            deadline: Timestamp::from_second(created + 86_400).unwrap(),
            request_id: None,
            sub_request_id: None,
            submitted_at: None,
            bulk_index: None,
            created_at: Timestamp::from_second(created).unwrap(),
        }
    }

    #[test]
    fn final_answers_are_timed_from_the_ledger() {
        let recorder = hub::metrics::recorder();
        let handle = recorder.handle();
        let now = Timestamp::from_second(1_000 + 7_200).unwrap();
        let settled = vec![
            (
                item(1_000),
                Settlement::Delivered {
                    transaction_id: "t".into(),
                    creation_date: None,
                },
            ),
            (
                item(1_000),
                Settlement::Retry {
                    error: "timeout".into(),
                    at: now,
                },
            ),
        ];
        metrics::with_local_recorder(&recorder, || super::observe_ages(&settled, now));
        let text = handle.render();
        assert!(
            text.contains("iyshub_outbox_age_seconds_bucket{outcome=\"delivered\",le=\"14400\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("iyshub_outbox_age_seconds_bucket{outcome=\"delivered\",le=\"3600\"} 0"),
            "{text}"
        );
        assert!(text.contains("iyshub_outbox_age_seconds_count{outcome=\"delivered\"} 1"));
        assert!(
            !text.contains("outcome=\"retry\""),
            "only final answers: {text}"
        );
    }
}
