//! Group commit: concurrent writes of one brand share a transaction.
//!
//! Each `apply` queues its batch on its brand and waits for its answer. One committer task per
//! brand with work takes what has queued (bounded by count and size), records every batch in
//! order in one transaction, commits, and only then answers them all. The group's changes are
//! recorded as one batch; should that fail before the commit (a repeated Idempotency-Key), the
//! group is recorded again batch by batch, each under its own savepoint, so one bad batch fails
//! alone. Nothing waits on a timer: batches gather while the previous
//! transaction commits, so a lone request pays no delay and a burst pays one fsync per group
//! instead of one per request. The committer is a task of its own, so a request abandoned by
//! its client cannot leave a group half-done.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use hub_core::Change;
use jiff::Timestamp;
use tokio::sync::oneshot;

use crate::sql::ms;
use crate::tx::{Tx, Writer};
use crate::types::{Applied, Brand, Idempotency};
use crate::{Result, SqlStore, StoreError};

/// Most batches in one group.
const MAX_BATCHES: usize = 64;
/// Most changes in one group (a batch larger than this still goes, alone).
const MAX_CHANGES: usize = 20_000;

/// A batch waiting for its turn.
pub(crate) struct Job {
    brand: Brand,
    changes: Vec<Change>,
    idempotency: Option<Idempotency>,
    reply: oneshot::Sender<Result<Vec<Applied>>>,
}

/// A job's answer channel with its result, sent once the group's transaction is over.
type Reply = (oneshot::Sender<Result<Vec<Applied>>>, Result<Vec<Applied>>);

/// Queued batches per brand; a brand is in the map while its committer runs.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    queues: Mutex<HashMap<u64, VecDeque<Job>>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("brand", &self.brand.brand_code)
            .field("changes", &self.changes.len())
            .finish_non_exhaustive()
    }
}

impl Groups {
    /// Queues a job; true if the brand has no committer yet and the caller must start one.
    fn push(&self, job: Job) -> bool {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let code = job.brand.brand_code.0;
        match queues.get_mut(&code) {
            Some(q) => {
                q.push_back(job);
                false
            }
            None => {
                queues.insert(code, VecDeque::from([job]));
                true
            }
        }
    }

    /// The next group of the brand, or none (and the brand's committer ends) when it is empty.
    fn take(&self, code: u64) -> Vec<Job> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let Some(q) = queues.get_mut(&code) else {
            return Vec::new();
        };
        let mut group = Vec::new();
        let mut changes = 0;
        while let Some(next) = q.front() {
            let size = next.changes.len();
            if !group.is_empty() && (group.len() >= MAX_BATCHES || changes + size > MAX_CHANGES) {
                break;
            }
            changes += size;
            group.extend(q.pop_front());
        }
        if group.is_empty() {
            queues.remove(&code);
        }
        group
    }
}

impl SqlStore {
    /// Records a batch through the brand's group commit and answers once it is durable.
    pub(crate) async fn apply_grouped(
        &self,
        brand: &Brand,
        changes: Vec<Change>,
        idempotency: Option<Idempotency>,
    ) -> Result<Vec<Applied>> {
        let (reply, answer) = oneshot::channel();
        let code = brand.brand_code.0;
        let start = self.groups.push(Job {
            brand: brand.clone(),
            changes,
            idempotency,
            reply,
        });
        if start {
            let store = self.clone();
            tokio::spawn(async move { store.commit_groups(code).await });
        }
        let applied = answer.await.map_err(|_| {
            StoreError::GroupCommit("the committer stopped before answering".into())
        })??;
        self.wrote(applied.len());
        Ok(applied)
    }

    async fn commit_groups(&self, code: u64) {
        loop {
            let group = self.groups.take(code);
            if group.is_empty() {
                return;
            }
            self.commit_group(group).await;
        }
    }

    /// One transaction for the group; every job is answered after the commit (or its failure).
    async fn commit_group(&self, group: Vec<Job>) {
        tracing::trace!(batches = group.len(), "group commit");
        let mut w = self.writer().await;
        if group.len() > 1 && distinct_keys(&group) {
            match self.run_merged(w.as_deref_mut(), &group).await {
                Ok(results) => {
                    for (job, applied) in group.into_iter().zip(results) {
                        let _ = job.reply.send(Ok(applied));
                    }
                    return;
                }
                Err(Merged::Commit(e)) => {
                    // Whether a failed commit took effect is unknown: never record twice.
                    tracing::warn!(error = %e, batches = group.len(), "a group commit failed");
                    let message = e.to_string();
                    for job in group {
                        let _ = job
                            .reply
                            .send(Err(StoreError::GroupCommit(message.clone())));
                    }
                    return;
                }
                Err(Merged::Before(e)) => {
                    // Rolled back: one of the batches is at fault (a repeated Idempotency-Key);
                    // each batch on its own savepoint finds which.
                    tracing::debug!(error = %e, "a merged group failed; recording batch by batch");
                }
            }
        }
        let mut replies = Vec::with_capacity(group.len());
        let outcome = self.run_group(w.as_deref_mut(), group, &mut replies).await;
        match outcome {
            Ok(()) => {
                for (reply, result) in replies {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, batches = replies.len(), "a group commit failed");
                let message = e.to_string();
                for (reply, result) in replies {
                    // A batch that failed on its own keeps its own error; the others share the
                    // transaction's.
                    let _ = reply.send(match result {
                        Err(own) => Err(own),
                        Ok(_) => Err(StoreError::GroupCommit(message.clone())),
                    });
                }
            }
        }
    }

