//! `iyshub`: the one binary of the IYS permission hub.

mod admin_cmd;
mod bench;
mod bulk_cmd;
mod config;
mod flags;
mod iys_cmd;
mod reconcile_cmd;
mod serve;
mod setup;

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use iys::rules::{RuleContext, validate_consent};
use iys::{ConsentDate, ConsentType, HCode, Recipient};

/// mimalloc rather than glibc's malloc: a ledger batch or a batch check allocates and frees
/// hundreds of thousands of small rows and strings, and glibc's allocator was a fifth of the
/// profile (BENCHMARKS.md has the before and after). Built without transparent huge pages (see
/// Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "iyshub",
    version,
    about = "IYS permission hub: consent ledger, IYS sync and the IYS simulator",
    after_help = flags::SETTINGS_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hub: REST API and consent ledger, on SQLite with the built-in IYS simulator by
    /// default (no configuration needed), or on PostgreSQL and a real IYS.
    #[command(after_help = flags::SETTINGS_HELP)]
    Serve(serve::ServeArgs),
    /// Web console users: create, reset a password, list.
    #[command(subcommand)]
    Admin(admin_cmd::AdminCommand),
    /// Create or upgrade the database schema, then exit.
    #[command(after_help = flags::SETTINGS_HELP)]
    Migrate(flags::DbFlags),
    /// Sync mode's initial load: ask IYS which known recipients it has (multi-status for all,
    /// then single status for held ones within the hourly budget); resumable.
    #[command(after_help = flags::SETTINGS_HELP)]
    Backfill {
        #[command(flatten)]
        flags: flags::EngineFlags,
        #[arg(long)]
        brand: u64,
        /// Single-status queries this run may use (IYS allows 1000 per hour).
        #[arg(long, default_value_t = 900)]
        max_single: u64,
    },
    /// Reconcile one day with IYS's movement file by hand: verify, compare, repair, confirm
    /// (`--dry-run`: only compare). Exit code 0 agreed, 1 drift left, 2 error.
    #[command(after_help = flags::SETTINGS_HELP)]
    Reconcile(reconcile_cmd::ReconcileArgs),
    /// Import consents from a CSV, NDJSON or XLSX file (millions of rows; resumable: the same
    /// command goes on after a crash), on the database or through a running hub (`--url`).
    #[command(after_help = flags::SETTINGS_HELP)]
    Import(bulk_cmd::ImportArgs),
    /// Export consents as CSV or NDJSON in the importer's columns, streamed.
    #[command(after_help = flags::SETTINGS_HELP)]
    Export(bulk_cmd::ExportArgs),
    /// Recompute a brand's hash chain over its history and report whether it is intact.
    #[command(after_help = flags::SETTINGS_HELP)]
    Verify {
        #[command(flatten)]
        db: flags::DbFlags,
        #[arg(long)]
        brand: u64,
    },
    /// Run the IYS simulator: IYS's API with its rules, limits and timing, plus a control API.
    Sim(SimArgs),
    /// Talk to a configured IYS (or the simulator) by hand: token check, add, status, changes, bulk result.
    #[command(subcommand)]
    Iys(iys_cmd::IysCommand),
    /// Normalise a phone number or e-mail address the way the hub stores it (E.164, lower-case).
    Recipient {
        /// What someone typed, e.g. "0532 123 45 67" or " Ayse@Example.com ".
        input: String,
        /// Check that the recipient fits this IYS channel (MESAJ, ARAMA or EPOSTA).
        #[arg(long = "type", value_name = "TYPE")]
        consent_type: Option<ConsentType>,
    },
    /// Print IYS's deadline (3 Turkish business days) for a consentDate.
    Deadline {
        /// Istanbul wall clock, "YYYY-MM-DD HH:MM:SS".
        consent_date: ConsentDate,
    },
    /// Validate one consent body (JSON, from a file or "-" for stdin) exactly as IYS would.
    Validate {
        /// Path of the JSON body, or "-" for standard input.
        file: String,
    },
    /// List IYS's H-codes: code, HTTP status, class and meaning.
    Hcodes,
    /// Measure the hub against issue #12's targets (ledger writes, checks, pulls, dispatch), each
    /// next to a baseline measured in the same run; see BENCHMARKS.md.
    Bench(bench::BenchArgs),
}

