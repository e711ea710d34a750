//! An in-memory mirror of a brand's send states, for lists of thousands of recipients (the
//! campaign filter, batch checks), on a SQLite file and on PostgreSQL.
//!
//! A lookup by the consent table's key costs a B-tree descent, about 2.5 µs on this project's
//! machine on either database: the campaign filter spent half its time there (BENCHMARKS.md).
//! The mirror answers from a hash table instead, and stays exact: before every list it applies
//! the `consent_touch` log (filled by triggers on every write of a consent, by any connection,
//! process or instance) from where it stopped, in one snapshot. On SQLite (migration 0012) one
//! write transaction runs at a time, so the log's order is commit order. On PostgreSQL
//! (migration 0016, `pg_mirror.rs`) the trigger draws the seq under the brand's lock, so each
//! brand's rows are in its commit order. Either way a mirror that applied the log up to a seq
//! equals the table as of that commit: a RET committed before a list is read is seen by that
//! list, as it would be by the table.
//!
//! Memory: a Turkish mobile number (`+90` and ten digits) is one `u64` (number and state) in a
//! table kept at most 7/8 full, about 10 to 18 bytes per consent; any other recipient is a boxed
//! string and a byte, about 60. Mirrors hold at most [`Mirrors::budget`] consents in all (a
//! brand beyond it reads the table), and one unused for [`IDLE`] is dropped.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hashbrown::HashTable;
use hub_core::{BrandCode, Channel, IysState, SendState};
use iys::{ConsentStatus, RecipientType};
use rusqlite::Connection;

use crate::sql::parse;
use crate::{Result, StoreError};

/// Lists of at least this many recipients use (and ask for) a brand's mirror; smaller ones read
/// the table, which costs less than the log's three statements.
pub(crate) const MIRROR_MIN: usize = 1_000;
/// Consents all mirrors may hold by default (about 300 MiB of Turkish mobile numbers).
pub const DEFAULT_BUDGET: usize = 20_000_000;
/// A mirror unused this long is dropped.
pub(crate) const IDLE: Duration = Duration::from_secs(15 * 60);
/// Keys a mirror applies from the log before a list at most; further behind (a long import
/// since the last list), building it again costs less memory than holding the log's rows.
pub(crate) const CATCH_UP: usize = 200_000;
/// After a failed or declined build, lists read the table this long before another try.
const RETRY: Duration = Duration::from_secs(60);
/// A consent whose stored state cannot be read (a value outside its set, written by hand):
/// never a packed state (its place, 31, is outside [`IysState::ALL`]). A list that names it
/// fails as the table's read would, and only such a list.
const UNREADABLE: u8 = 0xFF;

/// Where mirrors are built from and kept up to date.
#[derive(Debug)]
enum Source {
    Sqlite(PathBuf),
    /// The log is `consent_touch` of migration 0016 (see `pg_mirror.rs`).
    Postgres(sqlx::PgPool),
}

/// The brands' mirrors of one SQLite file or PostgreSQL database.
#[derive(Debug)]
pub(crate) struct Mirrors {
    source: Source,
    budget: std::sync::atomic::AtomicUsize,
    /// See [`CATCH_UP`].
    catch_up: std::sync::atomic::AtomicUsize,
    brands: Mutex<HashMap<BrandCode, Slot>>,
}

#[derive(Debug)]
enum Slot {
    Building,
    Ready(Arc<BrandMirror>),
    /// Too large for the budget, or the build failed: lists read the table until then.
    Declined(Instant),
}

#[derive(Debug)]
struct BrandMirror {
    state: RwLock<Mirror>,
    used: Mutex<Instant>,
}

#[derive(Debug, Default)]
pub(crate) struct Mirror {
    /// The last `consent_touch.seq` applied.
    pub(crate) seen: i64,
    tables: HashMap<(Channel, RecipientType), Table>,
    pub(crate) consents: usize,
}

/// One channel and recipient type of a brand.
#[derive(Debug, Default)]
struct Table {
    /// `+90` numbers: the ten digits shifted left by 8, or'ed with the packed state.
    phones: HashTable<u64>,
    others: hashbrown::HashMap<Box<str>, u8>,
    /// What is wrong with each recipient stored as [`UNREADABLE`].
    unreadable: hashbrown::HashMap<Box<str>, String>,
}

