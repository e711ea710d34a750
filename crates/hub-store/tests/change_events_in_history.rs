//! The automation events are marked on the history's own rows (SQLite migration 0016,
//! PostgreSQL 0018) instead of copied into a `change_event` table. A database from before, with
//! the copies and cursors that name them by their own ids, upgrades to the same events under
//! their history ids: every sink's cursor and the delivery log name the same events as before,
//! and new events follow.

use hub_core::{BrandCode, Channel, ConsentEvent};
use hub_store::testkit;
use hub_store::{EventStore, SqlStore, Store};
use iys::{ConsentStatus, ConsentType};
use sqlx::Connection;

const BRAND: BrandCode = BrandCode(630_002);
const OTHER: BrandCode = BrandCode(630_003);
const MESAJ: Channel = Channel::Iys(ConsentType::Mesaj);

#[derive(Clone, Copy, PartialEq)]
enum Db {
    Sqlite,
    Postgres,
}

/// Recipients `from..to`, every third a RET, on `date`.
async fn apply(store: &SqlStore, brand: BrandCode, from: usize, to: usize, date: &str, flip: bool) {
    let b = store.brand(brand).await.unwrap().unwrap();
    let date = testkit::date(date);
    let changes = (from..to)
        .map(|n| {
            let ret = (n % 3 == 0) != flip;
            let status = if ret {
                ConsentStatus::Ret
            } else {
                ConsentStatus::Onay
            };
            testkit::change(brand, &format!("+90532{n:07}"), MESAJ, status, date)
        })
        .collect();
    store.apply(&b, changes, None).await.unwrap();
}

async fn events(store: &SqlStore, brand: BrandCode) -> Vec<ConsentEvent> {
    store.change_events(brand, 0, 10_000).await.unwrap()
}

