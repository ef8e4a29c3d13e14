//! API-managed service accounts in the shared store (see `store/service_accounts.rs`).

use tokio_postgres::Row;

use super::{json_list, PgStore};
use crate::store::{InsertOutcome, ServiceAccountRecord, StoreError};

const COLUMNS: &str = "id, name, kind, groups_json, on_behalf_of, description, created_at, \
                       created_by, rotated_at, expires_at, revoked_at";

fn row(r: &Row) -> ServiceAccountRecord {
    ServiceAccountRecord {
        id: r.get(0),
        name: r.get(1),
        kind: r.get(2),
        groups: serde_json::from_str(r.get::<_, &str>(3)).unwrap_or_default(),
        on_behalf_of: r.get(4),
        description: r.get(5),
        created_at: r.get(6),
        created_by: r.get(7),
        rotated_at: r.get(8),
        expires_at: r.get(9),
        revoked_at: r.get(10),
    }
}

impl PgStore {
    pub async fn insert_service_account(
        &self,
        token_sha256: [u8; 32],
        a: ServiceAccountRecord,
    ) -> Result<InsertOutcome, StoreError> {
        self.exec(move |c| async move {
            // The name's uniqueness decides, so two replicas creating one name cannot both win.
            let n = c
                .execute(
                    "INSERT INTO service_accounts (id, name, kind, token_sha256, groups_json, on_behalf_of,
                                                   description, created_at, created_by, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (name) DO NOTHING",
                    &[
                        &a.id,
                        &a.name,
                        &a.kind,
                        &&token_sha256[..],
                        &json_list(&a.groups),
                        &a.on_behalf_of,
                        &a.description,
                        &a.created_at,
                        &a.created_by,
                        &a.expires_at,
                    ],
                )
                .await?;
            Ok(if n == 0 {
                InsertOutcome::NameTaken
            } else {
                InsertOutcome::Inserted
            })
        })
        .await
    }

    pub async fn service_account_by_token(
        &self,
        token_sha256: [u8; 32],
    ) -> Result<Option<ServiceAccountRecord>, StoreError> {
        self.exec(move |c| async move {
            Ok(c.query_opt(
                &format!("SELECT {COLUMNS} FROM service_accounts WHERE token_sha256 = $1"),
                &[&&token_sha256[..]],
            )
            .await?
            .map(|r| row(&r)))
        })
        .await
    }

    pub async fn service_account(
        &self,
        id: String,
    ) -> Result<Option<ServiceAccountRecord>, StoreError> {
        self.exec(move |c| async move {
            Ok(c.query_opt(
                &format!("SELECT {COLUMNS} FROM service_accounts WHERE id = $1"),
                &[&id],
            )
            .await?
            .map(|r| row(&r)))
        })
        .await
    }

    pub async fn list_service_accounts(&self) -> Result<Vec<ServiceAccountRecord>, StoreError> {
        self.exec(|c| async move {
            let rows = c
                .query(
                    &format!("SELECT {COLUMNS} FROM service_accounts ORDER BY created_at, id"),
                    &[],
                )
                .await?;
            Ok(rows.iter().map(row).collect())
        })
        .await
    }

    pub async fn rotate_service_account(
        &self,
        id: String,
        token_sha256: [u8; 32],
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.exec(move |c| async move {
            let n = c
                .execute(
                    "UPDATE service_accounts SET token_sha256 = $2, rotated_at = $3,
                            expires_at = COALESCE($4, expires_at)
                     WHERE id = $1 AND revoked_at IS NULL",
                    &[&id, &&token_sha256[..], &now, &expires_at],
                )
                .await?;
            Ok(n > 0)
        })
        .await
    }

    pub async fn revoke_service_account(&self, id: String, now: i64) -> Result<bool, StoreError> {
        self.exec(move |c| async move {
            let n = c
                .execute(
                    "UPDATE service_accounts SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                    &[&id, &now],
                )
                .await?;
            Ok(n > 0)
        })
        .await
    }

    pub async fn ended_accounts(
        &self,
        names: Vec<String>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.exec(move |c| async move {
            Ok(c.query(
                "SELECT name, CASE WHEN revoked_at IS NOT NULL THEN 9223372036854775807 ELSE rotated_at END
                 FROM service_accounts
                 WHERE (revoked_at IS NOT NULL OR rotated_at IS NOT NULL) AND name = ANY($1)",
                &[&names],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
        })
        .await
    }
}
