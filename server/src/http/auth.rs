//! Who is calling: the `Authorization: Bearer TOKEN` header, or the web console's session
//! cookie. Every protected handler takes a [`Caller`]; admin endpoints take an [`Admin`].
//!
//! Cookies ride along with any request the browser makes, including ones a hostile page
//! triggers, so a cookie-authenticated request that changes state must also carry the
//! `X-CSRF-Token` header. Its value is derived from the session token (and handed to the console
//! in the readable `gatehouse_csrf` cookie); another site can neither read it nor compute it.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};

use super::error::ApiError;
use crate::gateway::Gateway;
use crate::identity::{tokens, Identity};

/// The web console's session cookie (HttpOnly).
pub const SESSION_COOKIE: &str = "gatehouse_session";
/// The CSRF token, readable by the console's scripts, to echo in `X-CSRF-Token`.
pub const CSRF_COOKIE: &str = "gatehouse_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The authenticated identity behind a request, and the token it used.
pub struct Caller {
    pub identity: Identity,
    pub token: String,
    /// True when the token came from the session cookie rather than a header.
    pub via_cookie: bool,
}

/// A caller in one of `server.admin_groups`.
pub struct Admin(pub Caller);

/// The address the request came from (the TCP peer), when the listener knows it.
pub struct PeerAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The CSRF token that goes with a session token.
pub fn csrf_token(session_token: &str) -> String {
    tokens::sha256_hex(&format!("gatehouse-csrf:{session_token}"))
}

/// The value of cookie `name` in the request, if present.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value. `Secure` whenever the gateway is served over https, so the cookie never
/// travels in the clear.
pub fn set_cookie(
    gw: &Gateway,
    name: &str,
    value: &str,
    path: &str,
    http_only: bool,
    max_age: Option<i64>,
) -> HeaderValue {
    let mut c = format!("{name}={value}; Path={path}; SameSite=Lax");
    if http_only {
        c.push_str("; HttpOnly");
    }
    if gw.config.public_https() {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={}", age.max(0)));
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The console's two cookies for a new session: the HttpOnly session token and the readable
/// CSRF token, both living as long as the session's access token.
pub fn session_cookies(gw: &Gateway, token: &str, expires_at: i64) -> [HeaderValue; 2] {
    let ttl = expires_at - crate::identity::now();
    [
        set_cookie(gw, SESSION_COOKIE, token, "/", true, Some(ttl)),
        set_cookie(gw, CSRF_COOKIE, &csrf_token(token), "/", false, Some(ttl)),
    ]
}

fn bearer(parts: &Parts) -> Result<Option<String>, ApiError> {
    let Some(header) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let header = header.to_str().map_err(|_| {
        ApiError::Unauthorized("the Authorization header must be `Bearer TOKEN`".into())
    })?;
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| Some(t.to_string()))
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be `Bearer TOKEN`".into())
        })
}

impl FromRequestParts<Arc<Gateway>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        gw: &Arc<Gateway>,
    ) -> Result<Self, Self::Rejection> {
        let (token, via_cookie) = match bearer(parts)? {
            Some(t) => (t, false),
            None => match cookie(&parts.headers, SESSION_COOKIE).filter(|t| !t.is_empty()) {
                Some(t) => (t, true),
                None => {
                    return Err(ApiError::Unauthorized(
                        "missing bearer token: send `Authorization: Bearer TOKEN`".into(),
                    ))
                }
            },
        };
        if via_cookie && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !tokens::str_eq(sent, &csrf_token(&token)) {
                return Err(ApiError::Forbidden(format!(
                    "cookie-authenticated requests that change state need the {CSRF_HEADER} header (the value of the {CSRF_COOKIE} cookie)"
                )));
            }
        }
        let identity = gw.auth.authenticate_token(&token).await?;
        Ok(Caller {
            identity,
            token,
            via_cookie,
        })
    }
}

impl FromRequestParts<Arc<Gateway>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        gw: &Arc<Gateway>,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, gw).await?;
        if !gw.is_admin(&caller.identity) {
            return Err(ApiError::Forbidden(format!(
                "this endpoint is for administrators (members of {:?}); `{}` is not one",
                gw.config.server.admin_groups, caller.identity.name
            )));
        }
        Ok(Admin(caller))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_several() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; gatehouse_session=ghs_x"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("ghs_x"));
        assert_eq!(cookie(&h, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
        assert_ne!(csrf_token("ghs_x"), csrf_token("ghs_y"));
    }
}
