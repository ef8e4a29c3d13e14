//! Masking data kept across restarts: admin overrides of catalog tags and exemptions.

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::params;

use super::{Store, StoreError};
use crate::masking::catalog::Override;
use crate::masking::{Category, Exemption};

fn ts(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

fn overrides(c: &rusqlite::Connection) -> Result<Vec<Override>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT environment, schema_name, table_name, column_name, category, set_by, set_at
         FROM masking_overrides ORDER BY environment, schema_name, table_name, column_name",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Override {
                environment: r.get(0)?,
                schema: r.get(1)?,
                table: r.get(2)?,
                column: r.get(3)?,
                category: r
                    .get::<_, Option<String>>(4)?
                    .as_deref()
                    .and_then(Category::parse),
                set_by: r.get(5)?,
                set_at: ts(r.get(6)?),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn exemptions(c: &rusqlite::Connection) -> Result<Vec<Exemption>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT id, group_name, environment, category, expires_at, reason, created_by, created_at, column_ref
         FROM masking_exemptions ORDER BY created_at, id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                Exemption {
                    id: r.get(0)?,
                    group: r.get(1)?,
                    environment: r.get(2)?,
                    category: None,
                    column: r.get(8)?,
                    expires_at: r.get::<_, Option<i64>>(4)?.map(ts),
                    reason: r.get(5)?,
                    created_by: r.get(6)?,
                    created_at: ts(r.get(7)?),
                },
                r.get::<_, Option<String>>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    // A category this gateway does not know is skipped rather than guessed.
    Ok(rows
        .into_iter()
        .filter_map(|(mut e, c)| {
            if let Some(c) = c {
                e.category = Some(Category::parse(&c)?);
            }
            Some(e)
        })
        .collect())
}

/// A masking catalog as the store keeps it (`masking::Catalog::to_stored_json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCatalogRecord {
    pub environment: String,
    pub database: String,
    pub json: String,
}

fn catalogs(c: &rusqlite::Connection) -> Result<Vec<StoredCatalogRecord>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT environment, database_name, catalog_json FROM masking_catalogs
         ORDER BY environment, database_name",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(StoredCatalogRecord {
                environment: r.get(0)?,
                database: r.get(1)?,
                json: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

impl Store {
    /// Keeps the latest catalog read of one environment's database (replacing the previous).
    pub async fn save_masking_catalog(
        &self,
        record: StoredCatalogRecord,
        loaded_at: i64,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.save_masking_catalog(record, loaded_at).await;
        }
        self.run(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO masking_catalogs (environment, database_name, loaded_at, catalog_json)
                 VALUES (?1, ?2, ?3, ?4)",
                params![record.environment, record.database, loaded_at, record.json],
            )?;
            Ok(())
        })
        .await
    }

    /// Every stored catalog, for startup.
    pub fn masking_catalogs_blocking(&self) -> Result<Vec<StoredCatalogRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.masking_catalogs_blocking();
        }
        self.run_blocking(catalogs)
    }

    pub fn masking_overrides_blocking(&self) -> Result<Vec<Override>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.masking_overrides_blocking();
        }
        self.run_blocking(overrides)
    }

    pub fn exemptions_blocking(&self) -> Result<Vec<Exemption>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.exemptions_blocking();
        }
        self.run_blocking(exemptions)
    }

    pub async fn masking_overrides(&self) -> Result<Vec<Override>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.masking_overrides().await;
        }
        self.run(overrides).await
    }

    pub async fn exemptions(&self) -> Result<Vec<Exemption>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.exemptions().await;
        }
        self.run(exemptions).await
    }

    /// Sets (or replaces) the override of one column.
    pub async fn put_masking_override(&self, o: Override) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.put_masking_override(o).await;
        }
        self.run(move |c| {
            c.execute(
                "INSERT INTO masking_overrides (environment, schema_name, table_name, column_name, category, set_by, set_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (environment, schema_name, table_name, column_name)
                 DO UPDATE SET category = excluded.category, set_by = excluded.set_by, set_at = excluded.set_at",
                params![
                    o.environment,
                    o.schema,
                    o.table,
                    o.column,
                    o.category.map(|c| c.as_str()),
                    o.set_by,
                    o.set_at.timestamp()
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Removes the override of one column; true if there was one.
    pub async fn delete_masking_override(
        &self,
        environment: String,
        schema: String,
        table: String,
        column: String,
    ) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg
                .delete_masking_override(environment, schema, table, column)
                .await;
        }
        self.run(move |c| {
            let n = c.execute(
                "DELETE FROM masking_overrides WHERE environment = ?1 AND schema_name = ?2 AND table_name = ?3 AND column_name = ?4",
                params![environment, schema, table, column],
            )?;
            Ok(n > 0)
        })
        .await
    }

    pub async fn insert_exemption(&self, e: Exemption) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.insert_exemption(e).await;
        }
        self.run(move |c| {
            c.execute(
                "INSERT INTO masking_exemptions (id, group_name, environment, category, expires_at, reason, created_by, created_at, column_ref)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    e.id,
                    e.group,
                    e.environment,
                    e.category.map(|c| c.as_str()),
                    e.expires_at.map(|t| t.timestamp()),
                    e.reason,
                    e.created_by,
                    e.created_at.timestamp(),
                    e.column
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Deletes an exemption; true if it existed.
    pub async fn delete_exemption(&self, id: String) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.delete_exemption(id).await;
        }
        self.run(move |c| {
            let n = c.execute("DELETE FROM masking_exemptions WHERE id = ?1", params![id])?;
            Ok(n > 0)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn overrides_and_exemptions_round_trip() {
        let s = Store::open_in_memory().unwrap();
        let now = ts(Utc::now().timestamp());
        let o = Override {
            environment: "app".into(),
            schema: "public".into(),
            table: "people".into(),
            column: "nickname".into(),
            category: Some(Category::PersonName),
            set_by: "admin".into(),
            set_at: now,
        };
        s.put_masking_override(o.clone()).await.unwrap();
        let mut o2 = o.clone();
        o2.category = None;
        s.put_masking_override(o2.clone()).await.unwrap();
        assert_eq!(s.masking_overrides().await.unwrap(), vec![o2]);
        let e = Exemption {
            id: "ex1".into(),
            group: "support".into(),
            environment: "app".into(),
            category: Some(Category::Email),
            column: None,
            expires_at: Some(now),
            reason: Some("ticket 42".into()),
            created_by: "admin".into(),
            created_at: now,
        };
        s.insert_exemption(e.clone()).await.unwrap();
        assert_eq!(s.exemptions().await.unwrap(), vec![e]);
        assert!(s.delete_exemption("ex1".into()).await.unwrap());
        assert!(s.exemptions().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn catalogs_are_kept_one_per_database() {
        let s = Store::open_in_memory().unwrap();
        let rec = |json: &str| StoredCatalogRecord {
            environment: "app".into(),
            database: "appdb".into(),
            json: json.into(),
        };
        s.save_masking_catalog(rec("{\"v\":1}"), 1).await.unwrap();
        s.save_masking_catalog(rec("{\"v\":2}"), 2).await.unwrap();
        assert_eq!(
            s.masking_catalogs_blocking().unwrap(),
            vec![rec("{\"v\":2}")]
        );
    }
}