async fn run(conn: &mut sqlx::AnyConnection, statements: &[&str]) {
    for s in statements {
        sqlx::query(sqlx::AssertSqlSafe(s.to_string()))
            .execute(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

async fn scalar(conn: &mut sqlx::AnyConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

/// Turns the database back into one from before the migration: the events copied into their
/// own table under ids of their own, the cursors and logs naming those ids.
async fn back_to_copies(url: &str, db: Db) {
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let id = match db {
        Db::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        Db::Postgres => "BIGSERIAL PRIMARY KEY",
    };
    let create = format!(
        "CREATE TABLE change_event (id {id}, brand_code BIGINT NOT NULL, event_id BIGINT NOT NULL, \
         recipient TEXT NOT NULL, recipient_type TEXT NOT NULL, channel TEXT NOT NULL, category TEXT, \
         old_status TEXT, new_status TEXT NOT NULL, origin TEXT NOT NULL, iys_state TEXT, at_ms BIGINT NOT NULL)"
    );
    let version = match db {
        Db::Sqlite => "DELETE FROM _sqlx_migrations WHERE version = 16",
        Db::Postgres => "DELETE FROM _sqlx_migrations WHERE version = 18",
    };
    run(
        &mut conn,
        &[
            "DROP VIEW change_event",
            "DROP INDEX consent_event_change",
            &create,
            "CREATE INDEX change_event_brand ON change_event (brand_code, id)",
            // The copies' ids were their own: starting at 1, one per change of any brand.
            "INSERT INTO change_event (brand_code, event_id, recipient, recipient_type, channel, category, old_status, new_status, origin, iys_state, at_ms) \
             SELECT brand_code, id, recipient, recipient_type, channel, category, NULLIF(changed_from, ''), status, origin, changed_iys_state, received_at_ms \
             FROM consent_event WHERE changed_from IS NOT NULL ORDER BY id",
            "UPDATE event_cursor SET last_id = (SELECT c.id FROM change_event c WHERE c.event_id = event_cursor.last_id)",
            "UPDATE webhook_delivery SET change_event_id = (SELECT c.id FROM change_event c WHERE c.event_id = webhook_delivery.change_event_id)",
            "UPDATE webhook_redelivery SET change_event_id = (SELECT c.id FROM change_event c WHERE c.event_id = webhook_redelivery.change_event_id)",
            "ALTER TABLE consent_event DROP COLUMN changed_from",
            "ALTER TABLE consent_event DROP COLUMN changed_iys_state",
            version,
        ],
    )
    .await;
    conn.close().await.unwrap();
}

async fn upgrade(url: &str, db: Db) {
    let store = SqlStore::connect(url).await.unwrap();
    testkit::create_brand(&store, BRAND, "events").await;
    testkit::create_brand(&store, OTHER, "other").await;
    // First records, a repeat of the same statuses (history events, no automation events),
    // then flips (changes from ONAY to RET and back), interleaved with another brand.
    apply(&store, BRAND, 0, 30, "2026-03-02 10:00:00", false).await;
    apply(&store, OTHER, 0, 5, "2026-03-02 10:00:00", false).await;
    apply(&store, BRAND, 0, 30, "2026-03-02 11:00:00", false).await;
    apply(&store, BRAND, 10, 20, "2026-03-02 12:00:00", true).await;
    apply(&store, OTHER, 0, 5, "2026-03-02 12:00:00", true).await;
    let before = events(&store, BRAND).await;
    let other = events(&store, OTHER).await;
    assert_eq!(before.len(), 40, "30 first records and 10 flips");
    assert_eq!(other.len(), 10);
    assert!(before.iter().any(|e| e.old.as_deref() == Some("ONAY")));
    assert!(before.iter().any(|e| e.old.is_none()));
    // What each sink had reached: the NATS cursor at the 33rd event, a delivery logged and a
    // redelivery asked for of the 38th (both among the flips, whose copies had other ids).
    let (at_33, at_38) = (before[32].id, before[37].id);
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::query("INSERT INTO event_cursor (sink, brand_code, last_id) VALUES ('nats', $1, $2)")
        .bind(BRAND.0 as i64)
        .bind(at_33)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO webhook_delivery (webhook_id, change_event_id, attempt, manual, duration_ms, at_ms) \
         VALUES (1, $1, 1, 0, 5, 0)",
    )
    .bind(at_38)
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO webhook_redelivery (webhook_id, change_event_id, requested_at_ms) VALUES (1, $1, 0)",
    )
    .bind(at_38)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    store.close().await;

    back_to_copies(url, db).await;
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let copy_33 = scalar(&mut conn, "SELECT last_id FROM event_cursor").await;
    assert_ne!(copy_33, at_33, "the copies' ids differ from the history's");
    conn.close().await.unwrap();

    // Connecting upgrades: the same events, under their history ids; the cursors follow.
    let store = SqlStore::connect(url).await.unwrap();
    assert_eq!(events(&store, BRAND).await, before);
    assert_eq!(events(&store, OTHER).await, other);
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    assert_eq!(
        scalar(&mut conn, "SELECT last_id FROM event_cursor").await,
        at_33
    );
    assert_eq!(
        scalar(&mut conn, "SELECT change_event_id FROM webhook_delivery").await,
        at_38
    );
    assert_eq!(
        scalar(&mut conn, "SELECT change_event_id FROM webhook_redelivery").await,
        at_38
    );
    assert_eq!(
        scalar(&mut conn, "SELECT COUNT(*) FROM change_event").await,
        50
    );
    conn.close().await.unwrap();
    assert_eq!(
        store.brands_behind("nats").await.unwrap(),
        vec![(BRAND, at_33), (OTHER, 0)]
    );
    assert_eq!(
        store.change_event(BRAND, at_38).await.unwrap().as_ref(),
        before.get(37)
    );

    // New changes are events after the old ones; a repeat is none.
    apply(&store, BRAND, 0, 5, "2026-03-02 13:00:00", true).await;
    apply(&store, BRAND, 0, 5, "2026-03-02 14:00:00", true).await;
    let after = store
        .change_events(BRAND, before.last().unwrap().id, 100)
        .await
        .unwrap();
    assert_eq!(after.len(), 5);
    assert!(
        after
            .iter()
            .all(|e| e.old.is_some() && e.old.as_ref() != Some(&e.new))
    );
    let report = store.verify_chain(BRAND).await.unwrap();
    assert!(report.valid, "{report:?}");
    store.close().await;
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
    upgrade(&url, Db::Sqlite).await;
}

#[tokio::test]
async fn postgres() {
    let Some(admin) = testkit::admin_url_or_skip("change events in the history on PostgreSQL")
    else {
        return;
    };
    let (url, name) = testkit::fresh_postgres(&admin, "iyshub_change_events").await;
    upgrade(&url, Db::Postgres).await;
    testkit::drop_postgres(&admin, &name).await;
}
