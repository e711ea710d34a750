//! Reads that go on past a stored row that cannot be read (a value outside its set, written to
//! the database by hand): that row's recipient alone is answered apart, never as allowed.

use std::collections::HashMap;
use std::sync::Arc;

use hub_core::{BrandCode, Channel, SendState};
use iys::{ConsentStatus, RecipientType};

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

/// The status of `category` for each of `subjects` that has one, as
/// [`Store::category_statuses`] reads them, except that an unreadable stored status fails only
/// its own subject: such a read is made again one subject at a time, and the unreadable
/// subjects come back apart with what is wrong.
pub async fn category_statuses_apart<S: Store>(
    store: &S,
    brand: BrandCode,
    category: &str,
    subjects: &[String],
) -> Result<(HashMap<String, ConsentStatus>, HashMap<String, String>)> {
    match store.category_statuses(brand, category, subjects).await {
        Ok(statuses) => return Ok((statuses, HashMap::new())),
        Err(StoreError::Corrupt(_)) => {}
        Err(e) => return Err(e),
    }
    let mut statuses = HashMap::new();
    let mut unreadable = HashMap::new();
    for subject in subjects {
        match store
            .category_statuses(brand, category, std::slice::from_ref(subject))
            .await
        {
            Ok(one) => statuses.extend(one),
            Err(StoreError::Corrupt(what)) => {
                tracing::error!(brand = %brand, subject, category, error = %what, "an unreadable stored category consent: never sent to until it is mended");
                unreadable.insert(subject.clone(), what);
            }
            Err(e) => return Err(e),
        }
    }
    Ok((statuses, unreadable))
}
