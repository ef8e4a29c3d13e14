//! Local-user lockout: after `max_failures` failed logins in a row a user name is refused for
//! `lockout` seconds, even with the right password, so passwords cannot be guessed online.
//!
//! Counted per user name whether or not the user exists, so a lockout says nothing about which
//! accounts exist. The table is bounded: entries that can no longer matter are pruned first, and
//! past the bound the oldest entry goes.

use std::collections::HashMap;
use std::sync::Mutex;

/// Most user names tracked at once.
const MAX_TRACKED: usize = 10_000;

struct Entry {
    failures: u32,
    last_failure: i64,
    locked_until: Option<i64>,
}

pub struct Lockout {
    max_failures: u32,
    lockout_seconds: i64,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Lockout {
    /// `max_failures == 0` disables lockout.
    pub fn new(max_failures: u32, lockout_seconds: u64) -> Self {
        Self {
            max_failures,
            lockout_seconds: lockout_seconds as i64,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// If the user is locked out at `now`, the seconds left.
    pub fn locked(&self, user: &str, now: i64) -> Option<i64> {
        let entries = self.lock();
        let until = entries.get(user)?.locked_until?;
        (until > now).then_some(until - now)
    }

    /// Records a failed attempt; returns the lockout's length if this one started it.
    pub fn failed(&self, user: &str, now: i64) -> Option<i64> {
        if self.max_failures == 0 {
            return None;
        }
        let mut entries = self.lock();
        if entries.len() >= MAX_TRACKED && !entries.contains_key(user) {
            let horizon = now - self.lockout_seconds;
            entries
                .retain(|_, e| e.locked_until.is_some_and(|t| t > now) || e.last_failure > horizon);
            if entries.len() >= MAX_TRACKED {
                if let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.last_failure)
                    .map(|(k, _)| k.clone())
                {
                    entries.remove(&oldest);
                }
            }
        }
        let e = entries.entry(user.to_string()).or_insert(Entry {
            failures: 0,
            last_failure: now,
            locked_until: None,
        });
        // A lockout that has run out starts the count again.
        if e.locked_until.is_some_and(|t| t <= now) {
            e.failures = 0;
            e.locked_until = None;
        }
        e.failures += 1;
        e.last_failure = now;
        if e.failures >= self.max_failures && e.locked_until.is_none() {
            e.locked_until = Some(now + self.lockout_seconds);
            return Some(self.lockout_seconds);
        }
        None
    }

    pub fn succeeded(&self, user: &str) {
        self.lock().remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_and_unlocks_after_the_wait() {
        let l = Lockout::new(3, 60);
        assert_eq!(l.failed("a", 0), None);
        assert_eq!(l.failed("a", 1), None);
        assert_eq!(l.locked("a", 1), None);
        assert_eq!(l.failed("a", 2), Some(60));
        assert_eq!(l.locked("a", 10), Some(52));
        assert_eq!(l.locked("b", 10), None);
        assert_eq!(l.locked("a", 62), None);
        // After the wait, the count starts again.
        assert_eq!(l.failed("a", 63), None);
        l.succeeded("a");
        assert_eq!(l.failed("a", 64), None);
        assert_eq!(Lockout::new(0, 60).failed("a", 0), None);
    }
}
