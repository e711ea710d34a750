//! One module per page family.

pub mod audit;
pub mod brands;
pub mod imports;
pub mod keys;
pub mod recipients;
pub mod segments;
pub mod settings;
pub mod users;
pub mod webhooks;
