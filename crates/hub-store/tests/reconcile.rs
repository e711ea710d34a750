//! The reconciler's store on both backends: the hub's record of one day of IYS's file (by IYS's
//! creationDate and by transactionId), the requeue of deliveries IYS has no record of, the
//! per-day results with their lease, and the figures.

use hub_core::{BrandCode, Change, Channel, IysState, Mode, Origin};
use hub_store::testkit;
use hub_store::{
    DayResult, DayStatus, DriftAction, DriftItem, DriftKind, EngineStore, IysConnection, NewBrand,
    OutboxState, ReconcileStore, Settlement, SqlStore, Store,
};
use iys::wire::Movement;
use iys::{ConsentDate, ConsentStatus, ConsentType, IysSource, RecipientType, Source};
use jiff::Timestamp;
use jiff::civil::Date;

const BRAND: BrandCode = BrandCode(600_123);
const SMS: Channel = Channel::Iys(ConsentType::Mesaj);
const DAY: &str = "2026-11-20";

fn cd(s: &str) -> ConsentDate {
    ConsentDate::parse(s).unwrap()
}

fn day() -> Date {
    DAY.parse().unwrap()
}

fn hub_change(recipient: &str, status: ConsentStatus, date: &str) -> Change {
    Change {
        received_at: cd(date).to_timestamp(),
        ..testkit::change(BRAND, recipient, SMS, status, cd(date))
    }
}

fn pulled(recipient: &str, tx: &str, created: &str) -> Change {
    let m = Movement {
        consent_date: Some(cd(created)),
        creation_date: cd(created),
        source: Source::Iys(IysSource::Web),
        recipient: recipient.into(),
        recipient_type: RecipientType::Bireysel,
        status: ConsentStatus::Onay,
        consent_type: ConsentType::Mesaj,
        transaction_id: tx.into(),
        citizen_name: None,
    };
    Change::from_iys(BRAND, &m, Origin::IysPull, cd(created).to_timestamp())
}

/// Delivers every pending change as IYS accepting it with `tx<n>` at `created`.
async fn deliver_all(store: &SqlStore, created: &str) {
    let now = cd(created).to_timestamp();
    let items = store
        .claim_pending(BRAND, "t", now, 60_000, 100)
        .await
        .unwrap();
    let settled = items
        .into_iter()
        .map(|i| {
            let tx = format!("tx{}", i.event_id);
            (
                i,
                Settlement::Delivered {
                    transaction_id: tx,
                    creation_date: Some(cd(created)),
                },
            )
        })
        .collect();
    store.settle(BRAND, "t", settled, now).await.unwrap();
}

macro_rules! on_both {
    ($name:ident, $f:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let url = hub_store::SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
                super::$f(&url).await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(admin) = hub_store::testkit::admin_url_or_skip(stringify!($name)) else {
                    return;
                };
                let (url, name) =
                    hub_store::testkit::fresh_postgres(&admin, "iyshub_reconcile").await;
                super::$f(&url).await;
                hub_store::testkit::drop_postgres(&admin, &name).await;
            }
        }
    };
}

on_both!(the_hub_s_record_of_a_day, record_of_a_day);
on_both!(day_results, results_and_leases);

async fn store_with_brand(url: &str) -> (SqlStore, hub_store::Brand) {
    let store = SqlStore::connect(url).await.unwrap();
    let brand = store
        .create_brand(NewBrand {
            brand_code: BRAND,
            iys_code: 600_123,
            name: "reconcile".into(),
            mode: Mode::Integrator,
            iys: IysConnection::default(),
        })
        .await
        .unwrap();
    (store, brand)
}

