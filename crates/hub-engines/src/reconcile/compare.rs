//! Comparing one day of IYS's movement file with the hub's record of that day. Pure.
//!
//! Both sides are compared on a movement's content with its transactionId: (transactionId,
//! recipient, recipientType, type, status, consentDate, source). IYS gives movements of one
//! address and type in the same second one shared transactionId, so such rows differ only in
//! their content and stay apart; a comparison on transactionId alone would take a missing one for
//! present. A row IYS lists twice identically counts once: the ledger de-duplicates movements on
//! exactly this content, so it can never hold two of them.

use std::collections::{BTreeMap, BTreeSet};

use hub_core::{BrandCode, Change, Origin};
use hub_store::HubMovement;
use iys::wire::{DailyCsvRow, Movement};
use iys::{ConsentDate, ConsentType, RecipientType};
use jiff::Timestamp;

/// A movement's content with its transactionId: what both sides are compared on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowKey {
    pub transaction_id: String,
    pub recipient: String,
    pub recipient_type: RecipientType,
    pub consent_type: ConsentType,
    pub status: iys::ConsentStatus,
    pub consent_date: ConsentDate,
    /// Empty when IYS's row has no source (a TACIR record sent without one).
    pub source: String,
}

impl RowKey {
    /// The movement's consent and transaction, without its content.
    fn transaction(&self) -> (&str, &str, RecipientType, ConsentType) {
        (
            &self.transaction_id,
            &self.recipient,
            self.recipient_type,
            self.consent_type,
        )
    }
}

/// One row of IYS's file, read for comparing and repairing.
#[derive(Debug, Clone, PartialEq)]
pub struct IysRow {
    pub key: RowKey,
    pub creation_date: ConsentDate,
    /// The row as a ledger change (origin `reconcile`), or why the ledger cannot take it (no
    /// source, an unreadable recipient, a consentDate in the future or before IYS began).
    pub change: Result<Change, String>,
}

impl IysRow {
    /// Reads a file row the way the puller reads a movement (`Change::try_from_iys`): the same
    /// recipient normalisation, stand-in for an empty consentDate and screening, so the two ways
    /// a movement reaches the hub compare alike.
    pub fn new(brand: BrandCode, row: &DailyCsvRow, now: Timestamp) -> IysRow {
        let recipient = iys::Recipient::normalise_for(&row.recipient, row.consent_type)
            .map(|r| r.as_str().to_owned())
            .unwrap_or_else(|_| row.recipient.clone());
        let key = RowKey {
            transaction_id: row.transaction_id.clone(),
            recipient,
            recipient_type: row.recipient_type,
            consent_type: row.consent_type,
            status: row.status,
            consent_date: row.consent_date.unwrap_or(row.creation_date),
            source: row
                .source
                .as_ref()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
        };
        let change = match row.source.clone() {
            None => Err("the row has no source: the ledger cannot record it".to_owned()),
            Some(source) => {
                let m = Movement {
                    consent_date: row.consent_date,
                    creation_date: row.creation_date,
                    source,
                    recipient: row.recipient.clone(),
                    recipient_type: row.recipient_type,
                    status: row.status,
                    consent_type: row.consent_type,
                    transaction_id: row.transaction_id.clone(),
                    citizen_name: None,
                };
                Change::try_from_iys(brand, &m, Origin::Reconcile, now)
                    .map_err(|e| format!("the ledger cannot take this movement: {e}"))
            }
        };
        IysRow {
            key,
            creation_date: row.creation_date,
            change,
        }
    }
}

/// The comparison key of a hub movement.
pub fn hub_key(m: &HubMovement) -> Option<RowKey> {
    Some(RowKey {
        transaction_id: m.transaction_id.clone(),
        recipient: m.recipient.clone(),
        recipient_type: m.recipient_type,
        consent_type: m.channel.iys_type()?,
        status: m.status,
        consent_date: m.consent_date,
        source: m.source.clone(),
    })
}

