//! The dispatcher: claims due outbox rows, sends them to IYS as v2 single adds or one v2 bulk
//! request, and settles each row (delivered, submitted, refused, or retried on the schedule).

use std::collections::HashMap;
use std::time::Duration;

use hub_store::{Brand, OutboxItem, Settlement};
use iys::wire::Consent;
use iys_client::{ClientError, IysClient, PreparedBulk};
use jiff::Timestamp;

use crate::account::{account_failure, over_quota, quota_only};
use crate::{EngineDb, Engines, SendPlan, later, plan};

impl<S: EngineDb> Engines<S> {
    pub(crate) fn retry_at(&self, now: Timestamp, attempts: i64) -> Timestamp {
        let schedule = &self.config.retry_schedule;
        let base = schedule
            .get(attempts as usize)
            .or(schedule.last())
            .copied()
            .unwrap_or(Duration::from_secs(60));
        // ±20 % jitter so many rows do not come back at the same moment.
        let jitter = 0.8 + fastrand::f64() * 0.4;
        later(now, base.mul_f64(jitter))
    }

    /// What to do with a failed delivery.
    fn failure(&self, e: &ClientError, item: &OutboxItem, now: Timestamp) -> Settlement {
        match e {
            ClientError::TokenHalted { until } => Settlement::Retry {
                error: e.to_string(),
                at: *until,
            },
            ClientError::Iys { errors, .. } if !e.is_transient() && !errors.is_empty() => {
                Settlement::Refused {
                    code: errors[0].code.clone(),
                    message: errors[0].message.clone(),
                }
            }
            _ if e.is_transient() => Settlement::Retry {
                error: e.to_string(),
                at: self.retry_at(now, item.attempts),
            },
            // Refused, but without an H-code: keep it visible, do not loop.
            _ => Settlement::Refused {
                code: "unknown".into(),
                message: e.to_string(),
            },
        }
    }

