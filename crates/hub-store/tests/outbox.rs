//! The outbox on both backends: the migration that queues RETs earlier versions kept locally,
//! settlement only by the lease owner, RET answers that are not errors, the one-second gap
//! between a consent's movements, and requeue.

use std::path::Path;

use hub_core::{BrandCode, Change, Channel, IysState, Mode, Origin, Outcome};
use hub_store::testkit;
use hub_store::{
    EngineStore, IysConnection, NewBrand, OutboxFilter, OutboxState, Settlement, SqlStore, Store,
};
use iys::{ConsentStatus, ConsentType, RecipientType};
use jiff::{SignedDuration, Timestamp};
use sqlx::Connection;

const BRAND: BrandCode = BrandCode(600_123);
const SMS: Channel = Channel::Iys(ConsentType::Mesaj);

fn change(recipient: &str, status: ConsentStatus, date: &str) -> Change {
    testkit::change(BRAND, recipient, SMS, status, testkit::date(date))
}

async fn with_brand(store: &SqlStore) -> hub_store::Brand {
    store
        .create_brand(NewBrand {
            brand_code: BRAND,
            iys_code: 600_123,
            name: "outbox".into(),
            mode: Mode::Integrator,
            iys: IysConnection::default(),
        })
        .await
        .unwrap()
}

/// A fresh store with the brand and `changes` recorded.
async fn store_with(url: &str, changes: Vec<Change>) -> (SqlStore, hub_store::Brand) {
    let store = SqlStore::connect(url).await.unwrap();
    let brand = with_brand(&store).await;
    store.apply(&brand, changes, None).await.unwrap();
    (store, brand)
}

/// Runs `f` on a fresh SQLite database and, when configured, a fresh PostgreSQL one.
macro_rules! on_both {
    ($name:ident, $f:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let url = hub_store::SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
                super::$f(&url, "sqlite").await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(admin) = hub_store::testkit::admin_url_or_skip(stringify!($name)) else {
                    return;
                };
                let (url, name) = hub_store::testkit::fresh_postgres(&admin, "iyshub_outbox").await;
                super::$f(&url, "postgres").await;
                hub_store::testkit::drop_postgres(&admin, &name).await;
            }
        }
    };
}

on_both!(migration_queues_kept_local_rets, kept_local_rets_are_queued);
on_both!(settlement_and_requeue, settle_and_requeue);
on_both!(
    unreadable_row_fails_alone,
    an_unreadable_row_fails_and_the_rest_go
);
on_both!(
    tied_onay_superseded,
    a_citizen_ret_supersedes_the_tied_unsent_onay
);

/// A citizen's RET from IYS with the same consentDate as the hub's unsent ONAY: the tie rule
/// keeps the RET, and the ONAY never goes (IYS would take it, equal dates being no older, and
/// undo the citizen's RET).
async fn a_citizen_ret_supersedes_the_tied_unsent_onay(url: &str, _dialect: &str) {
    let p = "+905321112233";
    let at = "2026-11-23 11:00:00";
    let (store, brand) = store_with(url, vec![change(p, ConsentStatus::Onay, at)]).await;
    let mut tied = change(p, ConsentStatus::Ret, at);
    tied.origin = Origin::IysPull;
    tied.source = iys::Source::Iys(iys::IysSource::Mobil);
    tied.iys_transaction_id = Some("c".repeat(64));
    let r = store.apply(&brand, vec![tied], None).await.unwrap();
    assert_eq!(r[0].outcome, Outcome::Conflict);
    let state = &store.consents(BRAND, p).await.unwrap()[0].state;
    assert_eq!(
        (state.status, state.iys_state, state.conflict),
        (ConsentStatus::Ret, IysState::InIys, true)
    );
    assert_eq!(
        store.outbox_counts(BRAND).await.unwrap(),
        vec![("superseded".to_owned(), 1)],
        "the tied ONAY is superseded"
    );
    // A citizen's ONAY tied with the hub's unsent RET leaves the RET to go (RET wins).
    let q = "+905321112244";
    store
        .apply(&brand, vec![change(q, ConsentStatus::Ret, at)], None)
        .await
        .unwrap();
    let mut onay = change(q, ConsentStatus::Onay, at);
    onay.origin = Origin::IysPull;
    onay.source = iys::Source::Iys(iys::IysSource::Mobil);
    onay.iys_transaction_id = Some("d".repeat(64));
    store.apply(&brand, vec![onay], None).await.unwrap();
    assert_eq!(
        store.outbox_counts(BRAND).await.unwrap(),
        vec![("pending".to_owned(), 1), ("superseded".to_owned(), 1)]
    );
}

