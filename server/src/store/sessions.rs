//! Gateway sessions: created by a login, found by the hash of their access token, renewed with
//! the hash of their refresh token, revoked by logout or by an administrator.

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};

/// A session as stored. The tokens themselves are never stored, only their sha256.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: String,
    pub identity: String,
    pub kind: String,
    pub groups: Vec<String>,
    pub created_at: i64,
    /// When the access token stops working.
    pub expires_at: i64,
    /// How the session was opened: `password` (local user) or `oidc`.
    pub method: String,
    /// When the refresh token stops working; `None` when the session has none.
    pub refresh_expires_at: Option<i64>,
}

/// A session as an administrator sees it.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    pub record: SessionRecord,
    pub revoked_at: Option<i64>,
}

/// The outcome of looking a token up.
#[derive(Debug)]
pub enum SessionLookup {
    Active(SessionRecord),
    Expired,
    Revoked,
    Unknown,
}

impl SessionLookup {
    /// What an access token of the session `found` gives at `now` (both stores judge alike).
    pub(super) fn access(found: Option<SessionSummary>, now: i64) -> SessionLookup {
        match found {
            None => SessionLookup::Unknown,
            Some(s) if s.revoked_at.is_some() => SessionLookup::Revoked,
            Some(s) if s.record.expires_at <= now => SessionLookup::Expired,
            Some(s) => SessionLookup::Active(s.record),
        }
    }

    /// Why the refresh token of the session `found` no longer renews it at `now`, if it does
    /// not (both stores judge alike).
    pub(super) fn refresh_refused(
        found: Option<&SessionSummary>,
        now: i64,
    ) -> Option<SessionLookup> {
        match found {
            None => Some(SessionLookup::Unknown),
            Some(s) if s.revoked_at.is_some() => Some(SessionLookup::Revoked),
            Some(s) if s.record.refresh_expires_at.is_none_or(|t| t <= now) => {
                Some(SessionLookup::Expired)
            }
            Some(_) => None,
        }
    }
}

const COLUMNS: &str =
    "id, identity, kind, groups_json, created_at, expires_at, method, refresh_expires_at, revoked_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionSummary> {
    Ok(SessionSummary {
        record: SessionRecord {
            id: r.get(0)?,
            identity: r.get(1)?,
            kind: r.get(2)?,
            groups: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
            created_at: r.get(4)?,
            expires_at: r.get(5)?,
            method: r.get(6)?,
            refresh_expires_at: r.get(7)?,
        },
        revoked_at: r.get(8)?,
    })
}

