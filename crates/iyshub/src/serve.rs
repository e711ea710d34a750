//! `iyshub serve`: the hub with embedded defaults (SQLite under ./iyshub-data and the built-in
//! IYS simulator), or PostgreSQL and a real IYS when configured.
//!
//! Settings come from, in order of precedence: flags, `IYSHUB_*` environment variables, the
//! config file (`--config`, or `./iyshub.toml` when present), built-in defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hub::Hub;
use hub_core::{BrandCode, Mode};
use hub_store::{IysConnection, NewBrand, SqlStore, Store};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Args)]
pub struct DbArgs {
    /// `postgres://…` for PostgreSQL; SQLite under the data directory when absent.
    #[arg(long, env = "IYSHUB_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Where the SQLite database lives.
    #[arg(long, env = "IYSHUB_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A TOML file with the same settings (snake_case keys).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl DbArgs {
    /// Where the embedded default keeps its files (the SQLite database, `secret.key`).
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("iyshub-data"))
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Address of the REST API.
    #[arg(long, env = "IYSHUB_BIND")]
    bind: Option<SocketAddr>,
    /// A real IYS (https://api.iys.org.tr or the sandbox); the built-in simulator when absent.
    #[arg(long, env = "IYSHUB_IYS_URL")]
    iys_url: Option<String>,
    #[arg(long, env = "IYSHUB_IYS_USERNAME")]
    iys_username: Option<String>,
    /// The simulator's address, when it is used.
    #[arg(long, env = "IYSHUB_SIM_BIND")]
    sim_bind: Option<SocketAddr>,
    /// The simulator's profile: fast (default: changes reach it in seconds) or realistic.
    #[arg(long, env = "IYSHUB_SIM_PROFILE")]
    sim_profile: Option<iys_sim::Profile>,
    /// Use this admin API key instead of generating one at first start.
    #[arg(long, env = "IYSHUB_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// `all` (API and IYS engines), `api` (API only) or `worker` (IYS engines only).
    #[arg(long, env = "IYSHUB_ROLE", value_parser = ["all", "api", "worker"])]
    role: Option<String>,
    /// The IYS API password (never stored; `demo-password` for the built-in simulator).
    #[arg(long, env = "IYSHUB_IYS_PASSWORD", hide_env_values = true)]
    iys_password: Option<String>,
    /// Seconds between reads of IYS's changes feed.
    #[arg(long, env = "IYSHUB_PULL_INTERVAL_SECS")]
    pull_interval_secs: Option<u64>,
    /// 32 bytes (64 hex characters or base64) that seal brands' IYS passwords at rest. With
    /// SQLite and none given, one is made at first start and kept in the data directory.
    #[arg(long, env = "IYSHUB_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// More IYS base URLs brands may use, comma-separated (IYS's production and sandbox hosts
    /// and the built-in simulator are always allowed).
    #[arg(long, env = "IYSHUB_IYS_ALLOWED_URLS", value_delimiter = ',')]
    iys_allowed_urls: Vec<String>,
    /// Where `/metrics` is served without a key (`off` to serve it only on the API, with the
    /// provider's admin key).
    #[arg(long, env = "IYSHUB_METRICS_BIND")]
    metrics_bind: Option<String>,
    /// Requests per second one API key may make (0: no limit).
    #[arg(long, env = "IYSHUB_RATE_LIMIT")]
    rate_limit: Option<u32>,
    /// Seconds after a bulk submission before its result is read: 300 for IYS's hosts (IYS's
    /// rule), the simulator's own setting when the IYS URL is a simulator.
    #[arg(long, env = "IYSHUB_IYS_BULK_POLL_MIN_SECS")]
    iys_bulk_poll_min_secs: Option<u64>,
    /// How long API keys, brands and categories are cached, in milliseconds (0: not at all). A
    /// change made on another instance is seen within this time.
    #[arg(long, env = "IYSHUB_CACHE_TTL_MS")]
    cache_ttl_ms: Option<u64>,
}

/// The config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    data_dir: Option<PathBuf>,
    bind: Option<SocketAddr>,
    iys_url: Option<String>,
    iys_username: Option<String>,
    sim_bind: Option<SocketAddr>,
    sim_profile: Option<iys_sim::Profile>,
    admin_key: Option<String>,
    role: Option<String>,
    pull_interval_secs: Option<u64>,
    secret_key: Option<String>,
    iys_allowed_urls: Option<Vec<String>>,
    metrics_bind: Option<String>,
    rate_limit: Option<u32>,
    iys_bulk_poll_min_secs: Option<u64>,
    cache_ttl_ms: Option<u64>,
}