/// An outbox row that cannot be read (a value written by hand) would come first at every claim
/// and stop the brand's dispatch, its RETs too; instead it is set failed with its reason, and
/// the brand's other rows are claimed.
async fn an_unreadable_row_fails_and_the_rest_go(url: &str, _dialect: &str) {
    let (a, b, c) = ("+905320000001", "+905320000002", "+905320000003");
    let (store, _) = store_with(
        url,
        vec![
            // The broken one is due first, so every claim would meet it.
            change(b, ConsentStatus::Onay, "2026-11-20 09:00:00"),
            change(a, ConsentStatus::Ret, "2026-11-20 10:00:00"),
            change(c, ConsentStatus::Onay, "2026-11-20 10:00:00"),
        ],
    )
    .await;
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let written = sqlx::query("UPDATE outbox SET consent_date = 'garbage' WHERE recipient = $1")
        .bind(b)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(written.rows_affected(), 1);

    let now = Timestamp::now();
    let claimed = store
        .claim_pending(BRAND, "one", now, 60_000, 100)
        .await
        .unwrap();
    let mut recipients: Vec<&str> = claimed.iter().map(|i| i.recipient.as_str()).collect();
    recipients.sort();
    assert_eq!(recipients, [a, c]);
    let (state, error, owner): (String, Option<String>, Option<String>) =
        sqlx::query_as("SELECT state, last_error, lease_owner FROM outbox WHERE recipient = $1")
            .bind(b)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(state, "failed");
    assert!(
        error.as_deref().unwrap_or_default().contains("garbage"),
        "{error:?}"
    );
    assert_eq!(owner, None);
    // Nothing is left to claim: the others are leased, the broken one failed.
    let again = store
        .claim_pending(BRAND, "two", now, 60_000, 100)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    // The listing leaves it out (the log names it) and shows the others; the page was not full.
    let listed = store
        .outbox_rows(BRAND, &OutboxFilter::default(), now, 0, 100)
        .await
        .unwrap();
    let mut recipients: Vec<&str> = listed.rows.iter().map(|r| r.recipient.as_str()).collect();
    recipients.sort();
    assert_eq!(recipients, [a, c]);
    assert_eq!(listed.next, None);
    // A full page moves its cursor past the unreadable row: pages of one row each find the two
    // readable rows and end.
    let mut seen = Vec::new();
    let mut after = 0;
    for _ in 0..10 {
        let page = store
            .outbox_rows(BRAND, &OutboxFilter::default(), now, after, 1)
            .await
            .unwrap();
        seen.extend(page.rows.into_iter().map(|r| r.recipient));
        match page.next {
            Some(next) => after = next,
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, [a, c]);
    store.close().await;
}

/// A database as version 0.1 left it (migrations 0001–0002) with a RET it kept locally; opening it
/// with this version queues that RET for IYS.
async fn kept_local_rets_are_queued(url: &str, dialect: &str) {
    let all = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dialect);
    let old = tempfile::tempdir().unwrap();
    for name in ["0001_ledger.sql", "0002_engines.sql"] {
        std::fs::copy(all.join(name), old.path().join(name)).unwrap();
    }
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::migrate::Migrator::new(old.path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    for sql in [
        "INSERT INTO brand (brand_code, iys_code, name, mode, iys_connection, created_at_ms, updated_at_ms) VALUES (600123, 600123, 'old', 'sync', NULL, 0, 0)",
        "INSERT INTO chain_head (brand_code, last_hash, last_event_id) VALUES (600123, 'x', 0)",
        "INSERT INTO consent_event (brand_code, recipient, recipient_type, channel, status, consent_date, source, origin, outcome, received_at_ms, prev_hash, hash) \
         VALUES (600123, '+905321234567', 'BIREYSEL', 'MESAJ', 'RET', '2026-11-20 10:00:00', 'HS_WEB', 'api', 'kept_local', 0, 'x', 'y')",
        "INSERT INTO consent (brand_code, recipient, recipient_type, channel, status, consent_date, source, last_event_id, iys_state, conflict, hold, updated_at_ms) \
         VALUES (600123, '+905321234567', 'BIREYSEL', 'MESAJ', 'RET', '2026-11-20 10:00:00', 'HS_WEB', 1, 'not_in_iys', 0, 0, 0)",
        // A RET IYS answered with H175 was sent already: it stays as it is.
        "INSERT INTO consent_event (brand_code, recipient, recipient_type, channel, status, consent_date, source, origin, outcome, received_at_ms, prev_hash, hash) \
         VALUES (600123, '+905329999999', 'BIREYSEL', 'MESAJ', 'RET', '2026-11-20 10:00:00', 'HS_WEB', 'api', 'applied', 0, 'y', 'z')",
        "INSERT INTO consent (brand_code, recipient, recipient_type, channel, status, consent_date, source, last_event_id, iys_state, conflict, hold, updated_at_ms) \
         VALUES (600123, '+905329999999', 'BIREYSEL', 'MESAJ', 'RET', '2026-11-20 10:00:00', 'HS_WEB', 2, 'not_in_iys', 0, 0, 0)",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();

    let store = SqlStore::connect(url).await.unwrap();
    let rows = store
        .outbox_rows(BRAND, &OutboxFilter::default(), Timestamp::now(), 0, 10)
        .await
        .unwrap()
        .rows;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (
            rows[0].recipient.as_str(),
            rows[0].status,
            rows[0].state,
            rows[0].event_id
        ),
        ("+905321234567", ConsentStatus::Ret, OutboxState::Pending, 1)
    );
    let state = &store.consents(BRAND, "+905321234567").await.unwrap()[0].state;
    assert_eq!(state.iys_state, IysState::Pending);
    let other = &store.consents(BRAND, "+905329999999").await.unwrap()[0].state;
    assert_eq!(other.iys_state, IysState::NotInIys);
    store.close().await;
}

async fn settle_and_requeue(url: &str, _dialect: &str) {
    let (a, b, c) = ("+905320000001", "+905320000002", "+905320000003");
    let (store, brand) = store_with(
        url,
        vec![
            change(a, ConsentStatus::Onay, "2026-11-20 10:00:00"),
            change(b, ConsentStatus::Ret, "2026-11-20 10:00:00"),
            change(c, ConsentStatus::Ret, "2026-11-20 10:00:00"),
        ],
    )
    .await;
    let now = Timestamp::now();
    // Instance one claims; a's RET arrives while its ONAY is in flight (so it is not carried).
    let first = store
        .claim_pending(BRAND, "one", now, 1_000, 100)
        .await
        .unwrap();
    assert_eq!(first.len(), 3);
    store
        .apply(
            &brand,
            vec![change(a, ConsentStatus::Ret, "2026-11-20 11:00:00")],
            None,
        )
        .await
        .unwrap();
    // One's lease runs out, instance two claims the same rows: one row per consent at a time.
    let later = now.saturating_add(SignedDuration::from_secs(2)).unwrap();
    let second = store
        .claim_pending(BRAND, "two", later, 60_000, 100)
        .await
        .unwrap();
    assert_eq!(second.len(), 3);
    let onay = first.iter().find(|i| i.recipient == a).unwrap().clone();
    store
        .settle(
            BRAND,
            "one",
            vec![(
                onay.clone(),
                Settlement::Delivered {
                    transaction_id: "t".repeat(64),
                    creation_date: None,
                },
            )],
            later,
        )
        .await
        .unwrap();
    let counts = store.outbox_counts(BRAND).await.unwrap();
    assert_eq!(
        counts,
        vec![("pending".to_owned(), 4)],
        "the lease passed to two: one's result is not applied"
    );

    let of = |r: &str| second.iter().find(|i| i.recipient == r).unwrap().clone();
    store
        .settle(
            BRAND,
            "two",
            vec![
                (
                    of(a),
                    Settlement::Delivered {
                        transaction_id: "t".repeat(64),
                        creation_date: None,
                    },
                ),
                (
                    of(b),
                    Settlement::Refused {
                        code: "H175".into(),
                        message: "first RET".into(),
                    },
                ),
                (
                    of(c),
                    Settlement::Refused {
                        code: "H467".into(),
                        message: "late".into(),
                    },
                ),
            ],
            later,
        )
        .await
        .unwrap();
    let state = |r: &'static str| {
        let store = &store;
        async move { store.consents(BRAND, r).await.unwrap()[0].state.clone() }
    };
    assert_eq!(state(b).await.iys_state, IysState::NotInIys);
    assert_eq!(
        (state(c).await.iys_state, state(c).await.iys_error),
        (IysState::Rejected, Some("H467".into()))
    );
    let figures = store.sync_figures(BRAND, later).await.unwrap();
    assert_eq!(
        figures.errors_last_24h,
        vec![("H467".to_owned(), 1)],
        "H175 to a RET is not an error"
    );
    // a's RET waits a second after its ONAY (IYS's shared transactionId within a second).
    assert!(
        store
            .claim_pending(BRAND, "two", later, 60_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let next = store
        .claim_pending(
            BRAND,
            "two",
            later
                .saturating_add(SignedDuration::from_millis(1_001))
                .unwrap(),
            60_000,
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        next.iter()
            .map(|i| (i.recipient.as_str(), i.status))
            .collect::<Vec<_>>(),
        [(a, ConsentStatus::Ret)]
    );

    // Requeue: c's refusal goes again; a dry run first.
    let filter = OutboxFilter {
        state: Some(OutboxState::Failed),
        ..OutboxFilter::default()
    };
    let dry = store
        .requeue(BRAND, &filter, true, "ops", later)
        .await
        .unwrap();
    assert_eq!((dry.matched, dry.requeued, dry.overtaken), (1, 1, 0));
    // A later change of c overtakes the refused row: the requeue leaves it.
    store
        .apply(
            &brand,
            vec![change(c, ConsentStatus::Onay, "2026-11-21 10:00:00")],
            None,
        )
        .await
        .unwrap();
    let report = store
        .requeue(BRAND, &filter, false, "ops", later)
        .await
        .unwrap();
    assert_eq!(
        (report.matched, report.requeued, report.overtaken),
        (1, 0, 1)
    );
    let failed = store
        .outbox_rows(BRAND, &filter, later, 0, 10)
        .await
        .unwrap()
        .rows;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].last_error.as_deref(), Some("H467"));
    store.close().await;
}