#[derive(Debug, clap::Args)]
struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090", env = "IYSHUB_SIM_BIND")]
    bind: std::net::SocketAddr,
    /// TOML file overriding the profile's settings (limits, timing, brands, users, …).
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// `realistic` (IYS's limits and timings) or `fast` (for development and tests).
    #[arg(long, env = "IYSHUB_SIM_PROFILE")]
    profile: Option<iys_sim::Profile>,
    /// Keep the simulator's data in this file across restarts.
    #[arg(long, value_name = "FILE")]
    state: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            init_tracing();
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(serve::run(args))
        }
        Command::Admin(cmd) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(admin_cmd::run(cmd))
        }
        Command::Migrate(db) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(setup::migrate(db))
        }
        Command::Backfill {
            flags,
            brand,
            max_single,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(setup::backfill(flags, brand, max_single))
        }
        Command::Reconcile(args) => {
            let runtime = tokio::runtime::Runtime::new()?;
            Ok(runtime.block_on(reconcile_cmd::run(args)))
        }
        Command::Verify { db, brand } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(setup::verify(db, brand))
        }
        Command::Import(args) => {
            let runtime = tokio::runtime::Runtime::new()?;
            Ok(runtime.block_on(bulk_cmd::import(args)))
        }
        Command::Export(args) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(bulk_cmd::export(args))
        }
        Command::Sim(args) => run_sim(args),
        Command::Bench(args) => {
            // Warnings only, on stderr: the results own stdout.
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "warn".into()),
                )
                .init();
            bench::run(args)
        }
        Command::Iys(cmd) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(iys_cmd::run(cmd))
        }
        Command::Recipient {
            input,
            consent_type,
        } => {
            let parsed = match consent_type {
                Some(t) => Recipient::normalise_for(&input, t),
                None => Recipient::normalise(&input),
            };
            match parsed {
                Ok(r) => {
                    println!("{r}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    let codes: Vec<_> = e
                        .iys_errors("recipient")
                        .into_iter()
                        .map(|e| e.code)
                        .collect();
                    eprintln!("refused ({}): {e}", codes.join(", "));
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Deadline { consent_date } => {
            let deadline = consent_date.iys_deadline();
            println!("{deadline}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { file } => {
            let text = if file == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?
            };
            let body: serde_json::Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("{}: {} ({e})", HCode::H014, HCode::H014.message_tr());
                    return Ok(ExitCode::from(1));
                }
            };
            match validate_consent(&body, &RuleContext::at(jiff::Timestamp::now())) {
                Ok(valid) => {
                    println!("{}", serde_json::to_string_pretty(&valid.to_wire())?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&iys::IysErrors { errors })?
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Hcodes => {
            for code in HCode::ALL {
                let class = if code.is_retryable() {
                    "retryable"
                } else {
                    "permanent"
                };
                println!(
                    "{code}\t{}\t{class}\t{}",
                    code.http_status(),
                    code.gloss_en()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Logs on standard error: `IYSHUB_LOG_FORMAT=json` (one JSON object a line, the default when
/// standard error is not a terminal, as under systemd or in a container) or `text`; colours only
/// on a terminal, so files and collectors never get escape codes. `RUST_LOG` filters.
fn init_tracing() {
    use std::io::IsTerminal;
    let terminal = std::io::stderr().is_terminal();
    let json = match std::env::var("IYSHUB_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        Ok(other) => {
            eprintln!("IYSHUB_LOG_FORMAT={other:?} is not json or text; using text");
            false
        }
        Err(_) => !terminal,
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if json {
        logs.json().with_current_span(false).init();
    } else {
        logs.with_ansi(terminal).init();
    }
}

fn run_sim(args: SimArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            iys_sim::SimConfig::from_toml(&text, args.profile)?
        }
        None => iys_sim::SimConfig::for_profile(args.profile.unwrap_or_default()),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("binding {}", args.bind))?;
        let server =
            iys_sim::SimServer::start(config.clone(), listener, args.state.clone()).await?;
        println!(
            "IYS simulator ({:?} profile) listening on {}",
            config.profile,
            server.base_url()
        );
        println!(
            "  service provider iysCode {} ({})",
            config.iys_code, config.provider_title
        );
        for b in &config.brands {
            let role = if b.master {
                "master brand"
            } else {
                "sub-brand"
            };
            println!("  {role} {} \"{}\"", b.brand_code, b.name);
        }
        for u in &config.users {
            println!("  API user {} / {}", u.username, u.password);
        }
        println!(
            "  control API: {}/_sim  (docs/simulator.md)",
            server.base_url()
        );
        if let Some(path) = &args.state {
            println!("  state kept in {}", path.display());
        }
        shutdown_signal().await;
        println!("shutting down");
        server.shutdown().await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
