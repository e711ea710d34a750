//! Recording a batch of changes set-based: a handful of statements per batch, not several per
//! change. Under the brand's lock the batch's current states, already-recorded IYS movements and
//! unsent outbox rows are read in a few queries; `hub_core::decide` runs in memory, change by
//! change, as before; ids are reserved in one query; then events, states, category states and
//! outbox rows are written as multi-row statements. The outcome is exactly that of applying the
//! changes one by one.

mod changes;
mod reads;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

// The batch's maps hash with foldhash (hashbrown's default, seeded per process): std's SipHash
// was 3 % of an import's samples. Their keys are one batch's validated recipients and ids (at
// most 10,000 changes), so a flood of colliding keys could cost a batch time, not the hub.
use hashbrown::{HashMap as FastMap, HashSet as FastSet};

use changes::StatusChange;
pub(crate) use reads::distinct;

use hub_core::chain::ChainHash;
use hub_core::{Change, ConsentState, Mode, Outcome, decide};
use iys::ConsentStatus;
use jiff::Timestamp;

use crate::sql::{EventFields, ms};
use crate::state::{OutboxState, Sql};
use crate::tx::{Arg, Columns, Tx};
use crate::types::{Applied, Brand};
use crate::{Backend, Result, SqlStore, StoreError};

/// Values per `IN (…)` list of the batch's reads.
const ROWS: usize = 500;

/// Rows per multi-row write. Measured (`cargo bench -p hub-store --bench ledger`, 1000-change
/// batches): past a few dozen rows a statement costs more per row through the driver than it
/// saves in round trips, sooner on SQLite (in process, no round trip to save) than on
/// PostgreSQL; 500-row statements ran at a tenth of the speed of 16-row ones on SQLite.
pub(crate) fn rows_per_statement(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 16,
        Backend::Postgres => 64,
    }
}

type Key = (String, &'static str, &'static str);
/// A movement's content: transactionId, recipient, recipientType, channel, status, date, source.
type Content = (String, String, String, String, String, String, String);
/// An outbox row on its way to IYS (being sent, or awaiting a bulk result): the consent, its
/// status, consentDate and source.
type Sending = (Key, String, String, String);

/// An event id before the ids are reserved: `-(index + 1)` in the batch's events.
fn placeholder(index: usize) -> i64 {
    -(index as i64) - 1
}

/// An unsent outbox row of a consent: stored already (`Some(id)`), or planned in this batch.
#[derive(Debug, Clone)]
struct Unsent {
    stored: Option<i64>,
    planned: Option<usize>,
    deadline_ms: i64,
    status: String,
    consent_date: String,
    held: bool,
    /// Sent before without a settled answer (a retry is due): IYS may have acted on it, so
    /// it is never replaced by a newer row (see the coalescing in `record`).
    attempted: bool,
}

/// An outbox row to insert.
#[derive(Debug)]
struct Planned {
    event: usize,
    key: Key,
    status: String,
    consent_date: String,
    source: String,
    state: OutboxState,
    deadline_ms: i64,
    created_ms: i64,
    /// Carried by a later row of this batch (its planned index).
    superseded_by: Option<usize>,
}

/// An event to insert.
#[derive(Debug)]
struct EventRow {
    change: Change,
    outcome: Outcome,
    prev: ChainHash,
    hash: ChainHash,
    /// Set when the event changed its consent's status: an automation event.
    changed: Option<StatusChange>,
}

/// `$start, $start+1, …`: `n` placeholders for an `IN (…)` list.
pub(crate) fn in_list(start: usize, n: usize) -> Arc<str> {
    placeholders((0, start, n, 0), || {
        let mut out = String::with_capacity(n * 6);
        push_placeholders(&mut out, start, n);
        out
    })
}

/// `(…), (…)` of `rows` tuples of `cols` placeholders starting at `$start`.
pub(crate) fn values(start: usize, rows: usize, cols: usize) -> Arc<str> {
    placeholders((1, start, rows, cols), || {
        let mut out = String::with_capacity(rows * (cols * 6 + 4));
        for r in 0..rows {
            if r > 0 {
                out.push_str(", ");
            }
            out.push('(');
            push_placeholders(&mut out, start + r * cols, cols);
            out.push(')');
        }
        out
    })
}

