//! The in-memory send-state mirror, of a SQLite file and of PostgreSQL, answers every list
//! exactly as the consent table does at that moment, whoever wrote the table: the ledger, a
//! second store on the same database (another process: an import run from the command line,
//! another instance), statements that only move a consent's IYS state or hold (settlements,
//! mode switches), and deletions. When it falls behind the pruned log it is built again, and
//! meanwhile lists read the table.

use std::time::{Duration, Instant};

use hub_core::{BrandCode, Channel, Mode, SendState};
use hub_store::testkit;
use hub_store::{Brand, IysConnection, NewBrand, SqlStore, Store};
use iys::{ConsentStatus, ConsentType, RecipientType};

const BRAND: BrandCode = BrandCode(640_001);
const OTHER: BrandCode = BrandCode(640_002);
const MESAJ: Channel = Channel::Iys(ConsentType::Mesaj);
const EPOSTA: Channel = Channel::Iys(ConsentType::Eposta);
/// Recipients the tests write; lists also name ones never written.
const PEOPLE: usize = 1_600;

fn phone(n: usize) -> String {
    format!("+90532{n:07}")
}

fn email(n: usize) -> String {
    format!("kisi{n}@ornek.com.tr")
}

async fn brand(store: &SqlStore, code: BrandCode) -> Brand {
    store
        .create_brand(NewBrand {
            brand_code: code,
            iys_code: code.0,
            name: format!("mirror {}", code.0),
            mode: Mode::Integrator,
            iys: IysConnection::default(),
        })
        .await
        .unwrap()
}

/// Random changes of `count` recipients on MESAJ (phones) and EPOSTA (e-mails), some held.
fn changes(rng: &mut fastrand::Rng, code: BrandCode, count: usize) -> Vec<hub_core::Change> {
    let date = testkit::date("2026-03-02 10:00:00");
    (0..count)
        .map(|_| {
            let n = rng.usize(..PEOPLE);
            let status = if rng.bool() {
                ConsentStatus::Onay
            } else {
                ConsentStatus::Ret
            };
            let (recipient, channel) = if rng.u8(..4) == 0 {
                (email(n), EPOSTA)
            } else {
                (phone(n), MESAJ)
            };
            let mut ch = testkit::change(code, &recipient, channel, status, date);
            ch.received_at = jiff::Timestamp::now();
            if rng.u8(..8) == 0 {
                ch.hold = Some(rng.bool());
            }
            ch
        })
        .collect()
}

/// Applies changes, one key at most once per batch (later consentDates win anyway).
async fn apply(store: &SqlStore, brand: &Brand, mut batch: Vec<hub_core::Change>) {
    let mut seen = std::collections::HashSet::new();
    batch.retain(|c| seen.insert((c.key.recipient.clone(), c.key.channel)));
    store.apply(brand, batch, None).await.unwrap();
}

/// A list long enough to go through the mirror: every recipient of the channel, written or
/// not, some twice, and a few that are nobody.
fn list(channel: Channel) -> Vec<String> {
    let name = if channel == EPOSTA { email } else { phone };
    let mut list: Vec<String> = (0..PEOPLE + 200).rev().map(name).collect();
    list.extend([name(3), "nobody".into(), name(PEOPLE - 1)]);
    list
}

/// The table's answer for each of `list`, read in lists too short for the mirror.
async fn from_table(
    store: &SqlStore,
    code: BrandCode,
    channel: Channel,
    recipient_type: RecipientType,
    list: &[String],
) -> Vec<Option<SendState>> {
    let mut states = Vec::new();
    for chunk in list.chunks(400) {
        states.extend(
            store
                .send_states_aligned(code, channel, recipient_type, chunk.to_vec().into())
                .await
                .unwrap(),
        );
    }
    states
}

/// Asserts that a long list's answer equals the table's, on both channels and both types.
async fn agrees(store: &SqlStore, code: BrandCode, when: &str) {
    for channel in [MESAJ, EPOSTA] {
        for recipient_type in [RecipientType::Bireysel, RecipientType::Tacir] {
            let list = list(channel);
            let long = store
                .send_states_aligned(code, channel, recipient_type, list.clone().into())
                .await
                .unwrap();
            let table = from_table(store, code, channel, recipient_type, &list).await;
            for ((recipient, m), t) in list.iter().zip(&long).zip(&table) {
                assert_eq!(
                    m, t,
                    "{when}: {recipient} on {channel:?} {recipient_type:?}"
                );
            }
        }
    }
}

