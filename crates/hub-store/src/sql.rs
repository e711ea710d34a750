//! [`Store`] on SQLite and PostgreSQL through sqlx's `Any` driver.
//!
//! The SQL is written once with `$n` placeholders, which both databases accept; the few
//! statements that differ (row locks) are picked by [`Backend`]. SQLite runs in WAL mode with
//! `synchronous=FULL`, and its writes go through one lock so batches never meet a busy database.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hub_core::chain::{GENESIS, link};
use hub_core::{BrandCode, CategoryKind, Change, ConsentKey, ConsentState, IysState};

use jiff::Timestamp;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use tokio::sync::Mutex;

use crate::types::*;
use crate::{Backend, Result, Store, StoreError};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The SQL store. Clones share the pool, the write lock and the group commit.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// SQLite allows one writer; taking turns here avoids `database is locked`.
    write_lock: Arc<Mutex<()>>,
    /// Concurrent `apply` batches of a brand, committed together.
    pub(crate) groups: Arc<crate::group::Groups>,
    /// Native read-only connections for send-time checks (SQLite files).
    readers: Option<Arc<crate::sqlite_read::Readers>>,
    /// Native connections for send-time checks (PostgreSQL).
    pg: Option<sqlx::PgPool>,
}

/// The statement as the backend binds it fastest. SQLite looks a `$n` parameter's name up in a
/// list for every value bound (sqlx asks for each parameter's name), so a statement with
/// hundreds of parameters spent most of its time there; anonymous `?` parameters are bound by
/// position. The rewrite applies only when `$1, $2, …` each appear once, in order, outside
/// quotes (as in the generated multi-row statements); anything else is left as written.
pub(crate) fn positional(backend: Backend, sql: String) -> String {
    if backend != Backend::Sqlite {
        return sql;
    }
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let (mut expected, mut i, mut last) = (1usize, 0usize, 0usize);
    let mut quoted = false;
    while i < bytes.len() {
        match bytes.get(i) {
            Some(b'\'') => quoted = !quoted,
            Some(b'$') if !quoted => {
                let digits = bytes
                    .get(i + 1..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let number = sql.get(i + 1..i + 1 + digits).and_then(|d| d.parse().ok());
                if number != Some(expected) {
                    return sql;
                }
                out.push_str(sql.get(last..i).unwrap_or_default());
                out.push('?');
                expected += 1;
                i += 1 + digits;
                last = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(sql.get(last..).unwrap_or_default());
    out
}

/// Largest native SQLite read done in place: a few microseconds, less than handing it to another
/// thread. Larger ones go to the blocking pool so they do not hold up other requests.
const INLINE_READ: usize = 64;

/// Runs a large native SQLite read on the blocking pool.
async fn blocking<T: Send + 'static>(
    readers: &Arc<crate::sqlite_read::Readers>,
    read: impl FnOnce(&crate::sqlite_read::Readers) -> Result<T> + Send + 'static,
) -> Result<T> {
    let readers = readers.clone();
    tokio::task::spawn_blocking(move || read(&readers))
        .await
        .map_err(|e| StoreError::Sqlite(format!("a read was interrupted: {e}")))?
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
            write_lock: Arc::new(Mutex::new(())),
            groups: Arc::default(),
            readers: match backend {
                Backend::Sqlite => crate::sqlite_read::Readers::for_url(url).map(Arc::new),
                Backend::Postgres => None,
            },
            pg: match backend {
                Backend::Sqlite => None,
                Backend::Postgres => Some(crate::pg_read::pool(url).await?),
            },
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
        if let Some(pg) = &self.pg {
            pg.close().await;
        }
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

    /// The brand's mode as stored now (read under the brand's lock, it cannot change before the
    /// transaction ends); `None` for an unknown brand.
    pub(crate) async fn brand_mode(
        &self,
        conn: &mut sqlx::AnyConnection,
        brand: i64,
    ) -> Result<Option<hub_core::Mode>> {
        sqlx::query("SELECT mode FROM brand WHERE brand_code = $1")
            .bind(brand)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| parse("brand.mode", &r.try_get::<String, _>("mode")?))
            .transpose()
    }

    pub(crate) async fn writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.write_lock.lock().await),
            Backend::Postgres => None,
        }
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

pub(crate) fn state_from(row: &AnyRow) -> Result<ConsentState> {
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

pub(crate) fn key_from(row: &AnyRow) -> Result<ConsentKey> {
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

pub(crate) fn category_from(row: &AnyRow) -> Result<CategoryConsentRow> {
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
pub(crate) struct EventFields<'a> {
    pub(crate) brand: i64,
    pub(crate) recipient: &'a str,
    pub(crate) recipient_type: &'a str,
    pub(crate) channel: &'a str,
    pub(crate) category: Option<&'a str>,
    pub(crate) profile_id: Option<&'a str>,
    pub(crate) status: &'a str,
    pub(crate) consent_date: &'a str,
    pub(crate) source: &'a str,
    pub(crate) origin: &'a str,
    pub(crate) actor: Option<&'a str>,
    pub(crate) evidence: Option<&'a str>,
    pub(crate) hold: Option<i64>,
    pub(crate) outcome: &'a str,
    pub(crate) received_at_ms: i64,
    pub(crate) iys_transaction_id: Option<&'a str>,
}

impl EventFields<'_> {
    pub(crate) fn hash(&self, prev: &str) -> String {
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

pub(crate) fn event_from(row: &AnyRow) -> Result<Event> {
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
        origin: parse("event.origin", &row.try_get::<String, _>("origin")?)?,
        actor: row.try_get("actor")?,
        evidence: evidence
            .map(|e| serde_json::from_str(&e).map_err(|x| corrupt("event.evidence", x)))
            .transpose()?,
        hold: row.try_get::<Option<i64>, _>("hold")?.map(|h| h != 0),
        outcome: parse("event.outcome", &row.try_get::<String, _>("outcome")?)?,
        received_at: ts(row.try_get("received_at_ms")?),
        iys_transaction_id: row.try_get("iys_transaction_id")?,
        delivered_transaction_id: row.try_get("delivered_transaction_id")?,
        iys_creation_date: row.try_get("iys_creation_date")?,
        iys_error: row.try_get("iys_error")?,
        hash: row.try_get("hash")?,
    })
}

pub(crate) fn category_state(c: &CategoryConsentRow, updated_at: Timestamp) -> ConsentState {
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
        self.apply_grouped(brand, changes, idempotency).await
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

    async fn send_states(
        &self,
        brand: BrandCode,
        channel: hub_core::Channel,
        recipient_type: iys::RecipientType,
        recipients: &[String],
    ) -> Result<std::collections::HashMap<String, hub_core::SendState>> {
        if let Some(readers) = &self.readers {
            if recipients.len() <= INLINE_READ {
                return readers.send_states(brand, channel, recipient_type, recipients);
            }
            return blocking(readers, {
                let recipients = recipients.to_vec();
                move |r| r.send_states(brand, channel, recipient_type, &recipients)
            })
            .await;
        }
        if let Some(pg) = &self.pg {
            return crate::pg_read::send_states(pg, brand, channel, recipient_type, recipients)
                .await;
        }
        let mut states = std::collections::HashMap::with_capacity(recipients.len());
        for chunk in recipients.chunks(500) {
            let list = crate::record::in_list(4, chunk.len());
            let mut q = sqlx::query(sqlx::AssertSqlSafe(positional(self.backend, format!(
                "SELECT recipient, status, source, iys_state, hold FROM consent WHERE brand_code = $1 AND channel = $2 AND recipient_type = $3 AND recipient IN ({list})"
            ))))
            .bind(brand.0 as i64)
            .bind(channel.as_str())
            .bind(recipient_type.as_str());
            for r in chunk {
                q = q.bind(r.clone());
            }
            for row in q.fetch_all(&self.pool).await? {
                let source: iys::Source =
                    parse("consent.source", &row.try_get::<String, _>("source")?)?;
                states.insert(
                    row.try_get("recipient")?,
                    hub_core::SendState {
                        status: parse("consent.status", &row.try_get::<String, _>("status")?)?,
                        from_iys: source.is_iys(),
                        iys_state: parse(
                            "consent.iys_state",
                            &row.try_get::<String, _>("iys_state")?,
                        )?,
                        hold: row.try_get::<i64, _>("hold")? != 0,
                    },
                );
            }
        }
        Ok(states)
    }

    async fn category_statuses(
        &self,
        brand: BrandCode,
        category: &str,
        subjects: &[String],
    ) -> Result<std::collections::HashMap<String, iys::ConsentStatus>> {
        if let Some(readers) = &self.readers {
            if subjects.len() <= INLINE_READ {
                return readers.category_statuses(brand, category, subjects);
            }
            return blocking(readers, {
                let (category, subjects) = (category.to_owned(), subjects.to_vec());
                move |r| r.category_statuses(brand, &category, &subjects)
            })
            .await;
        }
        if let Some(pg) = &self.pg {
            return crate::pg_read::category_statuses(pg, brand, category, subjects).await;
        }
        let mut statuses = std::collections::HashMap::new();
        for chunk in subjects.chunks(500) {
            let list = crate::record::in_list(3, chunk.len());
            let mut q = sqlx::query(sqlx::AssertSqlSafe(positional(self.backend, format!(
                "SELECT subject, status FROM category_consent WHERE brand_code = $1 AND category = $2 AND subject IN ({list})"
            ))))
            .bind(brand.0 as i64)
            .bind(category.to_owned());
            for s in chunk {
                q = q.bind(s.clone());
            }
            for row in q.fetch_all(&self.pool).await? {
                statuses.insert(
                    row.try_get("subject")?,
                    parse(
                        "category_consent.status",
                        &row.try_get::<String, _>("status")?,
                    )?,
                );
            }
        }
        Ok(statuses)
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

    async fn list_consents(
        &self,
        brand: BrandCode,
        filter: &ConsentFilter,
        after: Option<&ConsentKey>,
        limit: u32,
    ) -> Result<Vec<ConsentRow>> {
        self.list_consents_page(brand, filter, after, limit).await
    }

    async fn history_page(
        &self,
        brand: BrandCode,
        recipient: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Event>> {
        self.events_before(brand, recipient, before, limit).await
    }

    async fn audit_log(
        &self,
        brand: Option<BrandCode>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        self.audit_page(brand, before, limit).await
    }

    async fn audit(
        &self,
        brand: Option<BrandCode>,
        actor: &str,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        self.audit_entry(brand, actor, action, detail).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_binds_in_order_parameters_by_position() {
        let sql = "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3) AND c = '$9'".to_owned();
        assert_eq!(
            positional(Backend::Sqlite, sql.clone()),
            "SELECT * FROM t WHERE a = ? AND b IN (?, ?) AND c = '$9'"
        );
        assert_eq!(positional(Backend::Postgres, sql.clone()), sql);
        // Reused or out-of-order parameters keep their numbers.
        for kept in ["a = $1 OR b = $1", "a = $2 AND b = $1", "a = $10", "a = $"] {
            assert_eq!(positional(Backend::Sqlite, kept.to_owned()), kept);
        }
        assert_eq!(
            positional(Backend::Sqlite, "no parameters".into()),
            "no parameters"
        );
    }
}
