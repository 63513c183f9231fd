//! The response a handler returns, and [`IntoResponse`], which lets handlers
//! return `Result`s.

use std::any::Any;
use std::fmt;
use std::io::{self, Read};

use super::Error;
use super::fields::{self, HeaderList};

/// An HTTP response: status, headers and a body that is either in memory or
/// streamed from a reader.
///
/// ```
/// use cloudware_sdk::http::Response;
///
/// let response = Response::new(201)
///     .header("location", "/items/7")
///     .body("created\n");
/// assert_eq!(response.status(), 201);
/// ```
pub struct Response {
    status: u16,
    headers: HeaderList,
    body: Body,
}

/// Where a response body comes from.
pub(crate) enum Body {
    /// Sent as is, with a `content-length` header the SDK adds.
    Bytes(Vec<u8>),
    /// Copied to the host chunk by chunk after the response head is sent.
    Stream(Box<dyn Read>),
}

impl Response {
    /// A response with `status`, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: HeaderList::new(),
            body: Body::Bytes(Vec::new()),
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Self::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(text.into())
    }

    /// An `application/json` response with `value` serialized as JSON.
    ///
    /// If `value` cannot be serialized (a map with non-string keys, a failing
    /// `Serialize` impl) the response is a 500 saying so instead.
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(json) => Self::new(status)
                .header("content-type", "application/json")
                .body(json),
            Err(err) => Self::text(500, format!("failed to serialize JSON response: {err}\n")),
        }
    }

    /// A response whose body is read from `reader` and streamed to the client
    /// chunk by chunk, so bodies of any size pass in bounded memory.
    ///
    /// No `content-length` is added; set one yourself if you know it (the host
    /// then checks that exactly that many bytes are sent). If `reader` fails
    /// midway the response is aborted, which the client sees as a truncated
    /// body.
    pub fn stream(status: u16, reader: impl Read + 'static) -> Self {
        Self {
            status,
            headers: HeaderList::new(),
            body: Body::Stream(Box::new(reader)),
        }
    }

    /// Sets header `name` to `value`, replacing any earlier value of that name
    /// (case-insensitively). Use [`append_header`](Self::append_header) for a
    /// repeated header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        fields::set(&mut self.headers, name.into(), value.into());
        self
    }

    /// Adds a header, keeping earlier values of the same name.
    pub fn append_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body with `body`, sent from memory.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Body::Bytes(body.into());
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of header `name` (case-insensitive), if it is present
    /// and valid UTF-8.
    pub fn get_header(&self, name: &str) -> Option<&str> {
        fields::find(&self.headers, name).and_then(|value| std::str::from_utf8(value).ok())
    }

    /// All headers as (name, value) pairs, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_slice()))
    }

    /// The whole body, reading a streamed body to its end (for tests).
    pub fn read_body(self) -> io::Result<Vec<u8>> {
        match self.body {
            Body::Bytes(bytes) => Ok(bytes),
            Body::Stream(mut reader) => {
                let mut bytes = Vec::new();
                reader.read_to_end(&mut bytes)?;
                Ok(bytes)
            }
        }
    }

    pub(crate) fn into_parts(self) -> (u16, HeaderList, Body) {
        (self.status, self.headers, self.body)
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = match &self.body {
            Body::Bytes(bytes) => format!("{} bytes", bytes.len()),
            Body::Stream(_) => "stream".to_owned(),
        };
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers.len())
            .field("body", &body)
            .finish()
    }
}

/// Anything a handler may return.
///
/// Implemented for [`Response`], for [`Error`], and for `Result<T, E>` where
/// `T: IntoResponse` and `E: Display`. An `Err` becomes a plain-text response
/// with the error's message: with the status from [`Error::status`] when `E`
/// is this crate's [`Error`], and 500 otherwise. Errors answered with a 5xx
/// status are also written to stderr.
pub trait IntoResponse {
    /// Converts `self` into the response sent to the client.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        error_response(self.status(), &self)
    }
}

impl<T, E> IntoResponse for Result<T, E>
where
    T: IntoResponse,
    E: fmt::Display + 'static,
{
    fn into_response(self) -> Response {
        match self {
            Ok(value) => value.into_response(),
            Err(err) => {
                let status = (&err as &dyn Any)
                    .downcast_ref::<Error>()
                    .map_or(500, Error::status);
                error_response(status, &err)
            }
        }
    }
}

fn error_response(status: u16, err: &dyn fmt::Display) -> Response {
    if status >= 500 {
        eprintln!("cloudware-sdk: handler failed: {err}");
    }
    Response::text(status, format!("{err}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_status_headers_and_body() {
        let response = Response::text(200, "hi")
            .header("Content-Type", "text/html")
            .append_header("set-cookie", "a=1")
            .append_header("set-cookie", "b=2");
        assert_eq!(response.status(), 200);
        assert_eq!(response.get_header("content-type"), Some("text/html"));
        assert_eq!(
            response
                .headers()
                .filter(|(n, _)| *n == "set-cookie")
                .count(),
            2
        );
        assert_eq!(response.read_body().ok(), Some(b"hi".to_vec()));
    }

    #[test]
    fn streamed_body_reads_through() {
        let response = Response::stream(200, io::Cursor::new(vec![7u8; 100_000]));
        assert_eq!(
            response.read_body().map(|body| body.len()).ok(),
            Some(100_000)
        );
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_response_serializes() {
        let response = Response::json(201, &serde_json::json!({"a": 1}));
        assert_eq!(response.status(), 201);
        assert_eq!(
            response.get_header("content-type"),
            Some("application/json")
        );
        assert_eq!(response.read_body().ok(), Some(br#"{"a":1}"#.to_vec()));
    }

    #[test]
    fn errors_become_text_responses_with_fitting_status() {
        let failed: Result<Response, String> = Err("no database".into());
        let response = failed.into_response();
        assert_eq!(response.status(), 500);
        assert_eq!(response.read_body().ok(), Some(b"no database\n".to_vec()));

        let too_large: Result<Response, Error> = Err(Error::BodyTooLarge { limit: 4 });
        assert_eq!(too_large.into_response().status(), 413);

        let ok: Result<Response, Error> = Ok(Response::new(204));
        assert_eq!(ok.into_response().status(), 204);
    }
}
