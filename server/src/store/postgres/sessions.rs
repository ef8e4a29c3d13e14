//! Gateway sessions in the shared store (see `store/sessions.rs`).

use tokio_postgres::Row;

use super::{json_list, PgStore};
use crate::store::{SessionLookup, SessionRecord, SessionSummary, StoreError};

const COLUMNS: &str =
    "id, identity, kind, groups_json, created_at, expires_at, method, refresh_expires_at, revoked_at";

fn row(r: &Row) -> SessionSummary {
    SessionSummary {
        record: SessionRecord {
            id: r.get(0),
            identity: r.get(1),
            kind: r.get(2),
            groups: serde_json::from_str(r.get::<_, &str>(3)).unwrap_or_default(),
            created_at: r.get(4),
            expires_at: r.get(5),
            method: r.get(6),
            refresh_expires_at: r.get(7),
        },
        revoked_at: r.get(8),
    }
}

impl PgStore {
    pub async fn insert_session(
        &self,
        token_sha256: [u8; 32],
        refresh_sha256: Option<[u8; 32]>,
        record: SessionRecord,
    ) -> Result<(), StoreError> {
        self.exec(move |c| async move {
            c.execute(
                "INSERT INTO sessions (id, token_sha256, identity, kind, groups_json, created_at,
                                       expires_at, method, refresh_sha256, refresh_expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &record.id,
                    &&token_sha256[..],
                    &record.identity,
                    &record.kind,
                    &json_list(&record.groups),
                    &record.created_at,
                    &record.expires_at,
                    &record.method,
                    &refresh_sha256.as_ref().map(|h| &h[..]),
                    &record.refresh_expires_at,
                ],
            )
            .await?;
            Ok(())
        })
        .await
    }

    pub async fn lookup_session(
        &self,
        token_sha256: [u8; 32],
        now: i64,
    ) -> Result<SessionLookup, StoreError> {
        self.exec(move |c| async move {
            let found = c
                .query_opt(
                    &format!("SELECT {COLUMNS} FROM sessions WHERE token_sha256 = $1"),
                    &[&&token_sha256[..]],
                )
                .await?
                .map(|r| row(&r));
            Ok(SessionLookup::access(found, now))
        })
        .await
    }

    pub async fn refresh_session(
        &self,
        refresh_sha256: [u8; 32],
        new_token_sha256: [u8; 32],
        new_refresh_sha256: [u8; 32],
        new_expires_at: i64,
        now: i64,
    ) -> Result<SessionLookup, StoreError> {
        self.exec(move |c| async move {
            let found = c
                .query_opt(
                    &format!("SELECT {COLUMNS} FROM sessions WHERE refresh_sha256 = $1"),
                    &[&&refresh_sha256[..]],
                )
                .await?
                .map(|r| row(&r));
            if let Some(outcome) = SessionLookup::refresh_refused(found.as_ref(), now) {
                return Ok(outcome);
            }
            let Some(mut s) = found else {
                return Ok(SessionLookup::Unknown);
            };
            let expires_at = new_expires_at.min(s.record.refresh_expires_at.unwrap_or(now));
            // The WHERE makes the swap atomic: of two replicas refreshing with one token, one wins.
            let n = c
                .execute(
                    "UPDATE sessions SET token_sha256 = $2, refresh_sha256 = $3, expires_at = $4
                     WHERE refresh_sha256 = $1 AND revoked_at IS NULL",
                    &[
                        &&refresh_sha256[..],
                        &&new_token_sha256[..],
                        &&new_refresh_sha256[..],
                        &expires_at,
                    ],
                )
                .await?;
            if n == 0 {
                return Ok(SessionLookup::Unknown);
            }
            s.record.expires_at = expires_at;
            Ok(SessionLookup::Active(s.record))
        })
        .await
    }

    pub async fn revoke_session(
        &self,
        token_sha256: [u8; 32],
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        self.exec(move |c| async move {
            Ok(c.query_opt(
                "UPDATE sessions SET revoked_at = $2 WHERE token_sha256 = $1 AND revoked_at IS NULL
                 RETURNING id",
                &[&&token_sha256[..], &now],
            )
            .await?
            .map(|r| r.get(0)))
        })
        .await
    }

    pub async fn revoke_session_by_id(&self, id: String, now: i64) -> Result<bool, StoreError> {
        self.exec(move |c| async move {
            let n = c
                .execute(
                    "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                    &[&id, &now],
                )
                .await?;
            Ok(n > 0)
        })
        .await
    }

    pub async fn list_sessions(
        &self,
        identity: Option<String>,
        include_inactive: bool,
        now: i64,
        limit: usize,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        self.exec(move |c| async move {
            let rows = c
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM sessions
                         WHERE ($1::TEXT IS NULL OR identity = $1)
                           AND ($2 OR (revoked_at IS NULL
                                       AND (expires_at > $3 OR COALESCE(refresh_expires_at, 0) > $3)))
                         ORDER BY created_at DESC, id LIMIT $4"
                    ),
                    &[&identity, &include_inactive, &now, &(limit as i64)],
                )
                .await?;
            Ok(rows.iter().map(row).collect())
        })
        .await
    }

    pub async fn revoked_sessions(&self, ids: Vec<String>) -> Result<Vec<String>, StoreError> {
        self.exec(move |c| async move {
            Ok(c.query(
                "SELECT id FROM sessions WHERE revoked_at IS NOT NULL AND id = ANY($1)",
                &[&ids],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })
        .await
    }
}
