//! `iyshub bench`: the hub's throughput against the targets of issue #12. Every figure is printed
//! next to a baseline measured in the same run, on the same machine and database, so a reader
//! can tell the hub's own cost from the machine's (BENCHMARKS.md explains each one).
//!
//! Each scenario gets a fresh database (a SQLite file in a temporary directory, or a throwaway
//! PostgreSQL database that is dropped afterwards), its own in-process hub on a loopback socket
//! and, where IYS is involved, its own in-process simulator. The load generator runs in the same
//! process, sharing the machine's cores with the hub, as a sender on the same host would.

mod audiences;
mod bulk;
mod check;
mod db;
mod dispatch;
mod harness;
mod ledger;
mod load;
pub(crate) mod machine;
mod pull;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::ValueEnum;
use serde::Serialize;

pub use db::Backend;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Batches of 1,000 changes through the API, one client.
    LedgerBatch,
    /// Single-change requests from 64 concurrent connections.
    LedgerSingle,
    /// Single-recipient checks against `GET /healthz` of the same server.
    CheckSingle,
    /// Checks of 10,000 recipients per request.
    CheckBatch,
    /// Citizens' movements pulled from the simulator's changes feed and applied.
    PullApply,
    /// Queued changes sent to the simulator under IYS's quota.
    Dispatch,
    /// A generated CSV imported by `iyshub import` (issue #15).
    Import,
    /// The imported consents exported as CSV (issue #15).
    Export,
    /// A campaign list through `POST …/check/stream` on a large store (issue #16); the same
    /// run measures `stats`.
    CampaignFilter,
    /// `GET …/stats` latency on a large store (issue #16).
    Stats,
}

impl Scenario {
    pub const ALL: [Scenario; 8] = [
        Scenario::LedgerBatch,
        Scenario::LedgerSingle,
        Scenario::CheckSingle,
        Scenario::CheckBatch,
        Scenario::PullApply,
        Scenario::Dispatch,
        Scenario::Import,
        Scenario::CampaignFilter,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::LedgerBatch => "ledger-batch",
            Scenario::LedgerSingle => "ledger-single",
            Scenario::CheckSingle => "check-single",
            Scenario::CheckBatch => "check-batch",
            Scenario::PullApply => "pull-apply",
            Scenario::Dispatch => "dispatch",
            Scenario::Import => "import",
            Scenario::Export => "export",
            Scenario::CampaignFilter => "campaign-filter",
            Scenario::Stats => "stats",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Smaller sizes: the whole run takes a few minutes on a 2-core machine (release build).
    #[arg(long)]
    quick: bool,
    /// Run only this scenario (repeatable; default: all).
    #[arg(long = "scenario", value_enum, value_name = "NAME")]
    scenarios: Vec<Scenario>,
    /// Which databases to measure; `both` skips PostgreSQL when no server is given.
    #[arg(long, value_enum, default_value = "both")]
    backend: BackendChoice,
    /// A PostgreSQL server on which throwaway databases may be created (the user needs
    /// CREATEDB); `IYSHUB_TEST_DATABASE_URL` is used when this is not given.
    #[arg(long, env = "IYSHUB_BENCH_POSTGRES_URL", hide_env_values = true)]
    postgres_url: Option<String>,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Multiplies every count and duration (tests use 0.01 to run every scenario in seconds).
    #[arg(long, hide = true, default_value_t = 1.0)]
    scale: f64,
}

/// How much each scenario does.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub name: &'static str,
    /// ledger-batch: changes in all, sent in batches of `batch_size`.
    pub ledger_batch_changes: usize,
    pub batch_size: usize,
    /// ledger-single: changes in all, over `single_connections` connections, stopped after
    /// `single_cap` if not done by then.
    pub single_changes: usize,
    pub single_connections: usize,
    pub single_cap_secs: f64,
    /// check-single: how long each load runs, over `check_connections` connections, on
    /// `check_stored` stored consents.
    pub check_secs: f64,
    pub check_connections: usize,
    pub check_stored: usize,
    /// check-batch: stored consents, requests, recipients per request, baseline lookups.
    pub batch_stored: usize,
    pub batch_requests: usize,
    pub batch_recipients: usize,
    pub batch_lookups: usize,
    /// pull-apply: movements per run (a smaller and a larger run, to show linearity).
    pub pull_sizes: [usize; 2],
    /// dispatch: changes queued before the engines start.
    pub dispatch_changes: usize,
    /// import and export: rows in the generated file.
    pub import_rows: usize,
    /// campaign-filter and stats: consents stored, recipients in the list, stats requests.
    pub audience_stored: usize,
    pub filter_recipients: usize,
    pub stats_requests: usize,
}

