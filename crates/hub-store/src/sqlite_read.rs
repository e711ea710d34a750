//! Send-time checks on SQLite read through rusqlite, on read-only connections of the same
//! database file, called in place.
//!
//! sqlx's SQLite driver runs every statement on a worker thread and hands rows back through a
//! channel, converted to `AnyRow`: a point lookup cost about 19 µs, six times rusqlite's 3 µs
//! called in place (measured on this project's 2-core machine: 52,000 vs 320,000 lookups/s from
//! four tasks), and a single check costs little else. These readers see exactly what is
//! committed (WAL gives each statement a consistent snapshot): nothing is cached, so a RET is
//! denied by the very next check. The ledger's writes go through the native writer (`tx.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hub_core::{BrandCode, Channel, SendState};
use iys::RecipientType;
use rusqlite::{Connection, OpenFlags};

use crate::check_queue::{Ask, CheckQueue, Failed};
use crate::mirror::Mirrors;
use crate::sql::parse;
use crate::{Result, StoreError};

/// Recipients per statement (SQLite allows 32,766 parameters).
const CHUNK: usize = 500;
/// Idle connections kept.
const KEEP: usize = 8;
/// How much of the database file a reader maps (address space, not memory: pages come from the
/// OS page cache either way).
const READER_MMAP_BYTES: i64 = 1 << 32;

/// Read-only connections to one SQLite file, opened on demand and reused.
#[derive(Debug)]
pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    pub(crate) mirrors: Arc<Mirrors>,
}

/// A read-only connection to the file, set up for lookups.
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    c.set_prepared_statement_cache_capacity(64);
    // Lookups land all over a large table: pages mapped from the file are read without a system
    // call and a copy each (measured: campaign filter on 1,000,000 consents, see BENCHMARKS.md).
    c.pragma_update(None, "mmap_size", READER_MMAP_BYTES)?;
    Ok(c)
}

/// The file a `sqlite:` URL names; none for an in-memory database.
pub(crate) fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return None;
    }
    Some(PathBuf::from(path))
}

impl Readers {
    /// Readers for a `sqlite:` URL naming a file; none for an in-memory database, which other
    /// connections cannot see.
    pub(crate) fn for_url(url: &str) -> Option<Readers> {
        let path = sqlite_file(url)?;
        Some(Readers {
            mirrors: Arc::new(Mirrors::new(path.clone())),
            path,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => open_reader(&self.path)?,
        };
        let result = f(&conn);
        // A connection whose statement failed is dropped rather than reused.
        if result.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < KEEP {
                idle.push(conn);
            }
        }
        result
    }

    /// The send states of `recipients` on one channel, in their order (`None` where the hub has
    /// no consent). Rows are matched to positions through the chunk's recipients sorted in
    /// SQLite's own text order (bytes), so no recipient is copied or hashed.
    pub(crate) fn send_states_aligned(
        &self,
        brand: BrandCode,
        channel: Channel,
        recipient_type: RecipientType,
        recipients: &[String],
    ) -> Result<Vec<Option<SendState>>> {
        self.with(|conn| {
            if let Some(states) =
                self.mirrors
                    .send_states(conn, brand, channel, recipient_type, recipients)?
            {
                return Ok(states);
            }
            lookup(conn, brand, channel, recipient_type, recipients)
        })
    }

    /// Several small checks in one read transaction: each read transaction costs SQLite a
    /// shared-memory lock and unlock (two `fcntl` calls when no other reader of this process
    /// holds the slot), which in a single check outweighed the lookup itself.
    /// Each check gets its own answer: one whose stored consent cannot be read fails alone.
    fn send_states_together(
        &self,
        asks: &[Ask<Vec<Option<SendState>>>],
    ) -> Result<Vec<Result<Vec<Option<SendState>>>>> {
        self.with(|conn| {
            conn.execute_batch("BEGIN")?;
            let answers = asks
                .iter()
                .map(|a| lookup(conn, a.brand, a.channel, a.recipient_type, &a.recipients))
                .collect();
            conn.execute_batch("COMMIT")?;
            Ok(answers)
        })
    }
}

/// The send states of `recipients` read from the consent table, in their order.
fn lookup(
    conn: &Connection,
    brand: BrandCode,
    channel: Channel,
    recipient_type: RecipientType,
    recipients: &[String],
) -> Result<Vec<Option<SendState>>> {
    {
        {
            let mut states = vec![None; recipients.len()];
            let mut order: Vec<usize> = Vec::with_capacity(CHUNK);
            for (c, chunk) in recipients.chunks(CHUNK).enumerate() {
                let sql = format!(
                    "SELECT recipient, status, source, iys_state, hold FROM consent WHERE brand_code = ? AND channel = ? AND recipient_type = ? AND recipient IN ({})",
                    marks(chunk.len())
                );
                let mut st = conn.prepare_cached(&sql)?;
                let (brand, channel, recipient_type) =
                    (brand.0 as i64, channel.as_str(), recipient_type.as_str());
                let mut params: Vec<&dyn rusqlite::ToSql> = vec![&brand, &channel, &recipient_type];
                params.extend(chunk.iter().map(|r| r as &dyn rusqlite::ToSql));
                order.clear();
                order.extend(0..chunk.len());
                let key = |i: &usize| chunk.get(*i).map(String::as_str).unwrap_or_default();
                order.sort_unstable_by(|a, b| key(a).cmp(key(b)));
                let mut rows = st.query(params.as_slice())?;
                while let Some(row) = rows.next()? {
                    let text = |i: usize| row.get_ref(i)?.as_str().map_err(rusqlite::Error::from);
                    let recipient = text(0)?;
                    let source: iys::Source = parse("consent.source", text(2)?)?;
                    let state = SendState {
                        status: parse("consent.status", text(1)?)?,
                        from_iys: source.is_iys(),
                        iys_state: parse("consent.iys_state", text(3)?)?,
                        hold: row.get::<_, i64>(4)? != 0,
                    };
                    // Every position the recipient holds (a list may name it twice).
                    let first = order.partition_point(|i| key(i) < recipient);
                    for i in order.iter().skip(first).take_while(|i| key(i) == recipient) {
                        if let Some(slot) = states.get_mut(c * CHUNK + i) {
                            *slot = Some(state);
                        }
                    }
                }
            }
            Ok(states)
        }
    }
}

