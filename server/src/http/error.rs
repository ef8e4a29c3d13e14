//! API errors and their HTTP status: the one place where gateway errors become HTTP answers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// Authenticated, but not allowed (not an admin; a missing CSRF token).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: i64 },

    /// The gateway cannot do it now (its shared store is unreachable); retry shortly.
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable kind: `unauthorized`, `bad_request`, `not_found`, `forbidden`,
    /// `conflict`, `too_many_requests`, `unavailable`, `internal`.
    pub error: &'static str,
    /// What happened and what to do next.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = match &self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if let ApiError::Internal(m) = &self {
            tracing::error!(error = %m, "API request failed");
        }
        let mut resp = (
            status,
            Json(ErrorBody {
                error: kind,
                message: self.to_string(),
            }),
        )
            .into_response();
        if let ApiError::TooManyRequests { retry_after, .. } = &self {
            if let Ok(v) = axum::http::HeaderValue::from_str(&retry_after.to_string()) {
                resp.headers_mut().insert("retry-after", v);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        store_error(e)
    }
}

/// A store failure: `503` while the shared store is unreachable (the client may retry, and a
/// load balancer may send it to another replica), `500` otherwise.
fn store_error(e: crate::store::StoreError) -> ApiError {
    if e.is_unavailable() {
        tracing::warn!(error = %e, "the shared store is unreachable");
        return ApiError::Unavailable(
            "the gateway's store is unreachable; try again in a moment".into(),
        );
    }
    ApiError::Internal(e.to_string())
}

impl From<crate::identity::AuthError> for ApiError {
    fn from(e: crate::identity::AuthError) -> Self {
        use crate::identity::AuthError;
        match e {
            AuthError::InvalidCredentials => ApiError::Unauthorized("invalid token".into()),
            AuthError::Expired => {
                ApiError::Unauthorized("the session has expired; log in again".into())
            }
            AuthError::Revoked => {
                ApiError::Unauthorized("the session has been revoked; log in again".into())
            }
            AuthError::Store(e) => store_error(e),
        }
    }
}
