//! The per-brand hash chain over the history: each event's hash covers the previous hash and
//! the event's content, so any edit or deletion of a past event shows when the chain is
//! recomputed.

use sha2::{Digest, Sha256};

/// The hash of the first event's predecessor.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `sha256(prev_hash | field | field | …)` in lower hex. Fields are joined with a separator that
/// cannot occur in them unescaped (`|` inside a field is escaped).
pub fn link(prev_hash: &str, fields: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    for f in fields {
        h.update(b"|");
        // Escaped piece by piece: most fields hold neither character, and a copy per field
        // showed in the profile of a ledger batch.
        let mut rest = f.as_bytes();
        while let Some(at) = rest.iter().position(|b| matches!(b, b'\\' | b'|')) {
            let (plain, special) = rest.split_at(at);
            h.update(plain);
            h.update(b"\\");
            h.update(special.get(..1).unwrap_or_default());
            rest = special.get(1..).unwrap_or_default();
        }
        h.update(rest);
    }
    // Hex through a fixed buffer: `hex::encode` builds the String a char at a time, which
    // showed in profiles of imports (one link per change).
    let mut out = [0u8; 64];
    let digest = h.finalize();
    match hex::encode_to_slice(digest, &mut out) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        // Not reached (32 bytes are 64 digits); the slow way rather than a wrong hash.
        Err(_) => hex::encode(digest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_change_changes_the_hash() {
        let a = link(GENESIS, &["1", "+905321234567", "ONAY"]);
        assert_eq!(a.len(), 64);
        assert_ne!(a, link(GENESIS, &["1", "+905321234567", "RET"]));
        assert_ne!(a, link(&a, &["1", "+905321234567", "ONAY"]));
        assert_ne!(link(GENESIS, &["a|b", "c"]), link(GENESIS, &["a", "b|c"]));
    }

    #[test]
    fn separators_inside_fields_are_escaped_as_before() {
        // The hash of stored chains must not change: fields are hashed with `\` as `\\` and
        // `|` as `\|`, exactly as the escaped copies used to be.
        for field in ["plain", "a|b", "a\\b", "|\\|", "", "\\", "x|"] {
            let escaped = field.replace('\\', "\\\\").replace('|', "\\|");
            let mut h = Sha256::new();
            h.update(GENESIS.as_bytes());
            h.update(b"|");
            h.update(escaped.as_bytes());
            assert_eq!(
                link(GENESIS, &[field]),
                hex::encode(h.finalize()),
                "{field:?}"
            );
        }
    }
}
