//! Daily reconciliation: the movements of one Istanbul calendar day, their summary and file,
//! and the provider's agreement.

use std::collections::BTreeMap;

use jiff::civil::Date;

use iys::wire::{ChangeSource, ChangeStat, ChangeSummary, DailyCsvRow, SourceCounts};
use iys::{ConsentDate, ConsentStatus, ConsentType, RecipientType};

use super::{IysState, partition};

impl IysState {
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
}

/// Epoch seconds of 00:00 in Istanbul on `date`.
pub fn day_start(date: Date) -> i64 {
    ConsentDate::from_civil(date.to_datetime(jiff::civil::Time::midnight()))
        .to_timestamp()
        .as_second()
}