impl Plan {
    fn new(quick: bool, scale: f64) -> anyhow::Result<Plan> {
        if !(scale.is_finite() && scale > 0.0 && scale <= 10.0) {
            bail!("--scale must be above 0 and at most 10");
        }
        let base = if quick {
            Plan {
                name: "quick",
                ledger_batch_changes: 20_000,
                batch_size: 1_000,
                single_changes: 5_000,
                single_connections: 64,
                single_cap_secs: 20.0,
                check_secs: 4.0,
                check_connections: 32,
                check_stored: 10_000,
                batch_stored: 20_000,
                batch_requests: 10,
                batch_recipients: 10_000,
                batch_lookups: 20_000,
                pull_sizes: [10_000, 20_000],
                dispatch_changes: 10_000,
                import_rows: 100_000,
                audience_stored: 1_000_000,
                filter_recipients: 200_000,
                stats_requests: 200,
            }
        } else {
            Plan {
                name: "full",
                ledger_batch_changes: 100_000,
                batch_size: 1_000,
                single_changes: 20_000,
                single_connections: 64,
                single_cap_secs: 60.0,
                check_secs: 10.0,
                check_connections: 32,
                check_stored: 10_000,
                batch_stored: 100_000,
                batch_requests: 20,
                batch_recipients: 10_000,
                batch_lookups: 50_000,
                pull_sizes: [10_000, 50_000],
                dispatch_changes: 20_000,
                import_rows: 1_000_000,
                audience_stored: 10_000_000,
                filter_recipients: 1_000_000,
                stats_requests: 500,
            }
        };
        if scale == 1.0 {
            return Ok(base);
        }
        // Counts shrink with the scale but never below a size that still exercises the path;
        // batch sizes and connection counts stay as the issue states them.
        let n = |v: usize, min: usize| ((v as f64 * scale).round() as usize).max(min);
        let batch_stored = n(base.batch_stored, 100);
        Ok(Plan {
            name: if quick {
                "quick, scaled"
            } else {
                "full, scaled"
            },
            ledger_batch_changes: n(base.ledger_batch_changes, 100),
            single_changes: n(base.single_changes, 64),
            single_cap_secs: (base.single_cap_secs * scale).max(5.0),
            check_secs: (base.check_secs * scale).max(0.25),
            check_stored: n(base.check_stored, 100),
            batch_stored,
            batch_requests: n(base.batch_requests, 2),
            batch_recipients: base.batch_recipients.min(batch_stored),
            batch_lookups: n(base.batch_lookups, 100),
            pull_sizes: [n(base.pull_sizes[0], 100), n(base.pull_sizes[1], 200)],
            dispatch_changes: n(base.dispatch_changes, 100),
            import_rows: n(base.import_rows, 200),
            audience_stored: n(base.audience_stored, 1_000),
            filter_recipients: n(base.filter_recipients, 200),
            stats_requests: n(base.stats_requests, 10),
            ..base
        })
    }
}

