//! Bulk imports' bookkeeping: the job with its progress, the uploaded file in chunks, and the
//! rejected rows.
//!
//! Each batch of an import is applied through [`crate::Store::apply`] with an idempotency key of
//! its own (the ledger write and the key commit together); at the end of each window of batches
//! its progress (last line, counts, rejects) is recorded in one transaction here. A crash in
//! between re-applies the window's batches on resume, which the keys turn into replays of the
//! stored answers: no row is applied twice and the counts stay exact.

use std::future::Future;
use std::str::FromStr;

use hub_core::BrandCode;
use jiff::Timestamp;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::{corrupt, ms, parse, ts};
use crate::{Result, SqlStore, StoreError};

/// Where an import stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportState {
    /// The file is being uploaded.
    Uploading,
    /// Uploaded; waiting for a worker.
    Queued,
    /// Rows are being applied (or were, when its runner stopped: it resumes).
    Running,
    /// Every row applied or rejected.
    Done,
    /// Stopped for good (an unreadable file, a missing column): `error` says why.
    Failed,
}

impl ImportState {
    pub const ALL: [ImportState; 5] = [
        ImportState::Uploading,
        ImportState::Queued,
        ImportState::Running,
        ImportState::Done,
        ImportState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ImportState::Uploading => "uploading",
            ImportState::Queued => "queued",
            ImportState::Running => "running",
            ImportState::Done => "done",
            ImportState::Failed => "failed",
        }
    }

    /// Whether nothing more will happen to it.
    pub fn finished(self) -> bool {
        matches!(self, ImportState::Done | ImportState::Failed)
    }
}

impl FromStr for ImportState {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        ImportState::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown import state {s:?}"))
    }
}

/// Who reads an import's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportVia {
    /// Uploaded through the API and kept in the database: any instance's worker runs it.
    Api,
    /// A file read by `iyshub import`: only that command runs (or resumes) it.
    Cli,
}

impl ImportVia {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportVia::Api => "api",
            ImportVia::Cli => "cli",
        }
    }
}

impl FromStr for ImportVia {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "api" => Ok(ImportVia::Api),
            "cli" => Ok(ImportVia::Cli),
            other => Err(format!("unknown import origin {other:?}")),
        }
    }
}

/// What an import's rows did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportCounts {
    /// Changed a consent (applied, resent, conflict, hold changed).
    pub applied: u64,
    /// The same as the stored state: recorded, nothing changed.
    pub unchanged: u64,
    /// Older than the stored state: recorded, nothing changed.
    pub older: u64,
    /// Refused: see the rejects.
    pub rejected: u64,
}

impl std::ops::AddAssign for ImportCounts {
    fn add_assign(&mut self, o: ImportCounts) {
        self.applied += o.applied;
        self.unchanged += o.unchanged;
        self.older += o.older;
        self.rejected += o.rejected;
    }
}

impl ImportCounts {
    pub fn rows(&self) -> u64 {
        self.applied + self.unchanged + self.older + self.rejected
    }
}

/// An import job.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportJob {
    pub id: i64,
    pub brand_code: BrandCode,
    pub file_name: Option<String>,
    #[serde(skip)]
    pub file_hash: Option<String>,
    pub format: String,
    /// Overrides of the column mapping (`column`, `field`).
    pub mapping: Vec<(String, String)>,
    pub actor: Option<String>,
    pub via: ImportVia,
    pub dry_run: bool,
    pub state: ImportState,
    pub file_bytes: u64,
    /// The last line of the last recorded window: a resumed import goes on after it.
    pub line: u64,
    pub rows_read: u64,
    #[serde(flatten)]
    pub counts: ImportCounts,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// A new import job.
#[derive(Debug, Clone)]
pub struct NewImport {
    pub brand_code: BrandCode,
    pub file_name: Option<String>,
    pub file_hash: Option<String>,
    pub format: String,
    pub mapping: Vec<(String, String)>,
    pub actor: Option<String>,
    pub via: ImportVia,
    pub dry_run: bool,
    pub state: ImportState,
}

/// A rejected row: its line, the H-code or rule, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReject {
    pub line: u64,
    pub code: String,
    pub field: Option<String>,
    pub value: Option<String>,
    pub message: String,
}

