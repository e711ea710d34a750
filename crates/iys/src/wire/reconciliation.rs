//! Reconciliation (mutabakat).

use serde::{Deserialize, Serialize};

use super::ChangeSource;
use crate::consent_date::ConsentDate;
use crate::enums::{ConsentStatus, ConsentType, RecipientType, Source};

/// `GET …/changes/{reportDate}/recipients/{recipientType}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeSummary {
    pub change_stats: Vec<ChangeStat>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeStat {
    #[serde(rename = "type")]
    pub consent_type: ConsentType,
    pub consents: Vec<SourceCounts>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCounts {
    pub source: ChangeSource,
    pub approval: u64,
    pub rejection: u64,
    pub pending: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessStatus {
    Queued,
    Inprogress,
    Completed,
    Error,
}

/// `GET …/agreements/{reportDate}`: the daily file's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgreementHash {
    pub process_status: ProcessStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_method: Option<String>,
    pub agreement_status: bool,
}

/// `PUT …/agreements/{reportDate}` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgreementConfirm {
    pub agreement_status: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgreementCaptured {
    pub agreement_captured: bool,
}

/// One row of the daily movement file (`…/changes/{reportDate}/file`, text/csv), in IYS's
/// column order: creationDate, transactionId, recipient, recipientType, type, status,
/// consentDate, source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyCsvRow {
    pub creation_date: ConsentDate,
    pub transaction_id: String,
    pub recipient: String,
    pub recipient_type: RecipientType,
    pub consent_type: ConsentType,
    pub status: ConsentStatus,
    pub consent_date: Option<ConsentDate>,
    /// Empty for a TACIR record the provider sent without a source.
    pub source: Option<Source>,
}

/// Why a daily-file line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("daily file line {line:?}: {reason}")]
pub struct CsvRowError {
    pub line: String,
    pub reason: String,
}

impl DailyCsvRow {
    /// The line without its `\n`. No field can hold a comma (IYS's recipient rules forbid it).
    pub fn to_line(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{}",
            self.creation_date,
            self.transaction_id,
            self.recipient,
            self.recipient_type,
            self.consent_type,
            self.status,
            self.consent_date.map(|d| d.to_string()).unwrap_or_default(),
            self.source.as_ref().map(Source::as_str).unwrap_or_default()
        )
    }

    pub fn parse_line(line: &str) -> Result<DailyCsvRow, CsvRowError> {
        let err = |reason: String| CsvRowError {
            line: line.to_owned(),
            reason,
        };
        let cols: Vec<&str> = line.split(',').collect();
        let [creation, tx, recipient, rtype, ctype, status, cdate, source] = cols[..] else {
            return Err(err(format!("expected 8 columns, found {}", cols.len())));
        };
        Ok(DailyCsvRow {
            creation_date: creation.parse().map_err(|e| err(format!("{e}")))?,
            transaction_id: tx.to_owned(),
            recipient: recipient.to_owned(),
            recipient_type: rtype.parse().map_err(|e| err(format!("{e}")))?,
            consent_type: ctype.parse().map_err(|e| err(format!("{e}")))?,
            status: status.parse().map_err(|e| err(format!("{e}")))?,
            consent_date: if cdate.is_empty() {
                None
            } else {
                Some(cdate.parse().map_err(|e| err(format!("{e}")))?)
            },
            source: if source.is_empty() {
                None
            } else {
                Some(source.parse().map_err(|e| err(format!("{e}")))?)
            },
        })
    }

    /// The whole file: rows sorted by creationDate then transactionId, each ending in `\n`.
    pub fn render_file(rows: &mut [DailyCsvRow]) -> String {
        rows.sort_by(|a, b| {
            (a.creation_date, &a.transaction_id).cmp(&(b.creation_date, &b.transaction_id))
        });
        rows.iter().map(|r| r.to_line() + "\n").collect()
    }
}
