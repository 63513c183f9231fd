//! The error type of the HTTP API and the status code each error maps to.

use std::fmt;
use std::io;

/// What can go wrong while reading a request.
///
/// Each error knows the HTTP status it deserves ([`Error::status`]); a handler
/// returning `Result<_, Error>` answers with that status and the message.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The body is larger than the limit the handler accepts.
    BodyTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The body was already taken by an earlier call.
    BodyConsumed,
    /// Reading the body stream failed, e.g. the client went away.
    Io(io::Error),
    /// The body is not valid UTF-8.
    Utf8(std::string::FromUtf8Error),
    /// The body is not the JSON the handler expects.
    #[cfg(feature = "json")]
    Json(serde_json::Error),
}

impl Error {
    /// The HTTP status code that best answers a request failing this way:
    /// 413 for a body over the limit, 400 for an unreadable or malformed body,
    /// 500 for a handler that took the body twice.
    pub fn status(&self) -> u16 {
        match self {
            Error::BodyTooLarge { .. } => 413,
            Error::BodyConsumed => 500,
            Error::Io(_) | Error::Utf8(_) => 400,
            #[cfg(feature = "json")]
            Error::Json(_) => 400,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BodyTooLarge { limit } => {
                write!(f, "request body is larger than {limit} bytes")
            }
            Error::BodyConsumed => f.write_str("request body was already consumed"),
            Error::Io(err) => write!(f, "failed to read request body: {err}"),
            Error::Utf8(err) => write!(f, "request body is not valid UTF-8: {err}"),
            #[cfg(feature = "json")]
            Error::Json(err) => write!(f, "request body is not valid JSON: {err}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(err) => Some(err),
            Error::Utf8(err) => Some(err),
            #[cfg(feature = "json")]
            Error::Json(err) => Some(err),
            Error::BodyTooLarge { .. } | Error::BodyConsumed => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        Error::Io(err)
    }
}
