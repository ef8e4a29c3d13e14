//! The HTTP listener: the JSON API under `/api/v1` (described by an OpenAPI document), single
//! sign-on under `/auth/oidc`, the MCP server for agents at `/mcp`, health, and the web console
//! at `/` (every other path).
//!
//! Architecture invariant: handlers are thin; they authenticate the caller, call the identity,
//! policy (and later approval) modules, and map errors to HTTP statuses in `error.rs`.

mod access;
mod admin;
mod api;
mod approvals;
mod audit;
mod auth;
mod channel;
mod connections;
mod console;
mod error;
mod events;
mod groups;
mod masking;
mod mcp;
pub mod metrics;
mod oidc;
mod openapi;
mod policy;
mod redirect;
mod unread_body;

use std::sync::Arc;

use axum::routing::{delete, get, post, put};
use axum::Router;
use tokio::net::TcpListener;

use crate::gateway::Gateway;

pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/info", get(api::info))
        .route("/api/v1/auth/login", post(api::login))
        .route("/api/v1/auth/logout", post(api::logout))
        .route("/api/v1/auth/refresh", post(api::refresh))
        .route("/api/v1/auth/token", post(oidc::token))
        .route("/auth/oidc/start", get(oidc::start))
        .route("/auth/oidc/callback", get(oidc::callback))
        .route("/api/v1/sessions", get(admin::list_sessions))
        .route("/api/v1/sessions/{id}", delete(admin::revoke_session))
        .route(
            "/api/v1/grants",
            get(admin::list_grants).post(admin::create_grant),
        )
        .route("/api/v1/grants/{id}", delete(admin::delete_grant))
        .route("/api/v1/groups", get(groups::list))
        .route("/api/v1/groups/{name}/members", post(groups::add_member))
        .route(
            "/api/v1/groups/{name}/members/{member}",
            delete(groups::remove_member),
        )
        .route(
            "/api/v1/service-accounts",
            get(admin::list_service_accounts).post(admin::create_service_account),
        )
        .route(
            "/api/v1/service-accounts/{id}",
            delete(admin::revoke_service_account),
        )
        .route(
            "/api/v1/service-accounts/{id}/rotate",
            post(admin::rotate_service_account),
        )
        .route(
            "/api/v1/rules",
            get(policy::list_rules).post(policy::create_rule),
        )
        .route("/api/v1/rules/versions", get(policy::list_versions))
        .route(
            "/api/v1/rules/{id}",
            put(policy::update_rule).delete(policy::delete_rule),
        )
        .route("/api/v1/policy/dry-run", post(policy::dry_run))
        .route("/api/v1/environments", get(api::environments))
        .route("/api/v1/whoami", get(api::whoami))
        .route(
            "/api/v1/access-requests",
            get(access::mine).post(access::create),
        )
        .route(
            "/api/v1/access-requests/environments",
            get(access::environments),
        )
        .route(
            "/api/v1/access-requests/{id}/withdraw",
            post(access::withdraw),
        )
        .route("/api/v1/approvals", get(approvals::list))
        .route("/api/v1/approvals/{id}", get(approvals::get))
        .route("/api/v1/approvals/{id}/approve", post(approvals::approve))
        .route("/api/v1/approvals/{id}/deny", post(approvals::deny))
        .route("/events", get(events::stream))
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/audit/export", get(audit::export))
        .route("/api/v1/connections", get(connections::list))
        .route(
            "/api/v1/connections/{id}/terminate",
            post(connections::terminate),
        )
        .route(
            "/api/v1/environments/{name}/catalog",
            get(masking::get_catalog),
        )
        .route(
            "/api/v1/environments/{name}/catalog/refresh",
            post(masking::refresh_catalog),
        )
        .route(
            "/api/v1/environments/{name}/catalog/columns/{schema}/{table}/{column}",
            put(masking::put_tag).delete(masking::delete_tag),
        )
        .route(
            "/api/v1/exemptions",
            get(masking::list_exemptions).post(masking::create_exemption),
        )
        .route("/api/v1/exemptions/{id}", delete(masking::delete_exemption))
        .route(
            "/api/v1/exemptions/requests",
            post(masking::request_exemption),
        )
        .route("/metrics", get(metrics::render))
        .merge(mcp::routes(gw.clone()))
        .fallback(console::serve)
        .with_state(gw)
        // Outermost, so it sees every body a layer or handler leaves unread.
        .layer(axum::middleware::from_fn(unread_body::settle))
}

/// Serves HTTP until the task is dropped.
pub async fn run(gw: Arc<Gateway>, listener: TcpListener) -> std::io::Result<()> {
    // The peer address reaches handlers (the per-address login limit) as `ConnectInfo`.
    axum::serve(
        listener,
        router(gw).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await
}
