//! Errors of admin API calls, and the process exit codes they stand for.

use cloudware_api::wire;
use reqwest::StatusCode;
use std::fmt;
use std::time::Duration;

/// How much of a non-JSON error body is quoted in the message.
const MAX_QUOTED_BODY: usize = 200;

/// Process exit codes.
pub mod exit {
    /// Any error without a more specific code.
    pub const FAILURE: u8 = 1;
    /// Bad command line (clap's own code).
    pub const USAGE: u8 = 2;
    /// Missing, unknown or insufficient credentials.
    pub const UNAUTHORIZED: u8 = 3;
    /// The tenant, app, version, token … does not exist.
    pub const NOT_FOUND: u8 = 4;
    /// The input was rejected (invalid, conflicting or too large).
    pub const REJECTED: u8 = 5;
}

/// The exit code for an error answer of the admin API: its `code` decides,
/// and the HTTP status when the code is unknown (e.g. a proxy's error page).
pub fn exit_code(status: u16, code: &str) -> u8 {
    match code {
        "unauthorized" | "forbidden" => exit::UNAUTHORIZED,
        "not_found" => exit::NOT_FOUND,
        "bad_request" | "conflict" | "payload_too_large" => exit::REJECTED,
        "unavailable" | "internal" => exit::FAILURE,
        _ => match status {
            401 | 403 => exit::UNAUTHORIZED,
            404 => exit::NOT_FOUND,
            400 | 409 | 413 | 422 => exit::REJECTED,
            _ => exit::FAILURE,
        },
    }
}

/// What went wrong talking to the admin API.
#[derive(Debug)]
pub enum ApiError {
    /// No connection could be made, or it broke.
    Unreachable {
        /// The admin API's base URL.
        url: String,
        /// The root cause, e.g. `Connection refused (os error 111)`.
        detail: String,
    },
    /// No answer in time.
    Timeout {
        /// The admin API's base URL.
        url: String,
        /// The time allowed.
        after: Duration,
    },
    /// The server answered with an error status.
    Server {
        /// The HTTP status.
        status: u16,
        /// The `error.code` of the body (empty when the body was not an
        /// [`wire::ErrorBody`]).
        code: String,
        /// The server's message (or a description of the status).
        message: String,
    },
    /// A 2xx answer that does not match the contract.
    BadResponse {
        /// The request, e.g. `GET /v1/status`.
        request: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The package file could not be read while uploading it.
    ReadFile(std::io::Error),
}

impl ApiError {
    /// The process exit code this error stands for.
    pub fn exit_code(&self) -> u8 {
        match self {
            ApiError::Server { status, code, .. } => exit_code(*status, code),
            _ => exit::FAILURE,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Unreachable { url, detail } => {
                write!(f, "cannot reach the admin API at {url}: {detail}")
            }
            ApiError::Timeout { url, after } => write!(
                f,
                "the admin API at {url} did not answer within {}",
                humantime::format_duration(*after)
            ),
            ApiError::Server { message, .. } => f.write_str(message),
            ApiError::BadResponse { request, detail } => {
                write!(f, "unexpected answer to {request}: {detail}")
            }
            ApiError::ReadFile(err) => write!(f, "cannot read the package file: {err}"),
        }
    }
}

impl std::error::Error for ApiError {}

/// An I/O error of the upload's body stream, recognised again in the error
/// reqwest returns.
#[derive(Debug)]
pub(super) struct BodyReadError(pub(super) std::io::Error);

impl fmt::Display for BodyReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BodyReadError {}

/// The error for a non-2xx answer with `body`.
pub(super) fn server_error(status: StatusCode, body: &[u8]) -> ApiError {
    if let Ok(wire::ErrorBody { error }) = serde_json::from_slice::<wire::ErrorBody>(body) {
        let message = if error.message.trim().is_empty() {
            format!("{} ({})", error.code, status)
        } else {
            error.message
        };
        return ApiError::Server {
            status: status.as_u16(),
            code: error.code,
            message,
        };
    }
    // Not the API's own error (a proxy, or a different server): quote it.
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let message = if text.is_empty() {
        format!("the admin API answered {status}")
    } else {
        let quoted: String = text.chars().take(MAX_QUOTED_BODY).collect();
        let more = if quoted.len() < text.len() { "…" } else { "" };
        format!("the admin API answered {status}: {quoted}{more}")
    };
    ApiError::Server {
        status: status.as_u16(),
        code: String::new(),
        message,
    }
}
