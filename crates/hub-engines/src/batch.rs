//! The batcher: how a set of due outbox rows is sent. Pure and unit-tested.

use hub_store::OutboxItem;

/// How to send a set of rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Send {
    /// A short queue: one v2 single add each, in order (results are immediate).
    Single(Vec<OutboxItem>),
    /// A long queue: v2 bulk requests (≤ 1000 rows each), sent side by side, with at most one
    /// row per consent among all of them.
    Bulk(Vec<Vec<OutboxItem>>),
}

/// Plans the rows: at most one row per consent (recipient, recipientType, channel) may go out at
/// once (IYS's H194 within a request, and order between requests sent side by side), so repeats
/// are left for the next round; rows are taken closest deadline first, into at most `bulks_max`
/// requests.
pub fn plan(mut items: Vec<OutboxItem>, single_max: usize, bulks_max: usize) -> Send {
    items.sort_by_key(|i| (i.deadline, i.id));
    if items.len() <= single_max {
        return Send::Single(items);
    }
    let mut seen = std::collections::HashSet::new();
    items.retain(|i| seen.insert((i.recipient.clone(), i.recipient_type, i.channel)));
    items.truncate(iys::rules::MAX_BULK * bulks_max.max(1));
    let mut bulks = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        bulks.push(items.by_ref().take(iys::rules::MAX_BULK).collect());
    }
    Send::Bulk(bulks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::Channel;
    use iys::{ConsentDate, ConsentStatus, ConsentType, HsSource, RecipientType, Source};
    use jiff::Timestamp;

    fn item(id: i64, recipient: &str, deadline: i64) -> OutboxItem {
        OutboxItem {
            id,
            event_id: id,
            recipient: recipient.into(),
            recipient_type: RecipientType::Bireysel,
            channel: Channel::Iys(ConsentType::Mesaj),
            status: ConsentStatus::Onay,
            consent_date: ConsentDate::parse("2026-11-27 10:00:00").unwrap(),
            source: Source::Hs(HsSource::HsWeb),
            attempts: 0,
            deadline: Timestamp::from_second(deadline).unwrap(),
            request_id: None,
            sub_request_id: None,
            submitted_at: None,
            bulk_index: None,
            created_at: Timestamp::from_second(0).unwrap(),
        }
    }

    #[test]
    fn short_queues_go_single_in_deadline_order() {
        let Send::Single(v) = plan(vec![item(1, "a", 30), item(2, "b", 10)], 5, 1) else {
            panic!()
        };
        assert_eq!(v.iter().map(|i| i.id).collect::<Vec<_>>(), [2, 1]);
    }

    #[test]
    fn long_queues_go_bulk_with_one_row_per_consent_and_at_most_1000() {
        let mut items: Vec<OutboxItem> = (0..1500)
            .map(|n| item(n, &format!("r{n}"), 2000 - n))
            .collect();
        items.push(item(9999, "r5", 0));
        let Send::Bulk(bulks) = plan(items, 25, 1) else {
            panic!()
        };
        let [v] = bulks.as_slice() else {
            panic!("one request")
        };
        assert_eq!(v.len(), 1000);
        assert_eq!(v[0].id, 9999, "closest deadline first");
        assert_eq!(v.iter().filter(|i| i.recipient == "r5").count(), 1);
        let mut keys: Vec<_> = v.iter().map(|i| i.recipient.clone()).collect();
        keys.dedup();
        assert_eq!(keys.len(), 1000);
    }

    #[test]
    fn long_queues_fill_requests_side_by_side_with_each_consent_in_one() {
        let mut items: Vec<OutboxItem> = (0..2600).map(|n| item(n, &format!("r{n}"), n)).collect();
        items.push(item(9999, "r5", 0));
        let Send::Bulk(bulks) = plan(items, 25, 3) else {
            panic!()
        };
        assert_eq!(
            bulks.iter().map(Vec::len).collect::<Vec<_>>(),
            [1000, 1000, 600]
        );
        let all: Vec<&OutboxItem> = bulks.iter().flatten().collect();
        assert_eq!(all.iter().filter(|i| i.recipient == "r5").count(), 1);
        assert!(
            all.windows(2)
                .all(|w| (w[0].deadline, w[0].id) <= (w[1].deadline, w[1].id))
        );
        let Send::Bulk(bulks) = plan(
            (0..5000).map(|n| item(n, &format!("r{n}"), n)).collect(),
            25,
            2,
        ) else {
            panic!()
        };
        assert_eq!(bulks.len(), 2, "no more requests than allowed at once");
    }
}
