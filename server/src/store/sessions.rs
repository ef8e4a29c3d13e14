//! Gateway sessions: created by a login, found by the hash of their token, revoked by logout.

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};

/// A session as stored.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: String,
    pub identity: String,
    pub kind: String,
    pub groups: Vec<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The outcome of looking a token up.
#[derive(Debug)]
pub enum SessionLookup {
    Active(SessionRecord),
    Expired,
    Revoked,
    Unknown,
}

impl Store {
    pub async fn insert_session(
        &self,
        token_sha256: [u8; 32],
        record: SessionRecord,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO sessions (id, token_sha256, identity, kind, groups_json, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    record.id,
                    &token_sha256[..],
                    record.identity,
                    record.kind,
                    serde_json::to_string(&record.groups).unwrap_or_else(|_| "[]".into()),
                    record.created_at,
                    record.expires_at
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
        self.run(move |c| {
            let row = c
                .query_row(
                    "SELECT id, identity, kind, groups_json, created_at, expires_at, revoked_at
                     FROM sessions WHERE token_sha256 = ?1",
                    params![&token_sha256[..]],
                    |r| {
                        Ok((
                            SessionRecord {
                                id: r.get(0)?,
                                identity: r.get(1)?,
                                kind: r.get(2)?,
                                groups: serde_json::from_str(&r.get::<_, String>(3)?)
                                    .unwrap_or_default(),
                                created_at: r.get(4)?,
                                expires_at: r.get(5)?,
                            },
                            r.get::<_, Option<i64>>(6)?,
                        ))
                    },
                )
                .optional()?;
            Ok(match row {
                None => SessionLookup::Unknown,
                Some((_, Some(_))) => SessionLookup::Revoked,
                Some((rec, None)) if rec.expires_at <= now => SessionLookup::Expired,
                Some((rec, None)) => SessionLookup::Active(rec),
            })
        })
        .await
    }

    /// Revokes the session with this token hash; true if one was active.
    pub async fn revoke_session(
        &self,
        token_sha256: [u8; 32],
        now: i64,
    ) -> Result<bool, StoreError> {
        self.run(move |c| {
            let n = c.execute(
                "UPDATE sessions SET revoked_at = ?2 WHERE token_sha256 = ?1 AND revoked_at IS NULL",
                params![&token_sha256[..], now],
            )?;
            Ok(n > 0)
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
        }
    }

    #[tokio::test]
    async fn session_lifecycle() {
        let s = Store::open_in_memory().unwrap();
        s.insert_session([1; 32], rec(100)).await.unwrap();
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
        assert!(s.revoke_session([1; 32], 60).await.unwrap());
        assert!(!s.revoke_session([1; 32], 61).await.unwrap());
        assert!(matches!(
            s.lookup_session([1; 32], 50).await.unwrap(),
            SessionLookup::Revoked
        ));
    }
}
