//! A queue in front of small send-time checks: checks that arrive together are answered by one
//! read (one statement on PostgreSQL, one read transaction on a SQLite file), so a busy hub
//! pays a read's fixed cost once per batch instead of once per check. One batch is read at a
//! time and checks arriving meanwhile wait for the next, so an idle hub adds no delay.

use hub_core::{BrandCode, Channel};
use iys::RecipientType;
use tokio::sync::{mpsc, oneshot};

use crate::{Result, StoreError};

/// Times the queue lets the runtime's other ready tasks run before it takes a batch: on a busy
/// hub they are mostly checks about to ask, which then share the read. An idle hub has no other
/// ready task, so a lone check is not delayed.
const YIELDS: usize = 3;

/// One check waiting in the queue, answered with an `A` (or why it failed).
#[derive(Debug)]
pub(crate) struct Ask<A> {
    pub(crate) brand: BrandCode,
    pub(crate) channel: Channel,
    pub(crate) recipient_type: RecipientType,
    pub(crate) recipients: Vec<String>,
    pub(crate) answer: oneshot::Sender<std::result::Result<A, Failed>>,
}

/// Why a queued check failed, kept apart so the caller can tell a stored value that cannot be
/// read (that check's own recipients) from a failed read.
#[derive(Debug, Clone)]
pub(crate) enum Failed {
    Corrupt(String),
    Read(String),
}

impl From<&StoreError> for Failed {
    fn from(e: &StoreError) -> Self {
        match e {
            StoreError::Corrupt(what) => Failed::Corrupt(what.clone()),
            other => Failed::Read(other.to_string()),
        }
    }
}

#[derive(Debug)]
pub(crate) struct CheckQueue<A> {
    asks: mpsc::UnboundedSender<Ask<A>>,
    /// The store's error for an answer's error text.
    error: fn(String) -> StoreError,
}

impl<A> Clone for CheckQueue<A> {
    fn clone(&self) -> Self {
        CheckQueue {
            asks: self.asks.clone(),
            error: self.error,
        }
    }
}

impl<A: Send + 'static> CheckQueue<A> {
    /// Starts the queue's task on the current runtime: it hands up to `most` waiting checks at a
    /// time to `answer`, which must answer each (an error's text becomes `error`). It ends when
    /// the queue is dropped.
    pub(crate) fn start<F, R>(
        most: usize,
        error: fn(String) -> StoreError,
        mut answer: F,
    ) -> CheckQueue<A>
    where
        F: FnMut(Vec<Ask<A>>) -> R + Send + 'static,
        R: Future<Output = ()> + Send,
    {
        let (asks, mut queue) = mpsc::unbounded_channel::<Ask<A>>();
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                for _ in 0..YIELDS {
                    tokio::task::yield_now().await;
                }
                let mut batch = vec![first];
                while batch.len() < most {
                    match queue.try_recv() {
                        Ok(ask) => batch.push(ask),
                        Err(_) => break,
                    }
                }
                // Checks arriving while this batch is read queue for the next.
                answer(batch).await;
            }
        });
        CheckQueue { asks, error }
    }

    /// The check's answer, or `None` when the queue's task is gone (its runtime ended while the
    /// store lives on): the caller then reads on its own.
    pub(crate) async fn ask(
        &self,
        brand: BrandCode,
        channel: Channel,
        recipient_type: RecipientType,
        recipients: &[String],
    ) -> Option<Result<A>> {
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
        Some(answered.await.ok()?.map_err(|failed| match failed {
            Failed::Corrupt(what) => StoreError::Corrupt(what),
            Failed::Read(text) => (self.error)(text),
        }))
    }
}
