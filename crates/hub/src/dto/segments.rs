//! Segments and the campaign filter.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::dto::schema;
use crate::extract::RequestBody;

/// `{brandCode}` and `{segmentId}`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct SegmentPath {
    /// The brand's code.
    #[param(value_type = u64, rename = "brandCode")]
    pub brand_code: String,
    /// The segment's id.
    #[param(value_type = i64, rename = "segmentId")]
    pub segment_id: String,
}

/// Who is in a segment. Every field narrows; absent or empty means any.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SegmentDefinition)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct SegmentDefinitionSchema {
    /// Channels: MESAJ, ARAMA, EPOSTA (IYS's), PUSH, WEB_PUSH, IN_APP, WHATSAPP.
    channels: Option<Vec<String>>,
    /// `ONAY` or `RET`.
    status: Option<String>,
    /// in_iys, pending, held, rejected, not_in_iys, local_only.
    iys_states: Option<Vec<String>>,
    /// Consent sources (`HS_WEB`, `IYS_MOBIL`, …).
    sources: Option<Vec<String>>,
    /// `BIREYSEL` or `TACIR`.
    recipient_type: Option<String>,
    /// consentDate at or after (`YYYY-MM-DD HH:MM:SS`, Turkey time).
    consent_date_from: Option<String>,
    /// consentDate at or before.
    consent_date_to: Option<String>,
    /// State changed at or after this instant.
    #[schema(value_type = Option<schema::Timestamp>)]
    changed_from: Option<String>,
    /// State changed before this instant.
    #[schema(value_type = Option<schema::Timestamp>)]
    changed_to: Option<String>,
    /// A message category of the brand: with `sendable`, recipients (and profiles) that
    /// refused it are out; a transactional category needs no marketing consent.
    category: Option<String>,
    /// Profile attributes the recipient's profile must have, compared as text (keys: letters,
    /// digits, `_`, `-`, `.`; up to 10).
    attributes: Option<BTreeMap<String, String>>,
    /// Only those a message may be sent to now, by the send-time check's rules. Default true.
    sendable: Option<bool>,
    /// `strict` (default: IYS must have the ONAY) or `lenient` (an ONAY on its way is enough).
    policy: Option<String>,
}

/// A segment to save.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SegmentInput {
    /// Unique per brand; 1–200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: Option<String>,
    #[schema(value_type = SegmentDefinitionSchema)]
    pub definition: hub_store::SegmentDefinition,
}

impl RequestBody for SegmentInput {}

/// A saved segment.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SegmentInfo {
    pub id: i64,
    #[schema(value_type = schema::BrandCodeValue)]
    pub brand_code: u64,
    pub name: String,
    #[schema(required = true)]
    pub description: Option<String>,
    #[schema(value_type = SegmentDefinitionSchema)]
    pub definition: hub_store::SegmentDefinition,
    #[schema(value_type = schema::Timestamp)]
    pub created_at: jiff::Timestamp,
    #[schema(value_type = schema::Timestamp)]
    pub updated_at: jiff::Timestamp,
}

impl From<hub_store::Segment> for SegmentInfo {
    fn from(s: hub_store::Segment) -> Self {
        SegmentInfo {
            id: s.id,
            brand_code: s.brand_code.0,
            name: s.name,
            description: s.description,
            definition: s.definition,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// A brand's segments.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentList {
    pub segments: Vec<SegmentInfo>,
}

/// How many are in a segment now.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SegmentCount {
    pub segment_id: i64,
    pub count: u64,
    #[schema(value_type = schema::Timestamp)]
    pub counted_at: jiff::Timestamp,
}

/// How members are written.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct MembersQuery {
    /// `csv` (default) or `ndjson`.
    #[param(value_type = Option<String>, pattern = "^(csv|ndjson)$")]
    pub format: Option<String>,
}

impl RequestBody for MembersQuery {}

/// What the campaign filter checks the list for.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct CheckStreamQuery {
    /// The message's channel (required): MESAJ, ARAMA, EPOSTA, PUSH, WEB_PUSH, IN_APP,
    /// WHATSAPP.
    #[param(value_type = String, required = true)]
    pub channel: Option<String>,
    /// The message's category.
    #[param(value_type = Option<String>)]
    pub category: Option<String>,
    /// `strict` (default) or `lenient`.
    #[param(value_type = Option<String>, pattern = "^(strict|lenient)$")]
    pub policy: Option<String>,
    /// `BIREYSEL` (default) or `TACIR`.
    #[param(value_type = Option<String>, pattern = "^(BIREYSEL|TACIR)$")]
    pub recipient_type: Option<String>,
    /// How the list is written: `csv` (one recipient a line, or a CSV whose first column is the
    /// recipient, with or without a `recipient` header) or `ndjson` (`"…"` or
    /// `{"recipient": "…"}` a line). Default: `ndjson` for an `application/x-ndjson` body, else
    /// `csv`.
    #[param(value_type = Option<String>, pattern = "^(csv|ndjson)$")]
    pub input: Option<String>,
    /// How the answer is written: `ndjson` (default) or `csv`.
    #[param(value_type = Option<String>, pattern = "^(csv|ndjson)$")]
    pub format: Option<String>,
}

impl RequestBody for CheckStreamQuery {}
