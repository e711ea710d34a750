//! [`Store`] on SQLite and PostgreSQL through sqlx's `Any` driver.
//!
//! The SQL is written once with `$n` placeholders, which both databases accept; the few
//! statements that differ (row locks) are picked by [`Backend`]. SQLite runs in WAL mode with
//! `synchronous=FULL`, and its writes go through one lock so batches never meet a busy database.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use hub_core::chain::{GENESIS, link};
use hub_core::{BrandCode, CategoryKind, Change, ConsentKey, ConsentState, IysState, decide};

use jiff::Timestamp;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use tokio::sync::Mutex;

use crate::types::*;
use crate::{Backend, Result, Store, StoreError};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The SQL store.
#[derive(Debug)]
pub struct SqlStore {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// SQLite allows one writer; taking turns here avoids `database is locked`.
    write_lock: Mutex<()>,
}

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(crate) fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub(crate) fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub(crate) fn parse<T: FromStr>(what: &str, s: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| corrupt(what, e))
}

impl SqlStore {
    /// Connects to `sqlite://path` (created if missing) or `postgres://…`, and migrates.
    pub async fn connect(url: &str) -> Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let pool = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA synchronous = FULL",
                                "PRAGMA busy_timeout = 10000",
                            ] {
                                sqlx::query(pragma).execute(&mut *conn).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(url)
                    .await?
            }
        };
        let store = SqlStore {
            pool,
            backend,
            write_lock: Mutex::new(()),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// A SQLite URL for a file, creating its directory.
    pub fn sqlite_url(path: &Path) -> std::io::Result<String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        Ok(format!("sqlite://{}?mode=rwc", path.display()))
    }

    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Takes the brand's write lock inside a transaction. Every transaction that changes a
    /// brand's consent or outbox rows takes it first (`record` does, reading the hash-chain head),
    /// so on PostgreSQL they queue per brand instead of deadlocking on each other's rows. SQLite
    /// has one writer already.
    pub(crate) async fn lock_brand(
        &self,
        conn: &mut sqlx::AnyConnection,
        brand: i64,
    ) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT 1 FROM chain_head WHERE brand_code = $1 FOR UPDATE")
                .bind(brand)
                .fetch_optional(&mut *conn)
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.write_lock.lock().await),
            Backend::Postgres => None,
        }
    }
}

impl SqlStore {
    /// The current state of every channel consent the batch touches, keyed by (recipient,
    /// recipientType, channel); one query per 500 recipients instead of one per change.
    async fn current_states(
        &self,
        conn: &mut sqlx::AnyConnection,
        brand: i64,
        changes: &[Change],
    ) -> Result<std::collections::HashMap<(String, &'static str, &'static str), ConsentState>> {
        let mut recipients: Vec<&str> = changes
            .iter()
            .filter(|c| c.category.is_none())
            .map(|c| c.key.recipient.as_str())
            .collect();
        recipients.sort_unstable();
        recipients.dedup();
        let mut states = std::collections::HashMap::new();
        for chunk in recipients.chunks(500) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT * FROM consent WHERE brand_code = $1 AND recipient IN ({})",
                placeholders.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(brand);
            for r in chunk {
                q = q.bind((*r).to_owned());
            }
            for row in q.fetch_all(&mut *conn).await? {
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
        }
        Ok(states)
    }