fn file_config(path: Option<&PathBuf>) -> anyhow::Result<FileConfig> {
    let default = PathBuf::from("iyshub.toml");
    let path = match path {
        Some(p) => p.clone(),
        None if default.exists() => default,
        None => return Ok(FileConfig::default()),
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("{} is not a valid iyshub config", path.display()))
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

/// The secret key that seals brands' IYS passwords, and a line for the banner. Given, it is
/// used; with SQLite and none given, it is read from (or made once into) `secret.key` in the data
/// directory; with PostgreSQL and none given, passwords cannot be stored.
fn secret_key(
    args: &ServeArgs,
    file: &FileConfig,
) -> anyhow::Result<(Option<hub_secrets::SecretKey>, String)> {
    if let Some(text) = args.secret_key.clone().or(file.secret_key.clone()) {
        let key = hub_secrets::SecretKey::parse(&text).context("IYSHUB_SECRET_KEY")?;
        return Ok((
            Some(key),
            "IYS passwords sealed with IYSHUB_SECRET_KEY".into(),
        ));
    }
    if args.db.database_url.is_some() || file.database_url.is_some() {
        return Ok((
            None,
            "no IYSHUB_SECRET_KEY: brands use the instance's IYS password only".into(),
        ));
    }
    let dir = args
        .db
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("iyshub-data"));
    let path = dir.join("secret.key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let key = hub_secrets::SecretKey::parse(&text)
            .with_context(|| format!("{} does not hold a secret key", path.display()))?;
        return Ok((
            Some(key),
            format!("IYS passwords sealed with the key in {}", path.display()),
        ));
    }
    let key = hub_secrets::SecretKey::generate()?;
    write_private(&path, &key.to_hex())
        .with_context(|| format!("saving the new secret key to {}", path.display()))?;
    Ok((
        Some(key),
        format!(
            "new secret key saved in {} (keep a copy: it opens stored IYS passwords; set IYSHUB_SECRET_KEY in production)",
            path.display()
        ),
    ))
}

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

/// The database URL and a human description of it.
fn database(db: &DbArgs, file: &FileConfig) -> anyhow::Result<(String, String)> {
    if let Some(url) = db
        .database_url
        .clone()
        .or_else(|| file.database_url.clone())
    {
        let shown = match url.split_once('@') {
            Some((_, host)) => format!("postgres://…@{host}"),
            None => url.clone(),
        };
        return Ok((url, shown));
    }
    let dir = db
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("iyshub-data"));
    let path = dir.join("iyshub.db");
    let url = SqlStore::sqlite_url(&path).with_context(|| format!("creating {}", dir.display()))?;
    Ok((url, format!("SQLite {}", path.display())))
}

/// The store of the database settings, for commands that need only it.
pub(crate) async fn open_store(db: &DbArgs) -> anyhow::Result<SqlStore> {
    Ok(open(db).await?.0)
}

async fn open(db: &DbArgs) -> anyhow::Result<(SqlStore, String, FileConfig)> {
    let file = file_config(db.config.as_ref())?;
    let (url, shown) = database(db, &file)?;
    let store = SqlStore::connect(&url)
        .await
        .with_context(|| format!("opening the database ({shown})"))?;
    Ok((store, shown, file))
}

pub async fn migrate(db: DbArgs) -> anyhow::Result<ExitCode> {
    let (store, shown, _) = open(&db).await?;
    store.close().await;
    println!("database schema is up to date ({shown})");
    Ok(ExitCode::SUCCESS)
}

