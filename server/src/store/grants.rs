//! Grants managed through the API. Config grants are not stored here; the identity module
//! merges both into the in-memory view that connections consult.

use rusqlite::params;

use super::{Store, StoreError};

/// A grant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub id: String,
    pub groups: Vec<String>,
    pub environments: Vec<String>,
    pub upstream_role: Option<String>,
    pub created_at: i64,
    pub created_by: String,
    /// Unix seconds after which the grant lets nobody in; `None`: it never expires.
    pub expires_at: Option<i64>,
    /// For a grant made by approving an access request: the one identity it lets in (name and
    /// kind), instead of `groups` (then empty).
    pub person: Option<GrantPerson>,
    /// The approval (access request) the grant was made from.
    pub approval_id: Option<String>,
    /// The requester approved it themselves, as a member of a break-glass group.
    pub break_glass: bool,
}

/// The one identity a personal grant lets in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantPerson {
    pub name: String,
    /// `human` or `agent`, as `IdentityKind::as_str` writes it.
    pub kind: String,
}

/// Oldest first, as `Grants` promises (the first match picks the upstream role). Grants made in
/// the same second keep the order they were made in (`rowid`), not that of their random ids.
fn list(c: &rusqlite::Connection) -> Result<Vec<GrantRecord>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT id, groups_json, environments_json, upstream_role, created_at, created_by,
                expires_at, identity, identity_kind, approval_id, break_glass
         FROM grants ORDER BY created_at, rowid",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(GrantRecord {
                id: r.get(0)?,
                groups: serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_default(),
                environments: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                upstream_role: r.get(3)?,
                created_at: r.get(4)?,
                created_by: r.get(5)?,
                expires_at: r.get(6)?,
                person: match (
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                ) {
                    (Some(name), Some(kind)) => Some(GrantPerson { name, kind }),
                    _ => None,
                },
                approval_id: r.get(9)?,
                break_glass: r.get(10)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

impl Store {
    pub async fn insert_grant(&self, g: GrantRecord) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.insert_grant(g).await;
        }
        self.run(move |c| {
            c.execute(
                "INSERT INTO grants (id, groups_json, environments_json, upstream_role, created_at, created_by,
                                     expires_at, identity, identity_kind, approval_id, break_glass)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    g.id,
                    serde_json::to_string(&g.groups).unwrap_or_else(|_| "[]".into()),
                    serde_json::to_string(&g.environments).unwrap_or_else(|_| "[]".into()),
                    g.upstream_role,
                    g.created_at,
                    g.created_by,
                    g.expires_at,
                    g.person.as_ref().map(|p| p.name.clone()),
                    g.person.as_ref().map(|p| p.kind.clone()),
                    g.approval_id,
                    g.break_glass
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Deletes a grant; true if it existed.
    pub async fn delete_grant(&self, id: String) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.delete_grant(id).await;
        }
        self.run(move |c| Ok(c.execute("DELETE FROM grants WHERE id = ?1", params![id])? > 0))
            .await
    }

    pub async fn list_grants(&self) -> Result<Vec<GrantRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.list_grants().await;
        }
        self.run(list).await
    }

    /// For startup, before the runtime serves anything.
    pub fn list_grants_blocking(&self) -> Result<Vec<GrantRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.list_grants_blocking();
        }
        self.run_blocking(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn insert_list_delete() {
        let s = Store::open_in_memory().unwrap();
        let g = GrantRecord {
            id: "g1".into(),
            groups: vec!["agents".into()],
            environments: vec!["prod".into()],
            upstream_role: Some("readonly".into()),
            created_at: 1,
            created_by: "root".into(),
            expires_at: None,
            person: None,
            approval_id: None,
            break_glass: false,
        };
        let until = GrantRecord {
            id: "g2".into(),
            groups: Vec::new(),
            expires_at: Some(5000),
            person: Some(GrantPerson {
                name: "ana".into(),
                kind: "human".into(),
            }),
            approval_id: Some("apr_1".into()),
            break_glass: true,
            ..g.clone()
        };
        s.insert_grant(g.clone()).await.unwrap();
        s.insert_grant(until.clone()).await.unwrap();
        assert_eq!(s.list_grants().await.unwrap(), vec![g, until]);
        assert!(s.delete_grant("g2".into()).await.unwrap());
        assert!(s.delete_grant("g1".into()).await.unwrap());
        assert!(!s.delete_grant("g1".into()).await.unwrap());
        assert!(s.list_grants_blocking().unwrap().is_empty());
    }
}
