//! Local-user lockouts: the user names refused until a time after repeated failed logins. The
//! failure counts themselves live in memory (`identity::lockout`); only lockouts are kept, so
//! none is ever dropped to make room and a restart keeps them. Lockouts that are over are
//! deleted whenever a new one is written.
//!
//! Calls block: the login path runs them on the blocking thread that checks the password.

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};

impl Store {
    /// When `name`'s lockout ends, if it is locked out at `now`.
    pub fn lockout_until_blocking(&self, name: &str, now: i64) -> Result<Option<i64>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.lockout_until_blocking(name, now);
        }
        self.run_blocking(|c| {
            Ok(c.query_row(
                "SELECT locked_until FROM login_lockouts WHERE name = ?1 AND locked_until > ?2",
                params![name, now],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    /// Locks `name` out until `until` (a later lockout replaces an earlier one), and forgets
    /// lockouts that are over at `now`.
    pub fn lock_out_blocking(&self, name: &str, until: i64, now: i64) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.lock_out_blocking(name, until, now);
        }
        self.run_blocking(|c| {
            c.execute(
                "DELETE FROM login_lockouts WHERE locked_until <= ?1",
                params![now],
            )?;
            c.execute(
                "INSERT INTO login_lockouts (name, locked_until) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET locked_until = max(locked_until, excluded.locked_until)",
                params![name, until],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockouts_are_kept_until_they_end() {
        let s = Store::open_in_memory().unwrap();
        assert_eq!(s.lockout_until_blocking("a", 0).unwrap(), None);
        s.lock_out_blocking("a", 100, 0).unwrap();
        s.lock_out_blocking("b", 50, 0).unwrap();
        assert_eq!(s.lockout_until_blocking("a", 99).unwrap(), Some(100));
        assert_eq!(s.lockout_until_blocking("a", 100).unwrap(), None);
        // Writing a new one tidies those that are over.
        s.lock_out_blocking("c", 200, 60).unwrap();
        let left: i64 = s
            .run_blocking(|c| {
                Ok(c.query_row("SELECT count(*) FROM login_lockouts", [], |r| r.get(0))?)
            })
            .unwrap();
        assert_eq!(left, 2);
    }
}
