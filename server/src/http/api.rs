//! `/api/v1` handlers for authentication (local login, refresh, logout) and environments, and
//! `/healthz`. SSO lives in `oidc.rs`, administration in `admin.rs`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{self, Caller, PeerAddr};
use super::error::{ApiError, ErrorBody};
use crate::audit::{AuditRecord, Pending};
use crate::config::Tier;
use crate::gateway::Gateway;
use crate::identity::{IdentityKind, IssuedSession, LoginError, SessionMethod};
use crate::store::Change;

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// Web console: answer with the HttpOnly session cookie and the CSRF cookie instead of a
    /// token in the body, so the page's scripts never hold the token.
    #[serde(default)]
    pub cookie: bool,
}

/// The answer to a cookie login (`"cookie": true`): the token is only in the HttpOnly cookie.
#[derive(Serialize, ToSchema)]
pub struct CookieSession {
    pub identity: String,
    /// RFC 3339 time after which the session cookie is refused.
    pub expires_at: String,
}

/// A session token and when it stops working.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// Bearer token for the API, and the password for database connections.
    pub token: String,
    /// RFC 3339 time after which the token is refused.
    pub expires_at: String,
    /// Exchange at `POST /api/v1/auth/refresh` for a new token pair before `refresh_expires_at`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_expires_at: Option<String>,
}