on_both!(coalescing, queued_changes_collapse_into_the_newest);

/// Five changes of one consent queued behind one in flight collapse into the newest, which keeps
/// the earliest deadline; the others point at it. Other consents keep their own rows.
async fn queued_changes_collapse_into_the_newest(url: &str, _dialect: &str) {
    let store = SqlStore::connect(url).await.unwrap();
    let brand = with_brand(&store).await;
    let (a, b) = ("+905320000001", "+905320000002");
    store
        .apply(
            &brand,
            vec![
                change(a, ConsentStatus::Onay, "2026-11-20 09:00:00"),
                change(b, ConsentStatus::Onay, "2026-11-20 09:00:00"),
            ],
            None,
        )
        .await
        .unwrap();
    let in_flight = store
        .claim_pending(BRAND, "w", Timestamp::now(), 60_000, 1)
        .await
        .unwrap();
    assert_eq!(in_flight[0].recipient, a);
    let statuses = [
        ConsentStatus::Ret,
        ConsentStatus::Onay,
        ConsentStatus::Ret,
        ConsentStatus::Onay,
        ConsentStatus::Ret,
    ];
    for (i, status) in statuses.into_iter().enumerate() {
        store
            .apply(
                &brand,
                vec![change(a, status, &format!("2026-11-20 1{i}:00:00"))],
                None,
            )
            .await
            .unwrap();
    }
    let rows = store
        .outbox_rows(BRAND, &OutboxFilter::default(), Timestamp::now(), 0, 100)
        .await
        .unwrap()
        .rows;
    let mine: Vec<_> = rows.iter().filter(|r| r.recipient == a).collect();
    assert_eq!(mine.len(), 6);
    let carrier = mine.last().unwrap();
    assert_eq!(
        (
            carrier.state,
            carrier.status,
            carrier.consent_date.to_string()
        ),
        (
            OutboxState::Pending,
            ConsentStatus::Ret,
            "2026-11-20 14:00:00".into()
        )
    );
    let superseded: Vec<_> = mine
        .iter()
        .filter(|r| r.state == OutboxState::Superseded)
        .collect();
    assert_eq!(superseded.len(), 4);
    assert!(
        superseded
            .iter()
            .all(|r| r.superseded_by == Some(carrier.id))
    );
    assert!(
        superseded.iter().all(|r| carrier.deadline <= r.deadline),
        "the carrier keeps the earliest deadline"
    );
    assert_eq!(
        mine[0].state,
        OutboxState::Pending,
        "the row in flight is left to finish"
    );
    assert_eq!(
        rows.iter().filter(|r| r.recipient == b).count(),
        1,
        "another consent keeps its row"
    );
    // When the row in flight settles, only the carrier goes next.
    store
        .settle(
            BRAND,
            "w",
            vec![(
                in_flight[0].clone(),
                Settlement::Delivered {
                    transaction_id: "t".repeat(64),
                    creation_date: None,
                },
            )],
            Timestamp::now(),
        )
        .await
        .unwrap();
    let later = Timestamp::now()
        .saturating_add(SignedDuration::from_secs(2))
        .unwrap();
    let next = store
        .claim_pending(BRAND, "w", later, 60_000, 100)
        .await
        .unwrap();
    let next_a: Vec<_> = next.iter().filter(|i| i.recipient == a).collect();
    assert_eq!(next_a.len(), 1);
    assert_eq!(next_a[0].id, carrier.id);
    store.close().await;
}

