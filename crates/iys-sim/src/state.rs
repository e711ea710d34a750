//! IYS's state model: movements per (brand, recipient, recipientType, type), each with a
//! transactionId and creationDate; the current state is the latest accepted movement.
//!
//! Pure data and rules, no I/O: the HTTP layer calls these methods under one lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use iys::rules::{StoredConsent, ValidConsent, check_transition};
use iys::wire::{
    BulkAccepted, BulkItemStatus, BulkResultItem, ChangeSource, ChangeStat, ChangeSummary,
    CodeMessage, ConsentCounts, ConsentStatusResponse, DailyCsvRow, LooseBool,
    Movement as WireMovement, OriginalRequestInformation, PushConnection, SourceCounts, SubRequest,
};
use iys::{
    ConsentDate, ConsentStatus, ConsentType, HCode, HsSource, IysError, IysSource, Location,
    RecipientType, Source,
};

/// The identity of a consent in IYS.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    pub brand: u64,
    pub recipient: Arc<str>,
    pub recipient_type: RecipientType,
    pub consent_type: ConsentType,
}

/// A 64-hex-character transactionId, kept as bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TxId(#[serde(with = "hex_bytes")] pub [u8; 32]);

impl TxId {
    pub fn random() -> TxId {
        let mut b = [0u8; 32];
        b[..16].copy_from_slice(&fastrand::u128(..).to_le_bytes());
        b[16..].copy_from_slice(&fastrand::u128(..).to_le_bytes());
        TxId(b)
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<TxId> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b).ok()?;
        Some(TxId(b))
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut b = [0u8; 32];
        hex::decode_to_slice(&s, &mut b).map_err(serde::de::Error::custom)?;
        Ok(b)
    }
}

/// How a movement came to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    Single,
    Bulk {
        request_id: Arc<str>,
        sub_request_id: Arc<str>,
    },
    Citizen,
    Seed,
}

/// One accepted movement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Movement {
    pub key: Key,
    pub status: ConsentStatus,
    /// Absent only on a TACIR consent the provider sent without one (allowed on its first
    /// insert); IYS then reports none.
    #[serde(default)]
    pub source: Option<Source>,
    pub consent_date: Option<ConsentDate>,
    /// creationDate as epoch seconds (IYS's clock).
    pub created: i64,
    pub tx: TxId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_code: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_access: Option<Box<[u64]>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citizen_name: Option<Box<str>>,
    pub origin: Origin,
}

impl Movement {
    pub fn creation_date(&self) -> ConsentDate {
        ConsentDate::from_timestamp(Timestamp::from_second(self.created).unwrap_or_default())
    }

    /// Whether a citizen made this movement through IYS.
    pub fn is_iys(&self) -> bool {
        self.source.as_ref().is_some_and(Source::is_iys)
    }

    fn wire_with(&self, source: Source) -> WireMovement {
        WireMovement {
            consent_date: self.consent_date,
            creation_date: self.creation_date(),
            source,
            recipient: self.key.recipient.to_string(),
            recipient_type: self.key.recipient_type,
            status: self.status,
            consent_type: self.key.consent_type,
            transaction_id: self.tx.to_hex(),
            citizen_name: self.citizen_name.as_deref().map(str::to_owned),
        }
    }

    /// The movement as IYS's wire type; `None` for a movement without a source, which that
    /// type cannot hold (see [`Movement::to_json`]).
    pub fn to_wire(&self) -> Option<WireMovement> {
        self.source.clone().map(|source| self.wire_with(source))
    }

    /// The movement as IYS reports it (history, changes feed): the wire type's JSON, with no
    /// `source` key when the provider gave none. `citizenName` only where asked for.
    pub fn to_json(&self, with_citizen_name: bool) -> serde_json::Value {
        // The stand-in source never leaves this function: its key is removed below.
        let mut wire = self.wire_with(self.source.clone().unwrap_or(Source::Hs(HsSource::HsWeb)));
        if !with_citizen_name {
            wire.citizen_name = None;
        }
        let mut value = serde_json::to_value(wire).unwrap_or_default();
        if self.source.is_none()
            && let Some(obj) = value.as_object_mut()
        {
            obj.remove("source");
        }
        value
    }

