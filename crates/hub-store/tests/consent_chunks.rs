//! An export's consents arrive in chunks, in key order, exactly the rows the listing pages
//! give for the same filter: on PostgreSQL one streaming statement (or pages, for exports
//! beyond the streams the read pool spares), on SQLite pages read ahead of the writer.

use hub_core::{BrandCode, Channel, Mode};
use hub_store::testkit;
use hub_store::{
    ConsentFilter, ConsentRow, IysConnection, ListingStore, NewBrand, SqlStore, Store,
};
use iys::{ConsentStatus, ConsentType};

const BRAND: BrandCode = BrandCode(650_001);
const MESAJ: Channel = Channel::Iys(ConsentType::Mesaj);
const ARAMA: Channel = Channel::Iys(ConsentType::Arama);

async fn chunks(store: &SqlStore, filter: ConsentFilter, size: u32) -> Vec<Vec<ConsentRow>> {
    let mut rx = store.consent_chunks(BRAND, filter, size);
    let mut all = Vec::new();
    while let Some(chunk) = rx.recv().await {
        all.push(chunk.unwrap());
    }
    all
}

async fn listed(store: &SqlStore, filter: &ConsentFilter) -> Vec<ConsentRow> {
    let mut rows: Vec<ConsentRow> = Vec::new();
    loop {
        let after = rows.last().map(|r| r.key.clone());
        let page = store
            .list_consents(BRAND, filter, after.as_ref(), 100)
            .await
            .unwrap();
        let done = page.len() < 100;
        rows.extend(page);
        if done {
            return rows;
        }
    }
}

async fn check(url: &str) {
    let store = SqlStore::connect(url).await.unwrap();
    let brand = store
        .create_brand(NewBrand {
            brand_code: BRAND,
            iys_code: BRAND.0,
            name: "chunks".into(),
            mode: Mode::Integrator,
            iys: IysConnection::default(),
        })
        .await
        .unwrap();
    let date = testkit::date("2026-03-02 10:00:00");
    let mut changes = Vec::new();
    for n in 0..2_345usize {
        let status = if n % 4 == 0 {
            ConsentStatus::Ret
        } else {
            ConsentStatus::Onay
        };
        let recipient = format!("+90533{:07}", (n * 7_919) % 10_000_000);
        changes.push(testkit::change(BRAND, &recipient, MESAJ, status, date));
        if n % 3 == 0 {
            changes.push(testkit::change(BRAND, &recipient, ARAMA, status, date));
        }
    }
    for batch in changes.chunks(1_000) {
        store.apply(&brand, batch.to_vec(), None).await.unwrap();
    }

    for filter in [
        ConsentFilter::default(),
        ConsentFilter {
            channel: Some(ARAMA),
            ..ConsentFilter::default()
        },
        ConsentFilter {
            status: Some(ConsentStatus::Ret),
            channel: Some(MESAJ),
            ..ConsentFilter::default()
        },
    ] {
        let want = listed(&store, &filter).await;
        assert!(!want.is_empty());
        // Five exports at once: more than the streams PostgreSQL spares, so some read pages.
        let got =
            futures_util::future::join_all((0..5).map(|_| chunks(&store, filter.clone(), 500)))
                .await;
        for export in got {
            assert!(
                export.iter().rev().skip(1).all(|c| c.len() == 500),
                "every chunk but the last is full: {filter:?}"
            );
            let rows: Vec<ConsentRow> = export.into_iter().flatten().collect();
            assert_eq!(rows.len(), want.len(), "{filter:?}");
            assert!(rows == want, "the same rows in the same order: {filter:?}");
        }
    }
    // A filter that matches nothing gives one empty chunk.
    let none = chunks(
        &store,
        ConsentFilter {
            channel: Some(Channel::Push),
            ..ConsentFilter::default()
        },
        500,
    )
    .await;
    assert_eq!(none.iter().map(Vec::len).sum::<usize>(), 0);
    store.close().await;
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
    check(&url).await;
}

#[tokio::test]
async fn postgres() {
    let Some(admin) = testkit::admin_url_or_skip("export chunks on PostgreSQL") else {
        return;
    };
    let (url, name) = testkit::fresh_postgres(&admin, "iyshub_chunks").await;
    check(&url).await;
    testkit::drop_postgres(&admin, &name).await;
}
