//! The batch's reads: everything the decisions need, in a few queries of up to 500 values each.

use super::{
    Content, FastMap as HashMap, FastSet as HashSet, Key, ROWS, Sending, Unsent, in_list,
    subject_of,
};
use crate::sql::{category_from, category_state, key_from, parse, state_from};
use crate::state::OutboxState;
use crate::tx::{Arg, Columns, Row, Tx};
use crate::{Result, SqlStore};
use hub_core::{Change, ConsentState};
use jiff::Timestamp;

/// Above this many values, PostgreSQL reads them as one array (`IN (SELECT * FROM
/// UNNEST($2::text[]))`, a nested loop of primary-key lookups) rather than lists of 500.
const ARRAY_ABOVE: usize = 1000;

impl SqlStore {
    /// The rows `sql` selects for `values`, up to 500 of them per statement: `sql` is given the
    /// statement's placeholder list, bound from `$2` (`$1` is the brand). On PostgreSQL more than
    /// [`ARRAY_ABOVE`] values go as one array in one statement instead: a pull's batches of a few
    /// thousand recipients read that way made the larger pull 15–25 % faster, while one
    /// `= ANY($2::text[])` of a batch's 1,000 recipients had read the consents 30 % and the
    /// outbox 60 % slower than two lists of 500 (ledger-batch, statement log).
    pub(crate) async fn rows_in(
        &self,
        conn: &mut Tx<'_>,
        b: i64,
        values: &[&str],
        sql: impl Fn(&str) -> String,
    ) -> Result<Vec<Row>> {
        if conn.binds_arrays() && values.len() > ARRAY_ABOVE {
            let sql = sql("SELECT * FROM UNNEST($2::text[])");
            return conn.fetch_with_array(&sql, b, values).await;
        }
        let mut rows = Vec::new();
        for chunk in values.chunks(ROWS) {
            let sql = sql(&in_list(2, chunk.len()));
            let mut args: Vec<Arg> = Vec::with_capacity(chunk.len() + 1);
            args.push(b.into());
            args.extend(chunk.iter().map(|v| Arg::from(*v)));
            rows.extend(conn.fetch(&sql, &args).await?);
        }
        Ok(rows)
    }

    /// The current state of every channel consent the batch touches, keyed by (recipient,
    /// recipientType, channel); one query per 500 recipients.
    pub(super) async fn current_states(
        &self,
        conn: &mut Tx<'_>,
        b: i64,
        changes: &[Change],
    ) -> Result<HashMap<Key, ConsentState>> {
        let recipients = distinct(
            changes
                .iter()
                .filter(|c| c.category.is_none())
                .map(|c| c.key.recipient.as_str()),
        );
        let mut states = HashMap::with_capacity(recipients.len());
        let rows = self
            .rows_in(conn, b, &recipients, |list| {
                format!("SELECT * FROM consent WHERE brand_code = $1 AND recipient IN ({list})")
            })
            .await?;
        for row in rows {
            let key = key_from(&row)?;
            states.insert(
                (
                    key.recipient,
                    key.recipient_type.as_str(),
                    key.channel.as_str(),
                ),
                state_from(&row)?,
            );
        }
        Ok(states)
    }

    /// The category consents the batch touches, keyed by (subject, category).
    pub(super) async fn category_states(
        &self,
        conn: &mut Tx<'_>,
        b: i64,
        changes: &[Change],
    ) -> Result<HashMap<(String, String), ConsentState>> {
        let subjects: Vec<String> = changes
            .iter()
            .filter(|c| c.category.is_some())
            .map(subject_of)
            .collect();
        let subjects = distinct(subjects.iter().map(String::as_str));
        let mut states = HashMap::new();
        let rows = self
            .rows_in(conn, b, &subjects, |list| {
                format!(
                    "SELECT * FROM category_consent WHERE brand_code = $1 AND subject IN ({list})"
                )
            })
            .await?;
        for row in rows {
            let c = category_from(&row)?;
            states.insert(
                (c.subject.clone(), c.category.clone()),
                category_state(&c, Timestamp::UNIX_EPOCH),
            );
        }
        Ok(states)
    }