/// One committed window's progress.
#[derive(Debug, Clone, Default)]
pub struct ImportProgress {
    /// The last line of the window.
    pub line: u64,
    /// Rows the window read (rejects included).
    pub rows: u64,
    pub counts: ImportCounts,
    pub rejects: Vec<ImportReject>,
}

const COLUMNS: &str = "id, brand_code, file_name, file_hash, format, mapping, actor, via, dry_run, state, file_bytes, line, rows_read, applied, unchanged, older, rejected, error, created_at_ms, updated_at_ms, finished_at_ms";

fn count(r: &AnyRow, column: &str) -> Result<u64> {
    let n: i64 = r.try_get(column)?;
    u64::try_from(n).map_err(|e| corrupt(column, e))
}

fn job_from(r: &AnyRow) -> Result<ImportJob> {
    let mapping: String = r.try_get("mapping")?;
    let state: String = r.try_get("state")?;
    let via: String = r.try_get("via")?;
    Ok(ImportJob {
        id: r.try_get("id")?,
        brand_code: BrandCode(count(r, "brand_code")?),
        file_name: r.try_get("file_name")?,
        file_hash: r.try_get("file_hash")?,
        format: r.try_get("format")?,
        mapping: serde_json::from_str(&mapping).map_err(|e| corrupt("import mapping", e))?,
        actor: r.try_get("actor")?,
        via: parse("import via", &via)?,
        dry_run: r.try_get::<i64, _>("dry_run")? != 0,
        state: parse("import state", &state)?,
        file_bytes: count(r, "file_bytes")?,
        line: count(r, "line")?,
        rows_read: count(r, "rows_read")?,
        counts: ImportCounts {
            applied: count(r, "applied")?,
            unchanged: count(r, "unchanged")?,
            older: count(r, "older")?,
            rejected: count(r, "rejected")?,
        },
        error: r.try_get("error")?,
        created_at: ts(r.try_get("created_at_ms")?),
        updated_at: ts(r.try_get("updated_at_ms")?),
        finished_at: r.try_get::<Option<i64>, _>("finished_at_ms")?.map(ts),
    })
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Import jobs: their uploaded files, leases, progress and rejected rows.
pub trait ImportStore: Send + Sync {
    /// Records a new import job.
    fn create_import(
        &self,
        new: NewImport,
        now: Timestamp,
    ) -> impl Future<Output = Result<ImportJob>> + Send;

    /// Adds the next piece of an uploading import's file.
    fn append_import_chunk(
        &self,
        id: i64,
        seq: i64,
        data: &[u8],
    ) -> impl Future<Output = Result<()>> + Send;

    /// The format an upload was found to have.
    fn set_import_format(&self, id: i64, format: &str) -> impl Future<Output = Result<()>> + Send;

    /// The mapping's overrides of an import not started yet (a person adjusted them after
    /// seeing the preview). False when the import has started or does not exist.
    fn set_import_mapping(
        &self,
        id: i64,
        mapping: &[(String, String)],
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Piece `seq` of an uploaded file, if there is one.
    fn import_chunk(
        &self,
        id: i64,
        seq: i64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;

    /// Moves an import to `state`; a finished one gets its time and, when failed, the reason.
    fn set_import_state(
        &self,
        id: i64,
        state: ImportState,
        error: Option<&str>,
        now: Timestamp,
    ) -> impl Future<Output = Result<()>> + Send;

    /// A brand's import.
    fn import_job(
        &self,
        brand: BrandCode,
        id: i64,
    ) -> impl Future<Output = Result<Option<ImportJob>>> + Send;

    /// A brand's imports, newest first, before `before` (exclusive).
    fn imports(
        &self,
        brand: BrandCode,
        before: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ImportJob>>> + Send;

    /// The command line's unfinished import of the same file into the same brand, to resume.
    fn unfinished_import(
        &self,
        brand: BrandCode,
        file_hash: &str,
    ) -> impl Future<Output = Result<Option<ImportJob>>> + Send;

    /// Takes an uploaded import to run: a queued one, or a running one whose runner's lease has
    /// expired (its instance stopped). The lease is renewed after each batch.
    fn claim_import(
        &self,
        owner: &str,
        lease_ms: i64,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<ImportJob>>> + Send;

    /// Renews `owner`'s lease on a running import to `until` between the batches of a window
    /// (whose progress is recorded only at its end). Refused (`StoreError::Conflict`) when
    /// another runner holds the import: this one stops.
    fn renew_import_lease(
        &self,
        id: i64,
        owner: &str,
        until: Timestamp,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Records a committed window: the last line, the counts and the rejects, in one transaction,
    /// and renews `owner`'s lease to `lease_until`. Refused when another runner holds the import
    /// (`StoreError::Conflict`): this one stops.
    fn record_import_progress(
        &self,
        id: i64,
        owner: Option<&str>,
        lease_until: Option<Timestamp>,
        progress: &ImportProgress,
        now: Timestamp,
    ) -> impl Future<Output = Result<()>> + Send;

    /// An import's rejected rows in line order, after line `after` (exclusive).
    fn import_rejects(
        &self,
        id: i64,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ImportReject>>> + Send;

    /// Drops a finished import's uploaded file (its rejects and counts stay).
    fn drop_import_file(&self, id: i64) -> impl Future<Output = Result<()>> + Send;
}

impl ImportStore for SqlStore {
    async fn create_import(&self, new: NewImport, now: Timestamp) -> Result<ImportJob> {
        let mapping = serde_json::to_string(&new.mapping).map_err(|e| corrupt("mapping", e))?;
        let sql = format!(
            "INSERT INTO import_job (brand_code, file_name, file_hash, format, mapping, actor, via, dry_run, state, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING {COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(new.brand_code.0 as i64)
            .bind(new.file_name)
            .bind(new.file_hash)
            .bind(new.format)
            .bind(mapping)
            .bind(new.actor)
            .bind(new.via.as_str())
            .bind(i64::from(new.dry_run))
            .bind(new.state.as_str())
            .bind(ms(now))
            .fetch_one(&self.pool)
            .await?;
        job_from(&row)
    }

    async fn append_import_chunk(&self, id: i64, seq: i64, data: &[u8]) -> Result<()> {
        let mut tx = self.begin_writing().await?;
        sqlx::query("INSERT INTO import_chunk (import_id, seq, data) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(seq)
            .bind(data.to_vec())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE import_job SET file_bytes = file_bytes + $1 WHERE id = $2")
            .bind(data.len() as i64)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_import_format(&self, id: i64, format: &str) -> Result<()> {
        sqlx::query("UPDATE import_job SET format = $1 WHERE id = $2")
            .bind(format.to_owned())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_import_mapping(&self, id: i64, mapping: &[(String, String)]) -> Result<bool> {
        let mapping = serde_json::to_string(mapping).map_err(|e| corrupt("mapping", e))?;
        let r = sqlx::query("UPDATE import_job SET mapping = $1 WHERE id = $2 AND state = $3")
            .bind(mapping)
            .bind(id)
            .bind(ImportState::Uploading.as_str())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn import_chunk(&self, id: i64, seq: i64) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query("SELECT data FROM import_chunk WHERE import_id = $1 AND seq = $2")
                .bind(id)
                .bind(seq)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get::<Vec<u8>, _>("data"))
                .transpose()?,
        )
    }

    async fn set_import_state(
        &self,
        id: i64,
        state: ImportState,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE import_job SET state = $1, error = $2, updated_at_ms = $3, finished_at_ms = $4, \
             lease_owner = CASE WHEN $5 = 1 THEN NULL ELSE lease_owner END WHERE id = $6",
        )
        .bind(state.as_str())
        .bind(error.map(str::to_owned))
        .bind(ms(now))
        .bind(state.finished().then(|| ms(now)))
        .bind(i64::from(state.finished()))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn import_job(&self, brand: BrandCode, id: i64) -> Result<Option<ImportJob>> {
        let sql = format!("SELECT {COLUMNS} FROM import_job WHERE brand_code = $1 AND id = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(brand.0 as i64)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(job_from)
            .transpose()
    }

    async fn imports(
        &self,
        brand: BrandCode,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<ImportJob>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM import_job WHERE brand_code = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(brand.0 as i64)
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(job_from)
            .collect()
    }

    async fn unfinished_import(
        &self,
        brand: BrandCode,
        file_hash: &str,
    ) -> Result<Option<ImportJob>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM import_job WHERE brand_code = $1 AND file_hash = $2 AND via = 'cli' \
             AND dry_run = 0 AND state = 'running' ORDER BY id DESC LIMIT 1"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(brand.0 as i64)
            .bind(file_hash.to_owned())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(job_from)
            .transpose()
    }

    async fn claim_import(
        &self,
        owner: &str,
        lease_ms: i64,
        now: Timestamp,
    ) -> Result<Option<ImportJob>> {
        let candidate: Option<i64> = sqlx::query(
            "SELECT id FROM import_job WHERE via = 'api' AND (state = 'queued' OR (state = 'running' AND (lease_until_ms IS NULL OR lease_until_ms < $1))) \
             ORDER BY id LIMIT 1",
        )
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await?
        .map(|r| r.try_get("id"))
        .transpose()?;
        let Some(id) = candidate else {
            return Ok(None);
        };
        // Taken only if still claimable: two instances racing for it, one wins.
        let taken = sqlx::query(
            "UPDATE import_job SET state = 'running', lease_owner = $1, lease_until_ms = $2, updated_at_ms = $3 \
             WHERE id = $4 AND (state = 'queued' OR (state = 'running' AND (lease_until_ms IS NULL OR lease_until_ms < $3)))",
        )
        .bind(owner.to_owned())
        .bind(ms(now) + lease_ms)
        .bind(ms(now))
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if taken == 0 {
            return Ok(None);
        }
        let sql = format!("SELECT {COLUMNS} FROM import_job WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        job_from(&row).map(Some)
    }

    async fn renew_import_lease(&self, id: i64, owner: &str, until: Timestamp) -> Result<()> {
        let renewed = sqlx::query(
            "UPDATE import_job SET lease_until_ms = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'running'",
        )
        .bind(ms(until))
        .bind(id)
        .bind(owner.to_owned())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if renewed == 0 {
            return Err(StoreError::Conflict(format!(
                "import {id} is no longer this runner's"
            )));
        }
        Ok(())
    }

    async fn record_import_progress(
        &self,
        id: i64,
        owner: Option<&str>,
        lease_until: Option<Timestamp>,
        progress: &ImportProgress,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin_writing().await?;
        let updated = sqlx::query(
            "UPDATE import_job SET line = $1, rows_read = rows_read + $2, applied = applied + $3, unchanged = unchanged + $4, \
             older = older + $5, rejected = rejected + $6, updated_at_ms = $7, lease_until_ms = COALESCE($8, lease_until_ms) \
             WHERE id = $9 AND line < $1 AND ($10 IS NULL OR lease_owner = $10) AND state = 'running'",
        )
        .bind(int(progress.line))
        .bind(int(progress.rows))
        .bind(int(progress.counts.applied))
        .bind(int(progress.counts.unchanged))
        .bind(int(progress.counts.older))
        .bind(int(progress.counts.rejected))
        .bind(ms(now))
        .bind(lease_until.map(ms))
        .bind(id)
        .bind(owner.map(str::to_owned))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::Conflict(format!(
                "import {id} is no longer this runner's (or this batch is recorded already)"
            )));
        }
        for chunk in progress.rejects.chunks(500) {
            let mut sql = String::from(
                "INSERT INTO import_reject (import_id, line, code, field, value, message) VALUES ",
            );
            for i in 0..chunk.len() {
                let b = i * 6;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6
                ));
            }
            sql.push_str(" ON CONFLICT (import_id, line) DO NOTHING");
            let sql = crate::sql::positional(self.backend, sql);
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                q = q
                    .bind(id)
                    .bind(int(r.line))
                    .bind(r.code.clone())
                    .bind(r.field.clone())
                    .bind(r.value.clone())
                    .bind(r.message.clone());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn import_rejects(&self, id: i64, after: u64, limit: u32) -> Result<Vec<ImportReject>> {
        sqlx::query(
            "SELECT line, code, field, value, message FROM import_reject WHERE import_id = $1 AND line > $2 ORDER BY line LIMIT $3",
        )
        .bind(id)
        .bind(int(after))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ImportReject {
                line: count(r, "line")?,
                code: r.try_get("code")?,
                field: r.try_get("field")?,
                value: r.try_get("value")?,
                message: r.try_get("message")?,
            })
        })
        .collect()
    }

    async fn drop_import_file(&self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM import_chunk WHERE import_id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
