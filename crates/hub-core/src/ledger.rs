//! The ledger's decision rules: what a change does to a consent's current state and whether it
//! must go to IYS. Every change is recorded in history whatever the outcome; this decides the rest.
//!
//! - A change older (by consentDate) than the current state changes nothing (IYS: H178).
//! - The same status again is a no-op only while IYS holds it (or it is already on its way);
//!   after a refusal, a failure or IYS's "no record", it is queued again.
//! - A RET on an IYS channel always goes to IYS, also the first one for a recipient the hub has
//!   never seen: IYS may hold an ONAY written by another system or by the citizen. IYS answers
//!   H175 harmlessly when it never had the recipient.
//! - Equal consentDates with different statuses: RET wins and the consent is flagged `conflict`,
//!   for API writes and movements from IYS alike.
//! - A movement from IYS (pull, push, reconcile) is applied unless our state is strictly newer,
//!   and is never sent back: the citizen wins. Every one of them tells that IYS knows the consent.
//! - A manual hold is set or lifted only by a change that says so; nothing else touches it.
//! - Sync mode never creates IYS records: an ONAY for a recipient IYS is not known to have is
//!   `held`, and released as soon as IYS is seen to have it.

use iys::ConsentStatus;
use serde::Serialize;

use crate::model::{Change, ConsentState, IysState, Mode};

/// What a change did.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(
    serialize_all = "snake_case",
    parse_err_ty = crate::model::InvalidValue,
    parse_err_fn = invalid_outcome
)]
pub enum Outcome {
    /// The state changed.
    Applied,
    /// Same status as now, and IYS holds it (or it is on its way): recorded only.
    Noop,
    /// Same status as now, but IYS's last answer was a refusal or "no record": sent again.
    Resent,
    /// Older than the current state: recorded only.
    Older,
    /// Same consentDate, different status: RET kept, consent flagged.
    Conflict,
    /// Only the manual hold changed.
    HoldChanged,
    /// A movement from IYS the store had recorded already (same transactionId and content): not
    /// recorded again. The store's verdict; `decide` never gives it.
    Duplicate,
    /// A RET kept in the hub only. Written by earlier versions (their first RETs never went to
    /// IYS); found in old history, never given now.
    KeptLocal,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

fn invalid_outcome(s: &str) -> crate::model::InvalidValue {
    crate::model::InvalidValue {
        field: "outcome",
        value: s.to_owned(),
        expected: "applied, noop, resent, older, conflict, hold_changed, duplicate or kept_local",
    }
}

/// The ledger's verdict on one change.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub outcome: Outcome,
    /// The new current state, when anything about it changed.
    pub state: Option<ConsentState>,
    /// Whether an outbox row is needed, and in which state (`Pending` or `Held`).
    pub outbox: Option<IysState>,
}

/// Where a change to `status` goes on an IYS channel: RETs and integrator-mode ONAYs are sent;
/// in sync mode an ONAY is sent only for a record IYS is known to have.
fn target(status: ConsentStatus, mode: Mode, iys_known: bool) -> IysState {
    match (status, mode) {
        (ConsentStatus::Ret, _) | (ConsentStatus::Onay, Mode::Integrator) => IysState::Pending,
        (ConsentStatus::Onay, Mode::Sync) if iys_known => IysState::Pending,
        (ConsentStatus::Onay, Mode::Sync) => IysState::Held,
    }
}

