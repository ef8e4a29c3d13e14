//! Group memberships under `/api/v1/groups` (admin): who is in which group beyond what the IdP
//! and the config say. A membership added here reaches grants, rules and approver lists at the
//! member's next connection or request; a membership removed also ends the member's open
//! connections that no longer have a grant. Every change is in the audit trail.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin::record_admin_action;
use super::api::rfc3339;
use super::auth::Admin;
use super::error::{ApiError, ErrorBody};
use crate::gateway::Gateway;
use crate::identity::{now, GroupError, GroupView};
use crate::pg::access::{end_connections_without_access, Cause};
use crate::store::Change;

#[derive(Serialize, ToSchema)]
pub struct MemberItem {
    pub member: String,
    /// `config` (change it in the config file) or `api`.
    pub source: String,
    pub added_at: Option<String>,
    pub added_by: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct GroupItem {
    /// The group's name, which is also how it is addressed.
    pub id: String,
    pub name: String,
    pub members: Vec<MemberItem>,
}

impl From<GroupView> for GroupItem {
    fn from(g: GroupView) -> Self {
        GroupItem {
            id: g.name.clone(),
            name: g.name,
            members: g
                .members
                .into_iter()
                .map(|m| MemberItem {
                    member: m.member,
                    source: m.source.into(),
                    added_at: m.added_at.map(rfc3339),
                    added_by: m.added_by,
                })
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct GroupList {
    pub items: Vec<GroupItem>,
}

#[derive(Deserialize, ToSchema)]
pub struct MemberRequest {
    /// The identity's name: an SSO user's name claim, a local user or a service account.
    pub member: String,
}

#[derive(Serialize, ToSchema)]
pub struct MembershipItem {
    pub group: String,
    pub member: String,
    /// False when the identity was already an API-managed member.
    pub added: bool,
}

fn group_error(e: GroupError) -> ApiError {
    match e {
        GroupError::Invalid(m) => ApiError::BadRequest(m),
        e @ GroupError::NotFound { .. } => ApiError::NotFound(e.to_string()),
        GroupError::Store(e) => e.into(),
    }
}

/// List groups and their members, from the config and the API (admin). Groups an IdP sends in
/// its claim are not listed: the gateway learns them only when their members log in.
#[utoipa::path(
    get, operation_id = "list_groups", path = "/api/v1/groups",
    responses((status = 200, body = GroupList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(State(gw): State<Arc<Gateway>>, _admin: Admin) -> Json<GroupList> {
    Json(GroupList {
        items: gw
            .auth
            .groups()
            .list()
            .into_iter()
            .map(GroupItem::from)
            .collect(),
    })
}

/// Add an identity to a group (admin). Applies to its next connection or request.
#[utoipa::path(
    post, path = "/api/v1/groups/{name}/members", request_body = MemberRequest,
    params(("name" = String, Path, description = "group name")),
    responses((status = 201, body = MembershipItem), (status = 200, body = MembershipItem),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn add_member(
    State(gw): State<Arc<Gateway>>,
    Admin(admin): Admin,
    Path(group): Path<String>,
    Json(req): Json<MemberRequest>,
) -> Result<(StatusCode, Json<MembershipItem>), ApiError> {
    let added = gw
        .auth
        .groups()
        .add(&gw.store, &group, &req.member, &admin.identity.name, now())
        .await
        .map_err(group_error)?;
    gw.store.announce(Change::Groups {
        by: Some(admin.identity.name.clone()),
    });
    if added {
        tracing::info!(actor = %admin.identity.name, action = "group.add_member", group = %group, member = %req.member, "admin action");
        record_admin_action(
            &gw,
            &admin.identity,
            "group.add_member",
            serde_json::json!({"group": group, "member": req.member}),
        )
        .await;
    }
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(MembershipItem {
            group,
            member: req.member,
            added,
        }),
    ))
}

/// Remove an API-managed membership (admin). New connections and requests no longer carry the
/// group; the member's open connections that no other grant or group covers end with `57P01`
/// ("access to environment … was revoked").
#[utoipa::path(
    delete, path = "/api/v1/groups/{name}/members/{member}",
    params(("name" = String, Path, description = "group name"), ("member" = String, Path, description = "identity name")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn remove_member(
    State(gw): State<Arc<Gateway>>,
    Admin(admin): Admin,
    Path((group, member)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    gw.auth
        .groups()
        .remove(&gw.store, &group, &member)
        .await
        .map_err(group_error)?;
    gw.store.announce(Change::Groups {
        by: Some(admin.identity.name.clone()),
    });
    // Only the member's own connections can have changed.
    let closed =
        end_connections_without_access(&gw, &Cause::Admin(Some(&admin.identity.name)), |c| {
            c.identity == member
        });
    tracing::info!(actor = %admin.identity.name, action = "group.remove_member", group = %group, member = %member, connections = closed, "admin action");
    record_admin_action(
        &gw,
        &admin.identity,
        "group.remove_member",
        serde_json::json!({"group": group, "member": member, "connections_closed": closed}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
