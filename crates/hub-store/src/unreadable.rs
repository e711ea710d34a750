//! Reads that go on past a stored row that cannot be read (a value outside its set, written to
//! the database by hand): that row's recipient alone is answered apart, never as allowed.

use std::sync::Arc;

use hub_core::{BrandCode, Channel, SendState};
use iys::RecipientType;

use crate::{Result, Store, StoreError};

/// The send states of `recipients` in their order, as [`Store::send_states_aligned`] reads
/// them, except that an unreadable stored consent fails only its own recipient. Such a read is
/// made again one recipient at a time; the unreadable ones come back apart as (position, what
/// is wrong), their state `None`. Only the rare failed read pays for this: the usual path is
/// the one read.
pub async fn send_states_apart<S: Store>(
    store: &S,
    brand: BrandCode,
    channel: Channel,
    recipient_type: RecipientType,
    recipients: Arc<[String]>,
) -> Result<(Vec<Option<SendState>>, Vec<(usize, String)>)> {
    match store
        .send_states_aligned(brand, channel, recipient_type, recipients.clone())
        .await
    {
        Ok(states) => return Ok((states, Vec::new())),
        Err(StoreError::Corrupt(_)) => {}
        Err(e) => return Err(e),
    }
    let mut states = Vec::with_capacity(recipients.len());
    let mut unreadable = Vec::new();
    for (place, recipient) in recipients.iter().enumerate() {
        let one: Arc<[String]> = Arc::from([recipient.clone()]);
        match store
            .send_states_aligned(brand, channel, recipient_type, one)
            .await
        {
            Ok(state) => states.push(state.into_iter().next().flatten()),
            Err(StoreError::Corrupt(what)) => {
                tracing::error!(brand = %brand, recipient, error = %what, "an unreadable stored consent: never sent to until it is mended");
                states.push(None);
                unreadable.push((place, what));
            }
            Err(e) => return Err(e),
        }
    }
    Ok((states, unreadable))
}
