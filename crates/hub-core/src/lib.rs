//! The hub's domain, pure and shared by the store and the API: channels, consent changes and
//! state, the ledger's decision rules (ordering, no-ops, RET-first, conflicts, holds), send-time
//! checks and the per-brand hash chain.

pub mod chain;
pub mod check;
pub mod ledger;
pub mod model;

pub use check::{Decision as CheckDecision, Policy, Reason, SendState, check};
pub use ledger::{Decision, Outcome, decide};
pub use model::*;
