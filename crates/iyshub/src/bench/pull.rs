//! `pull-apply`: citizens' movements waiting in IYS's changes feed (the simulator, fast
//! profile, in-process), read and applied by the hub's puller (`Engines::pull`: pages of 1,000,
//! each applied through the ledger with its cursor in the same transaction).
//!
//! Two runs, a smaller then a larger one on the same database, show whether the cost per
//! movement stays flat. Baseline: the same pages read from the same cursor with the same IYS
//! client, without applying them — how fast the feed itself serves them.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use hub_engines::{EngineConfig, Engines, ReconcileConfig};
use hub_store::{EngineStore, IysConnection};
use iys::wire::ChangeSource;
use iys::{ConsentStatus, ConsentType, RecipientType};
use iys_sim::state::CitizenAction;
use iys_sim::{Profile, SimConfig, SimServer};

use super::db::Db;
use super::harness::{self, BRAND};
use super::{Ctx, Outcome, Scenario, per_second};

/// The rate the issue asks for, and how much slower the larger run may be and still count as
/// linear (a rate within 20 % of the smaller run's).
const TARGET: f64 = 50_000.0;
const LINEAR: f64 = 0.8;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Outcome>> {
    let db = ctx.fresh_db().await?;
    let result = run_on(ctx, &db).await;
    let removed = db.remove().await;
    let outcomes = result?;
    removed?;
    Ok(outcomes)
}

async fn run_on(ctx: &Ctx, db: &Db) -> anyhow::Result<Vec<Outcome>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim = SimServer::start(SimConfig::for_profile(Profile::Fast), listener, None)
        .await
        .context("starting the IYS simulator")?;
    let result = pull_with(ctx, db, &sim).await;
    sim.shutdown().await?;
    result
}

/// Engines that may reach `sim_url`, with the simulator's demo user. The reconciler is off: it
/// would read IYS's daily files in the middle of the measurement.
pub fn engines_for(
    store: std::sync::Arc<hub_store::SqlStore>,
    sim_url: &str,
    config: EngineConfig,
) -> Engines {
    Engines::new(
        store,
        EngineConfig {
            iys: hub_store::IysPolicy {
                allowed_urls: vec![sim_url.to_owned()],
                ..Default::default()
            },
            iys_password: iys_client::Secret::new("demo-password"),
            ..config
        },
    )
    .with_reconcile(ReconcileConfig {
        enabled: false,
        ..ReconcileConfig::default()
    })
}

pub fn sim_connection(sim: &SimServer) -> IysConnection {
    IysConnection {
        base_url: Some(sim.base_url()),
        username: Some("demo".into()),
        ..IysConnection::default()
    }
}

async fn pull_with(ctx: &Ctx, db: &Db, sim: &SimServer) -> anyhow::Result<Vec<Outcome>> {
    let store = db.store().await?;
    let brand = harness::create_brand(&store, sim_connection(sim)).await?;
    // The fast simulator has no rate limit; the client's budget must not be what is measured.
    let config = EngineConfig {
        budgets: iys_client::Budgets {
            per_second: 100_000,
            ..Default::default()
        },
        ..EngineConfig::default()
    };
    let engines = engines_for(store.clone(), &sim.base_url(), config);
    let client = engines
        .client(&brand)
        .await
        .map_err(|e| anyhow!("the brand cannot reach the simulator: {e}"))?;
    client.check_token().await.context("an IYS token")?;

    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut first_rate = None;
    let mut placed = 0u64;
    for size in ctx.plan.pull_sizes {
        let size = size as u64;
        place(sim, placed, size)?;
        placed += size;
        // The feed serves a second only once it is over.
        let into = sim.sim.now().as_millisecond().rem_euclid(1000) as u64;
        tokio::time::sleep(Duration::from_millis(1000 - into + 50)).await;

        let cursor = store.cursor(BRAND, ChangeSource::Iys.as_str()).await?;
        let t0 = Instant::now();
        let mut read = 0u64;
        let mut after = cursor;
        loop {
            match client
                .changes_page_raw(BRAND.0, ChangeSource::Iys, after.as_deref(), 1000)
                .await
                .context("reading the changes feed")?
            {
                None => break,
                Some(page) => {
                    read += page.list.len() as u64;
                    let full = page.list.len() >= 1000;
                    after = Some(page.after);
                    if !full {
                        break;
                    }
                }
            }
        }
        let base_elapsed = t0.elapsed();
        if read != size {
            bail!("the feed served {read} movements, {size} were placed");
        }

        let t0 = Instant::now();
        let applied = engines
            .pull(&brand, &client)
            .await
            .context("the hub's pull")?;
        let elapsed = t0.elapsed();
        if applied as u64 != size {
            bail!("the hub applied {applied} of {size} new movements");
        }

        let figure = per_second(size as f64, elapsed);
        let baseline = per_second(size as f64, base_elapsed);
        let mut notes = vec![format!(
            "{size} movements: applied in {:.2} s, feed read in {:.2} s",
            elapsed.as_secs_f64(),
            base_elapsed.as_secs_f64()
        )];
        let met = match first_rate {
            None => {
                first_rate = Some(figure);
                figure >= TARGET
            }
            Some(first) => {
                let linearity = figure / first;
                notes.push(format!(
                    "linearity: rate {linearity:.2}× the smaller run's (linear if ≥ {LINEAR})"
                ));
                figure >= TARGET && linearity >= LINEAR
            }
        };
        outcomes.push(Outcome {
            label: format!("{}/{size}", Scenario::PullApply.name()),
            scenario: Scenario::PullApply,
            backend: ctx.backend,
            figure,
            unit: "movements/s".into(),
            baseline,
            baseline_unit: "movements/s".into(),
            baseline_what: "the feed's pages read, not applied".into(),
            ratio: figure / baseline,
            target: "≥ 50,000 movements/s, linear".into(),
            met,
            notes,
            peak_rss_mib: None,
            seconds: 0.0,
        });
    }
    store.close().await;
    Ok(outcomes)
}

/// Citizens `from..from + count` give SMS consent through IYS's own channels.
fn place(sim: &SimServer, from: u64, count: u64) -> anyhow::Result<()> {
    let now = sim.sim.now();
    let mut state = sim
        .sim
        .state
        .lock()
        .map_err(|_| anyhow!("the simulator's state lock is poisoned"))?;
    for n in from..from + count {
        let action = CitizenAction {
            brand_code: BRAND.0,
            recipient: harness::recipient(n),
            consent_type: ConsentType::Mesaj,
            recipient_type: RecipientType::Bireysel,
            status: ConsentStatus::Onay,
            source: None,
            consent_date: None,
            citizen_name: None,
        };
        state
            .citizen(&action, now)
            .map_err(|e| anyhow!("the simulator refused a citizen's action: {e}"))?;
    }
    Ok(())
}
