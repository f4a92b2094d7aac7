//! Password hashing for users: argon2id PHC strings with a random salt.
//!
//! These are called by the API before it builds a command (hashing draws randomness, so it never runs inside
//! `decide`/`apply`); the `User` aggregate only ever sees the resulting PHC string.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::rngs::OsRng;

use crate::aggregate::DomainError;

/// Keystone's default `max_password_length`, in bytes.
pub const MAX_PASSWORD_LEN: usize = 4096;

/// Hash `plain` with argon2id (default parameters) and a fresh random salt, as a PHC string.
pub fn hash_password(plain: &str) -> Result<String, DomainError> {
    if plain.len() > MAX_PASSWORD_LEN {
        return Err(DomainError::Invalid(format!(
            "Invalid input for field 'password': must be at most {MAX_PASSWORD_LEN} bytes long."
        )));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(plain.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| DomainError::Invalid(format!("Cannot hash the password: {e}.")))
}

/// Whether `plain` matches the PHC string `phc`. A malformed or empty hash matches nothing.
pub fn verify_password(plain: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(plain.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Whether `phc` is a well-formed PHC string (what `User` accepts as a password hash).
pub fn is_phc(phc: &str) -> bool {
    PasswordHash::new(phc).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash_password("s3cret").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(is_phc(&phc));
        assert!(verify_password("s3cret", &phc));
        assert!(!verify_password("S3cret", &phc));
        assert!(!verify_password("", &phc));
    }

    #[test]
    fn salts_differ_between_hashes() {
        assert_ne!(
            hash_password("same").unwrap(),
            hash_password("same").unwrap()
        );
    }

    #[test]
    fn malformed_hashes_match_nothing() {
        assert!(!verify_password("x", ""));
        assert!(!verify_password("x", "x"));
        assert!(!verify_password("x", "$argon2id$garbage"));
        assert!(!is_phc("plain text"));
    }

    #[test]
    fn overlong_passwords_are_refused() {
        assert!(matches!(
            hash_password(&"p".repeat(MAX_PASSWORD_LEN + 1)),
            Err(DomainError::Invalid(_))
        ));
    }
}
