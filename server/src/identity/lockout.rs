//! Local-user lockout: after `max_failures` failed logins in a row a user name is refused for
//! `lockout` seconds, even with the right password, so passwords cannot be guessed online.
//!
//! Counted per user name whether or not the user exists, so a lockout says nothing about which
//! accounts exist. Three parts, so that no number of failures for other names lifts a lockout
//! and memory stays bounded:
//!
//! - **Failure counts** per user name, in memory, at most [`MAX_TRACKED`] (least recently
//!   failed first out). Losing a count costs at most a few more tries at one name, and the
//!   address limit bounds how fast anyone can push counts out.
//! - **Lockouts**, in the store: never dropped to make room, kept across restarts, deleted
//!   once over.
//! - **Failures per source address** (an IPv6 /64 counts as one address), in memory, at most
//!   [`MAX_ADDRESSES`]: past `max_per_address` failures within the lockout window, every login
//!   from that address is refused before any password is checked, until the window has passed.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

use crate::store::{Store, StoreError};

/// Most user names whose failures are counted at once.
pub const MAX_TRACKED: usize = 10_000;
/// Most source addresses whose failures are counted at once.
pub const MAX_ADDRESSES: usize = 10_000;

/// Why a login is refused before its password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The user name is locked out for this many more seconds.
    User { seconds: i64 },
    /// The source address failed too often; refused for this many more seconds.
    Address { seconds: i64 },
}

/// What a failed login started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Failed {
    /// This failure locked the user name out, for this many seconds.
    pub user_locked: Option<i64>,
    /// This failure was the address's last allowed one: it is refused for this many seconds.
    pub address_limited: Option<i64>,
}

struct Count {
    failures: u32,
}

struct Window {
    /// Unix seconds of the window's first failure.
    started: i64,
    failures: u32,
    /// Set once the address is past its limit.
    limited_until: Option<i64>,
}

pub struct Lockout {
    max_failures: u32,
    lockout_seconds: i64,
    max_per_address: u32,
    counts: Mutex<LruCache<String, Count>>,
    addresses: Mutex<LruCache<IpAddr, Window>>,
    store: Store,
}

/// The key an address is counted under: IPv4 as it is, IPv6 by its /64 (one site's block).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

impl Lockout {
    /// `max_failures == 0` disables the per-user lockout, `max_per_address == 0` the
    /// per-address limit.
    pub fn new(
        max_failures: u32,
        lockout_seconds: u64,
        max_per_address: u32,
        store: Store,
    ) -> Self {
        let cap = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        Self {
            max_failures,
            lockout_seconds: lockout_seconds as i64,
            max_per_address,
            counts: Mutex::new(LruCache::new(cap(MAX_TRACKED))),
            addresses: Mutex::new(LruCache::new(cap(MAX_ADDRESSES))),
            store,
        }
    }

    /// Before a password is checked: whether this login must be refused unchecked. Reads the
    /// store (blocking); a store that cannot be read refuses the login (the caller's error).
    pub fn refused(
        &self,
        user: &str,
        source: Option<IpAddr>,
        now: i64,
    ) -> Result<Option<Refusal>, StoreError> {
        if let Some(ip) = source.filter(|_| self.max_per_address > 0) {
            let mut addresses = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(w) = addresses.get(&address_key(ip)) {
                if let Some(until) = w.limited_until.filter(|t| *t > now) {
                    return Ok(Some(Refusal::Address {
                        seconds: until - now,
                    }));
                }
            }
        }
        if self.max_failures == 0 {
            return Ok(None);
        }
        Ok(self
            .store
            .lockout_until_blocking(user, now)?
            .map(|until| Refusal::User {
                seconds: until - now,
            }))
    }

    /// Records a failed password check; says what it started.
    pub fn failed(
        &self,
        user: &str,
        source: Option<IpAddr>,
        now: i64,
    ) -> Result<Failed, StoreError> {
        let mut out = Failed::default();
        if let Some(ip) = source.filter(|_| self.max_per_address > 0) {
            let mut addresses = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
            let key = address_key(ip);
            // A window is over once its time has passed and any limit it set has run out.
            let over = addresses.peek(&key).is_some_and(|w| match w.limited_until {
                Some(until) => until <= now,
                None => w.started + self.lockout_seconds <= now,
            });
            if over || !addresses.contains(&key) {
                addresses.push(
                    key,
                    Window {
                        started: now,
                        failures: 0,
                        limited_until: None,
                    },
                );
            }
            if let Some(w) = addresses.get_mut(&key) {
                w.failures += 1;
                if w.failures >= self.max_per_address && w.limited_until.is_none() {
                    w.limited_until = Some(now + self.lockout_seconds);
                    out.address_limited = Some(self.lockout_seconds);
                }
            }
        }
        if self.max_failures == 0 {
            return Ok(out);
        }
        let reached = {
            let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            if !counts.contains(user) {
                counts.push(user.to_string(), Count { failures: 0 });
            }
            match counts.get_mut(user) {
                Some(c) => {
                    c.failures += 1;
                    let reached = c.failures >= self.max_failures;
                    if reached {
                        // The lockout takes over; a failure after it ends starts a new count.
                        c.failures = 0;
                    }
                    reached
                }
                None => false,
            }
        };
        if reached {
            self.store
                .lock_out_blocking(user, now + self.lockout_seconds, now)?;
            out.user_locked = Some(self.lockout_seconds);
        }
        Ok(out)
    }

