//! Local-user lockouts in the shared store (see `store/lockouts.rs`): a lockout set through
//! one replica refuses the name on every replica.

use super::PgStore;
use crate::store::StoreError;

impl PgStore {
    pub fn lockout_until_blocking(&self, name: &str, now: i64) -> Result<Option<i64>, StoreError> {
        let name = name.to_string();
        self.blocking(move |c| async move {
            Ok(c.query_opt(
                "SELECT locked_until FROM login_lockouts WHERE name = $1 AND locked_until > $2",
                &[&name, &now],
            )
            .await?
            .map(|r| r.get(0)))
        })
    }

    pub fn lock_out_blocking(&self, name: &str, until: i64, now: i64) -> Result<(), StoreError> {
        let name = name.to_string();
        self.blocking(move |c| async move {
            c.execute(
                "DELETE FROM login_lockouts WHERE locked_until <= $1",
                &[&now],
            )
            .await?;
            c.execute(
                "INSERT INTO login_lockouts (name, locked_until) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE
                 SET locked_until = GREATEST(login_lockouts.locked_until, excluded.locked_until)",
                &[&name, &until],
            )
            .await?;
            Ok(())
        })
    }
}
