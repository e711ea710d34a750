//! Operations: liveness, readiness and the hash chain's verification.

use serde::Serialize;
use utoipa::ToSchema;

/// The process is up.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: HealthStatus,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
}

/// Whether the instance can serve.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: ReadyStatus,
    /// `ok` or `unavailable` (the cause is in the log).
    pub database: DatabaseStatus,
    /// On instances that run the IYS engines: whether their loop is alive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engines: Option<EnginesStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
    NotReady,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseStatus {
    Ok,
    Unavailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnginesStatus {
    Ok,
    Stalled,
}

/// The result of recomputing a brand's hash chain.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainReport {
    /// Events checked.
    pub events: u64,
    pub valid: bool,
    /// The first event whose hash or link does not match.
    #[schema(required = true)]
    pub first_broken_event: Option<i64>,
    /// The last hash recomputed (64 zeros for an empty ledger).
    pub head: String,
}

impl From<hub_store::ChainReport> for ChainReport {
    fn from(r: hub_store::ChainReport) -> Self {
        ChainReport {
            events: r.events,
            valid: r.valid,
            first_broken_event: r.first_broken_event,
            head: r.head,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_report_answers_as_the_store_writes_it() {
        let r = hub_store::ChainReport {
            events: 3,
            valid: false,
            first_broken_event: Some(2),
            head: "00".into(),
        };
        crate::dto::same_json(&ChainReport::from(r.clone()), &r);
    }
}
