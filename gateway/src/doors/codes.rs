//! Keypad codes (residents' PINs, visitors' and couriers' temporary codes):
//! what a valid code looks like, and its argon2id hash.
//!
//! A keypad delivers only the digits typed, so the code itself must find
//! its record: every code is hashed with one per-database salt (16 random
//! bytes in `meta` under `door_code_salt`, made on first use), and the
//! snapshot is indexed by hash. The hash is argon2id with small parameters
//! ([`PARAMS`]): it runs on the pipeline for every keypad entry, so it must
//! stay in the low milliseconds on a Pi; wrong codes are additionally
//! rate-limited per reader ([`crate::rules::door::AttemptLimiter`]).
//! Codes are never stored, logged or recorded in clear.

use argon2::{Algorithm, Argon2, Params, Version};
use rusqlite::{Connection, OptionalExtension};

use crate::rules::door::CodeHash;
use crate::vocab::records::ListError;

/// Memory (KiB), iterations and lanes of the code hash. Changing them
/// invalidates every stored code (they must be enrolled again).
pub const PARAMS: (u32, u32, u32) = (4096, 1, 1);

/// Shortest and longest code accepted.
pub const CODE_DIGITS: std::ops::RangeInclusive<usize> = 4..=12;

/// The `meta` key of the salt.
const SALT_KEY: &str = "door_code_salt";

/// A salt for code hashes.
pub type Salt = [u8; 16];

/// Checks that `code` is 4 to 12 digits (the message never repeats it).
pub fn check_code(code: &str) -> Result<(), ListError> {
    if CODE_DIGITS.contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ListError::Invalid(format!(
            "a code must be {} to {} digits",
            CODE_DIGITS.start(),
            CODE_DIGITS.end()
        )))
    }
}

/// The hash of `code` under `salt`.
pub fn hash_code(salt: &Salt, code: &str) -> CodeHash {
    let mut out = [0u8; 32];
    let (m, t, p) = PARAMS;
    let hashed = Params::new(m, t, p, Some(out.len())).and_then(|params| {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password_into(
            code.as_bytes(),
            salt,
            &mut out,
        )
    });
    if let Err(error) = hashed {
        // Unreachable with the constant parameters; an all-zero hash
        // matches no stored code (they are never all zero).
        tracing::error!(%error, "Code hashing failed.");
        return [0; 32];
    }
    out
}

/// Hex form of a hash, as stored.
pub fn to_hex(hash: &CodeHash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a stored hash.
pub fn from_hex(text: &str) -> Option<CodeHash> {
    hex_bytes(text)
}

fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    if text.len() != 2 * N {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The database's code salt, made (and stored) on first use.
pub fn load_or_create_salt(conn: &Connection) -> Result<Salt, ListError> {
    let read = |conn: &Connection| -> Result<Option<String>, ListError> {
        Ok(conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [SALT_KEY], |r| {
                r.get(0)
            })
            .optional()?)
    };
    if read(conn)?.is_none() {
        let salt: Salt = rand::random();
        let hex: String = salt.iter().map(|b| format!("{b:02x}")).collect();
        // Another connection may win the race: what is stored counts.
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
            [SALT_KEY, hex.as_str()],
        )?;
    }
    read(conn)?
        .as_deref()
        .and_then(hex_bytes)
        .ok_or_else(|| ListError::Invalid("the stored code salt is damaged".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_code_hashes_are_deterministic_per_salt_and_round_trip_as_hex() {
        let a = hash_code(&[1; 16], "123456");
        assert_eq!(a, hash_code(&[1; 16], "123456"));
        assert_ne!(a, hash_code(&[2; 16], "123456"), "salted");
        assert_ne!(a, hash_code(&[1; 16], "123457"));
        assert_eq!(from_hex(&to_hex(&a)), Some(a));
        assert_eq!(from_hex("zz"), None);
        assert!(check_code("1234").is_ok());
        assert!(check_code("123").is_err());
        assert!(check_code("12345a").is_err());
        let message = check_code("98765432109876")
            .expect_err("too long")
            .to_string();
        assert!(
            !message.contains("98765"),
            "never echoes the code: {message}"
        );
    }
}
