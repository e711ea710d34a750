//! Bulk requests: submitted now, processed item by item once their time has come, and their
//! result arrays.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use iys::rules::{ValidConsent, check_transition};
use iys::wire::{
    BulkAccepted, BulkItemStatus, BulkResultItem, CodeMessage, LooseBool,
    OriginalRequestInformation, SubRequest,
};
use iys::{ConsentDate, HCode, IysError};

use super::{IysState, MovementData, Origin, key_of, stored};

/// Sorts after every request id (a UUID): `..=(now, AFTER_EVERY_ID)` takes every request due by
/// `now`.
const AFTER_EVERY_ID: &str = "\u{10ffff}";

/// What a bulk item came to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum BulkOutcome {
    Success {
        movement: u32,
        /// v2: the earlier request that had already written this exact consent.
        original: Option<(Arc<str>, Arc<str>)>,
    },
    Failure(HCode),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BulkItem {
    pub sub_request_id: Arc<str>,
    pub consent: ValidConsent,
    pub outcome: Option<BulkOutcome>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BulkRequest {
    pub request_id: Arc<str>,
    pub brand: u64,
    pub v2: bool,
    pub submitted: Timestamp,
    /// When processing starts; item `i` is done at `due + i × bulk_item_ms`.
    pub due: Timestamp,
    pub item_ms: u64,
    pub items: Vec<BulkItem>,
}

pub const BULK_H175_MESSAGE: &str =
    "İlk izin kayıt işlemlerinde RET durum (status) bilgisi içeren izinler kaydedilmez.";

impl IysState {
    /// Bulk submission: dealer and quota checks now, the rules when IYS processes the items.
    #[allow(clippy::too_many_arguments)]
    pub fn submit_bulk(
        &mut self,
        brand: u64,
        items: Vec<ValidConsent>,
        v2: bool,
        quota: (Option<u64>, bool),
        now: Timestamp,
        delay: SignedDuration,
        item_ms: u64,
    ) -> Result<BulkAccepted, Vec<IysError>> {
        let dealer_errors: Vec<IysError> = items
            .iter()
            .enumerate()
            .filter_map(|(i, c)| self.check_dealers(brand, c).err().map(|e| e.with_index(i)))
            .collect();
        if !dealer_errors.is_empty() {
            return Err(dealer_errors);
        }
        let new_keys = items
            .iter()
            .filter(|c| !self.by_key.contains_key(&key_of(brand, c)))
            .count();
        if self.over_quota(quota.0, quota.1, new_keys) {
            return Err(vec![IysError::new(HCode::H525)]);
        }
        let request_id: Arc<str> = Arc::from(uuid::Uuid::new_v4().to_string());
        let creation = ConsentDate::from_timestamp(now);
        let items: Vec<BulkItem> = items
            .into_iter()
            .map(|consent| BulkItem {
                sub_request_id: Arc::from(uuid::Uuid::new_v4().to_string()),
                consent,
                outcome: None,
            })
            .collect();
        let accepted = BulkAccepted {
            request_id: request_id.to_string(),
            sub_requests: items
                .iter()
                .map(|it| {
                    let wire = it.consent.to_wire();
                    SubRequest {
                        sub_request_id: it.sub_request_id.to_string(),
                        consent_type: wire.consent_type,
                        source: wire.source,
                        recipient: wire.recipient,
                        status: wire.status,
                        consent_date: wire.consent_date,
                        recipient_type: wire.recipient_type,
                        creation_date: Some(creation),
                        retailer_code: wire.retailer_code,
                        retailer_access: wire.retailer_access,
                    }
                })
                .collect(),
        };
        let due = now.saturating_add(delay).unwrap_or(now);
        self.pending_bulks.insert((due, request_id.clone()), ());
        self.bulks.insert(
            request_id.clone(),
            BulkRequest {
                request_id,
                brand,
                v2,
                submitted: now,
                due,
                item_ms,
                items,
            },
        );
        Ok(accepted)
    }

    /// Processes every bulk item whose time has come. Returns the number of items settled.
    pub fn process_due(&mut self, now: Timestamp) -> usize {
        let due: Vec<(Timestamp, Arc<str>)> = self
            .pending_bulks
            .range(..=(now, Arc::from(AFTER_EVERY_ID)))
            .map(|(k, _)| k.clone())
            .collect();
        let mut settled = 0;
        for (due_at, id) in due {
            let Some(mut req) = self.bulks.remove(&id) else {
                self.pending_bulks.remove(&(due_at, id));
                continue;
            };
            for (i, item) in req.items.iter_mut().enumerate() {
                if item.outcome.is_some() {
                    continue;
                }
                let at = due_at
                    .saturating_add(SignedDuration::from_millis((i as u64 * req.item_ms) as i64))
                    .unwrap_or(due_at);
                if at > now {
                    break;
                }
                item.outcome =
                    Some(self.settle_bulk_item(req.brand, req.v2, &req.request_id, item, at));
                settled += 1;
            }
            if req.items.iter().all(|it| it.outcome.is_some()) {
                self.pending_bulks.remove(&(due_at, id.clone()));
            }
            self.bulks.insert(id, req);
        }
        settled
    }

    fn settle_bulk_item(
        &mut self,
        brand: u64,
        v2: bool,
        request_id: &Arc<str>,
        item: &BulkItem,
        at: Timestamp,
    ) -> BulkOutcome {
        let c = &item.consent;
        let key = key_of(brand, c);
        let current_id = self.by_key.get(&key).and_then(|ids| ids.last()).copied();
        if v2 && let Some(id) = current_id {
            let cur = self.movement(id);
            if cur.same_data(c) {
                let original = match &cur.origin {
                    Origin::Bulk {
                        request_id,
                        sub_request_id,
                    } => Some((request_id.clone(), sub_request_id.clone())),
                    _ => None,
                };
                return BulkOutcome::Success {
                    movement: id,
                    original,
                };
            }
        }
        let current = current_id.map(|id| stored(self.movement(id)));
        if let Err(e) = check_transition(current.as_ref(), c) {
            return BulkOutcome::Failure(e.hcode().unwrap_or(HCode::H092));
        }
        let origin = Origin::Bulk {
            request_id: request_id.clone(),
            sub_request_id: item.sub_request_id.clone(),
        };
        let id = self.append(key, MovementData::from_consent(c, origin), at);
        BulkOutcome::Success {
            movement: id,
            original: None,
        }
    }

    pub fn bulk(&self, request_id: &str) -> Option<&BulkRequest> {
        self.bulks.get(request_id)
    }

    /// The result array of a bulk request: `[]` before processing starts (or when unknown).
    pub fn bulk_results(
        &self,
        brand: u64,
        request_id: &str,
        v2: bool,
        now: Timestamp,
    ) -> Vec<BulkResultItem> {
        let Some(req) = self.bulks.get(request_id).filter(|r| r.brand == brand) else {
            return Vec::new();
        };
        if now < req.due {
            return Vec::new();
        }
        req.items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let mut out = BulkResultItem {
                    index,
                    status: BulkItemStatus::Enqueue,
                    sub_request_id: Some(item.sub_request_id.to_string()),
                    request_id: Some(req.request_id.to_string()),
                    transaction_id: None,
                    creation_date: None,
                    error: None,
                    is_add_consent_v2_service: None,
                    original_request_information: None,
                };
                match &item.outcome {
                    None => {}
                    Some(BulkOutcome::Failure(code)) => {
                        out.status = BulkItemStatus::Failure;
                        let message = if *code == HCode::H175 {
                            BULK_H175_MESSAGE.to_owned()
                        } else {
                            code.message_tr().to_owned()
                        };
                        out.error = Some(CodeMessage {
                            code: code.as_str().to_owned(),
                            message,
                        });
                    }
                    Some(BulkOutcome::Success { movement, original }) => {
                        let m = self.movement(*movement);
                        out.status = BulkItemStatus::Success;
                        out.transaction_id = Some(m.tx.to_hex());
                        out.creation_date = Some(m.creation_date());
                        if v2 {
                            out.is_add_consent_v2_service = Some(LooseBool::Bool(req.v2));
                            out.original_request_information =
                                original.as_ref().map(|(r, s)| OriginalRequestInformation {
                                    request_id: r.to_string(),
                                    sub_request_id: s.to_string(),
                                });
                        }
                    }
                }
                out
            })
            .collect()
    }
}
