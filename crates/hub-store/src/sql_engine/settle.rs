//! Settling deliveries: how each outbox row ended, and what it tells about its consent.
//!
//! Set-based: the outcome of every row is worked out in memory, then each table is written with
//! one `UPDATE … FROM (VALUES …)` per chunk of rows, not several statements per row (a bulk
//! request's 1,000 rows were 5,000 statements, half the dispatcher's cycle on PostgreSQL).

use std::collections::HashMap;

use hub_core::{BrandCode, IysState, Mode};
use iys::{ConsentStatus, HCode};
use jiff::Timestamp;

use crate::engine::{OutboxItem, Settlement};
use crate::record::{rows_per_statement, values};
use crate::sql::ms;
use crate::state::{OutboxState, Sql};
use crate::tx::{Arg, Columns, Tx};
use crate::{Result, SqlStore};

/// A consent's key: recipient, recipientType, channel.
type Key = (String, &'static str, &'static str);

/// What settling one row writes.
#[derive(Debug)]
struct Outcome {
    item_id: i64,
    event_id: i64,
    key: Key,
    state: OutboxState,
    last_error: Option<String>,
    next_ms: Option<i64>,
    counts_attempt: bool,
    /// requestId, subRequestId, index: for a row submitted in a bulk request.
    submitted: Option<(String, String, i64)>,
    /// The consent's IYS state and error, when the row still carries its current state.
    consent_state: Option<(IysState, Option<String>)>,
    /// IYS is known to hold the consent.
    known: bool,
    /// The event's delivery (transactionId, creationDate) or refusal (error text).
    delivered: Option<(String, Option<String>)>,
    refused: Option<String>,
}

/// How a settlement ends its row (before the sync-mode rule): the outbox state, the last error,
/// the consent's IYS state and error (when the row decides it), and whether IYS is known to
/// hold the consent.
type Ending = (
    OutboxState,
    Option<String>,
    Option<(IysState, Option<String>)>,
    bool,
);

fn ending(item: &OutboxItem, s: &Settlement) -> Ending {
    match s {
        Settlement::Delivered { .. } => {
            (OutboxState::Done, None, Some((IysState::InIys, None)), true)
        }
        Settlement::Refused { code, .. } => match code.parse::<HCode>() {
            // IYS already holds this RET.
            Ok(HCode::H174) if item.status == ConsentStatus::Ret => (
                OutboxState::Done,
                Some(code.clone()),
                Some((IysState::InIys, None)),
                true,
            ),
            // A RET for a recipient IYS never had: nothing to withdraw, not an error.
            Ok(HCode::H175) if item.status == ConsentStatus::Ret => (
                OutboxState::Done,
                Some(code.clone()),
                Some((IysState::NotInIys, None)),
                false,
            ),
            _ => (
                OutboxState::Failed,
                Some(code.clone()),
                Some((IysState::Rejected, Some(code.clone()))),
                false,
            ),
        },
        Settlement::Retry { error, .. } => (OutboxState::Pending, Some(error.clone()), None, false),
        Settlement::Submitted { .. } | Settlement::StillQueued { .. } => {
            (OutboxState::AwaitingResult, None, None, false)
        }
        Settlement::Paused { .. } => (OutboxState::Pending, None, None, false),
    }
}

fn outcome(item: &OutboxItem, s: &Settlement, now: Timestamp) -> Outcome {
    let (state, last_error, consent_state, known) = ending(item, s);
    let next_ms = match s {
        Settlement::Retry { at, .. } => Some(ms(*at)),
        Settlement::Submitted { poll_at, .. } | Settlement::StillQueued { poll_at } => {
            Some(ms(*poll_at))
        }
        Settlement::Paused { until } => Some(ms(*until)),
        // The refusal time is kept for the 24-hour error figures.
        Settlement::Refused { .. } => Some(ms(now)),
        Settlement::Delivered { .. } => None,
    };
    let submitted = match s {
        Settlement::Submitted {
            request_id,
            sub_request_id,
            index,
            ..
        } => Some((request_id.clone(), sub_request_id.clone(), *index)),
        _ => None,
    };
    let delivered = match s {
        Settlement::Delivered {
            transaction_id,
            creation_date,
        } => Some((transaction_id.clone(), creation_date.map(|d| d.to_string()))),
        _ => None,
    };
    let refused = match s {
        Settlement::Refused { code, message } => Some(format!("{code}: {message}")),
        _ => None,
    };
    Outcome {
        item_id: item.id,
        event_id: item.event_id,
        key: (
            item.recipient.clone(),
            item.recipient_type.as_str(),
            item.channel.as_str(),
        ),
        state,
        last_error,
        next_ms,
        counts_attempt: !matches!(
            s,
            Settlement::StillQueued { .. } | Settlement::Paused { .. }
        ),
        submitted,
        consent_state,
        known,
        delivered,
        refused,
    }
}

