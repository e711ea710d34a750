//! A burst on two instances sharing one PostgreSQL database: four writers send batches of 100
//! changes (ONAY and RET mixed over 3,000 recipients) while the brand's mode flips every 1.5 s and
//! citizens withdraw consents in IYS; IYS asks for 5 s before a bulk result is read. Once the
//! load stops and the brand is left in integrator mode, the hub must reach quiescence (nothing
//! pending, awaiting a result or held) within 60 s, agree with IYS on every consent, and IYS must
//! have received no movement twice.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hub_core::{Change, Mode};
use hub_engines::{EngineConfig, Engines};
use hub_store::{EngineStore, SqlStore, Store};
use iys::{ConsentDate, ConsentStatus};
use iys_sim::{Profile, SimConfig};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use common::*;

const RECIPIENTS: u64 = 3_000;
const LOAD: Duration = Duration::from_secs(12);

/// A consent date whose second is odd (hub writes, 3 s in the past: a form submitted a moment
/// ago) or even (citizens, now: IYS dates a citizen's action when it happens), so a hub write
/// never ties with a citizen's movement by accident, and a citizen's movement is never dated
/// before a hub change IYS already had when the citizen acted.
fn date(odd: bool) -> ConsentDate {
    let lag = if odd { 3 } else { 0 };
    let mut t = Timestamp::now()
        .saturating_sub(SignedDuration::from_secs(lag))
        .unwrap();
    if (t.as_second() % 2 == 1) != odd {
        t = t.saturating_sub(SignedDuration::from_secs(1)).unwrap();
    }
    ConsentDate::from_timestamp(t)
}