    /// Sends due rows. Returns how many were claimed.
    pub async fn dispatch(
        &self,
        brand: &Brand,
        client: &IysClient,
    ) -> Result<usize, hub_store::StoreError> {
        let now = self.now();
        // An expired pause stays recorded until IYS accepts a request again.
        let recorded = self.store.dispatch_pause(brand.brand_code).await?;
        let was_paused = recorded.is_some();
        let paused = recorded.filter(|p| p.until > now);
        if paused.as_ref().is_some_and(|p| !quota_only(p)) {
            return Ok(0);
        }
        let lease = self.config.lease.as_millis() as i64;
        let items = self
            .store
            .claim_pending(
                brand.brand_code,
                &self.owner,
                now,
                lease,
                (iys::rules::MAX_BULK * self.config.bulks_at_once.max(1)) as i64,
            )
            .await?;
        if items.is_empty() {
            return Ok(0);
        }
        let count = items.len();
        let mut settled = Vec::with_capacity(count);
        // Over quota (H525) only new records are refused: RETs and updates still go.
        let (items, waiting): (Vec<OutboxItem>, Vec<OutboxItem>) = match &paused {
            Some(_) => items
                .into_iter()
                .partition(|i| i.status == iys::ConsentStatus::Ret),
            None => (items, Vec::new()),
        };
        if let Some(p) = &paused {
            settled.extend(
                waiting
                    .into_iter()
                    .map(|i| (i, Settlement::Paused { until: p.until })),
            );
        }
        // How a row of this round waits out a pause the round sets. Over quota (H525) IYS
        // refuses only new records: a RET caught behind a refused ONAY is due again at once,
        // and the next round, paused for ONAYs only, sends it alone. (Left waiting for the
        // pause's end it would meet the same ONAY first in every round and never go.) A RET
        // refused for quota itself, in a round already paused, waits like the rest.
        let round_now = now;
        let waits = |item: &OutboxItem, until: Timestamp, reason: &str| -> Settlement {
            let behind_onay = paused.is_none() && over_quota(reason);
            if behind_onay && item.status == iys::ConsentStatus::Ret {
                Settlement::Paused { until: round_now }
            } else {
                Settlement::Paused { until }
            }
        };
        let mut delivered = false;
        // A pause set in this round stands even when another request of the round went through
        // (side by side, or an earlier single add): IYS refused the account after that.
        let mut paused_now = false;
        match plan(items, self.config.single_max, self.config.bulks_at_once) {
            SendPlan::Single(items) => {
                let mut stop: Option<(Timestamp, String)> = None;
                for item in items {
                    if let Some((until, reason)) = &stop {
                        let s = waits(&item, *until, reason);
                        settled.push((item, s));
                        continue;
                    }
                    let consent = wire(&item);
                    let s = match client.add_consent(brand.brand_code.0, &consent).await {
                        Ok(r) => {
                            delivered = true;
                            Settlement::Delivered {
                                transaction_id: r.transaction_id,
                                creation_date: Some(r.creation_date),
                            }
                        }
                        Err(e) => match account_failure(&e) {
                            Some(reason) => {
                                let until = self.pause(brand, &reason).await?;
                                paused_now = true;
                                stop = Some((until, reason));
                                Settlement::Paused { until }
                            }
                            None => self.failure(&e, &item, self.now()),
                        },
                    };
                    settled.push((item, s));
                }
            }
            SendPlan::Bulk(bulks) => {
                // Side by side: the client's budget spaces them within IYS's rate, and a long
                // queue costs one claim and one settlement per round instead of one per request.
                // Every request is serialized before the first is sent, so a round reaches IYS
                // together rather than spread over its preparation (and the next round with it).
                let prepared: Vec<_> = bulks
                    .into_iter()
                    .map(|items| {
                        let consents: Vec<Consent> = items.iter().map(wire).collect();
                        let bulk = client.prepare_bulk(brand.brand_code.0, &consents);
                        (items, bulk)
                    })
                    .collect();
                let sent = futures_util::future::join_all(
                    prepared
                        .into_iter()
                        .map(|(items, bulk)| self.send_bulk(client, items, bulk)),
                )
                .await;
                let mut refused_account: Option<String> = None;
                let mut unsent = Vec::new();
                for bulk in sent {
                    match bulk {
                        Bulk::Settled(s) => {
                            delivered = true;
                            settled.extend(s);
                        }
                        Bulk::Failed(s) => settled.extend(s),
                        Bulk::AccountRefused { reason, items } => {
                            refused_account.get_or_insert(reason);
                            unsent.extend(items);
                        }
                    }
                }
                if let Some(reason) = refused_account {
                    let until = self.pause(brand, &reason).await?;
                    paused_now = true;
                    settled.extend(unsent.into_iter().map(|i| {
                        let s = waits(&i, until, &reason);
                        (i, s)
                    }));
                }
            }
        }
        crate::observe_ages(&settled, self.now());
        self.store
            .settle(brand.brand_code, &self.owner, settled, self.now())
            .await?;
        if delivered && was_paused && !paused_now && paused.is_none_or(|p| !quota_only(&p)) {
            self.store.resume_dispatch(brand.brand_code).await?;
        }
        Ok(count)
    }
}

/// How one bulk request ended.
enum Bulk {
    /// IYS took the request: each row submitted (or sent again when IYS's answer names no
    /// sub-request for it).
    Settled(Vec<(OutboxItem, Settlement)>),
    /// IYS refused the request, or it failed: each row refused or retried.
    Failed(Vec<(OutboxItem, Settlement)>),
    /// IYS refused the account as a whole: the brand pauses, the rows wait.
    AccountRefused {
        reason: String,
        items: Vec<OutboxItem>,
    },
}