on_both!(rows_on_their_way, rows_on_their_way_to_iys);

/// Rows on their way to IYS while things change. An ONAY of a recipient IYS does not know, sent
/// back by a pause after the brand switched to sync mode, is held like the rows the switch found
/// waiting (sync mode never gives IYS a new record); one IYS knows goes back to pending; one a
/// later change overtook meanwhile is superseded, so the later change is not sent before it.
/// The hub's own delivery, read back from IYS before its result is recorded, is not recorded
/// again.
async fn rows_on_their_way_to_iys(url: &str, _dialect: &str) {
    let store = SqlStore::connect(url).await.unwrap();
    let brand = with_brand(&store).await;
    let (unknown, known, echoed, overtaken) = (
        "+905320000001",
        "+905320000002",
        "+905320000003",
        "+905320000004",
    );
    let date = "2026-11-20 10:00:00";
    store
        .apply(
            &brand,
            [unknown, known, echoed, overtaken]
                .into_iter()
                .map(|r| change(r, ConsentStatus::Onay, date))
                .collect(),
            None,
        )
        .await
        .unwrap();
    store
        .mark_known(BRAND, SMS, RecipientType::Bireysel, &[known.to_owned()])
        .await
        .unwrap();
    let now = Timestamp::now();
    let claimed = store
        .claim_pending(BRAND, "one", now, 60_000, 100)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 4);
    let of = |r: &str| claimed.iter().find(|i| i.recipient == r).unwrap().clone();
    // A RET of the fourth comes while its ONAY is on its way: it waits behind it.
    store
        .apply(
            &brand,
            vec![change(overtaken, ConsentStatus::Ret, "2026-11-20 11:00:00")],
            None,
        )
        .await
        .unwrap();
    let row_state = |r: &'static str| {
        let store = &store;
        async move {
            store
                .outbox_rows(BRAND, &OutboxFilter::default(), now, 0, 10)
                .await
                .unwrap()
                .rows
                .into_iter()
                .find(|o| o.recipient == r)
                .unwrap()
                .state
        }
    };
    let consent_state = |r: &'static str| {
        let store = &store;
        async move { store.consents(BRAND, r).await.unwrap()[0].state.iys_state }
    };

    // The switch leaves rows on their way alone.
    store.switch_mode(BRAND, Mode::Sync, "test").await.unwrap();
    assert_eq!(row_state(unknown).await, OutboxState::Pending);
    store
        .settle(
            BRAND,
            "one",
            vec![
                (of(unknown), Settlement::Paused { until: now }),
                (of(overtaken), Settlement::Paused { until: now }),
                (
                    of(known),
                    Settlement::Retry {
                        error: "503".into(),
                        at: now,
                    },
                ),
            ],
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        (row_state(unknown).await, consent_state(unknown).await),
        (OutboxState::Held, IysState::Held),
        "sync mode never gives IYS a new record"
    );
    assert_eq!(row_state(known).await, OutboxState::Pending);
    let rows = store
        .outbox_rows(
            BRAND,
            &OutboxFilter {
                recipient: Some(overtaken.into()),
                ..Default::default()
            },
            now,
            0,
            10,
        )
        .await
        .unwrap()
        .rows;
    assert_eq!(
        rows.iter().map(|o| (o.status, o.state)).collect::<Vec<_>>(),
        vec![
            (ConsentStatus::Onay, OutboxState::Superseded),
            (ConsentStatus::Ret, OutboxState::Pending)
        ],
        "the overtaken ONAY is not held to follow the RET later"
    );
    store
        .switch_mode(BRAND, Mode::Integrator, "test")
        .await
        .unwrap();
    assert_eq!(row_state(unknown).await, OutboxState::Pending);

    // IYS has the third ONAY and the hub reads it back before its result is recorded.
    let tx = "e".repeat(64);
    let mut echo = change(echoed, ConsentStatus::Onay, date);
    echo.origin = Origin::IysPull;
    echo.iys_transaction_id = Some(tx.clone());
    let applied = store
        .apply_pull(&brand, vec![echo.clone()], "HS", "c1")
        .await
        .unwrap();
    assert_eq!(applied[0].outcome, Outcome::Duplicate, "{applied:?}");
    store
        .settle(
            BRAND,
            "one",
            vec![(
                of(echoed),
                Settlement::Delivered {
                    transaction_id: tx.clone(),
                    creation_date: None,
                },
            )],
            now,
        )
        .await
        .unwrap();
    let applied = store
        .apply_pull(&brand, vec![echo], "HS", "c2")
        .await
        .unwrap();
    assert_eq!(applied[0].outcome, Outcome::Duplicate);
    let history = store.history(BRAND, echoed, 10).await.unwrap();
    assert_eq!(history.len(), 1, "one event for one movement: {history:?}");
    assert_eq!(history[0].delivered_transaction_id.as_deref(), Some(&*tx));
    assert_eq!(consent_state(echoed).await, IysState::InIys);
    store.close().await;
}

