//! Keyed hashes: pseudonyms for analysts and the suppression list of erased identifiers.
//!
//! Both are HMAC-SHA256 under a secret the host keeps out of the data store, so that
//! someone holding the data alone cannot hash candidate emails and look them up.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The secret behind [`pseudonym`]s. Keep it stable: a new key gives every value a new
/// pseudonym, which breaks analysts' joins across exports made before and after.
#[derive(Clone)]
pub struct PseudonymKey([u8; 32]);

impl PseudonymKey {
    pub fn from_bytes(bytes: [u8; 32]) -> PseudonymKey {
        PseudonymKey(bytes)
    }
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}

/// A stable stand-in for an identifying value, `anon_` and 24 hex digits (96 bits, so
/// distinct values practically never share one): the same value, in any case or spacing,
/// always gives the same pseudonym, so analysts can count and join on it but not read it.
pub fn pseudonym(key: &PseudonymKey, value: &str) -> String {
    let digest = hmac(&key.0, &[value.trim().to_lowercase().as_bytes()]);
    format!("anon_{}", hex::encode(&digest[..12]))
}

/// The secret behind [`suppression_hash`]es: 32 random bytes from the host.
#[derive(Clone)]
pub struct SuppressionKey([u8; 32]);

impl SuppressionKey {
    pub fn from_bytes(bytes: [u8; 32]) -> SuppressionKey {
        SuppressionKey(bytes)
    }
}

impl fmt::Debug for SuppressionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SuppressionKey(..)")
    }
}

/// The only form in which an erased identifier is kept: HMAC-SHA256 of its kind and
/// normalized value, in hex. The suppression list stores these, so an incoming record with
/// an erased identifier can be recognised and dropped (hash it and look it up) while the
/// list itself reveals no identifier. The caller normalizes the value exactly as the
/// resolver does (lower-cased email, E.164 phone), or the same person hashes differently.
pub fn suppression_hash(key: &SuppressionKey, kind: &str, normalized_value: &str) -> String {
    // The kind's length goes first so that no kind/value split can collide with another.
    let kind_len = (kind.len() as u64).to_be_bytes();
    hex::encode(hmac(&key.0, &[&kind_len, kind.as_bytes(), normalized_value.as_bytes()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_keyed_and_ignore_case() {
        let key = PseudonymKey::from_bytes([7; 32]);
        let p = pseudonym(&key, "ann@x.com");
        assert!(p.starts_with("anon_") && p.len() == 5 + 24, "{p}");
        assert_eq!(p, pseudonym(&key, " Ann@X.com "));
        assert_ne!(p, pseudonym(&key, "bob@x.com"));
        assert_ne!(p, pseudonym(&PseudonymKey::from_bytes([8; 32]), "ann@x.com"));
        assert_eq!(format!("{key:?}"), "PseudonymKey(..)");
    }

    #[test]
    fn suppression_hashes_separate_kind_and_value() {
        let key = SuppressionKey::from_bytes([1; 32]);
        let h = suppression_hash(&key, "email", "ann@x.com");
        assert_eq!(h.len(), 64);
        assert!(!h.contains("ann"));
        assert_eq!(h, suppression_hash(&key, "email", "ann@x.com"));
        assert_ne!(h, suppression_hash(&key, "emai", "lann@x.com"));
        assert_ne!(h, suppression_hash(&SuppressionKey::from_bytes([2; 32]), "email", "ann@x.com"));
    }
}
