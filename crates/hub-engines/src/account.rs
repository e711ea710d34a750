//! Account-level failures: IYS refuses the API user or the brand as a whole, so the brand's
//! dispatch pauses (doubling up to a limit) and its rows stay pending.

use hub_store::{Brand, DispatchPause};
use iys_client::ClientError;
use jiff::Timestamp;

use crate::{EngineDb, Engines};

/// The H-code of a pause for the subscription's quota: only new records are refused then, so
/// RETs and updates still go and bulk results are still collected.
const OVER_QUOTA: &str = "H525";

/// Whether a pause is for the subscription's quota (H525).
pub(crate) fn quota_only(p: &DispatchPause) -> bool {
    over_quota(&p.reason)
}

/// IYS's codes that refuse the account as a whole (rights, subscription, quota), not an item.
const ACCOUNT_CODES: [&str; 7] = ["H353", "H520", "H521", "H522", "H524", OVER_QUOTA, "H586"];

/// Whether `code` refuses the account as a whole rather than the item it came with.
pub(crate) fn is_account_code(code: &str) -> bool {
    ACCOUNT_CODES.contains(&code)
}

/// Whether an account failure's reason is the subscription's quota (H525).
pub(crate) fn over_quota(reason: &str) -> bool {
    reason.starts_with(OVER_QUOTA)
}

impl<S: EngineDb> Engines<S> {
    /// Pauses the brand's dispatch after an account-level failure; returns until when.
    pub(crate) async fn pause(
        &self,
        brand: &Brand,
        reason: &str,
    ) -> Result<Timestamp, hub_store::StoreError> {
        let p = self
            .store
            .pause_dispatch(
                brand.brand_code,
                reason,
                self.now(),
                self.config.pause_base.as_millis() as i64,
                self.config.pause_max.as_millis() as i64,
            )
            .await?;
        tracing::error!(brand = %brand.brand_code, until = %p.until, failures = p.failures, reason, "IYS refused the brand's account: dispatch paused, changes stay pending");
        Ok(p.until)
    }
}

/// An account-level failure: IYS refuses the API user or the brand as a whole (credentials,
/// rights, subscription, quota), or the answer is not IYS's at all. Every item would fail the
/// same way, so the brand's dispatch pauses and its items stay pending. The reason starts with
/// the H-code where IYS gave one.
pub(crate) fn account_failure(e: &ClientError) -> Option<String> {
    match e {
        ClientError::OAuth { .. } => Some(format!("IYS refused the API user's credentials: {e}")),
        ClientError::Store(_) => Some(format!(
            "the shared IYS token could not be read or saved: {e}"
        )),
        ClientError::Decode { .. } => Some(format!("the IYS URL does not answer like IYS: {e}")),
        ClientError::Iys { status: 401, .. } => {
            Some(format!("IYS refused the API user's token: {e}"))
        }
        ClientError::Iys { errors, .. } => errors
            .iter()
            .find(|x| is_account_code(&x.code))
            .map(|x| format!("{}: {e}", x.code)),
        ClientError::RetriesExhausted { last, .. } => account_failure(last),
        _ => None,
    }
}
