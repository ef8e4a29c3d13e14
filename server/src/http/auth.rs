//! The `Authorization: Bearer TOKEN` extractor: every protected handler takes a [`Caller`].

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::gateway::Gateway;
use crate::identity::{AuthError, Identity};

/// The authenticated identity behind a request, and the token it used.
pub struct Caller {
    pub identity: Identity,
    pub token: String,
}

impl FromRequestParts<Arc<Gateway>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        gw: &Arc<Gateway>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "missing bearer token: send `Authorization: Bearer TOKEN`".into(),
                )
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be `Bearer TOKEN`".into())
            })?;
        match gw.auth.authenticate_token(token).await {
            Ok(identity) => Ok(Caller {
                identity,
                token: token.to_string(),
            }),
            Err(AuthError::InvalidCredentials) => {
                Err(ApiError::Unauthorized("invalid token".into()))
            }
            Err(AuthError::Expired) => Err(ApiError::Unauthorized(
                "the session has expired; log in again".into(),
            )),
            Err(AuthError::Revoked) => Err(ApiError::Unauthorized(
                "the session has been revoked; log in again".into(),
            )),
            Err(AuthError::Store(e)) => Err(ApiError::Internal(e.to_string())),
        }
    }
}

/// A caller in one of `server.admin_groups`.
pub struct Admin(pub Caller);

impl FromRequestParts<Arc<Gateway>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        gw: &Arc<Gateway>,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, gw).await?;
        if !gw.is_admin(&caller.identity) {
            return Err(ApiError::Forbidden(
                "this endpoint is for administrators (server.admin_groups)".into(),
            ));
        }
        Ok(Admin(caller))
    }
}
