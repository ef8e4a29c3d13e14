//! Administration under `/api/v1`: sessions, grants and service accounts. Every handler takes
//! an [`Admin`] (an identity in `server.admin_groups`) and logs what it changed, by whom.
//!
//! Revoking a session or a service account also closes its open database connections: the
//! client receives a FATAL `57P01` naming the reason. So does taking access away (deleting a
//! grant here, removing a group member in `groups.rs`): every open connection it could affect
//! is asked again against the grants as they are now, and those without access end
//! (`pg::access`; a grant's expiry takes the same path from the gateway's sweep).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::api::{end_session_connections, rfc3339};
use super::auth::Admin;
use super::error::{ApiError, ErrorBody};
use crate::gateway::Gateway;
use crate::identity::{
    GrantError, GrantView, IdentityKind, ManageError, NewGrant, NewServiceAccount,
    ServiceAccountView,
};
use crate::pg::access::{end_connections_without_access, Cause};
use crate::pg::connections::Termination;
use crate::store::{Change, ServiceAccountRecord};

// ---- sessions ------------------------------------------------------------------------------

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    /// Only this identity's sessions.
    pub identity: Option<String>,
    /// Include revoked and expired sessions (default: only usable ones).
    #[serde(default)]
    pub all: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SessionItem {
    pub id: String,
    pub identity: String,
    pub kind: IdentityKind,
    pub groups: Vec<String>,
    /// `password` (local user) or `oidc`.
    pub method: String,
    pub created_at: String,
    /// When the access token expires.
    pub expires_at: String,
    pub refresh_expires_at: Option<String>,
    pub revoked_at: Option<String>,
    /// Open database connections using this session.
    pub connections: usize,
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub items: Vec<SessionItem>,
}

