//! The handlers, one module per resource. Each reads its input (path, query, body DTO), calls the
//! store or a domain function, and answers with a DTO; its `#[utoipa::path]` documents it.

pub mod brands;
pub mod categories;
pub mod checks;
pub mod consents;
pub mod events;
pub mod imports;
pub mod keys;
pub mod listing;
pub mod ops;
pub mod outbox;
pub mod profiles;
pub mod reconcile;
pub mod segments;
pub mod stats;
pub mod sync;