impl<S: EngineDb> Engines<S> {
    /// Sends one bulk request of rows (prepared from them) and says how each ended.
    async fn send_bulk(
        &self,
        client: &IysClient,
        items: Vec<OutboxItem>,
        bulk: Result<PreparedBulk, ClientError>,
    ) -> Bulk {
        let sent = match bulk {
            Ok(bulk) => client.send_prepared(bulk).await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(accepted) => {
                let poll_at = later(self.now(), self.config.bulk_min_poll_age);
                let mut subs = match_sub_requests(&items, std::slice::from_ref(&accepted));
                let settled = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let s = match subs.get_mut(i).and_then(Option::take) {
                            Some((request_id, sub_request_id, index)) => Settlement::Submitted {
                                request_id,
                                sub_request_id,
                                index,
                                poll_at,
                            },
                            // IYS's answer names no sub-request for it: send it again (v2
                            // answers a re-sent consent with the original's result).
                            None => Settlement::Retry {
                                error: "IYS's bulk answer has no sub-request for this item".into(),
                                at: self.retry_at(self.now(), item.attempts),
                            },
                        };
                        (item, s)
                    })
                    .collect();
                Bulk::Settled(settled)
            }
            Err(ClientError::Iys {
                status: 422 | 403,
                errors,
            }) if errors.iter().any(|e| e.index.is_some()) => {
                // IYS refused the list for some items: those are refused, the rest go again.
                let now = self.now();
                let settled = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let s = match errors.iter().find(|e| e.index == Some(i)) {
                            Some(e) => Settlement::Refused {
                                code: e.code.clone(),
                                message: e.message.clone(),
                            },
                            None => Settlement::Retry {
                                error: "resent without the refused items".into(),
                                at: now,
                            },
                        };
                        (item, s)
                    })
                    .collect();
                Bulk::Failed(settled)
            }
            Err(e) => match account_failure(&e) {
                Some(reason) => Bulk::AccountRefused { reason, items },
                None => {
                    let now = self.now();
                    Bulk::Failed(
                        items
                            .into_iter()
                            .map(|item| {
                                let s = self.failure(&e, &item, now);
                                (item, s)
                            })
                            .collect(),
                    )
                }
            },
        }
    }
}

/// Pairs each submitted item with its sub-request: by recipient, type and recipientType (unique
/// within a bulk request), falling back to the position only when IYS's sub-request there names
/// the same consent. The index is the item's position in its request (IYS's result `index`).
fn match_sub_requests(
    items: &[OutboxItem],
    accepted: &[iys::wire::BulkAccepted],
) -> Vec<Option<(String, String, i64)>> {
    type SubKey = (String, iys::RecipientType, iys::ConsentType);
    let mut by_key: HashMap<SubKey, (String, String)> = HashMap::new();
    let mut by_position = Vec::new();
    for a in accepted {
        for s in &a.sub_requests {
            let key = (
                s.recipient.clone(),
                s.recipient_type.unwrap_or_default(),
                s.consent_type,
            );
            by_position.push((a.request_id.clone(), s.sub_request_id.clone(), key.clone()));
            by_key.insert(key, (a.request_id.clone(), s.sub_request_id.clone()));
        }
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let consent_type = item.channel.iys_type()?;
            let key = (item.recipient.clone(), item.recipient_type, consent_type);
            let index = (i % iys::rules::MAX_BULK) as i64;
            by_key
                .remove(&key)
                .or_else(|| {
                    by_position
                        .get(i)
                        .filter(|(_, _, k)| *k == key)
                        .map(|(r, s, _)| (r.clone(), s.clone()))
                })
                .map(|(r, s)| (r, s, index))
        })
        .collect()
}

/// The IYS body of an outbox row.
fn wire(item: &OutboxItem) -> Consent {
    Consent {
        recipient: item.recipient.clone(),
        consent_type: item.channel.iys_type().unwrap_or(iys::ConsentType::Mesaj),
        source: Some(item.source.clone()),
        status: item.status,
        consent_date: Some(item.consent_date),
        recipient_type: Some(item.recipient_type),
        retailer_code: None,
        retailer_access: None,
    }
}
