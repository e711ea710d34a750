//! Running a bulk import: rows from `hub_bulk` go through the same parser and category check as
//! `POST …/consents`, and the good ones through the same ledger write, in batches.
//!
//! Each batch is written with an idempotency key of its own (`import·{id}·{first line}`), then
//! its progress is recorded (`SqlStore::record_import_progress`). A runner that stops anywhere
//! (crash, SIGKILL, restart) resumes after the last recorded line; a batch written but not yet
//! recorded is written again under the same key, which replays its stored counts instead of
//! applying anything twice.
//!
//! The file is read on a blocking thread one batch ahead of the writes, so reading and parsing
//! overlap with the database.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hub_core::{Change, ConsentKey, ConsentState, Origin, Outcome};
use hub_store::{
    Applied, Brand, Idempotency, ImportCounts, ImportJob, ImportProgress, ImportReject, SqlStore,
    Store, StoreError, StoredAnswer,
};
use jiff::Timestamp;
use serde_json::Value;

use crate::error::ApiError;
use crate::input::parse_change;

/// Rows a batch holds: large enough for set-based writes, small enough to resume cheaply.
pub const BATCH_ROWS: usize = 5_000;

/// Why an import stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file as a whole cannot be read (format, encoding of the header, required column).
    #[error("{0}")]
    File(#[from] hub_bulk::FileError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The reader thread stopped unexpectedly.
    #[error("the file reader stopped: {0}")]
    Reader(String),
}

/// What a batch of rows read ahead holds.
/// A batch read and parsed ahead of the writes: its changes, its rejects and its lines.
struct Batch {
    changes: Vec<Change>,
    rejects: Vec<ImportReject>,
    /// Rows read (rejects included).
    rows: u64,
    first_line: u64,
    last_line: u64,
}

/// What parsing a row needs.
struct Parser {
    brand: hub_core::BrandCode,
    actor: String,
    categories: HashSet<String>,
}

impl Parser {
    /// A row through the API's parser and category check.
    fn parse(&self, row: hub_bulk::Row, now: Timestamp) -> Result<Change, ImportReject> {
        let value = Value::Object(row.fields);
        let change = parse_change(&value, self.brand, now, Origin::Import, &self.actor)
            .map_err(|e| reject_of(row.line, &e))?;
        match &change.category {
            Some(cat) if !self.categories.contains(cat) => Err(reject_of(
                row.line,
                &ApiError::unprocessable(
                    "unknown_category",
                    format!("category {cat:?} is not defined for this brand"),
                )
                .field("category")
                .value(cat.as_str()),
            )),
            _ => Ok(change),
        }
    }
}

/// Progress after each committed batch, for progress bars and logs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub line: u64,
    pub rows: u64,
    pub counts: ImportCounts,
}

/// Reads and parses `rows` on a blocking thread, `BATCH_ROWS` at a time, at most two batches
/// ahead of the writes (reading and parsing, phone numbers above all, then use the other core).
/// A file that cannot be read further ends the stream with an error, never as if it had ended.
fn read_ahead(
    rows: hub_bulk::Rows,
    parser: Parser,
) -> tokio::sync::mpsc::Receiver<Result<Batch, ImportError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let mut rows = rows;
        loop {
            let now = Timestamp::now();
            let mut batch = Batch {
                changes: Vec::with_capacity(BATCH_ROWS),
                rejects: Vec::new(),
                rows: 0,
                first_line: 0,
                last_line: 0,
            };
            for row in rows.by_ref().take(BATCH_ROWS) {
                let line = match &row {
                    Ok(r) => r.line,
                    Err(e) if e.is_fatal() => {
                        let _ = tx.blocking_send(Err(ImportError::Reader(e.to_string())));
                        return;
                    }
                    Err(e) => e.line,
                };
                if batch.rows == 0 {
                    batch.first_line = line;
                }
                batch.last_line = line;
                batch.rows += 1;
                match row {
                    Ok(r) => match parser.parse(r, now) {
                        Ok(c) => batch.changes.push(c),
                        Err(reject) => batch.rejects.push(reject),
                    },
                    Err(e) => batch.rejects.push(row_reject(&e)),
                }
            }
            let done = batch.rows < BATCH_ROWS as u64;
            if batch.rows > 0 && tx.blocking_send(Ok(batch)).is_err() {
                return;
            }
            if done {
                return;
            }
        }
    });
    rx
}