    /// A successful login starts the user's count again.
    pub fn succeeded(&self, user: &str) {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lockout(max: u32, per_address: u32) -> Lockout {
        Lockout::new(max, 60, per_address, Store::open_in_memory().unwrap())
    }

    fn locked(l: &Lockout, user: &str, now: i64) -> Option<i64> {
        match l.refused(user, None, now).unwrap() {
            Some(Refusal::User { seconds }) => Some(seconds),
            _ => None,
        }
    }

    #[test]
    fn locks_after_max_failures_and_unlocks_after_the_wait() {
        let l = lockout(3, 0);
        assert_eq!(l.failed("a", None, 0).unwrap().user_locked, None);
        assert_eq!(l.failed("a", None, 1).unwrap().user_locked, None);
        assert_eq!(locked(&l, "a", 1), None);
        assert_eq!(l.failed("a", None, 2).unwrap().user_locked, Some(60));
        assert_eq!(locked(&l, "a", 10), Some(52));
        assert_eq!(locked(&l, "b", 10), None);
        assert_eq!(locked(&l, "a", 62), None);
        // After the wait, the count starts again.
        assert_eq!(l.failed("a", None, 63).unwrap().user_locked, None);
        l.succeeded("a");
        assert_eq!(l.failed("a", None, 64).unwrap().user_locked, None);
        assert_eq!(l.failed("a", None, 65).unwrap().user_locked, None);
        let off = lockout(0, 0);
        for t in 0..10 {
            assert_eq!(off.failed("a", None, t).unwrap(), Failed::default());
        }
        assert_eq!(locked(&off, "a", 10), None);
    }

    #[test]
    fn no_number_of_failures_for_other_names_lifts_a_lockout() {
        let l = lockout(2, 0);
        l.failed("alice", None, 0).unwrap();
        l.failed("alice", None, 0).unwrap();
        assert!(locked(&l, "alice", 1).is_some());
        for i in 0..(MAX_TRACKED * 2 + 7) {
            l.failed(&format!("ghost-{i}"), None, 1).unwrap();
        }
        assert_eq!(locked(&l, "alice", 1), Some(59));
        assert!(l.counts.lock().unwrap().len() <= MAX_TRACKED);
    }

    #[test]
    fn a_lockout_outlives_the_process_through_the_store() {
        let store = Store::open_in_memory().unwrap();
        let first = Lockout::new(1, 60, 0, store.clone());
        first.failed("alice", None, 0).unwrap();
        let second = Lockout::new(1, 60, 0, store);
        assert_eq!(
            second.refused("alice", None, 30).unwrap(),
            Some(Refusal::User { seconds: 30 })
        );
    }

    #[test]
    fn an_address_past_its_failures_is_refused_until_its_window_passes() {
        let l = lockout(0, 3);
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let b_same_site: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        assert_eq!(l.failed("x", Some(a), 0).unwrap().address_limited, None);
        assert_eq!(l.failed("y", Some(a), 1).unwrap().address_limited, None);
        assert_eq!(l.failed("z", Some(a), 2).unwrap().address_limited, Some(60));
        assert_eq!(
            l.refused("alice", Some(a), 3).unwrap(),
            Some(Refusal::Address { seconds: 59 })
        );
        assert_eq!(l.refused("alice", Some(b), 3).unwrap(), None);
        assert_eq!(l.refused("alice", None, 3).unwrap(), None);
        assert_eq!(l.refused("alice", Some(a), 62).unwrap(), None);
        // A new window counts from zero.
        assert_eq!(l.failed("x", Some(a), 70).unwrap().address_limited, None);
        // IPv6 addresses in one /64 are one address.
        for t in 0..3 {
            l.failed("x", Some(b), t).unwrap();
        }
        assert!(l.refused("alice", Some(b_same_site), 3).unwrap().is_some());
    }
}
