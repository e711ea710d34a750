//! Ledger write throughput: batches of consent changes through `Store::apply` (event with hash
//! chain, current state, outbox row, one transaction per batch), against a baseline measured in
//! the same run on the same database: plain inserts of the same number of rows, one transaction
//! per batch. SQLite always; PostgreSQL when `IYSHUB_TEST_DATABASE_URL` is set.
//!
//! Run: `cargo bench -p hub-store --bench ledger` (`LEDGER_BENCH_CHANGES`, `LEDGER_BENCH_BATCH`).

use std::time::Instant;

use hub_core::{BrandCode, Change, Channel, ConsentKey, Mode, Origin};
use hub_store::{IysConnection, NewBrand, SqlStore, Store};
use iys::{ConsentDate, ConsentStatus, ConsentType, HsSource, RecipientType, Source};
use jiff::Timestamp;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn change(n: usize, date: ConsentDate) -> Change {
    Change {
        key: ConsentKey {
            brand: BrandCode(600_123),
            recipient: format!("+90532{n:07}"),
            recipient_type: RecipientType::Bireysel,
            channel: Channel::Iys(ConsentType::Mesaj),
        },
        status: ConsentStatus::Onay,
        consent_date: date,
        source: Source::Hs(HsSource::HsWeb),
        origin: Origin::Api,
        actor: Some("bench".into()),
        evidence: Some(serde_json::json!({"ip": "203.0.113.7", "form": "signup-v3"})),
        category: None,
        profile_id: None,
        hold: None,
        iys_transaction_id: None,
        iys_creation_date: None,
        received_at: Timestamp::now(),
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
        let (url, name) = hub_store::testkit::fresh_postgres(&admin, "iyshub_bench").await;
        run("PostgreSQL", &url, total, batch).await;
        hub_store::testkit::drop_postgres(&admin, &name).await;
    } else {
        println!("PostgreSQL skipped (set IYSHUB_TEST_DATABASE_URL)");
    }
}
