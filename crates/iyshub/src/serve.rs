//! `iyshub serve`: the hub with embedded defaults (SQLite under ./iyshub-data and the built-in
//! IYS simulator), or PostgreSQL and a real IYS when configured.
//!
//! Settings come from, in order of precedence: flags, `IYSHUB_*` environment variables, the
//! config file (`--config`, or `./iyshub.toml` when present), built-in defaults.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hub::Hub;
use hub_core::{BrandCode, Mode};
use hub_store::{IysConnection, NewBrand, Store};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, MetricsBind};
use crate::flags::{EngineFlags, ServeFlags};
use crate::setup;

/// `iyshub serve`'s flags: the database, IYS and the server's own.
#[derive(Debug, Default, Args, Serialize)]
pub struct ServeArgs {
    #[command(flatten)]
    #[serde(flatten)]
    engine: EngineFlags,
    #[command(flatten)]
    #[serde(flatten)]
    serve: ServeFlags,
}

/// How long to wait before reading a bulk result from `url`: IYS asks for 300 s on its own
/// hosts; a simulator run on its own says its setting at `/_sim/timing`; otherwise 300 s.
async fn bulk_poll_floor(url: &str) -> Duration {
    const IYS_FLOOR: Duration = Duration::from_secs(300);
    let base = url.trim_end_matches('/');
    if [hub_store::IYS_PRODUCTION, hub_store::IYS_SANDBOX].contains(&base) {
        return IYS_FLOOR;
    }
    let asked = async {
        let timing: serde_json::Value = reqwest::Client::new()
            .get(format!("{base}/_sim/timing"))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?
            .json()
            .await
            .ok()?;
        timing["bulk_min_poll_age_ms"].as_u64()
    };
    match asked.await {
        Some(ms) => {
            tracing::info!(
                ms,
                "the IYS URL is a simulator: its bulk-result floor is used"
            );
            Duration::from_millis(ms)
        }
        None => IYS_FLOOR,
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.engine.db.config.as_deref(), &args)?;
    let (store, shown_db) = setup::open(&config).await?;
    let bind = config.bind;
    let role = config.role;
    let (api_on, engines_on) = (role.api(), role.engines());
    let cancel = CancellationToken::new();

    // The IYS target: a real one when configured, else the simulator, in-process.
    let profile = config.sim_profile;
    let (sim, iys_line) = match &config.iys_url {
        Some(url) => (None, format!("{url} (real IYS)")),
        None => {
            let sim_bind = config.sim_bind;
            let listener = tokio::net::TcpListener::bind(sim_bind)
                .await
                .with_context(|| {
                    format!("binding the IYS simulator to {sim_bind} (set IYSHUB_SIM_BIND)")
                })?;
            let server =
                iys_sim::SimServer::start(iys_sim::SimConfig::for_profile(profile), listener, None)
                    .await?;
            let line = format!(
                "SIMULATED: the built-in IYS simulator at {} ({profile:?} profile; user demo / demo-password). Nothing reaches the real IYS.",
                server.base_url()
            );
            (Some(server), line)
        }
    };
    let iys_base = sim
        .as_ref()
        .map(|s| s.base_url())
        .or(config.iys_url.clone());
    // The engines need the IYS user's password; an API-only instance does not.
    let (username, password) = if engines_on {
        let (_, user, password) = setup::iys_account(&config)?;
        (user, password)
    } else {
        let user = config
            .iys_username
            .clone()
            .or_else(|| sim.as_ref().map(|_| setup::DEMO_USER.to_owned()));
        (user, iys_client::Secret::new(""))
    };

    // First start: a demo brand connected to the simulator, and an admin key.
    if store.brands().await?.is_empty() && sim.is_some() {
        store
            .create_brand(NewBrand {
                brand_code: BrandCode(600_123),
                iys_code: 600_123,
                name: "Örnek Marka (demo)".into(),
                mode: Mode::Integrator,
                iys: IysConnection {
                    base_url: iys_base.clone(),
                    username: username.clone(),
                    ..IysConnection::default()
                },
            })
            .await?;
    }
    let admin_key = config.admin_key.as_ref().map(|k| k.expose());
    let new_key = hub::bootstrap_admin_key(&store, admin_key).await?;
    let console_password = if api_on {
        hub_console::users::bootstrap_admin(&store).await?
    } else {
        None
    };
    let store = Arc::new(store);

    let mut engine_config = hub_engines::EngineConfig {
        iys_password: password,
        ..hub_engines::EngineConfig::default()
    };
    if let Some(secs) = config.pull_interval_secs {
        engine_config.pull_interval = Duration::from_secs(secs.max(1));
    }
    if sim.is_some() && profile == iys_sim::Profile::Fast {
        // The fast simulator answers bulk requests in ~100 ms and shows changes at once.
        engine_config.bulk_min_poll_age = Duration::from_millis(200);
        engine_config.bulk_poll_every = Duration::from_millis(200);
        engine_config.pull_interval = engine_config.pull_interval.min(Duration::from_secs(5));
    } else if let Some(url) = &config.iys_url {
        engine_config.bulk_min_poll_age = bulk_poll_floor(url).await;
        engine_config.bulk_poll_every = engine_config
            .bulk_min_poll_age
            .clamp(Duration::from_millis(200), Duration::from_secs(60));
    }
    if let Some(secs) = config.iys_bulk_poll_min_secs {
        engine_config.bulk_min_poll_age = Duration::from_secs(secs);
        engine_config.bulk_poll_every = Duration::from_secs(secs.clamp(1, 60));
    }
    // Brands' IYS connections: allowed hosts, the key that seals their passwords, the default.
    let (secret_key, key_line) = setup::secret_key_or_new(&config)?;
    let policy = setup::iys_policy(&config, iys_base.clone(), username.clone(), secret_key);
    engine_config.iys = policy.clone();
    let engines = Arc::new(hub_engines::Engines::new(store.clone(), engine_config));
    let hub = Arc::new(Hub {
        backfill: engines_on.then(|| {
            Arc::new(hub_engines::Backfills::new(engines.clone())) as Arc<dyn hub::Backfill>
        }),
        iys: policy.clone(),
        guards: hub::Guards::new(config.rate_limit),
        engines: engines_on.then(|| engines.heartbeat()),
        metrics: hub::Metrics::default().with_process(process_metrics()),
        caches: hub::cache::Caches::new(Duration::from_millis(config.cache_ttl_ms)),
        ..Hub::new(store.clone())
    });
    let metrics_bind = match config.metrics_bind {
        MetricsBind::Off => None,
        MetricsBind::At(a) => Some(a),
    };
    let pull_secs = engines.pull_interval().as_secs();
    println!("iyshub {} — IYS permission hub", env!("CARGO_PKG_VERSION"));
    if api_on {
        println!(
            "  API        http://{bind}   (reference: http://{bind}/api/docs, OpenAPI: http://{bind}/api/openapi.json)"
        );
    }
    println!("  database   {shown_db}");
    println!("  IYS        {iys_line}");
    for b in store.brands().await? {
        let iys = match policy.resolve(&b.iys) {
            Ok(c) if c.instance_default => {
                format!("IYS as {} (the instance's connection)", c.username)
            }
            Ok(c) => format!("IYS {} as {}", c.base_url, c.username),
            Err(why) => format!("NOT CONNECTED to IYS: {why}"),
        };
        println!(
            "  brand      {} \"{}\" ({} mode; {iys})",
            b.brand_code,
            b.name,
            b.mode.as_str()
        );
    }
    println!("  secrets    {key_line}");
    if let (true, Some(url)) = (engines_on, &config.nats_url) {
        println!("  events     webhooks, and NATS JetStream at {url} (iyshub.<brandCode>.consent)");
    }
    if let (true, Some(m)) = (api_on, metrics_bind) {
        println!("  metrics    http://{m}/metrics (no key; on the API with the admin key)");
    }
    match (&new_key, &admin_key) {
        (Some(k), _) => println!(
            "  admin key  {k}\n             (shown once: keep it; set IYSHUB_ADMIN_KEY to choose your own)"
        ),
        (None, Some(_)) => println!("  admin key  from IYSHUB_ADMIN_KEY"),
        (None, None) => println!("  admin key  created at first start (not shown again)"),
    }
    if api_on {
        println!("  console    http://{bind}/");
        if let Some(p) = &console_password {
            println!(
                "  console    user admin, password {p}\n             (shown once: keep it; `iyshub admin password --username admin` sets a new one)"
            );
        }
    }
    println!(
        "  role       {}: {}",
        role.as_str(),
        match (api_on, engines_on) {
            (true, true) => format!("API and IYS engines (IYS's changes read every {pull_secs} s)"),
            (true, false) => "API only (run a worker instance for the IYS engines)".to_owned(),
            _ => format!("IYS engines only (IYS's changes read every {pull_secs} s)"),
        }
    );

    let mut tasks = Vec::new();
    if api_on {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding the API to {bind} (set IYSHUB_BIND)"))?;
        let app = hub::router_with(hub.clone(), hub_console::routes());
        tasks.push(tokio::spawn(hub::serve_router(
            app,
            listener,
            cancel.clone(),
        )));
    }
    if let (true, Some(m)) = (api_on, metrics_bind) {
        let listener = tokio::net::TcpListener::bind(m).await.with_context(|| {
            format!("binding the metrics address {m} (set IYSHUB_METRICS_BIND, or `off`)")
        })?;
        tasks.push(tokio::spawn(hub::serve_metrics(
            hub.clone(),
            listener,
            cancel.clone(),
        )));
    }
    if engines_on {
        // Uploaded imports: run here, or resumed here when another instance stopped mid-file.
        let (s, waiting, c) = (store.clone(), hub.imports_waiting.clone(), cancel.clone());
        tasks.push(tokio::spawn(async move {
            hub::imports::work(s, waiting, c).await;
            Ok(())
        }));
        // Change events: to the brands' webhooks and, when configured, to NATS JetStream.
        let (s, key, waking, c) = (
            store.clone(),
            policy.secret_key.clone(),
            hub.webhooks_waiting.clone(),
            cancel.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let schedule = hub_events::RetrySchedule::standard();
            hub::events::deliver_webhooks(s, key, schedule, waking, c).await;
            Ok(())
        }));
        if let Some(url) = config.nats_url.clone() {
            let (s, c) = (store.clone(), cancel.clone());
            tasks.push(tokio::spawn(async move {
                hub::events::publish_to_nats(s, url, c).await;
                Ok(())
            }));
        }
        let engines = engines.clone();
        let c = cancel.clone();
        tasks.push(tokio::spawn(async move {
            engines.run(c).await;
            Ok(())
        }));
    }
    crate::shutdown_signal().await;
    println!("shutting down: finishing requests in flight");
    cancel.cancel();
    for t in tasks {
        t.await??;
    }
    if let Some(s) = sim {
        s.shutdown().await?;
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// The process's recorder for what the engines and the IYS client record (IYS call latencies),
/// installed once; `/metrics` renders it with the API's own figures.
fn process_metrics() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = hub::metrics::recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "a metrics recorder was installed already; IYS call latencies are not shown"
                );
            }
            handle
        })
        .clone()
}
