//! Versions of the API-managed guardrail rules in the shared store (see `store/rules.rs`).
//! Saving version `expected + 1` is one INSERT on the version's primary key, so of two replicas
//! saving from the same version, one gets `Stale`.

use tokio_postgres::Row;

use super::PgStore;
use crate::store::{RuleVersionRecord, SaveOutcome, StoreError};

const COLUMNS: &str = "version, created_at, created_by, change, rules_json";

fn row(r: &Row) -> RuleVersionRecord {
    RuleVersionRecord {
        version: r.get(0),
        created_at: r.get(1),
        created_by: r.get(2),
        change: r.get(3),
        rules_json: r.get(4),
    }
}

async fn latest(c: &tokio_postgres::Client) -> Result<Option<RuleVersionRecord>, StoreError> {
    Ok(c.query_opt(
        &format!("SELECT {COLUMNS} FROM rule_versions ORDER BY version DESC LIMIT 1"),
        &[],
    )
    .await?
    .map(|r| row(&r)))
}

impl PgStore {
    pub async fn latest_rules(&self) -> Result<Option<RuleVersionRecord>, StoreError> {
        self.exec(|c| async move { latest(&c).await }).await
    }

    pub fn latest_rules_blocking(&self) -> Result<Option<RuleVersionRecord>, StoreError> {
        self.blocking(|c| async move { latest(&c).await })
    }

    pub async fn save_rules(
        &self,
        expected: i64,
        created_at: i64,
        created_by: String,
        change: String,
        rules_json: String,
    ) -> Result<SaveOutcome, StoreError> {
        self.exec(move |c| async move {
            let current: i64 = c
                .query_one("SELECT COALESCE(MAX(version), 0) FROM rule_versions", &[])
                .await?
                .get(0);
            if current != expected {
                return Ok(SaveOutcome::Stale { current });
            }
            let n = c
                .execute(
                    "INSERT INTO rule_versions (version, created_at, created_by, change, rules_json)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (version) DO NOTHING",
                    &[&(expected + 1), &created_at, &created_by, &change, &rules_json],
                )
                .await?;
            if n == 0 {
                let current: i64 = c
                    .query_one("SELECT COALESCE(MAX(version), 0) FROM rule_versions", &[])
                    .await?
                    .get(0);
                return Ok(SaveOutcome::Stale { current });
            }
            Ok(SaveOutcome::Saved(expected + 1))
        })
        .await
    }

    pub async fn list_rule_versions(&self) -> Result<Vec<RuleVersionRecord>, StoreError> {
        self.exec(|c| async move {
            let rows = c
                .query(
                    &format!("SELECT {COLUMNS} FROM rule_versions ORDER BY version DESC"),
                    &[],
                )
                .await?;
            Ok(rows.iter().map(row).collect())
        })
        .await
    }

    pub async fn rule_version(
        &self,
        version: i64,
    ) -> Result<Option<RuleVersionRecord>, StoreError> {
        self.exec(move |c| async move {
            Ok(c.query_opt(
                &format!("SELECT {COLUMNS} FROM rule_versions WHERE version = $1"),
                &[&version],
            )
            .await?
            .map(|r| row(&r)))
        })
        .await
    }
}
