//! The automation event: one state change of a consent, as the ledger records it with the
//! change (the store writes it, the delivery side carries it, the API lists it).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::BrandCode;

/// One state change of a consent: a status different from the one before, or a first record.
/// Written as the `data` of its CloudEvent (camelCase, absent values as `null`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentEvent {
    /// Unique across brands and increasing per brand in commit order: the de-duplication key of
    /// every sink (`webhook-id`, `Nats-Msg-Id`) and the cursor of polling.
    pub id: i64,
    pub brand: BrandCode,
    pub recipient: String,
    /// `BIREYSEL` or `TACIR`, as stored.
    pub recipient_type: String,
    /// `MESAJ`, `ARAMA`, `EPOSTA` or a hub-only channel (for a category consent: the channel
    /// the change came with).
    pub channel: String,
    /// Set for a category consent change.
    pub category: Option<String>,
    /// The previous status (`ONAY`/`RET`); `None` for a first record.
    pub old: Option<String>,
    pub new: String,
    /// `api`, `import`, `console`, `iys_pull`, `iys_push`, `reconcile` or `mode_switch`.
    pub origin: String,
    /// The consent's IYS state after the change; `None` for a category consent.
    pub iys_state: Option<String>,
    pub at: Timestamp,
}