fn reject_of(line: u64, e: &ApiError) -> ImportReject {
    ImportReject {
        line,
        code: e.body.code.clone(),
        field: e.body.field.clone(),
        value: e.body.value.as_ref().map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        message: e.body.message.clone(),
    }
}

fn row_reject(e: &hub_bulk::RowError) -> ImportReject {
    ImportReject {
        line: e.line,
        code: e.code.to_owned(),
        field: e.field.clone(),
        value: e.value.clone(),
        message: e.message.clone(),
    }
}

/// How one ledger outcome counts in an import's report.
fn tally(counts: &mut ImportCounts, outcome: Outcome) {
    match outcome {
        Outcome::Applied | Outcome::Resent | Outcome::Conflict | Outcome::HoldChanged => {
            counts.applied += 1
        }
        Outcome::Noop | Outcome::Duplicate | Outcome::KeptLocal => counts.unchanged += 1,
        Outcome::Older => counts.older += 1,
    }
}

/// Runs (or resumes) `job` for `brand` over `rows`, which start after `job.line`. `owner` is
/// the runner's lease on an uploaded import; `lease_ms` how long each batch renews it.
pub async fn run_import(
    store: &Arc<SqlStore>,
    brand: &Brand,
    job: &ImportJob,
    rows: hub_bulk::Rows,
    owner: Option<&str>,
    lease_ms: i64,
    mut on_progress: impl FnMut(Progress),
) -> Result<Progress, ImportError> {
    let categories: HashSet<String> = store
        .categories(brand.brand_code)
        .await?
        .into_iter()
        .map(|c| c.code)
        .collect();
    let actor = job
        .actor
        .clone()
        .unwrap_or_else(|| format!("import:{}", job.id));
    let mut progress = Progress {
        line: job.line,
        rows: job.rows_read,
        counts: job.counts,
    };
    let mut dry = DryRun::default();
    let mut batches = read_ahead(
        rows,
        Parser {
            brand: brand.brand_code,
            actor,
            categories,
        },
    );
    while let Some(batch) = batches.recv().await {
        let batch = batch?;
        let mut counts = if job.dry_run {
            dry.count(store, brand, &batch.changes).await?
        } else {
            write_batch(store, brand, job.id, batch.first_line, batch.changes).await?
        };
        counts.rejected += batch.rejects.len() as u64;
        let step = ImportProgress {
            line: batch.last_line,
            rows: batch.rows,
            counts,
            rejects: batch.rejects,
        };
        let lease_until = owner.map(|_| {
            Timestamp::now()
                .checked_add(jiff::SignedDuration::from_millis(lease_ms))
                .unwrap_or(Timestamp::MAX)
        });
        store
            .record_import_progress(job.id, owner, lease_until, &step, Timestamp::now())
            .await?;
        progress.line = step.line;
        progress.rows += step.rows;
        progress.counts += counts;
        on_progress(progress);
    }
    Ok(progress)
}

