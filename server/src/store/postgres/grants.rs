//! API-managed grants in the shared store (see `store/grants.rs`).

use super::{json_list, PgStore};
use crate::store::{GrantPerson, GrantRecord, StoreError};

async fn list(c: &tokio_postgres::Client) -> Result<Vec<GrantRecord>, StoreError> {
    let rows = c
        .query(
            "SELECT id, groups_json, environments_json, upstream_role, created_at, created_by,
                    expires_at, identity, identity_kind, approval_id, break_glass
             FROM grants ORDER BY created_at, seq",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| GrantRecord {
            id: r.get(0),
            groups: serde_json::from_str(r.get::<_, &str>(1)).unwrap_or_default(),
            environments: serde_json::from_str(r.get::<_, &str>(2)).unwrap_or_default(),
            upstream_role: r.get(3),
            created_at: r.get(4),
            created_by: r.get(5),
            expires_at: r.get(6),
            person: match (r.get::<_, Option<String>>(7), r.get::<_, Option<String>>(8)) {
                (Some(name), Some(kind)) => Some(GrantPerson { name, kind }),
                _ => None,
            },
            approval_id: r.get(9),
            break_glass: r.get(10),
        })
        .collect())
}

impl PgStore {
    pub async fn insert_grant(&self, g: GrantRecord) -> Result<(), StoreError> {
        self.exec(move |c| async move {
            c.execute(
                "INSERT INTO grants (id, groups_json, environments_json, upstream_role, created_at, created_by,
                                     expires_at, identity, identity_kind, approval_id, break_glass)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &[
                    &g.id,
                    &json_list(&g.groups),
                    &json_list(&g.environments),
                    &g.upstream_role,
                    &g.created_at,
                    &g.created_by,
                    &g.expires_at,
                    &g.person.as_ref().map(|p| p.name.clone()),
                    &g.person.as_ref().map(|p| p.kind.clone()),
                    &g.approval_id,
                    &g.break_glass,
                ],
            )
            .await?;
            Ok(())
        })
        .await
    }

    pub async fn delete_grant(&self, id: String) -> Result<bool, StoreError> {
        self.exec(move |c| async move {
            Ok(c.execute("DELETE FROM grants WHERE id = $1", &[&id])
                .await?
                > 0)
        })
        .await
    }

    pub async fn list_grants(&self) -> Result<Vec<GrantRecord>, StoreError> {
        self.exec(|c| async move { list(&c).await }).await
    }

    pub fn list_grants_blocking(&self) -> Result<Vec<GrantRecord>, StoreError> {
        self.blocking(|c| async move { list(&c).await })
    }
}
