//! Throwaway databases, and the baselines' direct access to them.
//!
//! SQLite lives in a temporary directory; on PostgreSQL each scenario creates its own database
//! (`iyshub_bench_<uuid>`) and drops it afterwards, like the tests' `testkit` does, so runs
//! never see each other's rows. The baselines reach the database through sqlx's `Any` driver
//! with the store's own pool settings, so hub and baseline pay the same driver and the same
//! durability (SQLite: WAL, `synchronous=FULL`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use hub_store::SqlStore;
use serde::Serialize;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Connection, Row};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// Rows per multi-row INSERT: the store's own sizes, measured as the fastest through the
    /// `Any` driver (hub-store's record.rs).
    pub fn rows_per_statement(self) -> usize {
        match self {
            Backend::Sqlite => 16,
            Backend::Postgres => 64,
        }
    }
}

/// One scenario's database.
#[derive(Debug)]
pub struct Db {
    pub backend: Backend,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    /// The server's admin URL and the database's name, to drop it.
    postgres: Option<(String, String)>,
}

impl Db {
    pub async fn fresh(backend: Backend, admin: Option<&str>) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix("iyshub-bench-")
                    .tempdir()
                    .context("creating a temporary directory for SQLite")?;
                let url = SqlStore::sqlite_url(&dir.path().join("hub.db"))?;
                Ok(Db {
                    backend,
                    url,
                    _dir: Some(dir),
                    postgres: None,
                })
            }
            Backend::Postgres => {
                let Some(admin) = admin else {
                    bail!("no PostgreSQL server given");
                };
                let name = format!("iyshub_bench_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::AnyConnection::connect(admin)
                    .await
                    .context("connecting to the PostgreSQL server")?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .context("creating a throwaway database (the user needs CREATEDB)")?;
                let _ = conn.close().await;
                Ok(Db {
                    backend,
                    url: with_database(admin, &name)?,
                    _dir: None,
                    postgres: Some((admin.to_owned(), name)),
                })
            }
        }
    }

    /// The hub's store on this database (migrated).
    pub async fn store(&self) -> anyhow::Result<Arc<SqlStore>> {
        Ok(Arc::new(
            SqlStore::connect(&self.url)
                .await
                .context("opening the hub's store")?,
        ))
    }

    /// A pool with the store's settings, for the baselines.
    pub async fn raw_pool(&self) -> anyhow::Result<AnyPool> {
        let pool = match self.backend {
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
                    .connect(&self.url)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(&self.url)
                    .await?
            }
        };
        Ok(pool)
    }

    /// PostgreSQL: refreshes the planner's statistics after data was prepared, as autovacuum
    /// does within a minute in a running hub. Without them a table filled a moment ago looks
    /// empty to the planner, which then scans it for every `IN (…)` list and every claim
    /// (BENCHMARKS.md shows what that costs). SQLite plans by its indexes without statistics.
    pub async fn analyze(&self) -> anyhow::Result<()> {
        if self.backend == Backend::Postgres {
            let mut conn = sqlx::AnyConnection::connect(&self.url).await?;
            sqlx::query("ANALYZE").execute(&mut conn).await?;
            let _ = conn.close().await;
        }
        Ok(())
    }

    /// Removes the database (PostgreSQL: dropped, closing what still holds it).
    pub async fn remove(mut self) -> anyhow::Result<()> {
        if let Some((admin, name)) = self.postgres.take() {
            let mut conn = sqlx::AnyConnection::connect(&admin).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .with_context(|| format!("dropping the throwaway database {name}"))?;
            let _ = conn.close().await;
        }
        Ok(())
    }
}

/// The admin URL with its database replaced by `name` (query parameters kept).
fn with_database(admin: &str, name: &str) -> anyhow::Result<String> {
    let (main, query) = match admin.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (admin, None),
    };
    let Some((scheme, rest)) = main.split_once("://") else {
        bail!("the PostgreSQL URL has no scheme (postgres://…)");
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let mut url = format!("{scheme}://{authority}/{name}");
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    Ok(url)
}

