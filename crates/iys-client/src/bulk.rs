//! Async bulk requests: submit in chunks of 1000, read and wait for their results.

use std::time::Duration;

use jiff::Timestamp;
use reqwest::Method;

use iys::wire::{BulkAccepted, BulkItemStatus, BulkResultItem, Consent};

use crate::transport::Call;
use crate::{ClientError, IysClient, mask};

impl IysClient {
    /// Submits consents as v2 async bulk requests of at most 1000. A recipient may appear once
    /// per request (IYS's H194), so duplicates are refused before anything is sent.
    pub async fn submit_bulk(
        &self,
        brand: u64,
        consents: &[Consent],
    ) -> Result<Vec<BulkAccepted>, ClientError> {
        let chunks: Vec<&[Consent]> = consents.chunks(iys::rules::MAX_BULK).collect();
        for (n, chunk) in chunks.iter().enumerate() {
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
        }
        let mut accepted = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let call = Call::new(
                "bulk_v2",
                Method::POST,
                format!("/v2{}/consents/request", self.sps(brand)),
            )
            .brand(brand)
            .json(&chunk)?;
            let a: BulkAccepted = self.json(call).await?;
            tracing::info!(request_id = %a.request_id, items = chunk.len(), "bulk request accepted");
            accepted.push(a);
        }
        Ok(accepted)
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