/// One scenario's result on one database.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The scenario, with the run's size where a scenario has several runs.
    pub label: String,
    pub scenario: Scenario,
    pub backend: Backend,
    pub figure: f64,
    pub unit: String,
    pub baseline: f64,
    pub baseline_unit: String,
    /// What the baseline is.
    pub baseline_what: String,
    /// figure / baseline.
    pub ratio: f64,
    /// The target, in words.
    pub target: String,
    pub met: bool,
    /// Latencies and other figures of the run.
    pub notes: Vec<String>,
    /// The process's peak resident set size so far (VmHWM), in MiB.
    pub peak_rss_mib: Option<f64>,
    pub seconds: f64,
}

impl Outcome {
    /// The one line printed per scenario and database.
    fn line(&self) -> String {
        let mut s = format!(
            "{:<18} {:<10} {:>10} {:<13} | baseline {:>10} {} ({}) | ratio {:.2} | target {}: {}",
            self.label,
            self.backend.name(),
            thousands(self.figure),
            self.unit,
            thousands(self.baseline),
            self.baseline_unit,
            self.baseline_what,
            self.ratio,
            self.target,
            if self.met { "met" } else { "NOT MET" },
        );
        let mut notes = self.notes.clone();
        if let Some(mib) = self.peak_rss_mib {
            notes.push(format!("peak RSS {mib:.0} MiB"));
        }
        if !notes.is_empty() {
            s.push_str(&format!(" | {}", notes.join("; ")));
        }
        s
    }
}

/// What every scenario gets: the plan, the database kind, the PostgreSQL server.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub plan: Plan,
    pub backend: Backend,
    pub postgres_admin: Option<String>,
}

impl Ctx {
    /// A fresh database for one scenario.
    pub async fn fresh_db(&self) -> anyhow::Result<db::Db> {
        db::Db::fresh(self.backend, self.postgres_admin.as_deref()).await
    }
}