    /// The changes-feed cursor pointing just after this movement.
    pub fn cursor(&self) -> String {
        format!("{}_{}", self.created, self.tx.to_hex())
    }

    fn same_data(&self, c: &ValidConsent) -> bool {
        self.status == c.status
            && self.source.as_ref().and_then(Source::as_hs) == c.source
            && self.consent_date == c.consent_date
            && self.retailer_code == c.retailer_code
            && self.retailer_access.as_deref() == c.retailer_access.as_deref()
    }
}

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

/// A registered push URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushRegistration {
    pub connection: PushConnection,
    pub registered: ConsentDate,
}

/// A dealer (retailer) of a brand.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dealer {
    pub code: u64,
    pub body: iys::wire::Retailer,
}

/// Everything the simulator knows, ready to be saved and loaded.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub movements: Vec<Movement>,
    pub bulks: Vec<BulkRequest>,
    pub dealers: Vec<(u64, Dealer)>,
    pub dealer_access: Vec<(Key, Vec<u64>)>,
    pub push: Vec<(u64, Vec<PushRegistration>)>,
    pub agreements: Vec<(u64, Date)>,
}

/// The state of IYS for one service provider.
#[derive(Debug, Default)]
pub struct IysState {
    movements: Vec<Movement>,
    by_key: HashMap<Key, Vec<u32>>,
    /// Per brand, movement ids in creation order (creation times never go back).
    by_brand: HashMap<u64, Vec<u32>>,
    counts: HashMap<u64, ConsentCounts>,
    bulks: HashMap<Arc<str>, BulkRequest>,
    pending_bulks: BTreeMap<(Timestamp, Arc<str>), ()>,
    dealers: HashMap<u64, BTreeMap<u64, Dealer>>,
    dealer_access: HashMap<Key, BTreeSet<u64>>,
    pub push: HashMap<u64, Vec<PushRegistration>>,
    agreements: BTreeSet<(u64, Date)>,
    last_created: i64,
    /// Movements that repeat their predecessor exactly (a client that re-sent a change).
    pub duplicate_movements: u64,
}

/// One page of the changes feed, shaped as IYS's `ChangesResponse`, its movements as
/// [`Movement::to_json`] gives them.
#[derive(Debug, Clone, Serialize)]
pub struct ChangesPage {
    pub after: String,
    pub list: Vec<serde_json::Value>,
}

/// A citizen's action through IYS's own channels (`/_sim/citizen`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CitizenAction {
    pub brand_code: u64,
    pub recipient: String,
    #[serde(rename = "type")]
    pub consent_type: ConsentType,
    #[serde(default)]
    pub recipient_type: RecipientType,
    pub status: ConsentStatus,
    /// An `IYS_*` source; IYS_WEB when absent.
    #[serde(default)]
    pub source: Option<Source>,
    /// Defaults to IYS's clock.
    #[serde(default)]
    pub consent_date: Option<ConsentDate>,
    #[serde(default)]
    pub citizen_name: Option<String>,
}

pub const BULK_H175_MESSAGE: &str =
    "İlk izin kayıt işlemlerinde RET durum (status) bilgisi içeren izinler kaydedilmez.";

fn stored(m: &Movement) -> StoredConsent {
    StoredConsent {
        status: m.status,
        consent_date: m.consent_date,
    }
}

fn key_of(brand: u64, c: &ValidConsent) -> Key {
    Key {
        brand,
        recipient: Arc::from(c.recipient.as_str()),
        recipient_type: c.recipient_type,
        consent_type: c.consent_type,
    }
}

fn dealer_error(location: Location, code: u64) -> IysError {
    IysError::new(HCode::H180)
        .at_location(location)
        .with_value(code)
}

impl IysState {
    pub fn movement(&self, id: u32) -> &Movement {
        &self.movements[id as usize]
    }

    pub fn movement_count(&self) -> usize {
        self.movements.len()
    }

    pub fn consent_count(&self) -> usize {
        self.by_key.len()
    }

    pub fn counts(&self, brand: u64) -> ConsentCounts {
        self.counts.get(&brand).copied().unwrap_or_default()
    }

