//! Login throttling with progressive delays, in memory — never a hard lock
//! that an attacker could use to keep a guard out.
//!
//! Failures are counted per name *and address* (the pair), per address
//! (one host guessing many names) and per name (many hosts guessing one
//! name). From the policy's number of failures on, each failure on a key
//! makes that key wait before the next attempt: 1 s, 2 s, 4 s, … up to the
//! policy's `duration`. While a key waits, attempts are refused without
//! checking the password. The per-name wait does not apply from an address
//! where that name has logged in before (a known-good device), so a stranger
//! cannot keep the guard at the guard-room PC out. A success clears the
//! pair, the address and the name. An admin clears a name with
//! [`Lockout::clear`] (the panel's users page, `gatehouse user unlock`).
//! Counts are forgotten after `duration` without failures. The table is
//! bounded ([`MAX_ENTRIES`]): guessed names cannot grow it without end.
//!
//! Pure apart from the mutex: every call takes `now`, so tests drive time.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most tracked keys; beyond it idle entries, then the oldest, are dropped.
pub const MAX_ENTRIES: usize = 10_000;
/// Most known-good addresses remembered per name.
const KNOWN_PER_NAME: usize = 8;
/// The first delay.
const FIRST_DELAY: Duration = Duration::from_secs(1);

/// The limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures for a name (and for a name from one address) that start
    /// the delays: the one that reaches it makes the next attempt wait.
    pub user_failures: u32,
    /// Failures from one address that start the delays.
    pub address_failures: u32,
    /// The longest delay, and how long a count is remembered.
    pub duration: Duration,
}

/// What has to wait.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LockKey {
    /// A user name, from any address that is not known-good for it.
    User(String),
    /// A remote address, for any name.
    Address(IpAddr),
    /// A user name from one address.
    Pair(String, IpAddr),
}

/// A refused attempt: what has to wait and for how much longer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    /// The waiting key.
    pub key: LockKey,
    /// Time left.
    pub remaining: Duration,
}

#[derive(Debug, Clone)]
struct Entry {
    failures: u32,
    last: Instant,
    wait_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<LockKey, Entry>,
    known: HashMap<String, HashSet<IpAddr>>,
}

/// The failure table.
#[derive(Debug)]
pub struct Lockout {
    policy: LockoutPolicy,
    table: Mutex<Table>,
}

