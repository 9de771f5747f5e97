//! Login rate limiting and temporary lockout, per user name and per remote
//! address, in memory.
//!
//! Failures are counted in a window of `duration` from the first failure;
//! reaching the limit locks the key for `duration`. While a key is locked,
//! logins are refused without checking the password. A success clears the
//! user's count (not the address's). The table is bounded
//! ([`MAX_ENTRIES`]): guessed names cannot grow it without end.
//!
//! Pure apart from the mutex: every call takes `now`, so tests drive time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most tracked keys; beyond it expired entries, then the oldest, are dropped.
pub const MAX_ENTRIES: usize = 10_000;

/// The limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures for one user name before it is locked.
    pub user_failures: u32,
    /// Failures from one address before it is locked.
    pub address_failures: u32,
    /// Lock length, and the window failures are counted in.
    pub duration: Duration,
}

/// What is locked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LockKey {
    /// A user name.
    User(String),
    /// A remote address.
    Address(IpAddr),
}

/// A refused attempt: what is locked and for how much longer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    /// The locked key.
    pub key: LockKey,
    /// Time left.
    pub remaining: Duration,
}

#[derive(Debug, Clone)]
struct Entry {
    failures: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

/// The failure table.
#[derive(Debug)]
pub struct Lockout {
    policy: LockoutPolicy,
    entries: Mutex<HashMap<LockKey, Entry>>,
}

impl Lockout {
    /// An empty table with these limits.
    pub fn new(policy: LockoutPolicy) -> Self {
        Self {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn keys(user: &str, addr: Option<IpAddr>) -> Vec<LockKey> {
        let mut keys = vec![LockKey::User(user.to_owned())];
        keys.extend(addr.map(LockKey::Address));
        keys
    }

    /// `Err` when the user or the address is locked now.
    pub fn check(&self, user: &str, addr: Option<IpAddr>, now: Instant) -> Result<(), Locked> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        for key in Self::keys(user, addr) {
            if let Some(until) = entries.get(&key).and_then(|e| e.locked_until)
                && until > now
            {
                return Err(Locked {
                    key,
                    remaining: until - now,
                });
            }
        }
        Ok(())
    }

    /// Counts a failure; returns the keys this failure locked.
    pub fn failure(&self, user: &str, addr: Option<IpAddr>, now: Instant) -> Vec<LockKey> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            self.evict(&mut entries, now);
        }
        let mut locked = Vec::new();
        for key in Self::keys(user, addr) {
            let limit = match key {
                LockKey::User(_) => self.policy.user_failures,
                LockKey::Address(_) => self.policy.address_failures,
            };
            let entry = entries.entry(key.clone()).or_insert(Entry {
                failures: 0,
                first: now,
                locked_until: None,
            });
            let expired_lock = entry.locked_until.is_some_and(|u| u <= now);
            let window_over = now.duration_since(entry.first) >= self.policy.duration;
            if expired_lock || (entry.locked_until.is_none() && window_over) {
                *entry = Entry {
                    failures: 0,
                    first: now,
                    locked_until: None,
                };
            }
            entry.failures = entry.failures.saturating_add(1);
            if entry.locked_until.is_none() && entry.failures >= limit {
                entry.locked_until = Some(now + self.policy.duration);
                locked.push(key);
            }
        }
        locked
    }

    /// A successful login: forgets the user's failures.
    pub fn success(&self, user: &str) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&LockKey::User(user.to_owned()));
    }

    fn evict(&self, entries: &mut HashMap<LockKey, Entry>, now: Instant) {
        let duration = self.policy.duration;
        entries.retain(|_, e| match e.locked_until {
            Some(until) => until > now,
            None => now.duration_since(e.first) < duration,
        });
        while entries.len() >= MAX_ENTRIES {
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| e.first)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(key) => entries.remove(&key),
                None => break,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            user_failures: 5,
            address_failures: 8,
            duration: Duration::from_secs(900),
        }
    }

    const ADDR: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)));

    #[test]
    fn lockout_after_five_failures_lasts_the_duration() {
        let lockout = Lockout::new(policy());
        let t0 = Instant::now();
        for i in 0..4 {
            assert!(lockout.failure("wang", ADDR, t0).is_empty(), "failure {i}");
            assert!(lockout.check("wang", ADDR, t0).is_ok());
        }
        assert_eq!(
            lockout.failure("wang", ADDR, t0),
            [LockKey::User("wang".into())]
        );
        let locked = lockout.check("wang", ADDR, t0).expect_err("locked");
        assert_eq!(locked.key, LockKey::User("wang".into()));
        assert_eq!(locked.remaining, Duration::from_secs(900));
        assert!(
            lockout.check("li", None, t0).is_ok(),
            "other users unaffected"
        );
        let later = t0 + Duration::from_secs(901);
        assert!(lockout.check("wang", ADDR, later).is_ok(), "lock expires");
        assert!(
            lockout.failure("wang", None, later).is_empty(),
            "count restarts"
        );
    }

    #[test]
    fn lockout_per_address_catches_many_names_from_one_host() {
        let lockout = Lockout::new(policy());
        let t0 = Instant::now();
        let mut locked = Vec::new();
        for i in 0..8 {
            locked.extend(lockout.failure(&format!("user{i}"), ADDR, t0));
        }
        assert_eq!(locked, [LockKey::Address(ADDR.expect("addr"))]);
        let refused = lockout.check("someone-else", ADDR, t0).expect_err("locked");
        assert!(matches!(refused.key, LockKey::Address(_)));
        assert!(lockout.check("someone-else", None, t0).is_ok());
    }

    #[test]
    fn lockout_window_and_success_reset_the_count() {
        let lockout = Lockout::new(policy());
        let t0 = Instant::now();
        for _ in 0..4 {
            lockout.failure("wang", None, t0);
        }
        lockout.success("wang");
        for _ in 0..4 {
            assert!(lockout.failure("wang", None, t0).is_empty());
        }
        // Failures spread beyond the window do not add up.
        let later = t0 + Duration::from_secs(1000);
        assert!(lockout.failure("wang", None, later).is_empty());
    }
}