impl Readers {
    pub(crate) fn category_statuses(
        &self,
        brand: BrandCode,
        category: &str,
        subjects: &[String],
    ) -> Result<HashMap<String, iys::ConsentStatus>> {
        self.with(|conn| {
            let mut statuses = HashMap::new();
            for chunk in subjects.chunks(CHUNK) {
                let sql = format!(
                    "SELECT subject, status FROM category_consent WHERE brand_code = ? AND category = ? AND subject IN ({})",
                    marks(chunk.len())
                );
                let mut st = conn.prepare_cached(&sql)?;
                let brand = brand.0 as i64;
                let mut params: Vec<&dyn rusqlite::ToSql> = vec![&brand, &category];
                params.extend(chunk.iter().map(|s| s as &dyn rusqlite::ToSql));
                let mut rows = st.query(params.as_slice())?;
                while let Some(row) = rows.next()? {
                    let subject: String = row.get(0)?;
                    let status: String = row.get(1)?;
                    statuses.insert(subject, parse("category_consent.status", &status)?);
                }
            }
            Ok(statuses)
        })
    }
}

impl Readers {
    /// A page of consents: the statement and values of [`crate::listing::consent_page`].
    pub(crate) fn consents(
        &self,
        sql: &str,
        binds: &[crate::listing::Bind],
    ) -> Result<Vec<crate::ConsentRow>> {
        use crate::listing::Bind;
        self.with(|conn| {
            let mut st = conn.prepare_cached(sql)?;
            let params: Vec<&dyn rusqlite::ToSql> = binds
                .iter()
                .map(|b| match b {
                    Bind::Int(i) => i as &dyn rusqlite::ToSql,
                    Bind::Text(t) => t as &dyn rusqlite::ToSql,
                })
                .collect();
            let mut rows = st.query(params.as_slice())?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(consent_row(row)?);
            }
            Ok(out)
        })
    }
}

/// A consent from the columns of [`crate::listing::CONSENT_COLUMNS`], in their order.
fn consent_row(row: &rusqlite::Row<'_>) -> Result<crate::ConsentRow> {
    consent_row_fields(row).map_err(|e| match row.get_ref(1).map(|v| v.as_str()) {
        Ok(Ok(recipient)) => crate::sql::in_row_of(e, recipient),
        _ => e,
    })
}

fn consent_row_fields(row: &rusqlite::Row<'_>) -> Result<crate::ConsentRow> {
    let text =
        |i: usize| -> Result<&str> { Ok(row.get_ref(i)?.as_str().map_err(rusqlite::Error::from)?) };
    let flag = |i: usize| -> Result<bool> { Ok(row.get::<_, i64>(i)? != 0) };
    Ok(crate::ConsentRow {
        key: hub_core::ConsentKey {
            brand: BrandCode(row.get::<_, i64>(0)? as u64),
            recipient: text(1)?.to_owned(),
            recipient_type: parse("consent.recipient_type", text(2)?)?,
            channel: parse("consent.channel", text(3)?)?,
        },
        state: hub_core::ConsentState {
            status: parse("consent.status", text(4)?)?,
            consent_date: parse("consent.consent_date", text(5)?)?,
            source: parse("consent.source", text(6)?)?,
            last_event_id: row.get(7)?,
            iys_state: parse("consent.iys_state", text(8)?)?,
            iys_error: row.get(9)?,
            conflict: flag(10)?,
            hold: flag(11)?,
            deadline: row.get::<_, Option<i64>>(12)?.map(crate::sql::ts),
            iys_known: flag(13)?,
            updated_at: crate::sql::ts(row.get(14)?),
        },
    })
}

/// Checks of up to this many recipients are combined; larger ones read on their own.
pub(crate) const COMBINED: usize = 16;
/// Checks combined into one read transaction at most.
const PER_TRANSACTION: usize = 256;

/// Small checks that arrive together read in one transaction (see
/// [`Readers::send_states_together`] and [`CheckQueue`]). Each check still reads what is
/// committed when its transaction starts, which is after it asked.
#[derive(Debug, Clone)]
pub(crate) struct Combiner {
    pub(crate) queue: CheckQueue<Vec<Option<SendState>>>,
}

impl Combiner {
    /// Starts the combiner's task on the current runtime; it ends when the store is dropped.
    pub(crate) fn start(readers: Arc<Readers>) -> Combiner {
        let queue = CheckQueue::start(PER_TRANSACTION, StoreError::Sqlite, move |asks| {
            let readers = readers.clone();
            async move { answer(&readers, asks) }
        });
        Combiner { queue }
    }
}

/// Answers a batch of checks from one read transaction.
fn answer(readers: &Readers, asks: Vec<Ask<Vec<Option<SendState>>>>) {
    match readers.send_states_together(&asks) {
        Ok(answers) => {
            for (ask, states) in asks.into_iter().zip(answers) {
                // A check whose caller went away needs no answer.
                let _ = ask.answer.send(states.map_err(|e| Failed::from(&e)));
            }
        }
        Err(e) => {
            let failed = Failed::from(&e);
            for ask in asks {
                let _ = ask.answer.send(Err(failed.clone()));
            }
        }
    }
}

fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e.to_string())
    }
}