/// Writes one batch under its own idempotency key; a batch written before (by a runner that
/// stopped before recording its progress) answers its stored counts instead.
async fn write_batch(
    store: &Arc<SqlStore>,
    brand: &Brand,
    import: i64,
    first_line: u64,
    changes: Vec<Change>,
) -> Result<ImportCounts, ImportError> {
    if changes.is_empty() {
        return Ok(ImportCounts::default());
    }
    let key = format!("import·{import}·{first_line}");
    if let Some(answer) = store.idempotent_answer(brand.brand_code, &key).await? {
        return stored_counts(&answer);
    }
    let idempotency = Idempotency {
        key: key.clone(),
        request_hash: key.clone(),
        render: Box::new(move |applied: &[Applied]| {
            let mut counts = ImportCounts::default();
            for a in applied {
                tally(&mut counts, a.outcome);
            }
            StoredAnswer {
                request_hash: String::new(),
                status: 200,
                body: serde_json::to_string(&counts).unwrap_or_default(),
            }
        }),
    };
    match store.apply(brand, changes, Some(idempotency)).await {
        Ok(applied) => {
            let mut counts = ImportCounts::default();
            for a in &applied {
                tally(&mut counts, a.outcome);
            }
            Ok(counts)
        }
        Err(e) => match store.idempotent_answer(brand.brand_code, &key).await? {
            // Another runner wrote this batch first.
            Some(answer) => stored_counts(&answer),
            None => Err(e.into()),
        },
    }
}

fn stored_counts(answer: &StoredAnswer) -> Result<ImportCounts, ImportError> {
    serde_json::from_str(&answer.body).map_err(|e| {
        ImportError::Store(StoreError::Corrupt(format!(
            "an import batch's stored counts: {e}"
        )))
    })
}

/// A dry run's view of the ledger: the stored states it has read and what the file's earlier
/// rows would have made of them, so a file's own rows for one key chain as they would when
/// written (across batches too). Held in memory: one entry per key the file touches.
#[derive(Default)]
struct DryRun {
    states: HashMap<ConsentKey, Option<ConsentState>>,
    categories: HashMap<(String, String), Option<(iys::ConsentStatus, iys::ConsentDate)>>,
}

impl DryRun {
    /// What a batch would do. Category consents are compared by date and status with the
    /// stored category consent.
    async fn count(
        &mut self,
        store: &Arc<SqlStore>,
        brand: &Brand,
        changes: &[Change],
    ) -> Result<ImportCounts, ImportError> {
        let mut counts = ImportCounts::default();
        for change in changes {
            if let Some(category) = &change.category {
                // The store's subject of a category consent: the profile when given.
                let subject = match &change.profile_id {
                    Some(p) => format!("profile:{p}"),
                    None => change.key.recipient.clone(),
                };
                let slot = (subject.clone(), category.clone());
                if !self.categories.contains_key(&slot) {
                    let stored = store
                        .category_consents(brand.brand_code, &subject)
                        .await?
                        .into_iter()
                        .find(|c| &c.category == category)
                        .map(|c| (c.status, c.consent_date));
                    self.categories.insert(slot.clone(), stored);
                }
                match self.categories.get(&slot).copied().flatten() {
                    Some((_, date)) if change.consent_date < date => counts.older += 1,
                    Some((status, _)) if status == change.status => counts.unchanged += 1,
                    _ => {
                        counts.applied += 1;
                        self.categories
                            .insert(slot, Some((change.status, change.consent_date)));
                    }
                }
                continue;
            }
            if !self.states.contains_key(&change.key) {
                for row in store
                    .consents(brand.brand_code, &change.key.recipient)
                    .await?
                {
                    self.states.entry(row.key).or_insert(Some(row.state));
                }
                self.states.entry(change.key.clone()).or_insert(None);
            }
            let current = self.states.get(&change.key).cloned().flatten();
            let decision = hub_core::decide(current.as_ref(), change, brand.mode);
            tally(&mut counts, decision.outcome);
            if let Some(state) = decision.state {
                self.states.insert(change.key.clone(), Some(state));
            }
        }
        Ok(counts)
    }
}

/// How long a worker's claim on an uploaded import lasts without progress; each batch renews
/// it. An instance that stops leaves its import to another after this.
pub const LEASE_MS: i64 = 120_000;