/// A `VALUES` row's values.
type ValuesRow = Vec<Arg<'static>>;

fn key_values(k: &Key) -> [Arg<'static>; 3] {
    [k.0.clone().into(), k.1.into(), k.2.into()]
}

impl SqlStore {
    pub(crate) async fn settle(
        &self,
        brand: BrandCode,
        owner: &str,
        settlements: Vec<(OutboxItem, Settlement)>,
        now: Timestamp,
    ) -> Result<()> {
        let _w = self.writer().await;
        let b = brand.0 as i64;
        let mut tx = self.begin_writing().await?;
        self.lock_brand(&mut tx, b).await?;
        // The mode as it is now, under the lock: the brand may have switched to sync mode while
        // these rows were on their way.
        let sync = self
            .brand_mode(&mut Tx::Any(&mut tx, self.backend), b)
            .await?
            == Some(Mode::Sync);
        let mut outcomes: Vec<Outcome> = settlements
            .iter()
            .map(|(item, s)| outcome(item, s, now))
            .collect();
        // Sync mode never gives IYS a new record: an ONAY that comes back unsent (a retry, a
        // pause) after a switch to sync mode is held, as the switch holds the rows it finds
        // waiting, unless IYS is known to have the consent. If a later change came while it was
        // on its way (the consent's state is no longer its event's), it is superseded instead:
        // held, it would no longer keep the later row waiting behind it, and would reach IYS
        // after it once released.
        if sync {
            let unsent: Vec<usize> = settlements
                .iter()
                .zip(&outcomes)
                .enumerate()
                .filter(|(_, ((item, _), o))| {
                    o.state == OutboxState::Pending && item.status == ConsentStatus::Onay
                })
                .map(|(i, _)| i)
                .collect();
            if !unsent.is_empty() {
                let recipients: Vec<&str> = unsent
                    .iter()
                    .filter_map(|&i| outcomes.get(i))
                    .map(|o| o.key.0.as_str())
                    .collect();
                let consents = self.known_and_current(&mut tx, b, &recipients).await?;
                for i in unsent {
                    if let Some(o) = outcomes.get_mut(i) {
                        o.state = match consents.get(&o.key) {
                            Some((true, _)) => OutboxState::Pending,
                            Some((false, last)) if *last != o.event_id => OutboxState::Superseded,
                            _ => OutboxState::Held,
                        };
                        // The consent its row carries says so: held is not on its way to IYS,
                        // which a lenient check would take `pending` for.
                        if o.state == OutboxState::Held {
                            o.consent_state = Some((IysState::Held, None));
                        }
                    }
                }
            }
        }
        let n = rows_per_statement(self.backend);

        // The outbox rows, each only while this owner still holds its lease.
        let mut settled = std::collections::HashSet::new();
        for chunk in outcomes.chunks(n) {
            let rows: Vec<ValuesRow> = chunk
                .iter()
                .map(|o| {
                    let (request, sub, index) = match &o.submitted {
                        Some((r, s, i)) => (Some(r.clone()), Some(s.clone()), Some(*i)),
                        None => (None, None, None),
                    };
                    vec![
                        Arg::from(o.item_id),
                        Arg::from(o.state.as_str()),
                        Arg::from(o.last_error.clone()),
                        Arg::Int(o.next_ms),
                        Arg::from(i64::from(o.counts_attempt)),
                        Arg::from(request),
                        Arg::from(sub),
                        Arg::Int(index),
                        Arg::Int(o.submitted.as_ref().map(|_| ms(now))),
                    ]
                })
                .collect();
            let sql = format!(
                "WITH v(id, state, err, next_ms, attempt, req, sub, idx, submitted) AS (VALUES {}) \
                 UPDATE outbox SET state = v.state, lease_owner = NULL, lease_until_ms = NULL, \
                 last_error = CASE WHEN v.state = {} THEN outbox.last_error ELSE v.err END, \
                 next_attempt_at_ms = COALESCE(v.next_ms, outbox.next_attempt_at_ms), \
                 attempts = outbox.attempts + v.attempt, \
                 request_id = COALESCE(v.req, outbox.request_id), \
                 sub_request_id = COALESCE(v.sub, outbox.sub_request_id), \
                 bulk_index = COALESCE(v.idx, outbox.bulk_index), \
                 submitted_at_ms = COALESCE(v.submitted, outbox.submitted_at_ms) \
                 FROM v WHERE outbox.id = v.id AND outbox.brand_code = ${} AND outbox.lease_owner = ${} \
                 RETURNING outbox.id",
                values(1, rows.len(), 9),
                OutboxState::AwaitingResult.sql(),
                rows.len() * 9 + 1,
                rows.len() * 9 + 2,
            );
            let mut args: Vec<Arg> = rows.into_iter().flatten().collect();
            args.extend([b.into(), owner.into()]);
            for r in Tx::Any(&mut tx, self.backend).fetch(&sql, &args).await? {
                settled.insert(r.int("id")?);
            }
        }
        let lost = outcomes.len().saturating_sub(settled.len());
        if lost > 0 {
            tracing::warn!(
                rows = lost,
                "not settled: the rows' lease passed to another owner"
            );
        }
        outcomes.retain(|o| settled.contains(&o.item_id));

        // Held rows: their consent waits for IYS to know the recipient.
        let held: Vec<ValuesRow> = outcomes
            .iter()
            .filter(|o| o.state == OutboxState::Held)
            .map(|o| {
                let mut row = key_values(&o.key).to_vec();
                row.push(Arg::from(o.event_id));
                row
            })
            .collect();
        self.update_from(
            &mut tx,
            b,
            held,
            "r, t, c, ev",
            &format!(
                "UPDATE consent SET iys_state = {} FROM v WHERE consent.recipient = v.r AND consent.recipient_type = v.t \
                 AND consent.channel = v.c AND consent.last_event_id = v.ev AND consent.iys_state = {} AND consent.brand_code = ",
                IysState::Held.sql(),
                IysState::Pending.sql()
            ),
        )
        .await?;

        // The events: IYS's transactionId of a delivery, or the refusal.
        let delivered: Vec<ValuesRow> = outcomes
            .iter()
            .filter_map(|o| {
                let (tx_id, created) = o.delivered.clone()?;
                Some(vec![
                    Arg::from(o.event_id),
                    Arg::from(tx_id),
                    Arg::from(created),
                ])
            })
            .collect();
        self.update_from(
            &mut tx,
            b,
            delivered,
            "id, tx, created",
            "UPDATE consent_event SET delivered_transaction_id = v.tx, iys_creation_date = v.created, iys_error = NULL \
             FROM v WHERE consent_event.id = v.id AND consent_event.brand_code = ",
        )
        .await?;
        let refused: Vec<ValuesRow> = outcomes
            .iter()
            .filter_map(|o| Some(vec![Arg::from(o.event_id), Arg::from(o.refused.clone()?)]))
            .collect();
        self.update_from(
            &mut tx,
            b,
            refused,
            "id, err",
            "UPDATE consent_event SET iys_error = v.err FROM v WHERE consent_event.id = v.id AND consent_event.brand_code = ",
        )
        .await?;

        // The consents: known to IYS, and their IYS state while the row carries their current
        // state (a later change's row decides it otherwise).
        let consents: Vec<ValuesRow> = outcomes
            .iter()
            .filter(|o| o.known || o.consent_state.is_some())
            .map(|o| {
                let (state, error) = match &o.consent_state {
                    Some((s, e)) => (Some(s.as_str().to_owned()), e.clone()),
                    None => (None, None),
                };
                let mut row = key_values(&o.key).to_vec();
                row.extend([
                    Arg::from(o.event_id),
                    Arg::from(i64::from(o.known)),
                    Arg::from(state),
                    Arg::from(error),
                ]);
                row
            })
            .collect();
        self.update_from(
            &mut tx,
            b,
            consents,
            "r, t, c, ev, known, st, err",
            "UPDATE consent SET \
             iys_known = CASE WHEN v.known = 1 THEN 1 ELSE consent.iys_known END, \
             iys_state = CASE WHEN v.st IS NOT NULL AND consent.last_event_id = v.ev THEN v.st \
             WHEN v.known = 1 AND consent.iys_state = 'held' THEN 'pending' ELSE consent.iys_state END, \
             iys_error = CASE WHEN v.st IS NOT NULL AND consent.last_event_id = v.ev THEN v.err ELSE consent.iys_error END, \
             deadline_ms = CASE WHEN v.st IS NOT NULL AND v.st <> 'held' AND consent.last_event_id = v.ev THEN NULL ELSE consent.deadline_ms END \
             FROM v WHERE consent.recipient = v.r AND consent.recipient_type = v.t AND consent.channel = v.c \
             AND (v.known = 1 OR (v.st IS NOT NULL AND consent.last_event_id = v.ev)) AND consent.brand_code = ",
        )
        .await?;

        // Sync mode: a consent IYS is now seen to have (the hub's own delivery was accepted)
        // releases its held rows, as a movement pulled from IYS does; one the delivered change
        // overtook (an older consentDate) is superseded instead, as IYS would refuse it (H178).
        // Left held, such a row had no way out but a later movement from IYS.
        if sync {
            let known: Vec<ValuesRow> = settlements
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| o.known)
                .map(|((item, _), o)| {
                    let mut row = key_values(&o.key).to_vec();
                    row.extend([
                        Arg::from(item.consent_date.to_string()),
                        Arg::from(ms(now) + 1_000),
                    ]);
                    row
                })
                .collect();
            let key_match =
                "outbox.recipient = v.r AND outbox.recipient_type = v.t AND outbox.channel = v.c";
            for update in [
                format!(
                    "UPDATE outbox SET state = {} FROM v WHERE {key_match} AND outbox.state = {} AND outbox.consent_date < v.d AND outbox.brand_code = ",
                    OutboxState::Superseded.sql(),
                    OutboxState::Held.sql()
                ),
                format!(
                    "UPDATE outbox SET state = {}, next_attempt_at_ms = v.at FROM v WHERE {key_match} AND outbox.state = {} AND outbox.brand_code = ",
                    OutboxState::Pending.sql(),
                    OutboxState::Held.sql()
                ),
            ] {
                self.update_from(&mut tx, b, known.clone(), "r, t, c, d, at", &update)
                    .await?;
            }
        }