impl Lockout {
    /// An empty table with these limits.
    pub fn new(policy: LockoutPolicy) -> Self {
        Self {
            policy,
            table: Mutex::new(Table::default()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Table) -> T) -> T {
        f(&mut self.table.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn keys(user: &str, addr: Option<IpAddr>) -> Vec<LockKey> {
        let mut keys = vec![LockKey::User(user.to_owned())];
        if let Some(addr) = addr {
            keys.push(LockKey::Address(addr));
            keys.push(LockKey::Pair(user.to_owned(), addr));
        }
        keys
    }

    fn free(&self, key: &LockKey) -> u32 {
        match key {
            LockKey::User(_) | LockKey::Pair(..) => self.policy.user_failures,
            LockKey::Address(_) => self.policy.address_failures,
        }
    }

    /// The delay after `failures` failures on `key` (zero below the limit).
    fn delay(&self, key: &LockKey, failures: u32) -> Duration {
        let limit = self.free(key).max(1);
        if failures < limit {
            return Duration::ZERO;
        }
        let doublings = (failures - limit).min(30);
        FIRST_DELAY
            .saturating_mul(1 << doublings)
            .min(self.policy.duration)
    }

    /// `Err` when this name from this address has to wait now.
    pub fn check(&self, user: &str, addr: Option<IpAddr>, now: Instant) -> Result<(), Locked> {
        self.with(|table| {
            let known = addr.is_some_and(|a| table.known.get(user).is_some_and(|k| k.contains(&a)));
            for key in Self::keys(user, addr) {
                if known && matches!(key, LockKey::User(_)) {
                    continue;
                }
                if let Some(until) = table.entries.get(&key).and_then(|e| e.wait_until)
                    && until > now
                {
                    return Err(Locked {
                        key,
                        remaining: until - now,
                    });
                }
            }
            Ok(())
        })
    }

    /// Counts a failure; returns the keys that started waiting with this
    /// failure (to audit once, not per attempt).
    pub fn failure(&self, user: &str, addr: Option<IpAddr>, now: Instant) -> Vec<LockKey> {
        self.with(|table| {
            if table.entries.len() >= MAX_ENTRIES {
                self.evict(table, now);
            }
            let mut started = Vec::new();
            for key in Self::keys(user, addr) {
                let entry = table.entries.entry(key.clone()).or_insert(Entry {
                    failures: 0,
                    last: now,
                    wait_until: None,
                });
                if now.duration_since(entry.last) >= self.policy.duration {
                    entry.failures = 0;
                    entry.wait_until = None;
                }
                entry.failures = entry.failures.saturating_add(1);
                entry.last = now;
                let delay = self.delay(&key, entry.failures);
                if !delay.is_zero() {
                    if entry.failures == self.free(&key).max(1) {
                        started.push(key);
                    }
                    entry.wait_until = Some(now + delay);
                }
            }
            started
        })
    }

    /// A successful login: clears the name, the address and the pair, and
    /// remembers the address as known-good for the name.
    pub fn success(&self, user: &str, addr: Option<IpAddr>) {
        self.with(|table| {
            for key in Self::keys(user, addr) {
                table.entries.remove(&key);
            }
            if let Some(addr) = addr {
                if table.known.len() >= MAX_ENTRIES && !table.known.contains_key(user) {
                    table.known.clear();
                }
                let known = table.known.entry(user.to_owned()).or_default();
                if known.len() >= KNOWN_PER_NAME {
                    known.clear();
                }
                known.insert(addr);
            }
        });
    }

    /// An admin clears every wait on `user` (from any address); `true`
    /// when there was one.
    pub fn clear(&self, user: &str) -> bool {
        self.with(|table| {
            let before = table.entries.len();
            table.entries.retain(|key, _| match key {
                LockKey::User(u) | LockKey::Pair(u, _) => u != user,
                LockKey::Address(_) => true,
            });
            table.entries.len() != before
        })
    }

    fn evict(&self, table: &mut Table, now: Instant) {
        let duration = self.policy.duration;
        table
            .entries
            .retain(|_, e| now.duration_since(e.last) < duration);
        while table.entries.len() >= MAX_ENTRIES {
            let oldest = table
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(key) => table.entries.remove(&key),
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
    const GUARD_PC: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));

    #[test]
    fn delays_grow_after_the_free_failures_and_are_capped() {
        let lockout = Lockout::new(policy());
        let mut t = Instant::now();
        for i in 0..4 {
            assert!(lockout.failure("wang", ADDR, t).is_empty(), "failure {i}");
            assert!(lockout.check("wang", ADDR, t).is_ok());
        }
        let started = lockout.failure("wang", ADDR, t);
        assert!(
            started.contains(&LockKey::User("wang".into())),
            "{started:?}"
        );
        let waiting = lockout.check("wang", ADDR, t).expect_err("a delay");
        assert_eq!(waiting.remaining, Duration::from_secs(1));
        // A quiet spell longer than `duration` forgets the count.
        t += Duration::from_secs(901);
        assert!(lockout.check("wang", ADDR, t).is_ok());
        assert!(lockout.failure("wang", ADDR, t).is_empty(), "free again");
        assert!(lockout.check("wang", ADDR, t).is_ok());
        let lockout = Lockout::new(policy());
        let t0 = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..16 {
            lockout.failure("wang", ADDR, t0);
            delays.push(lockout.check("wang", ADDR, t0).err().map(|l| l.remaining));
        }
        assert_eq!(delays[4], Some(Duration::from_secs(1)));
        assert_eq!(delays[5], Some(Duration::from_secs(2)));
        assert_eq!(delays[6], Some(Duration::from_secs(4)));
        assert_eq!(delays[15], Some(Duration::from_secs(900)), "capped");
        assert_eq!(delays[3], None, "four failures are free");
        assert!(
            lockout.check("li", None, t0).is_ok(),
            "other users unaffected"
        );
        assert!(
            lockout
                .check("wang", ADDR, t0 + Duration::from_secs(901))
                .is_ok(),
            "a delay ends"
        );
    }

    #[test]
    fn a_stranger_cannot_keep_a_guard_out_of_a_known_device() {
        let lockout = Lockout::new(policy());
        let t0 = Instant::now();
        lockout.success("wang", GUARD_PC);
        for _ in 0..20 {
            lockout.failure("wang", ADDR, t0);
        }
        assert!(
            lockout.check("wang", ADDR, t0).is_err(),
            "the stranger waits"
        );
        assert!(
            lockout.check("wang", GUARD_PC, t0).is_ok(),
            "the guard's PC is not held up"
        );
        let other = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)));
        assert!(
            lockout.check("wang", other, t0).is_err(),
            "an unknown address waits on the name"
        );
        assert!(lockout.clear("wang"), "an admin clears it");
        assert!(lockout.check("wang", other, t0).is_ok());
        assert!(!lockout.clear("wang"), "nothing left to clear");
    }

    #[test]
    fn one_host_guessing_many_names_waits_and_success_resets() {
        let lockout = Lockout::new(policy());
        let t0 = Instant::now();
        let mut started = Vec::new();
        for i in 0..8 {
            started.extend(lockout.failure(&format!("user{i}"), ADDR, t0));
        }
        assert_eq!(started, [LockKey::Address(ADDR.expect("addr"))]);
        let refused = lockout.check("someone-else", ADDR, t0).expect_err("waits");
        assert!(matches!(refused.key, LockKey::Address(_)));
        assert!(lockout.check("someone-else", None, t0).is_ok());
        lockout.success("someone-else", ADDR);
        assert!(
            lockout.check("user1", ADDR, t0).is_ok(),
            "success clears the address"
        );
    }
}
