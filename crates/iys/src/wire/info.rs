//! Info: cities and towns.

use serde::{Deserialize, Serialize};

use super::Code;

/// `GET /info/city`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct City {
    pub code: Code,
    pub name: String,
}

/// `GET /info/town`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Town {
    pub name: String,
    pub code: Code,
    pub city_code: Code,
}
