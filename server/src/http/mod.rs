//! The HTTP listener: the JSON API under `/api/v1` (described by an OpenAPI document), health.
//!
//! Architecture invariant: handlers are thin; they authenticate the caller, call the identity
//! (and later policy, approval, audit) modules, and map errors to HTTP statuses in `error.rs`.

mod api;
mod audit;
mod auth;
mod connections;
mod error;
pub mod metrics;
mod openapi;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

use crate::gateway::Gateway;

pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/auth/login", post(api::login))
        .route("/api/v1/auth/logout", post(api::logout))
        .route("/api/v1/environments", get(api::environments))
        .route("/api/v1/whoami", get(api::whoami))
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/audit/export", get(audit::export))
        .route("/api/v1/connections", get(connections::list))
        .route(
            "/api/v1/connections/{id}/terminate",
            post(connections::terminate),
        )
        .route("/metrics", get(metrics::render))
        .fallback(api::not_found)
        .with_state(gw)
}

/// Serves HTTP until the task is dropped.
pub async fn run(gw: Arc<Gateway>, listener: TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router(gw)).await
}
