//! Approvals as stored: requests for review, their decisions, and the once-only grants an
//! approval leaves behind.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{Store, StoreError};

/// The rule name an access request carries as an approval.
pub const ACCESS_REQUEST_RULE: &str = "access-request";
/// The rule name a masking exemption request carries as an approval.
pub const EXEMPTION_REQUEST_RULE: &str = "masking-exemption-request";

/// What an approval is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalKind {
    /// A statement sent to review.
    Statement,
    /// Access to an environment for a while (`access` holds what was asked).
    Access,
    /// A masking exemption for a group.
    MaskingExemption,
}

impl ApprovalKind {
    pub fn of_rule(rule: &str) -> ApprovalKind {
        match rule {
            ACCESS_REQUEST_RULE => ApprovalKind::Access,
            EXEMPTION_REQUEST_RULE => ApprovalKind::MaskingExemption,
            _ => ApprovalKind::Statement,
        }
    }
}

/// What an access request asks for, kept with the approval (in its `classification`, under
/// `access_request`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AccessRequestDetails {
    pub environment: String,
    /// The upstream role asked for; the environment's own user when null.
    pub role: Option<String>,
    /// How long the access lasts once approved.
    pub duration_seconds: i64,
    /// When the request expires if nobody decides it (Unix seconds).
    pub pending_until: i64,
    /// Approved by the requester themselves as a member of a break-glass group (set once
    /// decided).
    #[serde(default)]
    pub break_glass: bool,
}

/// One approval. `state` is `pending`, `approved` (a statement: may be used once until
/// `grant_expires_at`; access: granted until `grant_expires_at`), `used`, `denied`, `expired`
/// or `withdrawn` (by the requester).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApprovalRecord {
    pub id: String,
    pub kind: ApprovalKind,
    pub state: String,
    pub statement: String,
    #[serde(skip)]
    pub statement_sha256: String,
    pub fingerprint: String,
    pub identity: String,
    pub identity_kind: String,
    pub on_behalf_of: Option<String>,
    pub environment: String,
    pub database: String,
    pub rule: String,
    pub reason: String,
    #[schema(value_type = Option<Object>)]
    pub classification: Option<serde_json::Value>,
    pub estimated_rows: Option<i64>,
    pub connection_id: Option<String>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
    pub decision_reason: Option<String>,
    pub grant_expires_at: Option<i64>,
    pub used_at: Option<i64>,
    /// For `kind = access`: what was asked.
    pub access: Option<AccessRequestDetails>,
}

impl ApprovalRecord {
    /// Fills the fields derived from the stored ones: the kind (from the rule) and, for an
    /// access request, its details (from the classification; break-glass when the requester
    /// approved it themselves, which nothing else allows).
    pub fn derive(mut self) -> ApprovalRecord {
        self.kind = ApprovalKind::of_rule(&self.rule);
        self.access = match self.kind {
            ApprovalKind::Access => self
                .classification
                .as_ref()
                .and_then(|c| c.get("access_request"))
                .and_then(|v| serde_json::from_value::<AccessRequestDetails>(v.clone()).ok())
                .map(|mut d| {
                    d.break_glass = self.state == "approved"
                        && self
                            .decided_by
                            .as_deref()
                            .is_some_and(|by| by.eq_ignore_ascii_case(&self.identity));
                    d
                }),
            _ => None,
        };
        self
    }
}

const COLUMNS: &str = "id, state, statement, statement_sha256, fingerprint, identity, identity_kind, on_behalf_of, environment,
    database_name, rule, reason, classification, estimated_rows, connection_id, created_at, decided_at, decided_by,
    decision_reason, grant_expires_at, used_at";

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApprovalRecord> {
    Ok(ApprovalRecord {
        id: r.get(0)?,
        kind: ApprovalKind::Statement,
        state: r.get(1)?,
        statement: r.get(2)?,
        statement_sha256: r.get(3)?,
        fingerprint: r.get(4)?,
        identity: r.get(5)?,
        identity_kind: r.get(6)?,
        on_behalf_of: r.get(7)?,
        environment: r.get(8)?,
        database: r.get(9)?,
        rule: r.get(10)?,
        reason: r.get(11)?,
        classification: r
            .get::<_, Option<String>>(12)?
            .and_then(|s| serde_json::from_str(&s).ok()),
        estimated_rows: r.get(13)?,
        connection_id: r.get(14)?,
        created_at: r.get(15)?,
        decided_at: r.get(16)?,
        decided_by: r.get(17)?,
        decision_reason: r.get(18)?,
        grant_expires_at: r.get(19)?,
        used_at: r.get(20)?,
        access: None,
    }
    .derive())
}