/// Placeholder lists, built once each: they depend only on a few small numbers, and every
/// statement of a batch writes one (hundreds of numbers formatted per statement showed in the
/// profiles of ledger batches). The sizes in use are few; the cache stops growing at a bound.
fn placeholders(key: (u8, usize, usize, usize), build: impl FnOnce() -> String) -> Arc<str> {
    type Cache = RwLock<HashMap<(u8, usize, usize, usize), Arc<str>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    const MOST: usize = 4_096;
    let cache = CACHE.get_or_init(Cache::default);
    if let Some(known) = cache
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return known.clone();
    }
    let built: Arc<str> = build().into();
    let mut cache = cache.write().unwrap_or_else(PoisonError::into_inner);
    if cache.len() < MOST {
        cache.insert(key, built.clone());
    }
    built
}

fn push_placeholders(out: &mut String, start: usize, n: usize) {
    use std::fmt::Write;
    for i in start..start + n {
        if i > start {
            out.push_str(", ");
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "${i}");
    }
}

impl SqlStore {
    /// Records changes inside an open transaction: for each, the event (linked into the brand's
    /// hash chain), the new current state and the outbox row. Movements from IYS already
    /// recorded (same transactionId and content, pulled or delivered) are skipped as `duplicate`.
    pub(crate) async fn record(
        &self,
        conn: &mut Tx<'_>,
        brand: &Brand,
        changes: Vec<Change>,
    ) -> Result<Vec<Applied>> {
        let b = brand.brand_code.0 as i64;
        let head_sql = match self.backend {
            Backend::Sqlite => "SELECT last_hash FROM chain_head WHERE brand_code = $1",
            Backend::Postgres => {
                "SELECT last_hash FROM chain_head WHERE brand_code = $1 FOR UPDATE"
            }
        };
        let mut prev: ChainHash = conn
            .fetch_optional(head_sql, &[b.into()])
            .await?
            // Tolerant: a head altered by hand must not stop the brand's writes (see
            // `from_stored`); verification reports the break.
            .map(|r| {
                r.stored_bytes("last_hash")
                    .map(|b| ChainHash::from_stored(&b))
            })
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("brand {}", brand.brand_code)))?;
        // The mode as it is now, under the lock: the caller's copy may predate a mode switch.
        let mode = self
            .brand_mode(conn, b)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("brand {}", brand.brand_code)))?;
        let now = ms(Timestamp::now());
        if self.backend == Backend::Postgres {
            // The batch's reads are planned for their values: a cached generic plan for a long
            // `IN (…)` list chose full scans as the tables grew (400 ms a batch at 20,000 rows).
            conn.execute("SET LOCAL plan_cache_mode = force_custom_plan", &[])
                .await?;
        }

        // Reads: everything the decisions need, in a few queries.
        let mut states = self.current_states(conn, b, &changes).await?;
        let mut categories = self.category_states(conn, b, &changes).await?;
        let mut seen = self.recorded_movements(conn, b, &changes).await?;
        let (mut unsent, sending) = self.unsent_rows(conn, b, &changes, now).await?;

        // Decisions, change by change, in memory.
        let mut events: Vec<EventRow> = Vec::with_capacity(changes.len());
        let mut planned: Vec<Planned> = Vec::new();
        // Stored rows to supersede (with their carrier's planned index, if any), and to release.
        let mut carried: Vec<(i64, usize)> = Vec::new();
        let mut overtaken: Vec<i64> = Vec::new();
        let mut released: Vec<i64> = Vec::new();
        // The batch's last state of each consent, and whether the consent was stored before.
        let mut final_states: FastMap<Key, (ConsentState, bool)> =
            FastMap::with_capacity(changes.len());
        let mut final_categories: FastMap<(String, String), ConsentState> = FastMap::new();
        let mut applied = Vec::with_capacity(changes.len());
        for ch in changes {
            let key: Key = (
                ch.key.recipient.clone(),
                ch.key.recipient_type.as_str(),
                ch.key.channel.as_str(),
            );
            let consent_date = ch.consent_date.to_string();
            let content = ch.iys_transaction_id.as_ref().map(|tx| {
                (
                    tx.clone(),
                    ch.key.recipient.clone(),
                    key.1.to_owned(),
                    key.2.to_owned(),
                    ch.status.as_str().to_owned(),
                    consent_date.clone(),
                    ch.source.as_str().to_owned(),
                )
            });
            if let Some(c) = &content
                && seen.contains(c)
            {
                applied.push(Applied {
                    event_id: None,
                    outcome: Outcome::Duplicate,
                    state: None,
                    outbox: None,
                });
                continue;
            }
            // The hub's own delivery, read back from IYS before its result was recorded (a
            // bulk result not read yet, single adds not settled yet): the delivery records IYS's
            // transactionId on its own event when it settles; a second event would repeat it.
            if ch.origin.is_from_iys()
                && ch.category.is_none()
                && sending.contains(&(
                    key.clone(),
                    ch.status.as_str().to_owned(),
                    consent_date.clone(),
                    ch.source.as_str().to_owned(),
                ))
            {
                applied.push(Applied {
                    event_id: None,
                    outcome: Outcome::Duplicate,
                    state: None,
                    outbox: None,
                });
                continue;
            }
            let subject = subject_of(&ch);
            let current = match &ch.category {
                None => states.get(&key).cloned(),
                Some(cat) => {
                    categories
                        .get(&(subject.clone(), cat.clone()))
                        .map(|s| ConsentState {
                            updated_at: ch.received_at,
                            ..s.clone()
                        })
                }
            };
            let decision = decide(current.as_ref(), &ch, mode);
            let index = events.len();
            let changed = StatusChange::of(&ch, current.as_ref(), decision.state.as_ref());
            let mut state = decision.state.clone();
            if let Some(s) = &mut state {
                // A new state points at this event; a kept one (older, no-op, hold or
                // knowledge changes) keeps the event that made it, so a delivery of that event
                // still settles the consent.
                if s.last_event_id == 0 {
                    s.last_event_id = placeholder(index);
                }
                match &ch.category {
                    None => {
                        states.insert(key.clone(), s.clone());
                        // The first state of a consent in the batch: `current` is the stored one.
                        final_states
                            .entry(key.clone())
                            .and_modify(|last| last.0 = s.clone())
                            .or_insert_with(|| (s.clone(), current.is_some()));
                    }
                    Some(cat) => {
                        categories.insert((subject.clone(), cat.clone()), s.clone());
                        final_categories.insert((subject, cat.clone()), s.clone());
                    }
                }
            }
            let rows = unsent.entry(key.clone()).or_default();
            if ch.origin.is_from_iys() && ch.category.is_none() {
                // Unsent rows the movement overtook are never sent: older ones, and of the same
                // date those of the same status and, by the tie rule (RET wins), an ONAY tied
                // with IYS's RET (sent, IYS would take it and undo the citizen's RET). In sync
                // mode a held ONAY is released: IYS evidently has the record.
                let ret = ch.status == ConsentStatus::Ret;
                rows.retain(|r| {
                    let stale = r.consent_date < consent_date
                        || (r.consent_date == consent_date
                            && (ret || r.status == ch.status.as_str()));
                    if stale {
                        match (r.stored, r.planned) {
                            (Some(id), _) => overtaken.push(id),
                            (_, Some(p)) => planned[p].state = OutboxState::Superseded,
                            _ => {}
                        }
                    }
                    !stale
                });
                if mode == Mode::Sync {
                    for r in rows.iter_mut().filter(|r| r.held) {
                        r.held = false;
                        match (r.stored, r.planned) {
                            (Some(id), _) => released.push(id),
                            (_, Some(p)) => planned[p].state = OutboxState::Pending,
                            _ => {}
                        }
                    }
                }
            }
            if let (Some(target), Some(s)) = (decision.outbox, &state) {
                // Coalescing: unsent rows of this consent are carried by this newer one, which
                // keeps the earliest deadline among them. A row in flight (leased) is left alone.
                let me = planned.len();
                let mut deadline = s.deadline.map_or(now, ms);
                // A row already sent once without a settled answer stays: the answer may have
                // been lost after IYS took it (a bulk is worked through later), and IYS would
                // then apply it after this newer row. A RET it answered H174 then leaves IYS's
                // date as it was, and the older ONAY wins there. Sent again first (a consent's
                // rows go oldest first), it reaches IYS before this one.
                let (attempted, replaced): (Vec<Unsent>, Vec<Unsent>) =
                    rows.drain(..).partition(|r| r.attempted);
                rows.extend(attempted);
                for r in replaced {
                    deadline = deadline.min(r.deadline_ms);
                    match (r.stored, r.planned) {
                        (Some(id), _) => carried.push((id, me)),
                        (_, Some(p)) => {
                            planned[p].state = OutboxState::Superseded;
                            planned[p].superseded_by = Some(me);
                        }
                        _ => {}
                    }
                }
                let state = OutboxState::for_target(target);
                let held = state == OutboxState::Held;
                rows.push(Unsent {
                    stored: None,
                    planned: Some(me),
                    deadline_ms: deadline,
                    status: ch.status.as_str().to_owned(),
                    consent_date: consent_date.clone(),
                    held,
                    attempted: false,
                });
                planned.push(Planned {
                    event: index,
                    key: key.clone(),
                    status: ch.status.as_str().to_owned(),
                    consent_date: consent_date.clone(),
                    source: ch.source.as_str().to_owned(),
                    state,
                    deadline_ms: deadline,
                    created_ms: ms(ch.received_at),
                    superseded_by: None,
                });
            }
            if let Some(c) = content {
                seen.insert(c);
            }
            let evidence = ch.evidence.as_ref().map(|e| e.to_string());
            let outcome = decision.outcome;
            let hash = EventFields {
                brand: b,
                recipient: &ch.key.recipient,
                recipient_type: key.1,
                channel: key.2,
                category: ch.category.as_deref(),
                profile_id: ch.profile_id.as_deref(),
                status: ch.status.as_str(),
                consent_date: &consent_date,
                source: ch.source.as_str(),
                origin: ch.origin.as_str(),
                actor: ch.actor.as_deref(),
                evidence: evidence.as_deref(),
                hold: ch.hold.map(i64::from),
                outcome: outcome.as_str(),
                received_at_ms: ms(ch.received_at),
                iys_transaction_id: ch.iys_transaction_id.as_deref(),
            }
            .hash(&prev);
            applied.push(Applied {
                event_id: Some(placeholder(index)),
                outcome,
                state: if ch.category.is_none() { state } else { None },
                outbox: decision.outbox.map(OutboxState::for_target),
            });
            events.push(EventRow {
                change: ch,
                outcome,
                prev: std::mem::replace(&mut prev, hash),
                hash,
                changed,
            });
        }
        if events.is_empty() {
            return Ok(applied);
        }

        // Ids of both tables, in one query; they follow the chain's order.
        let [event_ids, outbox_ids] = self
            .reserve_ids(
                conn,
                [("consent_event", events.len()), ("outbox", planned.len())],
            )
            .await?;
        let real = |id: i64| -> i64 {
            match usize::try_from(-id - 1) {
                Ok(i) if id < 0 => event_ids.get(i).copied().unwrap_or(id),
                _ => id,
            }
        };
        for a in &mut applied {
            a.event_id = a.event_id.map(real);
            if let Some(s) = &mut a.state {
                s.last_event_id = real(s.last_event_id);
            }
        }

        // Writes.
        self.insert_events(conn, b, &events, &event_ids).await?;
        let mut upserts: Vec<(Key, (ConsentState, bool))> = final_states.into_iter().collect();
        upserts.sort_by(|x, y| x.0.cmp(&y.0));
        // Consents new to the store are plain INSERTs, the others upserts: under the brand's
        // lock no other writer can store this brand's consents in between, and an upsert costs
        // a uniqueness probe and a confirmation per row (on PostgreSQL 3.7 µs against 2.3 µs a
        // row for a plain INSERT).
        let (stored, new): (Vec<_>, Vec<_>) = upserts.iter().partition(|(_, (_, was))| *was);
        for (rows, tail) in [
            (new, ""),
            (
                stored,
                "ON CONFLICT (brand_code, recipient, recipient_type, channel) DO UPDATE SET status = excluded.status, consent_date = excluded.consent_date, source = excluded.source, last_event_id = excluded.last_event_id, iys_state = excluded.iys_state, iys_error = excluded.iys_error, conflict = excluded.conflict, hold = excluded.hold, deadline_ms = excluded.deadline_ms, updated_at_ms = excluded.updated_at_ms, iys_known = excluded.iys_known",
            ),
        ] {
            self.write_states(conn, b, &rows, &real, tail).await?;
        }
        let mut cats: Vec<((String, String), ConsentState)> =
            final_categories.into_iter().collect();
        cats.sort_by(|x, y| x.0.cmp(&y.0));
        let mut args: Vec<Arg> = Vec::with_capacity(cats.len() * 8);
        for ((subject, category), s) in &cats {
            args.extend([
                b.into(),
                subject.into(),
                category.into(),
                s.status.as_str().into(),
                s.consent_date.to_string().into(),
                s.source.as_str().into(),
                real(s.last_event_id).into(),
                ms(s.updated_at).into(),
            ]);
        }
        conn.insert_rows(
            "INSERT INTO category_consent (brand_code, subject, category, status, consent_date, source, last_event_id, updated_at_ms)",
            "ON CONFLICT (brand_code, subject, category) DO UPDATE SET status = excluded.status, consent_date = excluded.consent_date, source = excluded.source, last_event_id = excluded.last_event_id, updated_at_ms = excluded.updated_at_ms",
            8,
            rows_per_statement(self.backend),
            &args,
        )
        .await?;
        self.count_changes(conn, b, events.iter().filter_map(|e| e.changed.as_ref()))
            .await?;
        self.write_outbox(
            conn,
            b,
            now,
            &planned,
            &outbox_ids,
            &event_ids,
            &carried,
            &overtaken,
            &released,
        )
        .await?;
        if let Some(last) = event_ids.last() {
            conn.execute(
                "UPDATE chain_head SET last_hash = $1, last_event_id = $2 WHERE brand_code = $3",
                &[prev.into(), (*last).into(), b.into()],
            )
            .await?;
        }
        Ok(applied)
    }

    /// Fresh ids for each of `tables` (table, how many), ascending. SQLite has one writer at a
    /// time, so the next ids are known; PostgreSQL hands them out from the tables' sequences, all
    /// in one round trip (each as one comma-separated text, not a row per id). Each
    /// sequence is looked up once (`OFFSET 0` keeps the planner from inlining the lookup into
    /// every `nextval`): looked up per id, 3,000 ids took 23–30 ms of a 1,000-change batch.
    async fn reserve_ids<const N: usize>(
        &self,
        conn: &mut Tx<'_>,
        tables: [(&'static str, usize); N],
    ) -> Result<[Vec<i64>; N]> {
        let mut ids: [Vec<i64>; N] = std::array::from_fn(|_| Vec::new());
        match self.backend {
            Backend::Sqlite => {
                for ((table, n), ids) in tables.iter().zip(ids.iter_mut()) {
                    if *n == 0 {
                        continue;
                    }
                    let sql = format!(
                        "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0), COALESCE((SELECT MAX(id) FROM {table}), 0)) AS last"
                    );
                    let last = conn
                        .fetch_optional(&sql, &[])
                        .await?
                        .map(|r| r.int("last"))
                        .transpose()?
                        .unwrap_or_default();
                    *ids = (1..=*n as i64).map(|i| last + i).collect();
                }
            }
            Backend::Postgres => {
                if tables.iter().all(|(_, n)| *n == 0) {
                    return Ok(ids);
                }
                let columns: Vec<String> = tables
                    .iter()
                    .enumerate()
                    .map(|(i, (table, _))| {
                        format!(
                            "(SELECT string_agg(nextval(s.seq)::text, ',') FROM (SELECT pg_get_serial_sequence('{table}', 'id')::regclass AS seq OFFSET 0) AS s CROSS JOIN generate_series(1, ${})) AS t{i}",
                            i + 1
                        )
                    })
                    .collect();
                let args: Vec<Arg> = tables.iter().map(|(_, n)| (*n as i64).into()).collect();
                let row = conn
                    .fetch_optional(&format!("SELECT {}", columns.join(", ")), &args)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt("no ids reserved".into()))?;
                for (i, ((table, n), ids)) in tables.iter().zip(ids.iter_mut()).enumerate() {
                    let list = row.opt_text(&format!("t{i}"))?;
                    *ids = list
                        .unwrap_or_default()
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(|s| {
                            s.parse::<i64>()
                                .map_err(|e| crate::sql::corrupt(&format!("{table} id"), e))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    if ids.len() != *n {
                        return Err(StoreError::Corrupt(format!(
                            "{} ids of {table} reserved, {n} asked",
                            ids.len()
                        )));
                    }
                    ids.sort_unstable();
                }
            }
        }
        Ok(ids)
    }

    /// Consents' states as rows of `consent`, `tail` after the VALUES (the upsert, if any).
    async fn write_states(
        &self,
        conn: &mut Tx<'_>,
        b: i64,
        rows: &[&(Key, (ConsentState, bool))],
        real: &impl Fn(i64) -> i64,
        tail: &str,
    ) -> Result<()> {
        let mut args: Vec<Arg> = Vec::with_capacity(rows.len() * 15);
        for ((recipient, rtype, channel), (s, _)) in rows.iter().copied() {
            args.extend([
                b.into(),
                recipient.into(),
                (*rtype).into(),
                (*channel).into(),
                s.status.as_str().into(),
                s.consent_date.to_string().into(),
                s.source.as_str().into(),
                real(s.last_event_id).into(),
                s.iys_state.as_str().into(),
                (&s.iys_error).into(),
                i64::from(s.conflict).into(),
                i64::from(s.hold).into(),
                s.deadline.map(ms).into(),
                ms(s.updated_at).into(),
                i64::from(s.iys_known).into(),
            ]);
        }
        conn.insert_rows(
            "INSERT INTO consent (brand_code, recipient, recipient_type, channel, status, consent_date, source, last_event_id, iys_state, iys_error, conflict, hold, deadline_ms, updated_at_ms, iys_known)",
            tail,
            15,
            rows_per_statement(self.backend),
            &args,
        )
        .await
    }

    async fn insert_events(
        &self,
        conn: &mut Tx<'_>,
        b: i64,
        events: &[EventRow],
        ids: &[i64],
    ) -> Result<()> {
        let mut args: Vec<Arg> = Vec::with_capacity(events.len() * 22);
        for (e, id) in events.iter().zip(ids) {
            let ch = &e.change;
            args.extend([
                (*id).into(),
                b.into(),
                (&ch.key.recipient).into(),
                ch.key.recipient_type.as_str().into(),
                ch.key.channel.as_str().into(),
                (&ch.category).into(),
                (&ch.profile_id).into(),
                ch.status.as_str().into(),
                ch.consent_date.to_string().into(),
                ch.source.as_str().into(),
                ch.origin.as_str().into(),
                (&ch.actor).into(),
                ch.evidence.as_ref().map(|e| e.to_string()).into(),
                ch.hold.map(i64::from).into(),
                e.outcome.as_str().into(),
                ms(ch.received_at).into(),
                (&ch.iys_transaction_id).into(),
                (&e.prev).into(),
                (&e.hash).into(),
                // Not in the hash: like a delivery's, it is IYS's bookkeeping, not the change.
                ch.iys_creation_date.map(|d| d.to_string()).into(),
                e.changed.map(|c| c.changed_from()).into(),
                e.changed.and_then(|c| c.iys_state).into(),
            ]);
        }
        conn.insert_rows(
            "INSERT INTO consent_event (id, brand_code, recipient, recipient_type, channel, category, profile_id, status, consent_date, source, origin, actor, evidence, hold, outcome, received_at_ms, iys_transaction_id, prev_hash, hash, iys_creation_date, changed_from, changed_iys_state)",
            "",
            22,
            rows_per_statement(self.backend),
            &args,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_outbox(
        &self,
        conn: &mut Tx<'_>,
        b: i64,
        now: i64,
        planned: &[Planned],
        ids: &[i64],
        event_ids: &[i64],
        carried: &[(i64, usize)],
        overtaken: &[i64],
        released: &[i64],
    ) -> Result<()> {
        let id_of = |p: usize| ids.get(p).copied().unwrap_or_default();
        let mut args: Vec<Arg> = Vec::with_capacity(planned.len() * 15);
        for (i, p) in planned.iter().enumerate() {
            args.extend([
                id_of(i).into(),
                b.into(),
                event_ids.get(p.event).copied().unwrap_or_default().into(),
                (&p.key.0).into(),
                p.key.1.into(),
                p.key.2.into(),
                (&p.status).into(),
                (&p.consent_date).into(),
                (&p.source).into(),
                p.state.as_str().into(),
                0_i64.into(),
                p.created_ms.into(),
                p.deadline_ms.into(),
                p.created_ms.into(),
                p.superseded_by.map(id_of).into(),
            ]);
        }
        conn.insert_rows(
            "INSERT INTO outbox (id, brand_code, event_id, recipient, recipient_type, channel, status, consent_date, source, state, attempts, next_attempt_at_ms, deadline_ms, created_at_ms, superseded_by)",
            "",
            15,
            rows_per_statement(self.backend),
            &args,
        )
        .await?;
        // Stored rows carried by a new row (and the rows they carried before) point at it.
        // A row is read unleased, but a claim (which does not take the brand's lock) may lease
        // it before it is marked here: such a row is on its way to IYS and stays as it is; the
        // new row waits behind it (a consent's rows are sent oldest first), so IYS gets both in
        // order. `now` is the instant the rows were read unleased at.
        for chunk in carried.chunks(ROWS) {
            for (sql, unleased) in [
                (
                    format!(
                        "WITH v(id, c) AS (VALUES {}) UPDATE outbox SET superseded_by = (SELECT c FROM v WHERE v.id = outbox.superseded_by) WHERE brand_code = $1 AND superseded_by IN (SELECT id FROM v)",
                        values(2, chunk.len(), 2)
                    ),
                    false,
                ),
                (
                    format!(
                        "WITH v(id, c) AS (VALUES {}) UPDATE outbox SET state = {}, superseded_by = (SELECT c FROM v WHERE v.id = outbox.id) WHERE brand_code = $1 AND id IN (SELECT id FROM v) \
                         AND (lease_until_ms IS NULL OR lease_until_ms < $2)",
                        values(3, chunk.len(), 2),
                        OutboxState::Superseded.sql()
                    ),
                    true,
                ),
            ] {
                let mut args: Vec<Arg> = vec![b.into()];
                if unleased {
                    args.push(now.into());
                }
                for (id, carrier) in chunk {
                    args.extend([(*id).into(), id_of(*carrier).into()]);
                }
                conn.execute(&sql, &args).await?;
            }
        }
        for (rows, sql) in [
            (
                overtaken,
                format!(
                    "UPDATE outbox SET state = {} WHERE brand_code = $1 AND (lease_until_ms IS NULL OR lease_until_ms < $2) AND id IN",
                    OutboxState::Superseded.sql()
                ),
            ),
            (
                released,
                format!(
                    "UPDATE outbox SET state = {}, next_attempt_at_ms = $2 WHERE brand_code = $1 AND id IN",
                    OutboxState::Pending.sql()
                ),
            ),
        ] {
            let first = if sql.contains("$2") { 3 } else { 2 };
            for chunk in rows.chunks(ROWS) {
                let q = format!("{sql} ({})", in_list(first, chunk.len()));
                let mut args: Vec<Arg> = vec![b.into()];
                if first == 3 {
                    args.push(now.into());
                }
                args.extend(chunk.iter().map(|id| Arg::from(*id)));
                conn.execute(&q, &args).await?;
            }
        }
        Ok(())
    }
}

/// The subject of a category consent: the profile when given, else the recipient.
pub(crate) fn subject_of(change: &Change) -> String {
    match &change.profile_id {
        Some(p) => format!("profile:{p}"),
        None => change.key.recipient.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::{in_list, values};

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(&*in_list(2, 3), "$2, $3, $4");
        assert_eq!(&*in_list(5, 0), "");
        assert_eq!(&*values(1, 2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(&*values(3, 1, 1), "($3)");
    }
}
