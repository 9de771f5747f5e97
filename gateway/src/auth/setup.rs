//! The one-time setup link: on a start with no users the gateway issues a
//! random token, valid for [`SETUP_TTL`] and usable once, with which the
//! first admin is created in the browser. Only the token's digest is kept.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::token;

/// How long a setup link is valid.
pub const SETUP_TTL: Duration = Duration::from_secs(30 * 60);

/// The pending setup token, if any.
#[derive(Debug, Default)]
pub struct SetupToken {
    pending: Mutex<Option<(String, Instant)>>,
}

impl SetupToken {
    /// Issues a new token (replacing any earlier one); returns it.
    pub fn issue(&self, now: Instant) -> String {
        let fresh = token::random();
        *self.pending.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((token::digest(&fresh), now + SETUP_TTL));
        fresh
    }

    /// Whether `presented` is the pending, unexpired token.
    pub fn is_valid(&self, presented: &str, now: Instant) -> bool {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        matches!(&*pending, Some((digest, until))
            if *until > now && token::same(digest, &token::digest(presented)))
    }

    /// Uses the token up: `true` when it was valid (it is gone either way
    /// once it matched).
    pub fn consume(&self, presented: &str, now: Instant) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let valid = matches!(&*pending, Some((digest, until))
            if *until > now && token::same(digest, &token::digest(presented)));
        if valid {
            *pending = None;
        }
        valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_token_is_single_use_and_expires() {
        let setup = SetupToken::default();
        let t0 = Instant::now();
        assert!(!setup.is_valid("anything", t0), "none issued");
        let token = setup.issue(t0);
        assert!(setup.is_valid(&token, t0));
        assert!(!setup.is_valid("wrong", t0));
        assert!(!setup.is_valid(&token, t0 + SETUP_TTL), "expired");
        assert!(setup.consume(&token, t0));
        assert!(!setup.consume(&token, t0), "single use");
    }
}