impl TokenResponse {
    pub fn new(issued: IssuedSession) -> Self {
        TokenResponse {
            token: issued.token,
            expires_at: rfc3339(issued.expires_at),
            refresh_token: issued.refresh_token,
            refresh_expires_at: issued.refresh_expires_at.map(rfc3339),
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct EnvironmentItem {
    pub name: String,
    pub tier: Tier,
    pub tags: Vec<String>,
    pub description: Option<String>,
    /// The `dbname` to use in a connection string.
    pub dbname: String,
    /// The databases it reaches (`dbname=NAME/DATABASE`): its own first, then any its config
    /// opens (`*`: every database on its server).
    pub databases: Vec<String>,
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
    /// `ok` while this replica can reach its store and write its audit trail; `unavailable`
    /// (with `503`) when it cannot, so a load balancer sends new connections to another
    /// replica.
    pub status: &'static str,
    /// This replica's id (`server.replica_id`).
    pub replica_id: String,
    /// `ok`, or why the store cannot be reached.
    pub store: String,
    /// `ok`, or why the audit trail cannot be written (statements are refused meanwhile).
    pub audit: String,
    /// Each environment's upstream: `ok` when a TCP connection opens within 0.5 s, or why
    /// not. Informational: an upstream down is down for every replica alike.
    #[schema(value_type = Object)]
    pub upstreams: std::collections::BTreeMap<String, String>,
}

/// What a client needs to know about this gateway before logging in.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct GatewayInfo {
    /// `HOST:PORT` of the PostgreSQL listener as clients reach it (what tunnels dial).
    pub postgres_address: String,
    /// Whether single sign-on is configured (`gatehouse login` without `--user`/`--token`).
    pub sso: bool,
    pub version: String,
    /// Which replica answered (`server.replica_id`).
    #[serde(default)]
    pub replica_id: String,
}

/// Discovery for the CLI and the desktop app: where to reach the PostgreSQL listener and which
/// logins work. Public: it says nothing a port scan would not.
#[utoipa::path(get, path = "/api/v1/info", responses((status = 200, body = GatewayInfo)))]
pub async fn info(State(gw): State<Arc<Gateway>>) -> Json<GatewayInfo> {
    let mut postgres_address = gw.config.postgres_public_address();
    // A listener configured on port 0 took whatever port the OS gave it.
    if gw.config.server.postgres_public_address.is_none() && gw.config.postgres_listen().port() == 0
    {
        if let (Some(bound), Some((host, _))) =
            (gw.pg_local_addr.get(), postgres_address.rsplit_once(':'))
        {
            postgres_address = format!("{host}:{}", bound.port());
        }
    }
    Json(GatewayInfo {
        postgres_address,
        sso: gw.oidc.is_some(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        replica_id: gw.replica_id.clone(),
    })
}

/// Health for load balancers: `200` while this replica can reach its store, `503` when it
/// cannot; the body also says whether each upstream accepts TCP connections.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn healthz(State(gw): State<Arc<Gateway>>) -> (StatusCode, Json<Health>) {
    // Short: a health check that hangs is a failed one to a load balancer (and setup.sh gives
    // it a second).
    let limit = std::time::Duration::from_millis(500);
    let store = async {
        match tokio::time::timeout(limit * 2, gw.store.ping()).await {
            Ok(Ok(())) => "ok".to_string(),
            Ok(Err(e)) => format!("unreachable: {e}"),
            Err(_) => "unreachable: no answer within 1 s".to_string(),
        }
    };
    let upstreams = futures_util::future::join_all(gw.environments.values().map(|e| async move {
        let addr = (e.target.host.as_str(), e.target.port);
        let state = match tokio::time::timeout(limit, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => "ok".to_string(),
            Ok(Err(err)) => format!("unreachable: {err}"),
            Err(_) => "unreachable: no connection within 0.5 s".to_string(),
        };
        (e.name.clone(), state)
    }));
    let (store, upstreams) = tokio::join!(store, upstreams);
    let audit = match gw.audit.failure() {
        None => "ok".to_string(),
        Some(f) => format!("failing: {f}"),
    };
    let ok = store == "ok" && audit == "ok";
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(Health {
            status: if ok { "ok" } else { "unavailable" },
            replica_id: gw.replica_id.clone(),
            store,
            audit,
            upstreams: upstreams.into_iter().collect(),
        }),
    )
}

/// Log in as a local user; returns a session token. Repeated failures lock the user out for
/// `server.login_lockout_seconds` (429 with `Retry-After`). With `"cookie": true` (the web
/// console) the session comes as cookies and the body is a [`CookieSession`].
#[utoipa::path(
    post, path = "/api/v1/auth/login", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody))
)]
pub async fn login(
    State(gw): State<Arc<Gateway>>,
    peer: PeerAddr,
    Json(req): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let gw2 = gw.clone();
    let username = req.username.clone();
    let as_cookie = req.cookie;
    let source = peer.0;
    // argon2 is deliberately slow; keep it off the async workers.
    let verified = tokio::task::spawn_blocking(move || {
        gw2.auth
            .verify_password(&req.username, &req.password, source)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let failed = |details: serde_json::Value| {
        let mut r = AuditRecord::new("auth.login_failed").details(details);
        r.client_addr = source.map(|a| a.to_string());
        r
    };
    let identity = match verified {
        Ok(i) => i,
        Err(e @ LoginError::InvalidCredentials { address_limited }) => {
            let mut details = serde_json::json!({ "claimed_user": username, "method": "password" });
            if let Some(seconds) = address_limited {
                details["address_limited"] = serde_json::json!(true);
                details["limited_for_seconds"] = serde_json::json!(seconds);
            }
            gw.audit
                .record(Pending::Record(Box::new(failed(details))))
                .await;
            return Err(ApiError::Unauthorized(e.to_string()));
        }
        Err(e @ LoginError::LockedOut { seconds }) => {
            let r = failed(
                serde_json::json!({ "claimed_user": username, "method": "password", "locked_out_seconds": seconds }),
            );
            gw.audit.record(Pending::Record(Box::new(r))).await;
            return Err(ApiError::TooManyRequests {
                message: e.to_string(),
                retry_after: seconds,
            });
        }
        // Refused before any check, and not audited one by one: a flood from an address
        // already limited must not cost the trail a record per request (the failure that
        // set the limit is audited with `address_limited`).
        Err(e @ LoginError::AddressLimited { seconds }) => {
            metrics::counter!("gatehouse_logins_refused_total", "reason" => "address").increment(1);
            return Err(ApiError::TooManyRequests {
                message: e.to_string(),
                retry_after: seconds,
            });
        }
        Err(LoginError::Unavailable(e)) if e.is_unavailable() => {
            tracing::warn!(error = %e, "login refused: the shared store is unreachable");
            return Err(ApiError::Unavailable(
                "the gateway's store is unreachable; try again in a moment".into(),
            ));
        }
        Err(e @ LoginError::Unavailable(_)) => {
            tracing::error!(error = %e, "login refused: the lockout store cannot be read");
            return Err(ApiError::Internal(
                "the gateway cannot check logins right now; try again shortly".into(),
            ));
        }
    };
    let issued = gw
        .auth
        .issue_session(&identity, SessionMethod::Password)
        .await?;
    tracing::info!(identity = %identity.name, session = %issued.session_id, method = "password", "login");
    let r = AuditRecord::new("auth.login")
        .by(&identity)
        .details(serde_json::json!({ "method": "password", "session_id": issued.session_id }));
    gw.audit.record(Pending::Record(Box::new(r))).await;
    if !as_cookie {
        return Ok(Json(TokenResponse::new(issued)).into_response());
    }
    let mut headers = HeaderMap::new();
    for c in auth::session_cookies(&gw, &issued.token, issued.expires_at) {
        headers.append(header::SET_COOKIE, c);
    }
    let body = CookieSession {
        identity: identity.name,
        expires_at: rfc3339(issued.expires_at),
    };
    Ok((headers, Json(body)).into_response())
}

/// Exchange a refresh token for a new access token and refresh token; the old pair stops
/// working. The session (and its id) stays the same.
#[utoipa::path(
    post, path = "/api/v1/auth/refresh", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody))
)]
pub async fn refresh(
    State(gw): State<Arc<Gateway>>,
    Json(req): Json<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let issued =
        gw.auth
            .refresh(&req.refresh_token)
            .await
            .map_err(|e| match ApiError::from(e) {
                ApiError::Unauthorized(m) if m == "invalid token" => ApiError::Unauthorized(
                    "invalid or already used refresh token; log in again".into(),
                ),
                other => other,
            })?;
    tracing::info!(session = %issued.session_id, "session refreshed");
    Ok(Json(TokenResponse::new(issued)))
}

