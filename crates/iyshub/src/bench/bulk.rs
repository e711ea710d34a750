//! Bulk files (issue #15).
//!
//! - `import`: a generated CSV (one consent a row, Turkish headers, phones as people type them)
//!   imported by `iyshub import` in a child process, so its peak memory is its own. Baseline:
//!   the same number of rows as plain multi-row INSERTs into a scratch table, 5,000 a
//!   transaction (the import's batch). Twice, each on a fresh database: a file in phone order
//!   (`import`, the best case) and one with the phones scattered (`import/scattered`), as a
//!   CRM's export ordered by customer is.
//! - `export`: the imported consents exported as CSV by the export code the API and
//!   `iyshub export` use, into memory. Baseline: the same rows read by one plain SELECT in key
//!   order.

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use anyhow::bail;
use futures_util::TryStreamExt;
use hub_store::{ConsentFilter, IysConnection};

use super::db::{self, Backend, Db};
use super::harness;
use super::{Ctx, Outcome, Scenario, per_second, thousands};

/// The import's batch, for the baseline's transactions.
const BATCH: u64 = hub::imports::BATCH_ROWS as u64;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for order in [Order::Phone, Order::Scattered] {
        let db = ctx.fresh_db().await?;
        let result = run_on(ctx, &db, order).await;
        let removed = db.remove().await;
        outcomes.extend(result?);
        removed?;
    }
    Ok(outcomes)
}

/// The order of the generated file's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// By phone: each batch's rows land side by side in every index (an import's best case).
    Phone,
    /// Phones scattered over the whole range, as in a CRM's export ordered by customer: each
    /// row of a batch lands on its own pages.
    Scattered,
}

/// A stride that visits `0..n` in a scattered order (`i × stride mod n`): a prime not dividing
/// `n`.
fn stride(n: u64) -> u64 {
    [7_919, 7_907, 7_901]
        .into_iter()
        .find(|p| !n.is_multiple_of(*p))
        .unwrap_or(1)
}

/// `n` rows: `0532 xxx xx xx`, MESAJ, ONAY or RET, HS_WEB, a date in `DD.MM.YYYY HH:MM` form.
fn write_csv(path: &std::path::Path, n: u64, order: Order) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    out.write_all("ALICI;İZİN TÜRÜ;DURUM;İZİN KAYNAĞI;İZİN TARİHİ\n".as_bytes())?;
    let stride = stride(n);
    for i in 0..n {
        let phone = 5_320_000_000
            + match order {
                Order::Phone => i,
                Order::Scattered => i.wrapping_mul(stride) % n.max(1),
            };
        let digits = phone.to_string();
        let (a, b, c, d) = (&digits[..3], &digits[3..6], &digits[6..8], &digits[8..]);
        let status = if i % 4 == 0 { "RET" } else { "ONAY" };
        writeln!(
            out,
            "0{a} {b} {c} {d};MESAJ;{status};HS_WEB;{:02}.11.2025 10:{:02}",
            1 + i % 28,
            i % 60
        )?;
    }
    out.flush()?;
    Ok(())
}

/// The import of a file in `order`; for files in phone order, then the export of what it
/// stored.
async fn run_on(ctx: &Ctx, db: &Db, order: Order) -> anyhow::Result<Vec<Outcome>> {
    let store = db.store().await?;
    harness::create_brand(&store, IysConnection::default()).await?;
    let pool = db.raw_pool().await?;
    db::create_scratch(&pool).await?;
    let n = ctx.plan.import_rows as u64;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("izinler.csv");
    write_csv(&file, n, order)?;
    let bytes = std::fs::metadata(&file)?.len();

    let date = harness::recent_date().to_string();
    let baseline = per_second(
        n as f64,
        super::ledger::plain_batches(&pool, db.backend, n, BATCH, &date).await?,
    );

    // The importer as an operator runs it, in its own process.
    let mut cmd = Command::new(std::env::current_exe()?);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("IYSHUB_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("IYSHUB_DATABASE_URL", &db.url)
        .arg("import")
        .arg(&file)
        .args(["--brand", &harness::BRAND.0.to_string()]);
    let t0 = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
    let elapsed = t0.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "iyshub import failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stored = db::consent_rows(&pool).await?;
    if stored != n as i64 {
        bail!("{stored} consents stored after importing {n} rows: {stdout}");
    }
    let peak = stdout
        .split("peak memory ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<f64>().ok());
    let figure = per_second(n as f64, elapsed);
    let target = match ctx.backend {
        Backend::Sqlite => 100_000.0,
        Backend::Postgres => 50_000.0,
    };
    let import = Outcome {
        label: match order {
            Order::Phone => Scenario::Import.name().into(),
            Order::Scattered => format!("{}/scattered", Scenario::Import.name()),
        },
        scenario: Scenario::Import,
        backend: ctx.backend,
        figure,
        unit: "rows/s".into(),
        baseline,
        baseline_unit: "rows/s".into(),
        baseline_what: format!(
            "multi-row INSERTs, {} rows a statement, 1 txn per {BATCH}",
            ctx.backend.rows_per_statement()
        ),
        ratio: figure / baseline,
        target: format!("≥ {} rows/s, peak RSS < 300 MiB", thousands(target)),
        met: figure >= target && peak.is_some_and(|p| p < 300.0),
        notes: vec![format!(
            "{n} rows in {} order, {:.0} MiB of CSV, in the child process; importer's peak RSS {}",
            match order {
                Order::Phone => "phone",
                Order::Scattered => "scattered",
            },
            bytes as f64 / 1048576.0,
            peak.map_or("unknown".into(), |p| format!("{p:.0} MiB"))
        )],
        peak_rss_mib: None,
        seconds: 0.0,
    };

    if order == Order::Scattered {
        pool.close().await;
        return Ok(vec![import]);
    }

    // Export what was imported.
    db.analyze().await?;
    let t0 = Instant::now();
    let scanned: u64 = sqlx::query(
        "SELECT * FROM consent WHERE brand_code = $1 ORDER BY recipient, recipient_type, channel",
    )
    .bind(harness::BRAND.0 as i64)
    .fetch(&pool)
    .try_fold(0u64, |n, _| async move { Ok(n + 1) })
    .await?;
    let baseline = per_second(scanned as f64, t0.elapsed());
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let exporter = {
        let store = store.clone();
        tokio::spawn(async move {
            hub::exports::export(
                &*store,
                harness::BRAND,
                &hub::exports::ExportSource::Consents(ConsentFilter::default()),
                hub::exports::ExportFormat::Csv,
                tx,
            )
            .await
        })
    };
    let t0 = Instant::now();
    let mut bytes = 0usize;
    while let Some(chunk) = rx.recv().await {
        bytes += chunk?.len();
    }
    let rows = exporter.await?;
    let elapsed = t0.elapsed();
    pool.close().await;
    if rows != n {
        bail!("the export wrote {rows} rows of {n}");
    }
    let figure = per_second(rows as f64, elapsed);
    let export = Outcome {
        label: Scenario::Export.name().into(),
        scenario: Scenario::Export,
        backend: ctx.backend,
        figure,
        unit: "rows/s".into(),
        baseline,
        baseline_unit: "rows/s".into(),
        baseline_what: "one plain SELECT in key order".into(),
        ratio: figure / baseline,
        target: "≥ 500,000 rows/s".into(),
        met: figure >= 500_000.0,
        notes: vec![format!(
            "{rows} rows, {:.0} MiB of CSV",
            bytes as f64 / 1048576.0
        )],
        peak_rss_mib: None,
        seconds: 0.0,
    };
    Ok(vec![import, export])
}
