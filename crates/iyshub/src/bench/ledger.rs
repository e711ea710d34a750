//! Writes through `POST /api/v1/brands/{code}/consents`.
//!
//! - `ledger-batch`: one client sends batches of 1,000 changes, one after another. Baseline:
//!   the same number of rows as plain multi-row INSERTs into a scratch table of the same
//!   database, one transaction per 1,000 — what the database does with the data and nothing else.
//! - `ledger-single`: 64 keep-alive connections each send one change per request. Baseline:
//!   64 workers each committing one single-row INSERT per transaction (on SQLite through one
//!   lock, as the store's writes go: SQLite has one writer).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hub_store::IysConnection;
use reqwest::header::CONTENT_TYPE;
use sqlx::AnyPool;

use super::db::{self, Backend, Db};
use super::harness::{self, ADMIN_KEY, ApiHub};
use super::load::{self, Limit, Op};
use super::{Ctx, Outcome, Scenario, per_second, thousands};

pub async fn batch(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let db = ctx.fresh_db().await?;
    let result = batch_on(ctx, &db).await;
    let removed = db.remove().await;
    let outcome = result?;
    removed?;
    Ok(outcome)
}

async fn batch_on(ctx: &Ctx, db: &Db) -> anyhow::Result<Outcome> {
    let store = db.store().await?;
    harness::create_brand(&store, IysConnection::default()).await?;
    let pool = db.raw_pool().await?;
    db::create_scratch(&pool).await?;
    let n = ctx.plan.ledger_batch_changes as u64;
    let size = ctx.plan.batch_size as u64;
    let date = harness::recent_date().to_string();

    let baseline = per_second(
        n as f64,
        plain_batches(&pool, db.backend, n, size, &date).await?,
    );

    let api = ApiHub::start(store, 1).await?;
    // Bodies are made before the clock starts: the client's JSON is not the hub's cost.
    let bodies: Vec<String> = (0..n)
        .step_by(size as usize)
        .map(|from| harness::batch_json(from, (from + size).min(n), &date))
        .collect();
    let url = api.brand_url("/consents");
    let mut latencies = Vec::with_capacity(bodies.len());
    let t0 = Instant::now();
    for body in bodies {
        let t = Instant::now();
        load::send(
            api.http
                .post(&url)
                .bearer_auth(ADMIN_KEY)
                .header(CONTENT_TYPE, "application/json")
                .body(body),
        )
        .await
        .context("a batch of changes")?;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let elapsed = t0.elapsed();
    let stored = db::consent_rows(&pool).await?;
    api.stop().await?;
    pool.close().await;
    if stored != n as i64 {
        bail!("the hub holds {stored} consents after {n} accepted changes");
    }
    latencies.sort_by(f64::total_cmp);
    let figure = per_second(n as f64, elapsed);
    let target = match ctx.backend {
        Backend::Sqlite => 50_000.0,
        Backend::Postgres => 20_000.0,
    };
    Ok(Outcome {
        label: Scenario::LedgerBatch.name().into(),
        scenario: Scenario::LedgerBatch,
        backend: ctx.backend,
        figure,
        unit: "changes/s".into(),
        baseline,
        baseline_unit: "rows/s".into(),
        baseline_what: format!(
            "multi-row INSERTs, {} rows a statement, 1 txn per {size}",
            ctx.backend.rows_per_statement()
        ),
        ratio: figure / baseline,
        target: format!("≥ {} changes/s", thousands(target)),
        met: figure >= target,
        notes: vec![format!(
            "{n} changes; per request of {}: p50 {:.0} ms, p99 {:.0} ms",
            size.min(n),
            load::quantile(&latencies, 0.5),
            load::quantile(&latencies, 0.99)
        )],
        peak_rss_mib: None,
        seconds: 0.0,
    })
}

/// The baseline of `ledger-batch`: `n` rows in transactions of `size`, as multi-row INSERTs.
pub(super) async fn plain_batches(
    pool: &AnyPool,
    backend: Backend,
    n: u64,
    size: u64,
    date: &str,
) -> anyhow::Result<Duration> {
    let per_statement = backend.rows_per_statement() as u64;
    let full = db::scratch_insert_sql(backend, per_statement as usize);
    let t0 = Instant::now();
    let mut from = 0;
    while from < n {
        let to = (from + size).min(n);
        let mut tx = pool.begin().await?;
        let mut s = from;
        while s < to {
            let e = (s + per_statement).min(to);
            let sql = if e - s == per_statement {
                full.clone()
            } else {
                db::scratch_insert_sql(backend, (e - s) as usize)
            };
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for k in s..e {
                q = db::bind_scratch(q, k, date);
            }
            q.execute(&mut *tx).await.context("baseline insert")?;
            s = e;
        }
        tx.commit().await?;
        from = to;
    }
    Ok(t0.elapsed())
}

/// Operations per connection before each measured load of `ledger-single`: the first wave of 64
/// requests opens the connections, fills the database pools and the key cache, and without a
/// warm-up it alone made the p99 (the 50 slowest of 5,000).
const WARM_UP: u64 = 2;

pub async fn single(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let db = ctx.fresh_db().await?;
    let result = single_on(ctx, &db).await;
    let removed = db.remove().await;
    let outcome = result?;
    removed?;
    Ok(outcome)
}

async fn single_on(ctx: &Ctx, db: &Db) -> anyhow::Result<Outcome> {
    let store = db.store().await?;
    harness::create_brand(&store, IysConnection::default()).await?;
    let pool = db.raw_pool().await?;
    db::create_scratch(&pool).await?;
    let n = ctx.plan.single_changes as u64;
    let conns = ctx.plan.single_connections;
    let cap = Duration::from_secs_f64(ctx.plan.single_cap_secs);
    let date = Arc::new(harness::recent_date().to_string());

    // Baseline: one row per transaction from as many workers as the hub gets connections.
    let lock = (db.backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
    let sql = Arc::new(db::scratch_insert_sql(db.backend, 1));
    let op: Op = {
        let (pool, date) = (pool.clone(), date.clone());
        Arc::new(move |k| {
            let (pool, lock, sql, date) = (pool.clone(), lock.clone(), sql.clone(), date.clone());
            Box::pin(async move {
                let _writer = match &lock {
                    Some(l) => Some(l.lock().await),
                    None => None,
                };
                let mut tx = pool.begin().await?;
                db::bind_scratch(sqlx::query(sqlx::AssertSqlSafe((*sql).clone())), k, &date)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            })
        })
    };
    load::warm_up(conns, WARM_UP, n, op.clone())
        .await
        .context("warming up the baseline")?;
    let baseline = load::closed_loop(conns, Limit::count(n, cap), op)
        .await
        .context("baseline single-row transactions")?;

    let api = ApiHub::start(store, conns).await?;
    let op: Op = {
        let (http, url, date) = (api.http.clone(), api.brand_url("/consents"), date.clone());
        Arc::new(move |k| {
            let req = http
                .post(&url)
                .bearer_auth(ADMIN_KEY)
                .header(CONTENT_TYPE, "application/json")
                .body(harness::change_json(k, &date));
            Box::pin(async move { load::send(req).await.map(|_| ()) })
        })
    };
    let warmed = load::warm_up(conns, WARM_UP, n, op.clone())
        .await
        .context("warming up the hub")?;
    let hub = load::closed_loop(conns, Limit::count(n, cap), op)
        .await
        .context("single-change requests")?;
    let stored = db::consent_rows(&pool).await?;
    api.stop().await?;
    pool.close().await;
    if stored != (warmed + hub.done) as i64 {
        bail!(
            "the hub holds {stored} consents after {} accepted changes",
            warmed + hub.done
        );
    }
    let figure = hub.rate();
    let p99 = hub.quantile(0.99);
    let mut notes = vec![format!(
        "{} changes over {conns} connections{} after a warm-up of {WARM_UP} per connection; hub {}; baseline {}",
        hub.done,
        if hub.done < n {
            format!(" (stopped at the {} s cap)", cap.as_secs())
        } else {
            String::new()
        },
        hub.latency_note(),
        baseline.latency_note()
    )];
    if db.backend == Backend::Sqlite {
        notes.push("baseline writers take turns like the store's (SQLite has one writer)".into());
    }
    Ok(Outcome {
        label: Scenario::LedgerSingle.name().into(),
        scenario: Scenario::LedgerSingle,
        backend: ctx.backend,
        figure,
        unit: "changes/s".into(),
        baseline: baseline.rate(),
        baseline_unit: "txn/s".into(),
        baseline_what: format!("single-row INSERT transactions, {conns} workers"),
        ratio: figure / baseline.rate(),
        target: format!("≥ 5,000 changes/s and p99 < 50 ms (p99 {p99:.1} ms)"),
        met: figure >= 5_000.0 && p99 < 50.0,
        notes,
        peak_rss_mib: None,
        seconds: 0.0,
    })
}
