//! The campaign filter's lookup answers each recipient of a list in the list's order: the same
//! state a check of that recipient alone reads, at every position it holds (a list may name a
//! recipient twice, in different statements' chunks), and nothing for one the hub does not have.

use hub_core::{BrandCode, Channel, Mode};
use hub_store::testkit;
use hub_store::{IysConnection, NewBrand, SqlStore, Store};
use iys::{ConsentStatus, ConsentType, RecipientType};

const BRAND: BrandCode = BrandCode(620_001);
const MESAJ: Channel = Channel::Iys(ConsentType::Mesaj);

fn phone(n: usize) -> String {
    format!("+90532{n:07}")
}

async fn check_alignment(url: &str) {
    let store = SqlStore::connect(url).await.unwrap();
    let brand = store
        .create_brand(NewBrand {
            brand_code: BRAND,
            iys_code: 620_001,
            name: "aligned".into(),
            mode: Mode::Integrator,
            iys: IysConnection::default(),
        })
        .await
        .unwrap();
    // 1,200 recipients (more than one statement's chunk): RET for multiples of 3, a hold for
    // multiples of 7, ONAY for the rest; the odd ones also on ARAMA, which must not leak.
    let date = testkit::date("2026-03-02 10:00:00");
    let mut changes = Vec::new();
    for n in 0..1_200 {
        let status = if n % 3 == 0 {
            ConsentStatus::Ret
        } else {
            ConsentStatus::Onay
        };
        let mut ch = testkit::change(BRAND, &phone(n), MESAJ, status, date);
        if n % 7 == 0 {
            ch.hold = Some(true);
        }
        changes.push(ch);
        if n % 2 == 1 {
            changes.push(testkit::change(
                BRAND,
                &phone(n),
                Channel::Iys(ConsentType::Arama),
                ConsentStatus::Ret,
                date,
            ));
        }
    }
    for chunk in changes.chunks(500) {
        store.apply(&brand, chunk.to_vec(), None).await.unwrap();
    }

    // Out of key order, with unknown recipients and each of a few named twice, far apart.
    let mut list: Vec<String> = (0..1_500).rev().map(phone).collect();
    list.extend([
        phone(5),
        phone(1_199),
        phone(0),
        "not a phone".into(),
        phone(5),
    ]);
    list.insert(3, phone(700));
    let aligned = store
        .send_states_aligned(BRAND, MESAJ, RecipientType::Bireysel, list.clone().into())
        .await
        .unwrap();
    assert_eq!(aligned.len(), list.len());
    for (recipient, state) in list.iter().zip(&aligned) {
        let alone = store
            .send_states(
                BRAND,
                MESAJ,
                RecipientType::Bireysel,
                std::slice::from_ref(recipient),
            )
            .await
            .unwrap();
        assert_eq!(state.as_ref(), alone.get(recipient), "{recipient}");
        let n: Option<usize> = recipient
            .strip_prefix("+90532")
            .and_then(|d| d.parse().ok());
        match n {
            Some(n) if n < 1_200 => {
                let s = state.unwrap_or_else(|| panic!("{recipient} has a consent"));
                let want = if n % 3 == 0 {
                    ConsentStatus::Ret
                } else {
                    ConsentStatus::Onay
                };
                assert_eq!(s.status, want, "{recipient}");
                assert_eq!(s.hold, n % 7 == 0, "{recipient}");
            }
            _ => assert_eq!(state, &None, "{recipient}"),
        }
    }
    // Another brand's list of the same recipients finds nothing.
    let other = store
        .send_states_aligned(
            BrandCode(620_002),
            MESAJ,
            RecipientType::Bireysel,
            list.clone().into(),
        )
        .await
        .unwrap();
    assert!(other.iter().all(Option::is_none));
    store.close().await;
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
    check_alignment(&url).await;
}

#[tokio::test]
async fn postgres() {
    let Some(admin) = testkit::admin_url_or_skip("aligned send states on PostgreSQL") else {
        return;
    };
    let (url, name) = testkit::fresh_postgres(&admin, "iyshub_aligned").await;
    check_alignment(&url).await;
    keys_compare_bytes(&url).await;
    testkit::drop_postgres(&admin, &name).await;
}

/// The text columns of PostgreSQL's hot indexes are collated "C" (migration 0015), whatever the
/// database's own collation: lookups compare bytes, as on SQLite, rather than going through the
/// locale's `strcoll`, and sort in the order Rust sorts keys.
async fn keys_compare_bytes(url: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    for (table, column) in [
        ("consent", "recipient"),
        ("consent", "recipient_type"),
        ("consent", "channel"),
        ("consent_event", "recipient"),
        ("consent_event", "iys_transaction_id"),
        ("consent_event", "delivered_transaction_id"),
        ("category_consent", "subject"),
        ("outbox", "recipient"),
        ("outbox", "state"),
        ("profile_address", "recipient"),
        ("idempotency", "key"),
    ] {
        let collation: String = sqlx::query_scalar(
            "SELECT c.collname::text FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation \
             WHERE a.attrelid = $1::text::regclass AND a.attname = $2",
        )
        .bind(table)
        .bind(column)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(collation, "C", "{table}.{column}");
    }
    conn.close().await.unwrap();
}
