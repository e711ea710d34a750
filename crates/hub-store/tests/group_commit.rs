//! Group commit on both backends: many concurrent writes of one brand share transactions, yet
//! each is answered with exactly its own outcome; a write that fails (a repeated
//! Idempotency-Key) fails alone while the others of its group are stored; the hash chain stays
//! intact and every change is in the history once.

use std::sync::Arc;

use hub_core::{BrandCode, Change, Channel, Mode, Outcome};
use hub_store::testkit;
use hub_store::{Idempotency, IysConnection, NewBrand, SqlStore, Store, StoredAnswer};
use iys::{ConsentStatus, ConsentType};

const BRAND: BrandCode = BrandCode(600_123);
const SMS: Channel = Channel::Iys(ConsentType::Mesaj);

fn change(n: usize, status: ConsentStatus) -> Change {
    let r = format!("+90532{n:07}");
    testkit::change(BRAND, &r, SMS, status, testkit::date("2026-03-02 10:00:00"))
}

fn idempotency(key: &str) -> Idempotency {
    Idempotency {
        key: key.into(),
        request_hash: "h".into(),
        render: Box::new(|applied| StoredAnswer {
            request_hash: "h".into(),
            status: 200,
            body: applied.len().to_string(),
        }),
    }
}

async fn concurrent_writes(url: &str) {
    let store = Arc::new(SqlStore::connect(url).await.unwrap());
    let brand = store
        .create_brand(NewBrand {
            brand_code: BRAND,
            iys_code: 600_123,
            name: "group".into(),
            mode: Mode::Integrator,
            iys: IysConnection::default(),
        })
        .await
        .unwrap();
    // 200 writers: each its own recipient (ONAY, or RET for every third); writers 7 and 8 use
    // the same Idempotency-Key, so exactly one of them must fail, and only it.
    let mut tasks = Vec::new();
    for n in 0..200usize {
        let (store, brand) = (store.clone(), brand.clone());
        tasks.push(tokio::spawn(async move {
            let status = if n % 3 == 0 {
                ConsentStatus::Ret
            } else {
                ConsentStatus::Onay
            };
            let idem = match n {
                7 | 8 => Some(idempotency("same-key")),
                _ if n % 10 == 0 => Some(idempotency(&format!("key-{n}"))),
                _ => None,
            };
            let result = store.apply(&brand, vec![change(n, status)], idem).await;
            (n, status, result)
        }));
    }
    let mut failed = Vec::new();
    for t in tasks {
        let (n, status, result) = t.await.unwrap();
        match result {
            Ok(applied) => {
                assert_eq!(applied.len(), 1, "writer {n}");
                let state = applied[0].state.as_ref().unwrap();
                assert_eq!(state.status, status, "writer {n} got its own outcome");
                assert_eq!(applied[0].outcome, Outcome::Applied, "writer {n}");
            }
            Err(_) => failed.push(n),
        }
    }
    assert_eq!(
        failed.len(),
        1,
        "only one of the repeated keys fails: {failed:?}"
    );
    assert!(failed[0] == 7 || failed[0] == 8, "{failed:?}");
    let report = store.verify_chain(BRAND).await.unwrap();
    assert!(report.valid, "{report:?}");
    assert_eq!(report.events, 199, "every stored write once in the history");
    for n in (0..200).filter(|n| !failed.contains(n)) {
        let rows = store
            .consents(BRAND, &format!("+90532{n:07}"))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "writer {n} stored");
    }
    assert!(
        store
            .consents(BRAND, &format!("+90532{:07}", failed[0]))
            .await
            .unwrap()
            .is_empty(),
        "the failed write left nothing behind"
    );
    for n in (0..200).filter(|n| n % 10 == 0) {
        let answer = store
            .idempotent_answer(BRAND, &format!("key-{n}"))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("writer {n}'s answer stored with it"));
        assert_eq!(answer.body, "1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
    concurrent_writes(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some(admin) = testkit::admin_url_or_skip("group commit on PostgreSQL") else {
        return;
    };
    let (url, name) = testkit::fresh_postgres(&admin, "iyshub_group").await;
    concurrent_writes(&url).await;
    testkit::drop_postgres(&admin, &name).await;
}
