//! `/api/v1` handlers for authentication and environments, and `/healthz`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use crate::audit::{AuditRecord, Pending};
use crate::config::Tier;
use crate::gateway::Gateway;
use crate::identity::{AuthError, IdentityKind};

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// A session token and when it stops working.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// Bearer token for the API, and the password for database connections.
    pub token: String,
    /// RFC 3339 time after which the token is refused.
    pub expires_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct EnvironmentItem {
    pub name: String,
    pub tier: Tier,
    pub tags: Vec<String>,
    pub description: Option<String>,
    /// The `dbname` to use in a connection string.
    pub dbname: String,
}

#[derive(Serialize, ToSchema)]
pub struct EnvironmentList {
    pub items: Vec<EnvironmentItem>,
}

#[derive(Serialize, ToSchema)]
pub struct WhoAmI {
    pub name: String,
    pub kind: IdentityKind,
    pub groups: Vec<String>,
    pub on_behalf_of: Option<String>,
    pub admin: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// Liveness: answers while the gateway runs.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Log in as a local user; returns a session token.
#[utoipa::path(
    post, path = "/api/v1/auth/login", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody))
)]
pub async fn login(
    State(gw): State<Arc<Gateway>>,
    Json(req): Json<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let gw2 = gw.clone();
    let username = req.username.clone();
    // argon2 is deliberately slow; keep it off the async workers.
    let verified =
        tokio::task::spawn_blocking(move || gw2.auth.verify_password(&req.username, &req.password))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
    let identity = match verified {
        Ok(i) => i,
        Err(AuthError::Store(e)) => return Err(ApiError::Internal(e.to_string())),
        Err(_) => {
            let r = AuditRecord::new("auth.login_failed")
                .details(serde_json::json!({ "claimed_user": username, "method": "password" }));
            gw.audit.record(Pending::Record(Box::new(r))).await;
            return Err(ApiError::Unauthorized(
                "invalid username or password".into(),
            ));
        }
    };
    let issued = gw
        .auth
        .issue_session(&identity)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    tracing::info!(identity = %identity.name, session = %issued.session_id, "login");
    let r = AuditRecord::new("auth.login")
        .by(&identity)
        .details(serde_json::json!({ "method": "password", "session_id": issued.session_id }));
    gw.audit.record(Pending::Record(Box::new(r))).await;
    Ok(Json(TokenResponse {
        token: issued.token,
        expires_at: rfc3339(issued.expires_at),
    }))
}

/// Revoke the caller's own session token.
#[utoipa::path(
    post, path = "/api/v1/auth/logout",
    responses((status = 204), (status = 401, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn logout(
    State(gw): State<Arc<Gateway>>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    if caller.identity.session_id.is_none() {
        return Err(ApiError::BadRequest(
            "service-account tokens are not sessions; an administrator revokes them".into(),
        ));
    }
    gw.auth
        .revoke(&caller.token)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    tracing::info!(identity = %caller.identity.name, "logout");
    let r = AuditRecord::new("auth.logout")
        .by(&caller.identity)
        .details(serde_json::json!({ "session_id": caller.identity.session_id }));
    gw.audit.record(Pending::Record(Box::new(r))).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The environments the caller may connect to.
#[utoipa::path(
    get, path = "/api/v1/environments",
    responses((status = 200, body = EnvironmentList), (status = 401, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn environments(State(gw): State<Arc<Gateway>>, caller: Caller) -> Json<EnvironmentList> {
    let items = gw
        .environments
        .values()
        .filter(|e| gw.grants.allows(&caller.identity, &e.name))
        .map(|e| EnvironmentItem {
            name: e.name.clone(),
            tier: e.tier,
            tags: e.tags.clone(),
            description: e.description.clone(),
            dbname: e.name.clone(),
        })
        .collect();
    Json(EnvironmentList { items })
}

/// Who the token belongs to.
#[utoipa::path(
    get, path = "/api/v1/whoami",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn whoami(State(gw): State<Arc<Gateway>>, caller: Caller) -> Json<WhoAmI> {
    let admin = gw.is_admin(&caller.identity);
    let i = caller.identity;
    Json(WhoAmI {
        name: i.name,
        kind: i.kind,
        groups: i.groups,
        on_behalf_of: i.on_behalf_of,
        admin,
    })
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see /api/v1/openapi.json".into())
}

fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}