    /// What a movement seen from IYS does to the key's unsent rows: rows it overtook (older, or
    /// the same status and date) are superseded, never sent; in sync mode a held ONAY is released,
    /// since IYS now evidently has the record. Leased rows are left to their instance.
    async fn after_iys_movement(
        &self,
        conn: &mut sqlx::AnyConnection,
        brand: &Brand,
        ch: &Change,
        consent_date: &str,
    ) -> Result<()> {
        let b = brand.brand_code.0 as i64;
        let now = ms(ch.received_at);
        sqlx::query(
            "UPDATE outbox SET state = 'superseded' WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4 \
             AND state IN ('pending', 'held') AND (lease_until_ms IS NULL OR lease_until_ms < $5) \
             AND (consent_date < $6 OR (consent_date = $6 AND status = $7))",
        )
        .bind(b)
        .bind(ch.key.recipient.clone())
        .bind(ch.key.recipient_type.as_str())
        .bind(ch.key.channel.as_str())
        .bind(now)
        .bind(consent_date.to_owned())
        .bind(ch.status.as_str())
        .execute(&mut *conn)
        .await?;
        if brand.mode == hub_core::Mode::Sync {
            sqlx::query(
                "UPDATE outbox SET state = 'pending', next_attempt_at_ms = $5 WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4 AND state = 'held'",
            )
            .bind(b)
            .bind(ch.key.recipient.clone())
            .bind(ch.key.recipient_type.as_str())
            .bind(ch.key.channel.as_str())
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Records changes inside an open transaction: for each, the event (linked into the brand's
    /// hash chain), the new current state and the outbox row. Movements from IYS already
    /// recorded (same transactionId and content, pulled or delivered) are skipped as `duplicate`.
    pub(crate) async fn record(
        &self,
        conn: &mut sqlx::AnyConnection,
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
        let mut prev: String = sqlx::query(head_sql)
            .bind(b)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.try_get("last_hash"))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("brand {}", brand.brand_code)))?;
        // The mode as it is now, under the lock: the caller's copy may predate a mode switch.
        let mode: String = sqlx::query("SELECT mode FROM brand WHERE brand_code = $1")
            .bind(b)
            .fetch_one(&mut *conn)
            .await?
            .try_get("mode")?;
        let brand = &Brand {
            mode: parse("brand.mode", &mode)?,
            ..brand.clone()
        };
        let mut last_id = None;
        let mut applied = Vec::with_capacity(changes.len());
        // Current states of the batch's consents, read once (the chain-head lock above keeps
        // other writers of the brand out) and kept up to date as the batch applies.
        let mut states = self.current_states(conn, b, &changes).await?;
        for ch in changes {
            let channel = ch.key.channel.as_str();
            let rtype = ch.key.recipient_type.as_str();
            let consent_date = ch.consent_date.to_string();
            // A movement from IYS already recorded (pulled, pushed, or our own delivery) is
            // recognised by its transactionId *and* its content: IYS gives movements of one
            // address and type in the same second one shared transactionId.
            if let Some(txid) = &ch.iys_transaction_id {
                let seen = sqlx::query(
                    "SELECT 1 FROM consent_event WHERE brand_code = $1 AND (iys_transaction_id = $2 OR delivered_transaction_id = $2) \
                     AND recipient = $3 AND recipient_type = $4 AND channel = $5 AND status = $6 AND consent_date = $7 AND source = $8",
                )
                .bind(b)
                .bind(txid.clone())
                .bind(ch.key.recipient.clone())
                .bind(rtype)
                .bind(channel)
                .bind(ch.status.as_str())
                .bind(consent_date.clone())
                .bind(ch.source.as_str().to_owned())
                .fetch_optional(&mut *conn)
                .await?;
                if seen.is_some() {
                    applied.push(Applied {
                        event_id: None,
                        outcome: "duplicate".into(),
                        state: None,
                        outbox: None,
                    });
                    continue;
                }
            }
            let subject = subject_of(&ch);
            let state_key = (ch.key.recipient.clone(), rtype, channel);
            let current = match &ch.category {
                None => states.get(&state_key).cloned(),
                Some(cat) => sqlx::query("SELECT * FROM category_consent WHERE brand_code = $1 AND subject = $2 AND category = $3")
                    .bind(b)
                    .bind(subject.clone())
                    .bind(cat.clone())
                    .fetch_optional(&mut *conn)
                    .await?
                    .as_ref()
                    .map(category_from)
                    .transpose()?
                    .map(|c| category_state(&c, ch.received_at)),
            };
            let decision = decide(current.as_ref(), &ch, brand.mode);
            let evidence = ch.evidence.as_ref().map(|e| e.to_string());
            let fields = EventFields {
                brand: b,
                recipient: &ch.key.recipient,
                recipient_type: rtype,
                channel,
                category: ch.category.as_deref(),
                profile_id: ch.profile_id.as_deref(),
                status: ch.status.as_str(),
                consent_date: &consent_date,
                source: ch.source.as_str(),
                origin: ch.origin.as_str(),
                actor: ch.actor.as_deref(),
                evidence: evidence.as_deref(),
                hold: ch.hold.map(i64::from),
                outcome: decision.outcome.as_str(),
                received_at_ms: ms(ch.received_at),
                iys_transaction_id: ch.iys_transaction_id.as_deref(),
            };
            let hash = fields.hash(&prev);
            let id: i64 = sqlx::query(
                "INSERT INTO consent_event (brand_code, recipient, recipient_type, channel, category, profile_id, status, consent_date, source, origin, actor, evidence, hold, outcome, received_at_ms, iys_transaction_id, prev_hash, hash, iys_creation_date) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) RETURNING id",
            )
            .bind(b)
            .bind(ch.key.recipient.clone())
            .bind(rtype)
            .bind(channel)
            .bind(ch.category.clone())
            .bind(ch.profile_id.clone())
            .bind(ch.status.as_str())
            .bind(consent_date.clone())
            .bind(ch.source.as_str().to_owned())
            .bind(ch.origin.as_str())
            .bind(ch.actor.clone())
            .bind(evidence.clone())
            .bind(ch.hold.map(i64::from))
            .bind(decision.outcome.as_str())
            .bind(ms(ch.received_at))
            .bind(ch.iys_transaction_id.clone())
            .bind(prev.clone())
            .bind(hash.clone())
            // Not in the hash: like a delivery's, it is IYS's bookkeeping, not the change.
            .bind(ch.iys_creation_date.map(|d| d.to_string()))
            .fetch_one(&mut *conn)
            .await?
            .try_get("id")?;
            prev = hash;
            last_id = Some(id);
            let mut state = decision.state.clone();
            if let Some(s) = &mut state {
                // A new state points at this event; a kept one (older, no-op, hold or
                // knowledge changes) keeps the event that made it, so a delivery of that event
                // still settles the consent.
                if s.last_event_id == 0 {
                    s.last_event_id = id;
                }
                if ch.category.is_none() {
                    states.insert(state_key.clone(), s.clone());
                }
                match &ch.category {
                    None => {
                        sqlx::query(
                            "INSERT INTO consent (brand_code, recipient, recipient_type, channel, status, consent_date, source, last_event_id, iys_state, iys_error, conflict, hold, deadline_ms, updated_at_ms, iys_known) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                             ON CONFLICT (brand_code, recipient, recipient_type, channel) DO UPDATE SET status = excluded.status, consent_date = excluded.consent_date, source = excluded.source, last_event_id = excluded.last_event_id, iys_state = excluded.iys_state, iys_error = excluded.iys_error, conflict = excluded.conflict, hold = excluded.hold, deadline_ms = excluded.deadline_ms, updated_at_ms = excluded.updated_at_ms, iys_known = excluded.iys_known",
                        )
                        .bind(b)
                        .bind(ch.key.recipient.clone())
                        .bind(rtype)
                        .bind(channel)
                        .bind(s.status.as_str())
                        .bind(s.consent_date.to_string())
                        .bind(s.source.as_str().to_owned())
                        .bind(s.last_event_id)
                        .bind(s.iys_state.as_str())
                        .bind(s.iys_error.clone())
                        .bind(i64::from(s.conflict))
                        .bind(i64::from(s.hold))
                        .bind(s.deadline.map(ms))
                        .bind(ms(s.updated_at))
                        .bind(i64::from(s.iys_known))
                        .execute(&mut *conn)
                        .await?;
                    }
                    Some(cat) => {
                        sqlx::query(
                            "INSERT INTO category_consent (brand_code, subject, category, status, consent_date, source, last_event_id, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                             ON CONFLICT (brand_code, subject, category) DO UPDATE SET status = excluded.status, consent_date = excluded.consent_date, source = excluded.source, last_event_id = excluded.last_event_id, updated_at_ms = excluded.updated_at_ms",
                        )
                        .bind(b)
                        .bind(subject.clone())
                        .bind(cat.clone())
                        .bind(s.status.as_str())
                        .bind(s.consent_date.to_string())
                        .bind(s.source.as_str().to_owned())
                        .bind(s.last_event_id)
                        .bind(ms(s.updated_at))
                        .execute(&mut *conn)
                        .await?;
                    }
                }
            }
            if ch.origin.is_from_iys() && ch.category.is_none() {
                self.after_iys_movement(conn, brand, &ch, &consent_date)
                    .await?;
            }
            if let (Some(target), Some(s)) = (decision.outbox, &state) {
                // Coalescing: unsent rows of this consent (pending behind one in flight, or held)
                // are carried by this newer one, so IYS gets the fewest movements that reach the
                // final state; the ledger keeps every change. The carrier keeps the earliest
                // deadline among them. A row in flight (leased) is left to finish.
                let now = ms(ch.received_at);
                let waiting = sqlx::query(
                    "SELECT id, deadline_ms FROM outbox WHERE brand_code = $1 AND recipient = $2 AND recipient_type = $3 AND channel = $4 \
                     AND state IN ('pending', 'held') AND (lease_until_ms IS NULL OR lease_until_ms < $5)",
                )
                .bind(b)
                .bind(ch.key.recipient.clone())
                .bind(rtype)
                .bind(channel)
                .bind(now)
                .fetch_all(&mut *conn)
                .await?;
                let mut carried = Vec::with_capacity(waiting.len());
                let mut deadline = s.deadline.map_or(now, ms);
                for r in &waiting {
                    carried.push(r.try_get::<i64, _>("id")?);
                    deadline = deadline.min(r.try_get::<i64, _>("deadline_ms")?);
                }
                let carrier: i64 = sqlx::query(
                    "INSERT INTO outbox (brand_code, event_id, recipient, recipient_type, channel, status, consent_date, source, state, attempts, next_attempt_at_ms, deadline_ms, created_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $12) RETURNING id",
                )
                .bind(b)
                .bind(id)
                .bind(ch.key.recipient.clone())
                .bind(rtype)
                .bind(channel)
                .bind(ch.status.as_str())
                .bind(consent_date.clone())
                .bind(ch.source.as_str().to_owned())
                .bind(target.as_str())
                .bind(now)
                .bind(deadline)
                .bind(now)
                .fetch_one(&mut *conn)
                .await?
                .try_get("id")?;
                for chunk in carried.chunks(500) {
                    let ids = chunk
                        .iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ");
                    // Rows they carried before now point at the new carrier too.
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE outbox SET state = 'superseded', superseded_by = $1 WHERE brand_code = $2 AND (id IN ({ids}) OR superseded_by IN ({ids}))"
                    )))
                    .bind(carrier)
                    .bind(b)
                    .execute(&mut *conn)
                    .await?;
                }
            }
            applied.push(Applied {
                event_id: Some(id),
                outcome: decision.outcome.as_str().to_owned(),
                state: if ch.category.is_none() { state } else { None },
                outbox: decision.outbox.map(|t| t.as_str().to_owned()),
            });
        }
        if let Some(id) = last_id {
            sqlx::query(
                "UPDATE chain_head SET last_hash = $1, last_event_id = $2 WHERE brand_code = $3",
            )
            .bind(prev)
            .bind(id)
            .bind(b)
            .execute(&mut *conn)
            .await?;
        }
        Ok(applied)
    }
}

