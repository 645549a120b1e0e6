//! Secrets: API tokens and write keys are random, shown once, and stored only as hashes;
//! web UI passwords are chosen by people, so they are stored as slow, salted argon2 hashes.

use axum::http::HeaderMap;
use base64::Engine;

/// Whether a token name is usable, and why not.
pub fn check_token_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(format!("token name {name:?} must be 1 to 64 letters, digits, '-', '_' or '.'"));
    }
    Ok(())
}

/// A new random secret with a recognisable prefix (`kt_` tokens, `wk_` write keys).
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Hash under which a secret is stored. The secrets carry 192 random bits, so a fast hash
/// is enough: there is nothing to guess.
pub fn hash_secret(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

/// The write key of a collection request: the HTTP Basic user (password empty), as
/// Segment's and RudderStack's SDKs send it.
pub fn basic_user(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
    (!user.is_empty()).then(|| user.to_string())
}

/// The argon2id hash (PHC string, random salt) under which a user's password is stored.
pub fn hash_password(password: &str) -> String {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default().hash_password(password.as_bytes()).expect("argon2 with default parameters hashes any password").to_string()
}

/// Whether `password` matches a stored PHC hash (a damaged hash matches nothing).
pub fn verify_password(password: &str, stored: &str) -> bool {
    use argon2::password_hash::{phc::PasswordHash, PasswordVerifier};
    PasswordHash::new(stored).is_ok_and(|hash| argon2::Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// Whether a user name is usable, and why not.
pub fn check_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)) {
        return Err(format!("user name {name:?} must be 1 to 64 letters, digits, '-', '_', '.' or '@'"));
    }
    Ok(())
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_hashed() {
        let a = new_secret("kt_");
        assert!(a.starts_with("kt_") && a.len() > 30);
        assert_ne!(a, new_secret("kt_"));
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert!(!hash_secret(&a).contains(&a[3..]));
    }

    #[test]
    fn passwords_are_salted_and_verified() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$"));
        assert_ne!(hash, hash_password("correct horse"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct hose", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn basic_auth_user() {
        let mut h = HeaderMap::new();
        let enc = base64::engine::general_purpose::STANDARD.encode("wk_abc:");
        h.insert("authorization", format!("Basic {enc}").parse().unwrap());
        assert_eq!(basic_user(&h).as_deref(), Some("wk_abc"));
        h.insert("authorization", "Bearer xyz".parse().unwrap());
        assert_eq!(basic_user(&h), None);
        assert_eq!(bearer(&h), Some("xyz"));
    }
}
