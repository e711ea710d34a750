//! The daily reconciliation with IYS's movement file: each day's result and the figures.

use std::collections::BTreeMap;

use hub_core::BrandCode;
use hub_store::{DayResult, DayStatus, DriftAction, DriftItem, DriftKind};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::dto::schema;
use crate::error::ApiError;
use crate::extract::{BodyError, RequestBody};

/// The days of a listing, Istanbul's; unknown parameters are refused.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReconciliationQuery {
    /// First day (Istanbul), inclusive; default 29 days before `to`.
    #[param(value_type = Option<schema::Date>)]
    pub from: Option<String>,
    /// Last day (Istanbul), inclusive; default today. At most 366 days in one listing.
    #[param(value_type = Option<schema::Date>)]
    pub to: Option<String>,
}

impl RequestBody for ReconciliationQuery {
    fn refuse(e: BodyError) -> ApiError {
        ApiError::unprocessable(
            "invalid_value",
            "unknown query parameter; allowed: from, to",
        )
        .field(e.name())
    }
}

/// Each reconciled day's result, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconciliationList {
    #[schema(value_type = schema::BrandCodeValue)]
    pub brand_code: BrandCode,
    #[schema(value_type = schema::Date)]
    pub from: Date,
    #[schema(value_type = schema::Date)]
    pub to: Date,
    pub days: Vec<ReconciliationDay>,
}

/// One day's reconciliation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconciliationDay {
    #[schema(value_type = schema::BrandCodeValue)]
    pub brand_code: BrandCode,
    /// The day (Istanbul).
    #[schema(value_type = schema::Date)]
    pub date: Date,
    #[schema(value_type = schema::ReconciliationStatus)]
    pub status: DayStatus,
    /// IYS's SHA-384 of the day's file (lower-case hex), as verified; for hash_mismatch the one
    /// IYS published.
    #[schema(required = true)]
    pub hash: Option<String>,
    /// Distinct rows of IYS's file, compared last.
    pub iys_rows: u64,
    /// Distinct movements of the ledger for that day, compared last.
    pub hub_rows: u64,
    /// Rows both sides have.
    pub matched: u64,
    /// Found by the last run, before repair.
    pub missing_in_hub: u64,
    /// Found by the last run, before repair.
    pub missing_in_iys: u64,
    /// Found by the last run, before repair.
    pub mismatched: u64,
    /// Found by the last run.
    pub unreadable: u64,
    /// IYS movements recorded through the ledger for this day, over all runs.
    pub applied: u64,
    /// Deliveries queued for IYS again for this day, over all runs.
    pub requeued: u64,
    /// Differences left after the last run's repairs.
    pub remaining: u64,
    /// Of those, the ones no repair can fix.
    pub needs_person: u64,
    /// The last run's differences (up to 50), or when it found none the previous run's (what
    /// was repaired).
    #[schema(max_items = 50)]
    pub examples: Vec<ReconciliationDrift>,
    #[schema(required = true)]
    pub error: Option<String>,
    /// Runs so far.
    pub attempts: u64,
    /// When the engines look at the day again (null once final).
    #[schema(value_type = Option<schema::Timestamp>, required = true)]
    pub next_at: Option<Timestamp>,
    #[schema(value_type = Option<schema::Timestamp>, required = true)]
    pub agreed_at: Option<Timestamp>,
    #[schema(value_type = schema::Timestamp)]
    pub updated_at: Timestamp,
}

impl From<DayResult> for ReconciliationDay {
    fn from(d: DayResult) -> Self {
        ReconciliationDay {
            brand_code: d.brand_code,
            date: d.date,
            status: d.status,
            hash: d.hash,
            iys_rows: d.iys_rows,
            hub_rows: d.hub_rows,
            matched: d.matched,
            missing_in_hub: d.missing_in_hub,
            missing_in_iys: d.missing_in_iys,
            mismatched: d.mismatched,
            unreadable: d.unreadable,
            applied: d.applied,
            requeued: d.requeued,
            remaining: d.remaining,
            needs_person: d.needs_person,
            examples: d.examples.into_iter().map(Into::into).collect(),
            error: d.error,
            attempts: d.attempts,
            next_at: d.next_at,
            agreed_at: d.agreed_at,
            updated_at: d.updated_at,
        }
    }
}

