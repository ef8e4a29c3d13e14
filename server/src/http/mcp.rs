//! `/mcp`: the MCP server's place on the HTTP listener. Every request must carry
//! `Authorization: Bearer TOKEN` (a service-account or session token; no cookies, so a web
//! page cannot ride on a console login); the identity, and the person named in
//! `X-Gatehouse-On-Behalf-Of`, go to the tools in the request's extensions.
//!
//! An MCP session belongs to the identity that opened it: a request carrying another
//! identity's `Mcp-Session-Id` is answered as if the session did not exist (404). A session is
//! a [`Channel`]: once a second, and for every answer it streams, it asks whether its token is
//! still accepted and the identity still has its groups; when not, the session is closed, the
//! answers it is streaming end, and the end is audited (`channel.close`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::StreamExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::SessionManager;

use super::channel::{Channel, RECHECK};
use super::error::ApiError;
use crate::gateway::Gateway;
use crate::mcp::{McpCaller, ON_BEHALF_OF_HEADER};

/// Largest MCP request body accepted.
const MAX_BODY: usize = 4 << 20;
/// Most MCP sessions open at once; past it new ones are refused (429).
const MAX_SESSIONS: usize = 10_000;
const SESSION_HEADER: &str = "mcp-session-id";

/// The MCP sessions open now, each with the channel its owner opened.
pub struct McpSessions {
    gw: Arc<Gateway>,
    owners: Mutex<HashMap<String, Channel>>,
    manager: Arc<LocalSessionManager>,
    sweeping: AtomicBool,
}

impl McpSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Channel>> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether session `id` was opened by `identity` (and is still open); the owner's newer
    /// token, if this request brought one, is what the session follows from now on.
    fn owned_by(&self, id: &str, identity: &str, token: &str) -> bool {
        match self.lock().get_mut(id) {
            Some(c) if c.identity().name == identity => {
                c.renew(token);
                true
            }
            _ => false,
        }
    }

    /// Records a new session's owner; false when there are too many sessions.
    fn bind(self: &Arc<Self>, id: &str, channel: Channel) -> bool {
        {
            let mut owners = self.lock();
            if owners.len() >= MAX_SESSIONS {
                return false;
            }
            owners.insert(id.to_string(), channel.with_id(id));
        }
        self.sweep_in_background();
        true
    }

    /// The client closed its session (`DELETE`).
    fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Ends session `id` for `reason`: closed in the MCP server (its streams end with it) and
    /// audited, once, by whoever ends it first.
    async fn end(&self, id: &str, reason: &str) {
        let Some(channel) = self.lock().remove(id) else {
            return;
        };
        let _ = self.manager.close_session(&Arc::from(id)).await;
        channel.close(reason).await;
    }

    /// Every second, each open session asks again (so one with nothing streaming ends too).
    fn sweep_in_background(self: &Arc<Self>) {
        if self.sweeping.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RECHECK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let open: Vec<(String, Channel)> = me
                    .lock()
                    .iter()
                    .map(|(k, c)| (k.clone(), c.clone()))
                    .collect();
                for (id, channel) in open {
                    if let Err(reason) = channel.check().await {
                        me.end(&id, &reason).await;
                    }
                }
            }
        });
    }
}

/// The `/mcp` routes, or none when `[mcp] enabled = false`.
pub fn routes(gw: Arc<Gateway>) -> Router<Arc<Gateway>> {
    if !gw.config.mcp.enabled {
        return Router::new();
    }
    let manager = Arc::new(LocalSessionManager::default());
    let sessions = Arc::new(McpSessions {
        gw: gw.clone(),
        owners: Mutex::new(HashMap::new()),
        manager: manager.clone(),
        sweeping: AtomicBool::new(false),
    });
    // The MCP SDK reads a whole request body into memory: bound it (a JSON-RPC message with
    // one statement is far smaller).
    Router::new()
        .nest_service("/mcp", crate::mcp::service(gw, manager))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(sessions, authenticate))
}

async fn authenticate(
    State(sessions): State<Arc<McpSessions>>,
    mut req: Request,
    next: Next,
) -> Response {
    let gw = sessions.gw.clone();
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
    let session = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    if let Some(id) = &session {
        if !sessions.owned_by(id, &identity.name, &token) {
            return ApiError::NotFound(format!(
                "no MCP session {id} of `{}`; initialize a new session",
                identity.name
            ))
            .into_response();
        }
    }
    let closing = req.method() == Method::DELETE;
    let on_behalf_of = req
        .headers()
        .get(ON_BEHALF_OF_HEADER)
        .and_then(|h| h.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let channel = Channel::open(gw, "mcp", token.clone(), identity.clone());
    req.extensions_mut().insert(McpCaller {
        identity,
        token,
        on_behalf_of,
    });
    let resp = next.run(req).await;
    let session = match session {
        Some(id) => {
            if closing && resp.status().is_success() {
                sessions.forget(&id);
            }
            Some(id)
        }
        None => match resp
            .headers()
            .get(SESSION_HEADER)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
        {
            Some(new) => {
                if !sessions.bind(&new, channel.clone()) {
                    let _ = sessions
                        .manager
                        .close_session(&Arc::from(new.as_str()))
                        .await;
                    return ApiError::TooManyRequests {
                        message: "too many MCP sessions are open; try again later".into(),
                        retry_after: 60,
                    }
                    .into_response();
                }
                Some(new)
            }
            None => None,
        },
    };
    follow(resp, channel, sessions, session)
}

/// The answer, cut off (and its session ended) as soon as its channel may not go on.
fn follow(
    resp: Response,
    channel: Channel,
    sessions: Arc<McpSessions>,
    session: Option<String>,
) -> Response {
    let (parts, body) = resp.into_parts();
    let tick = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
    let state = (body.into_data_stream(), tick, channel, sessions, session);
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            tokio::select! {
                chunk = s.0.next() => return chunk.map(|c| (c, s)),
                _ = s.1.tick() => {}
            }
            if let Err(reason) = s.2.check().await {
                match &s.4 {
                    Some(id) => s.3.end(id, &reason).await,
                    None => s.2.close(&reason).await,
                }
                return None;
            }
        }
    });
    Response::from_parts(parts, Body::from_stream(stream))
}
