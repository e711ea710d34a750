//! Bulk results out of order: the simulator answers a bulk request's items reversed or shuffled
//! (`bulk_result_order`), and every row must still settle with its own item's outcome, matched
//! by subRequestId or index, never by position.

mod common;

use std::collections::BTreeMap;

use hub_core::{Change, IysState, Mode};
use hub_store::{EngineStore, OutboxState, Store};
use iys::wire::Consent;
use iys::{ConsentDate, ConsentStatus, ConsentType, HsSource, RecipientType, Source};
use iys_client::{ClientConfig, IysClient, Secret};
use iys_sim::{Profile, SimConfig};
use jiff::Timestamp;
use serde_json::{Value, json};

use common::*;

/// More than one bulk request's worth of single adds (`single_max` is 25): one v2 bulk request.
const RECIPIENTS: u64 = 325;

/// What IYS holds before the hub's change, and so what it answers to it. IYS's records were
/// written by another system of the brand (source HS_WEB), which the integrator-mode puller
/// (source=IYS) does not read: the hub learns of them only from IYS's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// Nothing; the hub sends an ONAY → success.
    NewOnay,
    /// Nothing; the hub sends a RET → H175, nothing to withdraw (done, `not_in_iys`).
    FirstRet,
    /// An older ONAY; the hub sends a RET → success.
    RetOverOnay,
    /// An older RET; the hub sends a RET → H174, IYS already has it (done).
    RetOverRet,
    /// A newer ONAY; the hub sends an older ONAY → H178 (failed, the consent `rejected`).
    StaleOnay,
}

fn case(n: u64) -> Case {
    // Interleaved, so that a row settled with its neighbour's result gets a wrong outcome.
    match n % 5 {
        0 => Case::NewOnay,
        1 => Case::FirstRet,
        2 => Case::RetOverOnay,
        3 => Case::RetOverRet,
        _ => Case::StaleOnay,
    }
}

fn recipient(n: u64) -> String {
    format!("+90532{n:07}")
}

fn ago(secs: i64) -> ConsentDate {
    ConsentDate::from_timestamp(
        Timestamp::now()
            .saturating_sub(jiff::SignedDuration::from_secs(secs))
            .unwrap(),
    )
}

/// A MESAJ consent body as the brand's web site sends it.
fn consent(n: u64, status: ConsentStatus, date: ConsentDate) -> Consent {
    Consent {
        recipient: recipient(n),
        consent_type: ConsentType::Mesaj,
        source: Some(Source::Hs(HsSource::HsWeb)),
        status,
        consent_date: Some(date),
        recipient_type: Some(RecipientType::Bireysel),
        retailer_code: None,
        retailer_access: None,
    }
}

/// An IYS client of another system of the brand (same API user, not the hub).
fn other_system(w: &World) -> IysClient {
    let mut cfg = ClientConfig::new(
        w.sim.base_url(),
        "demo",
        Secret::new("demo-password"),
        600_123,
    );
    cfg.budgets.per_second = 1000;
    IysClient::new(cfg).unwrap()
}

/// The simulator's consents of the brand by recipient (MESAJ only is used here).
async fn iys_consents(w: &World) -> BTreeMap<String, Value> {
    let v: Value = w
        .http
        .get(format!(
            "{}/_sim/consents/600123?limit=100000",
            w.sim.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["recipient"].as_str().unwrap().to_owned(), m.clone()))
        .collect()
}