    /// Records the group's batches in one transaction. `replies` gets every job's sender and its
    /// result, including the jobs not reached when the transaction fails.
    async fn run_group(
        &self,
        writer: Option<&mut Writer>,
        group: Vec<Job>,
        replies: &mut Vec<Reply>,
    ) -> Result<()> {
        let alone = group.len() == 1;
        let mut jobs = group.into_iter();
        let mut tx = match self.begin_write(writer).await {
            Ok(tx) => tx,
            Err(e) => {
                for job in jobs {
                    replies.push((job.reply, Ok(Vec::new())));
                }
                return Err(e);
            }
        };
        for job in jobs.by_ref() {
            // A lone batch needs no savepoint: its failure is the transaction's.
            if !alone && let Err(e) = tx.tx().execute("SAVEPOINT batch", &[]).await {
                replies.push((job.reply, Ok(Vec::new())));
                break_with(&mut jobs, replies);
                return Err(e);
            }
            let Job {
                brand,
                changes,
                idempotency,
                reply,
            } = job;
            let result = self
                .record_job(&mut tx.tx(), &brand, changes, idempotency)
                .await;
            match result {
                Ok(applied) => {
                    if !alone && let Err(e) = tx.tx().execute("RELEASE SAVEPOINT batch", &[]).await
                    {
                        replies.push((reply, Ok(Vec::new())));
                        break_with(&mut jobs, replies);
                        return Err(e);
                    }
                    replies.push((reply, Ok(applied)));
                }
                Err(e) if alone => {
                    replies.push((reply, Err(e)));
                    return Ok(());
                }
                Err(e) => {
                    replies.push((reply, Err(e)));
                    if let Err(e) = tx.tx().execute("ROLLBACK TO SAVEPOINT batch", &[]).await {
                        break_with(&mut jobs, replies);
                        return Err(e);
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The fast way: the group's changes recorded as one batch (the outcome of a batch is that
    /// of its changes one by one, so of the batches one by one), then their idempotency rows.
    async fn run_merged(
        &self,
        writer: Option<&mut Writer>,
        group: &[Job],
    ) -> std::result::Result<Vec<Vec<Applied>>, Merged> {
        let Some(brand) = group.first().map(|j| &j.brand) else {
            return Ok(Vec::new());
        };
        let mut tx = self.begin_write(writer).await.map_err(Merged::Before)?;
        let all: Vec<Change> = group
            .iter()
            .flat_map(|j| j.changes.iter().cloned())
            .collect();
        let total = all.len();
        let applied = self
            .record(&mut tx.tx(), brand, all)
            .await
            .map_err(Merged::Before)?;
        if applied.len() != total {
            return Err(Merged::Before(StoreError::Corrupt(format!(
                "{} outcomes for {total} changes",
                applied.len()
            ))));
        }
        let mut rest = applied.into_iter();
        let mut results = Vec::with_capacity(group.len());
        for job in group {
            let mine: Vec<Applied> = rest.by_ref().take(job.changes.len()).collect();
            if let Some(idem) = &job.idempotency {
                store_answer(&mut tx.tx(), brand, idem, &mine)
                    .await
                    .map_err(Merged::Before)?;
            }
            results.push(mine);
        }
        tx.commit().await.map_err(Merged::Commit)?;
        Ok(results)
    }

    async fn record_job(
        &self,
        tx: &mut Tx<'_>,
        brand: &Brand,
        changes: Vec<Change>,
        idempotency: Option<Idempotency>,
    ) -> Result<Vec<Applied>> {
        let applied = self.record(tx, brand, changes).await?;
        if let Some(idem) = idempotency {
            store_answer(tx, brand, &idem, &applied).await?;
        }
        Ok(applied)
    }
}

/// Stores the rendered answer of an `Idempotency-Key` write with it.
async fn store_answer(
    tx: &mut Tx<'_>,
    brand: &Brand,
    idem: &Idempotency,
    applied: &[Applied],
) -> Result<()> {
    let answer = (idem.render)(applied);
    tx.execute(
        "INSERT INTO idempotency (brand_code, key, request_hash, status, body, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            (brand.brand_code.0 as i64).into(),
            (&idem.key).into(),
            (&idem.request_hash).into(),
            i64::from(answer.status).into(),
            answer.body.into(),
            ms(Timestamp::now()).into(),
        ],
    )
    .await?;
    Ok(())
}

/// Why the merged transaction did not commit: before its commit (rolled back, safe to retry
/// batch by batch) or at it (unknown outcome).
#[derive(Debug)]
enum Merged {
    Before(StoreError),
    Commit(StoreError),
}

/// Whether no two batches of the group carry the same Idempotency-Key (the second would fail).
fn distinct_keys(group: &[Job]) -> bool {
    let mut keys = std::collections::HashSet::new();
    group
        .iter()
        .filter_map(|j| j.idempotency.as_ref())
        .all(|i| keys.insert(i.key.as_str()))
}

/// The jobs after a failure that ends the transaction: answered with its error.
fn break_with(jobs: &mut std::vec::IntoIter<Job>, replies: &mut Vec<Reply>) {
    for job in jobs {
        replies.push((job.reply, Ok(Vec::new())));
    }
}
