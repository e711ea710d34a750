//! Send-time checks through `POST /api/v1/brands/{code}/check`.
//!
//! - `check-single`: one recipient per request from several keep-alive connections, against
//!   `GET /healthz` of the same server driven by the same generator: the ratio is what a check
//!   costs on top of HTTP, routing and JSON.
//! - `check-batch`: 10,000 recipients per request, one client. Baseline: one SELECT per
//!   recipient by the consent table's primary key, straight through sqlx — the obvious way to
//!   answer the same question without the hub.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hub_store::IysConnection;
use reqwest::header::CONTENT_TYPE;
use sqlx::Row;

use super::db::{Backend, Db};
use super::harness::{self, ADMIN_KEY, ApiHub, BRAND};
use super::load::{self, Limit, Op};
use super::{Ctx, Outcome, Scenario, per_second};

pub async fn single(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let db = ctx.fresh_db().await?;
    let result = single_on(ctx, &db).await;
    let removed = db.remove().await;
    let outcome = result?;
    removed?;
    Ok(outcome)
}

fn check_body(n: u64) -> String {
    format!(
        r#"{{"recipient":"{}","channel":"MESAJ"}}"#,
        harness::recipient(n)
    )
}

async fn single_on(ctx: &Ctx, db: &Db) -> anyhow::Result<Outcome> {
    let store = db.store().await?;
    let brand = harness::create_brand(&store, IysConnection::default()).await?;
    let stored = ctx.plan.check_stored as u64;
    harness::seed_consents(&store, &brand, stored).await?;
    db.analyze().await?;
    let conns = ctx.plan.check_connections;
    let api = ApiHub::start(store, conns).await?;

    let answer = load::fetch(
        api.http
            .post(api.brand_url("/check"))
            .bearer_auth(ADMIN_KEY)
            .header(CONTENT_TYPE, "application/json")
            .body(check_body(0)),
    )
    .await
    .context("a first check")?;
    if !answer["allowed"].is_boolean() {
        bail!("a check answered without `allowed`: {answer}");
    }

    let check: Op = {
        let (http, url) = (api.http.clone(), api.brand_url("/check"));
        Arc::new(move |k| {
            let req = http
                .post(&url)
                .bearer_auth(ADMIN_KEY)
                .header(CONTENT_TYPE, "application/json")
                .body(check_body(k % stored));
            Box::pin(async move { load::send(req).await.map(|_| ()) })
        })
    };
    let health: Op = {
        let (http, url) = (api.http.clone(), api.url("/healthz"));
        Arc::new(move |_| {
            let req = http.get(&url);
            Box::pin(async move { load::send(req).await.map(|_| ()) })
        })
    };
    let d = Duration::from_secs_f64(ctx.plan.check_secs);
    // A short warm-up opens every connection and warms the database's cache for both loads.
    load::closed_loop(
        conns,
        Limit::time(d.mul_f64(0.25).min(Duration::from_secs(1))),
        check.clone(),
    )
    .await
    .context("warming up")?;
    let base = load::closed_loop(conns, Limit::time(d), health)
        .await
        .context("GET /healthz")?;
    let hub = load::closed_loop(conns, Limit::time(d), check)
        .await
        .context("single checks")?;
    api.stop().await?;

    let ratio = hub.rate() / base.rate();
    let wanted = match ctx.backend {
        Backend::Sqlite => 0.8,
        Backend::Postgres => 0.6,
    };
    Ok(Outcome {
        label: Scenario::CheckSingle.name().into(),
        scenario: Scenario::CheckSingle,
        backend: ctx.backend,
        figure: hub.rate(),
        unit: "checks/s".into(),
        baseline: base.rate(),
        baseline_unit: "req/s".into(),
        baseline_what: "GET /healthz, same server and load".into(),
        ratio,
        target: format!("ratio ≥ {wanted}"),
        met: ratio >= wanted,
        notes: with_analyze_note(
            db,
            vec![format!(
                "{conns} connections, {:.1} s each; check {}; healthz {}; {stored} stored consents",
                d.as_secs_f64(),
                hub.latency_note(),
                base.latency_note()
            )],
        ),
        peak_rss_mib: None,
        seconds: 0.0,
    })
}