async fn all_settle_with_their_own_outcome(order: &str) {
    let w = World::start(
        SimConfig::for_profile(Profile::Fast),
        Mode::Integrator,
        None,
    )
    .await;
    let timing = w
        .control(
            reqwest::Method::PUT,
            "/_sim/timing",
            json!({"bulk_result_order": order}),
        )
        .await;
    assert_eq!(timing["bulk_result_order"], order);

    // What IYS already holds, written by another system of the brand.
    let (older, newer) = (ago(600), ago(60));
    let other = other_system(&w);
    for n in 0..RECIPIENTS {
        let writes: &[(ConsentStatus, ConsentDate)] = match case(n) {
            Case::NewOnay | Case::FirstRet => &[],
            Case::RetOverOnay => &[(ConsentStatus::Onay, older)],
            Case::RetOverRet => &[(ConsentStatus::Onay, ago(900)), (ConsentStatus::Ret, older)],
            Case::StaleOnay => &[(ConsentStatus::Onay, newer)],
        };
        for (status, date) in writes {
            other
                .add_consent(600_123, &consent(n, *status, *date))
                .await
                .unwrap();
        }
    }
    let before = w.stats().await["movements"].as_u64().unwrap();
    w.control(reqwest::Method::DELETE, "/_sim/stats", Value::Null)
        .await;

    // The hub's changes, all queued before the engines start so they go as one bulk request.
    let (hub_date, stale) = (ago(5), ago(300));
    let changes: Vec<Change> = (0..RECIPIENTS)
        .map(|n| match case(n) {
            Case::NewOnay => change(n, ConsentStatus::Onay, hub_date),
            Case::StaleOnay => change(n, ConsentStatus::Onay, stale),
            Case::FirstRet | Case::RetOverOnay | Case::RetOverRet => {
                change(n, ConsentStatus::Ret, hub_date)
            }
        })
        .collect();
    let applied = w
        .store
        .apply(&w.brand().await, changes, None)
        .await
        .unwrap();
    assert!(
        applied
            .iter()
            .all(|a| a.outbox == Some(OutboxState::Pending)),
        "{applied:?}"
    );

    let cancel = run(&w.engines());
    let failed = (0..RECIPIENTS)
        .filter(|n| case(*n) == Case::StaleOnay)
        .count() as i64;
    w.until(60, "every row settled", || async {
        let o = w.outbox().await;
        o.get("done") == Some(&(RECIPIENTS as i64 - failed)) && o.get("failed") == Some(&failed)
    })
    .await;
    cancel.cancel();

    let stats = w.stats().await;
    assert_eq!(
        stats["requests"]["bulk_v2"]["202"], 1,
        "one bulk request: {stats}"
    );
    assert!(
        stats["requests"].get("add_v2").is_none(),
        "no single adds: {stats}"
    );

    let iys = iys_consents(&w).await;
    let rows = w
        .store
        .outbox_rows(BRAND, &Default::default(), Timestamp::now(), 0, 1000)
        .await
        .unwrap()
        .rows;
    assert_eq!(rows.len(), RECIPIENTS as usize);
    for row in rows {
        let n: u64 = row.recipient["+90532".len()..].parse().unwrap();
        let what = format!("{order}: {} {:?}", row.recipient, case(n));
        let theirs = iys.get(&row.recipient);
        let ours = w.state_of(&row.recipient).await.unwrap();

        // The hub's state equals IYS's.
        let iys_status = theirs.map(|m| m["status"].as_str().unwrap());
        match theirs {
            Some(_) => {
                assert_eq!(Some(ours.status.as_str()), iys_status, "{what}");
                let expected = if case(n) == Case::StaleOnay {
                    IysState::Rejected
                } else {
                    IysState::InIys
                };
                assert_eq!(ours.iys_state, expected, "{what}");
            }
            None => {
                assert_eq!(case(n), Case::FirstRet, "{what}: IYS has no record");
                assert_eq!(
                    (ours.status, ours.iys_state),
                    (ConsentStatus::Ret, IysState::NotInIys),
                    "{what}"
                );
            }
        }

        // The row carries its own item's outcome.
        let event = w
            .store
            .history(BRAND, &row.recipient, 10)
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.id == row.event_id)
            .unwrap();
        let (state, error) = (row.state, row.last_error.as_deref());
        match case(n) {
            Case::NewOnay | Case::RetOverOnay => {
                assert_eq!((state, error), (OutboxState::Done, None), "{what}");
                let theirs = theirs.unwrap();
                assert_eq!(
                    event.delivered_transaction_id.as_deref(),
                    theirs["transactionId"].as_str(),
                    "{what}: the transactionId of its own movement"
                );
                assert_eq!(theirs["consentDate"], hub_date.to_string(), "{what}");
                assert_eq!(ours.consent_date, hub_date, "{what}");
            }
            Case::FirstRet => {
                assert_eq!((state, error), (OutboxState::Done, Some("H175")), "{what}");
                assert_eq!(event.delivered_transaction_id, None, "{what}");
            }
            Case::RetOverRet => {
                assert_eq!((state, error), (OutboxState::Done, Some("H174")), "{what}");
                assert_eq!(event.delivered_transaction_id, None, "{what}");
                assert_eq!(theirs.unwrap()["consentDate"], older.to_string(), "{what}");
            }
            Case::StaleOnay => {
                assert_eq!(
                    (state, error),
                    (OutboxState::Failed, Some("H178")),
                    "{what}"
                );
                assert_eq!(event.delivered_transaction_id, None, "{what}");
                assert_eq!(ours.iys_error.as_deref(), Some("H178"), "{what}");
                assert_eq!(theirs.unwrap()["consentDate"], newer.to_string(), "{what}");
            }
        }
    }
    // IYS wrote a movement for each accepted item and none for the refused ones.
    let accepted = (0..RECIPIENTS)
        .filter(|n| matches!(case(*n), Case::NewOnay | Case::RetOverOnay))
        .count() as u64;
    assert_eq!(
        stats["movements"].as_u64().unwrap(),
        before + accepted,
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reversed_bulk_results_settle_each_row_with_its_own_outcome() {
    all_settle_with_their_own_outcome("reversed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffled_bulk_results_settle_each_row_with_its_own_outcome() {
    all_settle_with_their_own_outcome("shuffled").await;
}

/// A citizen's older movement, pulled while the hub's newer change waits for its bulk result,
/// must not keep the consent from settling: IYS accepted the change, so the consent is `in_iys`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_iys_movement_pulled_while_a_change_is_in_flight_does_not_strand_it() {
    let w = World::start(
        SimConfig::for_profile(Profile::Fast),
        Mode::Integrator,
        None,
    )
    .await;
    let count = 30; // more than single_max: one bulk request, settled after the first pull
    let actions: Vec<Value> = (0..count)
        .map(|n| {
            json!({"brandCode": 600123, "recipient": recipient(n), "type": "MESAJ",
                        "status": "ONAY", "source": "IYS_WEB", "consentDate": ago(600).to_string()})
        })
        .collect();
    let r = w
        .control(
            reqwest::Method::POST,
            "/_sim/citizen",
            Value::Array(actions),
        )
        .await;
    assert_eq!(r["errors"], json!([]), "{r}");
    let changes: Vec<Change> = (0..count)
        .map(|n| change(n, ConsentStatus::Ret, ago(5)))
        .collect();
    w.store
        .apply(&w.brand().await, changes, None)
        .await
        .unwrap();
    let cancel = run(&w.engines());
    w.until(20, "every row settled", || async {
        w.outbox().await.get("done") == Some(&(count as i64))
    })
    .await;
    // The pull (right after the submission) has recorded the citizens' ONAYs by now.
    w.until(5, "every consent in IYS", || async {
        for n in 0..count {
            if w.state_of(&recipient(n))
                .await
                .is_none_or(|s| s.iys_state != IysState::InIys)
            {
                return false;
            }
        }
        true
    })
    .await;
    cancel.cancel();
    for n in 0..count {
        let s = w.state_of(&recipient(n)).await.unwrap();
        assert_eq!((s.status, s.iys_known), (ConsentStatus::Ret, true), "{n}");
    }
}

/// A queue longer than one bulk request goes as several requests side by side. Second changes
/// arrive while the first are on their way: a consent's second change is sent only after its
/// first is settled (or replaces it while it is still unsent), so IYS ends with each consent's
/// latest change, on both backends.
async fn side_by_side_bulks_keep_each_consents_order(postgres: Option<String>) {
    let w = World::start(
        SimConfig::for_profile(Profile::Fast),
        Mode::Integrator,
        postgres,
    )
    .await;
    const MANY: u64 = 2_600;
    let twice = |n: u64| n.is_multiple_of(7);
    let firsts: Vec<Change> = (0..MANY)
        .map(|n| change(n, ConsentStatus::Onay, ago(60)))
        .collect();
    let brand = w.brand().await;
    w.store.apply(&brand, firsts, None).await.unwrap();

    let cancel = run(&w.engines());
    w.until(30, "the first bulk request", || async {
        w.stats().await["requests"]["bulk_v2"]["202"]
            .as_u64()
            .is_some_and(|n| n >= 1)
    })
    .await;
    let seconds: Vec<Change> = (0..MANY)
        .filter(|n| twice(*n))
        .map(|n| change(n, ConsentStatus::Ret, ago(30)))
        .collect();
    let rets = seconds.len() as i64;
    w.store.apply(&brand, seconds, None).await.unwrap();
    w.until(60, "every row settled", || async {
        let o = w.outbox().await;
        o.get("done").unwrap_or(&0) + o.get("superseded").unwrap_or(&0) == MANY as i64 + rets
    })
    .await;
    cancel.cancel();

    let stats = w.stats().await;
    let bulks = stats["requests"]["bulk_v2"]["202"].as_u64().unwrap_or(0);
    assert!(
        bulks >= 3,
        "the first {MANY} rows need three requests: {stats}"
    );
    let iys = w.iys_state().await;
    for n in 0..MANY {
        let expected = if twice(n) { "RET" } else { "ONAY" };
        assert_eq!(
            iys.get(&format!("{}/MESAJ", recipient(n)))
                .map(String::as_str),
            Some(expected),
            "IYS holds {}'s latest change",
            recipient(n)
        );
        let ours = w.state_of(&recipient(n)).await.unwrap();
        assert_eq!(ours.status.as_str(), expected);
        assert_eq!(ours.iys_state, IysState::InIys, "{}", recipient(n));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_by_side_bulks_keep_each_consents_order_on_sqlite() {
    side_by_side_bulks_keep_each_consents_order(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_by_side_bulks_keep_each_consents_order_on_postgres() {
    let Some(admin) = hub_store::testkit::admin_url_or_skip("side-by-side bulks on PostgreSQL")
    else {
        return;
    };
    let (url, name) = hub_store::testkit::fresh_postgres(&admin, "iyshub_side_by_side").await;
    side_by_side_bulks_keep_each_consents_order(Some(url)).await;
    hub_store::testkit::drop_postgres(&admin, &name).await;
}
