//! `iyshub import` and `iyshub export`: bulk files on the configured database directly, or (for
//! imports) through a running hub's API with `--url`.
//!
//! Exit codes of `import` for scripts: 0 every row stored, 1 some rows rejected (their file is
//! written next to the input, or to `--rejects`), 2 an error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hub_core::{BrandCode, Channel, IysState};
use hub_store::prelude::*;
use hub_store::{ConsentFilter, ImportJob, ImportState, ImportVia, NewImport, SqlStore};
use iys::{ConsentStatus, RecipientType, Source};
use sha2::Digest;

use crate::flags::DbFlags;

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The file: CSV (header row; `,` `;` or tab), NDJSON (one change a line) or XLSX (first
    /// sheet). See docs/bulk.md for the columns.
    file: PathBuf,
    #[arg(long)]
    brand: u64,
    /// csv, ndjson or xlsx; detected from the name or the content when absent.
    #[arg(long)]
    format: Option<hub_bulk::Format>,
    /// A column mapping override, `column=field` (e.g. `--map "Cep Telefonu=recipient"`);
    /// repeatable.
    #[arg(long = "map", value_name = "COLUMN=FIELD")]
    map: Vec<String>,
    /// Validate every row and count what would happen (applied, unchanged, older, rejected);
    /// write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Where to write the rejected rows (default: next to the file, `<file>.rejects.csv`).
    #[arg(long, value_name = "FILE")]
    rejects: Option<PathBuf>,
    /// Upload to a running hub (e.g. http://127.0.0.1:8080) instead of opening the database.
    #[arg(long)]
    url: Option<String>,
    /// The API key for `--url` (write scope); IYSHUB_API_KEY in the environment.
    #[arg(long, hide_env_values = true, env = "IYSHUB_API_KEY")]
    api_key: Option<String>,
    #[command(flatten)]
    db: DbFlags,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[arg(long)]
    brand: u64,
    /// csv (default) or ndjson.
    #[arg(long, default_value = "csv", value_parser = ["csv", "ndjson"])]
    format: String,
    #[arg(long)]
    channel: Option<Channel>,
    #[arg(long)]
    recipient_type: Option<RecipientType>,
    /// ONAY or RET.
    #[arg(long)]
    status: Option<ConsentStatus>,
    /// in_iys, pending, held, rejected, not_in_iys or local_only.
    #[arg(long)]
    iys_state: Option<IysState>,
    #[arg(long)]
    source: Option<Source>,
    /// Only consents changed at or after this instant (RFC 3339, e.g. 2026-11-01T00:00:00Z).
    #[arg(long)]
    changed_since: Option<jiff::Timestamp>,
    /// Export the consents to this message category instead (recipient or profileId, the
    /// channel of the change, status, consentDate, source, category); only --status filters.
    #[arg(long, conflicts_with_all = ["channel", "recipient_type", "iys_state", "source", "changed_since"])]
    category: Option<String>,
    /// Write here instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    db: DbFlags,
}

fn overrides(map: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    map.iter()
        .map(|m| match m.split_once('=') {
            Some((c, f)) if !c.trim().is_empty() && !f.trim().is_empty() => {
                Ok((c.trim().to_owned(), f.trim().to_owned()))
            }
            _ => anyhow::bail!("--map {m:?}: expected COLUMN=FIELD"),
        })
        .collect()
}