/// How the two sides of a day differ. Indexes point into the slices compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Distinct rows of IYS's file.
    pub iys_rows: usize,
    /// Distinct movements of the hub's record.
    pub hub_rows: usize,
    pub matched: usize,
    /// IYS rows the hub lacks (first occurrence of each), in file order.
    pub missing_in_hub: Vec<usize>,
    /// Hub movements whose transactionId IYS's file does not have for that consent.
    pub missing_in_iys: Vec<usize>,
    /// Hub movements whose transactionId IYS has for that consent with other contents, each
    /// with the first such IYS row.
    pub mismatched: Vec<(usize, usize)>,
}

impl Comparison {
    pub fn drift(&self) -> usize {
        self.missing_in_hub.len() + self.missing_in_iys.len() + self.mismatched.len()
    }
}

pub fn compare(iys: &[IysRow], hub: &[HubMovement]) -> Comparison {
    let mut iys_keys: BTreeMap<&RowKey, usize> = BTreeMap::new();
    let mut transactions = BTreeMap::new();
    for (i, row) in iys.iter().enumerate() {
        iys_keys.entry(&row.key).or_insert(i);
        transactions.entry(row.key.transaction()).or_insert(i);
    }
    let mut hub_keys: BTreeMap<RowKey, usize> = BTreeMap::new();
    for (j, m) in hub.iter().enumerate() {
        if let Some(k) = hub_key(m) {
            hub_keys.entry(k).or_insert(j);
        }
    }
    let mut c = Comparison {
        iys_rows: iys_keys.len(),
        hub_rows: hub_keys.len(),
        ..Comparison::default()
    };
    let mut missing: BTreeSet<usize> = BTreeSet::new();
    for (k, &i) in &iys_keys {
        if hub_keys.contains_key(*k) {
            c.matched += 1;
        } else {
            missing.insert(i);
        }
    }
    c.missing_in_hub = missing.into_iter().collect();
    let mut extra: Vec<(usize, Option<usize>)> = hub_keys
        .iter()
        .filter(|(k, _)| !iys_keys.contains_key(k))
        .map(|(k, &j)| (j, transactions.get(&k.transaction()).copied()))
        .collect();
    extra.sort_unstable();
    for (j, pair) in extra {
        match pair {
            // IYS has this transaction for the consent, with other contents: the hub's version
            // is not sent again (it would only repeat what IYS recorded differently).
            Some(i) => c.mismatched.push((j, i)),
            None => c.missing_in_iys.push(j),
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::Channel;
    use iys::ConsentStatus::{Onay, Ret};
    use iys::{HsSource, IysSource, Source};

    const BRAND: BrandCode = BrandCode(600_123);
    const TX: &str = "aa11";
    const D: &str = "2026-11-20 10:00:00";

    fn date(s: &str) -> ConsentDate {
        ConsentDate::parse(s).unwrap()
    }

    fn file_row(tx: &str, status: iys::ConsentStatus, source: Option<Source>) -> DailyCsvRow {
        DailyCsvRow {
            creation_date: date(D),
            transaction_id: tx.into(),
            recipient: "+905321234567".into(),
            recipient_type: RecipientType::Bireysel,
            consent_type: ConsentType::Mesaj,
            status,
            consent_date: Some(date(D)),
            source,
        }
    }

    fn row(tx: &str, status: iys::ConsentStatus, source: Source) -> IysRow {
        IysRow::new(
            BRAND,
            &file_row(tx, status, Some(source)),
            date(D).to_timestamp(),
        )
    }

    fn hub(id: i64, tx: &str, status: iys::ConsentStatus, source: Source) -> HubMovement {
        HubMovement {
            event_id: id,
            recipient: "+905321234567".into(),
            recipient_type: RecipientType::Bireysel,
            channel: Channel::Iys(ConsentType::Mesaj),
            status,
            consent_date: date(D),
            source: source.as_str().to_owned(),
            origin: Origin::Api,
            transaction_id: tx.into(),
            delivered: true,
            creation_date: Some(date(D)),
            outbox_state: None,
            outbox_error: None,
            current: true,
        }
    }

    fn web() -> Source {
        Source::Hs(HsSource::HsWeb)
    }

    fn citizen() -> Source {
        Source::Iys(IysSource::Mobil)
    }

    #[test]
    fn equal_sides_agree() {
        let c = compare(
            &[row(TX, Onay, web()), row("bb22", Ret, citizen())],
            &[hub(1, TX, Onay, web()), hub(2, "bb22", Ret, citizen())],
        );
        assert_eq!((c.matched, c.drift()), (2, 0));
    }

    #[test]
    fn same_second_rows_sharing_a_transaction_id_stay_apart() {
        // The hub delivered the ONAY; the citizen's RET of the same second shares its
        // transactionId. A comparison on transactionId alone would see nothing missing.
        let iys = [row(TX, Onay, web()), row(TX, Ret, citizen())];
        let c = compare(&iys, &[hub(1, TX, Onay, web())]);
        assert_eq!(c.matched, 1);
        assert_eq!(c.missing_in_hub, vec![1]);
        assert!(c.missing_in_iys.is_empty() && c.mismatched.is_empty());
        // Both present: nothing missing either way.
        let c = compare(&iys, &[hub(1, TX, Onay, web()), hub(2, TX, Ret, citizen())]);
        assert_eq!((c.matched, c.drift()), (2, 0));
    }

    #[test]
    fn drift_in_both_directions_and_mismatches() {
        let iys = [row(TX, Onay, web()), row("cc33", Ret, citizen())];
        let hub_side = [
            hub(1, "dd44", Onay, web()),
            // Same transaction and consent as IYS's first row, another status.
            hub(2, TX, Ret, web()),
        ];
        let c = compare(&iys, &hub_side);
        assert_eq!(c.matched, 0);
        assert_eq!(c.missing_in_hub, vec![0, 1]);
        assert_eq!(c.missing_in_iys, vec![0]);
        assert_eq!(c.mismatched, vec![(1, 0)]);
        assert_eq!(c.drift(), 4);
    }

    #[test]
    fn identical_rows_count_once_on_both_sides() {
        let c = compare(
            &[row(TX, Onay, web()), row(TX, Onay, web())],
            &[hub(1, TX, Onay, web()), hub(2, TX, Onay, web())],
        );
        assert_eq!((c.iys_rows, c.hub_rows, c.matched, c.drift()), (1, 1, 1, 0));
    }

    #[test]
    fn rows_read_like_pulled_movements() {
        let mut r = file_row(TX, Onay, None);
        r.recipient_type = RecipientType::Tacir;
        r.consent_date = None;
        let read = IysRow::new(BRAND, &r, date(D).to_timestamp());
        assert!(
            read.change.is_err(),
            "no source: the ledger cannot record it"
        );
        assert_eq!(read.key.consent_date, date(D), "creationDate stands in");
        let mut email = file_row(TX, Onay, Some(web()));
        email.consent_type = ConsentType::Eposta;
        email.recipient = "Ayse@Example.com".into();
        let read = IysRow::new(BRAND, &email, date(D).to_timestamp());
        assert_eq!(read.key.recipient, "ayse@example.com");
        let change = read.change.unwrap();
        let mut future = file_row(TX, Onay, Some(web()));
        future.consent_date = Some(date("2036-01-01 00:00:00"));
        assert!(
            IysRow::new(BRAND, &future, date(D).to_timestamp())
                .change
                .is_err(),
            "screened like a pulled movement"
        );
        assert_eq!(change.origin, Origin::Reconcile);
        assert_eq!(change.iys_transaction_id.as_deref(), Some(TX));
        assert_eq!(change.iys_creation_date, Some(date(D)));
        assert_eq!(change.key.recipient, read.key.recipient);
    }
}