    pub fn dealer_count(&self, brand: u64) -> u64 {
        self.dealers.get(&brand).map_or(0, |d| d.len() as u64)
    }

    pub fn current(&self, key: &Key) -> Option<&Movement> {
        self.by_key
            .get(key)
            .and_then(|ids| ids.last())
            .map(|&id| self.movement(id))
    }

    /// Appends a movement and makes it the key's current state.
    ///
    /// IYS gives movements of one consent created in the same second one shared transactionId
    /// (its reconciliation notes show them as separate rows with the same id), so a movement
    /// reuses its predecessor's id when both fall in the same second.
    fn append(&mut self, key: Key, m: MovementData, now: Timestamp) -> u32 {
        let created = now.as_second().max(self.last_created);
        self.last_created = created;
        let tx = match self.current(&key) {
            Some(p) if p.created == created => p.tx,
            _ => TxId::random(),
        };
        let previous = self
            .current(&key)
            .map(|p| (p.status, p.source.clone(), p.consent_date));
        let counts = self.counts.entry(key.brand).or_default();
        match previous.as_ref().map(|p| p.0) {
            Some(ConsentStatus::Onay) => counts.approval -= 1,
            Some(ConsentStatus::Ret) => counts.rejection -= 1,
            None => counts.total += 1,
        }
        match m.status {
            ConsentStatus::Onay => counts.approval += 1,
            ConsentStatus::Ret => counts.rejection += 1,
        }
        if previous == Some((m.status, m.source.clone(), m.consent_date)) {
            self.duplicate_movements += 1;
        }
        let id = u32::try_from(self.movements.len()).expect("fewer than 4 billion movements");
        self.by_brand.entry(key.brand).or_default().push(id);
        self.by_key.entry(key.clone()).or_default().push(id);
        self.movements.push(Movement {
            key,
            status: m.status,
            source: m.source,
            consent_date: m.consent_date,
            created,
            tx,
            retailer_code: m.retailer_code,
            retailer_access: m.retailer_access.map(Vec::into_boxed_slice),
            citizen_name: m.citizen_name.map(String::into_boxed_str),
            origin: m.origin,
        });
        id
    }

    fn check_dealers(&self, brand: u64, c: &ValidConsent) -> Result<(), IysError> {
        let known = |code: &u64| {
            self.dealers
                .get(&brand)
                .is_some_and(|d| d.contains_key(code))
        };
        if let Some(code) = c.retailer_code
            && !known(&code)
        {
            return Err(dealer_error(Location::field("retailerCode"), code));
        }
        if let Some(access) = &c.retailer_access
            && let Some(i) = access.iter().position(|c| !known(c))
        {
            return Err(dealer_error(
                Location::indexed("retailerAccess", i),
                access[i],
            ));
        }
        Ok(())
    }

    /// Whether a new consent would go over the subscription's limit (H525).
    pub fn over_quota(&self, limit: Option<u64>, may_exceed: bool, new_keys: usize) -> bool {
        match limit {
            Some(limit) if !may_exceed => (self.by_key.len() + new_keys) as u64 > limit,
            _ => false,
        }
    }

    /// Single add (v1 and v2). v2 answers an identical replay with the original transaction.
    pub fn add_consent(
        &mut self,
        brand: u64,
        c: &ValidConsent,
        v2: bool,
        quota: (Option<u64>, bool),
        now: Timestamp,
    ) -> Result<u32, IysError> {
        let key = key_of(brand, c);
        let current_id = self.by_key.get(&key).and_then(|ids| ids.last()).copied();
        let current = current_id.map(|id| self.movement(id));
        if v2
            && let (Some(id), Some(cur)) = (current_id, current)
            && cur.same_data(c)
        {
            return Ok(id);
        }
        check_transition(current.map(stored).as_ref(), c)?;
        self.check_dealers(brand, c)?;
        if current.is_none() && self.over_quota(quota.0, quota.1, 1) {
            return Err(IysError::new(HCode::H525));
        }
        Ok(self.append(key, MovementData::from_consent(c, Origin::Single), now))
    }

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
            .range(..=(now, Arc::from("\u{10ffff}")))
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

