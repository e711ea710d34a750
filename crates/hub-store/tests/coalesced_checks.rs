//! Single checks that arrive together share statements (PostgreSQL) or read transactions (a
//! SQLite file): each caller must still get exactly its own recipients' states, of its own brand,
//! channel and recipient type, never another's, and the same answer a check alone gets.

use std::collections::HashMap;
use std::sync::Arc;

use hub_core::{BrandCode, Channel, Mode, SendState};
use hub_store::testkit;
use hub_store::{IysConnection, NewBrand, SqlStore, Store};
use iys::{ConsentStatus, ConsentType, RecipientType};

const BRANDS: [BrandCode; 2] = [BrandCode(610_001), BrandCode(610_002)];
const CHANNELS: [Channel; 2] = [
    Channel::Iys(ConsentType::Mesaj),
    Channel::Iys(ConsentType::Arama),
];

fn phone(n: usize) -> String {
    format!("+90532{n:07}")
}

/// Brand A: ONAY on MESAJ for even numbers, RET on ARAMA for multiples of 3. Brand B: the
/// opposite statuses for the same numbers, so a leak between brands changes the answer.
async fn seed(store: &SqlStore) {
    for (i, brand_code) in BRANDS.into_iter().enumerate() {
        let brand = store
            .create_brand(NewBrand {
                brand_code,
                iys_code: brand_code.0,
                name: format!("coalesced {i}"),
                mode: Mode::Integrator,
                iys: IysConnection::default(),
            })
            .await
            .unwrap();
        let (yes, no) = if i == 0 {
            (ConsentStatus::Onay, ConsentStatus::Ret)
        } else {
            (ConsentStatus::Ret, ConsentStatus::Onay)
        };
        let mut changes = Vec::new();
        for n in 0..300 {
            let date = testkit::date("2026-03-02 10:00:00");
            if n % 2 == 0 {
                changes.push(testkit::change(
                    brand_code,
                    &phone(n),
                    CHANNELS[0],
                    yes,
                    date,
                ));
            }
            if n % 3 == 0 {
                changes.push(testkit::change(
                    brand_code,
                    &phone(n),
                    CHANNELS[1],
                    no,
                    date,
                ));
            }
        }
        store.apply(&brand, changes, None).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_single_checks_get_their_own_answers_on_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
    let store = Arc::new(SqlStore::connect(&url).await.unwrap());
    seed(&store).await;
    single_checks_together(&store).await;
    // A RET recorded is what the very next checks see, together or not.
    let brand = store.brand(BRANDS[0]).await.unwrap().unwrap();
    let ret = testkit::change(
        BRANDS[0],
        &phone(0),
        CHANNELS[0],
        ConsentStatus::Ret,
        testkit::date("2026-03-03 10:00:00"),
    );
    store.apply(&brand, vec![ret], None).await.unwrap();
    let checks = (0..64).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .send_states(BRANDS[0], CHANNELS[0], RecipientType::Bireysel, &[phone(0)])
                .await
                .unwrap()
        })
    });
    for check in checks {
        let got = check.await.unwrap();
        assert_eq!(got[&phone(0)].status, ConsentStatus::Ret);
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_single_checks_get_their_own_answers_on_postgres() {
    let Some(admin) = testkit::admin_url_or_skip("coalesced checks on PostgreSQL") else {
        return;
    };
    let (url, name) = testkit::fresh_postgres(&admin, "iyshub_coalesced").await;
    let store = Arc::new(SqlStore::connect(&url).await.unwrap());
    seed(&store).await;
    single_checks_together(&store).await;
    many_recipients_in_parts(&store).await;
    store.close().await;
    testkit::drop_postgres(&admin, &name).await;
}

async fn single_checks_together(store: &Arc<SqlStore>) {
    // What each (brand, channel, recipients) asks, answered one statement each by a
    // batch read of 17 recipients (above the bound of combined checks).
    let asks: Vec<(BrandCode, Channel, Vec<String>)> = (0..600)
        .map(|k| {
            let brand = BRANDS[k % 2];
            let channel = CHANNELS[(k / 2) % 2];
            let recipients = match k % 5 {
                // Several recipients, one never stored.
                0 => vec![phone(k % 300), phone((k + 1) % 300), phone(900 + k)],
                _ => vec![phone(k % 300)],
            };
            (brand, channel, recipients)
        })
        .collect();
    let mut tasks = Vec::new();
    for (brand, channel, recipients) in asks.clone() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .send_states(brand, channel, RecipientType::Bireysel, &recipients)
                .await
                .unwrap()
        }));
    }
    let mut answers: Vec<HashMap<String, SendState>> = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    for ((brand, channel, recipients), got) in asks.iter().zip(&answers) {
        // The same question padded past the coalescing bound goes alone.
        let mut alone = recipients.clone();
        alone.extend((0..17).map(|n| phone(5_000 + n)));
        let expected: HashMap<String, SendState> = store
            .send_states(*brand, *channel, RecipientType::Bireysel, &alone)
            .await
            .unwrap()
            .into_iter()
            .filter(|(r, _)| recipients.contains(r))
            .collect();
        assert_eq!(got, &expected, "{brand:?} {channel:?} {recipients:?}");
        for (recipient, state) in got {
            assert!(recipients.contains(recipient), "only what was asked");
            let n: usize = recipient[6..].parse().unwrap();
            let brand_a = *brand == BRANDS[0];
            let expected_status = match (*channel == CHANNELS[0], brand_a) {
                (true, true) | (false, false) => ConsentStatus::Onay,
                _ => ConsentStatus::Ret,
            };
            assert_eq!(state.status, expected_status, "{brand:?} {channel:?} {n}");
        }
    }
    // Something was found, and never a number that was not stored.
    assert!(answers.iter().filter(|a| !a.is_empty()).count() > 200);
    assert!(
        answers
            .iter()
            .flat_map(HashMap::keys)
            .all(|r| r[6..].parse::<usize>().unwrap() < 300)
    );
}

/// A check of thousands of recipients is read in parts at once: together they answer exactly
/// what the recipients' single checks answer, and nothing else.
async fn many_recipients_in_parts(store: &SqlStore) {
    for brand in BRANDS {
        // The stored numbers (below 300) spread over every part: 7 is prime to 2,600.
        let many: Vec<String> = (0..2_600).map(|i| phone(i * 7 % 2_600)).collect();
        let got = store
            .send_states(brand, CHANNELS[0], RecipientType::Bireysel, &many)
            .await
            .unwrap();
        let mut expected = HashMap::new();
        for r in many
            .iter()
            .filter(|r| r[6..].parse::<usize>().unwrap() < 300)
        {
            expected.extend(
                store
                    .send_states(
                        brand,
                        CHANNELS[0],
                        RecipientType::Bireysel,
                        std::slice::from_ref(r),
                    )
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(expected.len(), 150, "every even number has a MESAJ consent");
        assert_eq!(got, expected, "{brand:?}");
    }
}
