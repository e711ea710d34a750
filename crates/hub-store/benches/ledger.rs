//! Ledger write throughput: batches of consent changes through `Store::apply` (event with hash
//! chain, current state, outbox row, one transaction per batch), against a baseline measured in
//! the same run on the same database: plain inserts of the same number of rows, one transaction
//! per batch. SQLite always; PostgreSQL when `IYSHUB_TEST_DATABASE_URL` is set.
//!
//! Then single-change writes from many concurrent writers (group commit), against the same
//! number of single-row insert transactions from as many writers.
//!
//! Run: `cargo bench -p hub-store --bench ledger` (`LEDGER_BENCH_CHANGES`, `LEDGER_BENCH_BATCH`,
//! `LEDGER_BENCH_SINGLES`, `LEDGER_BENCH_WRITERS`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hub_core::{BrandCode, Change, Channel, Mode};
use hub_store::testkit;
use hub_store::{IysConnection, NewBrand, SqlStore, Store};
use iys::{ConsentDate, ConsentStatus, ConsentType};
use jiff::Timestamp;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn change(n: usize, date: ConsentDate) -> Change {
    let r = format!("+90532{n:07}");
    Change {
        actor: Some("bench".into()),
        evidence: Some(serde_json::json!({"ip": "203.0.113.7", "form": "signup-v3"})),
        ..testkit::change(
            BrandCode(600_123),
            &r,
            Channel::Iys(ConsentType::Mesaj),
            ConsentStatus::Onay,
            date,
        )
    }
}

async fn run(label: &str, url: &str, total: usize, batch: usize) {
    let store = SqlStore::connect(url).await.expect("connect");
    let brand = store
        .create_brand(NewBrand {
            brand_code: BrandCode(600_123),
            iys_code: 600_123,
            name: "bench".into(),
            mode: Mode::Integrator,
            iys: IysConnection::default(),
        })
        .await
        .expect("brand");
    let date = ConsentDate::from_timestamp(Timestamp::now());

    // Baseline: the same number of rows as plain inserts, one transaction per batch.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("pool");
    sqlx::query(
        "CREATE TABLE bench_plain (id BIGINT, recipient TEXT, status TEXT, consent_date TEXT)",
    )
    .execute(&pool)
    .await
    .expect("baseline table");
    let t0 = Instant::now();
    for start in (0..total).step_by(batch) {
        let mut tx = pool.begin().await.expect("begin");
        for n in start..(start + batch).min(total) {
            sqlx::query("INSERT INTO bench_plain (id, recipient, status, consent_date) VALUES ($1, $2, $3, $4)")
                .bind(n as i64)
                .bind(format!("+90532{n:07}"))
                .bind("ONAY")
                .bind(date.to_string())
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
        tx.commit().await.expect("commit");
    }
    let baseline = total as f64 / t0.elapsed().as_secs_f64();

    let t0 = Instant::now();
    for start in (0..total).step_by(batch) {
        let changes: Vec<Change> = (start..(start + batch).min(total))
            .map(|n| change(n, date))
            .collect();
        store.apply(&brand, changes, None).await.expect("apply");
    }
    let ledger = total as f64 / t0.elapsed().as_secs_f64();
    let report = store
        .verify_chain(BrandCode(600_123))
        .await
        .expect("verify");
    assert!(report.valid && report.events == total as u64);
    println!(
        "{label:<11} ledger {ledger:>8.0} changes/s   baseline (plain inserts) {baseline:>8.0} rows/s   ratio {:.2}   ({total} changes, batches of {batch}; chain verified)",
        ledger / baseline
    );
    singles(label, Arc::new(store), brand, pool, date).await;
}

/// `writers` tasks each writing single changes (`apply` with one change) vs single-row insert
/// transactions: changes/s and the 99th percentile latency of each.
async fn singles(
    label: &str,
    store: Arc<SqlStore>,
    brand: hub_store::Brand,
    pool: sqlx::AnyPool,
    date: ConsentDate,
) {
    let total = env_or("LEDGER_BENCH_SINGLES", 6_400);
    let writers = env_or("LEDGER_BENCH_WRITERS", 64).max(1);
    let each = total / writers;
    let p99 = |mut l: Vec<Duration>| {
        l.sort();
        l.get(l.len() * 99 / 100).copied().unwrap_or_default()
    };

    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(each);
            for i in 0..each {
                let n = 10_000_000 + w * each + i;
                let t = Instant::now();
                let mut tx = pool.begin().await.expect("begin");
                sqlx::query("INSERT INTO bench_plain (id, recipient, status, consent_date) VALUES ($1, $2, $3, $4)")
                    .bind(n as i64)
                    .bind(format!("+90533{n:07}"))
                    .bind("ONAY")
                    .bind(date.to_string())
                    .execute(&mut *tx)
                    .await
                    .expect("insert");
                tx.commit().await.expect("commit");
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut base_lat = Vec::new();
    for t in tasks {
        base_lat.extend(t.await.expect("writer"));
    }
    let baseline = (writers * each) as f64 / t0.elapsed().as_secs_f64();

    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, brand) = (store.clone(), brand.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(each);
            for i in 0..each {
                let t = Instant::now();
                let one = vec![change(20_000_000 + w * each + i, date)];
                store.apply(&brand, one, None).await.expect("apply");
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("writer"));
    }
    let ledger = (writers * each) as f64 / t0.elapsed().as_secs_f64();
    let report = store
        .verify_chain(BrandCode(600_123))
        .await
        .expect("verify");
    assert!(report.valid);
    println!(
        "{label:<11} singles {ledger:>7.0} changes/s p99 {:>6.1} ms   baseline (single-row transactions) {baseline:>7.0} rows/s p99 {:>6.1} ms   ratio {:.2}   ({writers} writers)",
        p99(lat).as_secs_f64() * 1e3,
        p99(base_lat).as_secs_f64() * 1e3,
        ledger / baseline
    );
    pool.close().await;
    store.close().await;
}

#[tokio::main]
async fn main() {
    let total = env_or("LEDGER_BENCH_CHANGES", 20_000);
    let batch = env_or("LEDGER_BENCH_BATCH", 1000);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = SqlStore::sqlite_url(&dir.path().join("bench.db")).expect("url");
    run("SQLite", &url, total, batch).await;
    if let Ok(admin) = std::env::var("IYSHUB_TEST_DATABASE_URL") {
        let (url, name) = testkit::fresh_postgres(&admin, "iyshub_bench").await;
        run("PostgreSQL", &url, total, batch).await;
        testkit::drop_postgres(&admin, &name).await;
    } else {
        println!("PostgreSQL skipped (set IYSHUB_TEST_DATABASE_URL)");
    }
}