/// Says that the prepared data was analysed first (PostgreSQL).
pub fn with_analyze_note(db: &Db, mut notes: Vec<String>) -> Vec<String> {
    if db.backend == Backend::Postgres {
        notes.push("ANALYZE after preparing the data".into());
    }
    notes
}

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
    let brand = harness::create_brand(&store, IysConnection::default()).await?;
    let stored = ctx.plan.batch_stored as u64;
    harness::seed_consents(&store, &brand, stored).await?;
    db.analyze().await?;

    // Baseline: a point lookup per recipient on one connection.
    let lookups = ctx.plan.batch_lookups as u64;
    let pool = db.raw_pool().await?;
    let mut conn = pool.acquire().await?;
    let mut found = 0u64;
    let t0 = Instant::now();
    for k in 0..lookups {
        let row = sqlx::query(
            "SELECT * FROM consent WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4",
        )
        .bind(BRAND.0 as i64)
        .bind(harness::recipient(k % stored))
        .bind("BIREYSEL")
        .bind("MESAJ")
        .fetch_optional(&mut *conn)
        .await
        .context("baseline lookup")?;
        if let Some(row) = row {
            let _status: String = row.try_get("status")?;
            found += 1;
        }
    }
    let baseline = per_second(lookups as f64, t0.elapsed());
    drop(conn);
    pool.close().await;
    if found != lookups {
        bail!("the baseline found {found} of {lookups} stored consents");
    }

    let api = ApiHub::start(store, 1).await?;
    let per_request = ctx.plan.batch_recipients as u64;
    let requests = ctx.plan.batch_requests as u64;
    let bodies: Vec<String> = (0..requests)
        .map(|i| {
            let list: Vec<String> = (0..per_request)
                .map(|j| harness::recipient((i * per_request + j) % stored))
                .collect();
            serde_json::json!({"recipients": list, "channel": "MESAJ"}).to_string()
        })
        .collect();
    let url = api.brand_url("/check");
    let post = |body: String| {
        api.http
            .post(&url)
            .bearer_auth(ADMIN_KEY)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
    };
    // One untimed request checks the answers are whole (and warms the cache).
    let first = load::fetch(post(bodies.first().cloned().unwrap_or_default()))
        .await
        .context("a first batch check")?;
    let answered =
        first["allowedCount"].as_u64().unwrap_or(0) + first["deniedCount"].as_u64().unwrap_or(0);
    if answered != per_request {
        bail!("a batch check of {per_request} recipients answered {answered}");
    }
    let mut latencies = Vec::with_capacity(bodies.len());
    let t0 = Instant::now();
    for body in bodies {
        let t = Instant::now();
        load::send(post(body)).await.context("a batch check")?;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let elapsed = t0.elapsed();
    api.stop().await?;
    latencies.sort_by(f64::total_cmp);
    let figure = per_second((requests * per_request) as f64, elapsed);
    Ok(Outcome {
        label: Scenario::CheckBatch.name().into(),
        scenario: Scenario::CheckBatch,
        backend: ctx.backend,
        figure,
        unit: "recipients/s".into(),
        baseline,
        baseline_unit: "lookups/s".into(),
        baseline_what: "one SELECT per recipient by primary key".into(),
        ratio: figure / baseline,
        target: "≥ 500,000 recipients/s".into(),
        met: figure >= 500_000.0,
        notes: with_analyze_note(
            db,
            vec![format!(
                "{requests} requests of {per_request} on {stored} stored consents; per request p50 {:.0} ms, p99 {:.0} ms",
                load::quantile(&latencies, 0.5),
                load::quantile(&latencies, 0.99)
            )],
        ),
        peak_rss_mib: None,
        seconds: 0.0,
    })
}
