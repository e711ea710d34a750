//! Send-time checks on PostgreSQL read through sqlx's native PostgreSQL driver: a batch is one
//! statement per part with the recipients as one array instead of 500 text parameters per
//! statement through the `Any` driver. Measured on this project's 2-core machine: 10,000-recipient
//! lookups ran at 440,000 recipients/s this way against 130,000/s through `Any`. Nothing is cached:
//! a check reads what is committed.

use std::collections::HashMap;

use hub_core::{BrandCode, Channel, SendState};
use iys::RecipientType;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use tokio::sync::{Semaphore, mpsc};

use crate::check_queue::{Ask, CheckQueue, Failed};
use crate::sql::parse;
use crate::{Result, StoreError};

/// Checks of up to this many recipients are coalesced; larger ones are statements of their own.
pub(crate) const COALESCED: usize = 16;
/// Checks answered by one statement at most.
const PER_STATEMENT: usize = 512;
/// Connections of the checks' pool: the coalesced statement in flight, and three for checks
/// of many recipients.
const CHECK_CONNECTIONS: u32 = 4;
/// Longest a coalesced statement may take. Every waiting check depends on it, so a stalled
/// connection (a server gone quiet) fails them, and they answer an error (no permission to
/// send), rather than holding every check of the instance behind it.
const STATEMENT_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Recipients per statement: large arrays cost little, but a bound keeps one check's statement
/// from holding a connection for long.
const CHUNK: usize = 5_000;
/// Statements a large check runs at once (the checks' pool has one more connection, for the
/// coalesced statement).
const PARTS: usize = 3;
/// Recipients below which a check is not split further: a statement costs a round trip.
const PART_MIN: usize = 1_000;

/// A small pool of native connections (listings and exports, or the ledger's writes), beside
/// the store's `Any` pool.
pub(crate) async fn pool(url: &str, connections: u32) -> Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(std::time::Duration::from_secs(30))
        .connect(url)
        .await?)
}

/// The send-time checks' connections, planning their statements once. PostgreSQL plans a
/// prepared statement anew for its values at each of the first five runs and then keeps doing
/// so whenever the generic plan's estimate is not clearly better, which for `= ANY($4)` it
/// never is: binding a one-recipient check spent 51 µs planning against 14 µs executing
/// (statement log, check-single). The checks' statements are lookups by the consent table's
/// primary key, whose generic plan is that index for any array (checked with EXPLAIN), so
/// these connections use it always (set once per connection, with `SET` rather than a startup
/// option, which a pooler such as PgBouncer would refuse).
pub(crate) async fn checks_pool(url: &str) -> Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(CHECK_CONNECTIONS)
        .acquire_timeout(std::time::Duration::from_secs(30))
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(&mut *conn, "SET plan_cache_mode = force_generic_plan")
                    .await
                    .map(|_| ())
            })
        })
        .connect(url)
        .await?)
}

/// Small checks that arrive together are answered by one statement. Alone, each check cost a
/// round trip and a statement's execution in PostgreSQL: most of a check's CPU on a host
/// serving both (single checks from 32 connections reached a seventh of the HTTP stack's rate).
/// One statement runs at a time and the checks arriving meanwhile wait for the next, so an idle
/// hub adds no delay and a busy one shares statements: with four statements in flight each
/// carried about three checks and a check-single run reached 0.30 of `/healthz`; with one,
/// about ten, and 0.48. Each check still reads only what is committed when its statement runs.
#[derive(Debug, Clone)]
pub(crate) struct Coalescer {
    pub(crate) queue: CheckQueue<Vec<Option<SendState>>>,
    pool: PgPool,
}

impl Coalescer {
    /// Starts the coalescer's task on the current runtime; it ends when the store is dropped.
    pub(crate) fn start(pool: PgPool) -> Coalescer {
        let own = pool.clone();
        let queue = CheckQueue::start(PER_STATEMENT, StoreError::Coalesced, move |asks| {
            let pool = own.clone();
            async move { answer(&pool, asks).await }
        });
        Coalescer { queue, pool }
    }