async fn wait_ready(store: &SqlStore, code: BrandCode) {
    let started = Instant::now();
    while !store.send_state_mirror_ready(code) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the mirror of brand {} was never built",
            code.0
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sqlite_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
    (dir, url)
}

/// Runs `test` on a SQLite file and, when the test database is configured, on PostgreSQL.
async fn on_both<F: Future<Output = ()>>(what: &str, test: impl Fn(String) -> F) {
    let (_dir, url) = sqlite_file();
    test(url).await;
    let Some(admin) = testkit::admin_url_or_skip(what) else {
        return;
    };
    let (url, name) = testkit::fresh_postgres(&admin, "iyshub_mirror").await;
    test(url).await;
    testkit::drop_postgres(&admin, &name).await;
}

#[tokio::test]
async fn the_mirror_follows_every_writer_of_the_table() {
    on_both("the send-state mirror on PostgreSQL", follows_every_writer).await;
}

async fn follows_every_writer(url: String) {
    sqlx::any::install_default_drivers();
    let store = SqlStore::connect(&url).await.unwrap();
    // Another store on the same database: what an import run from the command line, or
    // another instance, is.
    let elsewhere = SqlStore::connect(&url).await.unwrap();
    let raw = sqlx::AnyPool::connect(&url).await.unwrap();
    let ours = brand(&store, BRAND).await;
    let theirs = brand(&store, OTHER).await;
    let ours_elsewhere = elsewhere.brand(BRAND).await.unwrap().unwrap();
    let mut rng = fastrand::Rng::with_seed(640);
    apply(&store, &ours, changes(&mut rng, BRAND, 1_500)).await;
    apply(&store, &theirs, changes(&mut rng, OTHER, 500)).await;

    // The first long list reads the table and asks for the mirror.
    agrees(&store, BRAND, "before the mirror").await;
    wait_ready(&store, BRAND).await;
    agrees(&store, BRAND, "just built").await;

    for round in 0..12 {
        match round % 4 {
            0 => apply(&store, &ours, changes(&mut rng, BRAND, 300)).await,
            1 => apply(&elsewhere, &ours_elsewhere, changes(&mut rng, BRAND, 300)).await,
            2 => {
                // What settlements and mode switches write: the IYS state and the hold only.
                for n in (0..PEOPLE).step_by(rng.usize(5..40)) {
                    sqlx::query("UPDATE consent SET iys_state = $1, hold = $2 WHERE brand_code = $3 AND recipient = $4")
                        .bind(["in_iys", "pending", "held", "rejected"][n % 4])
                        .bind(i64::from(n % 3 == 0))
                        .bind(BRAND.0 as i64)
                        .bind(phone(n))
                        .execute(&raw)
                        .await
                        .unwrap();
                }
            }
            _ => {
                sqlx::query("DELETE FROM consent WHERE brand_code = $1 AND recipient LIKE $2")
                    .bind(BRAND.0 as i64)
                    .bind(format!("+905320000{}%", round % 10))
                    .execute(&raw)
                    .await
                    .unwrap();
            }
        }
        // The other brand's writes are in the log too, and change nothing of ours.
        apply(&store, &theirs, changes(&mut rng, OTHER, 100)).await;
        agrees(&store, BRAND, &format!("round {round}")).await;
        assert!(store.send_state_mirror_ready(BRAND), "round {round}");
    }
    // A citizen's RET pulled from IYS is what the very next list reads.
    let onay = testkit::change(
        BRAND,
        &phone(11),
        MESAJ,
        ConsentStatus::Onay,
        testkit::date("2026-03-04 10:00:00"),
    );
    store.apply(&ours, vec![onay], None).await.unwrap();
    let mut citizen = testkit::change(
        BRAND,
        &phone(11),
        MESAJ,
        ConsentStatus::Ret,
        testkit::date("2026-03-05 10:00:00"),
    );
    citizen.origin = hub_core::Origin::IysPull;
    citizen.source = iys::Source::Iys(iys::IysSource::Kisamesaj);
    store.apply(&ours, vec![citizen], None).await.unwrap();
    let listed = list(MESAJ);
    let states = store
        .send_states_aligned(BRAND, MESAJ, RecipientType::Bireysel, listed.clone().into())
        .await
        .unwrap();
    let at = listed.iter().position(|r| *r == phone(11)).unwrap();
    let state = states[at].unwrap();
    assert_eq!(state.status, ConsentStatus::Ret);
    assert!(state.from_iys);
    assert!(store.send_state_mirror_ready(BRAND));

    // A TACIR consent lands in its own table of the mirror.
    let date = testkit::date("2026-03-02 10:00:00");
    let mut tacir = testkit::change(BRAND, &phone(7), MESAJ, ConsentStatus::Ret, date);
    tacir.key.recipient_type = RecipientType::Tacir;
    store.apply(&ours, vec![tacir], None).await.unwrap();
    agrees(&store, BRAND, "a TACIR consent").await;
    let tacir_states = store
        .send_states_aligned(BRAND, MESAJ, RecipientType::Tacir, list(MESAJ).into())
        .await
        .unwrap();
    assert_eq!(tacir_states.iter().flatten().count(), 1);

    raw.close().await;
    elsewhere.close().await;
    store.close().await;
}

