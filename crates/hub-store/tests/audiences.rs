//! Change events and analytics counters on both backends, against brute force over the ledger:
//! random changes (API and IYS, channel and category consents, repeats and older dates) in
//! random batches; then the change events must replay to the current states, every one a real
//! change; the tally must equal a GROUP BY over the consents, also after deliveries settle and
//! a mode switch; and the daily opt-ins and opt-outs must equal the channel events.

use std::collections::HashMap;

use hub_core::{BrandCode, Channel, Mode, Origin};
use hub_store::prelude::*;
use hub_store::testkit;
use hub_store::{IysConnection, NewBrand, Settlement, SqlStore};
use iys::{ConsentStatus, ConsentType};
use jiff::Timestamp;
use sqlx::{Connection, Row};

const BRAND: BrandCode = BrandCode(700_321);

async fn brute_tally(url: &str) -> Vec<(String, String, String, i64)> {
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::query(
        "SELECT channel, status, iys_state, COUNT(*) AS n FROM consent WHERE brand_code = $1 \
         GROUP BY channel, status, iys_state ORDER BY channel, status, iys_state",
    )
    .bind(BRAND.0 as i64)
    .fetch_all(&mut c)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.get("channel"),
            r.get("status"),
            r.get("iys_state"),
            r.get("n"),
        )
    })
    .collect()
}

async fn tally(store: &SqlStore) -> Vec<(String, String, String, i64)> {
    store
        .consent_tally(BRAND)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.channel, t.status, t.iys_state, t.count))
        .collect()
}

async fn random_history(url: &str, seed: u64) {
    let store = SqlStore::connect(url).await.unwrap();
    let brand = store
        .create_brand(NewBrand {
            brand_code: BRAND,
            iys_code: 700_321,
            name: "audiences".into(),
            mode: Mode::Integrator,
            iys: IysConnection::default(),
        })
        .await
        .unwrap();
    store
        .upsert_category(hub_store::Category {
            brand_code: Some(BRAND),
            code: "kampanya".into(),
            name: "Kampanya".into(),
            kind: hub_core::CategoryKind::Marketing,
        })
        .await
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(seed);
    let channels = [
        Channel::Iys(ConsentType::Mesaj),
        Channel::Iys(ConsentType::Eposta),
        Channel::Push,
    ];
    for _batch in 0..40 {
        let n = rng.usize(1..40);
        let changes = (0..n)
            .map(|_| {
                let channel = channels[rng.usize(..channels.len())];
                let recipient = match channel {
                    Channel::Iys(ConsentType::Eposta) => format!("k{}@example.com", rng.u8(..30)),
                    _ => format!("+90532{:07}", rng.u8(..30)),
                };
                let status = if rng.bool() {
                    ConsentStatus::Onay
                } else {
                    ConsentStatus::Ret
                };
                let date = testkit::date(&format!(
                    "2026-03-{:02} 10:{:02}:00",
                    rng.u8(1..28),
                    rng.u8(..60)
                ));
                let mut ch = testkit::change(BRAND, &recipient, channel, status, date);
                if rng.u8(..5) == 0 {
                    ch.origin = Origin::IysPull;
                    ch.source = iys::Source::Iys(iys::IysSource::Mobil);
                }
                if rng.u8(..6) == 0 {
                    ch.category = Some("kampanya".into());
                }
                ch
            })
            .collect();
        store.apply(&brand, changes, None).await.unwrap();
    }
    assert_eq!(
        tally(&store).await,
        brute_tally(url).await,
        "tally after writes"
    );

    // The events replay to the current states, each a real change from the one before.
    let mut events = Vec::new();
    loop {
        let after = events.last().map_or(0, |e: &hub_core::ConsentEvent| e.id);
        let page = store.change_events(BRAND, after, 97).await.unwrap();
        if page.is_empty() {
            break;
        }
        events.extend(page);
    }
    assert!(!events.is_empty());
    let mut last: HashMap<(String, String, Option<String>), String> = HashMap::new();
    for e in &events {
        assert_ne!(
            e.old.as_deref(),
            Some(e.new.as_str()),
            "a no-op became an event: {e:?}"
        );
        // A category consent is the recipient's, whatever channel the change came with.
        let channel = if e.category.is_some() {
            ""
        } else {
            e.channel.as_str()
        };
        let key = (e.recipient.clone(), channel.to_owned(), e.category.clone());
        assert_eq!(
            last.get(&key).cloned(),
            e.old,
            "event {} starts where the last ended",
            e.id
        );
        last.insert(key, e.new.clone());
    }
    let mut consents = 0;
    for ((recipient, channel, category), status) in &last {
        if category.is_some() {
            continue;
        }
        let states = store.consents(BRAND, recipient).await.unwrap();
        let now = states
            .iter()
            .find(|s| s.key.channel.as_str() == channel)
            .unwrap_or_else(|| panic!("{recipient} {channel} has a state"));
        assert_eq!(now.state.status.as_str(), status, "{recipient} {channel}");
        consents += 1;
    }
    let total: i64 = brute_tally(url).await.iter().map(|t| t.3).sum();
    assert_eq!(consents, total, "every consent has its events");

    // Daily counts: the channel events by new status.
    let days = store
        .daily_counts(BRAND, "2000-01-01", "2100-01-01")
        .await
        .unwrap();
    let ins: i64 = days.iter().map(|d| d.opt_ins).sum();
    let outs: i64 = days.iter().map(|d| d.opt_outs).sum();
    let channel_events = events.iter().filter(|e| e.category.is_none());
    let (want_ins, want_outs) = channel_events.fold((0, 0), |(i, o), e| {
        if e.new == "ONAY" {
            (i + 1, o)
        } else {
            (i, o + 1)
        }
    });
    assert_eq!((ins, outs), (want_ins, want_outs));
    assert!(days.iter().any(|d| d.origin == "iys_pull"));

    // Deliveries settle (IYS states change without a status change): counted, no events.
    let before = events.len();
    let claimed = store
        .claim_pending(BRAND, "t", Timestamp::now(), 60_000, 1000)
        .await
        .unwrap();
    assert!(!claimed.is_empty());
    let settlements = claimed
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let s = if i % 3 == 0 {
                Settlement::Refused {
                    code: "H174".into(),
                    message: "refused".into(),
                }
            } else {
                Settlement::Delivered {
                    transaction_id: format!("tx-{i}"),
                    creation_date: None,
                }
            };
            (item, s)
        })
        .collect();
    store
        .settle(BRAND, "t", settlements, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(
        tally(&store).await,
        brute_tally(url).await,
        "tally after settling"
    );
    store.switch_mode(BRAND, Mode::Sync, "test").await.unwrap();
    assert_eq!(
        tally(&store).await,
        brute_tally(url).await,
        "tally after a mode switch"
    );
    assert_eq!(
        store.change_events(BRAND, 0, 100_000).await.unwrap().len(),
        before,
        "settling made no events"
    );
}

#[tokio::test]
async fn sqlite() {
    for seed in [1, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let url = SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
        random_history(&url, seed).await;
    }
}

#[tokio::test]
async fn postgres() {
    let Some(admin) = testkit::admin_url_or_skip("change events on PostgreSQL") else {
        return;
    };
    for seed in [1, 2] {
        let (url, name) = testkit::fresh_postgres(&admin, "iyshub_audiences").await;
        random_history(&url, seed).await;
        testkit::drop_postgres(&admin, &name).await;
    }
}
