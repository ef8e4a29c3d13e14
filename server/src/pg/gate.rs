//! The statement gate: what happens to one execution before it may reach the upstream.
//!
//! In order: the audit must be writable (fail closed); the policy decides allow, deny or review;
//! a review spends an earlier once-only grant, or is decided automatically from the planner's
//! row estimate, or holds the client (with a NOTICE naming the approval) until a person decides
//! or the window passes; finally a statement that may change data waits until its audit record
//! is durable. The result is either "forward it" or the refusal to send in its place.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;

use super::error::{encode_notice, PgError, SqlState};
use super::estimate;
use super::notices::Notices;
use super::tracker::{Gate, StmtInfo};
use crate::approval::{NewApproval, Outcome};
use crate::audit::{AuditRecord, ConnectionMeta, Pending, StatementEvent, WriteFailure};
use crate::gateway::{Environment, Gateway};
use crate::identity::Identity;
use crate::policy::{Action, Decision, Strings, Subject};

/// Who runs statements on this connection, and where.
pub struct Observer {
    pub gw: Arc<Gateway>,
    pub meta: Arc<ConnectionMeta>,
    pub identity: Identity,
    pub env: Arc<Environment>,
    /// The upstream role the grant pins for this connection, if any.
    pub pinned_role: Option<String>,
    /// How long a statement sent to review holds this client: `server.approval_window_seconds`,
    /// or less when the client asked (the MCP server asks for 0 and follows the approval itself).
    pub approval_window_seconds: u64,
    /// Where an in-process caller reads this session's refusals as data (loopback sessions
    /// that named a slot; see `refusal_board`).
    pub refusals: Option<Arc<super::refusal_board::RefusalSlot>>,
}

/// A refusal the upstream will raise in place of the statement: the gateway's one
/// client-facing error type, raised by the server so its transaction state stays true.
pub type Refusal = PgError;

/// What the session has shown that changes how its statements are read, as the tracker
/// followed it up to this statement.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    pub strings: Option<Strings>,
    pub search_path_changed: bool,
}

/// The gate's answer.
pub struct Admission {
    pub gate: Gate,
    pub refusal: Option<Refusal>,
    /// The statement may set `search_path`: later ones are read as if it had.
    pub sets_search_path: bool,
    /// The policy's decision, when the session may keep it for the same statement's next
    /// execution (see `verdicts`): an allow or a deny, never a review, which asks for an
    /// approval each time.
    pub decided: Option<Arc<Decision>>,
}

const AUDIT_HINT: &str = "Gatehouse records every statement before it runs; statements resume once the audit trail is writable again. Tell a Gatehouse administrator.";

pub fn audit_refusal(f: &WriteFailure) -> Refusal {
    let (code, message) = match f {
        WriteFailure::DiskFull => (
            SqlState::DiskFull,
            "statement refused: the audit trail cannot be written because its disk is full"
                .to_string(),
        ),
        WriteFailure::StoreUnreachable(_) => (
            SqlState::IoError,
            format!("statement refused: {f}; statements resume when it is back"),
        ),
        other => (
            SqlState::IoError,
            format!("statement refused: the audit trail cannot be written ({other})"),
        ),
    };
    PgError::refusal(code, message, AUDIT_HINT)
}

fn refused(
    decision: &'static str,
    rule: Option<String>,
    approval_id: Option<String>,
    refusal: Refusal,
) -> Admission {
    Admission {
        gate: Gate {
            decision,
            rule,
            approval_id,
            refused: true,
        },
        refusal: Some(refusal),
        sets_search_path: false,
        decided: None,
    }
}

