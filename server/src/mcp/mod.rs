//! The MCP server for AI agents: the Model Context Protocol's Streamable HTTP transport (the
//! `rmcp` SDK) at `/mcp` on the HTTP listener, authenticated by bearer token.
//!
//! `tools.rs` holds the tools (`list_environments`, `describe`, `query`, `explain`,
//! `approval_status`, `wait_for_approval`); `limits.rs` the per-identity limits; `catalog.rs`
//! the catalog query, sensitive-column flags and result values.
//!
//! Architecture invariant: the MCP server adds no policy of its own and is no side door:
//! statements run through a loopback session on the gateway's own PostgreSQL listener
//! ([`crate::pg::loopback`]), as the caller, so every control a psql session meets applies.

pub mod catalog;
pub mod limits;
pub mod tools;

use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::gateway::Gateway;
use crate::identity::Identity;

/// Header an agent may send to name the person it acts for (a tool's `on_behalf_of` argument
/// wins over it).
pub const ON_BEHALF_OF_HEADER: &str = "x-gatehouse-on-behalf-of";

/// The authenticated caller of one MCP request, put in the request's extensions by the HTTP
/// layer (`http/mcp.rs`) and read by the tools.
#[derive(Clone)]
pub struct McpCaller {
    pub identity: Identity,
    pub token: String,
    pub on_behalf_of: Option<String>,
}

/// The Streamable HTTP service: one [`tools::GatehouseMcp`] per MCP session, sharing the
/// gateway and the limits.
/// `sessions` is shared with the HTTP layer, which binds each session to its owner and closes
/// it when the owner's token or groups no longer allow it (`http/mcp.rs`).
pub fn service(
    gw: Arc<Gateway>,
    sessions: Arc<LocalSessionManager>,
) -> StreamableHttpService<tools::GatehouseMcp, LocalSessionManager> {
    let shared = Arc::new(tools::Shared {
        limits: limits::Limits::from_config(&gw.config.mcp),
        gw: gw.clone(),
    });
    let config = StreamableHttpServerConfig::default().with_allowed_hosts(allowed_hosts(&gw));
    StreamableHttpService::new(
        move || Ok(tools::GatehouseMcp::new(shared.clone())),
        sessions,
        config,
    )
}

/// `Host` values accepted (a DNS-rebinding guard): loopback names, the host of
/// `server.public_url`, the HTTP listener's address, and `mcp.allowed_hosts`.
fn allowed_hosts(gw: &Gateway) -> Vec<String> {
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if let Ok(u) = url::Url::parse(gw.config.server.public_url.get_ref()) {
        if let Some(h) = u.host_str() {
            hosts.push(h.trim_start_matches('[').trim_end_matches(']').to_string());
        }
    }
    let listen = gw.config.http_listen();
    if !listen.ip().is_unspecified() {
        hosts.push(listen.ip().to_string());
    }
    hosts.extend(gw.config.mcp.allowed_hosts.iter().cloned());
    hosts.sort();
    hosts.dedup();
    hosts
}