/// The database's version, for the header.
pub async fn server_version(backend: Backend, admin: Option<&str>) -> anyhow::Result<String> {
    sqlx::any::install_default_drivers();
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::AnyConnection::connect("sqlite::memory:").await?;
            let row = sqlx::query("SELECT sqlite_version()")
                .fetch_one(&mut conn)
                .await?;
            let v: String = row.try_get(0)?;
            Ok(format!(
                "SQLite {v} (WAL, synchronous=FULL, temporary directory {})",
                std::env::temp_dir().display()
            ))
        }
        Backend::Postgres => {
            let Some(admin) = admin else {
                bail!("no PostgreSQL server given");
            };
            let mut conn = sqlx::AnyConnection::connect(admin)
                .await
                .context("connecting to the PostgreSQL server")?;
            let row = sqlx::query("SELECT version()").fetch_one(&mut conn).await?;
            let v: String = row.try_get(0)?;
            let host = admin.split_once('@').map_or("the given server", |(_, h)| h);
            Ok(format!(
                "{} (at {host}; a fresh database per scenario)",
                v.split(" on ").next().unwrap_or(&v)
            ))
        }
    }
}

/// The baselines' scratch table: the columns of one change, as the API receives it.
pub async fn create_scratch(pool: &AnyPool) -> anyhow::Result<()> {
    sqlx::query(
        "CREATE TABLE bench_scratch (id BIGINT PRIMARY KEY, brand_code BIGINT NOT NULL, \
         recipient TEXT NOT NULL, recipient_type TEXT NOT NULL, channel TEXT NOT NULL, \
         status TEXT NOT NULL, consent_date TEXT NOT NULL, source TEXT NOT NULL, \
         origin TEXT NOT NULL, actor TEXT, evidence TEXT, received_at_ms BIGINT NOT NULL)",
    )
    .execute(pool)
    .await
    .context("creating the baseline's scratch table")?;
    Ok(())
}

const SCRATCH_COLUMNS: usize = 12;

/// `INSERT INTO bench_scratch … VALUES (…), (…)` for `rows` rows. On SQLite the placeholders
/// are positional (`?`), as in the store's own statements there: sqlx binds a `$N` by asking
/// SQLite for each parameter's name, a walk through the statement's list of names, so a
/// statement of n `$N` parameters costs n² steps to bind.
pub fn scratch_insert_sql(backend: Backend, rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO bench_scratch (id, brand_code, recipient, recipient_type, channel, status, \
         consent_date, source, origin, actor, evidence, received_at_ms) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..SCRATCH_COLUMNS {
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => sql.push_str(&format!("${}", r * SCRATCH_COLUMNS + c + 1)),
            }
        }
        sql.push(')');
    }
    sql
}

/// Binds the scratch row of change `n` (the same data a change through the API carries).
pub fn bind_scratch<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    n: u64,
    date: &str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(n as i64)
        .bind(super::harness::BRAND.0 as i64)
        .bind(super::harness::recipient(n))
        .bind("BIREYSEL")
        .bind("MESAJ")
        .bind("ONAY")
        .bind(date.to_owned())
        .bind("HS_WEB")
        .bind("api")
        .bind("bench")
        .bind(super::harness::EVIDENCE.to_owned())
        .bind(jiff::Timestamp::now().as_millisecond())
}

/// Rows the hub holds in `consent` for the brand: how a run checks that every change landed.
pub async fn consent_rows(pool: &AnyPool) -> anyhow::Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) FROM consent WHERE brand_code = $1")
        .bind(super::harness::BRAND.0 as i64)
        .fetch_one(pool)
        .await?;
    Ok(row.try_get(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_name_replaces_the_admin_database() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x").unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x").unwrap(),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x").unwrap(),
            "postgres://h:5432/x"
        );
        assert!(with_database("nonsense", "x").is_err());
    }

    #[test]
    fn the_insert_has_a_placeholder_per_value() {
        let sql = scratch_insert_sql(Backend::Postgres, 2);
        assert!(sql.ends_with("($13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)"));
        let sql = scratch_insert_sql(Backend::Sqlite, 2);
        assert!(sql.ends_with("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    }
}
