//! Random tokens (sessions, CSRF, setup links) and how they are kept: only
//! a SHA-256 digest of a bearer token is stored, and presented tokens are
//! compared in constant time.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new random token: 32 bytes from the OS-seeded CSPRNG, as 64 hex digits.
pub fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

/// The SHA-256 digest of `token`, as hex: what the database keeps.
pub fn digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Constant-time equality of two tokens.
pub fn same(a: &str, b: &str) -> bool {
    constant_time_eq::constant_time_eq(a.as_bytes(), b.as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_digests_are_stable() {
        let a = random();
        let b = random();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(digest(&a), digest(&a));
        assert_ne!(digest(&a), a);
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &b));
    }
}
