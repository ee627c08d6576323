//! The one error type of the REST APIs, mapped to SPEC 9's JSON shape in one place.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

/// Every failure a REST handler can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not of the expected shape; the message names the field.
    #[error("{0}")]
    BadRequest(String),
    /// A field is present and well-typed but its value is not allowed.
    #[error("{field}: {message}")]
    Invalid {
        /// Path of the offending field, e.g. `auth.secret`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No or bad credentials.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// Valid credentials that may not act on this resource.
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A unique name is taken.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the listener accepts.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// A message to clients is larger than they accept (`BRIDGE_MAX_PAYLOAD`).
    #[error("the message is {0} bytes; clients accept at most {1} (BRIDGE_MAX_PAYLOAD)")]
    MessageTooLarge(usize, usize),
    /// The body is not `application/json`.
    #[error("expected content-type: application/json")]
    UnsupportedMediaType,
    /// Too many requests; retry after the given number of seconds.
    #[error("rate limit exceeded, retry after {0} s")]
    RateLimited(u64),
    /// Something failed inside; details are logged, never sent.
    #[error("internal error")]
    Internal(String),
    /// The store could not be reached.
    #[error("store unavailable")]
    Unavailable(String),
    /// The link to the other nodes (Redis or Postgres adapter) is down, so an operation meant
    /// for the whole cluster could reach only part of it.
    #[error("cluster adapter unavailable: {0}")]
    AdapterUnavailable(String),
    /// This node is stopping: its sockets are gone, so it can reach none of them.
    #[error("this node is shutting down; retry on another node")]
    ShuttingDown,
    /// This node is stopping and takes no new Engine.IO session (its clients are being handed
    /// over to the other nodes).
    #[error("this node is stopping; connect to another node")]
    Draining,
}

impl ApiError {
    /// An [`ApiError::Invalid`] for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// HTTP status and stable machine-readable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_field"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::PayloadTooLarge(_) | Self::MessageTooLarge(..) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::AdapterUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "adapter_unavailable"),
            Self::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            Self::Draining => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
        }
    }
}

/// The JSON body of every error: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and human-readable message of an error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_field`.
    pub code: String,
    /// What went wrong; names the field for validation errors.
    pub message: String,
}

impl ApiError {
    /// The JSON body of this error (internal details are logged here, never sent).
    pub fn body(&self) -> ErrorBody {
        match self {
            Self::Internal(detail) => tracing::error!(%detail, "internal error"),
            Self::Unavailable(detail) => tracing::warn!(%detail, "store unavailable"),
            _ => {}
        }
        ErrorBody {
            error: ErrorDetail {
                code: self.status_and_code().1.to_owned(),
                message: self.to_string(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_and_code().0;
        let mut response = (status, Json(self.body())).into_response();
        let retry_after = match self {
            Self::RateLimited(secs) => Some(secs),
            Self::Draining => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::Conflict(what) => Self::Conflict(what),
            StoreError::Unavailable(e) => Self::Unavailable(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// Answer for unknown paths, in the same JSON shape.
pub async fn not_found_fallback() -> ApiError {
    ApiError::NotFound("no such route".into())
}
