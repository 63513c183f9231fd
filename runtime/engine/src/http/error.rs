//! How a request can fail on the host side, and the status each failure gets.

use http::StatusCode;
use std::time::Duration;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;

/// The guest ran past its request deadline (raised from the epoch callback
/// and from the host-side timeout alike).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request deadline of {0:?} passed")]
pub struct DeadlineExceeded(pub Duration);

/// Why a request got no normal response from its component.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Every instance slot was busy for longer than the queue timeout.
    #[error("overloaded: no free instance within {0:?}")]
    Overloaded(Duration),
    /// The guest did not finish within the request deadline.
    #[error("the component did not finish within {0:?}")]
    DeadlineExceeded(Duration),
    /// The guest trapped (panic, `unreachable`, stack overflow, memory cap …).
    #[error("the component trapped: {0}")]
    Trap(String),
    /// The guest returned without setting a response.
    #[error("the component returned without sending a response")]
    NoResponse,
    /// The guest answered with a `wasi:http` error code instead of a response.
    #[error("the component reported an error: {0:?}")]
    GuestError(ErrorCode),
    /// The request could not be handed to the guest.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A host-side failure (instantiation, resource table, task panic).
    #[error("internal error: {0}")]
    Internal(String),
}

impl HandleError {
    /// The HTTP status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            HandleError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            HandleError::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
            HandleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            HandleError::Trap(_)
            | HandleError::NoResponse
            | HandleError::GuestError(_)
            | HandleError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short machine-friendly name of the failure, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            HandleError::Overloaded(_) => "overloaded",
            HandleError::DeadlineExceeded(_) => "deadline",
            HandleError::Trap(_) => "trap",
            HandleError::NoResponse => "no_response",
            HandleError::GuestError(_) => "guest_error",
            HandleError::BadRequest(_) => "bad_request",
            HandleError::Internal(_) => "internal",
        }
    }

    /// Classifies the error a guest's handler task ended with.
    pub(crate) fn from_guest(err: wasmtime::Error) -> Self {
        if let Some(deadline) = err
            .chain()
            .find_map(|e| e.downcast_ref::<DeadlineExceeded>())
        {
            return HandleError::DeadlineExceeded(deadline.0);
        }
        if let Some(trap) = err.chain().find_map(|e| e.downcast_ref::<wasmtime::Trap>()) {
            return HandleError::Trap(describe_trap(*trap, &err));
        }
        let text = format!("{err:#}");
        if text.contains("forcing a memory growth failure")
            || text.contains("forcing trap when growing memory")
        {
            return HandleError::Trap("memory limit exceeded".into());
        }
        HandleError::Trap(first_line(&text))
    }
}

fn describe_trap(trap: wasmtime::Trap, err: &wasmtime::Error) -> String {
    use wasmtime::Trap;
    match trap {
        Trap::StackOverflow => "stack overflow".into(),
        Trap::UnreachableCodeReached => {
            "wasm `unreachable` executed (a panic or abort in the guest)".into()
        }
        Trap::MemoryOutOfBounds => "out-of-bounds memory access".into(),
        Trap::IntegerDivisionByZero => "integer division by zero".into(),
        Trap::Interrupt => "interrupted".into(),
        other => {
            let text = format!("{err:#}");
            if text.contains("memory growth") || text.contains("growing memory") {
                "memory limit exceeded".into()
            } else {
                other.to_string()
            }
        }
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("unknown failure");
    line.chars().take(200).collect()
}