#[tokio::test]
async fn a_mirror_behind_the_pruned_log_is_built_again() {
    on_both(
        "the send-state mirror's pruned log on PostgreSQL",
        built_again_behind_the_pruned_log,
    )
    .await;
}

async fn built_again_behind_the_pruned_log(url: String) {
    let store = SqlStore::connect(&url).await.unwrap();
    let ours = brand(&store, BRAND).await;
    let mut rng = fastrand::Rng::with_seed(641);
    apply(&store, &ours, changes(&mut rng, BRAND, 1_000)).await;
    agrees(&store, BRAND, "first").await;
    wait_ready(&store, BRAND).await;

    // The mirror saw nothing of these, and the log keeps only its newest row (on PostgreSQL
    // one per statement: two batches leave the first's rows to prune).
    apply(&store, &ours, changes(&mut rng, BRAND, 250)).await;
    apply(&store, &ours, changes(&mut rng, BRAND, 250)).await;
    assert!(store.prune_touch_log(1, Duration::ZERO).await.unwrap() > 0);
    // The list notices the gap and reads the table; the mirror is built again.
    agrees(&store, BRAND, "behind the pruned log").await;
    wait_ready(&store, BRAND).await;
    agrees(&store, BRAND, "built again").await;
    apply(&store, &ours, changes(&mut rng, BRAND, 500)).await;
    agrees(&store, BRAND, "after more writes").await;

    // Too far behind: more of the log to apply than a mirror takes; built again instead.
    store.set_mirror_catch_up(100);
    apply(&store, &ours, changes(&mut rng, BRAND, 400)).await;
    let listed = list(MESAJ);
    let long = store
        .send_states_aligned(BRAND, MESAJ, RecipientType::Bireysel, listed.clone().into())
        .await
        .unwrap();
    assert_eq!(
        long,
        from_table(&store, BRAND, MESAJ, RecipientType::Bireysel, &listed).await
    );
    // That list dropped the mirror and read the table; the next one asks for a new build.
    assert!(
        store.send_state_mirror_size(BRAND).is_none(),
        "a mirror 400 keys behind is dropped when it may apply 100"
    );
    agrees(&store, BRAND, "too far behind").await;
    wait_ready(&store, BRAND).await;
    agrees(&store, BRAND, "built again after falling far behind").await;
    apply(&store, &ours, changes(&mut rng, BRAND, 50)).await;
    agrees(&store, BRAND, "a few keys behind").await;
    assert!(store.send_state_mirror_size(BRAND).is_some());
    store.close().await;
}

#[tokio::test]
async fn without_room_in_the_budget_lists_read_the_table() {
    on_both("the send-state mirror's budget on PostgreSQL", without_room).await;
}