fn config(sim_url: &str) -> EngineConfig {
    EngineConfig {
        // IYS's rule, shortened: no bulk result is read sooner than this after submission.
        bulk_min_poll_age: Duration::from_secs(5),
        bulk_poll_every: Duration::from_secs(1),
        lease: Duration::from_secs(10),
        ..engine_config(sim_url)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_two_instances_settles_within_a_minute() {
    let Some(admin) = hub_store::testkit::admin_url_or_skip("the two-instance burst") else {
        return;
    };
    let (url, name) = hub_store::testkit::fresh_postgres(&admin, "iyshub_burst").await;
    let mut sim = SimConfig::for_profile(Profile::Fast);
    sim.timing.bulk_min_poll_age_ms = 5_000;
    let w = World::start(sim, Mode::Integrator, Some(url.clone())).await;
    let other = Arc::new(SqlStore::connect(&url).await.unwrap());
    let one = Arc::new(Engines::new(w.store.clone(), config(&w.sim.base_url())));
    let two = Arc::new(Engines::new(other.clone(), config(&w.sim.base_url())));
    let (c1, c2) = (run(&one), run(&two));

    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for writer in 0..4u64 {
        let (store, stop) = (
            if writer % 2 == 0 {
                w.store.clone()
            } else {
                other.clone()
            },
            stop.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(writer);
            let mut batches = 0;
            while !stop.load(Ordering::Relaxed) {
                let brand = store.brand(BRAND).await.unwrap().unwrap();
                let changes: Vec<Change> = (0..100)
                    .map(|_| {
                        let status = if rng.bool() {
                            ConsentStatus::Onay
                        } else {
                            ConsentStatus::Ret
                        };
                        change(rng.u64(..RECIPIENTS), status, date(true))
                    })
                    .collect();
                store.apply(&brand, changes, None).await.unwrap();
                batches += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            batches
        }));
    }
    {
        let (store, stop) = (w.store.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut flips = 0;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let mode = if flips % 2 == 0 {
                    Mode::Sync
                } else {
                    Mode::Integrator
                };
                store.switch_mode(BRAND, mode, "burst").await.unwrap();
                flips += 1;
            }
            flips
        }));
    }
    let citizens = {
        let (sim, stop) = (w.sim.base_url(), stop.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut rng = fastrand::Rng::with_seed(99);
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) {
                let n = rng.u64(..RECIPIENTS);
                // Refused (H174) when IYS already holds a RET: fine.
                let _ = http
                    .post(format!("{sim}/_sim/citizen"))
                    .json(&json!({"brandCode": 600123, "recipient": format!("+90532{n:07}"), "type": "MESAJ", "status": "RET", "source": "IYS_MOBIL", "consentDate": date(false).to_string()}))
                    .send()
                    .await;
                sent += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sent
        })
    };
    tokio::time::sleep(LOAD).await;
    stop.store(true, Ordering::Relaxed);
    let mut done = Vec::new();
    for t in load {
        done.push(t.await.unwrap());
    }
    let citizen_moves = citizens.await.unwrap();
    w.store
        .switch_mode(BRAND, Mode::Integrator, "burst")
        .await
        .unwrap();
    let stopped = tokio::time::Instant::now();
    eprintln!("load: batches and flips {done:?}, citizen actions {citizen_moves}");

    // Quiescence, then agreement on every consent.
    w.until(
        60,
        "quiescence within 60 s of the load stopping",
        || async {
            let o = w.outbox().await;
            ["pending", "awaiting_result", "held"]
                .iter()
                .all(|s| !o.contains_key(*s))
        },
    )
    .await;
    let settled_in = stopped.elapsed();
    // A last pull of the citizens' latest movements (the feed serves a second once it is over).
    tokio::time::sleep(Duration::from_secs(3)).await;
    c1.cancel();
    c2.cancel();
    let iys = w.iys_state().await;
    let mut differ = Vec::new();
    for n in 0..RECIPIENTS {
        let r = format!("+90532{n:07}");
        let hub = w.state_of(&r).await.map(|s| s.status);
        let theirs = iys.get(&format!("{r}/MESAJ")).map(String::as_str);
        let agree = match (hub, theirs) {
            (None, None) | (Some(ConsentStatus::Ret), None) => true,
            (Some(h), Some(i)) => h.as_str() == i,
            _ => false,
        };
        if !agree {
            differ.push((r, hub, theirs.map(str::to_owned)));
        }
    }
    for (r, _, _) in differ.iter().take(2) {
        let h = w.store.history(BRAND, r, 50).await.unwrap();
        for e in h.iter().rev() {
            eprintln!(
                "  {r} #{} {} {} {} {} tx={:?} delivered={:?} created={:?} err={:?}",
                e.id,
                e.status,
                e.consent_date,
                e.origin,
                e.outcome,
                e.iys_transaction_id.as_deref().map(|t| &t[..8]),
                e.delivered_transaction_id
                    .as_deref()
                    .map(|t| &t[..8.min(t.len())]),
                e.iys_creation_date,
                e.iys_error
            );
        }
        let rows = w
            .store
            .outbox_rows(
                BRAND,
                &hub_store::OutboxFilter {
                    recipient: Some(r.clone()),
                    ..Default::default()
                },
                Timestamp::now(),
                0,
                100,
            )
            .await
            .unwrap()
            .rows;
        for o in rows {
            eprintln!(
                "  outbox #{} ev{} {} {} {:?} {:?} by={:?}",
                o.id, o.event_id, o.status, o.consent_date, o.state, o.last_error, o.superseded_by
            );
        }
        eprintln!("  state {:?}", w.state_of(r).await);
    }
    assert!(
        differ.is_empty(),
        "{} differ, e.g. {:?}",
        differ.len(),
        &differ[..differ.len().min(5)]
    );
    let stats = w.stats().await;
    assert_eq!(stats["duplicateMovements"], 0, "{stats}");
    let outbox = w.outbox().await;
    eprintln!(
        "settled {:.1} s after the load stopped; outbox {outbox:?}; IYS movements {}",
        settled_in.as_secs_f64(),
        stats["movements"]
    );
    assert!(
        w.store
            .sync_figures(BRAND, Timestamp::now())
            .await
            .unwrap()
            .paused
            .is_none()
    );
    other.close().await;
    w.store.close().await;
    hub_store::testkit::drop_postgres(&admin, &name).await;
}