        // The key's next movement waits a second: IYS gives movements of one address and type in
        // the same second one shared transactionId.
        let answered: Vec<ValuesRow> = outcomes
            .iter()
            .filter(|o| o.consent_state.is_some())
            .map(|o| {
                let mut row = key_values(&o.key).to_vec();
                row.push(Arg::from(ms(now) + 1_000));
                row
            })
            .collect();
        self.update_from(
            &mut tx,
            b,
            answered,
            "r, t, c, at",
            &format!(
                "UPDATE outbox SET next_attempt_at_ms = v.at FROM v WHERE outbox.recipient = v.r AND outbox.recipient_type = v.t \
                 AND outbox.channel = v.c AND outbox.state = {} AND outbox.next_attempt_at_ms < v.at AND outbox.brand_code = ",
                OutboxState::Pending.sql()
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Runs `update` (an `UPDATE … FROM v WHERE … AND <table>.brand_code = `, completed with the
    /// brand's placeholder) over `rows` as `WITH v(<columns>) AS (VALUES …)`, a chunk at a time.
    async fn update_from(
        &self,
        tx: &mut sqlx::AnyConnection,
        b: i64,
        rows: Vec<ValuesRow>,
        columns: &str,
        update: &str,
    ) -> Result<()> {
        let width = columns.split(',').count();
        let n = rows_per_statement(self.backend);
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<ValuesRow> = rows.by_ref().take(n).collect();
            let sql = format!(
                "WITH v({columns}) AS (VALUES {}) {update}${}",
                values(1, chunk.len(), width),
                chunk.len() * width + 1
            );
            let mut args: Vec<Arg> = chunk.into_iter().flatten().collect();
            args.push(b.into());
            Tx::Any(tx, self.backend).execute(&sql, &args).await?;
        }
        Ok(())
    }

    /// For the given recipients' consents: whether IYS is known to have each, and its current
    /// event.
    async fn known_and_current(
        &self,
        tx: &mut sqlx::AnyConnection,
        b: i64,
        recipients: &[&str],
    ) -> Result<HashMap<Key, (bool, i64)>> {
        let mut found = HashMap::new();
        let recipients = crate::record::distinct(recipients.iter().copied());
        let rows = self
            .rows_in(&mut Tx::Any(tx, self.backend), b, &recipients, |list| {
                format!(
                    "SELECT recipient, recipient_type, channel, iys_known, last_event_id FROM consent \
                     WHERE brand_code = $1 AND recipient IN ({list})"
                )
            })
            .await?;
        for row in rows {
            let t = row.text("recipient_type")?;
            let c = row.text("channel")?;
            // Keys are compared with the items' own static names.
            let (Ok(t), Ok(c)) = (
                t.parse::<iys::RecipientType>(),
                c.parse::<hub_core::Channel>(),
            ) else {
                continue;
            };
            found.insert(
                (row.text("recipient")?, t.as_str(), c.as_str()),
                (row.int("iys_known")? != 0, row.int("last_event_id")?),
            );
        }
        Ok(found)
    }
}