async fn without_room(url: String) {
    let store = SqlStore::connect(&url).await.unwrap();
    let ours = brand(&store, BRAND).await;
    let mut rng = fastrand::Rng::with_seed(642);
    apply(&store, &ours, changes(&mut rng, BRAND, 1_500)).await;
    let held: usize = from_table(&store, BRAND, MESAJ, RecipientType::Bireysel, &list(MESAJ))
        .await
        .iter()
        .flatten()
        .count();
    assert!(held > 100);

    // No budget: never built.
    store.set_mirror_budget(0);
    agrees(&store, BRAND, "no budget").await;
    assert!(!store.send_state_mirror_ready(BRAND));

    // Less room than the brand's consents: declined, and the answers stay the table's.
    store.set_mirror_budget(held / 2);
    agrees(&store, BRAND, "small budget").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!store.send_state_mirror_ready(BRAND));
    agrees(&store, BRAND, "declined").await;
    store.close().await;
}

/// Writers on two stores (two instances) and raw statements write one brand at the same time
/// while long lists keep the mirror up to date. A write the mirror skipped (a seq below one it
/// had already applied, committed later) would stay wrong after the writers stop: when they
/// have, every long list must still equal the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_leave_nothing_behind() {
    on_both(
        "the send-state mirror under concurrent writers on PostgreSQL",
        concurrent_writers,
    )
    .await;
}

async fn concurrent_writers(url: String) {
    sqlx::any::install_default_drivers();
    let store = std::sync::Arc::new(SqlStore::connect(&url).await.unwrap());
    let other = std::sync::Arc::new(SqlStore::connect(&url).await.unwrap());
    let raw = sqlx::AnyPool::connect(&url).await.unwrap();
    let ours = brand(&store, BRAND).await;
    let ours_other = other.brand(BRAND).await.unwrap().unwrap();
    let mut rng = fastrand::Rng::with_seed(643);
    apply(&store, &ours, changes(&mut rng, BRAND, 1_000)).await;
    agrees(&store, BRAND, "before the writers").await;
    wait_ready(&store, BRAND).await;

    let mut writers = tokio::task::JoinSet::new();
    for (n, (s, b)) in [
        (store.clone(), ours.clone()),
        (other.clone(), ours_other.clone()),
        (store.clone(), ours.clone()),
        (other.clone(), ours_other.clone()),
    ]
    .into_iter()
    .enumerate()
    {
        writers.spawn(async move {
            let mut rng = fastrand::Rng::with_seed(650 + n as u64);
            for _ in 0..25 {
                apply(&s, &b, changes(&mut rng, BRAND, 40)).await;
            }
        });
    }
    {
        let raw = raw.clone();
        let postgres = url.starts_with("postgres");
        writers.spawn(async move {
            // Writes by hand. Every other one takes the brand's lock first, as the operator's
            // guide says, and always goes through. The others do not: on PostgreSQL the
            // trigger then refuses at once while the hub holds the lock (the hub's writers,
            // which may wait for the row, must not deadlock with it); they go through otherwise.
            let update = "UPDATE consent SET hold = $1 WHERE brand_code = $2 AND recipient = $3";
            let mut refused = 0;
            for n in 0..200 {
                let hold = i64::from(n % 2 == 0);
                let recipient = phone(n * 7 % PEOPLE);
                if postgres && n % 2 == 0 {
                    let mut tx = raw.begin().await.unwrap();
                    sqlx::query("SELECT 1 FROM chain_head WHERE brand_code = $1 FOR UPDATE")
                        .bind(BRAND.0 as i64)
                        .fetch_optional(&mut *tx)
                        .await
                        .unwrap();
                    sqlx::query(update)
                        .bind(hold)
                        .bind(BRAND.0 as i64)
                        .bind(recipient)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                    continue;
                }
                let done = sqlx::query(update)
                    .bind(hold)
                    .bind(BRAND.0 as i64)
                    .bind(recipient)
                    .execute(&raw)
                    .await;
                match done {
                    Ok(_) => {}
                    Err(sqlx::Error::Database(e))
                        if postgres && e.code().as_deref() == Some("55P03") =>
                    {
                        refused += 1;
                    }
                    Err(e) => panic!("a write by hand failed: {e}"),
                }
            }
            assert!(
                refused < 100,
                "every write by hand without the lock was refused"
            );
        });
    }
    // Long lists all along, each moving the mirror's seq forward.
    let listed: std::sync::Arc<[String]> = list(MESAJ).into();
    while !writers.is_empty() {
        store
            .send_states_aligned(BRAND, MESAJ, RecipientType::Bireysel, listed.clone())
            .await
            .unwrap();
        while let Some(done) = writers.try_join_next() {
            done.unwrap();
        }
    }
    assert!(
        store.send_state_mirror_size(BRAND).is_some(),
        "the mirror kept up rather than being built again"
    );
    agrees(&store, BRAND, "after the concurrent writers").await;
    raw.close().await;
    other.close().await;
    store.close().await;
}

