//! `/api/v1/access-requests`: asking for an environment for a while, listing one's own
//! requests, the environments that take requests, and withdrawing. Deciding is
//! `/api/v1/approvals/{id}/approve|deny` (`approvals.rs`), as for every approval; the rules
//! live in `approval::access`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::approvals::{decide_error, visible_approval, ApprovalList, DecisionRequest};
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use crate::approval::access::{self, AccessAsk, RequestError};
use crate::config::Tier;
use crate::gateway::Gateway;
use crate::store::{ApprovalKind, ApprovalRecord, ACCESS_REQUEST_RULE};

#[derive(Deserialize, ToSchema)]
pub struct AccessRequestBody {
    /// The environment's name.
    pub environment: String,
    /// How long the access lasts once approved; at most the environment's maximum.
    pub duration_seconds: Option<i64>,
    /// An upstream role the environment offers; its own user when absent.
    pub role: Option<String>,
    /// Why, for the approver (required).
    pub reason: Option<String>,
}

/// An environment that takes access requests, as the caller may ask for it.
#[derive(Serialize, ToSchema)]
pub struct RequestableEnvironment {
    pub name: String,
    pub tier: Tier,
    pub description: Option<String>,
    pub max_duration_seconds: u64,
    /// Upstream roles a request may name.
    pub roles: Vec<String>,
    /// Whether the caller may approve their own request here (break-glass).
    pub break_glass: bool,
    pub break_glass_max_seconds: u64,
    /// Whether the caller can connect already (a grant, or an approved request in force).
    pub reachable: bool,
}

#[derive(Serialize, ToSchema)]
pub struct RequestableList {
    pub items: Vec<RequestableEnvironment>,
}

/// Ask for access to an environment for a while. The environment's approvers decide it in the
/// approvals inbox; approved, the caller alone may connect until it ends. 400 names the field
/// at fault (`environment`, `duration_seconds`, `role`, `reason`).
#[utoipa::path(
    post, operation_id = "request_access", path = "/api/v1/access-requests", request_body = AccessRequestBody,
    responses((status = 202, body = ApprovalRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn create(
    State(gw): State<Arc<Gateway>>,
    caller: Caller,
    Json(body): Json<AccessRequestBody>,
) -> Result<(StatusCode, Json<ApprovalRecord>), ApiError> {
    let ask = AccessAsk {
        environment: body.environment,
        duration_seconds: body.duration_seconds,
        role: body.role.filter(|r| !r.is_empty()),
        reason: body.reason,
    };
    let record = access::request(&gw, &caller.identity, ask)
        .await
        .map_err(|e| match e {
            RequestError::Invalid(i) => ApiError::BadRequest(i.to_string()),
            RequestError::Store(s) => s.into(),
        })?;
    Ok((StatusCode::ACCEPTED, Json(record)))
}

/// The caller's own access requests, newest first (the last 500).
#[utoipa::path(
    get, operation_id = "list_my_access_requests", path = "/api/v1/access-requests",
    responses((status = 200, body = ApprovalList), (status = 401, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn mine(
    State(gw): State<Arc<Gateway>>,
    caller: Caller,
) -> Result<Json<ApprovalList>, ApiError> {
    let items = gw
        .approvals
        .of(&caller.identity.name, ACCESS_REQUEST_RULE, 500)
        .await?;
    Ok(Json(ApprovalList { items }))
}

/// The environments that take access requests, with their limits and whether the caller can
/// connect already.
#[utoipa::path(
    get, operation_id = "list_requestable_environments", path = "/api/v1/access-requests/environments",
    responses((status = 200, body = RequestableList), (status = 401, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn environments(State(gw): State<Arc<Gateway>>, caller: Caller) -> Json<RequestableList> {
    let who = &caller.identity;
    let items = gw
        .environments
        .values()
        .filter_map(|e| {
            let a = e.access_requests.as_ref()?;
            Some(RequestableEnvironment {
                name: e.name.clone(),
                tier: e.tier,
                description: e.description.clone(),
                max_duration_seconds: a.max_duration_seconds,
                roles: a.roles.clone(),
                break_glass: who.in_any_group(&a.break_glass_groups),
                break_glass_max_seconds: a.break_glass_max(),
                reachable: gw.grants.allows(who, &e.name),
            })
        })
        .collect();
    Json(RequestableList { items })
}

/// Withdraw one's own pending access request.
#[utoipa::path(
    post, operation_id = "withdraw_access_request", path = "/api/v1/access-requests/{id}/withdraw", params(("id" = String, Path)),
    request_body = DecisionRequest,
    responses((status = 200, body = ApprovalRecord), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn withdraw(
    State(gw): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<Json<DecisionRequest>>,
) -> Result<Json<ApprovalRecord>, ApiError> {
    let current = visible_approval(&gw, &caller.identity, &id).await?;
    if current.kind != ApprovalKind::Access {
        return Err(ApiError::NotFound(format!("no access request {id}")));
    }
    let reason = body
        .and_then(|b| b.0.reason)
        .filter(|r| !r.trim().is_empty());
    access::withdraw(&gw, &caller.identity, &current, reason)
        .await
        .map(Json)
        .map_err(decide_error)
}
