//! Unit doors (单元门禁), the gateway side: the credentials the doors open
//! for and the coordinator that decides at each presentation.
//!
//! - [`credentials`]: cards, PINs, temporary codes and blocked cards in the
//!   database, the in-memory snapshot decisions read, card CSV import and
//!   export, and the platform sync hooks.
//! - [`codes`]: keypad code rules and their argon2id hash.
//!
//! The decisions themselves are pure: [`crate::rules::door`].

pub mod codes;
pub mod credentials;
