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
//! All of them share one IYS token per API user through the database, so instances and restarts
//! honour an H084 halt.

mod batch;
mod reconcile;
mod tokens;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hub_core::{BrandCode, Mode, Origin};
use hub_store::{Brand, EngineStore, OutboxItem, Settlement, SqlStore, Store};
use iys::wire::{BulkItemStatus, ChangeSource, Consent};
use iys_client::{Budgets, ClientConfig, ClientError, IysClient, Secret};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

pub use batch::{Send as SendPlan, plan};
pub use reconcile::{ReconcileConfig, ReconcileError};
pub use tokens::DbTokenStore;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How often the changes feed is read.
    pub pull_interval: Duration,
    /// How often the outbox is looked at when it was empty.
    pub dispatch_interval: Duration,
    /// Up to this many due rows go as single adds; more go as one bulk request.
    pub single_max: usize,
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

/// The engines of one instance.
#[derive(Debug)]
pub struct Engines {
    store: Arc<SqlStore>,
    config: EngineConfig,
    /// Identifies this instance's leases.
    owner: String,
    /// Clients by (base URL, user, password seal, iysCode): brands of one API user share one.
    clients: Mutex<HashMap<(String, String, String, u64), IysClient>>,
    /// Why each brand that cannot reach IYS cannot (logged once per change).
    not_connected: Mutex<HashMap<BrandCode, String>>,
    /// Beats on every round of the engines' supervisor (`/readyz`).
    heartbeat: Arc<hub::Heartbeat>,
    reconciler: reconcile::Reconciler,
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

fn later(now: Timestamp, d: Duration) -> Timestamp {
    now.saturating_add(signed(d)).unwrap_or(now)
}

impl Engines {
    pub fn new(store: Arc<SqlStore>, config: EngineConfig) -> Engines {
        Engines {
            store,
            config,
            owner: format!("iyshub-{}", uuid::Uuid::new_v4().simple()),
            clients: Mutex::new(HashMap::new()),
            not_connected: Mutex::new(HashMap::new()),
            heartbeat: Arc::new(hub::Heartbeat::new(Duration::from_secs(60))),
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
    pub fn heartbeat(&self) -> Arc<hub::Heartbeat> {
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
        let client = IysClient::with_parts(cfg, store, self.config.clock.clone())
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

    fn retry_at(&self, now: Timestamp, attempts: i64) -> Timestamp {
        let schedule = &self.config.retry_schedule;
        let base = schedule
            .get(attempts as usize)
            .or(schedule.last())
            .copied()
            .unwrap_or(Duration::from_secs(60));
        // ±20 % jitter so many rows do not come back at the same moment.
        let jitter = 0.8 + fastrand::f64() * 0.4;
        later(now, base.mul_f64(jitter))
    }

    /// What to do with a failed delivery.
    fn failure(&self, e: &ClientError, item: &OutboxItem, now: Timestamp) -> Settlement {
        match e {
            ClientError::TokenHalted { until } => Settlement::Retry {
                error: e.to_string(),
                at: *until,
            },
            ClientError::Iys { errors, .. } if !e.is_transient() && !errors.is_empty() => {
                Settlement::Refused {
                    code: errors[0].code.clone(),
                    message: errors[0].message.clone(),
                }
            }
            _ if e.is_transient() => Settlement::Retry {
                error: e.to_string(),
                at: self.retry_at(now, item.attempts),
            },
            // Refused, but without an H-code: keep it visible, do not loop.
            _ => Settlement::Refused {
                code: "unknown".into(),
                message: e.to_string(),
            },
        }
    }

    /// Pauses the brand's dispatch after an account-level failure; returns until when.
    async fn pause(&self, brand: &Brand, reason: &str) -> Result<Timestamp, hub_store::StoreError> {
        let p = self
            .store
            .pause_dispatch(
                brand.brand_code,
                reason,
                self.now(),
                self.config.pause_base.as_millis() as i64,
                self.config.pause_max.as_millis() as i64,
            )
            .await?;
        tracing::error!(brand = %brand.brand_code, until = %p.until, failures = p.failures, reason, "IYS refused the brand's account: dispatch paused, changes stay pending");
        Ok(p.until)
    }

    /// Sends due rows. Returns how many were claimed.
    pub async fn dispatch(
        &self,
        brand: &Brand,
        client: &IysClient,
    ) -> Result<usize, hub_store::StoreError> {
        let now = self.now();
        // An expired pause stays recorded until IYS accepts a request again.
        let recorded = self.store.dispatch_pause(brand.brand_code).await?;
        let was_paused = recorded.is_some();
        let mut paused = recorded.filter(|p| p.until > now);
        if paused
            .as_ref()
            .is_some_and(|p| !p.reason.starts_with("H525"))
        {
            return Ok(0);
        }
        let lease = self.config.lease.as_millis() as i64;
        let items = self
            .store
            .claim_pending(
                brand.brand_code,
                &self.owner,
                now,
                lease,
                iys::rules::MAX_BULK as i64,
            )
            .await?;
        if items.is_empty() {
            return Ok(0);
        }
        let count = items.len();
        let mut settled = Vec::with_capacity(count);
        // Over quota (H525) only new records are refused: RETs and updates still go.
        let (items, waiting): (Vec<OutboxItem>, Vec<OutboxItem>) = match &paused {
            Some(_) => items
                .into_iter()
                .partition(|i| i.status == iys::ConsentStatus::Ret),
            None => (items, Vec::new()),
        };
        if let Some(p) = &paused {
            settled.extend(
                waiting
                    .into_iter()
                    .map(|i| (i, Settlement::Paused { until: p.until })),
            );
        }
        let mut delivered = false;
        match plan(items, self.config.single_max) {
            SendPlan::Single(items) => {
                let mut stop: Option<Timestamp> = None;
                for item in items {
                    if let Some(until) = stop {
                        settled.push((item, Settlement::Paused { until }));
                        continue;
                    }
                    let consent = wire(&item);
                    let s = match client.add_consent(brand.brand_code.0, &consent).await {
                        Ok(r) => {
                            delivered = true;
                            Settlement::Delivered {
                                transaction_id: r.transaction_id,
                                creation_date: Some(r.creation_date),
                            }
                        }
                        Err(e) => match account_failure(&e) {
                            Some(reason) => {
                                let until = self.pause(brand, &reason).await?;
                                stop = Some(until);
                                paused = None;
                                Settlement::Paused { until }
                            }
                            None => self.failure(&e, &item, self.now()),
                        },
                    };
                    settled.push((item, s));
                }
            }
            SendPlan::Bulk(items) => {
                let consents: Vec<Consent> = items.iter().map(wire).collect();
                match client.submit_bulk(brand.brand_code.0, &consents).await {
                    Ok(accepted) => {
                        delivered = true;
                        let poll_at = later(self.now(), self.config.bulk_min_poll_age);
                        let mut subs = match_sub_requests(&items, &accepted);
                        for (i, item) in items.into_iter().enumerate() {
                            let s = match subs.get_mut(i).and_then(Option::take) {
                                Some((request_id, sub_request_id, index)) => {
                                    Settlement::Submitted {
                                        request_id,
                                        sub_request_id,
                                        index,
                                        poll_at,
                                    }
                                }
                                // IYS's answer names no sub-request for it: send it again
                                // (v2 answers a re-sent consent with the original's result).
                                None => Settlement::Retry {
                                    error: "IYS's bulk answer has no sub-request for this item"
                                        .into(),
                                    at: self.retry_at(self.now(), item.attempts),
                                },
                            };
                            settled.push((item, s));
                        }
                    }
                    Err(ClientError::Iys {
                        status: 422 | 403,
                        errors,
                    }) if errors.iter().any(|e| e.index.is_some()) => {
                        // IYS refused the list for some items: those are refused, the rest go again.
                        let now = self.now();
                        for (i, item) in items.into_iter().enumerate() {
                            let s = match errors.iter().find(|e| e.index == Some(i)) {
                                Some(e) => Settlement::Refused {
                                    code: e.code.clone(),
                                    message: e.message.clone(),
                                },
                                None => Settlement::Retry {
                                    error: "resent without the refused items".into(),
                                    at: now,
                                },
                            };
                            settled.push((item, s));
                        }
                    }
                    Err(e) => match account_failure(&e) {
                        Some(reason) => {
                            let until = self.pause(brand, &reason).await?;
                            paused = None;
                            settled.extend(
                                items.into_iter().map(|i| (i, Settlement::Paused { until })),
                            );
                        }
                        None => {
                            let now = self.now();
                            for item in items {
                                let s = self.failure(&e, &item, now);
                                settled.push((item, s));
                            }
                        }
                    },
                }
            }
        }
        self.store
            .settle(brand.brand_code, &self.owner, settled, self.now())
            .await?;
        if delivered && was_paused && paused.is_none_or(|p| !p.reason.starts_with("H525")) {
            self.store.resume_dispatch(brand.brand_code).await?;
        }
        Ok(count)
    }

    /// Collects due bulk results. Returns how many rows were looked at.
    pub async fn poll_bulks(
        &self,
        brand: &Brand,
        client: &IysClient,
    ) -> Result<usize, hub_store::StoreError> {
        let now = self.now();
        if self
            .store
            .dispatch_pause(brand.brand_code)
            .await?
            .is_some_and(|p| p.until > now && !p.reason.starts_with("H525"))
        {
            return Ok(0);
        }
        let lease = self.config.lease.as_millis() as i64;
        let items = self
            .store
            .claim_awaiting(brand.brand_code, &self.owner, now, lease, 10_000)
            .await?;
        if items.is_empty() {
            return Ok(0);
        }
        let count = items.len();
        let mut by_request: HashMap<String, Vec<OutboxItem>> = HashMap::new();
        for item in items {
            by_request
                .entry(item.request_id.clone().unwrap_or_default())
                .or_default()
                .push(item);
        }
        let mut settled = Vec::with_capacity(count);
        for (request_id, items) in by_request {
            let now = self.now();
            let later_poll = later(now, self.config.bulk_poll_every);
            let results = match client.bulk_result(brand.brand_code.0, &request_id).await {
                Ok(results) => results,
                Err(e) => {
                    tracing::warn!(%request_id, error = %e, "bulk result not available yet");
                    Vec::new()
                }
            };
            for item in items {
                // Matched by subRequestId, or by IYS's `index` when the id is missing; never
                // by the position in IYS's answer.
                let r = results.iter().find(|r| match &r.sub_request_id {
                    Some(id) => Some(id.as_str()) == item.sub_request_id.as_deref(),
                    None => item.bulk_index == Some(r.index as i64),
                });
                let s = match r {
                    Some(r) if r.status == BulkItemStatus::Success => Settlement::Delivered {
                        transaction_id: r.transaction_id.clone().unwrap_or_default(),
                        creation_date: r.creation_date,
                    },
                    Some(r) if r.status == BulkItemStatus::Failure => {
                        let (code, message) = r
                            .error
                            .as_ref()
                            .map_or(("unknown".into(), String::new()), |e| {
                                (e.code.clone(), e.message.clone())
                            });
                        Settlement::Refused { code, message }
                    }
                    _ if self.overdue(&item, now) => {
                        tracing::warn!(%request_id, outbox = item.id, "no bulk result in time: escalated");
                        self.escalation(&item, &request_id, now)
                    }
                    _ => Settlement::StillQueued {
                        poll_at: later_poll,
                    },
                };
                settled.push((item, s));
            }
        }
        self.store
            .settle(brand.brand_code, &self.owner, settled, self.now())
            .await?;
        Ok(count)
    }

    /// Whether a bulk item has waited longer for its result than IYS should ever take.
    fn overdue(&self, item: &OutboxItem, now: Timestamp) -> bool {
        item.submitted_at
            .is_some_and(|t| later(t, self.config.bulk_result_timeout) <= now)
    }

    /// A bulk item IYS never answered: sent again (a v2 re-send of a consent IYS already has
    /// is answered with the original), and after three such rounds left failed for a person.
    fn escalation(&self, item: &OutboxItem, request_id: &str, now: Timestamp) -> Settlement {
        let error = format!(
            "no result for bulk request {request_id} within {} s",
            self.config.bulk_result_timeout.as_secs()
        );
        if item.attempts >= 3 {
            Settlement::Refused {
                code: BULK_RESULT_MISSING.into(),
                message: error,
            }
        } else {
            Settlement::Retry { error, at: now }
        }
    }

    /// Reads the changes feed. Returns how many movements were new.
    pub async fn pull(
        &self,
        brand: &Brand,
        client: &IysClient,
    ) -> Result<usize, hub_store::StoreError> {
        let mut sources = vec![ChangeSource::Iys];
        if brand.mode == Mode::Sync {
            // Other systems of the brand may write to IYS; IYS is the master.
            sources.push(ChangeSource::Hs);
        }
        let mut new = 0;
        for source in sources {
            let mut cursor = self.store.cursor(brand.brand_code, source.as_str()).await?;
            loop {
                match client
                    .changes_page_raw(brand.brand_code.0, source, cursor.as_deref(), 1000)
                    .await
                {
                    Ok(None) => {
                        self.store
                            .touch_cursor(brand.brand_code, source.as_str())
                            .await?;
                        break;
                    }
                    Ok(Some(page)) => {
                        let full = page.list.len() >= 1000;
                        let (changes, quarantined) = hub_core::screen_movements(
                            brand.brand_code,
                            page.list,
                            Origin::IysPull,
                            self.now(),
                        );
                        if !quarantined.is_empty() {
                            tracing::warn!(brand = %brand.brand_code, count = quarantined.len(), "movements from IYS set aside for a person (quarantine)");
                            self.store
                                .quarantine(
                                    brand.brand_code,
                                    source.as_str(),
                                    &quarantined,
                                    self.now(),
                                )
                                .await?;
                        }
                        let applied = self
                            .store
                            .apply_pull(brand, changes, source.as_str(), &page.after)
                            .await?;
                        new += applied.iter().filter(|a| a.event_id.is_some()).count();
                        cursor = Some(page.after);
                        if !full {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(brand = %brand.brand_code, error = %e, "pulling IYS's changes failed; will retry");
                        break;
                    }
                }
            }
        }
        Ok(new)
    }
}

/// The failure code of a bulk item IYS never answered.
pub const BULK_RESULT_MISSING: &str = "bulk_result_missing";

/// An account-level failure: IYS refuses the API user or the brand as a whole (credentials,
/// rights, subscription, quota), or the answer is not IYS's at all. Every item would fail the
/// same way, so the brand's dispatch pauses and its items stay pending. The reason starts with
/// the H-code where IYS gave one.
fn account_failure(e: &ClientError) -> Option<String> {
    const ACCOUNT_CODES: [&str; 7] = ["H353", "H520", "H521", "H522", "H524", "H525", "H586"];
    match e {
        ClientError::OAuth { .. } => Some(format!("IYS refused the API user's credentials: {e}")),
        ClientError::Store(_) => Some(format!(
            "the shared IYS token could not be read or saved: {e}"
        )),
        ClientError::Decode { .. } => Some(format!("the IYS URL does not answer like IYS: {e}")),
        ClientError::Iys { status: 401, .. } => {
            Some(format!("IYS refused the API user's token: {e}"))
        }
        ClientError::Iys { errors, .. } => errors
            .iter()
            .find(|x| ACCOUNT_CODES.contains(&x.code.as_str()))
            .map(|x| format!("{}: {e}", x.code)),
        ClientError::RetriesExhausted { last, .. } => account_failure(last),
        _ => None,
    }
}

/// Pairs each submitted item with its sub-request: by recipient, type and recipientType (unique
/// within a bulk request), falling back to the position only when IYS's sub-request there names
/// the same consent. The index is the item's position in its request (IYS's result `index`).
fn match_sub_requests(
    items: &[OutboxItem],
    accepted: &[iys::wire::BulkAccepted],
) -> Vec<Option<(String, String, i64)>> {
    type SubKey = (String, iys::RecipientType, iys::ConsentType);
    let mut by_key: HashMap<SubKey, (String, String)> = HashMap::new();
    let mut by_position = Vec::new();
    for a in accepted {
        for s in &a.sub_requests {
            let key = (
                s.recipient.clone(),
                s.recipient_type.unwrap_or_default(),
                s.consent_type,
            );
            by_position.push((a.request_id.clone(), s.sub_request_id.clone(), key.clone()));
            by_key.insert(key, (a.request_id.clone(), s.sub_request_id.clone()));
        }
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let consent_type = item.channel.iys_type()?;
            let key = (item.recipient.clone(), item.recipient_type, consent_type);
            let index = (i % iys::rules::MAX_BULK) as i64;
            by_key
                .remove(&key)
                .or_else(|| {
                    by_position
                        .get(i)
                        .filter(|(_, _, k)| *k == key)
                        .map(|(r, s, _)| (r.clone(), s.clone()))
                })
                .map(|(r, s)| (r, s, index))
        })
        .collect()
}

/// The IYS body of an outbox row.
fn wire(item: &OutboxItem) -> Consent {
    Consent {
        recipient: item.recipient.clone(),
        consent_type: item.channel.iys_type().unwrap_or(iys::ConsentType::Mesaj),
        source: Some(item.source.clone()),
        status: item.status,
        consent_date: Some(item.consent_date),
        recipient_type: Some(item.recipient_type),
        retailer_code: None,
        retailer_access: None,
    }
}

/// Where a backfill stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillReport {
    /// Recipients asked about with multi-status (1000 per call).
    pub checked: u64,
    /// Of those, ONAY in IYS.
    pub onay_in_iys: u64,
    /// Held recipients asked about one by one (single status, 1000 per hour).
    pub single_checked: u64,
    /// Held changes released for sending (sync mode).
    pub released: u64,
    /// True when every known recipient was checked.
    pub complete: bool,
}

const BACKFILL_DONE: &str = "\u{10ffff}";

impl Engines {
    /// Learns which of the brand's known recipients IYS has: multi-status for all (resumable,
    /// progress in the cursor table), then single status for held recipients, at most
    /// `max_single` of them this run (IYS allows 1000 single-status queries per hour).
    pub async fn backfill(
        &self,
        brand: &Brand,
        max_single: u64,
        progress: impl Fn(&BackfillReport),
    ) -> Result<BackfillReport, ClientError> {
        let client = self
            .client(brand)
            .await
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let store_err = |e: hub_store::StoreError| ClientError::Store(e.to_string());
        let mut report = BackfillReport::default();
        for consent_type in [
            iys::ConsentType::Mesaj,
            iys::ConsentType::Arama,
            iys::ConsentType::Eposta,
        ] {
            for recipient_type in [iys::RecipientType::Bireysel, iys::RecipientType::Tacir] {
                let channel = hub_core::Channel::Iys(consent_type);
                let source = format!("backfill:{consent_type}:{recipient_type}");
                let mut after = self
                    .store
                    .cursor(brand.brand_code, &source)
                    .await
                    .map_err(store_err)?
                    .unwrap_or_default();
                while after != BACKFILL_DONE {
                    let page = self
                        .store
                        .known_recipients(brand.brand_code, channel, recipient_type, &after, 1000)
                        .await
                        .map_err(store_err)?;
                    let Some(last) = page.last().cloned() else {
                        after = BACKFILL_DONE.into();
                        self.store
                            .set_cursor(brand.brand_code, &source, &after)
                            .await
                            .map_err(store_err)?;
                        break;
                    };
                    let onay = client
                        .multi_status(brand.brand_code.0, recipient_type, consent_type, &page)
                        .await?;
                    report.released += self
                        .store
                        .mark_known(brand.brand_code, channel, recipient_type, &onay)
                        .await
                        .map_err(store_err)?;
                    report.checked += page.len() as u64;
                    report.onay_in_iys += onay.len() as u64;
                    self.store
                        .set_cursor(brand.brand_code, &source, &last)
                        .await
                        .map_err(store_err)?;
                    after = last;
                    progress(&report);
                }
                // RET or unknown look alike in multi-status; ask one by one for held recipients.
                let held = self
                    .store
                    .held_recipients(
                        brand.brand_code,
                        channel,
                        recipient_type,
                        (max_single - report.single_checked.min(max_single)) as i64,
                    )
                    .await
                    .map_err(store_err)?;
                for r in held {
                    let q = iys::wire::ConsentQuery {
                        recipient: r.clone(),
                        recipient_type,
                        consent_type,
                    };
                    report.single_checked += 1;
                    if client.status(brand.brand_code.0, &q).await?.is_some() {
                        report.released += self
                            .store
                            .mark_known(
                                brand.brand_code,
                                channel,
                                recipient_type,
                                std::slice::from_ref(&r),
                            )
                            .await
                            .map_err(store_err)?;
                    }
                    progress(&report);
                }
            }
        }
        report.complete = report.single_checked < max_single;
        Ok(report)
    }
}

/// Backfills started through the API, run by this instance's engines.
#[derive(Debug)]
pub struct Backfills {
    engines: Arc<Engines>,
    state: Arc<std::sync::Mutex<HashMap<BrandCode, (bool, serde_json::Value)>>>,
}

impl Backfills {
    pub fn new(engines: Arc<Engines>) -> Backfills {
        Backfills {
            engines,
            state: Default::default(),
        }
    }
}

impl hub::Backfill for Backfills {
    fn start(&self, brand: Brand) -> bool {
        let code = brand.brand_code;
        {
            let mut state = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if state.get(&code).is_some_and(|(running, _)| *running) {
                return false;
            }
            state.insert(code, (true, serde_json::Value::Null));
        }
        let (engines, state) = (self.engines.clone(), self.state.clone());
        tokio::spawn(async move {
            let progress_state = state.clone();
            // IYS allows 1000 single-status queries per hour; leave room for send-time use.
            let result = engines
                .backfill(&brand, 900, move |r| {
                    let v = serde_json::to_value(r).unwrap_or_default();
                    progress_state
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(code, (true, v));
                })
                .await;
            let last = match result {
                Ok(r) => serde_json::to_value(r).unwrap_or_default(),
                Err(e) => serde_json::json!({"error": e.to_string()}),
            };
            state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(code, (false, last));
        });
        true
    }

    fn report(&self, brand: BrandCode) -> serde_json::Value {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match state.get(&brand) {
            Some((running, report)) => serde_json::json!({"running": running, "report": report}),
            None => serde_json::json!({"running": false, "report": null}),
        }
    }
}