    /// Single status; `None` when IYS has never had the consent.
    pub fn status(&self, key: &Key) -> Option<ConsentStatusResponse> {
        let m = self.current(key)?;
        let access = self.dealer_access.get(key).map_or(0, BTreeSet::len) as u64;
        let title = m.retailer_code.and_then(|code| {
            self.dealers
                .get(&key.brand)
                .and_then(|d| d.get(&code))
                .map(|d| d.body.title.clone())
        });
        Some(ConsentStatusResponse {
            consent_date: m.consent_date,
            creation_date: Some(m.creation_date()),
            source: m.source.clone(),
            recipient: key.recipient.to_string(),
            recipient_type: key.recipient_type,
            status: m.status,
            consent_type: key.consent_type,
            retailer_code: m.retailer_code,
            retailer_title: title,
            retailer_access_count: (access > 0).then_some(access),
            transaction_id: Some(m.tx.to_hex()),
        })
    }

    /// All movements of one consent, newest consentDate first.
    pub fn history(&self, key: &Key) -> Vec<&Movement> {
        let mut list: Vec<&Movement> = self
            .by_key
            .get(key)
            .map(|ids| ids.iter().map(|&id| self.movement(id)).collect())
            .unwrap_or_default();
        list.sort_by_key(|m| std::cmp::Reverse((m.consent_date, m.created)));
        list
    }

    /// One page of the changes feed; `None` when there is nothing (IYS answers 204).
    ///
    /// The cursor names a second and a transactionId, and movements of one consent in one second
    /// share their transactionId, so a cursor cannot tell those movements apart. Two rules keep
    /// paging lossless and finite: a cursor resumes after the LAST movement of its group, and a
    /// page never stops inside a group it has started (it may run past `limit` to finish it).
    pub fn changes(
        &self,
        brand: u64,
        source: ChangeSource,
        after: Option<(i64, TxId)>,
        limit: usize,
        window: (i64, i64),
    ) -> Option<ChangesPage> {
        let ids = self.by_brand.get(&brand)?;
        let created = |i: usize| self.movements[ids[i] as usize].created;
        let mut start = partition(ids.len(), |i| created(i) < window.0);
        if let Some((secs, tx)) = after {
            let first_same = partition(ids.len(), |i| created(i) < secs);
            let first_later = partition(ids.len(), |i| created(i) <= secs);
            // An unknown transactionId resumes at the start of its second: better to deliver a
            // movement twice than to skip one.
            let resume = (first_same..first_later)
                .find(|&i| self.movements[ids[i] as usize].tx == tx)
                .map_or(first_same, |i| self.group_end(ids, i) + 1);
            start = start.max(resume);
        }
        let mut list = Vec::new();
        let mut last = None;
        // Position of the last movement of every group the page has started.
        let mut must_reach = None;
        for (pos, &id) in ids.iter().enumerate().skip(start) {
            let m = self.movement(id);
            if m.created > window.1 {
                break;
            }
            if list.len() >= limit && must_reach.is_none_or(|end| pos > end) {
                break;
            }
            let wanted = match source {
                ChangeSource::Iys => m.is_iys(),
                ChangeSource::Hs => !m.is_iys(),
            };
            if wanted {
                list.push(m.to_json(true));
                last = Some(m);
                let end = self.group_end(ids, pos);
                must_reach = Some(must_reach.map_or(end, |e: usize| e.max(end)));
            }
        }
        last.map(|m| ChangesPage {
            after: m.cursor(),
            list,
        })
    }

    /// The position in `ids` (a brand's movements) of the last movement sharing the
    /// transactionId of the one at `pos`: the same consent, later in the same second.
    fn group_end(&self, ids: &[u32], pos: usize) -> usize {
        let Some(&id) = ids.get(pos) else {
            return pos;
        };
        let m = self.movement(id);
        let Some(of_key) = self.by_key.get(&m.key) else {
            return pos;
        };
        // Movement ids only grow, so both lists are sorted.
        let Ok(at) = of_key.binary_search(&id) else {
            return pos;
        };
        let last_id = of_key[at..]
            .iter()
            .take_while(|&&other| self.movement(other).tx == m.tx)
            .last()
            .copied()
            .unwrap_or(id);
        ids.binary_search(&last_id).unwrap_or(pos)
    }