/// Decides one execution. `notices` reaches the client between frames (for the hold NOTICE).
/// `kept`: the policy's decision the session kept for this statement under the same rules and
/// reading; everything after the policy (the audit's health, the pinned role, approvals, the
/// durable record of a write) is checked again regardless.
pub async fn admit(
    o: &Observer,
    info: &Arc<StmtInfo>,
    reading: Reading,
    notices: &Notices,
    kept: Option<Arc<Decision>>,
) -> Admission {
    if let Some(f) = o.gw.audit.refuses(info.may_write) {
        return refused(
            "refused",
            Some("audit-unavailable".into()),
            None,
            audit_refusal(&f),
        );
    }
    let decision = match kept {
        Some(d) => d,
        None => {
            let subject = Subject {
                identity: &o.identity,
                environment: &o.env.name,
                tier: o.env.tier,
                tags: &o.env.tags,
                search_path_changed: reading.search_path_changed,
            };
            Arc::new(
                o.gw.policy
                    .decide_statement_as(&subject, info, reading.strings),
            )
        }
    };
    // Counting one that is refused, or a function that may not set it at all, costs only
    // precision on bare names; missing one would let a schema rule be dodged. Code the
    // gateway has not vetted (a user function's body) may set it too.
    let sets_search_path = decision.classification.as_ref().is_some_and(|c| {
        std::iter::once(&**c).chain(c.each.iter()).any(|p| {
            p.role_change
                || !p.unvetted_functions.is_empty()
                || p.settings.iter().any(|s| s == "search_path")
        })
    });
    // Under a pinned role, leaving it (SET ROLE NONE, SET SESSION AUTHORIZATION, DISCARD ALL…)
    // would undo the grant, in every tier.
    if let Some(role) = &o.pinned_role {
        if decision
            .classification
            .as_ref()
            .is_some_and(|c| c.role_change)
        {
            return refused(
                "deny",
                Some("grant-role-pinned".into()),
                None,
                PgError::refusal(
                    SqlState::InsufficientPrivilege,
                    format!("statement denied by Gatehouse: your grant runs this connection as role \"{role}\", which cannot be changed"),
                    "Ask a Gatehouse administrator for a grant with the role you need.",
                ),
            );
        }
    }
    let mut gate = Gate {
        decision: decision.action.as_str(),
        rule: Some(decision.rule.clone()),
        approval_id: None,
        refused: false,
    };
    let mut decided = None;
    match decision.action {
        Action::Allow => decided = Some(decision.clone()),
        Action::Deny => {
            let mut denied = refused(
                "deny",
                Some(decision.rule.clone()),
                None,
                PgError::refusal(
                    SqlState::InsufficientPrivilege,
                    format!("statement denied by Gatehouse: {}", decision.reason),
                    "Run it in another environment, or ask a Gatehouse administrator about the rule.",
                ),
            );
            denied.decided = Some(decision.clone());
            return denied;
        }
        Action::Review => match review(o, info, &decision.rule, &decision.reason, notices).await {
            Ok(approval_id) => gate.approval_id = Some(approval_id),
            Err((approval_id, refusal)) => {
                return refused("review", Some(decision.rule.clone()), approval_id, refusal)
            }
        },
    }
    if info.may_write {
        let start = StatementEvent {
            meta: o.meta.clone(),
            stmt: info.clone(),
            event: "statement.start",
            at: std::time::SystemTime::now(),
            duration: None,
            rows: None,
            sqlstate: None,
            error: None,
            decision: gate.decision,
            rule: gate.rule.clone(),
            approval_id: gate.approval_id.clone(),
            sample: None,
            detected: Default::default(),
        };
        let waited = std::time::Instant::now();
        if let Err(f) =
            o.gw.audit
                .record_durable(Pending::Statement(Box::new(start)))
                .await
        {
            return refused(
                "refused",
                Some("audit-unavailable".into()),
                gate.approval_id,
                audit_refusal(&f),
            );
        }
        metrics::histogram!("gatehouse_audit_durable_wait_seconds")
            .record(waited.elapsed().as_secs_f64());
    }
    Admission {
        gate,
        refusal: None,
        sets_search_path,
        decided,
    }
}

/// The built-in reviews that are about a write's size, which the planner's row estimate may
/// answer (`auto_approve_below_rows`).
const AUTO_APPROVABLE_RULES: &[&str] = &["prod-review-unbounded-write", "prod-agent-review-writes"];

