//! Sync mode's backfill: learns which of the brand's known recipients IYS has (multi-status,
//! resumable through the cursor table, then single status for held recipients), and the
//! runner the API triggers through [`hub_core::Backfill`].

use std::collections::HashMap;
use std::sync::Arc;

use hub_core::BrandCode;
use hub_core::backfill::{CURSOR_DONE, cursor_source};
use hub_store::Brand;
use iys_client::ClientError;

use crate::{EngineDb, Engines};

/// Where a backfill stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillReport {
    /// Recipients asked about with multi-status (1000 per call).
    pub checked: u64,
    /// Of those, ONAY in IYS.
    pub onay_in_iys: u64,
    /// Held recipients asked about one by one (single status, 1000 per hour).
    pub single_checked: u64,
    /// Held changes released for sending (sync mode).
    pub released: u64,
    /// True when every known recipient was checked.
    pub complete: bool,
}

impl<S: EngineDb> Engines<S> {
    /// Learns which of the brand's known recipients IYS has: multi-status for all (resumable,
    /// progress in the cursor table), then single status for held recipients, at most
    /// `max_single` of them this run (IYS allows 1000 single-status queries per hour).
    pub async fn backfill(
        &self,
        brand: &Brand,
        max_single: u64,
        progress: impl Fn(&BackfillReport),
    ) -> Result<BackfillReport, ClientError> {
        let client = self
            .client(brand)
            .await
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let store_err = |e: hub_store::StoreError| ClientError::Store(e.to_string());
        let mut report = BackfillReport::default();
        for consent_type in [
            iys::ConsentType::Mesaj,
            iys::ConsentType::Arama,
            iys::ConsentType::Eposta,
        ] {
            for recipient_type in [iys::RecipientType::Bireysel, iys::RecipientType::Tacir] {
                let channel = hub_core::Channel::Iys(consent_type);
                let source = cursor_source(consent_type, recipient_type);
                let mut after = self
                    .store
                    .cursor(brand.brand_code, &source)
                    .await
                    .map_err(store_err)?
                    .unwrap_or_default();
                while after != CURSOR_DONE {
                    let page = self
                        .store
                        .known_recipients(brand.brand_code, channel, recipient_type, &after, 1000)
                        .await
                        .map_err(store_err)?;
                    let Some(last) = page.last().cloned() else {
                        after = CURSOR_DONE.into();
                        self.store
                            .set_cursor(brand.brand_code, &source, &after)
                            .await
                            .map_err(store_err)?;
                        break;
                    };
                    let onay = client
                        .multi_status(brand.brand_code.0, recipient_type, consent_type, &page)
                        .await?;
                    report.released += self
                        .store
                        .mark_known(brand.brand_code, channel, recipient_type, &onay)
                        .await
                        .map_err(store_err)?;
                    report.checked += page.len() as u64;
                    report.onay_in_iys += onay.len() as u64;
                    self.store
                        .set_cursor(brand.brand_code, &source, &last)
                        .await
                        .map_err(store_err)?;
                    after = last;
                    progress(&report);
                }
                // RET or unknown look alike in multi-status; ask one by one for held recipients.
                let held = self
                    .store
                    .held_recipients(
                        brand.brand_code,
                        channel,
                        recipient_type,
                        (max_single - report.single_checked.min(max_single)) as i64,
                    )
                    .await
                    .map_err(store_err)?;
                for r in held {
                    let q = iys::wire::ConsentQuery {
                        recipient: r.clone(),
                        recipient_type,
                        consent_type,
                    };
                    report.single_checked += 1;
                    if client.status(brand.brand_code.0, &q).await?.is_some() {
                        report.released += self
                            .store
                            .mark_known(
                                brand.brand_code,
                                channel,
                                recipient_type,
                                std::slice::from_ref(&r),
                            )
                            .await
                            .map_err(store_err)?;
                    }
                    progress(&report);
                }
            }
        }
        report.complete = report.single_checked < max_single;
        Ok(report)
    }
}

/// Backfills started through the API, run by this instance's engines.
#[derive(Debug)]
pub struct Backfills<S = hub_store::SqlStore> {
    engines: Arc<Engines<S>>,
    state: Arc<std::sync::Mutex<HashMap<BrandCode, (bool, serde_json::Value)>>>,
}

impl<S: EngineDb> Backfills<S> {
    pub fn new(engines: Arc<Engines<S>>) -> Self {
        Backfills {
            engines,
            state: Default::default(),
        }
    }
}

impl<S: EngineDb> hub_core::Backfill for Backfills<S> {
    fn start(&self, code: BrandCode) -> bool {
        {
            let mut state = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if state.get(&code).is_some_and(|(running, _)| *running) {
                return false;
            }
            state.insert(code, (true, serde_json::Value::Null));
        }
        let (engines, state) = (self.engines.clone(), self.state.clone());
        tokio::spawn(async move {
            let progress_state = state.clone();
            // IYS allows 1000 single-status queries per hour; leave room for send-time use.
            let progress = move |r: &BackfillReport| {
                let v = serde_json::to_value(r).unwrap_or_default();
                progress_state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(code, (true, v));
            };
            // The brand as it is now: the API checked it exists and the caller's rights.
            let result = match engines.store.brand(code).await {
                Ok(Some(brand)) => engines
                    .backfill(&brand, 900, progress)
                    .await
                    .map_err(|e| e.to_string()),
                Ok(None) => Err(format!("no brand {code}")),
                Err(e) => Err(e.to_string()),
            };
            let last = match result {
                Ok(r) => serde_json::to_value(r).unwrap_or_default(),
                Err(e) => serde_json::json!({"error": e}),
            };
            state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(code, (false, last));
        });
        true
    }

    fn report(&self, brand: BrandCode) -> serde_json::Value {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match state.get(&brand) {
            Some((running, report)) => serde_json::json!({"running": running, "report": report}),
            None => serde_json::json!({"running": false, "report": null}),
        }
    }
}