/// List gateway sessions (admin).
#[utoipa::path(
    get, path = "/api/v1/sessions", params(SessionQuery),
    responses((status = 200, body = SessionList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_sessions(
    State(gw): State<Arc<Gateway>>,
    _admin: Admin,
    Query(q): Query<SessionQuery>,
) -> Result<Json<SessionList>, ApiError> {
    let conns = gw.connections.list();
    let items = gw
        .auth
        .list_sessions(q.identity, q.all)
        .await?
        .into_iter()
        .map(|s| {
            let r = s.record;
            SessionItem {
                connections: conns
                    .iter()
                    .filter(|c| c.session_id.as_deref() == Some(r.id.as_str()))
                    .count(),
                id: r.id,
                identity: r.identity,
                kind: IdentityKind::parse(&r.kind),
                groups: r.groups,
                method: r.method,
                created_at: rfc3339(r.created_at),
                expires_at: rfc3339(r.expires_at),
                refresh_expires_at: r.refresh_expires_at.map(rfc3339),
                revoked_at: s.revoked_at.map(rfc3339),
            }
        })
        .collect();
    Ok(Json(SessionList { items }))
}

/// Revoke a session (admin): its tokens stop working and its database connections close.
#[utoipa::path(
    delete, path = "/api/v1/sessions/{id}", params(("id" = String, Path, description = "session id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn revoke_session(
    State(gw): State<Arc<Gateway>>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !gw.auth.revoke_session_id(&id).await? {
        return Err(ApiError::NotFound(format!(
            "no active session with id `{id}`"
        )));
    }
    let why = format!(
        "the session was revoked by administrator \"{}\"; log in again to reconnect",
        admin.identity.name
    );
    gw.store.announce(Change::SessionEnded {
        id: id.clone(),
        why: why.clone(),
    });
    let closed = end_session_connections(
        &gw,
        &id,
        &format!(
            "the session was revoked by administrator \"{}\"; log in again to reconnect",
            admin.identity.name
        ),
    );
    tracing::info!(actor = %admin.identity.name, action = "session.revoke", session = %id, connections = closed, "admin action");
    record_admin_action(
        &gw,
        &admin.identity,
        "session.revoke",
        serde_json::json!({"session_id": id, "connections_closed": closed}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

// ---- grants --------------------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
pub struct GrantItem {
    /// `config:N` for grants from the config file (read-only), otherwise an API grant's id.
    pub id: String,
    pub groups: Vec<String>,
    /// Environment names; `*` means all.
    pub environments: Vec<String>,
    /// The upstream role connections use under this grant; the environment's user when null.
    pub upstream_role: Option<String>,
    /// `config` or `api`.
    pub source: String,
    pub created_by: Option<String>,
    pub created_at: Option<String>,
    /// When the grant stops letting anyone in (RFC 3339); null when it never expires. An
    /// expired grant is deleted within seconds and its connections end.
    pub expires_at: Option<String>,
    /// For a grant made by approving an access request: the one identity it lets in (its
    /// `groups` are empty).
    pub identity: Option<String>,
    /// The access request it came from.
    pub approval_id: Option<String>,
    /// Approved by its requester under break-glass.
    pub break_glass: bool,
}

impl From<GrantView> for GrantItem {
    fn from(g: GrantView) -> Self {
        GrantItem {
            id: g.id,
            groups: g.groups,
            environments: g.environments,
            upstream_role: g.upstream_role,
            source: g.source.into(),
            created_by: g.created_by,
            created_at: g.created_at.map(rfc3339),
            expires_at: g.expires_at.map(rfc3339),
            identity: g.person.map(|p| p.name),
            approval_id: g.approval_id,
            break_glass: g.break_glass,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct GrantList {
    pub items: Vec<GrantItem>,
}

#[derive(Deserialize, ToSchema)]
pub struct GrantRequest {
    pub groups: Vec<String>,
    pub environments: Vec<String>,
    pub upstream_role: Option<String>,
    /// When the grant ends (RFC 3339, in the future); never when absent. Not with
    /// `expires_in_seconds`.
    pub expires_at: Option<String>,
    /// How long the grant lasts from now, in seconds (positive); not with `expires_at`.
    pub expires_in_seconds: Option<i64>,
}

/// Longest `expires_in_seconds` taken: ten years. Longer is a mistake, and `never` exists.
const MAX_GRANT_SECONDS: i64 = 10 * 366 * 24 * 3600;

/// A grant request's expiry as Unix seconds (`None`: never), from one of its two fields;
/// the message names the field at fault.
fn grant_expiry(
    expires_at: Option<&str>,
    expires_in_seconds: Option<i64>,
    now: i64,
) -> Result<Option<i64>, String> {
    match (expires_at, expires_in_seconds) {
        (Some(_), Some(_)) => Err(
            "give either `expires_at` or `expires_in_seconds`, not both".into(),
        ),
        (None, None) => Ok(None),
        (None, Some(s)) if s <= 0 => Err(format!(
            "`expires_in_seconds` must be a positive number of seconds (got {s})"
        )),
        (None, Some(s)) if s > MAX_GRANT_SECONDS => Err(format!(
            "`expires_in_seconds` must be at most {MAX_GRANT_SECONDS} (ten years); omit it for a grant that never expires"
        )),
        (None, Some(s)) => Ok(Some(now + s)),
        (Some(t), None) => {
            let at = expires_at_unix(t)?;
            if at <= now {
                return Err(format!(
                    "`expires_at` must be in the future (it is {t}, and now is {})",
                    rfc3339(now)
                ));
            }
            Ok(Some(at))
        }
    }
}

fn grant_error(e: GrantError) -> ApiError {
    match e {
        GrantError::Invalid(m) => ApiError::BadRequest(m),
        e @ GrantError::NotFound(_) => ApiError::NotFound(e.to_string()),
        GrantError::Store(e) => e.into(),
    }
}

/// List grants, from the config and the API (admin).
#[utoipa::path(
    get, path = "/api/v1/grants",
    responses((status = 200, body = GrantList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_grants(State(gw): State<Arc<Gateway>>, _admin: Admin) -> Json<GrantList> {
    Json(GrantList {
        items: gw.grants.list().into_iter().map(GrantItem::from).collect(),
    })
}

/// Grant groups access to environments, optionally as a given upstream role and until a given
/// time (admin). Takes effect for new connections at once. When it expires it lets nobody in,
/// is deleted within seconds (`admin.grant.expired` in the audit) and the open connections no
/// other grant covers end with `57P01`.
#[utoipa::path(
    post, path = "/api/v1/grants", request_body = GrantRequest,
    responses((status = 201, body = GrantItem), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn create_grant(
    State(gw): State<Arc<Gateway>>,
    Admin(admin): Admin,
    Json(req): Json<GrantRequest>,
) -> Result<(StatusCode, Json<GrantItem>), ApiError> {
    let now = crate::identity::now();
    let expires_at = grant_expiry(req.expires_at.as_deref(), req.expires_in_seconds, now)
        .map_err(ApiError::BadRequest)?;
    let g = gw
        .grants
        .add(
            &gw.store,
            NewGrant {
                groups: req.groups,
                environments: req.environments,
                upstream_role: req.upstream_role,
                expires_at,
            },
            |e| gw.environments.contains_key(e),
            &admin.identity.name,
            now,
        )
        .await
        .map_err(grant_error)?;
    gw.store.announce(Change::Grants {
        by: Some(admin.identity.name.clone()),
    });
    let expires_at = g.expires_at.map(rfc3339);
    tracing::info!(actor = %admin.identity.name, action = "grant.create", grant = %g.id, groups = ?g.groups, environments = ?g.environments, upstream_role = ?g.upstream_role, expires_at = ?expires_at, "admin action");
    record_admin_action(&gw, &admin.identity, "grant.create", serde_json::json!({"grant_id": g.id, "groups": g.groups, "environments": g.environments, "upstream_role": g.upstream_role, "expires_at": expires_at})).await;
    Ok((StatusCode::CREATED, Json(g.into())))
}

/// Remove an API-managed grant (admin). New connections it let in are refused, and open ones
/// that no other grant covers end with `57P01` ("access to environment … was revoked"), as do
/// those another grant now gives a different upstream role.
#[utoipa::path(
    delete, path = "/api/v1/grants/{id}", params(("id" = String, Path, description = "grant id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn delete_grant(
    State(gw): State<Arc<Gateway>>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    gw.grants
        .remove(&gw.store, &id)
        .await
        .map_err(grant_error)?;
    gw.store.announce(Change::Grants {
        by: Some(admin.identity.name.clone()),
    });
    // Any connection may have come in through this grant: ask about all of them.
    let closed =
        end_connections_without_access(&gw, &Cause::Admin(Some(&admin.identity.name)), |_| true);
    tracing::info!(actor = %admin.identity.name, action = "grant.delete", grant = %id, connections = closed, "admin action");
    record_admin_action(
        &gw,
        &admin.identity,
        "grant.delete",
        serde_json::json!({"grant_id": id, "connections_closed": closed}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

// ---- service accounts ----------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
pub struct ServiceAccountItem {
    /// `config:NAME` for accounts from the config file (read-only).
    pub id: String,
    pub name: String,
    pub kind: IdentityKind,
    pub groups: Vec<String>,
    /// For agents: the person they act for.
    pub on_behalf_of: Option<String>,
    pub description: Option<String>,
    /// `config` or `api`.
    pub source: String,
    pub created_by: String,
    pub created_at: Option<String>,
    pub rotated_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

fn item(r: ServiceAccountRecord, source: &str) -> ServiceAccountItem {
    ServiceAccountItem {
        id: r.id,
        name: r.name,
        kind: IdentityKind::parse(&r.kind),
        groups: r.groups,
        on_behalf_of: r.on_behalf_of,
        description: r.description,
        source: source.into(),
        created_by: r.created_by,
        created_at: (r.created_at > 0).then(|| rfc3339(r.created_at)),
        rotated_at: r.rotated_at.map(rfc3339),
        expires_at: r.expires_at.map(rfc3339),
        revoked_at: r.revoked_at.map(rfc3339),
    }
}

#[derive(Serialize, ToSchema)]
pub struct ServiceAccountList {
    pub items: Vec<ServiceAccountItem>,
}

#[derive(Deserialize, ToSchema)]
pub struct ServiceAccountRequest {
    pub name: String,
    /// `agent` (default) or `human`.
    pub kind: Option<IdentityKind>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// For agents: the person the agent acts for.
    pub on_behalf_of: Option<String>,
    pub description: Option<String>,
    /// RFC 3339 time after which the token is refused; never when absent.
    pub expires_at: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct RotateRequest {
    /// A new expiry (RFC 3339); the old one stays when absent.
    pub expires_at: Option<String>,
}

/// A service account and its token. The token is shown only in this answer.
#[derive(Serialize, ToSchema)]
pub struct ServiceAccountCreated {
    pub service_account: ServiceAccountItem,
    pub token: String,
}

fn parse_time(s: Option<String>) -> Result<Option<i64>, ApiError> {
    s.map(|t| expires_at_unix(&t).map_err(ApiError::BadRequest))
        .transpose()
}

/// A request's `expires_at` (RFC 3339) as Unix seconds; the message names the field.
fn expires_at_unix(t: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp())
        .map_err(|e| format!("`expires_at` is not an RFC 3339 time: {e}"))
}

fn manage_error(e: ManageError) -> ApiError {
    match e {
        e @ ManageError::NameTaken(_) => ApiError::Conflict(e.to_string()),
        e @ ManageError::NotFound(_) => ApiError::NotFound(e.to_string()),
        ManageError::Invalid(m) => ApiError::BadRequest(m),
        ManageError::Store(e) => e.into(),
    }
}

/// Ends the account's connections here and, through the shared store, on every replica.
fn end_account_connections(gw: &Gateway, name: &str, why: String) -> usize {
    gw.store.announce(Change::AccountEnded {
        name: name.to_string(),
        why: why.clone(),
    });
    gw.connections.terminate_where(
        |c| c.identity == name && c.session_id.is_none(),
        Termination {
            code: crate::pg::error::SqlState::AdminShutdown,
            message: why,
        },
    )
}

/// List service accounts, from the config and the API (admin). Tokens are never listed.
#[utoipa::path(
    get, path = "/api/v1/service-accounts",
    responses((status = 200, body = ServiceAccountList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_service_accounts(
    State(gw): State<Arc<Gateway>>,
    _admin: Admin,
) -> Result<Json<ServiceAccountList>, ApiError> {
    let items = gw
        .auth
        .list_service_accounts()
        .await?
        .into_iter()
        .map(|ServiceAccountView { record, source }| item(record, source))
        .collect();
    Ok(Json(ServiceAccountList { items }))
}

/// Create a service account (admin); the answer holds its token, shown this once.
#[utoipa::path(
    post, path = "/api/v1/service-accounts", request_body = ServiceAccountRequest,
    responses((status = 201, body = ServiceAccountCreated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn create_service_account(
    State(gw): State<Arc<Gateway>>,
    Admin(admin): Admin,
    Json(req): Json<ServiceAccountRequest>,
) -> Result<(StatusCode, Json<ServiceAccountCreated>), ApiError> {
    let expires_at = parse_time(req.expires_at)?;
    let (record, token) = gw
        .auth
        .create_service_account(
            NewServiceAccount {
                name: req.name,
                kind: req.kind.unwrap_or(IdentityKind::Agent),
                groups: req.groups,
                on_behalf_of: req.on_behalf_of.filter(|s| !s.is_empty()),
                description: req.description,
                expires_at,
            },
            &admin.identity.name,
        )
        .await
        .map_err(manage_error)?;
    tracing::info!(actor = %admin.identity.name, action = "service_account.create", account = %record.name, id = %record.id, kind = %record.kind, groups = ?record.groups, on_behalf_of = ?record.on_behalf_of, "admin action");
    record_admin_action(&gw, &admin.identity, "service_account.create", serde_json::json!({"account": record.name, "id": record.id, "kind": record.kind, "groups": record.groups, "on_behalf_of": record.on_behalf_of})).await;
    Ok((
        StatusCode::CREATED,
        Json(ServiceAccountCreated {
            service_account: item(record, "api"),
            token,
        }),
    ))
}

/// Give a service account a new token (admin). The old token stops working and the
/// connections opened with it close.
#[utoipa::path(
    post, path = "/api/v1/service-accounts/{id}/rotate", params(("id" = String, Path, description = "service account id")),
    request_body(content = RotateRequest, description = "optional"),
    responses((status = 200, body = ServiceAccountCreated), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn rotate_service_account(
    State(gw): State<Arc<Gateway>>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    body: Option<Json<RotateRequest>>,
) -> Result<Json<ServiceAccountCreated>, ApiError> {
    let req = body.map(|Json(r)| r).unwrap_or_default();
    let (record, token) = gw
        .auth
        .rotate_service_account(&id, parse_time(req.expires_at)?)
        .await
        .map_err(manage_error)?;
    let closed = end_account_connections(
        &gw,
        &record.name,
        format!(
            "the token of service account \"{}\" was rotated by administrator \"{}\"; reconnect with the new token",
            record.name, admin.identity.name
        ),
    );
    tracing::info!(actor = %admin.identity.name, action = "service_account.rotate", account = %record.name, id = %record.id, connections = closed, "admin action");
    record_admin_action(
        &gw,
        &admin.identity,
        "service_account.rotate",
        serde_json::json!({"account": record.name, "id": record.id, "connections_closed": closed}),
    )
    .await;
    Ok(Json(ServiceAccountCreated {
        service_account: item(record, "api"),
        token,
    }))
}

/// Revoke a service account (admin): its token stops working and its connections close.
#[utoipa::path(
    delete, path = "/api/v1/service-accounts/{id}", params(("id" = String, Path, description = "service account id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn revoke_service_account(
    State(gw): State<Arc<Gateway>>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let record = gw
        .auth
        .revoke_service_account(&id)
        .await
        .map_err(manage_error)?;
    let closed = end_account_connections(
        &gw,
        &record.name,
        format!(
            "service account \"{}\" was revoked by administrator \"{}\"",
            record.name, admin.identity.name
        ),
    );
    tracing::info!(actor = %admin.identity.name, action = "service_account.revoke", account = %record.name, id = %record.id, connections = closed, "admin action");
    record_admin_action(
        &gw,
        &admin.identity,
        "service_account.revoke",
        serde_json::json!({"account": record.name, "id": record.id, "connections_closed": closed}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Puts an administrator's change into the audit chain as `admin.<action>`.
pub(super) async fn record_admin_action(
    gw: &Gateway,
    admin: &crate::identity::Identity,
    action: &str,
    details: serde_json::Value,
) {
    let r = crate::audit::AuditRecord::new(format!("admin.{action}"))
        .by(admin)
        .details(details);
    gw.audit
        .record(crate::audit::Pending::Record(Box::new(r)))
        .await;
}

#[cfg(test)]
mod tests {
    use super::grant_expiry;

    const NOW: i64 = 1_800_000_000; // 2027-01-15T08:00:00Z

    #[test]
    fn a_grant_expiry_comes_from_one_field_and_lies_ahead() {
        assert_eq!(grant_expiry(None, None, NOW), Ok(None));
        assert_eq!(grant_expiry(None, Some(3), NOW), Ok(Some(NOW + 3)));
        assert_eq!(
            grant_expiry(Some("2027-01-15T10:00:00+02:00"), None, NOW - 1),
            Ok(Some(NOW))
        );
        for (at, secs, field) in [
            (None, Some(-5), "`expires_in_seconds`"),
            (None, Some(0), "`expires_in_seconds`"),
            (None, Some(i64::MAX), "`expires_in_seconds`"),
            (
                Some("2027-01-15T08:00:00Z"),
                None,
                "`expires_at` must be in the future",
            ),
            (
                Some("tomorrow"),
                None,
                "`expires_at` is not an RFC 3339 time",
            ),
            (Some("2030-01-01T00:00:00Z"), Some(60), "not both"),
        ] {
            let e = grant_expiry(at, secs, NOW).expect_err("refused");
            assert!(e.contains(field), "{e}");
        }
    }
}
