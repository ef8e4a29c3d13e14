//! Masking overrides, exemptions and stored catalogs in the shared store (see
//! `store/masking.rs`).

use chrono::{DateTime, TimeZone, Utc};

use super::PgStore;
use crate::masking::catalog::Override;
use crate::masking::{Category, Exemption};
use crate::store::{StoreError, StoredCatalogRecord};

fn ts(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

async fn overrides(c: &tokio_postgres::Client) -> Result<Vec<Override>, StoreError> {
    let rows = c
        .query(
            "SELECT environment, schema_name, table_name, column_name, category, set_by, set_at
             FROM masking_overrides ORDER BY environment, schema_name, table_name, column_name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Override {
            environment: r.get(0),
            schema: r.get(1),
            table: r.get(2),
            column: r.get(3),
            category: r.get::<_, Option<&str>>(4).and_then(Category::parse),
            set_by: r.get(5),
            set_at: ts(r.get(6)),
        })
        .collect())
}

async fn exemptions(c: &tokio_postgres::Client) -> Result<Vec<Exemption>, StoreError> {
    let rows = c
        .query(
            "SELECT id, group_name, environment, category, expires_at, reason, created_by, created_at, column_ref
             FROM masking_exemptions ORDER BY created_at, id",
            &[],
        )
        .await?;
    // A category this gateway does not know is skipped rather than guessed.
    Ok(rows
        .iter()
        .filter_map(|r| {
            let category = match r.get::<_, Option<&str>>(3) {
                Some(c) => Some(Category::parse(c)?),
                None => None,
            };
            Some(Exemption {
                id: r.get(0),
                group: r.get(1),
                environment: r.get(2),
                category,
                column: r.get(8),
                expires_at: r.get::<_, Option<i64>>(4).map(ts),
                reason: r.get(5),
                created_by: r.get(6),
                created_at: ts(r.get(7)),
            })
        })
        .collect())
}

async fn catalogs(c: &tokio_postgres::Client) -> Result<Vec<StoredCatalogRecord>, StoreError> {
    let rows = c
        .query(
            "SELECT environment, database_name, catalog_json FROM masking_catalogs
             ORDER BY environment, database_name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| StoredCatalogRecord {
            environment: r.get(0),
            database: r.get(1),
            json: r.get(2),
        })
        .collect())
}

impl PgStore {
    pub async fn save_masking_catalog(
        &self,
        record: StoredCatalogRecord,
        loaded_at: i64,
    ) -> Result<(), StoreError> {
        self.exec(move |c| async move {
            c.execute(
                "INSERT INTO masking_catalogs (environment, database_name, loaded_at, catalog_json)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (environment, database_name)
                 DO UPDATE SET loaded_at = excluded.loaded_at, catalog_json = excluded.catalog_json",
                &[&record.environment, &record.database, &loaded_at, &record.json],
            )
            .await?;
            Ok(())
        })
        .await
    }

    pub fn masking_catalogs_blocking(&self) -> Result<Vec<StoredCatalogRecord>, StoreError> {
        self.blocking(|c| async move { catalogs(&c).await })
    }

    pub fn masking_overrides_blocking(&self) -> Result<Vec<Override>, StoreError> {
        self.blocking(|c| async move { overrides(&c).await })
    }

    pub fn exemptions_blocking(&self) -> Result<Vec<Exemption>, StoreError> {
        self.blocking(|c| async move { exemptions(&c).await })
    }

    pub async fn masking_overrides(&self) -> Result<Vec<Override>, StoreError> {
        self.exec(|c| async move { overrides(&c).await }).await
    }

    pub async fn exemptions(&self) -> Result<Vec<Exemption>, StoreError> {
        self.exec(|c| async move { exemptions(&c).await }).await
    }

    pub async fn put_masking_override(&self, o: Override) -> Result<(), StoreError> {
        self.exec(move |c| async move {
            c.execute(
                "INSERT INTO masking_overrides (environment, schema_name, table_name, column_name, category, set_by, set_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (environment, schema_name, table_name, column_name)
                 DO UPDATE SET category = excluded.category, set_by = excluded.set_by, set_at = excluded.set_at",
                &[
                    &o.environment,
                    &o.schema,
                    &o.table,
                    &o.column,
                    &o.category.map(|c| c.as_str()),
                    &o.set_by,
                    &o.set_at.timestamp(),
                ],
            )
            .await?;
            Ok(())
        })
        .await
    }

    pub async fn delete_masking_override(
        &self,
        environment: String,
        schema: String,
        table: String,
        column: String,
    ) -> Result<bool, StoreError> {
        self.exec(move |c| async move {
            let n = c
                .execute(
                    "DELETE FROM masking_overrides WHERE environment = $1 AND schema_name = $2 AND table_name = $3 AND column_name = $4",
                    &[&environment, &schema, &table, &column],
                )
                .await?;
            Ok(n > 0)
        })
        .await
    }

    pub async fn insert_exemption(&self, e: Exemption) -> Result<(), StoreError> {
        self.exec(move |c| async move {
            c.execute(
                "INSERT INTO masking_exemptions (id, group_name, environment, category, expires_at, reason, created_by, created_at, column_ref)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &e.id,
                    &e.group,
                    &e.environment,
                    &e.category.map(|c| c.as_str()),
                    &e.expires_at.map(|t| t.timestamp()),
                    &e.reason,
                    &e.created_by,
                    &e.created_at.timestamp(),
                    &e.column,
                ],
            )
            .await?;
            Ok(())
        })
        .await
    }

    pub async fn delete_exemption(&self, id: String) -> Result<bool, StoreError> {
        self.exec(move |c| async move {
            let n = c
                .execute("DELETE FROM masking_exemptions WHERE id = $1", &[&id])
                .await?;
            Ok(n > 0)
        })
        .await
    }
}