/// Hashes a phone entry by its number (the state byte left out).
fn phone_hash(hasher: &hashbrown::DefaultHashBuilder, number: u64) -> u64 {
    hasher.hash_one(number)
}

/// The ten digits after `+90`, for a recipient written exactly so.
fn tr_number(recipient: &str) -> Option<u64> {
    let digits = recipient.strip_prefix("+90")?.as_bytes();
    if digits.len() != 10 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// A send state in a byte: status, from IYS, hold, and the IYS state's place in [`IysState::ALL`].
fn pack(s: SendState) -> u8 {
    // Exhaustive, in `IysState::ALL`'s order: a new state cannot pack silently as another
    // (the round-trip test checks the order).
    let place: u8 = match s.iys_state {
        IysState::InIys => 0,
        IysState::Pending => 1,
        IysState::Held => 2,
        IysState::Rejected => 3,
        IysState::NotInIys => 4,
        IysState::LocalOnly => 5,
    };
    u8::from(s.status == ConsentStatus::Onay)
        | u8::from(s.from_iys) << 1
        | u8::from(s.hold) << 2
        | place << 3
}

fn unpack(b: u8) -> Result<SendState> {
    let iys_state = IysState::ALL
        .get(usize::from(b >> 3))
        .copied()
        .ok_or_else(|| StoreError::Corrupt(format!("a mirrored send state {b:#x}")))?;
    Ok(SendState {
        status: if b & 1 == 1 {
            ConsentStatus::Onay
        } else {
            ConsentStatus::Ret
        },
        from_iys: b & 2 != 0,
        hold: b & 4 != 0,
        iys_state,
    })
}

impl Table {
    fn get(&self, hasher: &hashbrown::DefaultHashBuilder, recipient: &str) -> Option<u8> {
        match tr_number(recipient) {
            Some(n) => self
                .phones
                .find(phone_hash(hasher, n), |e| e >> 8 == n)
                .map(|e| *e as u8),
            None => self.others.get(recipient).copied(),
        }
    }

    /// Sets or (with `None`) removes a recipient's state; answers the change in the count.
    fn set(
        &mut self,
        hasher: &hashbrown::DefaultHashBuilder,
        recipient: &str,
        state: Option<u8>,
    ) -> isize {
        // A mended row is readable again.
        if !self.unreadable.is_empty() && state != Some(UNREADABLE) {
            self.unreadable.remove(recipient);
        }
        match (tr_number(recipient), state) {
            (Some(n), Some(b)) => {
                let entry = n << 8 | u64::from(b);
                match self.phones.entry(
                    phone_hash(hasher, n),
                    |e| e >> 8 == n,
                    |e| phone_hash(hasher, e >> 8),
                ) {
                    hashbrown::hash_table::Entry::Occupied(mut o) => {
                        *o.get_mut() = entry;
                        0
                    }
                    hashbrown::hash_table::Entry::Vacant(v) => {
                        v.insert(entry);
                        1
                    }
                }
            }
            (Some(n), None) => match self
                .phones
                .find_entry(phone_hash(hasher, n), |e| e >> 8 == n)
            {
                Ok(o) => {
                    o.remove();
                    -1
                }
                Err(_) => 0,
            },
            (None, Some(b)) => match self.others.insert(recipient.into(), b) {
                Some(_) => 0,
                None => 1,
            },
            (None, None) => -isize::from(self.others.remove(recipient).is_some()),
        }
    }
}

impl Mirror {
    /// An empty mirror that has applied the log up to `seen`.
    pub(crate) fn at(seen: i64) -> Mirror {
        Mirror {
            seen,
            ..Mirror::default()
        }
    }

    /// About how much memory the tables take (hashbrown keeps at most 7/8 of its buckets full;
    /// each bucket has a control byte).
    fn bytes(&self) -> usize {
        self.tables
            .values()
            .map(|t| {
                let phones = t.phones.capacity() * 8 / 7 * (8 + 1);
                let others = t.others.capacity() * 8 / 7 * (24 + 1)
                    + t.others.keys().map(|k| k.len()).sum::<usize>();
                phones + others
            })
            .sum()
    }

    pub(crate) fn set(
        &mut self,
        hasher: &hashbrown::DefaultHashBuilder,
        key: (Channel, RecipientType),
        recipient: &str,
        state: Stored,
    ) {
        let table = self.tables.entry(key).or_default();
        let change = match state {
            Stored::State(b) => table.set(hasher, recipient, Some(b)),
            Stored::Gone => table.set(hasher, recipient, None),
            Stored::Unreadable(why) => {
                let change = table.set(hasher, recipient, Some(UNREADABLE));
                table.unreadable.insert(recipient.into(), why);
                change
            }
        };
        self.consents = self.consents.saturating_add_signed(change);
    }
}

/// A consent as the mirror keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stored {
    /// A packed send state.
    State(u8),
    /// The consent's state cannot be read; what is wrong with it.
    Unreadable(String),
    /// No consent (deleted).
    Gone,
}

