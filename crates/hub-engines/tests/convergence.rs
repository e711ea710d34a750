//! Convergence property: random interleavings of hub writes (single and batch), citizen
//! movements in IYS (including same-second pairs sharing a transactionId), pulls, pushes,
//! injected faults and engine restarts. After quiescence the hub's status for every consent equals
//! IYS's, and the send-time check never allows a consent IYS holds as RET.
//!
//! Each run is seeded (`IYSHUB_CONVERGENCE_SEED=n` replays one); a failure prints the seed and,
//! for every consent that differs, the hub's history.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hub_core::{BrandCode, Change, IysState, Mode, Origin, Policy};
use hub_engines::{EngineConfig, Engines};
use hub_store::{EngineStore, Store};
use iys::wire::ChangeSource;
use iys::{ConsentDate, ConsentStatus};
use iys_client::{ClientConfig, IysClient, Secret};
use iys_sim::{Profile, SimConfig};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use common::*;

const KEYS: u64 = 30;
const OPS: usize = 220;

fn recipient(n: u64) -> String {
    format!("+90532{n:07}")
}

/// Consent dates from a logical clock: citizens get even seconds and the hub odd ones, so a hub
/// write never ties with a citizen's movement by accident (ties are tested on their own).
struct Dates {
    base: Timestamp,
    tick: i64,
}

impl Dates {
    fn next(&mut self, odd: bool) -> ConsentDate {
        self.tick += 1;
        self.at(self.tick, odd)
    }

    fn at(&self, tick: i64, odd: bool) -> ConsentDate {
        let secs = 2 * tick + i64::from(odd);
        ConsentDate::from_timestamp(
            self.base
                .saturating_add(SignedDuration::from_secs(secs))
                .unwrap_or(self.base),
        )
    }
}

fn config(sim_url: &str) -> EngineConfig {
    EngineConfig {
        // Short leases so a restart's orphaned claims come back soon.
        lease: Duration::from_secs(2),
        ..engine_config(sim_url)
    }
}

struct Run {
    w: World,
    rng: fastrand::Rng,
    dates: Dates,
    engines: Arc<Engines>,
    cancel: CancellationToken,
    /// A second reader of IYS's feed, standing in for IYS's push deliveries.
    pusher: IysClient,
    push_cursor: Option<String>,
}

impl Run {
    async fn start(seed: u64, mode: Mode) -> Run {
        let w = World::start(SimConfig::for_profile(Profile::Fast), mode, None).await;
        let engines = Arc::new(Engines::new(w.store.clone(), config(&w.sim.base_url())));
        let cancel = run(&engines);
        let mut cfg = ClientConfig::new(
            w.sim.base_url(),
            "demo",
            Secret::new("demo-password"),
            600_123,
        );
        cfg.budgets.per_second = 200;
        let pusher = IysClient::new(cfg).unwrap();
        Run {
            w,
            rng: fastrand::Rng::with_seed(seed),
            dates: Dates {
                base: Timestamp::now()
                    .saturating_sub(SignedDuration::from_secs(3 * 3600))
                    .unwrap(),
                tick: 0,
            },
            engines,
            cancel,
            pusher,
            push_cursor: None,
        }
    }

    fn hub_change(&mut self, n: u64, status: ConsentStatus, date: ConsentDate) -> Change {
        change(n, status, date)
    }

    fn status(&mut self) -> ConsentStatus {
        if self.rng.bool() {
            ConsentStatus::Onay
        } else {
            ConsentStatus::Ret
        }
    }

    /// A hub write's date: usually the next one, sometimes older than recent changes.
    fn hub_date(&mut self) -> ConsentDate {
        if self.rng.u8(..10) == 0 && self.dates.tick > 20 {
            let back = self.rng.i64(1..20);
            self.dates.at(self.dates.tick - back, true)
        } else {
            self.dates.next(true)
        }
    }

    async fn citizen(&self, n: u64, status: &str, date: ConsentDate) {
        // A citizen cannot repeat IYS's current status (H174): such tries are simply refused.
        let _ = self
            .w
            .sim
            .control(
                reqwest::Method::POST,
                "/_sim/citizen",
                json!({"brandCode": 600123, "recipient": recipient(n), "type": "MESAJ", "status": status, "source": "IYS_MOBIL", "consentDate": date.to_string()}),
            )
            .await;
    }