    /// A citizen gives or withdraws consent through IYS. IYS's provider rules do not apply to
    /// citizens, but a status equal to the current one is refused (H174) as IYS's apps do.
    pub fn citizen(&mut self, a: &CitizenAction, now: Timestamp) -> Result<u32, IysError> {
        let recipient = iys::Recipient::parse_iys_for(&a.recipient, a.consent_type)
            .map_err(|e| e.iys_errors("recipient").remove(0))?;
        let source = match &a.source {
            None => Source::Iys(IysSource::Web),
            Some(s @ Source::Iys(_)) => s.clone(),
            Some(other) => {
                return Err(IysError::new(HCode::H119)
                    .with_message("citizen actions take an IYS_* source")
                    .at("source")
                    .with_value(other.as_str()));
            }
        };
        let key = Key {
            brand: a.brand_code,
            recipient: Arc::from(recipient.as_str()),
            recipient_type: a.recipient_type,
            consent_type: a.consent_type,
        };
        if self.current(&key).is_some_and(|m| m.status == a.status) {
            return Err(IysError::new(HCode::H174));
        }
        let data = MovementData {
            status: a.status,
            source: Some(source),
            consent_date: Some(
                a.consent_date
                    .unwrap_or_else(|| ConsentDate::from_timestamp(now)),
            ),
            retailer_code: None,
            retailer_access: None,
            citizen_name: a.citizen_name.clone(),
            origin: Origin::Citizen,
        };
        Ok(self.append(key, data, now))
    }

    /// Adds `count` ONAY consents for benchmarks and load tests, without the rules.
    pub fn seed(
        &mut self,
        brand: u64,
        consent_type: ConsentType,
        count: u64,
        start: u64,
        now: Timestamp,
    ) -> u64 {
        let date = ConsentDate::from_timestamp(
            now.saturating_sub(SignedDuration::from_hours(1))
                .unwrap_or(now),
        );
        self.movements.reserve(count as usize);
        for n in start..start + count {
            let recipient: Arc<str> = if consent_type.needs_phone() {
                Arc::from(format!("+90532{:07}", n % 10_000_000))
            } else {
                Arc::from(format!("seed{n}@example.com"))
            };
            let key = Key {
                brand,
                recipient,
                recipient_type: RecipientType::Bireysel,
                consent_type,
            };
            let data = MovementData {
                status: ConsentStatus::Onay,
                source: Some(Source::Hs(HsSource::HsWeb)),
                consent_date: Some(date),
                retailer_code: None,
                retailer_access: None,
                citizen_name: None,
                origin: Origin::Seed,
            };
            self.append(key, data, now);
        }
        count
    }

    /// Movement ids created on one Istanbul calendar day.
    fn day(&self, brand: u64, date: Date) -> &[u32] {
        let Some(ids) = self.by_brand.get(&brand) else {
            return &[];
        };
        let start = day_start(date);
        let end = day_start(date.tomorrow().unwrap_or(date));
        let created = |i: usize| self.movements[ids[i] as usize].created;
        let a = partition(ids.len(), |i| created(i) < start);
        let b = partition(ids.len(), |i| created(i) < end);
        &ids[a..b]
    }

    pub fn has_day(&self, brand: u64, date: Date) -> bool {
        !self.day(brand, date).is_empty()
    }

    /// Reconciliation summary of one day for one recipientType.
    pub fn day_summary(
        &self,
        brand: u64,
        date: Date,
        recipient_type: RecipientType,
    ) -> ChangeSummary {
        let mut stats: BTreeMap<(ConsentType, bool), SourceCounts> = BTreeMap::new();
        for &id in self.day(brand, date) {
            let m = self.movement(id);
            if m.key.recipient_type != recipient_type {
                continue;
            }
            let is_iys = m.is_iys();
            let e = stats
                .entry((m.key.consent_type, is_iys))
                .or_insert(SourceCounts {
                    source: if is_iys {
                        ChangeSource::Iys
                    } else {
                        ChangeSource::Hs
                    },
                    approval: 0,
                    rejection: 0,
                    pending: 0,
                    total: 0,
                });
            match m.status {
                ConsentStatus::Onay => e.approval += 1,
                ConsentStatus::Ret => e.rejection += 1,
            }
            e.total += 1;
        }
        let mut change_stats: Vec<ChangeStat> = Vec::new();
        for ((consent_type, _), counts) in stats {
            match change_stats.last_mut() {
                Some(last) if last.consent_type == consent_type => last.consents.push(counts),
                _ => change_stats.push(ChangeStat {
                    consent_type,
                    consents: vec![counts],
                }),
            }
        }
        ChangeSummary { change_stats }
    }