impl Stored {
    /// A consent's stored columns as the mirror keeps them: a value outside its set makes it
    /// unreadable, to be answered apart, rather than failing the whole mirror.
    pub(crate) fn of(status: &str, source: &str, iys_state: &str, hold: i64) -> Stored {
        match stored_state(status, source, iys_state, hold) {
            Ok(b) => Stored::State(b),
            Err(e) => Stored::Unreadable(e.to_string()),
        }
    }
}

/// The hasher every mirror's phone table uses (one random seed per process).
pub(crate) fn hasher() -> &'static hashbrown::DefaultHashBuilder {
    static HASHER: std::sync::OnceLock<hashbrown::DefaultHashBuilder> = std::sync::OnceLock::new();
    HASHER.get_or_init(Default::default)
}

/// A consent's send state from its stored columns.
pub(crate) fn stored_state(status: &str, source: &str, iys_state: &str, hold: i64) -> Result<u8> {
    let source: iys::Source = parse("consent.source", source)?;
    Ok(pack(SendState {
        status: parse("consent.status", status)?,
        from_iys: source.is_iys(),
        iys_state: parse("consent.iys_state", iys_state)?,
        hold: hold != 0,
    }))
}

/// Parses a channel and recipient type, reusing the last row's when the text is the same (a
/// brand's rows come grouped by recipient, mostly on one channel).
#[derive(Default)]
pub(crate) struct KeyParser {
    last: Option<(String, String, (Channel, RecipientType))>,
}

impl KeyParser {
    pub(crate) fn key(
        &mut self,
        recipient_type: &str,
        channel: &str,
    ) -> Result<(Channel, RecipientType)> {
        if let Some((t, c, key)) = &self.last
            && t == recipient_type
            && c == channel
        {
            return Ok(*key);
        }
        let key = (
            parse("consent.channel", channel)?,
            parse("consent.recipient_type", recipient_type)?,
        );
        self.last = Some((recipient_type.to_owned(), channel.to_owned(), key));
        Ok(key)
    }

    /// [`KeyParser::key`], or `None` (logged) for a row whose channel or recipient type is
    /// outside its set: no list asks for such a key, as no read of the table finds it.
    pub(crate) fn readable_key(
        &mut self,
        brand: BrandCode,
        recipient: &str,
        recipient_type: &str,
        channel: &str,
    ) -> Option<(Channel, RecipientType)> {
        match self.key(recipient_type, channel) {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::warn!(brand = %brand, recipient, error = %e, "send-state mirror: a consent whose key cannot be read is left out");
                None
            }
        }
    }
}

fn text<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r str> {
    Ok(row.get_ref(i)?.as_str().map_err(rusqlite::Error::from)?)
}

/// Runs `f` in one read transaction (one snapshot of the file).
fn snapshot<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    conn.execute_batch("BEGIN")?;
    let result = f(conn);
    // A read transaction has nothing to keep: ending it cannot lose anything.
    let ended = conn.execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
    let value = result?;
    ended?;
    Ok(value)
}

/// The largest seq of the log (0 when it is empty).
fn newest(conn: &Connection) -> Result<i64> {
    Ok(
        conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM consent_touch", [], |r| {
            r.get(0)
        })?,
    )
}

