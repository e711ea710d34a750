//! Reconciliation (mutabakat): day summaries, the daily hash and file, confirmation.

use reqwest::{Method, StatusCode};
use sha2::Digest;

use iys::RecipientType;
use iys::wire::{AgreementCaptured, AgreementConfirm, AgreementHash, ChangeSummary};

use crate::{ClientError, IysClient};

impl IysClient {
    pub async fn day_summary(
        &self,
        brand: u64,
        date: jiff::civil::Date,
        recipient_type: RecipientType,
    ) -> Result<ChangeSummary, ClientError> {
        let call = self.brand_call(
            "reconciliation",
            Method::GET,
            brand,
            format!("/changes/{date}/recipients/{recipient_type}"),
        );
        self.json(call).await
    }

    /// The daily hash; `None` when the day has no movements (204).
    pub async fn agreement(
        &self,
        brand: u64,
        date: jiff::civil::Date,
    ) -> Result<Option<AgreementHash>, ClientError> {
        self.json_if_any(self.brand_call(
            "reconciliation",
            Method::GET,
            brand,
            format!("/agreements/{date}"),
        ))
        .await
    }

    pub async fn agreement_confirm(
        &self,
        brand: u64,
        date: jiff::civil::Date,
    ) -> Result<Option<AgreementCaptured>, ClientError> {
        let call = self
            .brand_call(
                "reconciliation",
                Method::PUT,
                brand,
                format!("/agreements/{date}"),
            )
            .json(&AgreementConfirm {
                agreement_status: true,
            })?;
        self.json_if_any(call).await
    }

    /// The daily movement file; `None` when the day has no movements (204).
    pub async fn daily_file(
        &self,
        brand: u64,
        date: jiff::civil::Date,
    ) -> Result<Option<String>, ClientError> {
        let a = self
            .send(self.brand_call(
                "reconciliation",
                Method::GET,
                brand,
                format!("/changes/{date}/file"),
            ))
            .await?;
        if a.status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        String::from_utf8(a.body)
            .map(Some)
            .map_err(|e| ClientError::Decode {
                status: 200,
                message: e.to_string(),
            })
    }

    /// Downloads the daily file and checks it against IYS's SHA-384; `None` when the day is
    /// empty or IYS has not computed its hash yet.
    pub async fn verified_daily_file(
        &self,
        brand: u64,
        date: jiff::civil::Date,
    ) -> Result<Option<String>, ClientError> {
        let Some(hash) = self
            .agreement(brand, date)
            .await?
            .and_then(|h| h.hash_value)
        else {
            return Ok(None);
        };
        let Some(file) = self.daily_file(brand, date).await? else {
            return Ok(None);
        };
        let actual = hex::encode(sha2::Sha384::digest(file.as_bytes()));
        if !actual.eq_ignore_ascii_case(&hash) {
            return Err(ClientError::HashMismatch {
                date: date.to_string(),
                expected: hash,
                actual,
            });
        }
        Ok(Some(file))
    }
}
