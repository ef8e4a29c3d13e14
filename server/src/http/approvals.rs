//! `/api/v1/approvals`: statements waiting for review, exemption and access requests, and
//! deciding them. Approvers are the environment's `approvers` groups (or
//! `server.admin_groups`); nobody decides a request they made or that an agent made on their
//! behalf (`approval::is_requester`), except a break-glass member approving their own access
//! request (`approval::access`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use crate::approval::DecideError;
use crate::audit::{AuditRecord, Pending};
use crate::gateway::Gateway;
use crate::identity::{GrantError, Identity};
use crate::store::{ApprovalKind, ApprovalRecord};

/// The states an approval can be in, as `?state=` accepts them.
const STATES: [&str; 6] = [
    "pending",
    "approved",
    "used",
    "denied",
    "expired",
    "withdrawn",
];

#[derive(Debug, Deserialize, IntoParams)]
pub struct ApprovalQuery {
    /// `pending`, `approved`, `used`, `denied`, `expired`, `withdrawn`, or `all` (default).
    pub state: Option<String>,
    /// Only approvals of this kind: `statement`, `access` or `masking_exemption`.
    pub kind: Option<String>,
    /// At most this many, newest first (default 100).
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct ApprovalList {
    pub items: Vec<ApprovalRecord>,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct DecisionRequest {
    /// Why; shown to the requester (required to deny).
    pub reason: Option<String>,
}

/// Whether `who` may see `a`: its requester, its environment's approvers, administrators.
pub fn visible(gw: &Gateway, who: &Identity, a: &ApprovalRecord) -> bool {
    a.identity == who.name
        || gw.is_admin(who)
        || gw
            .environments
            .get(&a.environment)
            .is_some_and(|e| who.in_any_group(&e.approvers))
}

/// Approvals the caller may see.
#[utoipa::path(
    get, operation_id = "list_approvals", path = "/api/v1/approvals", params(ApprovalQuery),
    responses((status = 200, body = ApprovalList), (status = 401, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn list(
    State(gw): State<Arc<Gateway>>,
    caller: Caller,
    Query(q): Query<ApprovalQuery>,
) -> Result<Json<ApprovalList>, ApiError> {
    let state = q.state.filter(|s| s != "all");
    if let Some(s) = &state {
        if !STATES.contains(&s.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "`state`: unknown state `{s}`: use {} or all",
                STATES.join(", ")
            )));
        }
    }
    let kind = match q.kind.as_deref() {
        None => None,
        Some("statement") => Some(ApprovalKind::Statement),
        Some("access") => Some(ApprovalKind::Access),
        Some("masking_exemption") => Some(ApprovalKind::MaskingExemption),
        Some(k) => {
            return Err(ApiError::BadRequest(format!(
                "`kind`: unknown kind `{k}`: use statement, access or masking_exemption"
            )))
        }
    };
    let rows = gw
        .approvals
        .list(state, q.limit.unwrap_or(100).clamp(1, 1000))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let items = rows
        .into_iter()
        .filter(|a| kind.is_none_or(|k| a.kind == k))
        .filter(|a| visible(&gw, &caller.identity, a))
        .collect();
    Ok(Json(ApprovalList { items }))
}

/// One approval.
#[utoipa::path(
    get, operation_id = "get_approval", path = "/api/v1/approvals/{id}", params(("id" = String, Path)),
    responses((status = 200, body = ApprovalRecord), (status = 404, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn get(
    State(gw): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ApprovalRecord>, ApiError> {
    let a = gw
        .approvals
        .get(&id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    match a {
        Some(a) if visible(&gw, &caller.identity, &a) => Ok(Json(a)),
        _ => Err(ApiError::NotFound(format!("no approval {id}"))),
    }
}

/// A decision that could not be made, as an HTTP answer.
pub fn decide_error(e: DecideError) -> ApiError {
    match e {
        DecideError::NotFound(_) => ApiError::NotFound(e.to_string()),
        DecideError::NotPending { .. } => ApiError::Conflict(e.to_string()),
        DecideError::OwnRequest | DecideError::NotAnApprover(_) | DecideError::NotRequester => {
            ApiError::Forbidden(e.to_string())
        }
        DecideError::BreakGlassNeedsReason => ApiError::BadRequest(e.to_string()),
        DecideError::Grant(GrantError::Invalid(m)) => {
            ApiError::Conflict(format!("cannot grant the access: {m}"))
        }
        DecideError::Grant(g) => ApiError::Internal(g.to_string()),
        DecideError::Store(s) => ApiError::Internal(s.to_string()),
    }
}

/// The approval `id` if the caller may see it; the same 404 otherwise.
pub async fn visible_approval(
    gw: &Gateway,
    who: &Identity,
    id: &str,
) -> Result<ApprovalRecord, ApiError> {
    match gw.approvals.get(id).await? {
        Some(a) if visible(gw, who, &a) => Ok(a),
        _ => Err(ApiError::NotFound(format!("no approval {id}"))),
    }
}

async fn decide(
    gw: &Gateway,
    caller: &Caller,
    id: &str,
    approve: bool,
    reason: Option<String>,
) -> Result<Json<ApprovalRecord>, ApiError> {
    let current = visible_approval(gw, &caller.identity, id).await?;
    if current.kind == ApprovalKind::Access {
        // Its own path: a grant, break-glass, `access.*` audit records.
        return crate::approval::access::decide(gw, &caller.identity, &current, approve, reason)
            .await
            .map(Json)
            .map_err(decide_error);
    }
    let approvers = gw
        .environments
        .get(&current.environment)
        .map(|e| e.approvers.clone())
        .unwrap_or_else(|| gw.config.server.admin_groups.clone());
    let decided = gw
        .approvals
        .decide(id, &caller.identity, &approvers, approve, reason.clone())
        .await
        .map_err(decide_error)?;
    let mut r = AuditRecord::new(if approve {
        "approval.approved"
    } else {
        "approval.denied"
    })
    .by(&caller.identity);
    r.approval_id = Some(id.to_string());
    r.environment = Some(decided.environment.clone());
    r.details = Some(serde_json::json!({
        "reason": reason,
        "requester": decided.identity,
        "on_behalf_of": decided.on_behalf_of,
        "state": decided.state,
    }));
    gw.audit.record(Pending::Record(Box::new(r))).await;
    if approve && decided.rule == super::masking::EXEMPTION_REQUEST_RULE {
        super::masking::grant_requested_exemption(gw, &decided, &caller.identity).await?;
    }
    Ok(Json(decided))
}

/// Approve: a held statement runs at once; otherwise the identical statement may run once later.
/// An access request: its requester gets access for the time asked. A requester may approve
/// their own access request only as a member of the environment's break-glass groups, with a
/// `reason`; that access is capped short and announced (`access_request.break_glass`).
#[utoipa::path(
    post, path = "/api/v1/approvals/{id}/approve", params(("id" = String, Path)), request_body = DecisionRequest,
    responses((status = 200, body = ApprovalRecord), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn approve(
    State(gw): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<Json<DecisionRequest>>,
) -> Result<Json<ApprovalRecord>, ApiError> {
    let reason = body
        .and_then(|b| b.0.reason)
        .filter(|r| !r.trim().is_empty());
    decide(&gw, &caller, &id, true, reason).await
}

/// Deny, with a reason the requester sees in their error.
#[utoipa::path(
    post, path = "/api/v1/approvals/{id}/deny", params(("id" = String, Path)), request_body = DecisionRequest,
    responses((status = 200, body = ApprovalRecord), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn deny(
    State(gw): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<Json<DecisionRequest>>,
) -> Result<Json<ApprovalRecord>, ApiError> {
    let reason = body
        .and_then(|b| b.0.reason)
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| {
            ApiError::BadRequest("a reason is required to deny: {\"reason\": \"...\"}".into())
        })?;
    decide(&gw, &caller, &id, false, Some(reason)).await
}
