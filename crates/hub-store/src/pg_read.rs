//! Send-time checks on PostgreSQL read through sqlx's native PostgreSQL driver: a batch is one
//! statement with the recipients as one array (`= ANY($n)`) instead of 500 text parameters per
//! statement through the `Any` driver. Measured on this project's 2-core machine: 10,000-recipient
//! lookups ran at 440,000 recipients/s this way against 130,000/s through `Any`. Nothing is cached:
//! a check reads what is committed.

use std::collections::HashMap;
use std::sync::Arc;

use hub_core::{BrandCode, Channel, SendState};
use iys::RecipientType;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::sql::parse;
use crate::{Result, StoreError};

/// Checks of up to this many recipients are coalesced; larger ones are statements of their own.
pub(crate) const COALESCED: usize = 16;
/// Statements of coalesced checks running at once (each on its own connection).
const IN_FLIGHT: usize = 4;
/// Checks answered by one statement at most.
const PER_STATEMENT: usize = 512;

/// Recipients per statement: large arrays cost little, but a bound keeps one check's statement
/// from holding a connection for long.
const CHUNK: usize = 5_000;

/// A small pool of native connections for checks, beside the store's `Any` pool.
pub(crate) async fn pool(url: &str) -> Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(std::time::Duration::from_secs(30))
        .connect(url)
        .await?)
}

/// Small checks that arrive together are answered by one statement per brand, channel and
/// recipient type. Alone, each check cost a round trip and a statement's execution in
/// PostgreSQL: most of a check's CPU on a host serving both (single checks from 32 connections
/// reached a seventh of the HTTP stack's rate). Up to four statements run at once; the checks
/// arriving meanwhile wait for the next, so an idle hub adds no delay and a busy one shares
/// statements. Each check still reads only what is committed when its statement runs.
#[derive(Debug, Clone)]
pub(crate) struct Coalescer {
    asks: mpsc::UnboundedSender<Ask>,
}

#[derive(Debug)]
struct Ask {
    brand: BrandCode,
    channel: Channel,
    recipient_type: RecipientType,
    recipients: Vec<String>,
    answer: oneshot::Sender<std::result::Result<HashMap<String, SendState>, String>>,
}

impl Coalescer {
    /// Starts the coalescer's task on the current runtime; it ends when the store is dropped.
    pub(crate) fn start(pool: PgPool) -> Coalescer {
        let (asks, queue) = mpsc::unbounded_channel();
        tokio::spawn(coalesce(pool, queue));
        Coalescer { asks }
    }

    /// The check's answer, or `None` when the coalescer's task is gone (its runtime ended
    /// while the store lives on): the caller then reads on its own.
    pub(crate) async fn send_states(
        &self,
        brand: BrandCode,
        channel: Channel,
        recipient_type: RecipientType,
        recipients: &[String],
    ) -> Option<Result<HashMap<String, SendState>>> {
        let (answer, answered) = oneshot::channel();
        self.asks
            .send(Ask {
                brand,
                channel,
                recipient_type,
                recipients: recipients.to_vec(),
                answer,
            })
            .ok()?;
        Some(answered.await.ok()?.map_err(StoreError::Coalesced))
    }
}

async fn coalesce(pool: PgPool, mut queue: mpsc::UnboundedReceiver<Ask>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        // Checks arriving while every slot is busy join this statement.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut asks = vec![first];
        while asks.len() < PER_STATEMENT {
            match queue.try_recv() {
                Ok(ask) => asks.push(ask),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            answer(&pool, asks).await;
            drop(slot);
        });
    }
}

/// Answers a set of checks: one statement per brand, channel and recipient type among them.
async fn answer(pool: &PgPool, asks: Vec<Ask>) {
    let mut groups: HashMap<(BrandCode, Channel, RecipientType), Vec<Ask>> = HashMap::new();
    for ask in asks {
        groups
            .entry((ask.brand, ask.channel, ask.recipient_type))
            .or_default()
            .push(ask);
    }
    for ((brand, channel, recipient_type), asks) in groups {
        let mut recipients: Vec<String> = asks
            .iter()
            .flat_map(|a| a.recipients.iter().cloned())
            .collect();
        recipients.sort_unstable();
        recipients.dedup();
        match send_states(pool, brand, channel, recipient_type, &recipients).await {
            Ok(states) => {
                for ask in asks {
                    let mine = ask
                        .recipients
                        .iter()
                        .filter_map(|r| states.get(r).map(|s| (r.clone(), *s)))
                        .collect();
                    // A check whose caller went away needs no answer.
                    let _ = ask.answer.send(Ok(mine));
                }
            }
            Err(e) => {
                let error = e.to_string();
                for ask in asks {
                    let _ = ask.answer.send(Err(error.clone()));
                }
            }
        }
    }
}

pub(crate) async fn send_states(
    pool: &PgPool,
    brand: BrandCode,
    channel: Channel,
    recipient_type: RecipientType,
    recipients: &[String],
) -> Result<HashMap<String, SendState>> {
    let mut states = HashMap::with_capacity(recipients.len());
    for chunk in recipients.chunks(CHUNK) {
        let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT recipient, status, source, iys_state, hold FROM consent \
             WHERE brand_code = $1 AND channel = $2 AND recipient_type = $3 AND recipient = ANY($4)",
        )
        .bind(brand.0 as i64)
        .bind(channel.as_str())
        .bind(recipient_type.as_str())
        .bind(chunk)
        .fetch_all(pool)
        .await?;
        for (recipient, status, source, iys_state, hold) in rows {
            let source: iys::Source = parse("consent.source", &source)?;
            states.insert(
                recipient,
                SendState {
                    status: parse("consent.status", &status)?,
                    from_iys: source.is_iys(),
                    iys_state: parse("consent.iys_state", &iys_state)?,
                    hold: hold != 0,
                },
            );
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
    let mut statuses = HashMap::new();
    for chunk in subjects.chunks(CHUNK) {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT subject, status FROM category_consent \
             WHERE brand_code = $1 AND category = $2 AND subject = ANY($3)",
        )
        .bind(brand.0 as i64)
        .bind(category)
        .bind(chunk)
        .fetch_all(pool)
        .await?;
        for (subject, status) in rows {
            statuses.insert(subject, parse("category_consent.status", &status)?);
        }
    }
    Ok(statuses)
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

/// Exports streaming at once: each holds a read connection for as long as it runs, and the
/// checks need the rest of the pool.
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
fn consent_from(row: &sqlx::postgres::PgRow) -> Result<crate::ConsentRow> {
    use sqlx::Row;
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