/// An uploaded file, read from its pieces in the database. Used on a blocking thread: each piece
/// is fetched with `block_on`.
struct ChunkReader {
    store: Arc<SqlStore>,
    runtime: tokio::runtime::Handle,
    id: i64,
    seq: i64,
    piece: Vec<u8>,
    at: usize,
    done: bool,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at >= self.piece.len() {
            if self.done {
                return Ok(0);
            }
            let next = self
                .runtime
                .block_on(self.store.import_chunk(self.id, self.seq))
                .map_err(std::io::Error::other)?;
            match next {
                Some(p) => {
                    self.piece = p;
                    self.at = 0;
                    self.seq += 1;
                }
                None => self.done = true,
            }
        }
        let n = buf.len().min(self.piece.len() - self.at);
        buf[..n].copy_from_slice(&self.piece[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Opens `input` as `format` with the job's mapping and skips what the job has done already.
pub async fn open_rows(
    input: Box<dyn std::io::Read + Send>,
    format: hub_bulk::Format,
    job: &ImportJob,
) -> Result<hub_bulk::Rows, ImportError> {
    let (mapping, line) = (job.mapping.clone(), job.line);
    tokio::task::spawn_blocking(move || {
        let mut rows = hub_bulk::read(format, input, &mapping)?;
        if line > 0 {
            rows.skip_through(line)?;
        }
        Ok(rows)
    })
    .await
    .map_err(|e| ImportError::Reader(e.to_string()))?
}

/// Runs one uploaded import to its end (or until its runner stops).
async fn run_uploaded(store: &Arc<SqlStore>, job: ImportJob, owner: &str) {
    let id = job.id;
    let outcome = async {
        let brand = store
            .brand(job.brand_code)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("brand {}", job.brand_code)))?;
        let format: hub_bulk::Format = job
            .format
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("import format {:?}", job.format)))?;
        let reader = ChunkReader {
            store: store.clone(),
            runtime: tokio::runtime::Handle::current(),
            id,
            seq: 0,
            piece: Vec::new(),
            at: 0,
            done: false,
        };
        let rows = open_rows(Box::new(reader), format, &job).await?;
        run_import(store, &brand, &job, rows, Some(owner), LEASE_MS, |p| {
            tracing::debug!(
                import = id,
                line = p.line,
                rows = p.rows,
                "import batch committed"
            )
        })
        .await
    }
    .await;
    let now = Timestamp::now();
    match outcome {
        Ok(p) => {
            tracing::info!(
                import = id,
                rows = p.rows,
                applied = p.counts.applied,
                rejected = p.counts.rejected,
                "import done"
            );
            if store
                .set_import_state(id, hub_store::ImportState::Done, None, now)
                .await
                .is_ok()
            {
                let _ = store.drop_import_file(id).await;
            }
        }
        // The file itself cannot be read: no retry will help.
        Err(ImportError::File(e)) => {
            tracing::warn!(import = id, error = %e, "import failed");
            let _ = store
                .set_import_state(
                    id,
                    hub_store::ImportState::Failed,
                    Some(&e.to_string()),
                    now,
                )
                .await;
        }
        // The database or this runner: the lease runs out and a worker resumes it.
        Err(e) => {
            tracing::warn!(import = id, error = %e, "import stopped; it resumes when its lease runs out")
        }
    }
}

/// Runs uploaded imports as they come, one at a time per instance, until `cancel`.
pub async fn work(
    store: Arc<SqlStore>,
    waiting: Arc<tokio::sync::Notify>,
    cancel: tokio_util::sync::CancellationToken,
) {
    let owner = format!("imports-{}", uuid::Uuid::new_v4());
    loop {
        let notified = waiting.notified();
        match store.claim_import(&owner, LEASE_MS, Timestamp::now()).await {
            Ok(Some(job)) => {
                tokio::select! {
                    _ = run_uploaded(&store, job, &owner) => {}
                    _ = cancel.cancelled() => return,
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "imports: cannot look for work"),
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            _ = cancel.cancelled() => return,
        }
    }
}
