//! [`Store`] on SQLite and PostgreSQL through sqlx's `Any` driver.
//!
//! The SQL is written once with `$n` placeholders, which both databases accept; the few
//! statements that differ (row locks) are picked by [`Backend`]. SQLite runs in WAL mode with
//! `synchronous=FULL`, and its writes go through one lock so batches never meet a busy database.
//!
//! By concern: brands, categories and profiles, API keys, the send-time reads and the chain check
//! are in submodules as inherent methods named as the trait's, which [`Store`] delegates to; rows
//! are decoded in `rows`.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hub_core::{BrandCode, Change, ConsentKey};
use jiff::Timestamp;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};
use tokio::sync::Mutex;

use crate::types::*;
use crate::{Backend, Result, Store, StoreError};

mod brands;
mod catalog;
mod chain;
mod keys;
mod reads;
mod rows;

pub(crate) use rows::*;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The SQL store. Clones share the pool, the write lock and the group commit.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// SQLite allows one writer; taking turns here avoids `database is locked`. Holds the
    /// native writer of a SQLite file.
    write_lock: Arc<Mutex<crate::tx::Writer>>,
    /// Concurrent `apply` batches of a brand, committed together.
    pub(crate) groups: Arc<crate::group::Groups>,
    /// Native read-only connections for send-time checks (SQLite files).
    pub(crate) readers: Option<Arc<crate::sqlite_read::Readers>>,
    /// Native connections for listings and exports (PostgreSQL).
    pub(crate) pg: Option<sqlx::PgPool>,
    /// Native connections for the ledger's write transactions (PostgreSQL), apart from the
    /// checks' so a burst of writes never queues a send-time check.
    pub(crate) pg_writes: Option<sqlx::PgPool>,
    /// Send-time checks on PostgreSQL, on connections of their own; single checks are answered
    /// together when they arrive together.
    pub(crate) pg_checks: Option<crate::pg_read::Coalescer>,
    /// In-memory send states for long lists on PostgreSQL (on a SQLite file: `readers`').
    pub(crate) pg_mirrors: Option<Arc<crate::mirror::Mirrors>>,
    /// Small checks on a SQLite file, combined into shared read transactions.
    pub(crate) sqlite_checks: Option<crate::sqlite_read::Combiner>,
    /// When PostgreSQL's planner statistics were last refreshed, in rows written.
    pub(crate) statistics: Arc<crate::statistics::Statistics>,
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

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// `e`, naming the recipient whose stored row it is when the row cannot be read, so the one to
/// mend can be found.
pub(crate) fn in_row_of(e: StoreError, recipient: &str) -> StoreError {
    match e {
        StoreError::Corrupt(what) => {
            StoreError::Corrupt(format!("{what}, in the row of {recipient}"))
        }
        e => e,
    }
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
                                // 32 MiB of page cache (SQLite's default is 2 MiB): a batch of
                                // thousands of changes otherwise spills pages to the WAL before
                                // its commit. Four connections: at most 128 MiB, used as filled.
                                "PRAGMA cache_size = -32768",
                                // The native writer's checkpoint thread copies the WAL
                                // (`checkpoint.rs`); these connections, which write little,
                                // checkpoint only at the same backstop size as the writer.
                                "PRAGMA wal_autocheckpoint = 16384",
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
        let (pg, pg_writes, pg_checks) = match backend {
            Backend::Sqlite => (None, None, None),
            Backend::Postgres => (
                Some(crate::pg_read::pool(url, 4).await?),
                Some(crate::pg_read::pool(url, 8).await?),
                Some(crate::pg_read::Coalescer::start(
                    crate::pg_read::checks_pool(url).await?,
                )),
            ),
        };
        let pg_mirrors = pg
            .clone()
            .map(|pool| Arc::new(crate::mirror::Mirrors::postgres(pool)));
        let readers = match backend {
            Backend::Sqlite => crate::sqlite_read::Readers::for_url(url).map(Arc::new),
            Backend::Postgres => None,
        };
        let store = SqlStore {
            pool,
            backend,
            write_lock: Arc::new(Mutex::new(crate::tx::Writer::for_path(match backend {
                Backend::Sqlite => crate::sqlite_read::sqlite_file(url),
                Backend::Postgres => None,
            }))),
            groups: Arc::default(),
            sqlite_checks: readers
                .as_ref()
                .map(|r| crate::sqlite_read::Combiner::start(r.clone())),
            readers,
            pg_checks,
            pg_mirrors,
            statistics: Arc::default(),
            pg,
            pg_writes,
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
            Backend::Postgres => {
                POSTGRES_MIGRATIONS.run(&self.pool).await?;
                // Named at every start until the rows are mended; a failed look stops nothing.
                match self.unvalidated_checks().await {
                    Ok(checks) => {
                        for (table, check) in checks {
                            tracing::warn!(
                                table,
                                check,
                                "existing rows break this check, so it checks new rows only; \
                                 mend them and validate it (docs/deployment.md, migration 0019)"
                            );
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not list unvalidated checks"),
                }
            }
        }
        Ok(())
    }

    /// PostgreSQL's CHECK constraints (migration 0019) that existing rows break, as (table,
    /// constraint): they hold for new and updated rows only. Always empty on SQLite.
    pub async fn unvalidated_checks(&self) -> Result<Vec<(String, String)>> {
        if self.backend != Backend::Postgres {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_as(
            "SELECT CAST(CAST(conrelid AS regclass) AS TEXT), CAST(conname AS TEXT) FROM pg_constraint \
             WHERE contype = 'c' AND NOT convalidated \
             AND connamespace = CAST(current_schema() AS regnamespace) ORDER BY 1, 2",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn close(&self) {
        let checks = self.pg_checks.as_ref().map(|c| c.pool());
        for pg in [self.pg.as_ref(), self.pg_writes.as_ref(), checks]
            .into_iter()
            .flatten()
        {
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
    /// transaction ends); `None` for an unknown brand. A statement of its own, after the lock:
    /// folded into the lock's statement (`… JOIN brand … FOR UPDATE OF chain_head`), PostgreSQL
    /// returns the brand row as of that statement's start, before a mode switch holding the lock
    /// committed (tried; the two-instance stress test found a held row in integrator mode).
    pub(crate) async fn brand_mode(
        &self,
        conn: &mut crate::tx::Tx<'_>,
        brand: i64,
    ) -> Result<Option<hub_core::Mode>> {
        use crate::tx::Columns;
        conn.fetch_optional(
            "SELECT mode FROM brand WHERE brand_code = $1",
            &[brand.into()],
        )
        .await?
        .map(|r| parse("brand.mode", &r.text("mode")?))
        .transpose()
    }

    pub(crate) async fn writer(&self) -> Option<tokio::sync::MutexGuard<'_, crate::tx::Writer>> {
        match self.backend {
            Backend::Sqlite => Some(self.write_lock.lock().await),
            Backend::Postgres => None,
        }
    }

    /// Begins a transaction that writes, on the `Any` pool. SQLite takes its write lock at the
    /// start (`BEGIN IMMEDIATE`), waiting out `busy_timeout` for it: a deferred transaction
    /// that reads first fails at its first write, at once and without waiting, when another
    /// process holds the write lock or committed since the read (`iyshub admin create` beside a
    /// running hub failed so in CI).
    pub(crate) async fn begin_writing(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
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
        SqlStore::create_brand(self, b).await
    }

    async fn brands(&self) -> Result<Vec<Brand>> {
        SqlStore::brands(self).await
    }

    async fn brand(&self, code: BrandCode) -> Result<Option<Brand>> {
        SqlStore::brand(self, code).await
    }

    async fn update_brand(&self, code: BrandCode, patch: BrandPatch) -> Result<Option<Brand>> {
        SqlStore::update_brand(self, code, patch).await
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
            .map(consent_row_from)
            .collect()
    }

    async fn send_states(
        &self,
        brand: BrandCode,
        channel: hub_core::Channel,
        recipient_type: iys::RecipientType,
        recipients: &[String],
    ) -> Result<std::collections::HashMap<String, hub_core::SendState>> {
        SqlStore::send_states(self, brand, channel, recipient_type, recipients).await
    }

    async fn send_states_aligned(
        &self,
        brand: BrandCode,
        channel: hub_core::Channel,
        recipient_type: iys::RecipientType,
        recipients: Arc<[String]>,
    ) -> Result<Vec<Option<hub_core::SendState>>> {
        SqlStore::send_states_aligned(self, brand, channel, recipient_type, recipients).await
    }

    async fn category_statuses(
        &self,
        brand: BrandCode,
        category: &str,
        subjects: &[String],
    ) -> Result<std::collections::HashMap<String, iys::ConsentStatus>> {
        SqlStore::category_statuses(self, brand, category, subjects).await
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
        SqlStore::verify_chain(self, brand).await
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
        SqlStore::upsert_category(self, c).await
    }

    async fn categories(&self, brand: BrandCode) -> Result<Vec<Category>> {
        SqlStore::categories(self, brand).await
    }

    async fn delete_category(&self, brand: BrandCode, code: &str) -> Result<bool> {
        SqlStore::delete_category(self, brand, code).await
    }

    async fn upsert_profile(&self, p: Profile) -> Result<Profile> {
        SqlStore::upsert_profile(self, p).await
    }

    async fn profile(&self, brand: BrandCode, external_id: &str) -> Result<Option<Profile>> {
        SqlStore::profile(self, brand, external_id).await
    }

    async fn delete_profile(&self, brand: BrandCode, external_id: &str) -> Result<bool> {
        SqlStore::delete_profile(self, brand, external_id).await
    }

    async fn create_api_key(&self, k: NewApiKey) -> Result<ApiKey> {
        SqlStore::create_api_key(self, k).await
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        SqlStore::api_key_by_hash(self, hash).await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>> {
        SqlStore::api_keys(self).await
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKey>> {
        SqlStore::api_key(self, id).await
    }

    async fn revoke_api_key(&self, id: &str, now: Timestamp) -> Result<bool> {
        SqlStore::revoke_api_key(self, id, now).await
    }

    async fn rotate_api_key(&self, id: &str, hash: &str) -> Result<Option<ApiKey>> {
        SqlStore::rotate_api_key(self, id, hash).await
    }

    async fn touch_api_key(&self, id: &str, now: Timestamp) -> Result<()> {
        SqlStore::touch_api_key(self, id, now).await
    }
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
