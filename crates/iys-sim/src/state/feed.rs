//! The changes feed: pages of a brand's movements after a cursor, never splitting the movements
//! that share a transactionId.

use serde::Serialize;

use iys::wire::ChangeSource;

use super::{IysState, TxId, partition};

/// One page of the changes feed, shaped as IYS's `ChangesResponse`, its movements as
/// [`Movement::to_json`](super::Movement::to_json) gives them.
#[derive(Debug, Clone, Serialize)]
pub struct ChangesPage {
    pub after: String,
    pub list: Vec<serde_json::Value>,
}

impl IysState {
    /// One page of the changes feed; `None` when there is nothing (IYS answers 204).
    ///
    /// The cursor names a second and a transactionId, and movements of one consent in one second
    /// share their transactionId, so a cursor cannot tell those movements apart. Two rules keep
    /// paging lossless and finite: a cursor resumes after the LAST movement of its group, and a
    /// page never stops inside a group it has started (it may run past `limit` to finish it).
    pub fn changes(
        &self,
        brand: u64,
        source: ChangeSource,
        after: Option<(i64, TxId)>,
        limit: usize,
        window: (i64, i64),
    ) -> Option<ChangesPage> {
        let ids = self.by_brand.get(&brand)?;
        let created = |i: usize| self.movements[ids[i] as usize].created;
        let mut start = partition(ids.len(), |i| created(i) < window.0);
        if let Some((secs, tx)) = after {
            let first_same = partition(ids.len(), |i| created(i) < secs);
            let first_later = partition(ids.len(), |i| created(i) <= secs);
            // An unknown transactionId resumes at the start of its second: better to deliver a
            // movement twice than to skip one.
            let resume = (first_same..first_later)
                .find(|&i| self.movements[ids[i] as usize].tx == tx)
                .map_or(first_same, |i| self.group_end(ids, i) + 1);
            start = start.max(resume);
        }
        let mut list = Vec::new();
        let mut last = None;
        // Position of the last movement of every group the page has started.
        let mut must_reach = None;
        for (pos, &id) in ids.iter().enumerate().skip(start) {
            let m = self.movement(id);
            if m.created > window.1 {
                break;
            }
            if list.len() >= limit && must_reach.is_none_or(|end| pos > end) {
                break;
            }
            let wanted = match source {
                ChangeSource::Iys => m.is_iys(),
                ChangeSource::Hs => !m.is_iys(),
            };
            if wanted {
                list.push(m.to_json(true));
                last = Some(m);
                let end = self.group_end(ids, pos);
                must_reach = Some(must_reach.map_or(end, |e: usize| e.max(end)));
            }
        }
        last.map(|m| ChangesPage {
            after: m.cursor(),
            list,
        })
    }

    /// The position in `ids` (a brand's movements) of the last movement sharing the
    /// transactionId of the one at `pos`: the same consent, later in the same second.
    fn group_end(&self, ids: &[u32], pos: usize) -> usize {
        let Some(&id) = ids.get(pos) else {
            return pos;
        };
        let m = self.movement(id);
        let Some(of_key) = self.by_key.get(&m.key) else {
            return pos;
        };
        // Movement ids only grow, so both lists are sorted.
        let Ok(at) = of_key.binary_search(&id) else {
            return pos;
        };
        let last_id = of_key[at..]
            .iter()
            .take_while(|&&other| self.movement(other).tx == m.tx)
            .last()
            .copied()
            .unwrap_or(id);
        ids.binary_search(&last_id).unwrap_or(pos)
    }
}
