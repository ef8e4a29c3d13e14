//! Single sign-on over HTTP: `/auth/oidc/start`, `/auth/oidc/callback` and
//! `POST /api/v1/auth/token`.
//!
//! Two kinds of login share the flow. A native app (CLI, desktop app, any RFC 8252 client)
//! passes its loopback `redirect_uri`, PKCE challenge and state; after the IdP it is sent back
//! with a one-time code that it exchanges, with its verifier, for a session token. The web
//! console passes none of those; it gets an HttpOnly session cookie and a CSRF cookie instead.
//! Either way the IdP's client secret stays in the gateway.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::api::TokenResponse;
use super::auth::{self, cookie, set_cookie};
use super::error::{ApiError, ErrorBody};
use super::redirect::same_origin_path;
use crate::gateway::Gateway;
use crate::identity::loopback::{AppRequest, FlowError, Pending, FLOW_TTL};
use crate::identity::oidc::OidcClient;
use crate::identity::{tokens, SessionMethod};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StartParams {
    /// Native apps: where to send the browser back, `http://127.0.0.1:PORT/PATH` or
    /// `http://[::1]:PORT/PATH`. Leave out for a web-console login.
    pub redirect_uri: Option<String>,
    /// Native apps: base64url SHA-256 of the app's PKCE verifier.
    pub code_challenge: Option<String>,
    /// Native apps: must be `S256`.
    pub code_challenge_method: Option<String>,
    /// Native apps: returned unchanged with the code.
    pub state: Option<String>,
    /// Web console: the console path to land on after login (default `/`): a path on this
    /// gateway only (no control characters, backslashes or leading `//`, even
    /// percent-encoded), or the login is refused with 400.
    pub return_to: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct TokenExchange {
    /// The one-time code the gateway sent to the app's `redirect_uri`.
    pub code: String,
    /// The PKCE verifier whose S256 hash was the `code_challenge`.
    pub code_verifier: String,
}

/// A small HTML page for the browser: the person at it needs to know what happened.
fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Gatehouse: {t}</title></head>\
         <body><h1>{t}</h1><p id=\"message\">{m}</p></body></html>",
        t = esc(title),
        m = esc(message)
    );
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn redirect(location: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for c in cookies {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

/// The cookie that binds a login to the browser that started it; named after the state so
/// two logins in one browser do not trample each other.
fn binding_cookie_name(state: &str) -> String {
    format!("gatehouse_login_{}", &tokens::sha256_hex(state)[..16])
}

fn sso(gw: &Gateway) -> Result<&OidcClient, Box<Response>> {
    gw.oidc.as_ref().ok_or_else(|| {
        Box::new(page(
            StatusCode::NOT_FOUND,
            "Single sign-on is not configured",
            "This gateway has no [oidc] section in its config; log in with a local user or a token.",
        ))
    })
}

/// Start an SSO login: redirects the browser to the identity provider.
#[utoipa::path(
    get, path = "/auth/oidc/start", params(StartParams),
    responses((status = 303, description = "to the identity provider"),
              (status = 400, description = "invalid parameters (HTML page)"),
              (status = 404, description = "SSO is not configured"),
              (status = 502, description = "the identity provider cannot be reached"))
)]
pub async fn start(State(gw): State<Arc<Gateway>>, Query(p): Query<StartParams>) -> Response {
    let oidc = match sso(&gw) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let app = match (&p.redirect_uri, &p.code_challenge, &p.state) {
        (None, None, None) => None,
        (Some(uri), Some(challenge), Some(state)) => {
            let method = p.code_challenge_method.as_deref().unwrap_or("");
            match AppRequest::new(uri, challenge, method, state) {
                Ok(a) => Some(a),
                Err(e) => return page(StatusCode::BAD_REQUEST, "Cannot start the login", &e.to_string()),
            }
        }
        _ => {
            return page(
                StatusCode::BAD_REQUEST,
                "Cannot start the login",
                "a native-app login needs redirect_uri, code_challenge, code_challenge_method=S256 and state together",
            )
        }
    };
    // Only paths on this gateway: never an open redirect.
    let return_to = match p.return_to.as_deref().map(same_origin_path) {
        Some(Ok(path)) => Some(path),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "SSO login refused: return_to is not a path on this gateway");
            return page(
                StatusCode::BAD_REQUEST,
                "Cannot start the login",
                &format!("return_to {e}"),
            );
        }
        None => None,
    };
    let (state, nonce) = (tokens::generate(""), tokens::generate(""));
    let authz = match oidc.authorize(&state, &nonce).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "SSO login could not start");
            return page(
                StatusCode::BAD_GATEWAY,
                "The identity provider is unavailable",
                &e.to_string(),
            );
        }
    };
    let mut pending = Pending::new(app, nonce, authz.pkce_verifier);
    pending.return_to = return_to;
    let binding = pending.browser_binding.clone();
    if let Err(e) = gw.login_flows.insert(state.clone(), pending) {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Cannot start the login",
            &e.to_string(),
        );
    }
    let cookie = set_cookie(
        &gw,
        &binding_cookie_name(&state),
        &binding,
        "/auth/oidc",
        true,
        Some(FLOW_TTL.as_secs() as i64),
    );
    redirect(authz.url.as_str(), vec![cookie])
}

