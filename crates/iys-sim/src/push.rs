//! Push delivery: IYS POSTs `IYS_*` movements to the URLs a brand registered, with HTTP Basic
//! auth. IYS does not document retries; we try three times with a short back-off.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use iys::wire::{PushConnection, PushItem, PushPayload};

use crate::Sim;

#[derive(Debug)]
pub enum PushJob {
    Movement(u32),
}

/// The HTTP client IYS uses towards push URLs: IYS gives them 5 s to answer.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a TLS backend is compiled in")
}

/// POSTs one payload; `Ok` only on a 2xx answer.
pub async fn deliver(
    http: &reqwest::Client,
    conn: &PushConnection,
    payload: &PushPayload,
) -> Result<(), String> {
    let resp = http
        .post(&conn.url)
        .basic_auth(&conn.username, Some(&conn.password))
        .json(payload)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "timeout".to_owned()
            } else {
                e.to_string()
            }
        })?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", resp.status()))
    }
}

pub async fn run(
    sim: Arc<Sim>,
    mut jobs: mpsc::UnboundedReceiver<PushJob>,
    cancel: CancellationToken,
) {
    let http = client();
    loop {
        let job = tokio::select! {
            _ = cancel.cancelled() => return,
            job = jobs.recv() => match job { Some(j) => j, None => return },
        };
        let PushJob::Movement(id) = job;
        let iys_code = sim.config().iys_code;
        let (targets, payload) = {
            let state = sim.state.lock().expect("state lock");
            let m = state.movement(id);
            // Only citizens' (IYS_*) movements are pushed, and those always have a source.
            let Some(movement) = m.to_wire() else {
                continue;
            };
            let targets: Vec<PushConnection> = state
                .push
                .get(&m.key.brand)
                .map(|regs| {
                    regs.iter()
                        .filter(|r| r.connection.consent_type == m.key.consent_type)
                        .map(|r| r.connection.clone())
                        .collect()
                })
                .unwrap_or_default();
            let payload = PushPayload {
                list: vec![PushItem {
                    iys_code,
                    brand_code: m.key.brand,
                    // IYS's push items carry no citizenName (the changes feed does).
                    movement: iys::wire::Movement {
                        citizen_name: None,
                        ..movement
                    },
                }],
            };
            (targets, payload)
        };
        for conn in targets {
            let sim = sim.clone();
            let http = http.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                let mut ok = false;
                for attempt in 0..3u32 {
                    if deliver(&http, &conn, &payload).await.is_ok() {
                        ok = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
                }
                let mut stats = sim.stats.lock().expect("stats lock");
                if ok {
                    stats.push_delivered += 1;
                } else {
                    stats.push_failed += 1;
                }
            });
        }
    }
}
