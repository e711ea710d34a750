//! Single consents: add (v2 and v1), status, multi-status and history.

use reqwest::Method;

use iys::wire::{
    AddConsentResponse, Consent, ConsentQuery, ConsentStatusResponse, HistoryResponse, Movement,
    MultiStatusResponse, RecipientList,
};
use iys::{ConsentType, RecipientType};

use crate::transport::{Call, Hourly, Replay};
use crate::{ClientError, IysClient};

impl IysClient {
    /// Adds or updates one consent (v2: a replay returns the same transaction, never a second movement).
    pub async fn add_consent(
        &self,
        brand: u64,
        consent: &Consent,
    ) -> Result<AddConsentResponse, ClientError> {
        let mut call = Call::new(
            "add_v2",
            Method::POST,
            format!("/v2{}/consents", self.sps(brand)),
        )
        .brand(brand)
        .json(consent)?;
        call.recipient = Some(&consent.recipient);
        self.json(call).await
    }

    /// The v1 add: not deduplicated by IYS, so never resent once it may have arrived.
    pub async fn add_consent_v1(
        &self,
        brand: u64,
        consent: &Consent,
    ) -> Result<AddConsentResponse, ClientError> {
        let mut call = self
            .brand_call("add", Method::POST, brand, "/consents")
            .json(consent)?;
        call.recipient = Some(&consent.recipient);
        call.replay = Replay::Unsafe;
        self.json(call).await
    }

    /// Single status (1000 per hour); `None` when IYS does not have the consent.
    pub async fn status(
        &self,
        brand: u64,
        query: &ConsentQuery,
    ) -> Result<Option<ConsentStatusResponse>, ClientError> {
        let mut call = self
            .brand_call("status", Method::POST, brand, "/consents/status")
            .json(query)?;
        call.hourly = Some(Hourly::Status);
        call.recipient = Some(&query.recipient);
        match self.send(call).await {
            Ok(a) if a.is_absent() => Ok(None),
            Ok(a) => a.json().map(Some),
            Err(ClientError::Iys { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Which of `recipients` are ONAY, asking 1000 at a time.
    pub async fn multi_status(
        &self,
        brand: u64,
        recipient_type: RecipientType,
        consent_type: ConsentType,
        recipients: &[String],
    ) -> Result<Vec<String>, ClientError> {
        let mut onay = Vec::new();
        for chunk in recipients.chunks(iys::rules::MAX_BULK) {
            let call = self
                .brand_call(
                    "multi_status",
                    Method::POST,
                    brand,
                    format!("/consents/{recipient_type}/status/{consent_type}"),
                )
                .json(&RecipientList {
                    recipients: chunk.to_vec(),
                })?;
            let r: MultiStatusResponse = self.json(call).await?;
            onay.extend(r.list);
        }
        Ok(onay)
    }

    /// Every movement of one consent (all pages, 100 per call, 100 calls per hour).
    pub async fn history(
        &self,
        brand: u64,
        query: &ConsentQuery,
    ) -> Result<Vec<Movement>, ClientError> {
        let mut all = Vec::new();
        loop {
            let mut call = self
                .brand_call("history", Method::POST, brand, "/consents/history")
                .json(query)?;
            call.query = vec![("limit", "100".into()), ("offset", all.len().to_string())];
            call.hourly = Some(Hourly::History);
            call.recipient = Some(&query.recipient);
            let page: HistoryResponse = self.json(call).await?;
            let n = page.list.len();
            all.extend(page.list);
            if n == 0 || all.len() as u64 >= page.pagination.total_count {
                return Ok(all);
            }
        }
    }
}