/// Sends a statement to review; returns the approval that lets it run, or the refusal.
async fn review(
    o: &Observer,
    info: &Arc<StmtInfo>,
    rule: &str,
    reason: &str,
    notices: &Notices,
) -> Result<String, (Option<String>, Refusal)> {
    let approvals = &o.gw.approvals;
    let env = &o.env;
    let store_failure = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "cannot record an approval request");
        (
            None,
            PgError::refusal(
                SqlState::IoError,
                "statement needs approval, but the gateway cannot record the request right now",
                "Try again shortly; tell a Gatehouse administrator if it persists.",
            ),
        )
    };
    // An approval that came after an earlier hold ended may be spent once.
    if let Some(id) = approvals
        .consume_grant(&info.sql, &o.identity.name, &env.name)
        .await
        .map_err(store_failure)?
    {
        return Ok(id);
    }
    let shape = crate::sql::shape(&info.sql);
    let estimated_rows = match env.auto_approve_below_rows {
        Some(_) => estimate::rows(
            &env.target,
            &info.sql,
            Duration::from_secs(o.gw.config.server.upstream_connect_timeout_seconds.max(1)),
        )
        .await
        .map_err(|e| tracing::info!(error = %e, "no row estimate; a person decides"))
        .ok(),
        None => None,
    };
    let (record, mut decided) = approvals
        .request(NewApproval {
            statement: info.sql.to_string(),
            fingerprint: shape.fingerprint.to_string(),
            identity: o.identity.clone(),
            environment: env.name.clone(),
            database: o.meta.database.clone(),
            rule: rule.to_string(),
            reason: reason.to_string(),
            classification: serde_json::to_value(&shape.kinds)
                .ok()
                .map(|k| serde_json::json!({ "kinds": k })),
            estimated_rows,
            connection_id: Some(o.meta.connection_id.clone()),
        })
        .await
        .map_err(store_failure)?;
    let id = record.id.clone();
    let mut requested = o.meta.record("approval.requested");
    requested.approval_id = Some(id.clone());
    requested.statement = Some(crate::sql::redact(&info.sql).into_owned());
    requested.fingerprint = Some(shape.fingerprint.to_string());
    requested.rule = Some(rule.to_string());
    requested.details =
        Some(serde_json::json!({ "reason": reason, "estimated_rows": estimated_rows }));
    o.gw.audit
        .record(Pending::Record(Box::new(requested)))
        .await;

    // Only a review about how many rows a write touches is answered by counting rows; a
    // review for what a statement runs (an unvetted function, code, a lock) needs a person.
    let about_size = AUTO_APPROVABLE_RULES.contains(&rule);
    if let (Some(limit), Some(rows), true) =
        (env.auto_approve_below_rows, estimated_rows, about_size)
    {
        if rows >= 0 && (rows as u64) < limit {
            let why = format!(
                "the planner estimates {rows} rows, under the automatic-approval limit of {limit}"
            );
            match approvals
                .decide_automatically(&id, "policy:row-estimate", why.clone())
                .await
            {
                Ok(_) => {
                    let mut r = AuditRecord::new("approval.approved");
                    r.approval_id = Some(id.clone());
                    r.identity = Some("policy:row-estimate".into());
                    r.environment = Some(env.name.clone());
                    r.details = Some(serde_json::json!({ "automatic": true, "reason": why }));
                    o.gw.audit.record(Pending::Record(Box::new(r))).await;
                    return Ok(id);
                }
                Err(e) => tracing::warn!(error = %e, "automatic approval failed; a person decides"),
            }
        }
    }

    let window = o.approval_window_seconds;
    let mut notice = BytesMut::new();
    encode_notice(
        &mut notice,
        &format!(
            "Gatehouse: this statement needs approval ({reason}). Approval {id} is pending; an approver can decide with `gatehouse approve {id}` or at {}/approvals. Waiting up to {window} s.",
            o.gw.config.server.public_url.get_ref().trim_end_matches('/')
        ),
    );
    notices.send(notice);
    let outcome = tokio::time::timeout(Duration::from_secs(window), async {
        loop {
            if let Some(o) = decided.borrow_and_update().clone() {
                return Some(o);
            }
            if decided.changed().await.is_err() {
                return None;
            }
        }
    })
    .await;
    approvals.stop_waiting(&id);
    // A decision may have landed just as the window closed.
    let outcome = match outcome {
        Ok(o) => o,
        Err(_) => decided.borrow().clone(),
    };
    let grant_minutes = o.gw.config.server.approval_grant_seconds / 60;
    match outcome {
        Some(Outcome::Approved { .. }) => Ok(id),
        Some(Outcome::Denied { by, reason }) => Err((
            Some(id.clone()),
            PgError::refusal(
                SqlState::InsufficientPrivilege,
                format!(
                    "approval {id} was denied by {by}{}",
                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                ),
                "The statement did not run.",
            ),
        )),
        None => Err((
            Some(id.clone()),
            PgError::refusal(
                SqlState::InsufficientPrivilege,
                format!("approval {id} was not decided within {window} s; the statement did not run"),
                format!(
                    "The approval stays pending. Once it is approved, run the identical statement again within {grant_minutes} minutes; it will run once."
                ),
            ),
        )),
    }
}