#[tokio::test]
async fn an_unreadable_consent_is_one_recipients_trouble_in_the_mirror() {
    on_both(
        "an unreadable consent in the mirror on PostgreSQL",
        unreadable_in_the_mirror,
    )
    .await;
}

/// Sets one consent's `source` by hand, as a person mending (or breaking) the table would.
async fn set_source(url: &str, recipient: &str, source: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let written =
        sqlx::query("UPDATE consent SET source = $1 WHERE brand_code = $2 AND recipient = $3")
            .bind(source)
            .bind(BRAND.0 as i64)
            .bind(recipient)
            .execute(&mut conn)
            .await
            .unwrap();
    assert_eq!(written.rows_affected(), 1, "{recipient}");
}

/// A long list read past its unreadable consents: their positions and what is wrong, and the
/// others' states, which must be the table's.
async fn long_list_apart(store: &SqlStore) -> Vec<(String, String)> {
    let listed = list(MESAJ);
    let (states, unreadable) = hub_store::send_states_apart(
        store,
        BRAND,
        MESAJ,
        RecipientType::Bireysel,
        listed.clone().into(),
    )
    .await
    .unwrap();
    // The others, as the table answers them in short lists that leave the unreadable out.
    let readable: Vec<usize> = (0..listed.len())
        .filter(|place| unreadable.iter().all(|(p, _)| p != place))
        .collect();
    let others: Vec<String> = readable.iter().map(|&p| listed[p].clone()).collect();
    let table = from_table(store, BRAND, MESAJ, RecipientType::Bireysel, &others).await;
    for (&place, t) in readable.iter().zip(&table) {
        assert_eq!(&states[place], t, "{}", listed[place]);
    }
    unreadable
        .into_iter()
        .map(|(place, why)| (listed[place].clone(), why))
        .collect()
}

async fn unreadable_in_the_mirror(url: String) {
    let store = SqlStore::connect(&url).await.unwrap();
    let ours = brand(&store, BRAND).await;
    let date = testkit::date("2026-03-02 10:00:00");
    let all: Vec<_> = (0..PEOPLE)
        .map(|n| testkit::change(BRAND, &phone(n), MESAJ, ConsentStatus::Onay, date))
        .collect();
    store.apply(&ours, all, None).await.unwrap();
    let (first, second) = (phone(7), phone(1_234));
    set_source(&url, &first, "garbage").await;

    // The mirror is built with the row in it (a build used to fail, leaving the brand's lists
    // on the table), and answers every other recipient.
    let _ = store
        .send_states_aligned(BRAND, MESAJ, RecipientType::Bireysel, list(MESAJ).into())
        .await;
    wait_ready(&store, BRAND).await;
    let found = long_list_apart(&store).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, first);
    assert!(found[0].1.contains("garbage"), "{found:?}");
    // A list that does not name it is answered in one read, from the mirror.
    let without: Vec<String> = (100..1_300).map(phone).collect();
    let states = store
        .send_states_aligned(BRAND, MESAJ, RecipientType::Bireysel, without.into())
        .await
        .unwrap();
    assert!(states.iter().all(Option::is_some));

    // A row broken after the build reaches the mirror through the log.
    set_source(&url, &second, "also garbage").await;
    let found = long_list_apart(&store).await;
    let names: Vec<&str> = found.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(names, [second.as_str(), first.as_str()], "{found:?}");
    assert!(store.send_state_mirror_ready(BRAND));

    // Mended, both are answered again, with nothing left apart.
    set_source(&url, &first, "HS_WEB").await;
    set_source(&url, &second, "HS_WEB").await;
    assert_eq!(long_list_apart(&store).await, []);
    agrees(&store, BRAND, "mended").await;
    assert!(store.send_state_mirror_ready(BRAND));
    store.close().await;
}