fn brand_from(row: &AnyRow) -> Result<Brand> {
    let conn: Option<String> = row.try_get("iys_connection")?;
    Ok(Brand {
        brand_code: BrandCode(row.try_get::<i64, _>("brand_code")? as u64),
        iys_code: row.try_get::<i64, _>("iys_code")? as u64,
        name: row.try_get("name")?,
        mode: parse("brand.mode", &row.try_get::<String, _>("mode")?)?,
        iys: conn
            .map(|c| serde_json::from_str(&c).map_err(|e| corrupt("brand.iys_connection", e)))
            .transpose()?
            .unwrap_or_default(),
        created_at: ts(row.try_get("created_at_ms")?),
        updated_at: ts(row.try_get("updated_at_ms")?),
    })
}

fn state_from(row: &AnyRow) -> Result<ConsentState> {
    Ok(ConsentState {
        status: parse("consent.status", &row.try_get::<String, _>("status")?)?,
        consent_date: parse(
            "consent.consent_date",
            &row.try_get::<String, _>("consent_date")?,
        )?,
        source: parse("consent.source", &row.try_get::<String, _>("source")?)?,
        last_event_id: row.try_get("last_event_id")?,
        iys_state: parse("consent.iys_state", &row.try_get::<String, _>("iys_state")?)?,
        iys_error: row.try_get("iys_error")?,
        conflict: row.try_get::<i64, _>("conflict")? != 0,
        hold: row.try_get::<i64, _>("hold")? != 0,
        deadline: row.try_get::<Option<i64>, _>("deadline_ms")?.map(ts),
        iys_known: row.try_get::<i64, _>("iys_known")? != 0,
        updated_at: ts(row.try_get("updated_at_ms")?),
    })
}