pub use crate::pg::access::end_session_connections;

/// Revoke the caller's own session (and close its database connections). With the console's
/// cookie, needs the `X-CSRF-Token` header, and clears the cookies.
#[utoipa::path(
    post, path = "/api/v1/auth/logout",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = []))
)]
pub async fn logout(
    State(gw): State<Arc<Gateway>>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    if caller.identity.session_id.is_none() {
        return Err(ApiError::BadRequest(
            "service-account tokens are not sessions; an administrator revokes them".into(),
        ));
    }
    if let Some(id) = gw.auth.revoke(&caller.token).await? {
        let why = format!(
            "the session of \"{}\" was logged out; log in again to reconnect",
            caller.identity.name
        );
        gw.store.announce(Change::SessionEnded {
            id: id.clone(),
            why: why.clone(),
        });
        end_session_connections(&gw, &id, &why);
    }
    tracing::info!(identity = %caller.identity.name, "logout");
    let r = AuditRecord::new("auth.logout")
        .by(&caller.identity)
        .details(serde_json::json!({ "session_id": caller.identity.session_id }));
    gw.audit.record(Pending::Record(Box::new(r))).await;
    let mut headers = HeaderMap::new();
    if caller.via_cookie {
        headers.append(
            header::SET_COOKIE,
            auth::set_cookie(&gw, auth::SESSION_COOKIE, "", "/", true, Some(0)),
        );
        headers.append(
            header::SET_COOKIE,
            auth::set_cookie(&gw, auth::CSRF_COOKIE, "", "/", false, Some(0)),
        );
    }
    Ok((StatusCode::NO_CONTENT, headers))
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
            databases: e.database_names(),
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

pub fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}