    /// The contents of the recorded events that share a transactionId with the batch's movements
    /// from IYS (pulled, pushed, or the hub's own deliveries).
    pub(super) async fn recorded_movements(
        &self,
        conn: &mut Tx<'_>,
        b: i64,
        changes: &[Change],
    ) -> Result<HashSet<Content>> {
        let txids = distinct(
            changes
                .iter()
                .filter_map(|c| c.iys_transaction_id.as_deref()),
        );
        let mut seen = HashSet::with_capacity(txids.len());
        // Two index lookups, not one `… IN (…) OR … IN (…)`: with the `OR` both databases walked
        // every event of the brand, so each page of a pull cost more as the ledger grew.
        let columns = "recipient, recipient_type, channel, status, consent_date, source, iys_transaction_id, delivered_transaction_id";
        let mut rows = Vec::new();
        if conn.binds_arrays() {
            if !txids.is_empty() {
                let sql = format!(
                    "SELECT {columns} FROM consent_event WHERE brand_code = $1 AND iys_transaction_id = ANY($2::text[]) \
                     UNION ALL SELECT {columns} FROM consent_event WHERE brand_code = $1 AND delivered_transaction_id = ANY($2::text[])"
                );
                rows = conn.fetch_with_array(&sql, b, &txids).await?;
            }
        } else {
            for chunk in txids.chunks(ROWS) {
                let n = chunk.len();
                let sql = format!(
                    "SELECT {columns} FROM consent_event WHERE brand_code = $1 AND iys_transaction_id IN ({}) \
                 UNION ALL SELECT {columns} FROM consent_event WHERE brand_code = ${} AND delivered_transaction_id IN ({})",
                    in_list(2, n),
                    n + 2,
                    in_list(n + 3, n)
                );
                let mut args: Vec<Arg> = Vec::with_capacity(2 * n + 2);
                for _ in 0..2 {
                    args.push(b.into());
                    args.extend(chunk.iter().map(|v| Arg::from(*v)));
                }
                rows.extend(conn.fetch(&sql, &args).await?);
            }
        }
        for row in rows {
            let get = |c: &str| row.text(c);
            let content = (
                get("recipient")?,
                get("recipient_type")?,
                get("channel")?,
                get("status")?,
                get("consent_date")?,
                get("source")?,
            );
            for col in ["iys_transaction_id", "delivered_transaction_id"] {
                if let Some(tx) = row.opt_text(col)? {
                    let (r, t, c, s, d, src) = content.clone();
                    seen.insert((tx, r, t, c, s, d, src));
                }
            }
        }
        Ok(seen)
    }

    /// Unsent outbox rows (pending or held, not leased) of the batch's consents, and the
    /// contents of their rows on the way to IYS (leased, or awaiting a bulk result).
    pub(super) async fn unsent_rows(
        &self,
        conn: &mut Tx<'_>,
        b: i64,
        changes: &[Change],
        now: i64,
    ) -> Result<(HashMap<Key, Vec<Unsent>>, HashSet<Sending>)> {
        let recipients = distinct(
            changes
                .iter()
                .filter(|c| c.category.is_none())
                .map(|c| c.key.recipient.as_str()),
        );
        let mut rows: HashMap<Key, Vec<Unsent>> = HashMap::with_capacity(recipients.len());
        let mut sending: HashSet<Sending> = HashSet::new();
        // By recipient only, so the per-recipient index answers; the few settled rows of these
        // recipients are skipped here rather than scanning every unsent row of the brand.
        let found = self
            .rows_in(conn, b, &recipients, |list| {
                format!(
                    "SELECT id, brand_code, recipient, recipient_type, channel, deadline_ms, status, consent_date, source, state, lease_until_ms, attempts FROM outbox \
                     WHERE brand_code = $1 AND recipient IN ({list}) ORDER BY id"
                )
            })
            .await?;
        for row in found {
            let state: OutboxState = parse("outbox.state", &row.text("state")?)?;
            let leased = row
                .opt_int("lease_until_ms")?
                .is_some_and(|until| until >= now);
            let unsent = matches!(state, OutboxState::Pending | OutboxState::Held);
            let on_its_way = state == OutboxState::AwaitingResult || (unsent && leased);
            if !(unsent || on_its_way) {
                continue;
            }
            let key = key_from(&row)?;
            let key: Key = (
                key.recipient,
                key.recipient_type.as_str(),
                key.channel.as_str(),
            );
            if on_its_way {
                sending.insert((
                    key,
                    row.text("status")?,
                    row.text("consent_date")?,
                    row.text("source")?,
                ));
                continue;
            }
            rows.entry(key).or_default().push(Unsent {
                stored: Some(row.int("id")?),
                planned: None,
                deadline_ms: row.int("deadline_ms")?,
                status: row.text("status")?,
                consent_date: row.text("consent_date")?,
                held: state == OutboxState::Held,
                attempted: state == OutboxState::Pending && row.int("attempts")? > 0,
            });
        }
        Ok((rows, sending))
    }
}

/// The distinct values, sorted.
pub(crate) fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = values.collect();
    v.sort_unstable();
    v.dedup();
    v
}
