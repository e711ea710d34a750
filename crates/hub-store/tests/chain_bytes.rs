//! The chain's hashes are stored as their 32 bytes (SQLite migration 0015, PostgreSQL 0017). A
//! database whose hashes are still hex text upgrades to bytes with the same chain: it verifies,
//! the history shows the same hashes, and new events link onto the old head. A hash that was
//! altered before the upgrade is still reported.

use hub_core::chain::ChainHash;
use hub_core::{BrandCode, Channel, Mode};
use hub_store::testkit;
use hub_store::{IysConnection, NewBrand, SqlStore, Store};
use iys::{ConsentStatus, ConsentType};
use sqlx::{Connection, Row};

const BRAND: BrandCode = BrandCode(630_001);
const MESAJ: Channel = Channel::Iys(ConsentType::Mesaj);

#[derive(Clone, Copy, PartialEq)]
enum Db {
    Sqlite,
    Postgres,
}

async fn apply(store: &SqlStore, from: usize, to: usize) {
    let brand = store.brand(BRAND).await.unwrap().unwrap();
    let date = testkit::date("2026-03-02 10:00:00");
    let changes = (from..to)
        .map(|n| {
            let status = if n % 3 == 0 {
                ConsentStatus::Ret
            } else {
                ConsentStatus::Onay
            };
            testkit::change(BRAND, &format!("+90532{n:07}"), MESAJ, status, date)
        })
        .collect();
    store.apply(&brand, changes, None).await.unwrap();
}

/// Every stored hash of the brand: 32 bytes each.
async fn stored_hashes(url: &str) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let rows = sqlx::query("SELECT id, prev_hash, hash FROM consent_event ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            let (prev, hash): (Vec<u8>, Vec<u8>) =
                (r.try_get("prev_hash").unwrap(), r.try_get("hash").unwrap());
            assert_eq!((prev.len(), hash.len()), (32, 32));
            (r.try_get("id").unwrap(), prev, hash)
        })
        .collect()
}

/// Turns the database back into one from before the migration: hashes as lower-hex text.
async fn back_to_hex_text(url: &str, db: Db) {
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let statements: &[&str] = match db {
        Db::Sqlite => &[
            "UPDATE consent_event SET prev_hash = lower(hex(prev_hash)), hash = lower(hex(hash))",
            "UPDATE chain_head SET last_hash = lower(hex(last_hash))",
            "DELETE FROM _sqlx_migrations WHERE version = 15",
        ],
        Db::Postgres => &[
            "ALTER TABLE consent_event ALTER COLUMN prev_hash TYPE TEXT USING encode(prev_hash, 'hex'), \
             ALTER COLUMN hash TYPE TEXT USING encode(hash, 'hex')",
            "ALTER TABLE chain_head ALTER COLUMN last_hash TYPE TEXT USING encode(last_hash, 'hex')",
            "DELETE FROM _sqlx_migrations WHERE version = 17",
        ],
    };
    for s in statements {
        sqlx::query(*s).execute(&mut conn).await.unwrap();
    }
    let text: String = sqlx::query_scalar("SELECT hash FROM consent_event ORDER BY id LIMIT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(text.len(), 64, "{text}");
}

async fn upgrade(url: &str, db: Db) {
    let store = SqlStore::connect(url).await.unwrap();
    store
        .create_brand(NewBrand {
            brand_code: BRAND,
            iys_code: 630_001,
            name: "chain".into(),
            mode: Mode::Integrator,
            iys: IysConnection::default(),
        })
        .await
        .unwrap();
    apply(&store, 0, 40).await;
    apply(&store, 20, 60).await;
    let report = store.verify_chain(BRAND).await.unwrap();
    assert!(report.valid, "{report:?}");
    assert_eq!(report.events, 80);
    let before = stored_hashes(url).await;
    let history = store.history(BRAND, "+905320000021", 10).await.unwrap();
    let shown: Vec<String> = history.iter().map(|e| e.hash.clone()).collect();
    assert_eq!(shown.len(), 2);
    for (event, hex) in history.iter().zip(&shown) {
        let (_, _, bytes) = before.iter().find(|(id, _, _)| *id == event.id).unwrap();
        assert_eq!(
            ChainHash::from_hex(hex)
                .map(|h| h.as_bytes().to_vec())
                .as_ref(),
            Some(bytes)
        );
    }
    assert_eq!(before.first().map(|e| e.1.clone()), Some(vec![0; 32]));
    store.close().await;

    // An older database: the hashes as text. Connecting upgrades it to the same bytes.
    back_to_hex_text(url, db).await;
    let store = SqlStore::connect(url).await.unwrap();
    assert_eq!(stored_hashes(url).await, before);
    let report = store.verify_chain(BRAND).await.unwrap();
    assert!(report.valid, "{report:?}");
    let again: Vec<String> = store
        .history(BRAND, "+905320000021", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.hash)
        .collect();
    assert_eq!(again, shown);
    // New events link onto the upgraded head.
    apply(&store, 50, 70).await;
    let report = store.verify_chain(BRAND).await.unwrap();
    assert!(report.valid, "{report:?}");
    assert_eq!(report.events, 100);
    store.close().await;

    // A hash altered to something that is not hex before the upgrade keeps its bytes; the
    // verification names that event.
    back_to_hex_text(url, db).await;
    let altered: i64 = before.get(10).map(|e| e.0).unwrap();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::query("UPDATE consent_event SET hash = 'edited by hand' WHERE id = $1")
        .bind(altered)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let store = SqlStore::connect(url).await.unwrap();
    let report = store.verify_chain(BRAND).await.unwrap();
    assert!(!report.valid);
    assert_eq!(report.first_broken_event, Some(altered));
    // A head altered by hand does not stop the brand's writes; the chain shows the break.
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::query("UPDATE chain_head SET last_hash = 'edited' WHERE brand_code = $1")
        .bind(BRAND.0 as i64)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    apply(&store, 80, 81).await;
    let report = store.verify_chain(BRAND).await.unwrap();
    assert!(!report.valid);
    assert_eq!(report.events, 11);
    // The recipient's history still reads, showing the altered value for what it is.
    let history = store.history(BRAND, "+905320000010", 10).await.unwrap();
    let event = history.iter().find(|e| e.id == altered).unwrap();
    let original = before.get(10).map(|e| &e.2).unwrap();
    assert_ne!(
        ChainHash::from_hex(&event.hash)
            .map(|h| h.as_bytes().to_vec())
            .as_ref(),
        Some(original)
    );
    assert!(
        event.hash == "edited by hand" || event.hash == hex_of(b"edited by hand"),
        "{}",
        event.hash
    );
    store.close().await;
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
    upgrade(&url, Db::Sqlite).await;
}

#[tokio::test]
async fn postgres() {
    let Some(admin) = testkit::admin_url_or_skip("the chain's hashes as bytes on PostgreSQL")
    else {
        return;
    };
    let (url, name) = testkit::fresh_postgres(&admin, "iyshub_chain_bytes").await;
    upgrade(&url, Db::Postgres).await;
    testkit::drop_postgres(&admin, &name).await;
}
