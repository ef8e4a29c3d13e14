//! Approvals in the shared store (see `store/approvals.rs`). Decisions and the spending of a
//! once-only grant are single conditional statements, so replicas racing on one approval
//! cannot both win.

use tokio_postgres::Row;

use super::PgStore;
use crate::store::{ApprovalKind, ApprovalRecord, StoreError};

const COLUMNS: &str = "id, state, statement, statement_sha256, fingerprint, identity, identity_kind, on_behalf_of, environment,
    database_name, rule, reason, classification, estimated_rows, connection_id, created_at, decided_at, decided_by,
    decision_reason, grant_expires_at, used_at";

fn read(r: &Row) -> ApprovalRecord {
    ApprovalRecord {
        id: r.get(0),
        kind: ApprovalKind::Statement,
        state: r.get(1),
        statement: r.get(2),
        statement_sha256: r.get(3),
        fingerprint: r.get(4),
        identity: r.get(5),
        identity_kind: r.get(6),
        on_behalf_of: r.get(7),
        environment: r.get(8),
        database: r.get(9),
        rule: r.get(10),
        reason: r.get(11),
        classification: r
            .get::<_, Option<String>>(12)
            .and_then(|s| serde_json::from_str(&s).ok()),
        estimated_rows: r.get(13),
        connection_id: r.get(14),
        created_at: r.get(15),
        decided_at: r.get(16),
        decided_by: r.get(17),
        decision_reason: r.get(18),
        grant_expires_at: r.get(19),
        used_at: r.get(20),
        access: None,
    }
    .derive()
}

impl PgStore {
    pub async fn insert_approval(&self, a: ApprovalRecord) -> Result<(), StoreError> {
        self.exec(move |c| async move {
            c.execute(
                &format!("INSERT INTO approvals ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"),
                &[
                    &a.id,
                    &a.state,
                    &a.statement,
                    &a.statement_sha256,
                    &a.fingerprint,
                    &a.identity,
                    &a.identity_kind,
                    &a.on_behalf_of,
                    &a.environment,
                    &a.database,
                    &a.rule,
                    &a.reason,
                    &a.classification.map(|v| v.to_string()),
                    &a.estimated_rows,
                    &a.connection_id,
                    &a.created_at,
                    &a.decided_at,
                    &a.decided_by,
                    &a.decision_reason,
                    &a.grant_expires_at,
                    &a.used_at,
                ],
            )
            .await?;
            Ok(())
        })
        .await
    }

    pub async fn approval(&self, id: String) -> Result<Option<ApprovalRecord>, StoreError> {
        self.exec(move |c| async move {
            Ok(c.query_opt(
                &format!("SELECT {COLUMNS} FROM approvals WHERE id = $1"),
                &[&id],
            )
            .await?
            .map(|r| read(&r)))
        })
        .await
    }

    pub async fn approvals(
        &self,
        state: Option<String>,
        limit: usize,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        self.exec(move |c| async move {
            let sql = format!(
                "SELECT {COLUMNS} FROM approvals WHERE ($1::TEXT IS NULL OR state = $1) ORDER BY created_at DESC, id LIMIT {}",
                limit.min(1000)
            );
            Ok(c.query(&sql, &[&state]).await?.iter().map(read).collect())
        })
        .await
    }

    pub async fn pending_approvals_with_rule(
        &self,
        rule: &'static str,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        self.exec(move |c| async move {
            let sql = format!(
                "SELECT {COLUMNS} FROM approvals WHERE state = 'pending' AND rule = $1 ORDER BY created_at, id"
            );
            Ok(c.query(&sql, &[&rule]).await?.iter().map(read).collect())
        })
        .await
    }

    pub async fn approvals_of(
        &self,
        identity: String,
        rule: &'static str,
        limit: usize,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        self.exec(move |c| async move {
            // SQLite's COLLATE NOCASE folds ASCII only; so does this.
            let sql = format!(
                "SELECT {COLUMNS} FROM approvals
                 WHERE rule = $1 AND translate(identity, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
                                   = translate($2, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
                 ORDER BY created_at DESC, id LIMIT {}",
                limit.min(1000)
            );
            Ok(c.query(&sql, &[&rule, &identity])
                .await?
                .iter()
                .map(read)
                .collect())
        })
        .await
    }

    pub async fn count_approvals(&self, state: &'static str) -> Result<i64, StoreError> {
        self.exec(move |c| async move {
            Ok(
                c.query_one("SELECT count(*) FROM approvals WHERE state = $1", &[&state])
                    .await?
                    .get(0),
            )
        })
        .await
    }

    pub async fn decide_approval(
        &self,
        id: String,
        state: &'static str,
        decided_by: String,
        reason: Option<String>,
        now: i64,
        grant_expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.exec(move |c| async move {
            let used_at = (state == "used").then_some(now);
            let n = c
                .execute(
                    "UPDATE approvals SET state = $2, decided_by = $3, decision_reason = $4, decided_at = $5, grant_expires_at = $6, used_at = $7
                     WHERE id = $1 AND state = 'pending'",
                    &[&id, &state, &decided_by, &reason, &now, &grant_expires_at, &used_at],
                )
                .await?;
            Ok(n == 1)
        })
        .await
    }

    pub async fn consume_approval_grant(
        &self,
        statement_sha256: String,
        identity: String,
        environment: String,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        self.exec(move |c| async move {
            // SKIP LOCKED: two replicas spending the same statement's grants take different rows.
            Ok(c.query_opt(
                "UPDATE approvals SET state = 'used', used_at = $4
                 WHERE id = (SELECT id FROM approvals
                             WHERE state = 'approved' AND statement_sha256 = $1 AND identity = $2 AND environment = $3
                               AND grant_expires_at > $4
                             ORDER BY decided_at LIMIT 1 FOR UPDATE SKIP LOCKED)
                   AND state = 'approved'
                 RETURNING id",
                &[&statement_sha256, &identity, &environment, &now],
            )
            .await?
            .map(|r| r.get(0)))
        })
        .await
    }

    pub async fn use_approval(&self, id: String, now: i64) -> Result<bool, StoreError> {
        self.exec(move |c| async move {
            Ok(c.execute(
                "UPDATE approvals SET state = 'used', used_at = $2 WHERE id = $1 AND state = 'approved'",
                &[&id, &now],
            )
            .await?
                == 1)
        })
        .await
    }
}
