//! A batch larger than the reads' lists (more than 1,000 recipients, which PostgreSQL reads as
//! one array): every change's current state and unsent outbox rows are found, so an older
//! repeat of the batch changes nothing and a newer one supersedes the unsent rows.

use hub_core::{BrandCode, Change, Channel, Mode, Outcome};
use hub_store::testkit;
use hub_store::{IysConnection, NewBrand, SqlStore, Store};
use iys::{ConsentStatus, ConsentType};

const BRAND: BrandCode = BrandCode(600_321);
const SMS: Channel = Channel::Iys(ConsentType::Mesaj);
const RECIPIENTS: usize = 2_500;

fn batch(status: ConsentStatus, date: &str) -> Vec<Change> {
    (0..RECIPIENTS)
        .map(|n| {
            let r = format!("+90532{n:07}");
            testkit::change(BRAND, &r, SMS, status, testkit::date(date))
        })
        .collect()
}

async fn large_batches(url: &str) {
    let store = SqlStore::connect(url).await.unwrap();
    let brand = store
        .create_brand(NewBrand {
            brand_code: BRAND,
            iys_code: 600_321,
            name: "large".into(),
            mode: Mode::Integrator,
            iys: IysConnection::default(),
        })
        .await
        .unwrap();
    let first = store
        .apply(
            &brand,
            batch(ConsentStatus::Onay, "2026-03-02 10:00:00"),
            None,
        )
        .await
        .unwrap();
    assert!(first.iter().all(|a| a.outcome == Outcome::Applied));

    // Older than what is stored: each is found and recorded as older, none applied.
    let older = store
        .apply(
            &brand,
            batch(ConsentStatus::Ret, "2026-03-01 10:00:00"),
            None,
        )
        .await
        .unwrap();
    let outcomes: Vec<Outcome> = older.iter().map(|a| a.outcome).collect();
    assert!(
        outcomes.iter().all(|o| *o == Outcome::Older),
        "{} of {RECIPIENTS} not older",
        outcomes.iter().filter(|o| **o != Outcome::Older).count()
    );

    // Newer RETs: applied, and each supersedes its consent's unsent ONAY, so exactly one
    // pending row per recipient is left.
    let newer = store
        .apply(
            &brand,
            batch(ConsentStatus::Ret, "2026-03-03 10:00:00"),
            None,
        )
        .await
        .unwrap();
    assert!(newer.iter().all(|a| a.outcome == Outcome::Applied));
    let counts = store.outbox_counts(BRAND).await.unwrap();
    let pending = counts
        .iter()
        .find(|(state, _)| state == "pending")
        .map_or(0, |(_, n)| *n);
    assert_eq!(pending, RECIPIENTS as i64, "outbox: {counts:?}");
    assert!(store.verify_chain(BRAND).await.unwrap().valid);
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
    large_batches(&url).await;
}

#[tokio::test]
async fn postgres() {
    let Some(admin) = testkit::admin_url_or_skip("large batches on PostgreSQL") else {
        return;
    };
    let (url, name) = testkit::fresh_postgres(&admin, "iyshub_large").await;
    large_batches(&url).await;
    testkit::drop_postgres(&admin, &name).await;
}