on_both!(
    retried_rows_are_not_replaced,
    a_retried_row_goes_before_a_newer_one
);

/// A row whose delivery failed without a settled answer may have reached IYS (an answer lost
/// after IYS took a bulk, worked through later). A newer change of the consent must not replace
/// it: IYS would apply the old row after the new one, and a RET it answered H174 leaves IYS's
/// date as it was, so the older ONAY would win in IYS while the hub shows RET. The old row is
/// sent again first, and the newer one after it has settled.
async fn a_retried_row_goes_before_a_newer_one(url: &str, _dialect: &str) {
    let store = SqlStore::connect(url).await.unwrap();
    let brand = with_brand(&store).await;
    let r = "+905320000009";
    store
        .apply(
            &brand,
            vec![change(r, ConsentStatus::Onay, "2026-11-20 09:00:00")],
            None,
        )
        .await
        .unwrap();
    let now = Timestamp::now();
    let sent = store
        .claim_pending(BRAND, "w", now, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    let onay = sent[0].clone();
    store
        .settle(
            BRAND,
            "w",
            vec![(
                onay.clone(),
                Settlement::Retry {
                    error: "connection closed before the answer".into(),
                    at: now,
                },
            )],
            now,
        )
        .await
        .unwrap();

    // A newer RET, and a still newer ONAY and RET in one batch: the retried row stays pending,
    // the batch's own rows collapse into its newest.
    store
        .apply(
            &brand,
            vec![change(r, ConsentStatus::Ret, "2026-11-20 10:00:00")],
            None,
        )
        .await
        .unwrap();
    store
        .apply(
            &brand,
            vec![
                change(r, ConsentStatus::Onay, "2026-11-20 11:00:00"),
                change(r, ConsentStatus::Ret, "2026-11-20 12:00:00"),
            ],
            None,
        )
        .await
        .unwrap();

    // Oldest first: the retried ONAY alone, then (once it has settled) the newest RET alone.
    let later = now.saturating_add(SignedDuration::from_secs(1)).unwrap();
    let first = store
        .claim_pending(BRAND, "w", later, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(
        (first[0].id, first[0].status, first[0].attempts),
        (onay.id, ConsentStatus::Onay, 1)
    );
    store
        .settle(
            BRAND,
            "w",
            vec![(
                first[0].clone(),
                Settlement::Delivered {
                    transaction_id: "tx-onay".into(),
                    creation_date: None,
                },
            )],
            later,
        )
        .await
        .unwrap();
    // A consent's movements go at least a second apart.
    let after_gap = later.saturating_add(SignedDuration::from_secs(2)).unwrap();
    let second = store
        .claim_pending(BRAND, "w", after_gap, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0].status, ConsentStatus::Ret);
    assert_eq!(second[0].consent_date, testkit::date("2026-11-20 12:00:00"));
    store.close().await;
}
