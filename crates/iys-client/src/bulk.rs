//! Async bulk requests: submit in chunks of 1000, read and wait for their results.

use std::time::Duration;

use jiff::Timestamp;
use reqwest::Method;

use iys::wire::{BulkAccepted, BulkItemStatus, BulkResultItem, Consent};

use crate::transport::Call;
use crate::{ClientError, IysClient, mask};

/// One bulk request checked and serialized, not yet sent ([`IysClient::prepare_bulk`]).
///
/// Preparing a round's requests before sending any keeps them together on the wire: IYS counts
/// them when they arrive, and requests prepared one after another while the first are already
/// sent would stretch the round by the preparation time, and the next round after it.
pub struct PreparedBulk {
    items: usize,
    call: Call<'static>,
}

impl std::fmt::Debug for PreparedBulk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedBulk")
            .field("path", &self.call.path)
            .field("items", &self.items)
            .finish()
    }
}

impl PreparedBulk {
    /// How many consents the request holds.
    pub fn items(&self) -> usize {
        self.items
    }
}

impl IysClient {
    /// Submits consents as v2 async bulk requests of at most 1000, one after another. A
    /// recipient may appear once per request (IYS's H194), so duplicates are refused before
    /// anything is sent.
    pub async fn submit_bulk(
        &self,
        brand: u64,
        consents: &[Consent],
    ) -> Result<Vec<BulkAccepted>, ClientError> {
        let prepared = consents
            .chunks(iys::rules::MAX_BULK)
            .enumerate()
            .map(|(n, chunk)| self.prepare_chunk(brand, chunk, n))
            .collect::<Result<Vec<_>, _>>()?;
        let mut accepted = Vec::with_capacity(prepared.len());
        for bulk in prepared {
            accepted.push(self.send_prepared(bulk).await?);
        }
        Ok(accepted)
    }

    /// Checks and serializes one v2 bulk request of at most 1000 consents, to send with
    /// [`IysClient::send_prepared`]. Refused (`Invalid`) for more than 1000 consents or a
    /// recipient that appears twice (IYS's H194).
    pub fn prepare_bulk(
        &self,
        brand: u64,
        consents: &[Consent],
    ) -> Result<PreparedBulk, ClientError> {
        if consents.len() > iys::rules::MAX_BULK {
            return Err(ClientError::Invalid(format!(
                "a bulk request holds at most {} consents, not {}",
                iys::rules::MAX_BULK,
                consents.len()
            )));
        }
        self.prepare_chunk(brand, consents, 0)
    }

    /// Sends a prepared bulk request within the client's budgets.
    pub async fn send_prepared(&self, bulk: PreparedBulk) -> Result<BulkAccepted, ClientError> {
        let items = bulk.items;
        let a: BulkAccepted = self.json(bulk.call).await?;
        tracing::info!(request_id = %a.request_id, items, "bulk request accepted");
        Ok(a)
    }

    /// Request `n` of a list cut in chunks of 1000 (`n` names it in a refusal).
    fn prepare_chunk(
        &self,
        brand: u64,
        chunk: &[Consent],
        n: usize,
    ) -> Result<PreparedBulk, ClientError> {
        let mut seen = std::collections::HashSet::new();
        for (i, c) in chunk.iter().enumerate() {
            let key = (
                c.recipient_type.unwrap_or_default(),
                c.consent_type,
                c.recipient.as_str(),
            );
            if !seen.insert(key) {
                return Err(ClientError::Invalid(format!(
                    "bulk item {} ({}) repeats a recipient and type already in request {n} (IYS: H194)",
                    n * iys::rules::MAX_BULK + i,
                    mask(&c.recipient)
                )));
            }
        }
        let call = Call::new(
            "bulk_v2",
            Method::POST,
            format!("/v2{}/consents/request", self.sps(brand)),
        )
        .brand(brand)
        .json(&chunk)?;
        Ok(PreparedBulk {
            items: chunk.len(),
            call,
        })
    }

    /// The current result array of a bulk request (`[]` until IYS starts processing it).
    pub async fn bulk_result(
        &self,
        brand: u64,
        request_id: &str,
    ) -> Result<Vec<BulkResultItem>, ClientError> {
        let mut call = Call::new(
            "bulk_result_v2",
            Method::GET,
            format!("/v2{}/consents/request/{request_id}", self.sps(brand)),
        )
        .brand(brand);
        call.request_id = Some(request_id);
        self.json(call).await
    }

    /// Waits until the request is old enough to poll, then polls on the configured schedule until
    /// every item is settled (`success`/`failure`).
    pub async fn wait_bulk(
        &self,
        brand: u64,
        request_id: &str,
        submitted: Timestamp,
    ) -> Result<Vec<BulkResultItem>, ClientError> {
        let polling = &self.inner.config.bulk;
        let age = self.inner.clock.now().duration_since(submitted);
        let min_age = jiff::SignedDuration::try_from(polling.min_age).unwrap_or_default();
        if age < min_age {
            tokio::time::sleep((min_age - age).unsigned_abs()).await;
        }
        for poll in 0..polling.max_polls {
            let items = self.bulk_result(brand, request_id).await?;
            let done =
                !items.is_empty() && items.iter().all(|i| i.status != BulkItemStatus::Enqueue);
            if done {
                return Ok(items);
            }
            let idx = (poll as usize).min(polling.schedule.len().saturating_sub(1));
            let wait = polling
                .schedule
                .get(idx)
                .copied()
                .unwrap_or(Duration::from_secs(60));
            tokio::time::sleep(wait).await;
        }
        Err(ClientError::BulkNotFinished {
            request_id: request_id.to_owned(),
            polls: polling.max_polls,
        })
    }
}