    /// IYS's push: the movements since the pusher's own cursor, applied like the receiver does.
    async fn push(&mut self) {
        let Ok(Some(page)) = self
            .pusher
            .changes_page(600_123, ChangeSource::Iys, self.push_cursor.as_deref(), 50)
            .await
        else {
            return;
        };
        let now = Timestamp::now();
        let changes: Vec<Change> = page
            .list
            .iter()
            .map(|m| Change::from_iys(BRAND, m, Origin::IysPush, now))
            .collect();
        let brand = self.w.brand().await;
        self.w.store.apply(&brand, changes, None).await.unwrap();
        self.push_cursor = Some(page.after);
    }

    async fn faults(&mut self) {
        if self.rng.bool() {
            self.w
                .control(reqwest::Method::DELETE, "/_sim/faults", json!({}))
                .await;
            return;
        }
        let rate = 0.1 + self.rng.f64() * 0.3;
        self.w
            .control(
                reqwest::Method::PUT,
                "/_sim/faults",
                json!({
                    "add_v2": {"errorRate": rate, "status": 500, "code": "H015", "lostAnswerRate": 0.1},
                    "bulk_v2": {"errorRate": rate, "status": 429, "code": "H124", "lostAnswerRate": 0.1},
                    "bulk_result_v2": {"errorRate": rate, "status": 500, "code": "H015"},
                    "changes": {"errorRate": rate, "status": 503, "code": "H192"}
                }),
            )
            .await;
    }

    fn restart(&mut self) {
        self.cancel.cancel();
        self.engines = Arc::new(Engines::new(
            self.w.store.clone(),
            config(&self.w.sim.base_url()),
        ));
        self.cancel = run(&self.engines);
    }

    async fn step(&mut self) {
        let n = self.rng.u64(..KEYS);
        match self.rng.u8(..100) {
            0..30 => {
                let (status, date) = (self.status(), self.hub_date());
                let c = self.hub_change(n, status, date);
                let brand = self.w.brand().await;
                self.w.store.apply(&brand, vec![c], None).await.unwrap();
            }
            30..45 => {
                let size = self.rng.usize(2..7);
                let mut batch = Vec::with_capacity(size);
                for _ in 0..size {
                    let (m, status, date) = (self.rng.u64(..KEYS), self.status(), self.hub_date());
                    batch.push(self.hub_change(m, status, date));
                }
                let brand = self.w.brand().await;
                self.w.store.apply(&brand, batch, None).await.unwrap();
            }
            45..70 => {
                let status = if self.rng.bool() { "ONAY" } else { "RET" };
                let date = self.dates.next(false);
                self.citizen(n, status, date).await;
            }
            70..78 => {
                // Given and withdrawn within a second: one shared transactionId in IYS.
                let date = self.dates.next(false);
                self.citizen(n, "ONAY", date).await;
                self.citizen(n, "RET", date).await;
            }
            78..86 => self.push().await,
            86..92 => self.faults().await,
            92..96 => self.restart(),
            _ => tokio::time::sleep(Duration::from_millis(self.rng.u64(100..600))).await,
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }

    /// Hub status and IYS status per recipient.
    async fn compare(&self) -> BTreeMap<u64, (Option<ConsentStatus>, Option<String>)> {
        let iys = self.w.iys_state().await;
        let mut out = BTreeMap::new();
        for n in 0..KEYS {
            let hub = self.w.state_of(&recipient(n)).await.map(|s| s.status);
            let theirs = iys.get(&format!("{}/MESAJ", recipient(n))).cloned();
            out.insert(n, (hub, theirs));
        }
        out
    }

    /// Whether the hub agrees with IYS on `n`: the same status, or a RET IYS never had (H175).
    /// In sync mode an ONAY for a recipient IYS does not have stays held.
    async fn agrees(&self, n: u64, hub: Option<ConsentStatus>, iys: Option<&str>) -> bool {
        match (hub, iys) {
            (None, None) => true,
            (Some(h), Some(i)) => h.as_str() == i,
            (Some(ConsentStatus::Ret), None) => true,
            (Some(ConsentStatus::Onay), None) => self
                .w
                .state_of(&recipient(n))
                .await
                .is_some_and(|s| s.iys_state == IysState::Held),
            (None, Some(_)) => false,
        }
    }

    async fn quiet(&self) -> bool {
        let outbox = self.w.outbox().await;
        !outbox.contains_key("pending") && !outbox.contains_key("awaiting_result")
    }

    async fn converge(&self, seed: u64) {
        self.w
            .control(reqwest::Method::DELETE, "/_sim/faults", json!({}))
            .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            // A pull after the last movement, then a calm outbox and agreement on every key.
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let mut agreed = self.quiet().await;
            let pairs = self.compare().await;
            for (n, (hub, iys)) in &pairs {
                agreed &= self.agrees(*n, *hub, iys.as_deref()).await;
            }
            if agreed {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let mut report = format!(
                    "seed {seed}: no convergence; outbox {:?}\n",
                    self.w.outbox().await
                );
                for (n, (hub, iys)) in pairs {
                    if !self.agrees(n, hub, iys.as_deref()).await {
                        let history = self.w.store.history(BRAND, &recipient(n), 50).await;
                        report.push_str(&format!(
                            "  {}: hub {hub:?} iys {iys:?}\n    state {:?}\n    history {:?}\n",
                            recipient(n),
                            self.w.state_of(&recipient(n)).await,
                            history.map(|h| h
                                .iter()
                                .map(|e| format!(
                                    "{} {} {} {} {:?}",
                                    e.status, e.consent_date, e.origin, e.outcome, e.iys_error
                                ))
                                .collect::<Vec<_>>())
                        ));
                    }
                }
                panic!("{report}");
            }
        }
    }