/// Reads a brand's send states; `None` when they are more than `room` consents.
fn build(conn: &Connection, brand: BrandCode, room: usize) -> Result<Option<Mirror>> {
    snapshot(conn, |conn| {
        let mut mirror = Mirror::at(newest(conn)?);
        let mut st = conn.prepare(
            "SELECT recipient, recipient_type, channel, status, source, iys_state, hold FROM consent WHERE brand_code = ?",
        )?;
        let mut rows = st.query([brand.0 as i64])?;
        let mut keys = KeyParser::default();
        let hasher = hasher();
        while let Some(row) = rows.next()? {
            if mirror.consents >= room {
                return Ok(None);
            }
            let recipient = text(row, 0)?;
            let Some(key) = keys.readable_key(brand, recipient, text(row, 1)?, text(row, 2)?)
            else {
                continue;
            };
            let state = Stored::of(text(row, 3)?, text(row, 4)?, text(row, 5)?, row.get(6)?);
            mirror.set(hasher, key, recipient, state);
        }
        Ok(Some(mirror))
    })
}

/// What the log says happened to a brand's consents after `seen`.
pub(crate) struct Touched {
    /// The log's newest seq in the same snapshot.
    pub(crate) newest: i64,
    /// In seq order.
    pub(crate) rows: Vec<TouchedRow>,
}

/// A logged write and the consent's state now.
pub(crate) struct TouchedRow {
    pub(crate) seq: i64,
    pub(crate) key: (Channel, RecipientType),
    pub(crate) recipient: String,
    pub(crate) state: Stored,
}

/// Reads the log after `seen`; `None` when rows after `seen` were pruned or are more than
/// `most` keys (the mirror is too far behind and must be built again).
fn touched(conn: &Connection, brand: BrandCode, seen: i64, most: usize) -> Result<Option<Touched>> {
    snapshot(conn, |conn| {
        let oldest: Option<i64> =
            conn.query_row("SELECT MIN(seq) FROM consent_touch", [], |r| r.get(0))?;
        if oldest.is_some_and(|o| o > seen.saturating_add(1)) {
            return Ok(None);
        }
        let newest = newest(conn)?;
        let mut rows = Vec::new();
        if newest > seen {
            let mut st = conn.prepare_cached(
                "SELECT t.seq, t.recipient, t.recipient_type, t.channel, c.status, c.source, c.iys_state, c.hold \
                 FROM consent_touch t LEFT JOIN consent c ON c.brand_code = t.brand_code \
                 AND c.recipient = t.recipient AND c.recipient_type = t.recipient_type AND c.channel = t.channel \
                 WHERE t.seq > ?1 AND t.brand_code = ?2 ORDER BY t.seq",
            )?;
            let mut found = st.query(rusqlite::params![seen, brand.0 as i64])?;
            let mut keys = KeyParser::default();
            while let Some(row) = found.next()? {
                if rows.len() >= most {
                    return Ok(None);
                }
                let recipient = text(row, 1)?;
                let Some(key) = keys.readable_key(brand, recipient, text(row, 2)?, text(row, 3)?)
                else {
                    continue;
                };
                let state = match row
                    .get_ref(4)?
                    .as_str_or_null()
                    .map_err(rusqlite::Error::from)?
                {
                    Some(status) => Stored::of(status, text(row, 5)?, text(row, 6)?, row.get(7)?),
                    None => Stored::Gone,
                };
                rows.push(TouchedRow {
                    seq: row.get(0)?,
                    key,
                    recipient: recipient.to_owned(),
                    state,
                });
            }
        }
        Ok(Some(Touched { newest, rows }))
    })
}

impl Mirrors {
    pub(crate) fn new(path: PathBuf) -> Mirrors {
        Mirrors::from(Source::Sqlite(path))
    }

    /// Mirrors of a PostgreSQL database, read through `pool`.
    pub(crate) fn postgres(pool: sqlx::PgPool) -> Mirrors {
        Mirrors::from(Source::Postgres(pool))
    }

    fn from(source: Source) -> Mirrors {
        Mirrors {
            source,
            budget: DEFAULT_BUDGET.into(),
            catch_up: CATCH_UP.into(),
            brands: Mutex::default(),
        }
    }

