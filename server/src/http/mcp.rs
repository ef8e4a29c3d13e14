//! `/mcp`: the MCP server's place on the HTTP listener. Every request must carry
//! `Authorization: Bearer TOKEN` (a service-account or session token; no cookies, so a web
//! page cannot ride on a console login); the identity, and the person named in
//! `X-Gatehouse-On-Behalf-Of`, go to the tools in the request's extensions.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::error::ApiError;
use crate::gateway::Gateway;
use crate::mcp::{McpCaller, ON_BEHALF_OF_HEADER};

/// Largest MCP request body accepted.
const MAX_BODY: usize = 4 << 20;

/// The `/mcp` routes, or none when `[mcp] enabled = false`.
pub fn routes(gw: Arc<Gateway>) -> Router<Arc<Gateway>> {
    if !gw.config.mcp.enabled {
        return Router::new();
    }
    // The MCP SDK reads a whole request body into memory: bound it (a JSON-RPC message with
    // one statement is far smaller).
    Router::new()
        .nest_service("/mcp", crate::mcp::service(gw.clone()))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(gw, authenticate))
}

async fn authenticate(State(gw): State<Arc<Gateway>>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let Some(token) = token else {
        return ApiError::Unauthorized(
            "the MCP server needs `Authorization: Bearer TOKEN` (a Gatehouse service-account or session token)".into(),
        )
        .into_response();
    };
    let identity = match gw.auth.authenticate_token(&token).await {
        Ok(i) => i,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let on_behalf_of = req
        .headers()
        .get(ON_BEHALF_OF_HEADER)
        .and_then(|h| h.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    req.extensions_mut().insert(McpCaller {
        identity,
        token,
        on_behalf_of,
    });
    next.run(req).await
}
