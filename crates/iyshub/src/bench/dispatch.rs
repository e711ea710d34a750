//! `dispatch`: changes queued in the outbox, sent by the hub's engines to the simulator with
//! IYS's realistic profile (10 requests per sliding second, bulk requests of up to 1,000): how
//! much of IYS's ceiling of 10,000 consents/s the dispatcher uses.
//!
//! How the rate is counted: IYS allows 10 requests in any one second, so a run of k bulk
//! requests occupies IYS's quota from its first request until one second after its last; the
//! rate is the items submitted over that span (the simulator's own submission times). A client
//! that sends 10 full requests at the start of every second scores exactly 10,000/s.
//!
//! Baseline: a bare IYS client (`iys_client`, the same budgets the engines use) submitting the
//! same consents as ready-made bulk requests to its own simulator, all prepared first and sent
//! side by side — the ceiling the client's pacing allows, before the hub's claim, planning and
//! settlement.
//!
//! Before either clock starts the IYS token is fetched and (for the hub) the first pull of the
//! changes feed is marked done, then the quota's second is let pass: the run measures sending.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use hub_engines::EngineConfig;
use hub_store::{EngineStore, Store};
use iys::wire::Consent;
use iys::{ConsentStatus, ConsentType, HsSource, RecipientType, Source};
use iys_client::{ClientConfig, IysClient, Secret};
use iys_sim::{Profile, SimConfig, SimServer};
use tokio_util::sync::CancellationToken;

use super::db::Db;
use super::harness::{self, BRAND};
use super::pull::{engines_for, sim_connection};
use super::{Ctx, Outcome, Scenario, thousands};

/// IYS's ceiling: 10 requests per second of 1,000 consents each.
const CEILING: f64 = 10_000.0;
const TARGET: f64 = 0.98;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Outcome>> {
    let db = ctx.fresh_db().await?;
    let result = run_on(ctx, &db).await;
    let removed = db.remove().await;
    let outcome = result?;
    removed?;
    Ok(vec![outcome])
}

/// What a simulator saw submitted.
#[derive(Debug)]
struct Submitted {
    items: u64,
    requests: u64,
    /// From the first bulk request to the last.
    span: Duration,
    rate_limited: u64,
}

impl Submitted {
    /// Items over the quota time they occupied (see the module's comment).
    fn rate(&self) -> f64 {
        self.items as f64 / (self.span.as_secs_f64() + 1.0)
    }
}

async fn start_sim() -> anyhow::Result<SimServer> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    SimServer::start(SimConfig::for_profile(Profile::Realistic), listener, None)
        .await
        .context("starting the IYS simulator")
}

async fn run_on(ctx: &Ctx, db: &Db) -> anyhow::Result<Outcome> {
    let n = ctx.plan.dispatch_changes as u64;
    let sim = start_sim().await?;
    let base = bare_client(&sim, n).await;
    sim.shutdown().await?;
    let base = base.context("baseline: a bare IYS client")?;

    let sim = start_sim().await?;
    let hub = hub_dispatch(db, &sim, n).await;
    sim.shutdown().await?;
    let (hub, wall) = hub?;
    if hub.items != n {
        bail!("IYS received {} items for {n} queued changes", hub.items);
    }

    let figure = hub.rate();
    let quota = figure / CEILING;
    Ok(Outcome {
        label: Scenario::Dispatch.name().into(),
        scenario: Scenario::Dispatch,
        backend: ctx.backend,
        figure,
        unit: "consents/s".into(),
        baseline: base.rate(),
        baseline_unit: "consents/s".into(),
        baseline_what: "bare IYS client, same budgets".into(),
        ratio: figure / base.rate(),
        target: format!(
            "≥ {TARGET} of IYS's {} consents/s ({quota:.3})",
            thousands(CEILING)
        ),
        met: quota >= TARGET,
        notes: super::check::with_analyze_note(
            db,
            vec![
                format!(
                    "{n} changes in {} bulk request(s), first to last {:.2} s (all sent {:.2} s after the engines started); bare client {} request(s) in {:.2} s ({:.3} of the ceiling)",
                    hub.requests,
                    hub.span.as_secs_f64(),
                    wall.as_secs_f64(),
                    base.requests,
                    base.span.as_secs_f64(),
                    base.rate() / CEILING
                ),
                format!(
                    "IYS's rate limit refused {} of the hub's requests, {} of the bare client's",
                    hub.rate_limited, base.rate_limited
                ),
            ],
        ),
        peak_rss_mib: None,
        seconds: 0.0,
    })
}

/// The simulator's record of the bulk requests it accepted.
fn submitted(sim: &SimServer) -> anyhow::Result<Submitted> {
    let bulks = sim
        .sim
        .state
        .lock()
        .map_err(|_| anyhow!("the simulator's state lock is poisoned"))?
        .snapshot()
        .bulks;
    let (Some(first), Some(last)) = (
        bulks.iter().map(|b| b.submitted).min(),
        bulks.iter().map(|b| b.submitted).max(),
    ) else {
        bail!("the simulator received no bulk request");
    };
    let rate_limited = sim
        .sim
        .stats
        .lock()
        .map_err(|_| anyhow!("the simulator's statistics lock is poisoned"))?
        .rate_limited;
    Ok(Submitted {
        items: bulks.iter().map(|b| b.items.len() as u64).sum(),
        requests: bulks.len() as u64,
        span: Duration::try_from(last.duration_since(first)).unwrap_or_default(),
        rate_limited,
    })
}