pub async fn verify(db: DbArgs, brand: u64) -> anyhow::Result<ExitCode> {
    let (store, _, _) = open(&db).await?;
    let report = store.verify_chain(BrandCode(brand)).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub async fn backfill(
    db: DbArgs,
    brand: u64,
    max_single: u64,
    iys: crate::iys_args::IysArgs,
) -> anyhow::Result<ExitCode> {
    let (store, _, _) = open(&db).await?;
    let store = Arc::new(store);
    let b = store
        .brand(BrandCode(brand))
        .await?
        .with_context(|| format!("no brand {brand}"))?;
    let config = iys.engine_config(&db.data_dir())?;
    let engines = hub_engines::Engines::new(store.clone(), config);
    let report = engines
        .backfill(&b, max_single, |r| {
            eprint!(
                "\rchecked {} (ONAY in IYS {}), single {}, released {}   ",
                r.checked, r.onay_in_iys, r.single_checked, r.released
            )
        })
        .await?;
    eprintln!();
    println!("{}", serde_json::to_string_pretty(&report)?);
    if !report.complete {
        println!(
            "more held recipients remain: run again after an hour (IYS's single-status budget)"
        );
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let (store, shown_db, file) = open(&args.db).await?;
    let bind = args
        .bind
        .or(file.bind)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let iys_url = args.iys_url.clone().or(file.iys_url.clone());
    let cancel = CancellationToken::new();

    // The IYS target: a real one when configured, else the simulator, in-process.
    let (sim, iys_line) = match &iys_url {
        Some(url) => (None, format!("{url} (real IYS)")),
        None => {
            let sim_bind = args
                .sim_bind
                .or(file.sim_bind)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8090)));
            let profile = args
                .sim_profile
                .or(file.sim_profile)
                .unwrap_or(iys_sim::Profile::Fast);
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
    let iys_base = sim.as_ref().map(|s| s.base_url()).or(iys_url.clone());
    let username = args
        .iys_username
        .clone()
        .or(file.iys_username.clone())
        .or_else(|| sim.as_ref().map(|_| "demo".to_owned()));

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
    let admin_key = args.admin_key.clone().or(file.admin_key.clone());
    let new_key = hub::bootstrap_admin_key(&store, admin_key.as_deref()).await?;

    let role = args
        .role
        .clone()
        .or(file.role.clone())
        .unwrap_or_else(|| "all".into());
    let (api_on, engines_on) = (role != "worker", role != "api");
    let store = Arc::new(store);
    let profile = args
        .sim_profile
        .or(file.sim_profile)
        .unwrap_or(iys_sim::Profile::Fast);
    // The simulator's demo user needs no password setting; a real IYS does.
    let password = match (&args.iys_password, &sim) {
        (Some(p), _) => p.clone(),
        (None, Some(_)) => "demo-password".into(),
        (None, None) if engines_on => {
            anyhow::bail!(
                "IYSHUB_IYS_PASSWORD is required with IYSHUB_IYS_URL (the IYS API user's password)"
            )
        }
        (None, None) => String::new(),
    };
    let mut engine_config = hub_engines::EngineConfig {
        iys_password: iys_client::Secret::new(password),
        ..hub_engines::EngineConfig::default()
    };
    if let Some(secs) = args.pull_interval_secs.or(file.pull_interval_secs) {
        engine_config.pull_interval = Duration::from_secs(secs.max(1));
    }
    if sim.is_some() && profile == iys_sim::Profile::Fast {
        // The fast simulator answers bulk requests in ~100 ms and shows changes at once.
        engine_config.bulk_min_poll_age = Duration::from_millis(200);
        engine_config.bulk_poll_every = Duration::from_millis(200);
        engine_config.pull_interval = engine_config.pull_interval.min(Duration::from_secs(5));
    } else if let Some(url) = &iys_url {
        engine_config.bulk_min_poll_age = bulk_poll_floor(url).await;
        engine_config.bulk_poll_every = engine_config
            .bulk_min_poll_age
            .clamp(Duration::from_millis(200), Duration::from_secs(60));
    }
    if let Some(secs) = args.iys_bulk_poll_min_secs.or(file.iys_bulk_poll_min_secs) {
        engine_config.bulk_min_poll_age = Duration::from_secs(secs);
        engine_config.bulk_poll_every = Duration::from_secs(secs.clamp(1, 60));
    }
    // Brands' IYS connections: allowed hosts, the key that seals their passwords, the default.
    let (secret_key, key_line) = secret_key(&args, &file)?;
    let mut allowed = hub_store::IysPolicy::default().allowed_urls;
    allowed.extend(iys_base.iter().cloned());
    allowed.extend(args.iys_allowed_urls.iter().cloned());
    allowed.extend(file.iys_allowed_urls.iter().flatten().cloned());
    allowed.retain(|u| !u.trim().is_empty());
    let policy = hub_store::IysPolicy {
        allowed_urls: allowed,
        secret_key,
        default_connection: iys_base.clone().zip(username.clone()),
    };
    engine_config.iys = policy.clone();
    let engines = Arc::new(hub_engines::Engines::new(store.clone(), engine_config));
    let rate = args
        .rate_limit
        .or(file.rate_limit)
        .unwrap_or(hub::DEFAULT_RATE_LIMIT);
    let hub = Arc::new(Hub {
        backfill: engines_on.then(|| {
            Arc::new(hub_engines::Backfills::new(engines.clone())) as Arc<dyn hub::Backfill>
        }),
        iys: policy.clone(),
        guards: hub::Guards::new(rate),
        engines: engines_on.then(|| engines.heartbeat()),
        metrics: hub::Metrics::default().with_process(process_metrics()),
        caches: hub::cache::Caches::new(
            args.cache_ttl_ms
                .or(file.cache_ttl_ms)
                .map_or(hub::cache::DEFAULT_CACHE_TTL, Duration::from_millis),
        ),
        ..Hub::new(store.clone())
    });
    let metrics_bind =
        match args
            .metrics_bind
            .clone()
            .or(file.metrics_bind.clone())
            .as_deref()
        {
            Some("off") => None,
            Some(a) => Some(a.parse::<SocketAddr>().with_context(|| {
                format!("IYSHUB_METRICS_BIND {a:?} is not an address (or `off`)")
            })?),
            None => Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
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
    println!(
        "  role       {role}: {}",
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
        tasks.push(tokio::spawn(hub::serve(
            hub.clone(),
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
