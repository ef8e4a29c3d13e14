//! `/api/v1/audit`: search the trail with filters and a cursor, and export it as JSON Lines or
//! CSV (streamed, oldest first).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Admin;
use super::error::{ApiError, ErrorBody};
use crate::gateway::Gateway;
use crate::store::{AuditFilter, StoredRecord};

#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Free text, matched anywhere in a record (statement text, identity, error…).
    pub q: Option<String>,
    pub identity: Option<String>,
    pub environment: Option<String>,
    /// Exact event (`statement`), or a prefix ending in a dot (`admin.`).
    pub event: Option<String>,
    /// One connection's records (its timeline).
    pub connection: Option<String>,
    /// RFC 3339 lower bound (inclusive).
    pub from: Option<String>,
    /// RFC 3339 upper bound (exclusive).
    pub to: Option<String>,
    pub decision: Option<String>,
    /// Statement kind, e.g. `DELETE`.
    pub kind: Option<String>,
    pub table: Option<String>,
    /// One replica's records (several replicas sharing a store).
    pub replica: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
}

impl AuditQuery {
    fn filter(&self) -> AuditFilter {
        AuditFilter {
            identity: self.identity.clone(),
            environment: self.environment.clone(),
            event: self.event.clone(),
            connection_id: self.connection.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            decision: self.decision.clone(),
            statement_kind: self.kind.clone(),
            table: self.table.clone(),
            text: self.q.clone().filter(|q| !q.is_empty()),
            replica: self.replica.clone(),
            before_id: self.cursor,
            after_id: None,
            ascending: false,
            commit_order: false,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// Records, newest first; each is an audit record plus its `id` (the cursor: its sequence
    /// number, or its row in a shared store, where `replica` and `seq` place it in its chain)
    /// and `hash`.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<serde_json::Value>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<i64>,
}

fn item(r: &StoredRecord) -> serde_json::Value {
    crate::audit::sinks::item(r)
}

/// Read your writes: records queued before a search are in it. While the trail cannot be
/// written (or is slow to), search what is there rather than hang; the failure shows in
/// `/healthz` and on every statement.
async fn caught_up(gw: &Gateway) {
    if !gw.audit.healthy() {
        return;
    }
    match tokio::time::timeout(std::time::Duration::from_secs(2), gw.audit.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "searching the audit trail while it cannot be written")
        }
        Err(_) => tracing::warn!("searching the audit trail before the writer caught up"),
    }
}

async fn search(
    gw: &Gateway,
    filter: AuditFilter,
    limit: usize,
) -> Result<Vec<StoredRecord>, ApiError> {
    caught_up(gw).await;
    gw.audit
        .trail()
        .search(filter, limit)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Search the audit trail (administrators).
#[utoipa::path(
    get, operation_id = "list_audit", path = "/api/v1/audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    State(gw): State<Arc<Gateway>>,
    _admin: Admin,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = search(&gw, q.filter(), limit + 1).await?;
    let more = rows.len() > limit;
    let items: Vec<_> = rows.iter().take(limit).map(item).collect();
    let next_cursor = if more {
        rows.get(limit - 1).map(|r| r.id)
    } else {
        None
    };
    Ok(Json(AuditPage { items, next_cursor }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ExportFormat {
    /// `jsonl` (default) or `csv`.
    pub format: Option<String>,
}

const CSV_COLUMNS: &[&str] = &[
    "id",
    "ts",
    "event",
    "identity",
    "identity_kind",
    "on_behalf_of",
    "environment",
    "database",
    "client_addr",
    "application_name",
    "connection_id",
    "via",
    "statement",
    "fingerprint",
    "decision",
    "rule",
    "approval_id",
    "rows",
    "duration_ms",
    "sqlstate",
    "error",
    "replica",
    "hash",
];

fn csv_line(r: &StoredRecord) -> Vec<u8> {
    let v = item(r);
    let field = |k: &str| match v.get(k) {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(CSV_COLUMNS.iter().map(|c| field(c)));
    w.into_inner().unwrap_or_default()
}

/// Export matching records, oldest first, as JSON Lines or CSV (administrators). Streams.
#[utoipa::path(
    get, path = "/api/v1/audit/export", params(ExportFormat, AuditQuery),
    responses((status = 200, description = "application/x-ndjson or text/csv"), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn export(
    State(gw): State<Arc<Gateway>>,
    _admin: Admin,
    Query(format): Query<ExportFormat>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let csv = match format.format.as_deref() {
        None | Some("jsonl") | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "unknown format `{other}`: use jsonl or csv"
            )))
        }
    };
    let mut filter = q.filter();
    filter.ascending = true;
    filter.before_id = None;
    caught_up(&gw).await;
    let trail = gw.audit.trail().clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(8);
    tokio::spawn(async move {
        if csv {
            let mut w = csv::Writer::from_writer(Vec::new());
            let _ = w.write_record(CSV_COLUMNS);
            if tx
                .send(Ok(w.into_inner().unwrap_or_default()))
                .await
                .is_err()
            {
                return;
            }
        }
        loop {
            let page = match trail.search(filter.clone(), 1000).await {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            let Some(last) = page.last() else { return };
            filter.after_id = Some(last.id);
            let mut chunk = Vec::new();
            for r in &page {
                if csv {
                    chunk.extend(csv_line(r));
                } else {
                    chunk.extend(crate::audit::sinks::line(r));
                }
            }
            if tx.send(Ok(chunk)).await.is_err() {
                return;
            }
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let content_type = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    let filename = if csv { "audit.csv" } else { "audit.jsonl" };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
