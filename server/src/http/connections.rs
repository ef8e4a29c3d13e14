//! `/api/v1/connections`: the live view of open database connections, and terminating one.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Admin, Caller};
use super::error::{ApiError, ErrorBody};
use crate::audit::{AuditRecord, Pending};
use crate::gateway::Gateway;
use crate::pg::connections::{ConnectionInfo, Termination};
use crate::pg::error::SqlState;

#[derive(Serialize, ToSchema)]
pub struct ConnectionList {
    pub items: Vec<ConnectionInfo>,
}

/// Open connections: all of them for administrators, one's own for everyone else.
#[utoipa::path(
    get, operation_id = "list_connections", path = "/api/v1/connections",
    responses((status = 200, body = ConnectionList), (status = 401, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn list(State(gw): State<Arc<Gateway>>, caller: Caller) -> Json<ConnectionList> {
    let admin = gw.is_admin(&caller.identity);
    let items = gw
        .connections
        .list()
        .into_iter()
        .filter(|c| admin || c.identity == caller.identity.name)
        .collect();
    Json(ConnectionList { items })
}

#[derive(Deserialize, ToSchema, Default)]
pub struct TerminateRequest {
    /// Told to the client in its error message, and recorded.
    pub reason: Option<String>,
}

/// End an open connection (administrators). The client gets `57P01` with the reason.
#[utoipa::path(
    post, path = "/api/v1/connections/{id}/terminate", params(("id" = String, Path)), request_body = TerminateRequest,
    responses((status = 204), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn terminate(
    State(gw): State<Arc<Gateway>>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    body: Option<Json<TerminateRequest>>,
) -> Result<StatusCode, ApiError> {
    let reason = body
        .and_then(|b| b.0.reason)
        .filter(|r| !r.trim().is_empty());
    let target = gw
        .connections
        .list()
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no open connection {id}")))?;
    let message = match &reason {
        Some(r) => format!(
            "connection terminated by administrator {}: {r}",
            admin.identity.name
        ),
        None => format!(
            "connection terminated by administrator {}",
            admin.identity.name
        ),
    };
    let record = AuditRecord::new("admin.connection.terminate")
        .by(&admin.identity)
        .details(serde_json::json!({
            "connection_id": target.id,
            "connection_identity": target.identity,
            "environment": target.environment,
            "reason": reason,
        }));
    gw.audit.record(Pending::Record(Box::new(record))).await;
    gw.connections.terminate(
        &id,
        Termination {
            code: SqlState::AdminShutdown,
            message,
        },
    );
    Ok(StatusCode::NO_CONTENT)
}
