//! Password hashing with argon2id and the password policy.
//!
//! Parameters: the `argon2` crate's defaults, which are OWASP's minimum for
//! argon2id (m = 19 MiB, t = 2, p = 1). On a Raspberry Pi 4 one hash takes
//! on the order of 100 ms and 19 MiB, which is acceptable for a login and
//! keeps a burst of guesses expensive; the parameters are stored in each
//! hash (PHC string), so they can be raised later without breaking old
//! hashes. Hashing runs on the blocking pool, never on the async runtime.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use std::sync::OnceLock;

/// Shortest accepted password, in characters.
pub const MIN_CHARS: usize = 10;
/// Longest accepted password, in characters (bounds the hashing work).
pub const MAX_CHARS: usize = 128;

/// What is wrong with a proposed password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    /// Fewer than [`MIN_CHARS`] characters.
    #[error("the password needs at least {MIN_CHARS} characters")]
    TooShort,
    /// More than [`MAX_CHARS`] characters.
    #[error("the password may have at most {MAX_CHARS} characters")]
    TooLong,
    /// The confirmation differs.
    #[error("the two passwords differ")]
    Mismatch,
}

/// Checks a new password (and its confirmation, when given).
pub fn check(password: &str, confirm: Option<&str>) -> Result<(), PasswordProblem> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PasswordProblem::TooShort);
    }
    if chars > MAX_CHARS {
        return Err(PasswordProblem::TooLong);
    }
    if confirm.is_some_and(|c| c != password) {
        return Err(PasswordProblem::Mismatch);
    }
    Ok(())
}

/// Hashes `password` with argon2id and a random 16-byte salt; the PHC string.
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches the stored PHC string (a malformed hash never
/// matches).
pub fn verify(password: &str, stored: &str) -> bool {
    if password.chars().count() > MAX_CHARS {
        return false;
    }
    PasswordHash::new(stored).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Does the work of one verification against a fixed hash, so that a login
/// for an unknown name takes as long as one with a wrong password.
pub fn verify_dummy(password: &str) {
    // A hash of a random password with the same parameters, made once.
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    if let Some(dummy) = DUMMY.get_or_init(|| hash(&super::token::random()).ok()) {
        let _ = verify(password, dummy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_is_argon2id_and_verifies_only_the_right_password() {
        let stored = hash("correct horse battery").expect("hash");
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify("correct horse battery", &stored));
        assert!(!verify("correct horse batterx", &stored));
        assert!(!verify("correct horse battery", "not a hash"));
        assert_ne!(
            hash("correct horse battery").expect("hash"),
            stored,
            "salted"
        );
    }

    #[test]
    fn password_policy_checks_length_and_confirmation() {
        assert_eq!(check("short", None), Err(PasswordProblem::TooShort));
        assert_eq!(check(&"x".repeat(129), None), Err(PasswordProblem::TooLong));
        assert_eq!(
            check("long enough pw", Some("long enough pX")),
            Err(PasswordProblem::Mismatch)
        );
        assert_eq!(
            check("门岗值班密码一二三四", Some("门岗值班密码一二三四")),
            Ok(())
        );
    }
}