    /// Sets how many consents all mirrors may hold (0: none is built).
    pub(crate) fn set_budget(&self, consents: usize) {
        self.budget
            .store(consents, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sets how many of the log's keys a mirror applies before a list at most (see
    /// [`CATCH_UP`]).
    pub(crate) fn set_catch_up(&self, keys: usize) {
        self.catch_up
            .store(keys, std::sync::atomic::Ordering::Relaxed);
    }

    fn catch_up(&self) -> usize {
        self.catch_up.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn budget(&self) -> usize {
        self.budget.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<BrandCode, Slot>> {
        self.brands.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The brand's mirror when it is built; otherwise starts building it (on a thread of its
    /// own with a connection of its own on SQLite, as a task on PostgreSQL) and answers `None`.
    fn ready(self: &Arc<Self>, brand: BrandCode) -> Option<Arc<BrandMirror>> {
        let mut slots = self.slots();
        let now = Instant::now();
        // Mirrors unused for long give their memory back.
        slots.retain(|b, slot| match slot {
            Slot::Ready(m) => *b == brand || m.last_used().elapsed() < IDLE,
            Slot::Declined(until) => *until > now,
            Slot::Building => true,
        });
        match slots.get(&brand) {
            Some(Slot::Ready(m)) => {
                m.touch();
                return Some(m.clone());
            }
            Some(Slot::Building | Slot::Declined(_)) => return None,
            None => {}
        }
        let held: usize = slots
            .values()
            .map(|s| match s {
                Slot::Ready(m) => m.consents(),
                _ => 0,
            })
            .sum();
        let room = self.budget().saturating_sub(held);
        if room == 0 {
            return None;
        }
        slots.insert(brand, Slot::Building);
        drop(slots);
        let mirrors = self.clone();
        let spawned = match &self.source {
            Source::Sqlite(path) => {
                let path = path.clone();
                std::thread::Builder::new()
                    .name("iyshub-mirror".into())
                    .spawn(move || {
                        let started = Instant::now();
                        let built = crate::sqlite_read::open_reader(&path)
                            .and_then(|conn| build(&conn, brand, room));
                        mirrors.built(brand, room, started, built);
                    })
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Source::Postgres(pool) => {
                let pool = pool.clone();
                tokio::runtime::Handle::try_current()
                    .map(|runtime| {
                        runtime.spawn(async move {
                            let started = Instant::now();
                            let built = crate::pg_mirror::build(&pool, brand, room).await;
                            mirrors.built(brand, room, started, built);
                        });
                    })
                    .map_err(|e| e.to_string())
            }
        };
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "send-state mirror: could not start its build");
            self.slots().insert(brand, Slot::Declined(now + RETRY));
        }
        None
    }

    /// Keeps a finished build (or the reason there is none) in the brand's slot.
    fn built(
        &self,
        brand: BrandCode,
        room: usize,
        started: Instant,
        built: Result<Option<Mirror>>,
    ) {
        let slot = match built {
            Ok(Some(mirror)) => {
                tracing::info!(
                    brand = brand.0,
                    consents = mirror.consents,
                    bytes = mirror.bytes(),
                    seconds = started.elapsed().as_secs_f64(),
                    "send-state mirror built"
                );
                Slot::Ready(Arc::new(BrandMirror {
                    state: RwLock::new(mirror),
                    used: Mutex::new(Instant::now()),
                }))
            }
            Ok(None) => {
                tracing::info!(
                    brand = brand.0,
                    room,
                    "send-state mirror: the brand holds more consents than the budget has room for; lists read the table"
                );
                Slot::Declined(Instant::now() + RETRY)
            }
            Err(e) => {
                tracing::warn!(brand = brand.0, error = %e, "send-state mirror: build failed; lists read the table");
                Slot::Declined(Instant::now() + RETRY)
            }
        };
        self.slots().insert(brand, slot);
    }

    /// Forgets the brand's mirror, so the next list builds it again.
    fn drop_brand(&self, brand: BrandCode) {
        self.slots().remove(&brand);
    }

    /// The send states of `recipients` in their order, from the brand's mirror brought up to
    /// date on `conn`; `None` when the brand has no mirror ready (the caller reads the table).
    pub(crate) fn send_states(
        self: &Arc<Self>,
        conn: &Connection,
        brand: BrandCode,
        channel: Channel,
        recipient_type: RecipientType,
        recipients: &[String],
    ) -> Result<Option<Vec<Option<SendState>>>> {
        let Some((mirror, seen)) = self.mirror_for(brand, recipients.len()) else {
            return Ok(None);
        };
        let touched = touched(conn, brand, seen, self.catch_up())?;
        self.answer(
            &mirror,
            brand,
            seen,
            touched,
            (channel, recipient_type, recipients),
        )
    }

    /// The brand's mirror and the log's seq it has applied, for a list of `len` recipients;
    /// none for a short list, without budget, or while it builds.
    fn mirror_for(
        self: &Arc<Self>,
        brand: BrandCode,
        len: usize,
    ) -> Option<(Arc<BrandMirror>, i64)> {
        if len < MIRROR_MIN || self.budget() == 0 {
            return None;
        }
        let mirror = self.ready(brand)?;
        let seen = mirror.read().seen;
        Some((mirror, seen))
    }

    /// [`Mirrors::send_states`] on PostgreSQL: the log is read through the source's pool.
    pub(crate) async fn send_states_pg(
        self: &Arc<Self>,
        brand: BrandCode,
        channel: Channel,
        recipient_type: RecipientType,
        recipients: &[String],
    ) -> Result<Option<Vec<Option<SendState>>>> {
        let Source::Postgres(pool) = &self.source else {
            return Ok(None);
        };
        let Some((mirror, seen)) = self.mirror_for(brand, recipients.len()) else {
            return Ok(None);
        };
        let touched = crate::pg_mirror::touched(pool, brand, seen, self.catch_up()).await?;
        self.answer(
            &mirror,
            brand,
            seen,
            touched,
            (channel, recipient_type, recipients),
        )
    }

    /// Applies what the log says happened after `seen` (`None`: rows after it were pruned, or
    /// too many, so the mirror is dropped and the caller reads the table), then answers from
    /// the mirror.
    fn answer(
        &self,
        mirror: &BrandMirror,
        brand: BrandCode,
        seen: i64,
        touched: Option<Touched>,
        (channel, recipient_type, recipients): (Channel, RecipientType, &[String]),
    ) -> Result<Option<Vec<Option<SendState>>>> {
        let Some(touched) = touched else {
            tracing::info!(
                brand = brand.0,
                "send-state mirror: fell behind the pruned log, or too far behind; building it again"
            );
            self.drop_brand(brand);
            return Ok(None);
        };
        let hasher = hasher();
        if touched.newest > seen {
            let mut m = mirror.write();
            // Another list may have applied a later snapshot meanwhile: only newer rows count.
            if touched.newest > m.seen {
                let from = m.seen;
                for r in touched.rows.iter().filter(|r| r.seq > from) {
                    m.set(hasher, r.key, &r.recipient, r.state.clone());
                }
                m.seen = touched.newest;
            }
        }
        let m = mirror.read();
        let Some(table) = m.tables.get(&(channel, recipient_type)) else {
            return Ok(Some(vec![None; recipients.len()]));
        };
        recipients
            .iter()
            .map(|r| match table.get(hasher, r) {
                Some(UNREADABLE) => Err(StoreError::Corrupt(
                    table
                        .unreadable
                        .get(r.as_str())
                        .cloned()
                        .unwrap_or_else(|| format!("the stored consent of {r} cannot be read")),
                )),
                b => b.map(unpack).transpose(),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// The consents a brand's built mirror holds and about how many bytes they take.
    pub(crate) fn size(&self, brand: BrandCode) -> Option<(usize, usize)> {
        match self.slots().get(&brand) {
            Some(Slot::Ready(m)) => {
                let m = m.read();
                Some((m.consents, m.bytes()))
            }
            _ => None,
        }
    }

    /// Whether the brand's mirror is built (asking for it when it is not).
    pub(crate) fn is_ready(self: &Arc<Self>, brand: BrandCode) -> bool {
        self.budget() > 0 && self.ready(brand).is_some()
    }
}

impl BrandMirror {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Mirror> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Mirror> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn consents(&self) -> usize {
        self.read().consents
    }

    fn touch(&self) {
        *self.used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn last_used(&self) -> Instant {
        *self.used.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_send_state_survives_its_byte() {
        for status in [ConsentStatus::Onay, ConsentStatus::Ret] {
            for iys_state in IysState::ALL {
                for (from_iys, hold) in [(false, false), (true, false), (false, true), (true, true)]
                {
                    let s = SendState {
                        status,
                        from_iys,
                        iys_state,
                        hold,
                    };
                    assert_eq!(unpack(pack(s)).unwrap(), s);
                    assert_ne!(pack(s), UNREADABLE);
                }
            }
        }
        assert!(unpack(0xff).is_err());
    }

    #[test]
    fn only_plus_ninety_and_ten_digits_is_a_number() {
        assert_eq!(tr_number("+905321234567"), Some(5_321_234_567));
        assert_eq!(tr_number("+900000000000"), Some(0));
        for other in [
            "+90532123456",
            "+9053212345678",
            "05321234567",
            "+90532123456x",
            "+49532123456",
            "a@b.c",
            "",
        ] {
            assert_eq!(tr_number(other), None, "{other}");
        }
    }

    #[test]
    fn a_table_sets_replaces_and_removes() {
        let h = hasher();
        let mut t = Table::default();
        assert_eq!(t.set(h, "+905321234567", Some(3)), 1);
        assert_eq!(t.set(h, "+905321234567", Some(9)), 0);
        assert_eq!(t.set(h, "a@b.c", Some(1)), 1);
        assert_eq!(t.get(h, "+905321234567"), Some(9));
        assert_eq!(t.get(h, "+905321234568"), None);
        assert_eq!(t.get(h, "a@b.c"), Some(1));
        assert_eq!(t.set(h, "+905321234567", None), -1);
        assert_eq!(t.set(h, "+905321234567", None), 0);
        assert_eq!(t.set(h, "a@b.c", None), -1);
        assert_eq!(t.get(h, "+905321234567"), None);
        assert_eq!(t.get(h, "a@b.c"), None);
    }

    #[test]
    fn an_unreadable_consent_fails_only_the_lists_that_name_it() {
        let h = hasher();
        let key = (
            Channel::Iys(iys::ConsentType::Mesaj),
            RecipientType::Bireysel,
        );
        let readable = pack(SendState {
            status: ConsentStatus::Onay,
            from_iys: false,
            iys_state: IysState::InIys,
            hold: false,
        });
        let mut m = Mirror::at(0);
        m.set(h, key, "+905321234567", Stored::State(readable));
        m.set(
            h,
            key,
            "+905321234568",
            Stored::of("ONAY", "garbage", "in_iys", 0),
        );
        m.set(h, key, "a@b.c", Stored::of("MAYBE", "HS_WEB", "in_iys", 0));
        assert_eq!(m.consents, 3);
        let mirror = BrandMirror {
            state: RwLock::new(m),
            used: Mutex::new(Instant::now()),
        };
        let mirrors = Mirrors::new(PathBuf::from("unused.db"));
        let ask = |list: &[&str]| -> Result<Option<Vec<Option<SendState>>>> {
            let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
            let touched = Touched {
                newest: 0,
                rows: Vec::new(),
            };
            mirrors.answer(
                &mirror,
                BrandCode(1),
                0,
                Some(touched),
                (key.0, key.1, &list),
            )
        };
        let fine = ask(&["+905321234567", "+905320000000"]).unwrap().unwrap();
        assert!(fine[0].is_some() && fine[1].is_none());
        match ask(&["+905321234567", "+905321234568"]) {
            Err(StoreError::Corrupt(why)) => assert!(why.contains("garbage"), "{why}"),
            other => panic!("{other:?}"),
        }
        match ask(&["a@b.c"]) {
            Err(StoreError::Corrupt(why)) => assert!(why.contains("MAYBE"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Mended (the log brings the row's new state): readable again, nothing left behind.
        let mended = Touched {
            newest: 1,
            rows: vec![TouchedRow {
                seq: 1,
                key,
                recipient: "+905321234568".into(),
                state: Stored::State(readable),
            }],
        };
        let list = vec!["+905321234568".to_owned()];
        let answer = mirrors
            .answer(
                &mirror,
                BrandCode(1),
                0,
                Some(mended),
                (key.0, key.1, &list),
            )
            .unwrap()
            .unwrap();
        assert_eq!(answer[0].map(|s| s.iys_state), Some(IysState::InIys));
        let m = mirror.read();
        assert_eq!(m.consents, 3);
        assert_eq!(m.tables.get(&key).map(|t| t.unreadable.len()), Some(1));
    }
}
