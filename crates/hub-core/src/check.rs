//! Send-time checks: "may I send this message on this channel to this recipient?"
//!
//! When in doubt the answer is no: an IYS channel is allowed only when the status is ONAY and IYS
//! has it (`in_iys`); `pending` only under the lenient policy. A manual hold always denies.
//! Transactional categories need no marketing consent (an IYS channel's consent is about
//! commercial messages), but never pass a hub-only channel's RET: that is the device's or the
//! person's technical opt-out (push permission withdrawn). Marketing categories also need the
//! recipient not to have refused the category.

use iys::ConsentStatus;
use serde::{Deserialize, Serialize};

use crate::model::{CategoryKind, Channel, ConsentState, IysState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// IYS must have the ONAY.
    #[default]
    Strict,
    /// An ONAY still on its way to IYS is enough.
    Lenient,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// ONAY, and IYS has it (or a hub-only channel).
    Consent,
    /// ONAY on its way to IYS, allowed by the lenient policy.
    PendingAllowed,
    /// A transactional category.
    Transactional,
    NoConsent,
    Rejected,
    /// The RET came from the citizen through IYS.
    RejectedInIys,
    PendingIys,
    /// Sync mode: IYS does not have the recipient, so the ONAY was not sent.
    HeldNotInIys,
    /// IYS refused the ONAY.
    IysRejected,
    Hold,
    CategoryRejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
}

fn deny(reason: Reason) -> Decision {
    Decision {
        allowed: false,
        reason,
    }
}

fn allow(reason: Reason) -> Decision {
    Decision {
        allowed: true,
        reason,
    }
}

/// What a send-time check reads of a consent: the few fields its decision depends on, so a batch
/// check reads only these from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendState {
    pub status: ConsentStatus,
    /// The status came from the citizen through IYS.
    pub from_iys: bool,
    pub iys_state: IysState,
    pub hold: bool,
}

impl From<&ConsentState> for SendState {
    fn from(s: &ConsentState) -> Self {
        SendState {
            status: s.status,
            from_iys: s.source.is_iys(),
            iys_state: s.iys_state,
            hold: s.hold,
        }
    }
}

/// Decides one recipient. `category` is the message's category kind and the recipient's
/// category consent status, if any.
pub fn check(
    channel: Channel,
    state: Option<&SendState>,
    category: Option<(CategoryKind, Option<ConsentStatus>)>,
    policy: Policy,
) -> Decision {
    if state.is_some_and(|s| s.hold) {
        return deny(Reason::Hold);
    }
    if let Some((CategoryKind::Transactional, _)) = category {
        let opted_out =
            channel.iys_type().is_none() && state.is_some_and(|s| s.status == ConsentStatus::Ret);
        return if opted_out {
            deny(Reason::Rejected)
        } else {
            allow(Reason::Transactional)
        };
    }
    if let Some((_, Some(ConsentStatus::Ret))) = category {
        return deny(Reason::CategoryRejected);
    }
    let Some(s) = state else {
        return deny(Reason::NoConsent);
    };
    if s.status == ConsentStatus::Ret {
        return deny(if s.from_iys {
            Reason::RejectedInIys
        } else {
            Reason::Rejected
        });
    }
    if channel.iys_type().is_none() {
        return allow(Reason::Consent);
    }
    match (s.iys_state, policy) {
        (IysState::InIys, _) => allow(Reason::Consent),
        (IysState::Pending, Policy::Lenient) => allow(Reason::PendingAllowed),
        (IysState::Pending, Policy::Strict) => deny(Reason::PendingIys),
        (IysState::Held, _) => deny(Reason::HeldNotInIys),
        (IysState::Rejected, _) => deny(Reason::IysRejected),
        // An ONAY that is not in IYS and not on its way there: no consent IYS knows of.
        (IysState::NotInIys | IysState::LocalOnly, _) => deny(Reason::NoConsent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iys::ConsentType;

    fn state(status: ConsentStatus) -> SendState {
        SendState {
            status,
            from_iys: false,
            iys_state: IysState::InIys,
            hold: false,
        }
    }

    #[test]
    fn a_transactional_message_needs_no_marketing_consent_but_not_past_a_technical_opt_out() {
        let transactional = Some((CategoryKind::Transactional, None));
        let sms = Channel::Iys(ConsentType::Mesaj);
        // An IYS RET is about commercial messages: an order update still goes.
        let ret = state(ConsentStatus::Ret);
        let d = check(sms, Some(&ret), transactional, Policy::Strict);
        assert_eq!((d.allowed, d.reason), (true, Reason::Transactional));
        assert!(check(sms, None, transactional, Policy::Strict).allowed);
        // A push RET is the device's opt-out: nothing passes it.
        for channel in [Channel::Push, Channel::InApp, Channel::WebPush] {
            let d = check(channel, Some(&ret), transactional, Policy::Strict);
            assert_eq!(
                (d.allowed, d.reason),
                (false, Reason::Rejected),
                "{channel:?}"
            );
            let onay = state(ConsentStatus::Onay);
            assert!(check(channel, Some(&onay), transactional, Policy::Strict).allowed);
        }
        // A hold keeps everything back.
        let mut held = state(ConsentStatus::Onay);
        held.hold = true;
        assert!(!check(sms, Some(&held), transactional, Policy::Lenient).allowed);
    }
}
