//! The batch's automation events: one `change_event` row per status change, and the day's
//! opt-in and opt-out counts, written in the ledger's transaction (the transactional outbox of
//! webhooks, NATS and `GET …/events`).

use std::collections::BTreeMap;

use hub_core::{Change, ConsentState};
use iys::ConsentStatus;
use iys::consent_date::ISTANBUL;

use super::{rows_per_statement, values};
use crate::sql::ms;
use crate::tx::{Arg, Tx};
use crate::{Result, SqlStore};

/// A status change found while deciding a batch.
#[derive(Debug)]
pub(super) struct ChangeRow {
    /// The event's index in the batch (its id is reserved later).
    pub event: usize,
    pub recipient: String,
    pub recipient_type: &'static str,
    pub channel: &'static str,
    pub category: Option<String>,
    pub old: Option<ConsentStatus>,
    pub new: ConsentStatus,
    pub origin: &'static str,
    pub iys_state: Option<&'static str>,
    pub at_ms: i64,
}

impl ChangeRow {
    /// The row for `change` taking a consent from `old` to `new`, if its status changed.
    pub fn of(
        event: usize,
        change: &Change,
        old: Option<&ConsentState>,
        new: Option<&ConsentState>,
    ) -> Option<ChangeRow> {
        let new = new?;
        let old = old.map(|o| o.status);
        if old == Some(new.status) {
            return None;
        }
        Some(ChangeRow {
            event,
            recipient: change.key.recipient.clone(),
            recipient_type: change.key.recipient_type.as_str(),
            channel: change.key.channel.as_str(),
            category: change.category.clone(),
            old,
            new: new.status,
            origin: change.origin.as_str(),
            iys_state: change.category.is_none().then(|| new.iys_state.as_str()),
            at_ms: ms(change.received_at),
        })
    }
}

/// Istanbul's calendar day of an instant.
fn istanbul_day(at_ms: i64) -> String {
    let at = jiff::Timestamp::from_millisecond(at_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ISTANBUL.to_datetime(at).date().to_string()
}

impl SqlStore {
    pub(super) async fn write_changes(
        &self,
        conn: &mut Tx<'_>,
        b: i64,
        rows: &[ChangeRow],
        event_ids: &[i64],
        ids: &[i64],
    ) -> Result<()> {
        let n = rows_per_statement(self.backend);
        let mut args: Vec<Arg> = Vec::with_capacity(rows.len() * 12);
        for (r, id) in rows.iter().zip(ids) {
            args.extend([
                (*id).into(),
                b.into(),
                event_ids.get(r.event).copied().unwrap_or_default().into(),
                (&r.recipient).into(),
                r.recipient_type.into(),
                r.channel.into(),
                (&r.category).into(),
                r.old.map(|s| s.as_str()).into(),
                r.new.as_str().into(),
                r.origin.into(),
                r.iys_state.into(),
                r.at_ms.into(),
            ]);
        }
        conn.insert_rows(
            "INSERT INTO change_event (id, brand_code, event_id, recipient, recipient_type, channel, category, old_status, new_status, origin, iys_state, at_ms)",
            "",
            12,
            n,
            &args,
        )
        .await?;

        // Opt-ins and opt-outs of channel consents, one row per day, channel and origin.
        let mut daily: BTreeMap<(String, &str, &str), (i64, i64)> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.category.is_none()) {
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
    use super::istanbul_day;

    #[test]
    fn days_turn_at_istanbul_midnight() {
        // 2026-03-01T20:59:59Z is 23:59:59 in Istanbul; a second later it is the next day.
        assert_eq!(istanbul_day(1_772_398_799_000), "2026-03-01");
        assert_eq!(istanbul_day(1_772_398_800_000), "2026-03-02");
    }
}
