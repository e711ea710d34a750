//! Request and response bodies of IYS's API, field for field as in IYS's OpenAPI document.
//!
//! Optional fields are omitted when absent, never sent as `null` (IYS refuses `""` and `null`).
//! Recipients stay strings here: what IYS sends back is its canonical form, and one odd value
//! must not fail a whole page. Codes that IYS's examples write sometimes as numbers and
//! sometimes as strings use [`Code`].

use std::fmt;

use serde::{Deserialize, Serialize};

mod account;
mod consents;
mod dealers;
mod info;
mod push;
mod reconciliation;
mod status;
#[cfg(test)]
mod tests;
mod token;

pub use account::*;
pub use consents::*;
pub use dealers::*;
pub use info::*;
pub use push::*;
pub use reconciliation::*;
pub use status::*;
pub use token::*;

/// A number IYS writes as `34` in one place and `"34"` in another (city codes, MERSİS numbers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Code {
    Number(u64),
    Text(String),
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Code::Number(n) => write!(f, "{n}"),
            Code::Text(s) => f.write_str(s),
        }
    }
}