    /// The checks' connections, for checks too large to coalesce.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// One consent's key, as the coalesced statement looks it up.
type Key = (BrandCode, Channel, RecipientType, String);

/// Answers a set of checks, of any brands, channels and recipient types, with one statement:
/// the distinct keys go as four arrays, and each row found names its key by its place.
async fn answer(pool: &PgPool, asks: Vec<Ask<Vec<Option<SendState>>>>) {
    let mut places: HashMap<Key, usize> = HashMap::new();
    let mut keys: Vec<&Key> = Vec::new();
    let owned: Vec<Key> = asks
        .iter()
        .flat_map(|a| {
            a.recipients
                .iter()
                .map(|r| (a.brand, a.channel, a.recipient_type, r.clone()))
        })
        .collect();
    for key in &owned {
        if !places.contains_key(key) {
            places.insert(key.clone(), keys.len());
            keys.push(key);
        }
    }
    let read = match tokio::time::timeout(STATEMENT_LIMIT, states_of(pool, &keys)).await {
        Ok(read) => read,
        Err(_) => Err(StoreError::Coalesced(format!(
            "a check's statement took more than {} s",
            STATEMENT_LIMIT.as_secs()
        ))),
    };
    match read {
        Ok(states) => {
            for ask in asks {
                // A check with a recipient whose stored consent cannot be read fails alone.
                let mine = ask
                    .recipients
                    .iter()
                    .map(|r| {
                        let key = (ask.brand, ask.channel, ask.recipient_type, r.clone());
                        match places.get(&key).and_then(|&place| states.get(place)) {
                            Some(Some(Ok(state))) => Ok(Some(*state)),
                            Some(Some(Err(failed))) => Err(failed.clone()),
                            Some(None) | None => Ok(None),
                        }
                    })
                    .collect();
                // A check whose caller went away needs no answer.
                let _ = ask.answer.send(mine);
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

/// The send states of `keys`, in their order (`None` where the hub has no consent; an error
/// where the stored consent cannot be read).
async fn states_of(
    pool: &PgPool,
    keys: &[&Key],
) -> Result<Vec<Option<std::result::Result<SendState, Failed>>>> {
    let brands: Vec<i64> = keys.iter().map(|k| k.0.0 as i64).collect();
    let channels: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
    let types: Vec<&str> = keys.iter().map(|k| k.2.as_str()).collect();
    let recipients: Vec<&str> = keys.iter().map(|k| k.3.as_str()).collect();
    let rows: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
        "SELECT k.place, c.status, c.source, c.iys_state, c.hold \
         FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[]) \
              WITH ORDINALITY AS k(brand_code, channel, recipient_type, recipient, place) \
         JOIN consent c ON c.brand_code = k.brand_code AND c.recipient = k.recipient \
              AND c.recipient_type = k.recipient_type AND c.channel = k.channel",
    )
    .bind(brands)
    .bind(channels)
    .bind(types)
    .bind(recipients)
    .fetch_all(pool)
    .await?;
    let mut states = vec![None; keys.len()];
    for (place, status, source, iys_state, hold) in rows {
        // ORDINALITY counts from 1.
        let slot = usize::try_from(place - 1)
            .ok()
            .and_then(|i| states.get_mut(i))
            .ok_or_else(|| StoreError::Corrupt(format!("a checked key's place {place}")))?;
        *slot = Some(send_state(&status, &source, &iys_state, hold).map_err(|e| Failed::from(&e)));
    }
    Ok(states)
}

/// A send state from the consent table's text columns.
fn send_state(status: &str, source: &str, iys_state: &str, hold: i64) -> Result<SendState> {
    let source: iys::Source = parse("consent.source", source)?;
    Ok(SendState {
        status: parse("consent.status", status)?,
        from_iys: source.is_iys(),
        iys_state: parse("consent.iys_state", iys_state)?,
        hold: hold != 0,
    })
}

/// The send states of a long list, in its order. PostgreSQL answers each part with one row per
/// distinct state (status, source, IYS state, hold: a handful) and the places that have it as
/// an array: 10,000 rows of five columns cost PostgreSQL more to send and the hub more to decode
/// than the lookups they answer, and no recipient comes back to be copied or hashed.
pub(crate) async fn send_states(
    pool: &PgPool,
    brand: BrandCode,
    channel: Channel,
    recipient_type: RecipientType,
    recipients: &[String],
) -> Result<Vec<Option<SendState>>> {
    let size = part_size(recipients.len());
    let parts = futures_util::future::try_join_all(recipients.chunks(size).map(|part| {
        sqlx::query(
            "SELECT c.status, c.source, c.iys_state, c.hold, array_agg(k.place::int4) \
             FROM UNNEST($4::text[]) WITH ORDINALITY AS k(recipient, place) \
             JOIN consent c ON c.brand_code = $1 AND c.channel = $2 \
                  AND c.recipient_type = $3 AND c.recipient = k.recipient \
             GROUP BY 1, 2, 3, 4",
        )
        .bind(brand.0 as i64)
        .bind(channel.as_str())
        .bind(recipient_type.as_str())
        .bind(part)
        .fetch_all(pool)
    }))
    .await?;
    let mut states = vec![None; recipients.len()];
    for (p, rows) in parts.iter().enumerate() {
        let first = p * size;
        for row in rows {
            let text = |i: usize| row.try_get::<&str, _>(i);
            let state = send_state(text(0)?, text(1)?, text(2)?, row.try_get(3)?)?;
            for place in row.try_get::<Vec<i32>, _>(4)? {
                // ORDINALITY counts from 1 within the part.
                let slot = usize::try_from(place - 1)
                    .ok()
                    .filter(|i| *i < size)
                    .and_then(|i| states.get_mut(first + i))
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("a checked recipient's place {place}"))
                    })?;
                *slot = Some(state);
            }
        }
    }
    Ok(states)
}

pub(crate) async fn category_statuses(
    pool: &PgPool,
    brand: BrandCode,
    category: &str,
    subjects: &[String],
) -> Result<HashMap<String, iys::ConsentStatus>> {
    let rows = in_parts(subjects, |part| {
        sqlx::query(
            "SELECT subject, status FROM category_consent \
             WHERE brand_code = $1 AND category = $2 AND subject = ANY($3)",
        )
        .bind(brand.0 as i64)
        .bind(category)
        .bind(part)
        .fetch_all(pool)
    })
    .await?;
    let mut statuses = HashMap::with_capacity(rows.len());
    for row in &rows {
        statuses.insert(
            row.try_get::<&str, _>(0)?.to_owned(),
            parse("category_consent.status", row.try_get::<&str, _>(1)?)?,
        );
    }
    Ok(statuses)
}

/// Reads a long list of keys as up to [`PARTS`] statements at once, each on its own
/// connection: PostgreSQL runs one statement on one core, so a 10,000-recipient check read as
/// one or two statements in a row left the other core to wait.
async fn in_parts<'k, F, R>(keys: &'k [String], read: F) -> Result<Vec<PgRow>>
where
    F: Fn(&'k [String]) -> R,
    R: Future<Output = std::result::Result<Vec<PgRow>, sqlx::Error>>,
{
    let size = part_size(keys.len());
    let parts = futures_util::future::try_join_all(keys.chunks(size).map(read)).await?;
    Ok(parts.into_iter().flatten().collect())
}

/// How many keys of a long list each of its statements reads.
fn part_size(keys: usize) -> usize {
    keys.div_ceil(PARTS).clamp(PART_MIN, CHUNK)
}

/// The statement's values bound in order.
fn bound<'q>(
    sql: &'q str,
    binds: &'q [crate::listing::Bind],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    use crate::listing::Bind;
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in binds {
        q = match b {
            Bind::Int(i) => q.bind(*i),
            Bind::Text(t) => q.bind(t.as_str()),
        };
    }
    q
}