    /// The daily movement file (CSV), both HS and IYS movements.
    pub fn day_file(&self, brand: u64, date: Date) -> String {
        let mut rows: Vec<DailyCsvRow> = self
            .day(brand, date)
            .iter()
            .map(|&id| {
                let m = self.movement(id);
                DailyCsvRow {
                    creation_date: m.creation_date(),
                    transaction_id: m.tx.to_hex(),
                    recipient: m.key.recipient.to_string(),
                    recipient_type: m.key.recipient_type,
                    consent_type: m.key.consent_type,
                    status: m.status,
                    consent_date: m.consent_date,
                    source: m.source.clone(),
                }
            })
            .collect();
        DailyCsvRow::render_file(&mut rows)
    }

    pub fn agree(&mut self, brand: u64, date: Date) {
        self.agreements.insert((brand, date));
    }

    pub fn agreed(&self, brand: u64, date: Date) -> bool {
        self.agreements.contains(&(brand, date))
    }

    // Dealers -----------------------------------------------------------------------------

    pub fn dealers(&self, brand: u64) -> impl Iterator<Item = &Dealer> {
        self.dealers
            .get(&brand)
            .into_iter()
            .flat_map(|d| d.values())
    }

    pub fn dealer(&self, brand: u64, code: u64) -> Option<&Dealer> {
        self.dealers.get(&brand)?.get(&code)
    }

    /// Adds a dealer under a fresh random 8-digit code.
    pub fn add_dealer(&mut self, brand: u64, mut body: iys::wire::Retailer) -> u64 {
        let taken: Vec<u64> = self
            .dealers
            .values()
            .flat_map(|d| d.keys().copied())
            .collect();
        let code = loop {
            let c = fastrand::u64(10_000_000..100_000_000);
            if !taken.contains(&c) {
                break c;
            }
        };
        body.retailer_code = Some(code);
        self.dealers
            .entry(brand)
            .or_default()
            .insert(code, Dealer { code, body });
        code
    }

    /// Whether any consent of the brand uses the dealer.
    pub fn dealer_in_use(&self, brand: u64, code: u64) -> bool {
        self.dealer_access
            .iter()
            .any(|(k, set)| k.brand == brand && set.contains(&code))
            || self.by_key.iter().any(|(k, ids)| {
                k.brand == brand
                    && ids
                        .last()
                        .is_some_and(|&id| self.movement(id).retailer_code == Some(code))
            })
    }

    pub fn remove_dealer(&mut self, brand: u64, code: u64) -> bool {
        self.dealers
            .get_mut(&brand)
            .is_some_and(|d| d.remove(&code).is_some())
    }

