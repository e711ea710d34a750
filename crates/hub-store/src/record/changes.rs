//! The batch's automation events: each status change is marked on its own history row (the
//! `change_event` view that webhooks, NATS and `GET …/events` read, migration 0016/0018), and
//! the day's opt-in and opt-out counts are written in the ledger's transaction.

use std::collections::BTreeMap;

use hub_core::{Change, ConsentState};
use iys::ConsentStatus;
use iys::consent_date::ISTANBUL;

use super::{rows_per_statement, values};
use crate::tx::{Arg, Tx};
use crate::{Result, SqlStore};

/// A status change found while deciding a batch: what its history row records about it, and
/// what the day's counts need.
#[derive(Debug, Clone, Copy)]
pub(super) struct StatusChange {
    /// The status before, `None` for a consent's first record.
    pub old: Option<ConsentStatus>,
    pub new: ConsentStatus,
    /// The consent's IYS state after the change; `None` for a category's consent.
    pub iys_state: Option<&'static str>,
    /// A channel's consent (not a category's): these are counted per day.
    pub counted: bool,
    pub channel: &'static str,
    pub origin: &'static str,
    pub at_ms: i64,
}

impl StatusChange {
    /// The change `change` makes taking a consent from `old` to `new`, if its status changed.
    pub fn of(
        change: &Change,
        old: Option<&ConsentState>,
        new: Option<&ConsentState>,
    ) -> Option<StatusChange> {
        let new = new?;
        let old = old.map(|o| o.status);
        if old == Some(new.status) {
            return None;
        }
        let counted = change.category.is_none();
        Some(StatusChange {
            old,
            new: new.status,
            iys_state: counted.then(|| new.iys_state.as_str()),
            counted,
            channel: change.key.channel.as_str(),
            origin: change.origin.as_str(),
            at_ms: crate::sql::ms(change.received_at),
        })
    }

    /// The history row's `changed_from`: the status before, '' for a first record.
    pub fn changed_from(&self) -> &'static str {
        self.old.map_or("", |s| s.as_str())
    }
}

/// Istanbul's calendar day of an instant.
fn istanbul_day(at_ms: i64) -> String {
    let at = jiff::Timestamp::from_millisecond(at_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ISTANBUL.to_datetime(at).date().to_string()
}

impl SqlStore {
    /// The day's opt-in and opt-out counts of the batch's status changes.
    pub(super) async fn count_changes(
        &self,
        conn: &mut Tx<'_>,
        b: i64,
        rows: impl Iterator<Item = &StatusChange>,
    ) -> Result<()> {
        let n = rows_per_statement(self.backend);
        // Opt-ins and opt-outs of channel consents, one row per day, channel and origin.
        let mut daily: BTreeMap<(String, &str, &str), (i64, i64)> = BTreeMap::new();
        for r in rows.filter(|r| r.counted) {
            let counts = daily
                .entry((istanbul_day(r.at_ms), r.channel, r.origin))
                .or_default();
            match r.new {
                ConsentStatus::Onay => counts.0 += 1,
                ConsentStatus::Ret => counts.1 += 1,
            }
        }
        let daily: Vec<_> = daily.into_iter().collect();
        for chunk in daily.chunks(n) {
            let q = format!(
                "INSERT INTO consent_daily (brand_code, day, channel, origin, opt_ins, opt_outs) VALUES {} \
                 ON CONFLICT (brand_code, day, channel, origin) DO UPDATE SET opt_ins = consent_daily.opt_ins + excluded.opt_ins, opt_outs = consent_daily.opt_outs + excluded.opt_outs",
                values(1, chunk.len(), 6)
            );
            let mut args: Vec<Arg> = Vec::with_capacity(chunk.len() * 6);
            for ((day, channel, origin), (ins, outs)) in chunk {
                args.extend([
                    b.into(),
                    day.into(),
                    (*channel).into(),
                    (*origin).into(),
                    (*ins).into(),
                    (*outs).into(),
                ]);
            }
            conn.execute(&q, &args).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use hub_core::{BrandCode, Channel, ConsentState, IysState, Mode, Origin, decide};
    use iys::{ConsentStatus, ConsentType};

    use super::{StatusChange, istanbul_day};
    use crate::testkit;

    /// The `change_event` view shows a marked event's own status as the new one: every change
    /// `decide` makes, in either mode, from any origin and over any stored state, moves a
    /// consent to the change's status or keeps the stored one.
    #[test]
    fn a_status_change_is_to_the_events_status() {
        let statuses = [ConsentStatus::Onay, ConsentStatus::Ret];
        let dates = [
            "2026-03-02 09:00:00",
            "2026-03-02 10:00:00",
            "2026-03-02 11:00:00",
        ];
        let states = [
            IysState::InIys,
            IysState::Pending,
            IysState::Held,
            IysState::Rejected,
            IysState::NotInIys,
        ];
        let origins = [
            Origin::Api,
            Origin::Import,
            Origin::IysPull,
            Origin::Reconcile,
        ];
        let channels = [Channel::Iys(ConsentType::Mesaj), Channel::Push];
        let mut currents: Vec<Option<ConsentState>> = vec![None];
        for status in statuses {
            for state in states {
                for known in [false, true] {
                    currents.push(Some(ConsentState {
                        status,
                        consent_date: testkit::date(dates[1]),
                        source: iys::Source::Hs(iys::HsSource::HsWeb),
                        last_event_id: 7,
                        iys_state: state,
                        iys_error: None,
                        conflict: false,
                        hold: false,
                        deadline: None,
                        iys_known: known,
                        updated_at: jiff::Timestamp::UNIX_EPOCH,
                    }));
                }
            }
        }
        let mut changes_seen = 0;
        for current in &currents {
            for status in statuses {
                for date in dates {
                    for origin in origins {
                        for channel in &channels {
                            for category in [None, Some("kampanya".to_owned())] {
                                for mode in [Mode::Sync, Mode::Integrator] {
                                    let mut change = testkit::change(
                                        BrandCode(1),
                                        "+905320000001",
                                        *channel,
                                        status,
                                        testkit::date(date),
                                    );
                                    change.origin = origin;
                                    change.category = category.clone();
                                    let decision = decide(current.as_ref(), &change, mode);
                                    let Some(c) = StatusChange::of(
                                        &change,
                                        current.as_ref(),
                                        decision.state.as_ref(),
                                    ) else {
                                        continue;
                                    };
                                    changes_seen += 1;
                                    assert_eq!(c.new, status, "{current:?} {change:?} {mode:?}");
                                    assert_eq!(c.old, current.as_ref().map(|s| s.status));
                                    assert_eq!(c.counted, category.is_none());
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(changes_seen > 100, "{changes_seen}");
    }

    #[test]
    fn days_turn_at_istanbul_midnight() {
        // 2026-03-01T20:59:59Z is 23:59:59 in Istanbul; a second later it is the next day.
        assert_eq!(istanbul_day(1_772_398_799_000), "2026-03-01");
        assert_eq!(istanbul_day(1_772_398_800_000), "2026-03-02");
    }
}
