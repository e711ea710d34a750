//! Sync mode's backfill as the API and the IYS engines share it: the trigger the API calls and
//! the engines implement, and the names of its positions in the store's cursor table.

use iys::{ConsentType, RecipientType};

use crate::BrandCode;

/// Starts and reports backfills (the IYS engines implement it; the API only triggers it).
pub trait Backfill: Send + Sync + std::fmt::Debug {
    /// Starts a backfill of the brand in the background; false if one is already running.
    fn start(&self, brand: BrandCode) -> bool;
    /// Whether one is running, and the last report.
    fn report(&self, brand: BrandCode) -> serde_json::Value;
}

/// What the cursor-table sources of backfill positions start with.
const CURSOR_PREFIX: &str = "backfill:";

/// The cursor of a finished channel: sorts after every recipient.
pub const CURSOR_DONE: &str = "\u{10ffff}";

/// The cursor-table source holding the backfill's position in one channel and recipient type
/// (`backfill:MESAJ:BIREYSEL`).
pub fn cursor_source(consent_type: ConsentType, recipient_type: RecipientType) -> String {
    format!("{CURSOR_PREFIX}{consent_type}:{recipient_type}")
}

/// The channel a backfill cursor's source names (`MESAJ:BIREYSEL`); `None` for other cursors.
pub fn cursor_channel(source: &str) -> Option<&str> {
    source.strip_prefix(CURSOR_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_name_their_channel() {
        let s = cursor_source(ConsentType::Mesaj, RecipientType::Bireysel);
        assert_eq!(s, "backfill:MESAJ:BIREYSEL");
        assert_eq!(cursor_channel(&s), Some("MESAJ:BIREYSEL"));
        assert_eq!(cursor_channel("IYS"), None);
        assert!(CURSOR_DONE > "zzz@example.com" && CURSOR_DONE > "+905320000000");
    }
}