/// Where the identity provider sends the browser back. Verifies the login, then sends a native
/// app its one-time code, or gives the web console its session cookie.
#[utoipa::path(
    get, path = "/auth/oidc/callback", params(CallbackParams),
    responses((status = 303, description = "to the app's redirect_uri (code or error) or the console"),
              (status = 400, description = "unknown, replayed or foreign login state (HTML page)"),
              (status = 401, description = "the login was refused (HTML page)"))
)]
pub async fn callback(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Query(p): Query<CallbackParams>,
) -> Response {
    let oidc = match sso(&gw) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let Some(state) = p.state.filter(|s| !s.is_empty()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Login failed",
            "the identity provider sent no state; start the login again",
        );
    };
    let pending = match gw.login_flows.take(&state) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "SSO callback with an unknown state");
            return page(StatusCode::BAD_REQUEST, "Login failed", &e.to_string());
        }
    };
    let cookie_name = binding_cookie_name(&state);
    let clear = set_cookie(&gw, &cookie_name, "", "/auth/oidc", true, Some(0));
    let bound = cookie(&headers, &cookie_name)
        .is_some_and(|v| tokens::str_eq(&v, &pending.browser_binding));
    if !bound {
        tracing::warn!("SSO callback from a browser that did not start the login");
        return fail(
            &pending,
            "state mismatch: this login was started in another browser; start it again here",
            clear,
        );
    }
    if let Some(error) = p.error {
        let description = p.error_description.unwrap_or_default();
        tracing::info!(%error, %description, "the identity provider refused the login");
        return fail(
            &pending,
            &format!("the identity provider refused the login: {error} {description}"),
            clear,
        );
    }
    let Some(code) = p.code else {
        return fail(&pending, "the identity provider sent no code", clear);
    };
    let identity = match oidc
        .finish(&code, &pending.pkce_verifier, &pending.nonce)
        .await
    {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "SSO login refused");
            return fail(&pending, &e.to_string(), clear);
        }
    };
    match &pending.app {
        Some(app) => match gw
            .login_flows
            .issue_code(identity.clone(), &app.code_challenge)
        {
            Ok(code) => {
                tracing::info!(identity = %identity.name, groups = ?identity.groups, "SSO login verified; one-time code sent to the app");
                redirect(app.redirect_with(&[("code", &code)]).as_str(), vec![clear])
            }
            Err(e) => fail(&pending, &e.to_string(), clear),
        },
        None => {
            let issued = match gw.auth.issue_session(&identity, SessionMethod::Oidc).await {
                Ok(s) => s,
                Err(e) => {
                    return page(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Login failed",
                        &e.to_string(),
                    )
                }
            };
            tracing::info!(identity = %identity.name, session = %issued.session_id, method = "oidc", "login (web console)");
            gw.audit
                .record(crate::audit::Pending::Record(Box::new(
                    crate::audit::AuditRecord::new("auth.login")
                        .by(&identity)
                        .details(
                            serde_json::json!({"method": "oidc", "session_id": issued.session_id}),
                        ),
                )))
                .await;
            let mut cookies = vec![clear];
            cookies.extend(auth::session_cookies(&gw, &issued.token, issued.expires_at));
            // Checked at the start already; checked again where it is used.
            let landing = pending
                .return_to
                .as_deref()
                .and_then(|r| same_origin_path(r).ok())
                .unwrap_or_else(|| "/".to_string());
            redirect(&landing, cookies)
        }
    }
}

/// A failed login: a native app hears about it at its redirect URI (so it can stop waiting);
/// the console's browser gets a page.
fn fail(pending: &Pending, message: &str, clear: HeaderValue) -> Response {
    match &pending.app {
        Some(app) => redirect(
            app.redirect_with(&[("error", "access_denied"), ("error_description", message)])
                .as_str(),
            vec![clear],
        ),
        None => {
            let mut r = page(StatusCode::UNAUTHORIZED, "Login failed", message);
            r.headers_mut().append(header::SET_COOKIE, clear);
            r
        }
    }
}

/// Exchange the one-time code from an SSO login (and the PKCE verifier) for a session token.
/// A code works once, within a minute, with its verifier only.
#[utoipa::path(
    post, path = "/api/v1/auth/token", request_body = TokenExchange,
    responses((status = 200, body = TokenResponse), (status = 400, body = ErrorBody))
)]
pub async fn token(
    State(gw): State<Arc<Gateway>>,
    Json(req): Json<TokenExchange>,
) -> Result<Json<TokenResponse>, ApiError> {
    let identity = gw
        .login_flows
        .redeem(&req.code, &req.code_verifier)
        .map_err(|e| {
            tracing::warn!(error = %e, "one-time code refused");
            match e {
                FlowError::Busy => ApiError::Internal(e.to_string()),
                e => ApiError::BadRequest(e.to_string()),
            }
        })?;
    let issued = gw
        .auth
        .issue_session(&identity, SessionMethod::Oidc)
        .await?;
    tracing::info!(identity = %identity.name, session = %issued.session_id, method = "oidc", "login");
    gw.audit
        .record(crate::audit::Pending::Record(Box::new(
            crate::audit::AuditRecord::new("auth.login")
                .by(&identity)
                .details(serde_json::json!({"method": "oidc", "session_id": issued.session_id})),
        )))
        .await;
    Ok(Json(TokenResponse::new(issued)))
}
