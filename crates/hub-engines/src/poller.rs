//! The bulk-result poller: collects the results of submitted bulk requests no sooner than IYS
//! allows, settles each item, and escalates items IYS never answers.

use std::collections::HashMap;

use hub_store::{Brand, OutboxItem, Settlement};
use iys::wire::BulkItemStatus;
use iys_client::IysClient;
use jiff::Timestamp;

use crate::account::{is_account_code, quota_only};
use crate::{EngineDb, Engines, later};

/// The failure code of a bulk item IYS never answered.
pub const BULK_RESULT_MISSING: &str = "bulk_result_missing";

impl<S: EngineDb> Engines<S> {
    /// Collects due bulk results. Returns how many rows were looked at.
    pub async fn poll_bulks(
        &self,
        brand: &Brand,
        client: &IysClient,
    ) -> Result<usize, hub_store::StoreError> {
        let now = self.now();
        if self
            .store
            .dispatch_pause(brand.brand_code)
            .await?
            .is_some_and(|p| p.until > now && !quota_only(&p))
        {
            return Ok(0);
        }
        let lease = self.config.lease.as_millis() as i64;
        let items = self
            .store
            .claim_awaiting(brand.brand_code, &self.owner, now, lease, 10_000)
            .await?;
        if items.is_empty() {
            return Ok(0);
        }
        let count = items.len();
        let mut by_request: HashMap<String, Vec<OutboxItem>> = HashMap::new();
        for item in items {
            by_request
                .entry(item.request_id.clone().unwrap_or_default())
                .or_default()
                .push(item);
        }
        let mut settled = Vec::with_capacity(count);
        for (request_id, items) in by_request {
            let now = self.now();
            let later_poll = later(now, self.config.bulk_poll_every);
            let results = match client.bulk_result(brand.brand_code.0, &request_id).await {
                Ok(results) => results,
                Err(e) => {
                    tracing::warn!(%request_id, error = %e, "bulk result not available yet");
                    Vec::new()
                }
            };
            // Matched by subRequestId, or by IYS's `index` when the id is missing; never by the
            // position in IYS's answer. Indexed once: a request has up to 1,000 of each.
            let mut by_sub = HashMap::new();
            let mut by_index = HashMap::new();
            for r in &results {
                match &r.sub_request_id {
                    Some(id) => by_sub.entry(id.as_str()).or_insert(r),
                    None => by_index.entry(r.index as i64).or_insert(r),
                };
            }
            for item in items {
                let r = match item.sub_request_id.as_deref() {
                    Some(id) => by_sub.get(id),
                    None => None,
                }
                .or_else(|| item.bulk_index.and_then(|i| by_index.get(&i)))
                .copied();
                let s = match r {
                    Some(r) if r.status == BulkItemStatus::Success => Settlement::Delivered {
                        transaction_id: r.transaction_id.clone().unwrap_or_default(),
                        creation_date: r.creation_date,
                    },
                    Some(r) if r.status == BulkItemStatus::Failure => {
                        let (code, message) = r
                            .error
                            .as_ref()
                            .map_or(("unknown".into(), String::new()), |e| {
                                (e.code.clone(), e.message.clone())
                            });
                        if refuses_the_item(&code) {
                            Settlement::Refused { code, message }
                        } else {
                            Settlement::Retry {
                                error: format!("{code}: {message}"),
                                at: self.retry_at(now, item.attempts),
                            }
                        }
                    }
                    _ if self.overdue(&item, now) => {
                        tracing::warn!(%request_id, outbox = item.id, "no bulk result in time: escalated");
                        self.escalation(&item, &request_id, now)
                    }
                    _ => Settlement::StillQueued {
                        poll_at: later_poll,
                    },
                };
                settled.push((item, s));
            }
        }
        crate::observe_ages(&settled, self.now());
        self.store
            .settle(brand.brand_code, &self.owner, settled, self.now())
            .await?;
        Ok(count)
    }

    /// Whether a bulk item has waited longer for its result than IYS should ever take.
    fn overdue(&self, item: &OutboxItem, now: Timestamp) -> bool {
        item.submitted_at
            .is_some_and(|t| later(t, self.config.bulk_result_timeout) <= now)
    }

    /// A bulk item IYS never answered: sent again (a v2 re-send of a consent IYS already has
    /// is answered with the original), and after three such rounds left failed for a person.
    fn escalation(&self, item: &OutboxItem, request_id: &str, now: Timestamp) -> Settlement {
        let error = format!(
            "no result for bulk request {request_id} within {} s",
            self.config.bulk_result_timeout.as_secs()
        );
        if item.attempts >= 3 {
            Settlement::Refused {
                code: BULK_RESULT_MISSING.into(),
                message: error,
            }
        } else {
            Settlement::Retry { error, at: now }
        }
    }
}

/// Whether a bulk item's failure code ends the item (IYS refused its content) rather than being
/// tried again, as dispatch treats the same codes: a passing failure (IYS busy, a server error)
/// is sent again, and an account-level one (rights, subscription, quota) never fails an item one
/// by one: sent again, it meets the account's pause.
fn refuses_the_item(code: &str) -> bool {
    let passing = code.parse::<iys::HCode>().is_ok_and(|c| c.is_retryable());
    !(passing || is_account_code(code))
}

#[cfg(test)]
mod tests {
    use super::refuses_the_item;

    #[test]
    fn only_a_refusal_of_the_item_itself_fails_a_bulk_item() {
        for refused in ["H467", "H174", "H178", "H121", "unknown"] {
            assert!(refuses_the_item(refused), "{refused}");
        }
        for again in ["H015", "H123", "H525", "H520", "H353"] {
            assert!(!refuses_the_item(again), "{again}");
        }
    }
}
