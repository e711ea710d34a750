//! The per-brand hash chain over the history: each event's hash covers the previous hash and
//! the event's content, so any edit or deletion of a past event shows when the chain is
//! recomputed.

use sha2::{Digest, Sha256};

/// One link of the chain: a SHA-256 digest. The database stores its 32 bytes (half of the
/// lower-hex text it once held, in the largest table); people and the API see the hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHash([u8; 32]);

impl ChainHash {
    /// The hash of the first event's predecessor (64 zeros in hex).
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// The hash stored as `bytes`; `None` unless they are exactly 32.
    pub fn from_bytes(bytes: &[u8]) -> Option<ChainHash> {
        bytes.try_into().ok().map(ChainHash)
    }

    /// The hash a stored value stands for when a chain goes on from it: the value itself when it
    /// is 32 bytes, else (a value altered by hand) the digest of what is there. The chain goes
    /// on, so changes (an opt-out above all) are still recorded, and the link that follows it
    /// shows the break to `verify`.
    pub fn from_stored(bytes: &[u8]) -> ChainHash {
        ChainHash::from_bytes(bytes).unwrap_or_else(|| ChainHash(Sha256::digest(bytes).into()))
    }

    /// The hash written as 64 lower-hex digits (as the API shows it).
    pub fn from_hex(hex: &str) -> Option<ChainHash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex, &mut out).ok()?;
        // Upper-case digits decode too, but a hash is always written in lower case.
        (hex.bytes().all(|b| !b.is_ascii_uppercase())).then_some(ChainHash(out))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lower-hex digits, as the API shows the hash and as the next link hashes it.
    pub fn to_hex(&self) -> String {
        String::from_utf8_lossy(&self.hex_digits()).into_owned()
    }

    fn hex_digits(&self) -> [u8; 64] {
        let mut out = [b'0'; 64];
        // Cannot fail: 32 bytes are always 64 digits.
        let _ = hex::encode_to_slice(self.0, &mut out);
        out
    }
}

impl std::fmt::Display for ChainHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.hex_digits()))
    }
}

impl std::fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChainHash({self})")
    }
}

/// `sha256(hex(prev) | field | field | …)`. The previous hash goes in as its 64 lower-hex
/// digits, as it did when hashes were stored as text, so chains recorded then verify now.
/// Fields are joined with a separator that cannot occur in them unescaped (`|` inside a field
/// is escaped).
pub fn link(prev: &ChainHash, fields: &[&str]) -> ChainHash {
    let mut h = Sha256::new();
    h.update(prev.hex_digits());
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
    ChainHash(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENESIS: ChainHash = ChainHash::GENESIS;
    const GENESIS_HEX: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn any_change_changes_the_hash() {
        let a = link(&GENESIS, &["1", "+905321234567", "ONAY"]);
        assert_ne!(a, link(&GENESIS, &["1", "+905321234567", "RET"]));
        assert_ne!(a, link(&a, &["1", "+905321234567", "ONAY"]));
        assert_ne!(link(&GENESIS, &["a|b", "c"]), link(&GENESIS, &["a", "b|c"]));
    }

    #[test]
    fn a_link_hashes_the_previous_hash_as_lower_hex() {
        // Chains stored as text were `sha256(prev_hex | fields)`; the bytes must give the same.
        let first = link(&GENESIS, &["1", "+905321234567", "ONAY"]);
        let mut h = Sha256::new();
        h.update(GENESIS_HEX.as_bytes());
        h.update(b"|1|+905321234567|ONAY");
        assert_eq!(first.to_hex(), hex::encode(h.finalize()));
        let mut h = Sha256::new();
        h.update(first.to_hex().as_bytes());
        h.update(b"|2");
        assert_eq!(link(&first, &["2"]).to_hex(), hex::encode(h.finalize()));
    }

    #[test]
    fn hashes_read_back_from_bytes_and_hex() {
        let a = link(&GENESIS, &["x"]);
        assert_eq!(ChainHash::from_bytes(a.as_bytes()), Some(a));
        assert_eq!(ChainHash::from_hex(&a.to_hex()), Some(a));
        assert_eq!(a.to_string(), a.to_hex());
        assert_eq!(GENESIS.to_hex(), GENESIS_HEX);
        assert_eq!(ChainHash::from_bytes(&[0; 31]), None);
        assert_eq!(ChainHash::from_bytes(&[0; 33]), None);
        assert_eq!(ChainHash::from_hex("00"), None);
        assert_eq!(ChainHash::from_hex(&a.to_hex().to_uppercase()), None);
        assert_eq!(ChainHash::from_hex(&"g".repeat(64)), None);
        assert_eq!(ChainHash::from_stored(a.as_bytes()), a);
        assert_ne!(
            ChainHash::from_stored(b"edited"),
            ChainHash::from_stored(b"edited!")
        );
    }

    #[test]
    fn separators_inside_fields_are_escaped_as_before() {
        // The hash of stored chains must not change: fields are hashed with `\` as `\\` and
        // `|` as `\|`, exactly as the escaped copies used to be.
        for field in ["plain", "a|b", "a\\b", "|\\|", "", "\\", "x|"] {
            let escaped = field.replace('\\', "\\\\").replace('|', "\\|");
            let mut h = Sha256::new();
            h.update(GENESIS_HEX.as_bytes());
            h.update(b"|");
            h.update(escaped.as_bytes());
            assert_eq!(
                link(&GENESIS, &[field]).to_hex(),
                hex::encode(h.finalize()),
                "{field:?}"
            );
        }
    }
}
