//! Listings on both backends: consents page by page under every filter (each key once, in key
//! order, however the pages fall), a recipient's history past any length, and the audit log.

use hub_core::{BrandCode, Change, Channel, ConsentKey, IysState, Mode};
use hub_store::testkit;
use hub_store::{ConsentFilter, EngineStore, IysConnection, NewBrand, SqlStore, Store};
use iys::{ConsentStatus, ConsentType, HsSource, RecipientType, Source};
use jiff::Timestamp;

const BRAND: BrandCode = BrandCode(600_123);

fn change(n: usize, channel: Channel, status: ConsentStatus, second: usize) -> Change {
    let r = format!("+90532{n:07}");
    let date = format!("2026-03-02 10:{:02}:{:02}", second / 60, second % 60);
    testkit::change(BRAND, &r, channel, status, testkit::date(&date))
}

async fn all_pages(store: &SqlStore, filter: &ConsentFilter, limit: u32) -> Vec<ConsentKey> {
    let mut keys: Vec<ConsentKey> = Vec::new();
    loop {
        let page = store
            .list_consents(BRAND, filter, keys.last(), limit)
            .await
            .unwrap();
        let full = page.len() == limit as usize;
        keys.extend(page.into_iter().map(|r| r.key));
        if !full {
            return keys;
        }
    }
}

async fn listings(url: &str) {
    let store = SqlStore::connect(url).await.unwrap();
    let brand = store
        .create_brand(NewBrand {
            brand_code: BRAND,
            iys_code: 600_123,
            name: "listing".into(),
            mode: Mode::Integrator,
            iys: IysConnection::default(),
        })
        .await
        .unwrap();
    let sms = Channel::Iys(ConsentType::Mesaj);
    let mail = Channel::Iys(ConsentType::Eposta);
    // 40 SMS consents (every fourth a RET) and 15 e-mail ones.
    let mut changes: Vec<Change> = (0..40)
        .map(|n| {
            let status = if n % 4 == 0 {
                ConsentStatus::Ret
            } else {
                ConsentStatus::Onay
            };
            change(n, sms, status, n)
        })
        .collect();
    changes.extend((0..15).map(|n| change(n, mail, ConsentStatus::Onay, n)));
    store.apply(&brand, changes, None).await.unwrap();
    let since = Timestamp::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // Five SMS consents change later.
    let later: Vec<Change> = (0..5)
        .map(|n| change(n + 1, sms, ConsentStatus::Ret, 100 + n))
        .collect();
    store.apply(&brand, later, None).await.unwrap();

    let everything = all_pages(&store, &ConsentFilter::default(), 7).await;
    assert_eq!(everything.len(), 55);
    let mut sorted = everything.clone();
    sorted.sort_by(|a, b| {
        (&a.recipient, a.recipient_type.as_str(), a.channel.as_str()).cmp(&(
            &b.recipient,
            b.recipient_type.as_str(),
            b.channel.as_str(),
        ))
    });
    sorted.dedup();
    assert_eq!(sorted, everything, "each key once, in key order");
    assert_eq!(
        all_pages(&store, &ConsentFilter::default(), 55).await,
        everything
    );

    let rets = ConsentFilter {
        channel: Some(sms),
        status: Some(ConsentStatus::Ret),
        ..Default::default()
    };
    // 10 RETs from the start (0, 4, …, 36) and 5 later (1–5, of which 4 was one already).
    assert_eq!(all_pages(&store, &rets, 4).await.len(), 14);
    let mails = ConsentFilter {
        channel: Some(mail),
        ..Default::default()
    };
    assert_eq!(all_pages(&store, &mails, 4).await.len(), 15);
    let pending = ConsentFilter {
        iys_state: Some(IysState::Pending),
        recipient_type: Some(RecipientType::Bireysel),
        source: Some(Source::Hs(HsSource::HsWeb)),
        ..Default::default()
    };
    assert_eq!(
        all_pages(&store, &pending, 10).await.len(),
        55,
        "all on their way"
    );
    let changed = ConsentFilter {
        changed_since: Some(since),
        ..Default::default()
    };
    // Recipient 4 was a RET already, still on its way: the later repeat is the person's latest
    // word and goes to IYS again, so it changed too.
    let recent = all_pages(&store, &changed, 2).await;
    assert_eq!(recent.len(), 5, "{recent:?}");
    let tacir = ConsentFilter {
        recipient_type: Some(RecipientType::Tacir),
        ..Default::default()
    };
    assert!(all_pages(&store, &tacir, 3).await.is_empty());

    // One recipient's 23 events, 5 at a time, newest first, none twice.
    let many: Vec<Change> = (0..22)
        .map(|i| {
            let status = if i % 2 == 0 {
                ConsentStatus::Ret
            } else {
                ConsentStatus::Onay
            };
            change(39, sms, status, 200 + i)
        })
        .collect();
    store.apply(&brand, many, None).await.unwrap();
    let recipient = "+905320000039";
    let mut ids = Vec::new();
    loop {
        let page = store
            .history_page(BRAND, recipient, ids.last().copied(), 5)
            .await
            .unwrap();
        let n = page.len();
        ids.extend(page.iter().map(|e| e.id));
        if n < 5 {
            break;
        }
    }
    assert_eq!(ids.len(), 23);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

    // The audit log: a mode switch and two recorded actions, newest first, page by page.
    store
        .audit(
            Some(BRAND),
            "ops",
            "api_key_created",
            serde_json::json!({"id": "k1"}),
        )
        .await
        .unwrap();
    store.switch_mode(BRAND, Mode::Sync, "ops").await.unwrap();
    store
        .audit(
            None,
            "ops",
            "brand_created",
            serde_json::json!({"brandCode": 600124}),
        )
        .await
        .unwrap();
    let mine = store.audit_log(Some(BRAND), None, 1).await.unwrap();
    assert_eq!(mine[0].action, "mode_switch");
    assert_eq!(mine[0].detail.as_ref().unwrap()["to"], "sync");
    let older = store
        .audit_log(Some(BRAND), Some(mine[0].id), 10)
        .await
        .unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].action, "api_key_created");
    assert_eq!(older[0].detail, Some(serde_json::json!({"id": "k1"})));
    let all = store.audit_log(None, None, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].brand_code, None);
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
    listings(&url).await;
}

#[tokio::test]
async fn postgres() {
    let Some(admin) = testkit::admin_url_or_skip("listings on PostgreSQL") else {
        return;
    };
    let (url, name) = testkit::fresh_postgres(&admin, "iyshub_listing").await;
    listings(&url).await;
    testkit::drop_postgres(&admin, &name).await;
}