/// Decides what `change` does to `current`. `last_event_id` of the returned state is left for the
/// store to fill in.
pub fn decide(current: Option<&ConsentState>, change: &Change, mode: Mode) -> Decision {
    let iys_channel = change.key.channel.iys_type().is_some() && change.category.is_none();
    let hold = change.hold.or(current.map(|c| c.hold)).unwrap_or(false);
    let deadline = iys_channel.then(|| change.consent_date.iys_deadline().to_timestamp());
    let from_iys = change.origin.is_from_iys();
    let known = current.is_some_and(|c| c.iys_known) || from_iys;
    let fresh = |status: ConsentStatus, iys_state: IysState, conflict: bool| ConsentState {
        status,
        consent_date: change.consent_date,
        source: change.source.clone(),
        last_event_id: 0,
        iys_state,
        iys_error: None,
        conflict,
        hold,
        deadline: matches!(iys_state, IysState::Pending | IysState::Held)
            .then_some(deadline)
            .flatten(),
        iys_known: known,
        updated_at: change.received_at,
    };
    // The state is kept, but what it says about holds and IYS's knowledge may change: a movement
    // seen from IYS means IYS has the record, which in sync mode releases a held ONAY.
    let unchanged = |outcome: Outcome| match current {
        Some(c) if c.hold != hold || c.iys_known != known => {
            let released = from_iys && !c.iys_known && c.iys_state == IysState::Held;
            Decision {
                outcome: if outcome == Outcome::Noop && c.hold != hold {
                    Outcome::HoldChanged
                } else {
                    outcome
                },
                state: Some(ConsentState {
                    hold,
                    iys_known: known,
                    iys_state: if released {
                        IysState::Pending
                    } else {
                        c.iys_state
                    },
                    updated_at: change.received_at,
                    ..c.clone()
                }),
                outbox: None,
            }
        }
        _ => Decision {
            outcome,
            state: None,
            outbox: None,
        },
    };

    // Movements from IYS: IYS's truth, applied unless we are strictly newer; never sent back.
    if from_iys {
        return match current {
            Some(c) if c.consent_date > change.consent_date => unchanged(Outcome::Older),
            // The same status IYS already has: nothing to apply, but a later date of IYS's is
            // kept, so a hub change dated before it is ordered as older (IYS would answer H178).
            Some(c)
                if c.status == change.status
                    && c.iys_state == IysState::InIys
                    && change.consent_date > c.consent_date =>
            {
                Decision {
                    outcome: Outcome::Noop,
                    state: Some(ConsentState {
                        consent_date: change.consent_date,
                        source: change.source.clone(),
                        iys_known: true,
                        hold,
                        updated_at: change.received_at,
                        ..c.clone()
                    }),
                    outbox: None,
                }
            }
            Some(c) if c.status == change.status && c.iys_state == IysState::InIys => {
                unchanged(Outcome::Noop)
            }
            // The tie rule, as for API writes: equal dates, different statuses → RET, flagged.
            Some(c) if c.consent_date == change.consent_date && c.status != change.status => {
                let state = match change.status {
                    ConsentStatus::Ret => fresh(ConsentStatus::Ret, IysState::InIys, true),
                    ConsentStatus::Onay => ConsentState {
                        conflict: true,
                        hold,
                        iys_known: true,
                        updated_at: change.received_at,
                        ..c.clone()
                    },
                };
                Decision {
                    outcome: Outcome::Conflict,
                    state: Some(state),
                    outbox: None,
                }
            }
            _ => Decision {
                outcome: Outcome::Applied,
                state: Some(fresh(change.status, IysState::InIys, false)),
                outbox: None,
            },
        };
    }

    let Some(c) = current else {
        if !iys_channel {
            return Decision {
                outcome: Outcome::Applied,
                state: Some(fresh(change.status, IysState::LocalOnly, false)),
                outbox: None,
            };
        }
        // A first change on an IYS channel. A first RET goes too: IYS may hold an ONAY the hub
        // never saw, and a RET that IYS does not need costs one harmless H175.
        let target = target(change.status, mode, false);
        return Decision {
            outcome: Outcome::Applied,
            state: Some(fresh(change.status, target, false)),
            outbox: Some(target),
        };
    };

    if change.consent_date < c.consent_date {
        return unchanged(Outcome::Older);
    }
    if change.status == c.status {
        // A no-op only while IYS holds this status or it is already on its way (or held).
        let settled = !iys_channel
            || matches!(
                c.iys_state,
                IysState::InIys | IysState::Pending | IysState::Held | IysState::LocalOnly
            );
        // A RET repeated with a later date is the person's latest word: it becomes the
        // consent's state (an ONAY dated before it is then older and never re-subscribes them)
        // and goes to IYS too, which may hold a citizen's ONAY dated between the two (IYS
        // answers H174 when it holds the RET already, which settles it as in IYS). A repeated
        // ONAY keeps its date, so a citizen's RET in IYS dated between the two still wins.
        let later_ret = change.status == ConsentStatus::Ret && change.consent_date > c.consent_date;
        if later_ret && !iys_channel {
            return Decision {
                outcome: if c.hold != hold {
                    Outcome::HoldChanged
                } else {
                    Outcome::Noop
                },
                state: Some(fresh(change.status, c.iys_state, c.conflict)),
                outbox: None,
            };
        }
        if settled && !later_ret {
            return unchanged(Outcome::Noop);
        }
        let target = target(change.status, mode, c.iys_known);
        return Decision {
            outcome: Outcome::Resent,
            state: Some(fresh(change.status, target, c.conflict)),
            outbox: Some(target),
        };
    }
    let conflict = change.consent_date == c.consent_date;
    if conflict && change.status == ConsentStatus::Onay {
        // The current state is RET with the same date: RET wins, a person should look.
        return Decision {
            outcome: Outcome::Conflict,
            state: Some(ConsentState {
                conflict: true,
                hold,
                updated_at: change.received_at,
                ..c.clone()
            }),
            outbox: None,
        };
    }
    let outcome = if conflict {
        Outcome::Conflict
    } else {
        Outcome::Applied
    };
    if !iys_channel {
        return Decision {
            outcome,
            state: Some(fresh(change.status, IysState::LocalOnly, conflict)),
            outbox: None,
        };
    }
    let target = target(change.status, mode, c.iys_known);
    Decision {
        outcome,
        state: Some(fresh(change.status, target, conflict)),
        outbox: Some(target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BrandCode, Channel, ConsentKey, Origin};
    use iys::{ConsentDate, ConsentType, HsSource, IysSource, RecipientType, Source};
    use jiff::Timestamp;

    fn change(status: ConsentStatus, date: &str, origin: Origin) -> Change {
        Change {
            key: ConsentKey {
                brand: BrandCode(600_123),
                recipient: "+905321234567".into(),
                recipient_type: RecipientType::Bireysel,
                channel: Channel::Iys(ConsentType::Mesaj),
            },
            status,
            consent_date: ConsentDate::parse(date).unwrap(),
            source: if origin.is_from_iys() {
                Source::Iys(IysSource::Mobil)
            } else {
                Source::Hs(HsSource::HsWeb)
            },
            origin,
            actor: None,
            evidence: None,
            category: None,
            profile_id: None,
            hold: None,
            iys_transaction_id: None,
            iys_creation_date: None,
            received_at: Timestamp::from_second(1_800_000_000).unwrap(),
        }
    }

    fn state_after(
        current: Option<&ConsentState>,
        c: &Change,
        mode: Mode,
    ) -> (Decision, Option<ConsentState>) {
        let d = decide(current, c, mode);
        let s = d.state.clone().or_else(|| current.cloned());
        (d, s)
    }

    use ConsentStatus::{Onay, Ret};
    const D1: &str = "2026-11-20 10:00:00";
    const D2: &str = "2026-11-21 10:00:00";

    #[test]
    fn first_changes() {
        let (d, s) = state_after(None, &change(Onay, D1, Origin::Api), Mode::Integrator);
        assert_eq!(
            (d.outcome, d.outbox),
            (Outcome::Applied, Some(IysState::Pending))
        );
        assert!(s.unwrap().deadline.is_some());
        // A first RET goes to IYS in both modes: IYS may hold an ONAY the hub never saw.
        for mode in [Mode::Integrator, Mode::Sync] {
            let (d, s) = state_after(None, &change(Ret, D1, Origin::Api), mode);
            assert_eq!(
                (d.outcome, d.outbox),
                (Outcome::Applied, Some(IysState::Pending))
            );
            assert_eq!(s.unwrap().iys_state, IysState::Pending);
        }
        let (d, _) = state_after(None, &change(Onay, D1, Origin::Api), Mode::Sync);
        assert_eq!(
            d.outbox,
            Some(IysState::Held),
            "sync mode never creates IYS records"
        );
        let mut push = change(Onay, D1, Origin::Api);
        push.key.channel = Channel::Push;
        let (d, s) = state_after(None, &push, Mode::Integrator);
        assert_eq!((d.outcome, d.outbox), (Outcome::Applied, None));
        assert_eq!(s.unwrap().iys_state, IysState::LocalOnly);
    }

    #[test]
    fn ordering_noops_and_conflicts() {
        let (_, s) = state_after(None, &change(Onay, D2, Origin::Api), Mode::Integrator);
        let s = s.unwrap();
        let (d, _) = state_after(Some(&s), &change(Ret, D1, Origin::Api), Mode::Integrator);
        assert_eq!(
            (d.outcome, d.state.is_none(), d.outbox),
            (Outcome::Older, true, None)
        );
        let (d, _) = state_after(
            Some(&s),
            &change(Onay, "2026-11-22 10:00:00", Origin::Api),
            Mode::Integrator,
        );
        assert_eq!((d.outcome, d.outbox), (Outcome::Noop, None));
        let (d, s2) = state_after(Some(&s), &change(Ret, D2, Origin::Api), Mode::Integrator);
        assert_eq!(
            (d.outcome, d.outbox),
            (Outcome::Conflict, Some(IysState::Pending))
        );
        let s2 = s2.unwrap();
        assert_eq!((s2.status, s2.conflict), (Ret, true));
        // ONAY with the same date as a RET: RET stays, flagged.
        let (d, s3) = state_after(Some(&s2), &change(Onay, D2, Origin::Api), Mode::Integrator);
        assert_eq!((d.outcome, d.outbox), (Outcome::Conflict, None));
        assert_eq!(s3.unwrap().status, Ret);
    }

    #[test]
    fn the_citizen_wins_unless_we_are_strictly_newer() {
        let (_, s) = state_after(None, &change(Onay, D1, Origin::Api), Mode::Integrator);
        let s = s.unwrap();
        let (d, s2) = state_after(
            Some(&s),
            &change(Ret, D2, Origin::IysPull),
            Mode::Integrator,
        );
        assert_eq!(
            (d.outcome, d.outbox),
            (Outcome::Applied, None),
            "never echoed back"
        );
        assert_eq!(s2.unwrap().iys_state, IysState::InIys);
        let (_, newer) = state_after(None, &change(Onay, D2, Origin::Api), Mode::Integrator);
        let (d, _) = state_after(
            newer.as_ref(),
            &change(Ret, D1, Origin::IysPush),
            Mode::Integrator,
        );
        assert_eq!(d.outcome, Outcome::Older);
        let (d, _) = state_after(
            newer.as_ref(),
            &change(Ret, D2, Origin::IysPush),
            Mode::Integrator,
        );
        assert_eq!(
            d.outcome,
            Outcome::Conflict,
            "equal dates, different statuses: RET wins, flagged"
        );
        let s = d.state.unwrap();
        assert_eq!((s.status, s.conflict, s.iys_known), (Ret, true, true));
    }

    #[test]
    fn movements_from_iys_s_daily_file_are_iys_s_truth_like_pulled_ones() {
        let (_, s) = state_after(None, &change(Onay, D1, Origin::Api), Mode::Sync);
        let (d, s2) = state_after(s.as_ref(), &change(Ret, D2, Origin::Reconcile), Mode::Sync);
        assert_eq!(
            (d.outcome, d.outbox),
            (Outcome::Applied, None),
            "never echoed back"
        );
        let s2 = s2.unwrap();
        assert_eq!(
            (s2.status, s2.iys_state, s2.iys_known),
            (Ret, IysState::InIys, true)
        );
        let (d, after) = state_after(Some(&s2), &change(Onay, D2, Origin::Reconcile), Mode::Sync);
        assert_eq!((d.outcome, after.unwrap().status), (Outcome::Conflict, Ret));
    }

    #[test]
    fn the_tie_rule_holds_for_movements_from_iys_in_either_order() {
        let (_, onay) = state_after(None, &change(Onay, D1, Origin::IysPull), Mode::Integrator);
        let (d, ret) = state_after(
            onay.as_ref(),
            &change(Ret, D1, Origin::IysPull),
            Mode::Integrator,
        );
        assert_eq!(d.outcome, Outcome::Conflict);
        let ret = ret.unwrap();
        assert_eq!(
            (ret.status, ret.iys_state, ret.conflict),
            (Ret, IysState::InIys, true)
        );
        // The ONAY of the same second arriving after the RET does not undo it.
        let (d, after) = state_after(
            Some(&ret),
            &change(Onay, D1, Origin::IysPush),
            Mode::Integrator,
        );
        assert_eq!((d.outcome, after.unwrap().status), (Outcome::Conflict, Ret));
    }

    #[test]
    fn the_same_status_again_is_resent_unless_iys_holds_it() {
        let (_, s) = state_after(None, &change(Onay, D1, Origin::Api), Mode::Integrator);
        let mut s = s.unwrap();
        for (iys_state, expected) in [
            (IysState::InIys, Outcome::Noop),
            (IysState::Pending, Outcome::Noop),
            (IysState::Rejected, Outcome::Resent),
        ] {
            s.iys_state = iys_state;
            let (d, after) =
                state_after(Some(&s), &change(Onay, D2, Origin::Api), Mode::Integrator);
            assert_eq!(d.outcome, expected, "{iys_state:?}");
            if expected == Outcome::Resent {
                assert_eq!(d.outbox, Some(IysState::Pending));
                let after = after.unwrap();
                assert_eq!(after.consent_date.to_string(), D2);
                assert_eq!(after.iys_state, IysState::Pending);
            }
        }
        // A RET IYS answered with "no record" (H175) is sent again when repeated.
        s.status = Ret;
        s.iys_state = IysState::NotInIys;
        let (d, _) = state_after(Some(&s), &change(Ret, D2, Origin::Api), Mode::Sync);
        assert_eq!(
            (d.outcome, d.outbox),
            (Outcome::Resent, Some(IysState::Pending))
        );
    }

    #[test]
    fn iys_s_later_date_for_the_same_status_orders_later_hub_changes() {
        let (_, s) = state_after(None, &change(Ret, D1, Origin::IysPull), Mode::Integrator);
        let s = s.unwrap();
        // A citizen's RET again, later: a no-op that keeps IYS's date.
        let (d, s2) = state_after(
            Some(&s),
            &change(Ret, "2026-11-22 10:00:00", Origin::IysPull),
            Mode::Integrator,
        );
        assert_eq!(d.outcome, Outcome::Noop);
        let s2 = s2.unwrap();
        assert_eq!(s2.consent_date.to_string(), "2026-11-22 10:00:00");
        assert_eq!(s2.last_event_id, s.last_event_id);
        // A hub ONAY dated between the two is older than what IYS holds: not applied, not sent.
        let (d, _) = state_after(Some(&s2), &change(Onay, D2, Origin::Api), Mode::Integrator);
        assert_eq!((d.outcome, d.outbox), (Outcome::Older, None));
    }

    #[test]
    fn a_later_ret_again_is_sent_and_orders_an_onay_dated_before_it_as_older() {
        for iys_state in [IysState::InIys, IysState::Pending] {
            let (_, s) = state_after(None, &change(Ret, D1, Origin::Api), Mode::Integrator);
            let mut s = s.unwrap();
            s.iys_state = iys_state;
            // The person says no again, later: their latest word, sent to IYS too (which may
            // hold a citizen's ONAY dated between the two).
            let (d, s2) = state_after(
                Some(&s),
                &change(Ret, "2026-11-22 10:00:00", Origin::Api),
                Mode::Sync,
            );
            assert_eq!(
                (d.outcome, d.outbox),
                (Outcome::Resent, Some(IysState::Pending)),
                "{iys_state:?}"
            );
            let s2 = s2.unwrap();
            assert_eq!(s2.consent_date.to_string(), "2026-11-22 10:00:00");
            assert_eq!((s2.status, s2.iys_state), (Ret, IysState::Pending));
            // An ONAY dated between the two RETs arrives late: older, not applied, not sent.
            let d = decide(Some(&s2), &change(Onay, D2, Origin::Api), Mode::Integrator);
            assert_eq!((d.outcome, d.outbox, d.state), (Outcome::Older, None, None));
            // An earlier RET again changes nothing.
            let d = decide(Some(&s2), &change(Ret, D2, Origin::Api), Mode::Integrator);
            assert_eq!((d.outcome, d.state), (Outcome::Older, None));
        }
        // The same RET again (same date) is still a no-op while IYS holds it.
        let (_, s) = state_after(None, &change(Ret, D1, Origin::Api), Mode::Integrator);
        let mut s = s.unwrap();
        s.iys_state = IysState::InIys;
        let d = decide(Some(&s), &change(Ret, D1, Origin::Api), Mode::Integrator);
        assert_eq!((d.outcome, d.outbox), (Outcome::Noop, None));
        // A repeated ONAY keeps its date: a citizen's RET in IYS dated between still wins.
        let (_, s) = state_after(None, &change(Onay, D1, Origin::Api), Mode::Integrator);
        let mut s = s.unwrap();
        s.iys_state = IysState::InIys;
        let (d, s2) = state_after(
            Some(&s),
            &change(Onay, "2026-11-22 10:00:00", Origin::Api),
            Mode::Integrator,
        );
        assert_eq!(d.outcome, Outcome::Noop);
        assert_eq!(s2.map(|s| s.consent_date.to_string()).as_deref(), Some(D1));
        let (d, after) = state_after(
            Some(&s),
            &change(Ret, D2, Origin::IysPull),
            Mode::Integrator,
        );
        assert_eq!((d.outcome, after.unwrap().status), (Outcome::Applied, Ret));
    }

    #[test]
    fn any_movement_from_iys_tells_that_iys_knows_the_consent() {
        let (_, s) = state_after(None, &change(Onay, D2, Origin::Api), Mode::Sync);
        let s = s.unwrap();
        assert_eq!((s.iys_state, s.iys_known), (IysState::Held, false));
        // An older movement changes nothing but says IYS has the record: the ONAY is released.
        let (d, after) = state_after(Some(&s), &change(Ret, D1, Origin::IysPull), Mode::Sync);
        assert_eq!(d.outcome, Outcome::Older);
        let after = after.unwrap();
        assert_eq!(
            (after.status, after.iys_state, after.iys_known),
            (Onay, IysState::Pending, true)
        );
    }

    #[test]
    fn holds_change_only_when_asked() {
        let mut held = change(Onay, D1, Origin::Api);
        held.hold = Some(true);
        let (_, s) = state_after(None, &held, Mode::Integrator);
        let s = s.unwrap();
        assert!(s.hold);
        let (_, s2) = state_after(
            Some(&s),
            &change(Ret, D2, Origin::IysPull),
            Mode::Integrator,
        );
        assert!(s2.unwrap().hold, "sync does not lift a hold");
        let mut lift = change(Onay, D2, Origin::Console);
        lift.hold = Some(false);
        let (d, s3) = state_after(Some(&s), &lift, Mode::Integrator);
        assert_eq!(d.outcome, Outcome::HoldChanged);
        assert!(!s3.unwrap().hold);
    }

    #[test]
    fn sync_mode_sends_onay_only_for_records_iys_has() {
        let (_, s) = state_after(None, &change(Onay, D1, Origin::IysPull), Mode::Sync);
        let s = s.unwrap();
        let (d, _) = state_after(Some(&s), &change(Ret, D2, Origin::Api), Mode::Sync);
        assert_eq!(d.outbox, Some(IysState::Pending));
        let mut local = s.clone();
        local.iys_state = IysState::NotInIys;
        local.iys_known = false;
        local.status = Ret;
        let (d, _) = state_after(Some(&local), &change(Onay, D2, Origin::Api), Mode::Sync);
        assert_eq!(d.outbox, Some(IysState::Held));
        let (d, _) = state_after(
            Some(&local),
            &change(Onay, D2, Origin::Api),
            Mode::Integrator,
        );
        assert_eq!(d.outbox, Some(IysState::Pending));
    }
}