/// The file's SHA-256 and its line count (for the progress bar's ETA), in one pass.
fn survey(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hash = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut lines = 0u64;
    loop {
        let n = std::io::Read::read(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        let piece = buf.get(..n).unwrap_or_default();
        hash.update(piece);
        lines += piece.iter().filter(|b| **b == b'\n').count() as u64;
    }
    Ok((hex::encode(hash.finalize()), lines))
}

/// Progress on standard error: a bar with rows/s and ETA on a terminal, else a line every 5 s.
struct Report {
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    last_line: Instant,
}

impl Report {
    fn new(total_lines: Option<u64>) -> Report {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = match total_lines {
                Some(n) => indicatif::ProgressBar::new(n),
                None => indicatif::ProgressBar::new_spinner(),
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} lines  {per_sec}  ETA {eta}  {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Report {
            bar,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }

    fn update(&mut self, p: hub::imports::Progress) {
        let msg = format!(
            "applied {} unchanged {} older {} rejected {}",
            p.counts.applied, p.counts.unchanged, p.counts.older, p.counts.rejected
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(p.line);
                bar.set_message(msg);
            }
            None if self.last_line.elapsed() >= Duration::from_secs(5) => {
                self.last_line = Instant::now();
                let secs = self.started.elapsed().as_secs_f64().max(0.001);
                eprintln!(
                    "line {}: {} rows ({:.0} rows/s); {msg}",
                    p.line,
                    p.rows,
                    p.rows as f64 / secs
                );
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

pub async fn import(args: ImportArgs) -> ExitCode {
    let result = match &args.url {
        Some(url) => import_remote(&args, url).await,
        None => import_local(&args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Where the rejected rows go.
fn rejects_path(args: &ImportArgs) -> PathBuf {
    args.rejects.clone().unwrap_or_else(|| {
        let mut name = args.file.as_os_str().to_owned();
        name.push(".rejects.csv");
        PathBuf::from(name)
    })
}

fn summary(job: &ImportJob, rows_per_sec: f64, rejects: Option<&Path>) -> ExitCode {
    let peak = crate::bench::machine::peak_rss_bytes().map_or(String::new(), |b| {
        format!("; peak memory {} MiB", b / 1_048_576)
    });
    println!(
        "{}import {} of {}: {} rows ({rows_per_sec:.0} rows/s{peak}): applied {}, unchanged {}, older {}, rejected {}",
        if job.dry_run { "dry run: " } else { "" },
        job.id,
        job.file_name.as_deref().unwrap_or("the file"),
        job.rows_read,
        job.counts.applied,
        job.counts.unchanged,
        job.counts.older,
        job.counts.rejected
    );
    match rejects {
        Some(path) if job.counts.rejected > 0 => {
            println!(
                "rejected rows (line, code, field, value, message): {}",
                path.display()
            );
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    }
}

async fn import_local(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let config = args.db.config()?;
    let (store, _) = crate::setup::open(&config).await?;
    let store = Arc::new(store);
    let result = import_into(&store, args).await;
    store.close().await;
    result
}

async fn import_into(store: &Arc<SqlStore>, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let brand = store
        .brand(BrandCode(args.brand))
        .await?
        .with_context(|| format!("no brand {}", args.brand))?;
    let mapping = overrides(&args.map)?;
    let (hash, lines) = survey(&args.file)?;
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let format = match args.format {
        Some(f) => f,
        None => {
            let mut head = vec![0u8; 512];
            let mut file = std::fs::File::open(&args.file)?;
            let n = std::io::Read::read(&mut file, &mut head)?;
            head.truncate(n);
            hub_bulk::Format::detect(name.as_deref(), &head)
        }
    };
    // The same file into the same brand, stopped before its end: go on from its last batch.
    let resumed = if args.dry_run {
        None
    } else {
        store.unfinished_import(brand.brand_code, &hash).await?
    };
    let job = match resumed {
        Some(job) if job.mapping == mapping => {
            eprintln!(
                "resuming import {} after line {} ({} rows done)",
                job.id, job.line, job.rows_read
            );
            job
        }
        _ => {
            store
                .create_import(
                    NewImport {
                        brand_code: brand.brand_code,
                        file_name: name,
                        file_hash: Some(hash),
                        format: format.as_str().to_owned(),
                        mapping,
                        actor: Some(format!(
                            "cli:{}",
                            std::env::var("USER").unwrap_or_else(|_| "operator".into())
                        )),
                        via: ImportVia::Cli,
                        dry_run: args.dry_run,
                        state: ImportState::Running,
                    },
                    jiff::Timestamp::now(),
                )
                .await?
        }
    };
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let input = Box::new(std::io::BufReader::with_capacity(1 << 20, file));
    let started = Instant::now();
    let rows_before = job.rows_read;
    let run = async {
        let rows = hub::imports::open_rows(input, format, &job).await?;
        // Say which columns are not read, so a misspelt header is noticed before the rejects.
        if let Some(ignored) = rows.mapping().map(|m| m.ignored_columns())
            && !ignored.is_empty()
        {
            eprintln!(
                "columns not read: {} (map one with --map \"COLUMN=field\")",
                ignored.join(", ")
            );
        }
        let mut report = Report::new((format != hub_bulk::Format::Xlsx).then_some(lines));
        let done =
            hub::imports::run_import(store, &brand, &job, rows, None, 0, |p| report.update(p))
                .await;
        report.finish();
        done
    }
    .await;
    let now = jiff::Timestamp::now();
    match run {
        Ok(_) => {
            store
                .set_import_state(job.id, ImportState::Done, None, now)
                .await?
        }
        Err(hub::imports::ImportError::File(e)) => {
            store
                .set_import_state(job.id, ImportState::Failed, Some(&e.to_string()), now)
                .await?;
            anyhow::bail!("{}: {e}", args.file.display());
        }
        // Left running: the same command resumes it.
        Err(e) => return Err(e).context("the import stopped; run the same command to resume"),
    }
    let job = store
        .import_job(brand.brand_code, job.id)
        .await?
        .context("the import's record is gone")?;
    let rate = (job.rows_read - rows_before) as f64 / started.elapsed().as_secs_f64().max(0.001);
    let path = rejects_path(args);
    if job.counts.rejected > 0 {
        write_rejects(store, job.id, &path).await?;
    }
    Ok(summary(&job, rate, Some(&path)))
}

async fn write_rejects(store: &Arc<SqlStore>, id: i64, path: &Path) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let reader = {
        let store = store.clone();
        tokio::spawn(async move { hub::exports::rejects(&*store, id, tx).await })
    };
    while let Some(chunk) = rx.recv().await {
        out.write_all(&chunk?)?;
    }
    reader.await?;
    out.flush()?;
    Ok(())
}

/// Uploads the file to a running hub, follows the import to its end and saves its rejects.
async fn import_remote(args: &ImportArgs, url: &str) -> anyhow::Result<ExitCode> {
    let key = args
        .api_key
        .as_deref()
        .context("--url needs an API key with write scope (--api-key or IYSHUB_API_KEY)")?;
    let base = format!("{}/api/v1/brands/{}", url.trim_end_matches('/'), args.brand);
    let http = reqwest::Client::new();
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let mut query: Vec<(&str, String)> = vec![("dryRun", args.dry_run.to_string())];
    if let Some(n) = &name {
        query.push(("fileName", n.clone()));
    }
    if let Some(f) = args.format {
        query.push(("format", f.as_str().to_owned()));
    }
    if !args.map.is_empty() {
        overrides(&args.map)?;
        query.push(("map", args.map.join(",")));
    }
    let file = tokio::fs::File::open(&args.file)
        .await
        .with_context(|| format!("opening {}", args.file.display()))?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
    let started = Instant::now();
    let answer = http
        .post(format!("{base}/imports"))
        .bearer_auth(key)
        .query(&query)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .context("uploading")?;
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("the hub refused the upload ({status}): {body}");
    }
    let id = body["id"]
        .as_i64()
        .context("the hub's answer has no import id")?;
    eprintln!("uploaded as import {id}; following it");
    let mut report = Report::new(None);
    let job = loop {
        let job: serde_json::Value = http
            .get(format!("{base}/imports/{id}"))
            .bearer_auth(key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let n = |k: &str| job[k].as_u64().unwrap_or(0);
        report.update(hub::imports::Progress {
            line: n("line"),
            rows: n("rowsRead"),
            counts: hub_store::ImportCounts {
                applied: n("applied"),
                unchanged: n("unchanged"),
                older: n("older"),
                rejected: n("rejected"),
            },
        });
        match job["state"].as_str() {
            Some("done") => break job,
            Some("failed") => anyhow::bail!(
                "import {id} failed: {}",
                job["error"].as_str().unwrap_or("no reason given")
            ),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    report.finish();
    let n = |k: &str| job[k].as_u64().unwrap_or(0);
    let path = rejects_path(args);
    if n("rejected") > 0 {
        let csv = http
            .get(format!("{base}/imports/{id}/rejects.csv"))
            .bearer_auth(key)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        std::fs::write(&path, &csv).with_context(|| format!("writing {}", path.display()))?;
    }
    let rate = n("rowsRead") as f64 / started.elapsed().as_secs_f64().max(0.001);
    println!(
        "{}import {id}: {} rows ({rate:.0} rows/s): applied {}, unchanged {}, older {}, rejected {}",
        if args.dry_run { "dry run: " } else { "" },
        n("rowsRead"),
        n("applied"),
        n("unchanged"),
        n("older"),
        n("rejected")
    );
    if n("rejected") > 0 {
        println!(
            "rejected rows (line, code, field, value, message): {}",
            path.display()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let config = args.db.config()?;
    let (store, _) = crate::setup::open(&config).await?;
    let store = Arc::new(store);
    let source = match &args.category {
        Some(code) => hub::exports::ExportSource::Category {
            code: code.clone(),
            status: args.status,
        },
        None => hub::exports::ExportSource::Consents(ConsentFilter {
            channel: args.channel,
            recipient_type: args.recipient_type,
            status: args.status,
            iys_state: args.iys_state,
            source: args.source.clone(),
            changed_since: args.changed_since,
        }),
    };
    let format = if args.format == "ndjson" {
        hub::exports::ExportFormat::Ndjson
    } else {
        hub::exports::ExportFormat::Csv
    };
    let brand = BrandCode(args.brand);
    let found = store.brand(brand).await;
    let result = async {
        found?.with_context(|| format!("no brand {brand}"))?;
        if let Some(code) = &args.category
            && !store
                .categories(brand)
                .await?
                .iter()
                .any(|c| &c.code == code)
        {
            anyhow::bail!("--category {code:?}: no such category for brand {brand}");
        }
        let mut out: Box<dyn Write + Send> = match &args.output {
            Some(p) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
            )),
            None => Box::new(std::io::BufWriter::new(std::io::stdout())),
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let reader = {
            let store = store.clone();
            tokio::spawn(
                async move { hub::exports::export(&*store, brand, &source, format, tx).await },
            )
        };
        let started = Instant::now();
        while let Some(chunk) = rx.recv().await {
            out.write_all(&chunk?)?;
        }
        out.flush()?;
        let rows = reader.await?;
        eprintln!(
            "exported {rows} consents ({:.0} rows/s)",
            rows as f64 / started.elapsed().as_secs_f64().max(0.001)
        );
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result?;
    Ok(ExitCode::SUCCESS)
}