async fn record_of_a_day(url: &str) {
    let (store, brand) = store_with_brand(url).await;
    // Delivered on the day (a), delivered the day after (b), pulled on the day (c), pulled the
    // day before but named by the file's transactionIds (d), and one never sent (e).
    store
        .apply(
            &brand,
            vec![hub_change(
                "+905320000001",
                ConsentStatus::Onay,
                "2026-11-20 09:00:00",
            )],
            None,
        )
        .await
        .unwrap();
    deliver_all(&store, "2026-11-20 09:00:05").await;
    store
        .apply(
            &brand,
            vec![hub_change(
                "+905320000002",
                ConsentStatus::Onay,
                "2026-11-20 23:59:59",
            )],
            None,
        )
        .await
        .unwrap();
    deliver_all(&store, "2026-11-21 00:00:01").await;
    store
        .apply(
            &brand,
            vec![
                pulled("+905320000003", "txc", "2026-11-20 12:00:00"),
                pulled("+905320000004", "txd", "2026-11-19 23:00:00"),
            ],
            None,
        )
        .await
        .unwrap();
    store
        .apply(
            &brand,
            vec![hub_change(
                "+905320000005",
                ConsentStatus::Ret,
                "2026-11-20 13:00:00",
            )],
            None,
        )
        .await
        .unwrap();

    let found = store
        .hub_movements(BRAND, day(), &[])
        .await
        .unwrap()
        .movements;
    let who: Vec<&str> = found.iter().map(|m| m.recipient.as_str()).collect();
    assert_eq!(who, ["+905320000001", "+905320000003"], "{found:#?}");
    let a = &found[0];
    assert!(a.delivered && a.current);
    assert_eq!(
        (a.transaction_id.as_str(), a.outbox_state),
        ("tx1", Some(OutboxState::Done))
    );
    assert_eq!(a.creation_date, Some(cd("2026-11-20 09:00:05")));
    let c = &found[1];
    assert!(!c.delivered);
    assert_eq!(
        (c.origin.as_str(), c.transaction_id.as_str()),
        ("iys_pull", "txc")
    );
    assert_eq!(
        c.creation_date,
        Some(cd("2026-11-20 12:00:00")),
        "pulled movements keep IYS's creationDate"
    );
    let named = store
        .hub_movements(
            BRAND,
            day(),
            &["txd".into(), "tx1".into(), "unknown".into()],
        )
        .await
        .unwrap()
        .movements;
    assert_eq!(
        named.len(),
        3,
        "the day's two and the one named: {named:#?}"
    );

    // A delivery IYS has no record of goes again, once; only while done and current.
    let today = cd("2026-11-22 09:00:00").to_timestamp();
    let requeued = store
        .requeue_deliveries(BRAND, day(), &[a.event_id, c.event_id], today)
        .await
        .unwrap();
    assert_eq!(
        requeued,
        vec![a.event_id],
        "a pulled movement is never sent"
    );
    let state = store.consents(BRAND, "+905320000001").await.unwrap()[0]
        .state
        .clone();
    assert_eq!(state.iys_state, IysState::Pending);
    let again = store
        .requeue_deliveries(BRAND, day(), &[a.event_id], today)
        .await
        .unwrap();
    assert!(again.is_empty(), "already on its way");
    let mine = store
        .hub_movements(BRAND, day(), &[])
        .await
        .unwrap()
        .movements;
    assert_eq!(mine[0].outbox_state, Some(OutboxState::Pending));
    assert_eq!(
        mine[0].outbox_error.as_deref(),
        Some("reconcile: IYS has no record of this delivery")
    );
    // Redelivered today: it leaves the day.
    deliver_all(&store, "2026-11-22 10:00:00").await;
    let left: Vec<String> = store
        .hub_movements(BRAND, day(), &[])
        .await
        .unwrap()
        .movements
        .into_iter()
        .map(|m| m.recipient)
        .collect();
    assert_eq!(left, ["+905320000003"]);
    // An overtaken delivery is not sent again.
    store
        .apply(
            &brand,
            vec![hub_change(
                "+905320000002",
                ConsentStatus::Ret,
                "2026-11-21 10:00:00",
            )],
            None,
        )
        .await
        .unwrap();
    let b = store
        .hub_movements(BRAND, "2026-11-21".parse().unwrap(), &[])
        .await
        .unwrap()
        .movements;
    let b_onay = b.iter().find(|m| m.recipient == "+905320000002").unwrap();
    assert!(!b_onay.current);
    assert!(
        store
            .requeue_deliveries(BRAND, day(), &[b_onay.event_id], today)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.verify_chain(BRAND).await.unwrap().valid);
    store.close().await;
}

