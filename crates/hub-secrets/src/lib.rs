//! Secrets at rest.
//!
//! - [`SecretKey`] seals values the hub must read back (a brand's IYS API password) with
//!   XChaCha20-Poly1305 under the instance's secret key (`IYSHUB_SECRET_KEY`). A sealed value is
//!   `v1:` + base64(nonce ‖ ciphertext); a wrong key or a changed byte fails to open.
//! - [`hash_password`] / [`verify_password`] keep values the hub only checks (the Basic password
//!   IYS uses for push deliveries) as argon2id PHC strings. Hashes written by earlier versions
//!   (unsalted SHA-256, lower hex) still verify, in constant time, so they can be upgraded.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, Generate, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::Digest;
use subtle::ConstantTimeEq;

const SEALED_PREFIX: &str = "v1:";
const NONCE_LEN: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "the secret key must be 32 bytes, as 64 hex characters or base64 (e.g. `openssl rand -hex 32`)"
    )]
    BadKey,
    #[error("a sealed secret cannot be opened: it was sealed with another secret key or changed")]
    CannotOpen,
    #[error("a sealed secret is not in the expected form")]
    Malformed,
    #[error("the system's random source failed")]
    Random,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// The instance's 32-byte secret key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> Result<SecretKey, SecretError> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|_| SecretError::Random)?;
        Ok(SecretKey(k))
    }

    /// Reads 64 hex characters or standard base64 of 32 bytes (surrounding spaces ignored).
    pub fn parse(text: &str) -> Result<SecretKey, SecretError> {
        let t = text.trim();
        let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(t).map_err(|_| SecretError::BadKey)?
        } else {
            B64.decode(t).map_err(|_| SecretError::BadKey)?
        };
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(SecretKey)
            .map_err(|_| SecretError::BadKey)
    }

    /// The key as 64 hex characters, to print or save once.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }

    /// Seals `plain` with a fresh random nonce.
    pub fn seal(&self, plain: &str) -> Result<String, SecretError> {
        let nonce = XNonce::try_generate().map_err(|_| SecretError::Random)?;
        let sealed = self
            .cipher()
            .encrypt(&nonce, plain.as_bytes())
            .map_err(|_| SecretError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", B64.encode(out)))
    }

    /// Opens a value [`SecretKey::seal`] made with this key.
    pub fn open(&self, sealed: &str) -> Result<String, SecretError> {
        let body = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SecretError::Malformed)?;
        let bytes = B64.decode(body).map_err(|_| SecretError::Malformed)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(SecretError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| SecretError::Malformed)?;
        let plain = self
            .cipher()
            .decrypt(&nonce, ciphertext)
            .map_err(|_| SecretError::CannotOpen)?;
        String::from_utf8(plain).map_err(|_| SecretError::Malformed)
    }
}

/// An argon2id PHC string for `password`, with a random salt.
pub fn hash_password(password: &str) -> Result<String, SecretError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| SecretError::Hash(e.to_string()))
}

/// Whether `password` matches `stored`: an argon2 PHC string, or (from earlier versions) the
/// lower-hex SHA-256 of the password, compared in constant time. Anything else never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    if stored.starts_with('$') {
        return PasswordHash::new(stored).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        });
    }
    if stored.len() != 64 {
        return false;
    }
    let given = hex::encode(sha2::Sha256::digest(password.as_bytes()));
    given.as_bytes().ct_eq(stored.as_bytes()).into()
}

/// Whether a stored hash is one of the earlier, unsalted kind (to be upgraded on next success).
pub fn is_legacy_hash(stored: &str) -> bool {
    !stored.starts_with('$')
}

/// Compares two strings in constant time (for their length).
pub fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_unchanged() {
        let key = SecretKey::generate().unwrap();
        let sealed = key.seal("demo-password").unwrap();
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("demo-password"));
        assert_ne!(sealed, key.seal("demo-password").unwrap(), "a fresh nonce");
        assert_eq!(key.open(&sealed).unwrap(), "demo-password");
        let other = SecretKey::generate().unwrap();
        assert_eq!(other.open(&sealed), Err(SecretError::CannotOpen));
        let mut bytes = B64.decode(&sealed[3..]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("v1:{}", B64.encode(bytes));
        assert_eq!(key.open(&tampered), Err(SecretError::CannotOpen));
        for junk in ["", "v1:", "v1:!!", "v2:AAAA", "v1:AAAA"] {
            assert!(key.open(junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn keys_parse_from_hex_or_base64_only_at_32_bytes() {
        let key = SecretKey::generate().unwrap();
        let hex = key.to_hex();
        let again = SecretKey::parse(&format!(" {hex}\n")).unwrap();
        assert_eq!(again.open(&key.seal("x").unwrap()).unwrap(), "x");
        let b64 = B64.encode(hex::decode(&hex).unwrap());
        assert!(SecretKey::parse(&b64).is_ok());
        for bad in ["", "abc", &hex[..62], &B64.encode([0u8; 16])] {
            assert_eq!(SecretKey::parse(bad).unwrap_err(), SecretError::BadKey);
        }
        assert_eq!(format!("{key:?}"), "SecretKey(***)");
    }

    #[test]
    fn passwords_verify_against_argon2_and_legacy_hashes() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3cret!", &h));
        assert_ne!(h, hash_password("s3cret").unwrap(), "salted");
        let legacy = hex::encode(sha2::Sha256::digest(b"s3cret"));
        assert!(verify_password("s3cret", &legacy));
        assert!(!verify_password("other", &legacy));
        assert!(is_legacy_hash(&legacy) && !is_legacy_hash(&h));
        for junk in ["", "$", "$argon2id$junk", "abc"] {
            assert!(!verify_password("s3cret", junk), "{junk:?}");
        }
    }
}
