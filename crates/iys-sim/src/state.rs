//! IYS's state model: movements per (brand, recipient, recipientType, type), each with a
//! transactionId and creationDate; the current state is the latest accepted movement.
//!
//! Pure data and rules, no I/O: the HTTP layer calls these methods under one lock. This file
//! holds the types, single adds, status, history, citizens' actions, seeding and snapshots;
//! `bulk`, `feed` (changes feed), `days` (daily reconciliation) and `dealers` the rest.

mod bulk;
mod days;
mod dealers;
mod feed;

pub use bulk::{BULK_H175_MESSAGE, BulkItem, BulkOutcome, BulkRequest};
pub use days::day_start;
pub use dealers::Dealer;
pub use feed::ChangesPage;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use iys::rules::{StoredConsent, ValidConsent, check_transition};
use iys::wire::{ConsentCounts, ConsentStatusResponse, Movement as WireMovement, PushConnection};
use iys::{
    ConsentDate, ConsentStatus, ConsentType, HCode, HsSource, IysError, IysSource, RecipientType,
    Source,
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

/// A registered push URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushRegistration {
    pub connection: PushConnection,
    pub registered: ConsentDate,
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
        recount(
            self.counts.entry(key.brand).or_default(),
            previous.as_ref().map(|p| p.0),
            m.status,
        );
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
            recount(counts, prev, m.status);
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

/// Moves one consent in its brand's counts from its previous status (`None`: a new consent)
/// to `status`.
fn recount(counts: &mut ConsentCounts, previous: Option<ConsentStatus>, status: ConsentStatus) {
    match previous {
        Some(ConsentStatus::Onay) => counts.approval -= 1,
        Some(ConsentStatus::Ret) => counts.rejection -= 1,
        None => counts.total += 1,
    }
    match status {
        ConsentStatus::Onay => counts.approval += 1,
        ConsentStatus::Ret => counts.rejection += 1,
    }
}
