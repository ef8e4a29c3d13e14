//! Service accounts created through the API (AI agents, CI jobs). Only the token's sha256 is
//! kept; rotation replaces it, revocation marks the account so its token stops working.

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};

/// A service account as stored.
#[derive(Debug, Clone)]
pub struct ServiceAccountRecord {
    pub id: String,
    pub name: String,
    /// `agent` or `human`.
    pub kind: String,
    pub groups: Vec<String>,
    pub on_behalf_of: Option<String>,
    pub description: Option<String>,
    pub created_at: i64,
    pub created_by: String,
    pub rotated_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, name, kind, groups_json, on_behalf_of, description, created_at, \
                       created_by, rotated_at, expires_at, revoked_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ServiceAccountRecord> {
    Ok(ServiceAccountRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: r.get(2)?,
        groups: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
        on_behalf_of: r.get(4)?,
        description: r.get(5)?,
        created_at: r.get(6)?,
        created_by: r.get(7)?,
        rotated_at: r.get(8)?,
        expires_at: r.get(9)?,
        revoked_at: r.get(10)?,
    })
}

/// Why an insert was refused.
#[derive(Debug)]
pub enum InsertOutcome {
    Inserted,
    NameTaken,
}

impl Store {
    pub async fn insert_service_account(
        &self,
        token_sha256: [u8; 32],
        a: ServiceAccountRecord,
    ) -> Result<InsertOutcome, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.insert_service_account(token_sha256, a).await;
        }
        self.run(move |c| {
            let taken: bool = c.query_row(
                "SELECT EXISTS(SELECT 1 FROM service_accounts WHERE name = ?1)",
                params![a.name],
                |r| r.get(0),
            )?;
            if taken {
                return Ok(InsertOutcome::NameTaken);
            }
            c.execute(
                "INSERT INTO service_accounts (id, name, kind, token_sha256, groups_json, on_behalf_of,
                                               description, created_at, created_by, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    a.id,
                    a.name,
                    a.kind,
                    &token_sha256[..],
                    serde_json::to_string(&a.groups).unwrap_or_else(|_| "[]".into()),
                    a.on_behalf_of,
                    a.description,
                    a.created_at,
                    a.created_by,
                    a.expires_at
                ],
            )?;
            Ok(InsertOutcome::Inserted)
        })
        .await
    }

    pub async fn service_account_by_token(
        &self,
        token_sha256: [u8; 32],
    ) -> Result<Option<ServiceAccountRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.service_account_by_token(token_sha256).await;
        }
        self.run(move |c| {
            Ok(c.query_row(
                &format!("SELECT {COLUMNS} FROM service_accounts WHERE token_sha256 = ?1"),
                params![&token_sha256[..]],
                row,
            )
            .optional()?)
        })
        .await
    }

    pub async fn service_account(
        &self,
        id: String,
    ) -> Result<Option<ServiceAccountRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.service_account(id).await;
        }
        self.run(move |c| {
            Ok(c.query_row(
                &format!("SELECT {COLUMNS} FROM service_accounts WHERE id = ?1"),
                params![id],
                row,
            )
            .optional()?)
        })
        .await
    }

    pub async fn list_service_accounts(&self) -> Result<Vec<ServiceAccountRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.list_service_accounts().await;
        }
        self.run(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM service_accounts ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map([], row)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Replaces an active account's token (and optionally its expiry); false if there is no
    /// active account with this id.
    pub async fn rotate_service_account(
        &self,
        id: String,
        token_sha256: [u8; 32],
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg
                .rotate_service_account(id, token_sha256, expires_at, now)
                .await;
        }
        self.run(move |c| {
            let n = c.execute(
                "UPDATE service_accounts SET token_sha256 = ?2, rotated_at = ?3,
                        expires_at = COALESCE(?4, expires_at)
                 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, &token_sha256[..], now, expires_at],
            )?;
            Ok(n > 0)
        })
        .await
    }

    /// Revokes an account; true if it was active.
    pub async fn revoke_service_account(&self, id: String, now: i64) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.revoke_service_account(id, now).await;
        }
        self.run(move |c| {
            let n = c.execute(
                "UPDATE service_accounts SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now],
            )?;
            Ok(n > 0)
        })
        .await
    }

    /// Of the API service accounts named `names`, those revoked.
    /// Of the accounts `names`, those whose earlier connections must end, each with the time
    /// up to which a connection's start makes it one: `i64::MAX` for a revoked account (every
    /// connection), its `rotated_at` for a rotated one (connections made with the old token).
    /// What a replica that missed the notice of a revocation or rotation re-reads.
    pub async fn ended_accounts(
        &self,
        names: Vec<String>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.ended_accounts(names).await;
        }
        self.run(move |c| {
            let mut stmt = c.prepare(ENDED_ACCOUNTS_SQLITE)?;
            let names = serde_json::to_string(&names).unwrap_or_else(|_| "[]".into());
            let rows = stmt
                .query_map(params![names], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<(String, i64)>, _>>()?;
            Ok(rows)
        })
        .await
    }
}

const ENDED_ACCOUNTS_SQLITE: &str =
    "SELECT name, CASE WHEN revoked_at IS NOT NULL THEN 9223372036854775807 ELSE rotated_at END
     FROM service_accounts
     WHERE (revoked_at IS NOT NULL OR rotated_at IS NOT NULL)
       AND name IN (SELECT value FROM json_each(?1))";

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str) -> ServiceAccountRecord {
        ServiceAccountRecord {
            id: format!("id-{name}"),
            name: name.into(),
            kind: "agent".into(),
            groups: vec!["agents".into()],
            on_behalf_of: Some("alice".into()),
            description: None,
            created_at: 1,
            created_by: "root".into(),
            rotated_at: None,
            expires_at: None,
            revoked_at: None,
        }
    }

    #[tokio::test]
    async fn create_rotate_revoke() {
        let s = Store::open_in_memory().unwrap();
        assert!(matches!(
            s.insert_service_account([1; 32], rec("bot")).await.unwrap(),
            InsertOutcome::Inserted
        ));
        assert!(matches!(
            s.insert_service_account([2; 32], rec("bot")).await.unwrap(),
            InsertOutcome::NameTaken
        ));
        let a = s.service_account_by_token([1; 32]).await.unwrap().unwrap();
        assert_eq!(a.on_behalf_of.as_deref(), Some("alice"));
        assert!(s
            .rotate_service_account(a.id.clone(), [3; 32], Some(99), 5)
            .await
            .unwrap());
        assert!(s.service_account_by_token([1; 32]).await.unwrap().is_none());
        let a = s.service_account_by_token([3; 32]).await.unwrap().unwrap();
        assert_eq!((a.rotated_at, a.expires_at), (Some(5), Some(99)));
        let names = vec!["bot".to_string(), "other".to_string()];
        assert_eq!(
            s.ended_accounts(names.clone()).await.unwrap(),
            vec![("bot".to_string(), 5)]
        );
        assert!(s.revoke_service_account(a.id.clone(), 6).await.unwrap());
        assert_eq!(
            s.ended_accounts(names).await.unwrap(),
            vec![("bot".to_string(), i64::MAX)]
        );
        assert!(!s
            .rotate_service_account(a.id.clone(), [4; 32], None, 7)
            .await
            .unwrap());
        assert_eq!(s.list_service_accounts().await.unwrap().len(), 1);
        assert!(s
            .service_account(a.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some());
    }
}