/// Accepted bulk requests so far (the simulator's statistics).
fn bulks_accepted(sim: &SimServer) -> anyhow::Result<u64> {
    let stats = sim
        .sim
        .stats
        .lock()
        .map_err(|_| anyhow!("the simulator's statistics lock is poisoned"))?;
    Ok(stats.requests.get("bulk_v2").map_or(0, |by_status| {
        by_status
            .iter()
            .filter(|(s, _)| (200..300).contains(*s))
            .map(|(_, c)| c)
            .sum()
    }))
}

/// Lets IYS's sliding second (and the client's slightly longer one) pass.
/// Also warms the simulator's recipient validation (phone metadata loaded on first use, in this
/// process): the first bulk request of a cold simulator took 69 ms against 4 ms for the next,
/// a cost of the simulator's start and not of the client's pace.
async fn let_quota_second_pass() {
    let _ = iys::Recipient::normalise("+905320000000");
    tokio::time::sleep(Duration::from_millis(1200)).await;
}

async fn bare_client(sim: &SimServer, n: u64) -> anyhow::Result<Submitted> {
    let client = IysClient::new(ClientConfig::new(
        sim.base_url(),
        "demo",
        Secret::new("demo-password"),
        BRAND.0,
    ))?;
    client.check_token().await.context("an IYS token")?;
    let date = harness::recent_date();
    let consents: Vec<Consent> = (0..n)
        .map(|k| Consent {
            recipient: harness::recipient(k),
            consent_type: ConsentType::Mesaj,
            source: Some(Source::Hs(HsSource::HsWeb)),
            status: ConsentStatus::Onay,
            consent_date: Some(date),
            recipient_type: Some(RecipientType::Bireysel),
            retailer_code: None,
            retailer_access: None,
        })
        .collect();
    // Every request ready before the first is sent, all sent side by side: the client's
    // budget alone spaces them, as the dispatcher's rounds do.
    let prepared = consents
        .chunks(iys::rules::MAX_BULK)
        .map(|chunk| client.prepare_bulk(BRAND.0, chunk))
        .collect::<Result<Vec<_>, _>>()
        .context("preparing bulk requests")?;
    let_quota_second_pass().await;
    for sent in
        futures_util::future::join_all(prepared.into_iter().map(|b| client.send_prepared(b))).await
    {
        sent.context("submitting bulk requests")?;
    }
    submitted(sim)
}

async fn hub_dispatch(db: &Db, sim: &SimServer, n: u64) -> anyhow::Result<(Submitted, Duration)> {
    let store = db.store().await?;
    let brand = harness::create_brand(&store, sim_connection(sim)).await?;
    // Integrator mode: every change is queued for IYS.
    harness::seed_consents(&store, &brand, n).await?;
    db.analyze().await?;
    let pending = |counts: &[(String, i64)]| {
        counts
            .iter()
            .find(|(s, _)| s == "pending")
            .map_or(0, |(_, c)| *c)
    };
    let queued = pending(&store.outbox_counts(BRAND).await?);
    if queued != n as i64 {
        bail!("{queued} changes queued for IYS, {n} expected");
    }
    // As `iyshub serve` runs against a realistic simulator: IYS's budgets, its bulk-result floor.
    let floor = Duration::from_millis(sim.sim.config().timing.bulk_min_poll_age_ms);
    let config = EngineConfig {
        bulk_min_poll_age: floor,
        bulk_poll_every: floor.clamp(Duration::from_millis(200), Duration::from_secs(60)),
        ..EngineConfig::default()
    };
    let engines = Arc::new(engines_for(store.clone(), &sim.base_url(), config));
    let client = engines
        .client(&brand)
        .await
        .map_err(|e| anyhow!("the brand cannot reach the simulator: {e}"))?;
    client.check_token().await.context("an IYS token")?;
    store
        .claim_pull(
            BRAND,
            jiff::Timestamp::now(),
            engines.pull_interval().as_millis() as i64,
        )
        .await?;
    let_quota_second_pass().await;

    let cancel = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(engines.clone().run(cancel.clone()));
    let requests = n.div_ceil(1000);
    let allowed = Duration::from_secs_f64(requests as f64 * 2.0 + 60.0);
    let outcome = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The simulator's counter is cheap to read; the outbox is asked once it looks done.
        if bulks_accepted(sim)? >= requests {
            let counts = store.outbox_counts(BRAND).await?;
            if pending(&counts) == 0 {
                break Ok(started.elapsed());
            }
        }
        if started.elapsed() > allowed {
            let counts = store.outbox_counts(BRAND).await?;
            break Err(anyhow!(
                "the queue was not sent within {} s; outbox {counts:?}",
                allowed.as_secs()
            ));
        }
    };
    cancel.cancel();
    let _ = task.await;
    store.close().await;
    let wall = outcome?;
    Ok((submitted(sim)?, wall))
}