/// One difference between IYS's file and the ledger.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconciliationDrift {
    #[schema(value_type = DriftKindSchema)]
    pub kind: DriftKind,
    #[schema(value_type = DriftActionSchema)]
    pub action: DriftAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub transaction_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub recipient: Option<String>,
    /// BIREYSEL or TACIR, as the side that has the movement wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub recipient_type: Option<String>,
    /// MESAJ, ARAMA or EPOSTA.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub consent_type: Option<String>,
    /// ONAY or RET.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub status: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub consent_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub source: Option<String>,
    /// IYS's creationDate (from the file, or the one the hub recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub creation_date: Option<String>,
    /// The ledger's event, when the hub has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = i64)]
    pub event_id: Option<i64>,
    /// Why a person is needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub reason: Option<String>,
}

impl From<DriftItem> for ReconciliationDrift {
    fn from(d: DriftItem) -> Self {
        ReconciliationDrift {
            kind: d.kind,
            action: d.action,
            transaction_id: d.transaction_id,
            recipient: d.recipient,
            recipient_type: d.recipient_type,
            consent_type: d.consent_type,
            status: d.status,
            consent_date: d.consent_date,
            source: d.source,
            creation_date: d.creation_date,
            event_id: d.event_id,
            reason: d.reason,
        }
    }
}

/// Which side lacks a movement, or how the two disagree.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = DriftKind)]
#[allow(dead_code)] // A schema: the store's `DriftKind` is answered.
pub enum DriftKindSchema {
    /// In IYS's file, not in the ledger.
    MissingInHub,
    /// In the ledger for that day (a delivery, or a movement recorded from IYS), not in IYS's
    /// file.
    MissingInIys,
    /// The ledger has this transactionId for the consent with other contents.
    Mismatch,
    /// A line of the file the hub cannot read.
    Unreadable,
}

/// What the reconciler did: applied through the ledger (origin `reconcile`), requeued for IYS,
/// queued earlier and not delivered yet, or left for a person (see reason); `would_*` in a dry
/// run.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = DriftAction)]
#[allow(dead_code)] // A schema: the store's `DriftAction` is answered.
pub enum DriftActionSchema {
    Applied,
    Requeued,
    AwaitingRedelivery,
    NeedsPerson,
    WouldApply,
    WouldRequeue,
}

/// The reconciliation over the 7 days IYS serves.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconciliationSummary {
    /// The latest day confirmed to IYS.
    #[schema(value_type = Option<schema::Date>, required = true)]
    pub last_agreed_day: Option<Date>,
    /// Days whose last run left drift or refused IYS's file.
    pub days_with_drift: u64,
    /// Days by status.
    pub days: BTreeMap<String, i64>,
}

impl From<hub_store::ReconcileFigures> for ReconciliationSummary {
    fn from(f: hub_store::ReconcileFigures) -> Self {
        ReconciliationSummary {
            last_agreed_day: f.last_agreed_day,
            days_with_drift: f.days_with_drift,
            days: f.days.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_answers_as_the_store_writes_it() {
        let date = Date::constant(2026, 11, 28);
        let mut day = DayResult::pending(BrandCode(600123), date, Timestamp::UNIX_EPOCH);
        day.examples.push(DriftItem {
            kind: DriftKind::MissingInHub,
            action: DriftAction::NeedsPerson,
            transaction_id: Some("t1".into()),
            recipient: None,
            recipient_type: Some("BIREYSEL".into()),
            consent_type: Some("MESAJ".into()),
            status: None,
            consent_date: None,
            source: None,
            creation_date: None,
            event_id: Some(4),
            reason: Some("why".into()),
        });
        crate::dto::same_json(&ReconciliationDay::from(day.clone()), &day);
    }

    /// The documented kinds and actions are the store's.
    #[test]
    fn drift_kinds_and_actions_are_the_stores() {
        for kind in [
            DriftKindSchema::MissingInHub,
            DriftKindSchema::MissingInIys,
            DriftKindSchema::Mismatch,
            DriftKindSchema::Unreadable,
        ] {
            let v = serde_json::to_value(kind).unwrap();
            serde_json::from_value::<DriftKind>(v).unwrap();
        }
        for action in [
            DriftActionSchema::Applied,
            DriftActionSchema::Requeued,
            DriftActionSchema::AwaitingRedelivery,
            DriftActionSchema::NeedsPerson,
            DriftActionSchema::WouldApply,
            DriftActionSchema::WouldRequeue,
        ] {
            let v = serde_json::to_value(action).unwrap();
            serde_json::from_value::<DriftAction>(v).unwrap();
        }
    }
}
