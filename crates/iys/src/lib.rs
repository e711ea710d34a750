//! The IYS (İleti Yönetim Sistemi) protocol, shared by the hub, the simulator and the client.
//!
//! Everything here is pure: wire types, enums, the H-code catalogue, recipient normalisation,
//! IYS's date format, Turkey's business-day calendar and IYS's validation and transition rules.
//! Keeping one model of the protocol means the simulator, the client and the hub cannot drift
//! apart, and the hub can refuse locally what IYS would refuse, before spending IYS quota.

pub mod calendar;
pub mod consent_date;
pub mod enums;
pub mod error;
pub mod hcode;
pub mod recipient;
pub mod rules;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod wire;

pub use consent_date::ConsentDate;
pub use enums::{ConsentStatus, ConsentType, HsSource, IysSource, RecipientType, Source};
pub use error::{IysError, IysErrors, Location, OAuthError};
pub use hcode::{ErrorClass, HCode};
pub use recipient::{Email, Phone, Recipient, RecipientError};