    /// The send-time check never allows a consent IYS holds as RET, whatever the policy.
    async fn checks_deny_every_iys_ret(&self, seed: u64) {
        let iys = self.w.iys_state().await;
        for n in 0..KEYS {
            if iys
                .get(&format!("{}/MESAJ", recipient(n)))
                .map(String::as_str)
                != Some("RET")
            {
                continue;
            }
            let state = self.w.state_of(&recipient(n)).await;
            let send = state.as_ref().map(hub_core::SendState::from);
            for policy in [Policy::Strict, Policy::Lenient] {
                let d = hub_core::check(SMS, send.as_ref(), None, policy);
                assert!(
                    !d.allowed,
                    "seed {seed}: {} is RET in IYS but the check allows it ({policy:?}): {state:?}",
                    recipient(n)
                );
            }
        }
    }
}

async fn property(seed: u64, mode: Mode) {
    let mut r = Run::start(seed, mode).await;
    // Some recipients exist only in IYS: written by another system or by the citizen.
    for n in 0..KEYS / 4 {
        let date = r.dates.next(false);
        r.citizen(n, "ONAY", date).await;
    }
    for _ in 0..OPS {
        r.step().await;
    }
    r.converge(seed).await;
    r.checks_deny_every_iys_ret(seed).await;
    r.cancel.cancel();
    let figures =
        r.w.store
            .sync_figures(BrandCode(600_123), Timestamp::now())
            .await
            .unwrap();
    assert!(figures.paused.is_none(), "seed {seed}: {figures:?}");
    let chain = r.w.store.verify_chain(BRAND).await.unwrap();
    assert!(chain.valid, "seed {seed}: {chain:?}");
    let stats: Value = r.w.stats().await;
    eprintln!(
        "seed {seed} ({mode:?}): converged; IYS movements {}, hub events {}, outbox {:?}",
        stats["movements"],
        chain.events,
        r.w.outbox().await
    );
}

fn seeds(default: &[u64]) -> Vec<u64> {
    match std::env::var("IYSHUB_CONVERGENCE_SEED") {
        Ok(s) => s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Err(_) => default.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrator_mode_converges_with_iys() {
    for seed in seeds(&[11, 23, 37]) {
        property(seed, Mode::Integrator).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_mode_converges_with_iys() {
    for seed in seeds(&[41]) {
        property(seed, Mode::Sync).await;
    }
}
