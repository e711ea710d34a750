//! Running a bulk import: rows from `hub_bulk` go through the same parser and category check as
//! `POST …/consents`, and the good ones through the same ledger write, in batches.
//!
//! The file is read in windows of up to `WINDOW_ROWS` rows. A window's good changes are sorted
//! by the key they write (stably: one key's rows keep the file's order) and written in batches
//! of `BATCH_ROWS`, each with an idempotency key of its own (`import·{id}·w{window's first
//! line}·{n}·{digest of its lines}`); at the window's end its progress is recorded
//! (`SqlStore::record_import_progress`). A runner that stops anywhere (crash, SIGKILL, restart)
//! resumes after the last recorded window and cuts the next one exactly as before; its batches
//! written but not yet recorded are written again under the same keys, which replay their
//! stored counts instead of applying anything twice.
//!
//! The file is read and parsed on a blocking thread one window ahead of the writes, so reading
//! and parsing overlap with the database.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hub_core::{Change, ConsentKey, ConsentState, Origin, Outcome};
use hub_store::{
    Applied, Brand, Idempotency, ImportCounts, ImportJob, ImportProgress, ImportReject, StoreError,
    StoredAnswer,
};
use jiff::Timestamp;
use serde_json::Value;

use crate::HubDb;
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

/// A window of rows read and parsed ahead of the writes, its good changes (with their lines) in
/// write order.
struct Window {
    changes: Vec<(u64, Change)>,
    rejects: Vec<ImportReject>,
    /// Rows read (rejects included).
    rows: u64,
    first_line: u64,
    last_line: u64,
    /// Held while the window lives: at most two do (one written, one read ahead).
    _alive: tokio::sync::OwnedSemaphorePermit,
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
        let dated = row.fields.get("consentDate").is_some_and(|d| !d.is_null());
        let value = Value::Object(row.fields);
        let change = parse_change(&value, self.brand, now, Origin::Import, &self.actor)
            .map_err(|e| reject_of(row.line, &e))?;
        // A file holds past consents. An ONAY without its date, stamped with the import's time,
        // would be newer than every RET the person made meanwhile (in IYS too) and re-subscribe
        // them; a RET without one is only ever safe, so it takes the import's time.
        if !dated && change.status == iys::ConsentStatus::Onay {
            let mut e = ApiError::from_iys(&iys::IysError::new(iys::HCode::H112).at("consentDate"));
            e.body.message = format!(
                "{} An imported ONAY needs the date the person gave it: stamped with the \
                 import's time it would override any RET they made since.",
                e.body.message
            );
            return Err(reject_of(row.line, &e));
        }
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

/// The most rows a window holds. A window's changes are written in key order (`write_order`), so
/// each of its batches touches a narrow range of the consent and history indexes instead of a
/// page per row: a file in scattered key order (a CRM's export ordered by customer) otherwise
/// rewrites most of those pages in every commit.
pub const WINDOW_ROWS: u64 = 100_000;

/// How many rows the window after `rows_before` rows of the file holds: one batch first (the
/// first commit comes quickly), then doubling up to `WINDOW_ROWS`. A function of the rows read
/// before it, which the job records at every window's end, so a resumed import cuts the same
/// windows as the run it continues.
fn window_rows(rows_before: u64) -> u64 {
    rows_before.clamp(BATCH_ROWS as u64, WINDOW_ROWS)
}

/// The order a window's changes are written in: by the state each one writes (a category
/// consent's subject when it is a profile, else the recipient, which leads the consent, outbox
/// and history indexes). Sorted stably, so the rows of one key keep the file's order.
fn write_order(change: &Change) -> (bool, &str) {
    match (&change.category, &change.profile_id) {
        (Some(_), Some(profile)) => (true, profile),
        _ => (false, &change.key.recipient),
    }
}

/// FNV-1a over a batch's line numbers.
fn lines_digest(lines: impl Iterator<Item = u64>) -> u64 {
    lines.fold(0xcbf2_9ce4_8422_2325, |hash, line| {
        line.to_le_bytes().iter().fold(hash, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
    })
}

/// Reads and parses `rows` on a blocking thread, a window at a time, at most one window ahead
/// of the writes (reading and parsing, phone numbers above all, then use the other core): the
/// next window is begun only when the one before it is being written, so an import holds at
/// most two windows whatever the size of its file.
/// `rows_before` is how many rows the job has read already. A file that cannot be read further
/// ends the stream with an error, never as if it had ended.
fn read_ahead(
    rows: hub_bulk::Rows,
    parser: Parser,
    rows_before: u64,
) -> tokio::sync::mpsc::Receiver<Result<Window, ImportError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let windows = Arc::new(tokio::sync::Semaphore::new(2));
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut rows = rows;
        let mut rows_before = rows_before;
        loop {
            // Never closed: an error only if the runtime is going away.
            let Ok(alive) = runtime.block_on(windows.clone().acquire_owned()) else {
                return;
            };
            // The runner stopped (an error, a cancelled worker): read no further.
            if tx.is_closed() {
                return;
            }
            let now = Timestamp::now();
            let size = window_rows(rows_before);
            let mut changes: Vec<(u64, Change)> = Vec::new();
            let mut window = Window {
                changes: Vec::new(),
                rejects: Vec::new(),
                rows: 0,
                first_line: 0,
                last_line: 0,
                _alive: alive,
            };
            for row in rows.by_ref().take(size as usize) {
                let line = match &row {
                    Ok(r) => r.line,
                    Err(e) if e.is_fatal() => {
                        let _ = tx.blocking_send(Err(ImportError::Reader(e.to_string())));
                        return;
                    }
                    Err(e) => e.line,
                };
                if window.rows == 0 {
                    window.first_line = line;
                }
                window.last_line = line;
                window.rows += 1;
                match row {
                    Ok(r) => match parser.parse(r, now) {
                        Ok(c) => changes.push((line, c)),
                        Err(reject) => window.rejects.push(reject),
                    },
                    Err(e) => window.rejects.push(row_reject(&e)),
                }
            }
            changes.sort_by(|(_, a), (_, b)| write_order(a).cmp(&write_order(b)));
            window.changes = changes;
            rows_before += window.rows;
            let done = window.rows < size;
            if window.rows > 0 && tx.blocking_send(Ok(window)).is_err() {
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
/// `on_progress` hears after every batch; the job's progress (where a restart resumes) is
/// recorded at each window's end.
pub async fn run_import<S: HubDb>(
    store: &Arc<S>,
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
    let mut windows = read_ahead(
        rows,
        Parser {
            brand: brand.brand_code,
            actor,
            categories,
        },
        job.rows_read,
    );
    let lease_until = || {
        Timestamp::now()
            .checked_add(jiff::SignedDuration::from_millis(lease_ms))
            .unwrap_or(Timestamp::MAX)
    };
    while let Some(window) = windows.recv().await {
        let window = window?;
        let mut counts = ImportCounts::default();
        let (mut written, mut n, total) = (0, 0, window.changes.len() as u64);
        let mut changes = window.changes.into_iter();
        loop {
            let (lines, batch): (Vec<u64>, Vec<Change>) = changes.by_ref().take(BATCH_ROWS).unzip();
            if batch.is_empty() {
                break;
            }
            written += batch.len() as u64;
            counts += if job.dry_run {
                dry.count(store, brand, &batch).await?
            } else {
                // Names exactly which lines the batch holds: a window re-read after a restart
                // whose rows parse otherwise (a category deleted meanwhile) is cut into other
                // batches, which must not replay the first run's answers.
                let key = format!(
                    "import·{}·w{}·{n}·{:016x}",
                    job.id,
                    window.first_line,
                    lines_digest(lines.into_iter())
                );
                write_batch(store, brand, key, batch).await?
            };
            n += 1;
            if written < total {
                if let Some(owner) = owner {
                    store
                        .renew_import_lease(job.id, owner, lease_until())
                        .await?;
                }
                let mut counts_so_far = progress.counts;
                counts_so_far += counts;
                on_progress(Progress {
                    line: progress.line,
                    rows: progress.rows + written,
                    counts: counts_so_far,
                });
            }
        }
        counts.rejected += window.rejects.len() as u64;
        let step = ImportProgress {
            line: window.last_line,
            rows: window.rows,
            counts,
            rejects: window.rejects,
        };
        store
            .record_import_progress(
                job.id,
                owner,
                owner.map(|_| lease_until()),
                &step,
                Timestamp::now(),
            )
            .await?;
        progress.line = step.line;
        progress.rows += step.rows;
        progress.counts += counts;
        on_progress(progress);
    }
    Ok(progress)
}

/// Writes one batch under its own idempotency key; a batch written before (by a runner that
/// stopped before recording its window's progress) answers its stored counts instead.
async fn write_batch<S: HubDb>(
    store: &Arc<S>,
    brand: &Brand,
    key: String,
    changes: Vec<Change>,
) -> Result<ImportCounts, ImportError> {
    if changes.is_empty() {
        return Ok(ImportCounts::default());
    }
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
    async fn count<S: HubDb>(
        &mut self,
        store: &Arc<S>,
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
struct ChunkReader<S> {
    store: Arc<S>,
    runtime: tokio::runtime::Handle,
    id: i64,
    seq: i64,
    piece: Vec<u8>,
    at: usize,
    done: bool,
}

impl<S: HubDb> std::io::Read for ChunkReader<S> {
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
async fn run_uploaded<S: HubDb>(store: &Arc<S>, job: ImportJob, owner: &str) {
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
pub async fn work<S: HubDb>(
    store: Arc<S>,
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