    pub fn access_of(&self, key: &Key) -> Vec<u64> {
        self.dealer_access
            .get(key)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Checks that every code is a dealer of the brand (403 H180 at the first unknown one).
    pub fn check_dealer_codes(&self, brand: u64, codes: &[u64]) -> Result<(), IysError> {
        match codes.iter().position(|c| self.dealer(brand, *c).is_none()) {
            Some(i) => Err(dealer_error(
                Location::indexed("retailerAccess", i),
                codes[i],
            )),
            None => Ok(()),
        }
    }

    pub fn grant_access(&mut self, key: Key, codes: &[u64]) -> Result<(), IysError> {
        if self.current(&key).is_none() {
            return Err(IysError::new(HCode::H401));
        }
        self.dealer_access.entry(key).or_default().extend(codes);
        Ok(())
    }

    pub fn replace_access(&mut self, key: Key, codes: &[u64]) {
        if self.current(&key).is_some() {
            self.dealer_access
                .insert(key, codes.iter().copied().collect());
        }
    }

    pub fn remove_access(&mut self, key: &Key, codes: Option<&[u64]>) {
        match codes {
            None => {
                self.dealer_access.remove(key);
            }
            Some(codes) => {
                if let Some(set) = self.dealer_access.get_mut(key) {
                    for c in codes {
                        set.remove(c);
                    }
                }
            }
        }
    }

    // Persistence ---------------------------------------------------------------------------

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            movements: self.movements.clone(),
            bulks: self.bulks.values().cloned().collect(),
            dealers: self
                .dealers
                .iter()
                .flat_map(|(b, d)| d.values().map(move |x| (*b, x.clone())))
                .collect(),
            dealer_access: self
                .dealer_access
                .iter()
                .map(|(k, s)| (k.clone(), s.iter().copied().collect()))
                .collect(),
            push: self.push.iter().map(|(b, r)| (*b, r.clone())).collect(),
            agreements: self.agreements.iter().copied().collect(),
        }
    }

    pub fn restore(snapshot: Snapshot) -> IysState {
        let mut state = IysState::default();
        for m in snapshot.movements {
            let id = state.movements.len() as u32;
            let counts = state.counts.entry(m.key.brand).or_default();
            let prev = state
                .by_key
                .get(&m.key)
                .and_then(|ids| ids.last())
                .map(|&p| state.movements[p as usize].status);
            match prev {
                Some(ConsentStatus::Onay) => counts.approval -= 1,
                Some(ConsentStatus::Ret) => counts.rejection -= 1,
                None => counts.total += 1,
            }
            match m.status {
                ConsentStatus::Onay => counts.approval += 1,
                ConsentStatus::Ret => counts.rejection += 1,
            }
            state.last_created = state.last_created.max(m.created);
            state.by_brand.entry(m.key.brand).or_default().push(id);
            state.by_key.entry(m.key.clone()).or_default().push(id);
            state.movements.push(m);
        }
        for b in snapshot.bulks {
            if b.items.iter().any(|it| it.outcome.is_none()) {
                state
                    .pending_bulks
                    .insert((b.due, b.request_id.clone()), ());
            }
            state.bulks.insert(b.request_id.clone(), b);
        }
        for (brand, d) in snapshot.dealers {
            state.dealers.entry(brand).or_default().insert(d.code, d);
        }
        for (k, codes) in snapshot.dealer_access {
            state.dealer_access.insert(k, codes.into_iter().collect());
        }
        state.push = snapshot.push.into_iter().collect();
        state.agreements = snapshot.agreements.into_iter().collect();
        state
    }

    /// Current state of every consent of a brand, for tests comparing IYS with the hub.
    pub fn consents_of(&self, brand: u64) -> impl Iterator<Item = &Movement> {
        self.by_key
            .iter()
            .filter(move |(k, _)| k.brand == brand)
            .filter_map(|(_, ids)| ids.last().map(|&id| self.movement(id)))
    }
}

/// The fields of a new movement.
struct MovementData {
    status: ConsentStatus,
    source: Option<Source>,
    consent_date: Option<ConsentDate>,
    retailer_code: Option<u64>,
    retailer_access: Option<Vec<u64>>,
    citizen_name: Option<String>,
    origin: Origin,
}

impl MovementData {
    fn from_consent(c: &ValidConsent, origin: Origin) -> MovementData {
        MovementData {
            status: c.status,
            // A TACIR first insert may come without a source; none is invented.
            source: c.source.map(Source::Hs),
            consent_date: c.consent_date,
            retailer_code: c.retailer_code,
            retailer_access: c.retailer_access.clone(),
            citizen_name: None,
            origin,
        }
    }
}

/// First index in `0..len` for which `pred` is false (pred must be true then false).
fn partition(len: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Epoch seconds of 00:00 in Istanbul on `date`.
pub fn day_start(date: Date) -> i64 {
    ConsentDate::from_civil(date.to_datetime(jiff::civil::Time::midnight()))
        .to_timestamp()
        .as_second()
}
