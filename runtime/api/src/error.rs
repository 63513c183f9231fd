//! API errors: each maps to one HTTP status and a `{"error": {code, message}}` body.

use crate::wire::{ErrorBody, ErrorDetail};
use axum::Json;
use axum::response::{IntoResponse, Response};
use cloudware_node::{ProposeFailure, PutError};
use cloudware_state::{CommandError, ErrorKind};
use http::StatusCode;

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or an unknown bearer token.
    #[error("{0}")]
    Unauthorized(String),
    /// The token's role or tenant does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// No such thing (or not visible to this token).
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed or out of limits.
    #[error("{0}")]
    BadRequest(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The upload is over the size cap.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The control plane cannot take writes right now.
    #[error("{0}")]
    Unavailable(String),
    /// A failure on our side.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status and the stable error code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::warn!(%status, error = %self, "admin call failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: self.to_string(),
            },
        };
        (status, Json(body)).into_response()
    }
}

impl From<CommandError> for ApiError {
    fn from(err: CommandError) -> Self {
        match err.kind() {
            ErrorKind::Invalid => ApiError::BadRequest(err.to_string()),
            ErrorKind::NotFound => ApiError::NotFound(err.to_string()),
            ErrorKind::Conflict => ApiError::Conflict(err.to_string()),
        }
    }
}

impl From<ProposeFailure> for ApiError {
    fn from(err: ProposeFailure) -> Self {
        match err {
            ProposeFailure::Rejected(err) => err.into(),
            ProposeFailure::Unavailable(reason) => ApiError::Unavailable(reason),
        }
    }
}

impl From<PutError> for ApiError {
    fn from(err: PutError) -> Self {
        match err {
            PutError::TooLarge { .. } => ApiError::PayloadTooLarge(err.to_string()),
            PutError::Truncated { .. } | PutError::Upload(_) => {
                ApiError::BadRequest(err.to_string())
            }
            PutError::Io(_) => ApiError::Internal(err.to_string()),
        }
    }
}