fn key_from(row: &AnyRow) -> Result<ConsentKey> {
    Ok(ConsentKey {
        brand: BrandCode(row.try_get::<i64, _>("brand_code")? as u64),
        recipient: row.try_get("recipient")?,
        recipient_type: parse(
            "recipient_type",
            &row.try_get::<String, _>("recipient_type")?,
        )?,
        channel: parse("channel", &row.try_get::<String, _>("channel")?)?,
    })
}

fn category_from(row: &AnyRow) -> Result<CategoryConsentRow> {
    Ok(CategoryConsentRow {
        subject: row.try_get("subject")?,
        category: row.try_get("category")?,
        status: parse(
            "category_consent.status",
            &row.try_get::<String, _>("status")?,
        )?,
        consent_date: parse(
            "category_consent.consent_date",
            &row.try_get::<String, _>("consent_date")?,
        )?,
        source: parse(
            "category_consent.source",
            &row.try_get::<String, _>("source")?,
        )?,
        last_event_id: row.try_get("last_event_id")?,
    })
}

/// The fields an event's hash covers, in a fixed order.
struct EventFields<'a> {
    brand: i64,
    recipient: &'a str,
    recipient_type: &'a str,
    channel: &'a str,
    category: Option<&'a str>,
    profile_id: Option<&'a str>,
    status: &'a str,
    consent_date: &'a str,
    source: &'a str,
    origin: &'a str,
    actor: Option<&'a str>,
    evidence: Option<&'a str>,
    hold: Option<i64>,
    outcome: &'a str,
    received_at_ms: i64,
    iys_transaction_id: Option<&'a str>,
}

