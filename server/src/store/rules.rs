//! Versions of the API-managed guardrail rules. The store keeps each version's rule list as
//! opaque JSON; the policy module owns its meaning.

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};

/// One saved version of the API-managed rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleVersionRecord {
    pub version: i64,
    pub created_at: i64,
    pub created_by: String,
    /// What changed, e.g. `create prod-no-truncate`.
    pub change: String,
    pub rules_json: String,
}

/// The outcome of saving a new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    Saved(i64),
    /// Someone saved another version since `expected` (another gateway replica, say).
    Stale {
        current: i64,
    },
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RuleVersionRecord> {
    Ok(RuleVersionRecord {
        version: r.get(0)?,
        created_at: r.get(1)?,
        created_by: r.get(2)?,
        change: r.get(3)?,
        rules_json: r.get(4)?,
    })
}

const COLUMNS: &str = "version, created_at, created_by, change, rules_json";

fn latest(c: &rusqlite::Connection) -> Result<Option<RuleVersionRecord>, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {COLUMNS} FROM rule_versions ORDER BY version DESC LIMIT 1"),
        [],
        row,
    )
    .optional()?)
}

impl Store {
    /// The current (latest) version, if any was ever saved.
    pub async fn latest_rules(&self) -> Result<Option<RuleVersionRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.latest_rules().await;
        }
        self.run(latest).await
    }

    /// For startup, before the runtime serves anything.
    pub fn latest_rules_blocking(&self) -> Result<Option<RuleVersionRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.latest_rules_blocking();
        }
        self.run_blocking(latest)
    }

    /// Saves `rules_json` as version `expected + 1`, unless the latest version is no longer
    /// `expected` (0 when there is none).
    pub async fn save_rules(
        &self,
        expected: i64,
        created_at: i64,
        created_by: String,
        change: String,
        rules_json: String,
    ) -> Result<SaveOutcome, StoreError> {
        if let Some(pg) = self.pg() {
            return pg
                .save_rules(expected, created_at, created_by, change, rules_json)
                .await;
        }
        self.run(move |c| {
            let tx = c.unchecked_transaction()?;
            let current: i64 = tx.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM rule_versions",
                [],
                |r| r.get(0),
            )?;
            if current != expected {
                return Ok(SaveOutcome::Stale { current });
            }
            tx.execute(
                "INSERT INTO rule_versions (version, created_at, created_by, change, rules_json)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![expected + 1, created_at, created_by, change, rules_json],
            )?;
            tx.commit()?;
            Ok(SaveOutcome::Saved(expected + 1))
        })
        .await
    }

    /// Every version, newest first.
    pub async fn list_rule_versions(&self) -> Result<Vec<RuleVersionRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.list_rule_versions().await;
        }
        self.run(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM rule_versions ORDER BY version DESC"
            ))?;
            let rows = stmt.query_map([], row)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    pub async fn rule_version(
        &self,
        version: i64,
    ) -> Result<Option<RuleVersionRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.rule_version(version).await;
        }
        self.run(move |c| {
            Ok(c.query_row(
                &format!("SELECT {COLUMNS} FROM rule_versions WHERE version = ?1"),
                params![version],
                row,
            )
            .optional()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn versions_advance_and_stale_writes_are_refused() {
        let s = Store::open_in_memory().unwrap();
        assert!(s.latest_rules().await.unwrap().is_none());
        let v1 = s
            .save_rules(0, 10, "root".into(), "create a".into(), "[1]".into())
            .await
            .unwrap();
        assert_eq!(v1, SaveOutcome::Saved(1));
        let stale = s
            .save_rules(0, 11, "root".into(), "create b".into(), "[2]".into())
            .await
            .unwrap();
        assert_eq!(stale, SaveOutcome::Stale { current: 1 });
        s.save_rules(1, 12, "root".into(), "delete a".into(), "[]".into())
            .await
            .unwrap();
        let latest = s.latest_rules_blocking().unwrap().unwrap();
        assert_eq!((latest.version, latest.rules_json.as_str()), (2, "[]"));
        let all = s.list_rule_versions().await.unwrap();
        assert_eq!(all.iter().map(|v| v.version).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(s.rule_version(1).await.unwrap().unwrap().change, "create a");
        assert!(s.rule_version(9).await.unwrap().is_none());
    }
}