/// A page of consents: the statement and values of [`crate::listing::consent_page`], decoded
/// natively (listings read this way).
pub(crate) async fn consents(
    pool: &PgPool,
    sql: &str,
    binds: &[crate::listing::Bind],
) -> Result<Vec<crate::ConsentRow>> {
    bound(sql, binds)
        .fetch_all(pool)
        .await?
        .iter()
        .map(consent_from)
        .collect()
}

/// Exports streaming at once: each holds a read connection for as long as it runs, and
/// listings need the rest of the pool.
pub(crate) static STREAMS: Semaphore = Semaphore::const_new(2);

/// Streams the rows of one statement of [`crate::listing::consent_page`] (exports: millions of
/// rows, one walk of the index) to `tx` in chunks of `chunk`; an error is the last item.
pub(crate) async fn stream_consents(
    pool: &PgPool,
    sql: &str,
    binds: &[crate::listing::Bind],
    chunk: usize,
    tx: &mpsc::Sender<Result<Vec<crate::ConsentRow>>>,
) {
    use futures_util::StreamExt;
    let mut rows = bound(sql, binds).fetch(pool);
    let mut out = Vec::with_capacity(chunk);
    while let Some(row) = rows.next().await {
        match row.map_err(StoreError::from).and_then(|r| consent_from(&r)) {
            Ok(c) => out.push(c),
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
        if out.len() >= chunk
            && tx
                .send(Ok(std::mem::replace(&mut out, Vec::with_capacity(chunk))))
                .await
                .is_err()
        {
            return;
        }
    }
    let _ = tx.send(Ok(out)).await;
}

/// A consent from the columns of [`crate::listing::CONSENT_COLUMNS`], in their order.
fn consent_from(row: &PgRow) -> Result<crate::ConsentRow> {
    consent_from_fields(row).map_err(|e| match row.try_get::<&str, _>(1) {
        Ok(recipient) => crate::sql::in_row_of(e, recipient),
        Err(_) => e,
    })
}

fn consent_from_fields(row: &PgRow) -> Result<crate::ConsentRow> {
    let text = |i: usize| row.try_get::<&str, _>(i);
    Ok(crate::ConsentRow {
        key: hub_core::ConsentKey {
            brand: BrandCode(row.try_get::<i64, _>(0)? as u64),
            recipient: text(1)?.to_owned(),
            recipient_type: parse("consent.recipient_type", text(2)?)?,
            channel: parse("consent.channel", text(3)?)?,
        },
        state: hub_core::ConsentState {
            status: parse("consent.status", text(4)?)?,
            consent_date: parse("consent.consent_date", text(5)?)?,
            source: parse("consent.source", text(6)?)?,
            last_event_id: row.try_get(7)?,
            iys_state: parse("consent.iys_state", text(8)?)?,
            iys_error: row.try_get(9)?,
            conflict: row.try_get::<i64, _>(10)? != 0,
            hold: row.try_get::<i64, _>(11)? != 0,
            deadline: row.try_get::<Option<i64>, _>(12)?.map(crate::sql::ts),
            iys_known: row.try_get::<i64, _>(13)? != 0,
            updated_at: crate::sql::ts(row.try_get(14)?),
        },
    })
}
