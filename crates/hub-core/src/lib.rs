//! The hub's domain, pure and shared by the store and the API: channels, consent changes and
//! state, the ledger's decision rules (ordering, no-ops, RET-first, conflicts, holds), send-time
//! checks and the per-brand hash chain; and what the API and the IYS engines of one instance
//! share without depending on each other (the backfill trigger, the engines' heartbeat).

pub mod backfill;
pub mod chain;
pub mod check;
pub mod event;
pub mod heartbeat;
pub mod ledger;
pub mod model;

pub use backfill::Backfill;
pub use check::{Decision as CheckDecision, Policy, Reason, SendState, check};
pub use event::ConsentEvent;
pub use heartbeat::Heartbeat;
pub use ledger::{Decision, Outcome, decide};
pub use model::*;
