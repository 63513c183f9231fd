//! An idiomatic HTTP handler API over `wasi:http/incoming-handler`.
//!
//! A handler is a function from [`Request`] to anything that implements
//! [`IntoResponse`], registered with [`http_handler!`](crate::http_handler):
//!
//! ```no_run
//! use cloudware_sdk::http::{Request, Response};
//!
//! fn handle(request: Request) -> Response {
//!     Response::text(200, format!("hello from {}\n", request.path()))
//! }
//!
//! cloudware_sdk::http_handler!(handle);
//! ```
//!
//! Handlers may also return `Result<Response, E>` for any `E: Display`; an
//! error becomes a plain-text 500 response (or the status of this module's
//! [`Error`], such as 413 for an oversized body):
//!
//! ```no_run
//! use cloudware_sdk::http::{Error, Request, Response};
//!
//! fn handle(mut request: Request) -> Result<Response, Error> {
//!     let name = request.text()?;
//!     Ok(Response::text(200, format!("hello, {name}\n")))
//! }
//!
//! cloudware_sdk::http_handler!(handle);
//! ```

mod body;
mod error;
mod fields;
mod request;
mod response;
mod serve;

pub use body::BodyReader;
pub use error::Error;
pub use request::{DEFAULT_BODY_LIMIT, Method, Request};
pub use response::{IntoResponse, Response};

/// Implementation details of [`http_handler!`](crate::http_handler); not a
/// stable API.
#[doc(hidden)]
pub mod __private {
    pub use super::serve::serve;
}