/// 12345.6 → "12,346"; small figures keep two decimals.
pub fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v.abs() < 100.0 {
        return format!("{v:.2}");
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

/// Events per second, guarding against a zero duration.
pub fn per_second(count: f64, elapsed: Duration) -> f64 {
    count / elapsed.as_secs_f64().max(1e-9)
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let plan = Plan::new(args.quick, args.scale)?;
    let mut scenarios: Vec<Scenario> = Vec::new();
    for s in if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios.clone()
    } {
        if !scenarios.contains(&s) {
            scenarios.push(s);
        }
    }
    let postgres = args.postgres_url.clone().or_else(|| {
        std::env::var("IYSHUB_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
    });
    let mut backends = Vec::new();
    let mut skipped = None;
    match (args.backend, &postgres) {
        (BackendChoice::Sqlite, _) => backends.push(Backend::Sqlite),
        (BackendChoice::Postgres, None) => bail!(
            "--backend postgres needs a server: --postgres-url URL (or IYSHUB_BENCH_POSTGRES_URL / IYSHUB_TEST_DATABASE_URL)"
        ),
        (BackendChoice::Postgres, Some(_)) => backends.push(Backend::Postgres),
        (BackendChoice::Both, Some(_)) => backends.extend([Backend::Sqlite, Backend::Postgres]),
        (BackendChoice::Both, None) => {
            backends.push(Backend::Sqlite);
            skipped =
                Some("PostgreSQL skipped: give --postgres-url URL (or IYSHUB_BENCH_POSTGRES_URL)");
        }
    }

    let machine = machine::describe();
    println!("iyshub bench — issue #12's scenarios, each against a baseline measured in this run");
    for line in machine.lines() {
        println!("  {line}");
    }
    let mut versions = Vec::new();
    for &backend in &backends {
        let v = db::server_version(backend, postgres.as_deref())
            .await
            .with_context(|| format!("reaching {}", backend.name()))?;
        println!("  {:<9} {v}", backend.name());
        versions.push((backend, v));
    }
    if let Some(why) = skipped {
        println!("  {why}");
    }
    println!(
        "  plan      {} (ledger-batch {} changes, ledger-single {} over {} connections, check-single {} s per load over {} connections, check-batch {} × {} recipients on {} consents, pull-apply {} and {} movements, dispatch {} changes, import and export {} rows, campaign filter {} recipients and stats on {} consents)",
        plan.name,
        plan.ledger_batch_changes,
        plan.single_changes,
        plan.single_connections,
        plan.check_secs,
        plan.check_connections,
        plan.batch_requests,
        plan.batch_recipients,
        plan.batch_stored,
        plan.pull_sizes[0],
        plan.pull_sizes[1],
        plan.dispatch_changes,
        plan.import_rows,
        plan.filter_recipients,
        plan.audience_stored,
    );
    println!();

    let started = Instant::now();
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for &scenario in &scenarios {
        for &backend in &backends {
            let ctx = Ctx {
                plan: plan.clone(),
                backend,
                postgres_admin: postgres.clone(),
            };
            let t0 = Instant::now();
            let result = match scenario {
                Scenario::LedgerBatch => ledger::batch(&ctx).await.map(|o| vec![o]),
                Scenario::LedgerSingle => ledger::single(&ctx).await.map(|o| vec![o]),
                Scenario::CheckSingle => check::single(&ctx).await.map(|o| vec![o]),
                Scenario::CheckBatch => check::batch(&ctx).await.map(|o| vec![o]),
                Scenario::PullApply => pull::run(&ctx).await,
                Scenario::Dispatch => dispatch::run(&ctx).await,
                // One run gives both: the export reads what the import stored.
                Scenario::Import => bulk::run(&ctx).await,
                Scenario::Export if scenarios.contains(&Scenario::Import) => continue,
                Scenario::Export => bulk::run(&ctx).await,
                // One run gives both: they share the large store.
                Scenario::CampaignFilter => audiences::campaign_filter(&ctx).await,
                Scenario::Stats if scenarios.contains(&Scenario::CampaignFilter) => continue,
                Scenario::Stats => audiences::campaign_filter(&ctx).await,
            };
            match result {
                Ok(list) => {
                    for mut o in list {
                        o.seconds = t0.elapsed().as_secs_f64();
                        o.peak_rss_mib = machine::peak_rss_bytes().map(|b| b as f64 / 1048576.0);
                        println!("{}", o.line());
                        outcomes.push(o);
                    }
                }
                Err(e) => {
                    let msg = format!(
                        "{:<18} {:<10} FAILED: {e:#}",
                        scenario.name(),
                        backend.name()
                    );
                    println!("{msg}");
                    failures.push(msg);
                }
            }
        }
    }

    println!();
    println!(
        "Summary ({} s in all; load average {} at the end; Markdown for BENCHMARKS.md):",
        started.elapsed().as_secs(),
        machine::load_average()
    );
    println!();
    println!("| scenario | database | figure | baseline | ratio | target | met |");
    println!("|---|---|---|---|---|---|---|");
    for o in &outcomes {
        println!(
            "| {} | {} | {} {} | {} {} ({}) | {:.2} | {} | {} |",
            o.label,
            o.backend.name(),
            thousands(o.figure),
            o.unit,
            thousands(o.baseline),
            o.baseline_unit,
            o.baseline_what,
            o.ratio,
            o.target,
            if o.met { "yes" } else { "no" }
        );
    }
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "machine": machine,
            "databases": versions.iter().map(|(b, v)| serde_json::json!({"backend": b, "version": v})).collect::<Vec<_>>(),
            "plan": plan,
            "results": outcomes,
            "failures": failures,
            "seconds": started.elapsed().as_secs_f64(),
            "load_at_end": machine::load_average(),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!();
        println!("results written to {}", path.display());
    }
    if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} scenario run(s) failed", failures.len());
        Ok(ExitCode::FAILURE)
    }
}
