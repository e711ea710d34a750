//! Bulk imports and exports.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::dto::schema;
use crate::extract::RequestBody;

/// How an upload is read.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ImportQuery {
    /// `csv`, `ndjson` or `xlsx`; detected from `fileName` or the content when absent.
    #[param(value_type = Option<String>, pattern = "^(csv|ndjson|xlsx)$")]
    pub format: Option<String>,
    /// The file's name, shown in listings (and used to detect its format).
    #[param(value_type = Option<String>, max_length = 200)]
    pub file_name: Option<String>,
    /// `true`: validate every row and count what would happen, write nothing.
    #[param(value_type = Option<bool>)]
    pub dry_run: Option<String>,
    /// Column mapping overrides, `column=field` separated by commas (e.g.
    /// `Telefon=recipient,Onay Durumu=status`).
    #[param(value_type = Option<String>)]
    pub map: Option<String>,
}

impl RequestBody for ImportQuery {}

/// An import: where it stands and what its rows did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportInfo {
    pub id: i64,
    pub brand_code: u64,
    #[schema(required = true)]
    pub file_name: Option<String>,
    /// `csv`, `ndjson` or `xlsx`.
    pub format: String,
    /// The column mapping's overrides.
    pub mapping: Vec<(String, String)>,
    /// `api` (uploaded) or `cli` (`iyshub import`).
    pub via: String,
    pub dry_run: bool,
    /// `uploading`, `queued`, `running`, `done` or `failed`.
    pub state: String,
    pub file_bytes: u64,
    /// The last line of the last recorded window of rows: a resumed import goes on after it.
    pub line: u64,
    /// Rows read so far.
    pub rows_read: u64,
    /// Rows that changed a consent.
    pub applied: u64,
    /// Rows equal to the stored state (recorded, nothing changed).
    pub unchanged: u64,
    /// Rows older than the stored state (recorded, nothing changed).
    pub older: u64,
    /// Rows refused: `GET …/imports/{id}/rejects.csv` lists them.
    pub rejected: u64,
    /// Why a failed import stopped.
    #[schema(required = true)]
    pub error: Option<String>,
    #[schema(value_type = schema::Timestamp)]
    pub created_at: jiff::Timestamp,
    #[schema(value_type = schema::Timestamp)]
    pub updated_at: jiff::Timestamp,
    #[schema(value_type = Option<schema::Timestamp>, required = true)]
    pub finished_at: Option<jiff::Timestamp>,
}

impl From<hub_store::ImportJob> for ImportInfo {
    fn from(j: hub_store::ImportJob) -> Self {
        ImportInfo {
            id: j.id,
            brand_code: j.brand_code.0,
            file_name: j.file_name,
            format: j.format,
            mapping: j.mapping,
            via: j.via.as_str().to_owned(),
            dry_run: j.dry_run,
            state: j.state.as_str().to_owned(),
            file_bytes: j.file_bytes,
            line: j.line,
            rows_read: j.rows_read,
            applied: j.counts.applied,
            unchanged: j.counts.unchanged,
            older: j.counts.older,
            rejected: j.counts.rejected,
            error: j.error,
            created_at: j.created_at,
            updated_at: j.updated_at,
            finished_at: j.finished_at,
        }
    }
}

/// A page of imports, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportPage {
    pub imports: Vec<ImportInfo>,
    /// The `cursor` of the next (older) page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// An import's id in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[serde(rename_all = "camelCase")]
pub struct ImportPath {
    /// The brand's code.
    #[param(value_type = u64)]
    pub brand_code: String,
    /// The import's id.
    #[param(value_type = i64)]
    pub import_id: String,
}

/// What an export holds and how it is written.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ExportQuery {
    /// `csv` (default) or `ndjson`.
    #[param(value_type = Option<String>, pattern = "^(csv|ndjson)$")]
    pub format: Option<String>,
    /// Only this channel.
    #[param(value_type = Option<schema::Channel>)]
    pub channel: Option<String>,
    /// Only this recipient type.
    #[param(value_type = Option<schema::RecipientType>)]
    pub recipient_type: Option<String>,
    /// Only this status.
    #[param(value_type = Option<schema::ConsentStatus>)]
    pub status: Option<String>,
    /// Only consents in this IYS state.
    #[param(value_type = Option<schema::IysState>)]
    pub iys_state: Option<String>,
    /// Only consents whose last change came from this source.
    #[param(value_type = Option<schema::Source>)]
    pub source: Option<String>,
    /// Only consents changed at or after this instant (RFC 3339).
    #[param(value_type = Option<schema::Timestamp>)]
    pub changed_since: Option<String>,
    /// Export the consents to this message category instead of channel consents (in the
    /// columns recipient, profileId, type, channel, recipientType, status, consentDate, source,
    /// category); only `status` may filter them.
    #[param(value_type = Option<String>, max_length = 64)]
    pub category: Option<String>,
}

impl RequestBody for ExportQuery {}