impl Store {
    pub async fn insert_approval(&self, a: ApprovalRecord) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.insert_approval(a).await;
        }
        self.run(move |c| {
            c.execute(
                &format!("INSERT INTO approvals ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)"),
                params![
                    a.id,
                    a.state,
                    a.statement,
                    a.statement_sha256,
                    a.fingerprint,
                    a.identity,
                    a.identity_kind,
                    a.on_behalf_of,
                    a.environment,
                    a.database,
                    a.rule,
                    a.reason,
                    a.classification.map(|v| v.to_string()),
                    a.estimated_rows,
                    a.connection_id,
                    a.created_at,
                    a.decided_at,
                    a.decided_by,
                    a.decision_reason,
                    a.grant_expires_at,
                    a.used_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn approval(&self, id: String) -> Result<Option<ApprovalRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.approval(id).await;
        }
        self.run(move |c| {
            Ok(c.query_row(
                &format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"),
                [id],
                read,
            )
            .optional()?)
        })
        .await
    }

    /// Approvals in `state` (all when `None`), newest first.
    pub async fn approvals(
        &self,
        state: Option<String>,
        limit: usize,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.approvals(state, limit).await;
        }
        self.run(move |c| {
            let sql = format!(
                "SELECT {COLUMNS} FROM approvals WHERE (?1 IS NULL OR state = ?1) ORDER BY created_at DESC, id LIMIT {}",
                limit.min(1000)
            );
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map([state], read)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Pending approvals made under `rule` (e.g. access requests), oldest first.
    pub async fn pending_approvals_with_rule(
        &self,
        rule: &'static str,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.pending_approvals_with_rule(rule).await;
        }
        self.run(move |c| {
            let sql = format!(
                "SELECT {COLUMNS} FROM approvals WHERE state = 'pending' AND rule = ?1 ORDER BY created_at, id"
            );
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map([rule], read)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// The approvals `identity` made under `rule` (e.g. their access requests), newest first;
    /// the name compared ignoring ASCII case, as `approval::is_requester` does.
    pub async fn approvals_of(
        &self,
        identity: String,
        rule: &'static str,
        limit: usize,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.approvals_of(identity, rule, limit).await;
        }
        self.run(move |c| {
            let sql = format!(
                "SELECT {COLUMNS} FROM approvals WHERE rule = ?1 AND identity = ?2 COLLATE NOCASE
                 ORDER BY created_at DESC, id LIMIT {}",
                limit.min(1000)
            );
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(params![rule, identity], read)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// How many approvals are in `state`.
    pub async fn count_approvals(&self, state: &'static str) -> Result<i64, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.count_approvals(state).await;
        }
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT count(*) FROM approvals WHERE state = ?1",
                [state],
                |r| r.get(0),
            )?)
        })
        .await
    }

    /// Records a decision on a pending approval; false if it was no longer pending.
    pub async fn decide_approval(
        &self,
        id: String,
        state: &'static str,
        decided_by: String,
        reason: Option<String>,
        now: i64,
        grant_expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg
                .decide_approval(id, state, decided_by, reason, now, grant_expires_at)
                .await;
        }
        self.run(move |c| {
            let used_at = (state == "used").then_some(now);
            let n = c.execute(
                "UPDATE approvals SET state = ?2, decided_by = ?3, decision_reason = ?4, decided_at = ?5, grant_expires_at = ?6, used_at = ?7
                 WHERE id = ?1 AND state = 'pending'",
                params![id, state, decided_by, reason, now, grant_expires_at, used_at],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// Spends the once-only grant an approval left for exactly this statement, if there is one.
    pub async fn consume_approval_grant(
        &self,
        statement_sha256: String,
        identity: String,
        environment: String,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg
                .consume_approval_grant(statement_sha256, identity, environment, now)
                .await;
        }
        self.run(move |c| {
            Ok(c.query_row(
                "UPDATE approvals SET state = 'used', used_at = ?4
                 WHERE id = (SELECT id FROM approvals
                             WHERE state = 'approved' AND statement_sha256 = ?1 AND identity = ?2 AND environment = ?3
                               AND grant_expires_at > ?4
                             ORDER BY decided_at LIMIT 1)
                 RETURNING id",
                params![statement_sha256, identity, environment, now],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    /// Spends an approved statement approval for the client held on it (decided on another
    /// replica, which left a grant since the client was not its own); false if it is no
    /// longer `approved`.
    pub async fn use_approval(&self, id: String, now: i64) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.use_approval(id, now).await;
        }
        self.run(move |c| {
            Ok(c.execute(
                "UPDATE approvals SET state = 'used', used_at = ?2 WHERE id = ?1 AND state = 'approved'",
                params![id, now],
            )? == 1)
        })
        .await
    }
}