async fn results_and_leases(url: &str) {
    let (store, _) = store_with_brand(url).await;
    let t0 = Timestamp::from_second(1_800_000_000).unwrap();
    let ms = |s: i64| Timestamp::from_millisecond(t0.as_millisecond() + s * 1000).unwrap();
    assert!(store.reconcile_day(BRAND, day()).await.unwrap().is_none());
    assert!(
        store
            .claim_reconcile_day(BRAND, day(), "a", t0, 10_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_reconcile_day(BRAND, day(), "b", ms(5), 10_000)
            .await
            .unwrap(),
        "leased to a"
    );
    assert!(
        store
            .claim_reconcile_day(BRAND, day(), "a", ms(5), 10_000)
            .await
            .unwrap(),
        "a renews"
    );
    assert_eq!(
        store
            .reconcile_day(BRAND, day())
            .await
            .unwrap()
            .unwrap()
            .status,
        DayStatus::Pending
    );
    assert!(
        store
            .claim_reconcile_day(BRAND, day(), "b", ms(16), 10_000)
            .await
            .unwrap(),
        "a's lease ran out"
    );

    let mut d = DayResult::pending(BRAND, day(), ms(20));
    d.status = DayStatus::Drift;
    d.hash = Some("f".repeat(96));
    d.iys_rows = 3;
    d.missing_in_hub = 1;
    d.remaining = 1;
    d.attempts = 1;
    d.next_at = Some(ms(1800));
    d.examples.push(DriftItem {
        kind: DriftKind::Unreadable,
        action: DriftAction::NeedsPerson,
        transaction_id: None,
        recipient: None,
        recipient_type: None,
        consent_type: None,
        status: None,
        consent_date: None,
        source: None,
        creation_date: None,
        event_id: None,
        reason: Some("expected 8 columns, found 2: a,b".into()),
    });
    store.save_reconcile_day(&d, "b").await.unwrap();
    assert_eq!(store.reconcile_day(BRAND, day()).await.unwrap().unwrap(), d);
    assert!(
        store
            .claim_reconcile_day(BRAND, day(), "c", ms(21), 10_000)
            .await
            .unwrap(),
        "saving released b's lease"
    );

    let mut agreed = DayResult::pending(BRAND, "2026-11-18".parse().unwrap(), ms(30));
    agreed.status = DayStatus::Agreed;
    store.save_reconcile_day(&agreed, "c").await.unwrap();
    let mut empty = DayResult::pending(BRAND, "2026-11-19".parse().unwrap(), ms(30));
    empty.status = DayStatus::Empty;
    store.save_reconcile_day(&empty, "c").await.unwrap();
    let listed: Vec<String> = store
        .reconcile_days(
            BRAND,
            "2026-11-18".parse().unwrap(),
            "2026-11-19".parse().unwrap(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.date.to_string())
        .collect();
    assert_eq!(listed, ["2026-11-19", "2026-11-18"]);
    let f = store
        .reconcile_figures(BRAND, "2026-11-10".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(f.last_agreed_day, Some("2026-11-18".parse().unwrap()));
    assert_eq!(f.days_with_drift, 1);
    assert_eq!(
        f.days,
        vec![
            ("agreed".into(), 1),
            ("drift".into(), 1),
            ("empty".into(), 1)
        ]
    );
    let later = store
        .reconcile_figures(BRAND, "2026-11-20".parse().unwrap())
        .await
        .unwrap();
    assert_eq!((later.days_with_drift, later.days.len()), (1, 1));
    store.close().await;
}