impl Store {
    pub async fn insert_session(
        &self,
        token_sha256: [u8; 32],
        refresh_sha256: Option<[u8; 32]>,
        record: SessionRecord,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg
                .insert_session(token_sha256, refresh_sha256, record)
                .await;
        }
        self.run(move |c| {
            c.execute(
                "INSERT INTO sessions (id, token_sha256, identity, kind, groups_json, created_at,
                                       expires_at, method, refresh_sha256, refresh_expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    record.id,
                    &token_sha256[..],
                    record.identity,
                    record.kind,
                    serde_json::to_string(&record.groups).unwrap_or_else(|_| "[]".into()),
                    record.created_at,
                    record.expires_at,
                    record.method,
                    refresh_sha256.as_ref().map(|h| &h[..]),
                    record.refresh_expires_at,
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn lookup_session(
        &self,
        token_sha256: [u8; 32],
        now: i64,
    ) -> Result<SessionLookup, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.lookup_session(token_sha256, now).await;
        }
        self.run(move |c| {
            let found = c
                .query_row(
                    &format!("SELECT {COLUMNS} FROM sessions WHERE token_sha256 = ?1"),
                    params![&token_sha256[..]],
                    row,
                )
                .optional()?;
            Ok(SessionLookup::access(found, now))
        })
        .await
    }

    /// Swaps a session's tokens for new ones, if `refresh_sha256` names an active session whose
    /// refresh token is still valid. The old access and refresh tokens stop working at once.
    pub async fn refresh_session(
        &self,
        refresh_sha256: [u8; 32],
        new_token_sha256: [u8; 32],
        new_refresh_sha256: [u8; 32],
        new_expires_at: i64,
        now: i64,
    ) -> Result<SessionLookup, StoreError> {
        if let Some(pg) = self.pg() {
            return pg
                .refresh_session(
                    refresh_sha256,
                    new_token_sha256,
                    new_refresh_sha256,
                    new_expires_at,
                    now,
                )
                .await;
        }
        self.run(move |c| {
            let found = c
                .query_row(
                    &format!("SELECT {COLUMNS} FROM sessions WHERE refresh_sha256 = ?1"),
                    params![&refresh_sha256[..]],
                    row,
                )
                .optional()?;
            if let Some(outcome) = SessionLookup::refresh_refused(found.as_ref(), now) {
                return Ok(outcome);
            }
            let Some(mut s) = found else {
                return Ok(SessionLookup::Unknown);
            };
            // The access token never outlives the refresh token that renewed it.
            let expires_at = new_expires_at.min(s.record.refresh_expires_at.unwrap_or(now));
            let n = c.execute(
                "UPDATE sessions SET token_sha256 = ?2, refresh_sha256 = ?3, expires_at = ?4
                 WHERE refresh_sha256 = ?1 AND revoked_at IS NULL",
                params![
                    &refresh_sha256[..],
                    &new_token_sha256[..],
                    &new_refresh_sha256[..],
                    expires_at
                ],
            )?;
            if n == 0 {
                return Ok(SessionLookup::Unknown);
            }
            s.record.expires_at = expires_at;
            Ok(SessionLookup::Active(s.record))
        })
        .await
    }

    /// Revokes the session with this token hash; returns its id if it was active.
    pub async fn revoke_session(
        &self,
        token_sha256: [u8; 32],
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.revoke_session(token_sha256, now).await;
        }
        self.run(move |c| {
            let id: Option<String> = c
                .query_row(
                    "UPDATE sessions SET revoked_at = ?2 WHERE token_sha256 = ?1 AND revoked_at IS NULL
                     RETURNING id",
                    params![&token_sha256[..], now],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(id)
        })
        .await
    }

    /// Revokes a session by id; true if it was active.
    pub async fn revoke_session_by_id(&self, id: String, now: i64) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.revoke_session_by_id(id, now).await;
        }
        self.run(move |c| {
            let n = c.execute(
                "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now],
            )?;
            Ok(n > 0)
        })
        .await
    }

    /// Sessions, newest first: those still usable (access or refresh token valid, not revoked),
    /// or all of them; optionally only one identity's.
    pub async fn list_sessions(
        &self,
        identity: Option<String>,
        include_inactive: bool,
        now: i64,
        limit: usize,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg
                .list_sessions(identity, include_inactive, now, limit)
                .await;
        }
        self.run(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM sessions
                 WHERE (?1 IS NULL OR identity = ?1)
                   AND (?2 OR (revoked_at IS NULL
                               AND (expires_at > ?3 OR COALESCE(refresh_expires_at, 0) > ?3)))
                 ORDER BY created_at DESC, id LIMIT ?4"
            ))?;
            let rows = stmt
                .query_map(params![identity, include_inactive, now, limit as i64], row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Of the sessions `ids`, those revoked (for a replica asking about its open connections
    /// when it may have missed another replica's notice).
    pub async fn revoked_sessions(&self, ids: Vec<String>) -> Result<Vec<String>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.revoked_sessions(ids).await;
        }
        self.run(move |c| {
            let mut stmt = c.prepare(
                "SELECT id FROM sessions WHERE revoked_at IS NOT NULL
                 AND id IN (SELECT value FROM json_each(?1))",
            )?;
            let ids = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
            let rows = stmt
                .query_map(params![ids], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(rows)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(expires_at: i64) -> SessionRecord {
        SessionRecord {
            id: "s1".into(),
            identity: "alice".into(),
            kind: "human".into(),
            groups: vec!["eng".into()],
            created_at: 0,
            expires_at,
            method: "oidc".into(),
            refresh_expires_at: Some(1000),
        }
    }

    #[tokio::test]
    async fn session_lifecycle() {
        let s = Store::open_in_memory().unwrap();
        s.insert_session([1; 32], Some([9; 32]), rec(100))
            .await
            .unwrap();
        assert!(
            matches!(s.lookup_session([1; 32], 50).await.unwrap(), SessionLookup::Active(r) if r.groups == ["eng"])
        );
        assert!(matches!(
            s.lookup_session([1; 32], 100).await.unwrap(),
            SessionLookup::Expired
        ));
        assert!(matches!(
            s.lookup_session([2; 32], 50).await.unwrap(),
            SessionLookup::Unknown
        ));
        assert_eq!(
            s.list_sessions(None, false, 200, 10).await.unwrap().len(),
            1
        );
        assert_eq!(
            s.revoke_session([1; 32], 60).await.unwrap().as_deref(),
            Some("s1")
        );
        assert_eq!(s.revoke_session([1; 32], 61).await.unwrap(), None);
        assert!(matches!(
            s.lookup_session([1; 32], 50).await.unwrap(),
            SessionLookup::Revoked
        ));
        assert!(s
            .list_sessions(None, false, 70, 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            s.list_sessions(Some("alice".into()), true, 70, 10)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn refresh_rotates_both_tokens() {
        let s = Store::open_in_memory().unwrap();
        s.insert_session([1; 32], Some([9; 32]), rec(100))
            .await
            .unwrap();
        let r = s
            .refresh_session([9; 32], [2; 32], [8; 32], 5000, 150)
            .await
            .unwrap();
        // Capped at the refresh token's own expiry.
        assert!(matches!(r, SessionLookup::Active(r) if r.expires_at == 1000));
        assert!(matches!(
            s.lookup_session([1; 32], 150).await.unwrap(),
            SessionLookup::Unknown
        ));
        assert!(matches!(
            s.lookup_session([2; 32], 150).await.unwrap(),
            SessionLookup::Active(_)
        ));
        // The old refresh token is spent.
        assert!(matches!(
            s.refresh_session([9; 32], [3; 32], [7; 32], 5000, 151)
                .await
                .unwrap(),
            SessionLookup::Unknown
        ));
        assert!(s.revoke_session_by_id("s1".into(), 160).await.unwrap());
        assert!(matches!(
            s.refresh_session([8; 32], [3; 32], [7; 32], 5000, 161)
                .await
                .unwrap(),
            SessionLookup::Revoked
        ));
    }
}
