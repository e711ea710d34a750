//! Reads that go on past a stored row that cannot be read (a value outside its set, written to
//! the database by hand): that row's recipient alone is answered apart, never as allowed.
//!
//! A read that meets such a row is made again in halves, and each half that meets it again in
//! halves, so one bad row among n recipients costs about 2·log2(n) reads (28 for a list of
//! 10,000), not n. Only the rare failed read pays for this: the usual path is the one read.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use hub_core::{BrandCode, Channel, SendState};
use iys::{ConsentStatus, RecipientType};

use crate::{Result, Store, StoreError};

/// The halves of `range`, the first to be read first when pushed on a stack.
fn halves(range: Range<usize>) -> [Range<usize>; 2] {
    let middle = range.start + range.len() / 2;
    [middle..range.end, range.start..middle]
}

/// The send states of `recipients` in their order, as [`Store::send_states_aligned`] reads
/// them, except that an unreadable stored consent fails only its own recipient: the unreadable
/// ones come back apart as (position, what is wrong), in position order, their state `None`.
pub async fn send_states_apart<S: Store>(
    store: &S,
    brand: BrandCode,
    channel: Channel,
    recipient_type: RecipientType,
    recipients: Arc<[String]>,
) -> Result<(Vec<Option<SendState>>, Vec<(usize, String)>)> {
    // The usual path: one read, its answer as it is.
    match store
        .send_states_aligned(brand, channel, recipient_type, recipients.clone())
        .await
    {
        Ok(states) => return Ok((states, Vec::new())),
        Err(StoreError::Corrupt(_)) => {}
        Err(e) => return Err(e),
    }
    let mut states = vec![None; recipients.len()];
    let mut unreadable = Vec::new();
    // Ranges still to read, as a stack: the whole list failed, so its halves.
    let mut ranges: Vec<Range<usize>> = Vec::new();
    if recipients.len() == 1 {
        ranges.push(0..1);
    } else {
        ranges.extend(halves(0..recipients.len()));
    }
    while let Some(range) = ranges.pop() {
        let part: Arc<[String]> = recipients.get(range.clone()).unwrap_or_default().into();
        match store
            .send_states_aligned(brand, channel, recipient_type, part)
            .await
        {
            Ok(found) => {
                let slots = states.get_mut(range).unwrap_or_default();
                for (slot, state) in slots.iter_mut().zip(found) {
                    *slot = state;
                }
            }
            Err(StoreError::Corrupt(what)) if range.len() == 1 => {
                let recipient = recipients.get(range.start).map(String::as_str);
                tracing::error!(brand = %brand, recipient, error = %what, "an unreadable stored consent: never sent to until it is mended");
                unreadable.push((range.start, what));
            }
            Err(StoreError::Corrupt(_)) if range.len() > 1 => ranges.extend(halves(range)),
            Err(e) => return Err(e),
        }
    }
    unreadable.sort_unstable_by_key(|(place, _)| *place);
    Ok((states, unreadable))
}

/// The status of `category` for each of `subjects` that has one, as
/// [`Store::category_statuses`] reads them, except that an unreadable stored status fails only
/// its own subject: the unreadable subjects come back apart with what is wrong.
pub async fn category_statuses_apart<S: Store>(
    store: &S,
    brand: BrandCode,
    category: &str,
    subjects: &[String],
) -> Result<(HashMap<String, ConsentStatus>, HashMap<String, String>)> {
    let mut statuses = HashMap::new();
    let mut unreadable = HashMap::new();
    // Ranges still to read, as a stack.
    let mut ranges: Vec<Range<usize>> = Vec::new();
    ranges.push(0..subjects.len());
    while let Some(range) = ranges.pop() {
        let part = subjects.get(range.clone()).unwrap_or_default();
        match store.category_statuses(brand, category, part).await {
            Ok(found) => statuses.extend(found),
            Err(StoreError::Corrupt(what)) if range.len() == 1 => {
                if let Some(subject) = part.first() {
                    tracing::error!(brand = %brand, subject, category, error = %what, "an unreadable stored category consent: never sent to until it is mended");
                    unreadable.insert(subject.clone(), what);
                }
            }
            Err(StoreError::Corrupt(_)) if range.len() > 1 => ranges.extend(halves(range)),
            Err(e) => return Err(e),
        }
    }
    Ok((statuses, unreadable))
}

#[cfg(test)]
mod tests {
    use super::halves;

    #[test]
    fn halves_cover_the_range_once_first_half_on_top() {
        assert_eq!(halves(0..5), [2..5, 0..2]);
        assert_eq!(halves(3..5), [4..5, 3..4]);
        assert_eq!(halves(7..9), [8..9, 7..8]);
    }
}
