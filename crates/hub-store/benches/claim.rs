//! The dispatcher's claim on a large outbox: `claim_pending` of 1000 rows from an outbox of
//! `CLAIM_BENCH_ROWS` rows (default 1,000,000: a third done, a sixth awaiting a bulk result with
//! a pending row queued behind it, the rest pending), against a baseline measured in the same run
//! on the same table: a plain `SELECT … ORDER BY deadline LIMIT 1000` of pending rows (no lease,
//! no ordering rule). SQLite always; PostgreSQL when `IYSHUB_TEST_DATABASE_URL` is set.
//!
//! Run: `cargo bench -p hub-store --bench claim`.

use std::time::{Duration, Instant};

use hub_core::{BrandCode, Mode};
use hub_store::{Backend, EngineStore, IysConnection, NewBrand, SqlStore, Store};
use jiff::Timestamp;

const CLAIMS: u32 = 10;

fn rows() -> i64 {
    std::env::var("CLAIM_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Fills the outbox with `n` rows in one statement per dialect.
async fn fill(pool: &sqlx::AnyPool, backend: Backend, n: i64, now_ms: i64) {
    // Row i: key i/2 (two rows per consent); even rows done or awaiting, odd rows pending.
    let select = "SELECT 600123, i, '+90532' || CAST(1000000 + i / 2 AS TEXT), 'BIREYSEL', 'MESAJ', 'ONAY', '2026-11-20 10:00:00', 'HS_WEB', \
                  CASE WHEN i % 2 = 1 THEN 'pending' WHEN i % 6 = 0 THEN 'awaiting_result' ELSE 'done' END, \
                  0, $1, $1 + (i % 100000) * 1000, $1";
    let sql = match backend {
        Backend::Postgres => format!(
            "INSERT INTO outbox (brand_code, event_id, recipient, recipient_type, channel, status, consent_date, source, state, attempts, next_attempt_at_ms, deadline_ms, created_at_ms) \
             {select} FROM generate_series(0, {last}) AS g(i)",
            last = n - 1
        ),
        Backend::Sqlite => format!(
            "WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i < {last}) \
             INSERT INTO outbox (brand_code, event_id, recipient, recipient_type, channel, status, consent_date, source, state, attempts, next_attempt_at_ms, deadline_ms, created_at_ms) \
             {select} FROM g",
            last = n - 1
        ),
    };
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now_ms)
        .execute(pool)
        .await
        .expect("fill the outbox");
    if backend == Backend::Postgres {
        sqlx::query("ANALYZE outbox")
            .execute(pool)
            .await
            .expect("analyze");
    }
}

async fn run(label: &str, url: &str) {
    let store = SqlStore::connect(url).await.expect("connect");
    store
        .create_brand(NewBrand {
            brand_code: BrandCode(600_123),
            iys_code: 600_123,
            name: "bench".into(),
            mode: Mode::Integrator,
            iys: IysConnection::default(),
        })
        .await
        .expect("brand");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("pool");
    let n = rows();
    let now = Timestamp::now();
    let t0 = Instant::now();
    fill(&pool, store.backend(), n, now.as_millisecond()).await;
    let filled = t0.elapsed();

    let mut baseline = Duration::ZERO;
    for _ in 0..CLAIMS {
        let t0 = Instant::now();
        let got = sqlx::query("SELECT id FROM outbox WHERE brand_code = $1 AND state = 'pending' AND next_attempt_at_ms <= $2 ORDER BY deadline_ms, id LIMIT 1000")
            .bind(600_123_i64)
            .bind(now.as_millisecond())
            .fetch_all(&pool)
            .await
            .expect("baseline");
        baseline += t0.elapsed();
        assert_eq!(got.len(), 1000);
    }
    let mut claim = Duration::ZERO;
    let mut claimed = 0;
    for round in 0..CLAIMS {
        let t0 = Instant::now();
        let got = store
            .claim_pending(
                BrandCode(600_123),
                &format!("bench-{round}"),
                now,
                3_600_000,
                1000,
            )
            .await
            .expect("claim");
        claim += t0.elapsed();
        claimed += got.len();
    }
    assert!(claimed > 0);
    let (claim_ms, base_ms) = (
        claim.as_secs_f64() * 1000.0 / f64::from(CLAIMS),
        baseline.as_secs_f64() * 1000.0 / f64::from(CLAIMS),
    );
    println!(
        "{label:<11} claim of 1000 from {n} rows: {claim_ms:>8.1} ms   baseline (plain select) {base_ms:>8.1} ms   ratio {:.2}   ({claimed} rows claimed in {CLAIMS} claims; filled in {:.1} s)",
        claim_ms / base_ms,
        filled.as_secs_f64()
    );
    pool.close().await;
    store.close().await;
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = SqlStore::sqlite_url(&dir.path().join("claim.db")).expect("url");
    run("SQLite", &url).await;
    if let Ok(admin) = std::env::var("IYSHUB_TEST_DATABASE_URL") {
        let (url, name) = hub_store::testkit::fresh_postgres(&admin, "iyshub_claim").await;
        run("PostgreSQL", &url).await;
        hub_store::testkit::drop_postgres(&admin, &name).await;
    } else {
        println!("PostgreSQL skipped (set IYSHUB_TEST_DATABASE_URL)");
    }
}
