//! Audiences on a large store (issue #16).
//!
//! The consents are seeded set-based in SQL (an `INSERT … SELECT` over a generated series, the
//! tally triggers running as for any write), not through the ledger: ten million changes
//! through the API would take longer than the measurement. 90% are ONAY in IYS, 5% ONAY still
//! pending, 10% RET.
//!
//! - `campaign-filter`: `POST …/check/stream` with a list of recipients (90% stored, 10% not),
//!   one request. Baseline: one SELECT per recipient by the consent table's primary key,
//!   straight through sqlx, as `check-batch`'s.
//! - `stats`: `GET …/stats` one request after another. Baseline: the `GROUP BY` over the
//!   consents that the counters replace.

use std::time::Instant;

use anyhow::{Context, bail};
use hub_store::IysConnection;
use sqlx::Row;

use super::check::with_analyze_note;
use super::db::{Backend, Db};
use super::harness::{self, ADMIN_KEY, ApiHub, BRAND};
use super::{Ctx, Outcome, Scenario, load, per_second};

/// Consents seeded per statement (each its own transaction).
const SEED_CHUNK: u64 = 500_000;

async fn seed(db: &Db, count: u64) -> anyhow::Result<()> {
    let pool = db.raw_pool().await?;
    let mut from = 0;
    while from < count {
        let to = (from + SEED_CHUNK).min(count);
        let sql = match db.backend {
            Backend::Sqlite => format!(
                "WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
                 INSERT INTO consent (brand_code, recipient, recipient_type, channel, status, consent_date, source, last_event_id, iys_state, iys_error, conflict, hold, deadline_ms, updated_at_ms, iys_known) \
                 SELECT {brand}, '+90532' || substr('0000000' || i, -7, 7), 'BIREYSEL', 'MESAJ', \
                 CASE WHEN i % 10 = 0 THEN 'RET' ELSE 'ONAY' END, '2026-03-02 10:00:00', 'HS_WEB', 0, \
                 CASE WHEN i % 20 = 1 THEN 'pending' ELSE 'in_iys' END, NULL, 0, 0, NULL, 1772440000000 + i, 1 FROM n",
                last = to - 1,
                brand = BRAND.0,
            ),
            Backend::Postgres => format!(
                "INSERT INTO consent (brand_code, recipient, recipient_type, channel, status, consent_date, source, last_event_id, iys_state, iys_error, conflict, hold, deadline_ms, updated_at_ms, iys_known) \
                 SELECT {brand}, '+90532' || lpad(i::text, 7, '0'), 'BIREYSEL', 'MESAJ', \
                 CASE WHEN i % 10 = 0 THEN 'RET' ELSE 'ONAY' END, '2026-03-02 10:00:00', 'HS_WEB', 0, \
                 CASE WHEN i % 20 = 1 THEN 'pending' ELSE 'in_iys' END, NULL, 0, 0, NULL, 1772440000000 + i, 1 \
                 FROM generate_series({from}, {last}) AS i",
                last = to - 1,
                brand = BRAND.0,
            ),
        };
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .context("seeding consents")?;
        from = to;
    }
    // A year of daily opt-ins and opt-outs per channel and origin.
    let mut rows = Vec::new();
    let start = jiff::civil::date(2025, 12, 1);
    for d in 0..365 {
        let day = start
            .checked_add(jiff::Span::new().days(d))
            .context("a day")?;
        for channel in ["MESAJ", "ARAMA", "EPOSTA"] {
            for origin in ["api", "import", "iys_pull", "console"] {
                rows.push(format!(
                    "({}, '{day}', '{channel}', '{origin}', {}, {})",
                    BRAND.0,
                    100 + d,
                    d % 17
                ));
            }
        }
    }
    for chunk in rows.chunks(500) {
        let sql = format!(
            "INSERT INTO consent_daily (brand_code, day, channel, origin, opt_ins, opt_outs) VALUES {}",
            chunk.join(", ")
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await?;
    }
    pool.close().await;
    db.analyze().await
}

pub async fn campaign_filter(ctx: &Ctx) -> anyhow::Result<Vec<Outcome>> {
    let db = ctx.fresh_db().await?;
    let result = run_on(ctx, &db).await;
    let removed = db.remove().await;
    let outcomes = result?;
    removed?;
    Ok(outcomes)
}

async fn run_on(ctx: &Ctx, db: &Db) -> anyhow::Result<Vec<Outcome>> {
    let store = db.store().await?;
    harness::create_brand(&store, IysConnection::default()).await?;
    let stored = ctx.plan.audience_stored as u64;
    let t0 = Instant::now();
    seed(db, stored).await?;
    let seeded = t0.elapsed().as_secs_f64();
    let mirror = warm_mirror(&store).await?;
    let api = ApiHub::start(store, 2).await?;
    let filter = filter_on(ctx, db, &api, stored, seeded, mirror).await;
    let stats = stats_on(ctx, db, &api, stored).await;
    api.stop().await?;
    Ok(vec![filter?, stats?])
}

/// Builds the brand's send-state mirror before the list, as a hub that has been up has it: the
/// first list after a start reads the table while it builds. Answers the build's seconds.
async fn warm_mirror(store: &hub_store::SqlStore) -> anyhow::Result<String> {
    let t0 = Instant::now();
    while !store.send_state_mirror_ready(BRAND) {
        if t0.elapsed() > std::time::Duration::from_secs(600) {
            bail!("the send-state mirror was not built within 10 minutes");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let built = t0.elapsed().as_secs_f64();
    let (consents, bytes) = store.send_state_mirror_size(BRAND).unwrap_or_default();
    Ok(format!(
        "send-state mirror of {consents} consents (about {} MiB) built beforehand in {built:.1} s (a list while it builds reads the table)",
        bytes >> 20
    ))
}

async fn filter_on(
    ctx: &Ctx,
    db: &Db,
    api: &ApiHub,
    stored: u64,
    seeded: f64,
    mirror: String,
) -> anyhow::Result<Outcome> {
    // Baseline: a point lookup per recipient on one connection.
    let lookups = (ctx.plan.filter_recipients as u64 / 10).max(100);
    let pool = db.raw_pool().await?;
    let mut conn = pool.acquire().await?;
    let t0 = Instant::now();
    for k in 0..lookups {
        let row = sqlx::query(
            "SELECT status, iys_state, hold, source FROM consent WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4",
        )
        .bind(BRAND.0 as i64)
        .bind(harness::recipient((k * 7_919) % stored))
        .bind("BIREYSEL")
        .bind("MESAJ")
        .fetch_optional(&mut *conn)
        .await
        .context("baseline lookup")?;
        if let Some(row) = row {
            let _status: String = row.try_get("status")?;
        }
    }
    let baseline = per_second(lookups as f64, t0.elapsed());
    drop(conn);
    pool.close().await;

    // The list: 90% stored recipients spread over the table, 10% never seen.
    let n = ctx.plan.filter_recipients as u64;
    let mut list = String::with_capacity(n as usize * 15);
    for k in 0..n {
        if k % 10 == 9 {
            list.push_str(&format!("+90555{:07}\n", k % 10_000_000));
        } else {
            list.push_str(&harness::recipient((k * 7_919) % stored));
            list.push('\n');
        }
    }
    let t0 = Instant::now();
    let answer = api
        .http
        .post(api.brand_url("/check/stream?channel=MESAJ"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "text/csv")
        .body(list)
        .send()
        .await
        .context("the campaign filter")?;
    if !answer.status().is_success() {
        bail!("the campaign filter answered {}", answer.status());
    }
    let text = answer.text().await.context("reading the allowed list")?;
    let elapsed = t0.elapsed();
    let summary: serde_json::Value = text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .context("the answer's summary line")?;
    let received = summary["summary"]["received"].as_u64().unwrap_or(0);
    if received != n {
        bail!("the filter read {received} of {n} recipients: {summary}");
    }
    let allowed = summary["summary"]["allowed"].as_u64().unwrap_or(0);
    let figure = per_second(n as f64, elapsed);
    Ok(Outcome {
        label: Scenario::CampaignFilter.name().into(),
        scenario: Scenario::CampaignFilter,
        backend: ctx.backend,
        figure,
        unit: "recipients/s".into(),
        baseline,
        baseline_unit: "lookups/s".into(),
        baseline_what: "one SELECT per recipient by primary key".into(),
        ratio: figure / baseline,
        target: "≥ 1,000,000 recipients/s".into(),
        met: figure >= 1_000_000.0,
        notes: with_analyze_note(db, {
            let mut notes = vec![format!(
                "{n} recipients (10% unknown) against {stored} consents, one request: {allowed} allowed; seeding took {seeded:.0} s"
            )];
            notes.push(mirror);
            notes
        }),
        peak_rss_mib: None,
        seconds: 0.0,
    })
}

async fn stats_on(ctx: &Ctx, db: &Db, api: &ApiHub, stored: u64) -> anyhow::Result<Outcome> {
    // Baseline: counting the consents themselves.
    let pool = db.raw_pool().await?;
    let mut scans = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let rows = sqlx::query(
            "SELECT channel, status, iys_state, COUNT(*) AS n FROM consent WHERE brand_code = $1 GROUP BY channel, status, iys_state",
        )
        .bind(BRAND.0 as i64)
        .fetch_all(&pool)
        .await
        .context("baseline count")?;
        scans.push(t.elapsed().as_secs_f64() * 1000.0);
        let total: i64 = rows
            .iter()
            .map(|r| r.try_get::<i64, _>("n").unwrap_or(0))
            .sum();
        if total as u64 != stored {
            bail!("the baseline counted {total} of {stored} consents");
        }
    }
    pool.close().await;
    scans.sort_by(f64::total_cmp);
    let scan_ms = load::quantile(&scans, 0.5);

    let url = api.brand_url("/stats?from=2025-12-01&to=2026-11-30");
    let first = load::fetch(api.http.get(&url).bearer_auth(ADMIN_KEY))
        .await
        .context("a first stats request")?;
    let counted: i64 = first["current"]
        .as_array()
        .map(|c| c.iter().filter_map(|x| x["count"].as_i64()).sum())
        .unwrap_or(0);
    if counted as u64 != stored {
        bail!("stats counted {counted} of {stored} consents");
    }
    let requests = ctx.plan.stats_requests;
    let mut latencies = Vec::with_capacity(requests);
    for _ in 0..requests {
        let t = Instant::now();
        load::send(api.http.get(&url).bearer_auth(ADMIN_KEY))
            .await
            .context("stats")?;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let p99 = load::quantile(&latencies, 0.99);
    Ok(Outcome {
        label: Scenario::Stats.name().into(),
        scenario: Scenario::Stats,
        backend: ctx.backend,
        figure: p99,
        unit: "ms p99".into(),
        baseline: scan_ms,
        baseline_unit: "ms".into(),
        baseline_what: "GROUP BY over the consents".into(),
        ratio: p99 / scan_ms.max(1e-9),
        target: "p99 < 50 ms".into(),
        met: p99 < 50.0,
        notes: with_analyze_note(
            db,
            vec![format!(
                "{requests} requests (a year of daily rows) on {stored} consents; p50 {:.1} ms",
                load::quantile(&latencies, 0.5)
            )],
        ),
        peak_rss_mib: None,
        seconds: 0.0,
    })
}