impl EventFields<'_> {
    fn hash(&self, prev: &str) -> String {
        let brand = self.brand.to_string();
        let hold = self.hold.map(|h| h.to_string());
        let received = self.received_at_ms.to_string();
        link(
            prev,
            &[
                &brand,
                self.recipient,
                self.recipient_type,
                self.channel,
                self.category.unwrap_or(""),
                self.profile_id.unwrap_or(""),
                self.status,
                self.consent_date,
                self.source,
                self.origin,
                self.actor.unwrap_or(""),
                self.evidence.unwrap_or(""),
                hold.as_deref().unwrap_or(""),
                self.outcome,
                &received,
                self.iys_transaction_id.unwrap_or(""),
            ],
        )
    }
}

fn event_from(row: &AnyRow) -> Result<Event> {
    let evidence: Option<String> = row.try_get("evidence")?;
    Ok(Event {
        id: row.try_get("id")?,
        key: key_from(row)?,
        category: row.try_get("category")?,
        profile_id: row.try_get("profile_id")?,
        status: parse("event.status", &row.try_get::<String, _>("status")?)?,
        consent_date: parse(
            "event.consent_date",
            &row.try_get::<String, _>("consent_date")?,
        )?,
        source: parse("event.source", &row.try_get::<String, _>("source")?)?,
        origin: row.try_get("origin")?,
        actor: row.try_get("actor")?,
        evidence: evidence
            .map(|e| serde_json::from_str(&e).map_err(|x| corrupt("event.evidence", x)))
            .transpose()?,
        hold: row.try_get::<Option<i64>, _>("hold")?.map(|h| h != 0),
        outcome: row.try_get("outcome")?,
        received_at: ts(row.try_get("received_at_ms")?),
        iys_transaction_id: row.try_get("iys_transaction_id")?,
        delivered_transaction_id: row.try_get("delivered_transaction_id")?,
        iys_creation_date: row.try_get("iys_creation_date")?,
        iys_error: row.try_get("iys_error")?,
        hash: row.try_get("hash")?,
    })
}

fn category_state(c: &CategoryConsentRow, updated_at: Timestamp) -> ConsentState {
    ConsentState {
        status: c.status,
        consent_date: c.consent_date,
        source: c.source.clone(),
        last_event_id: c.last_event_id,
        iys_state: IysState::LocalOnly,
        iys_error: None,
        conflict: false,
        hold: false,
        deadline: None,
        iys_known: false,
        updated_at,
    }
}

/// The subject of a category consent: the profile when given, else the recipient.
fn subject_of(change: &Change) -> String {
    match &change.profile_id {
        Some(p) => format!("profile:{p}"),
        None => change.key.recipient.clone(),
    }
}

impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_brand(&self, b: NewBrand) -> Result<Brand> {
        let _w = self.writer().await;
        let now = ms(Timestamp::now());
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM brand WHERE brand_code = $1")
            .bind(b.brand_code.0 as i64)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!("brand {}", b.brand_code)));
        }
        let conn = serde_json::to_string(&b.iys).map_err(|e| corrupt("iys connection", e))?;
        sqlx::query("INSERT INTO brand (brand_code, iys_code, name, mode, iys_connection, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(b.brand_code.0 as i64)
            .bind(b.iys_code as i64)
            .bind(b.name.clone())
            .bind(b.mode.as_str())
            .bind(conn)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO chain_head (brand_code, last_hash, last_event_id) VALUES ($1, $2, 0)",
        )
        .bind(b.brand_code.0 as i64)
        .bind(GENESIS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Brand {
            brand_code: b.brand_code,
            iys_code: b.iys_code,
            name: b.name,
            mode: b.mode,
            iys: b.iys,
            created_at: ts(now),
            updated_at: ts(now),
        })
    }

    async fn brands(&self) -> Result<Vec<Brand>> {
        sqlx::query("SELECT * FROM brand ORDER BY brand_code")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(brand_from)
            .collect()
    }

    async fn brand(&self, code: BrandCode) -> Result<Option<Brand>> {
        sqlx::query("SELECT * FROM brand WHERE brand_code = $1")
            .bind(code.0 as i64)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(brand_from)
            .transpose()
    }

    async fn update_brand(&self, code: BrandCode, patch: BrandPatch) -> Result<Option<Brand>> {
        let _w = self.writer().await;
        let conn = patch
            .iys
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| corrupt("iys connection", e))?;
        // Only the fields given change: a concurrent mode switch is never undone by a rename.
        let r = sqlx::query("UPDATE brand SET name = COALESCE($1, name), iys_code = COALESCE($2, iys_code), mode = COALESCE($3, mode), iys_connection = COALESCE($4, iys_connection), updated_at_ms = $5 WHERE brand_code = $6")
            .bind(patch.name)
            .bind(patch.iys_code.map(|i| i as i64))
            .bind(patch.mode.map(|m| m.as_str()))
            .bind(conn)
            .bind(ms(Timestamp::now()))
            .bind(code.0 as i64)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        drop(_w);
        self.brand(code).await
    }

    async fn apply(
        &self,
        brand: &Brand,
        changes: Vec<Change>,
        idempotency: Option<Idempotency>,
    ) -> Result<Vec<Applied>> {
        let _w = self.writer().await;
        let b = brand.brand_code.0 as i64;
        let mut tx = self.pool.begin().await?;
        let applied = self.record(&mut tx, brand, changes).await?;
        if let Some(idem) = idempotency {
            let answer = (idem.render)(&applied);
            sqlx::query("INSERT INTO idempotency (brand_code, key, request_hash, status, body, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(b)
                .bind(idem.key)
                .bind(idem.request_hash)
                .bind(i64::from(answer.status))
                .bind(answer.body)
                .bind(ms(Timestamp::now()))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(applied)
    }

    async fn idempotent_answer(&self, brand: BrandCode, key: &str) -> Result<Option<StoredAnswer>> {
        let row = sqlx::query(
            "SELECT request_hash, status, body FROM idempotency WHERE brand_code = $1 AND key = $2",
        )
        .bind(brand.0 as i64)
        .bind(key.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(StoredAnswer {
                request_hash: r.try_get("request_hash")?,
                status: r.try_get::<i64, _>("status")? as u16,
                body: r.try_get("body")?,
            })
        })
        .transpose()
    }

    async fn consents(&self, brand: BrandCode, recipient: &str) -> Result<Vec<ConsentRow>> {
        sqlx::query("SELECT * FROM consent WHERE brand_code = $1 AND recipient = $2 ORDER BY channel, recipient_type")
            .bind(brand.0 as i64)
            .bind(recipient.to_owned())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok(ConsentRow { key: key_from(r)?, state: state_from(r)? }))
            .collect()
    }

    async fn category_consents(
        &self,
        brand: BrandCode,
        subject: &str,
    ) -> Result<Vec<CategoryConsentRow>> {
        sqlx::query("SELECT * FROM category_consent WHERE brand_code = $1 AND subject = $2 ORDER BY category")
            .bind(brand.0 as i64)
            .bind(subject.to_owned())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(category_from)
            .collect()
    }

    async fn history(&self, brand: BrandCode, recipient: &str, limit: u32) -> Result<Vec<Event>> {
        let sql = "SELECT id, brand_code, recipient, recipient_type, channel, category, profile_id, status, consent_date, source, origin, actor, evidence, hold, outcome, received_at_ms, iys_transaction_id, delivered_transaction_id, iys_creation_date, iys_error, prev_hash, hash \
                   FROM consent_event WHERE brand_code = $1 AND recipient = $2 ORDER BY id DESC LIMIT $3";
        sqlx::query(sql)
            .bind(brand.0 as i64)
            .bind(recipient.to_owned())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(event_from)
            .collect()
    }

    async fn verify_chain(&self, brand: BrandCode) -> Result<ChainReport> {
        let b = brand.0 as i64;
        let mut prev = GENESIS.to_owned();
        let mut after = 0i64;
        let mut events = 0u64;
        // The events and the head from one snapshot: read apart, a write committed in between
        // shows a head past the last event read, reported as a break that is not there.
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        loop {
            let rows = sqlx::query(
                "SELECT id, brand_code, recipient, recipient_type, channel, category, profile_id, status, consent_date, source, origin, actor, evidence, hold, outcome, received_at_ms, iys_transaction_id, iys_creation_date, iys_error, prev_hash, hash \
                 FROM consent_event WHERE brand_code = $1 AND id > $2 ORDER BY id LIMIT 5000",
            )
            .bind(b)
            .bind(after)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let id: i64 = r.try_get("id")?;
                let get =
                    |c: &str| -> Result<Option<String>> { Ok(r.try_get::<Option<String>, _>(c)?) };
                let (recipient, rtype, channel) = (
                    get("recipient")?.unwrap_or_default(),
                    get("recipient_type")?.unwrap_or_default(),
                    get("channel")?.unwrap_or_default(),
                );
                let (status, cdate, source, origin, outcome) = (
                    get("status")?.unwrap_or_default(),
                    get("consent_date")?.unwrap_or_default(),
                    get("source")?.unwrap_or_default(),
                    get("origin")?.unwrap_or_default(),
                    get("outcome")?.unwrap_or_default(),
                );
                let (category, profile, actor, evidence, txid) = (
                    get("category")?,
                    get("profile_id")?,
                    get("actor")?,
                    get("evidence")?,
                    get("iys_transaction_id")?,
                );
                let fields = EventFields {
                    brand: b,
                    recipient: &recipient,
                    recipient_type: &rtype,
                    channel: &channel,
                    category: category.as_deref(),
                    profile_id: profile.as_deref(),
                    status: &status,
                    consent_date: &cdate,
                    source: &source,
                    origin: &origin,
                    actor: actor.as_deref(),
                    evidence: evidence.as_deref(),
                    hold: r.try_get("hold")?,
                    outcome: &outcome,
                    received_at_ms: r.try_get("received_at_ms")?,
                    iys_transaction_id: txid.as_deref(),
                };
                let stored_prev: String = r.try_get("prev_hash")?;
                let stored_hash: String = r.try_get("hash")?;
                events += 1;
                if stored_prev != prev || fields.hash(&prev) != stored_hash {
                    return Ok(ChainReport {
                        events,
                        valid: false,
                        first_broken_event: Some(id),
                        head: prev,
                    });
                }
                prev = stored_hash;
                after = id;
            }
        }
        let head: Option<String> =
            sqlx::query("SELECT last_hash FROM chain_head WHERE brand_code = $1")
                .bind(b)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("last_hash"))
                .transpose()?;
        tx.commit().await?;
        let valid = head.as_deref().is_none_or(|h| h == prev);
        Ok(ChainReport {
            events,
            valid,
            first_broken_event: (!valid).then_some(after),
            head: prev,
        })
    }

    async fn outbox_counts(&self, brand: BrandCode) -> Result<Vec<(String, i64)>> {
        sqlx::query("SELECT state, COUNT(*) AS n FROM outbox WHERE brand_code = $1 GROUP BY state ORDER BY state")
            .bind(brand.0 as i64)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
            .collect()
    }

    async fn upsert_category(&self, c: Category) -> Result<Category> {
        let _w = self.writer().await;
        let brand = c
            .brand_code
            .ok_or_else(|| StoreError::NotFound("brand".into()))?;
        sqlx::query("INSERT INTO category (brand_code, code, name, kind, created_at_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (brand_code, code) DO UPDATE SET name = excluded.name, kind = excluded.kind")
            .bind(brand.0 as i64)
            .bind(c.code.clone())
            .bind(c.name.clone())
            .bind(c.kind.as_str())
            .bind(ms(Timestamp::now()))
            .execute(&self.pool)
            .await?;
        Ok(c)
    }

    async fn categories(&self, brand: BrandCode) -> Result<Vec<Category>> {
        sqlx::query("SELECT * FROM category WHERE brand_code = $1 ORDER BY code")
            .bind(brand.0 as i64)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(Category {
                    brand_code: Some(brand),
                    code: r.try_get("code")?,
                    name: r.try_get("name")?,
                    kind: parse::<CategoryKind>("category.kind", &r.try_get::<String, _>("kind")?)?,
                })
            })
            .collect()
    }

    async fn delete_category(&self, brand: BrandCode, code: &str) -> Result<bool> {
        let _w = self.writer().await;
        let r = sqlx::query("DELETE FROM category WHERE brand_code = $1 AND code = $2")
            .bind(brand.0 as i64)
            .bind(code.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn upsert_profile(&self, p: Profile) -> Result<Profile> {
        let _w = self.writer().await;
        let brand = p
            .brand_code
            .ok_or_else(|| StoreError::NotFound("brand".into()))?;
        let now = ms(Timestamp::now());
        let attrs = p.attributes.as_ref().map(|a| a.to_string());
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO profile (brand_code, external_id, attributes, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (brand_code, external_id) DO UPDATE SET attributes = excluded.attributes, updated_at_ms = excluded.updated_at_ms")
            .bind(brand.0 as i64)
            .bind(p.external_id.clone())
            .bind(attrs)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM profile_address WHERE brand_code = $1 AND external_id = $2")
            .bind(brand.0 as i64)
            .bind(p.external_id.clone())
            .execute(&mut *tx)
            .await?;
        for a in &p.addresses {
            sqlx::query("INSERT INTO profile_address (brand_code, external_id, recipient) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(brand.0 as i64)
                .bind(p.external_id.clone())
                .bind(a.clone())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(p)
    }

    async fn profile(&self, brand: BrandCode, external_id: &str) -> Result<Option<Profile>> {
        let Some(row) = sqlx::query(
            "SELECT attributes FROM profile WHERE brand_code = $1 AND external_id = $2",
        )
        .bind(brand.0 as i64)
        .bind(external_id.to_owned())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let attrs: Option<String> = row.try_get("attributes")?;
        let addresses = sqlx::query("SELECT recipient FROM profile_address WHERE brand_code = $1 AND external_id = $2 ORDER BY recipient")
            .bind(brand.0 as i64)
            .bind(external_id.to_owned())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>("recipient"))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Some(Profile {
            brand_code: Some(brand),
            external_id: external_id.to_owned(),
            addresses,
            attributes: attrs
                .map(|a| serde_json::from_str(&a).map_err(|e| corrupt("profile.attributes", e)))
                .transpose()?,
        }))
    }

    async fn delete_profile(&self, brand: BrandCode, external_id: &str) -> Result<bool> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM profile_address WHERE brand_code = $1 AND external_id = $2")
            .bind(brand.0 as i64)
            .bind(external_id.to_owned())
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM profile WHERE brand_code = $1 AND external_id = $2")
            .bind(brand.0 as i64)
            .bind(external_id.to_owned())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    async fn create_api_key(&self, k: NewApiKey) -> Result<ApiKey> {
        let _w = self.writer().await;
        let id = uuid::Uuid::new_v4().to_string();
        // Stored to the millisecond; answer what a later read will see.
        let now = ts(ms(Timestamp::now()));
        let scopes: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
        let expires = k.expires_at.map(|t| ts(ms(t)));
        sqlx::query("INSERT INTO api_key (id, hash, name, brand_code, scopes, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(id.clone())
            .bind(k.hash.clone())
            .bind(k.name.clone())
            .bind(k.brand_code.map(|b| b.0 as i64))
            .bind(scopes.join(","))
            .bind(ms(now))
            .bind(expires.map(ms))
            .execute(&self.pool)
            .await?;
        Ok(ApiKey {
            id,
            name: k.name,
            brand_code: k.brand_code,
            scopes: k.scopes,
            created_at: now,
            revoked: false,
            last_used_at: None,
            expires_at: expires,
        })
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        sqlx::query("SELECT * FROM api_key WHERE hash = $1")
            .bind(hash.to_owned())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(api_key_from)
            .transpose()
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>> {
        sqlx::query("SELECT * FROM api_key ORDER BY created_at_ms")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(api_key_from)
            .collect()
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKey>> {
        sqlx::query("SELECT * FROM api_key WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(api_key_from)
            .transpose()
    }

    async fn revoke_api_key(&self, id: &str, now: Timestamp) -> Result<bool> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let Some(key) = sqlx::query("SELECT * FROM api_key WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(api_key_from)
            .transpose()?
        else {
            return Ok(false);
        };
        if key.is_provider_admin() && key.usable(now) {
            let others = sqlx::query("SELECT * FROM api_key WHERE id <> $1 AND brand_code IS NULL AND revoked_at_ms IS NULL")
                .bind(id.to_owned())
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(api_key_from)
                .collect::<Result<Vec<_>>>()?;
            if !others
                .iter()
                .any(|k| k.is_provider_admin() && k.usable(now))
            {
                return Err(StoreError::Conflict(
                    "the last usable provider admin key: create another admin key first; this key"
                        .into(),
                ));
            }
        }
        sqlx::query(
            "UPDATE api_key SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(ms(now))
        .bind(id.to_owned())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn rotate_api_key(&self, id: &str, hash: &str) -> Result<Option<ApiKey>> {
        let _w = self.writer().await;
        let r = sqlx::query("UPDATE api_key SET hash = $1 WHERE id = $2 AND revoked_at_ms IS NULL")
            .bind(hash.to_owned())
            .bind(id.to_owned())
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        drop(_w);
        self.api_key(id).await
    }

    async fn touch_api_key(&self, id: &str, now: Timestamp) -> Result<()> {
        let _w = self.writer().await;
        sqlx::query("UPDATE api_key SET last_used_at_ms = $1 WHERE id = $2")
            .bind(ms(now))
            .bind(id.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn api_key_from(r: &AnyRow) -> Result<ApiKey> {
    let scopes: String = r.try_get("scopes")?;
    Ok(ApiKey {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        brand_code: r
            .try_get::<Option<i64>, _>("brand_code")?
            .map(|b| BrandCode(b as u64)),
        scopes: scopes.split(',').filter_map(Scope::parse).collect(),
        created_at: ts(r.try_get("created_at_ms")?),
        revoked: r.try_get::<Option<i64>, _>("revoked_at_ms")?.is_some(),
        last_used_at: r.try_get::<Option<i64>, _>("last_used_at_ms")?.map(ts),
        expires_at: r.try_get::<Option<i64>, _>("expires_at_ms")?.map(ts),
    })
}
