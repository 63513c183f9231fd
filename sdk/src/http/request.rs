//! The incoming request as handlers see it: method, target, headers, and a
//! body that is read only when the handler asks for it.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;

use crate::bindings::wasi::http::types::{self as wasi, IncomingRequest};

use super::Error;
use super::body::BodyReader;
use super::fields::{self, HeaderList};

/// The body size [`Request::body`], [`Request::text`] and [`Request::json`]
/// accept: 16 MiB. Use [`Request::body_with_limit`] for another limit, or
/// [`Request::body_reader`] to stream a body of any size.
pub const DEFAULT_BODY_LIMIT: u64 = 16 * 1024 * 1024;

/// An HTTP request method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `CONNECT`
    Connect,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH`
    Patch,
    /// Any other method, as sent.
    Other(String),
}

impl Method {
    /// The method's name as it appears on the wire, e.g. `"GET"`.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
            Method::Other(name) => name,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<wasi::Method> for Method {
    fn from(method: wasi::Method) -> Self {
        match method {
            wasi::Method::Get => Method::Get,
            wasi::Method::Head => Method::Head,
            wasi::Method::Post => Method::Post,
            wasi::Method::Put => Method::Put,
            wasi::Method::Delete => Method::Delete,
            wasi::Method::Connect => Method::Connect,
            wasi::Method::Options => Method::Options,
            wasi::Method::Trace => Method::Trace,
            wasi::Method::Patch => Method::Patch,
            wasi::Method::Other(name) => Method::Other(name),
        }
    }
}

/// An incoming HTTP request.
///
/// Method, target and headers are copied out of the host when the request
/// arrives; the body stays with the host until one of the body methods takes
/// it. A body can be taken once: [`body`](Self::body), [`text`](Self::text),
/// [`json`](Self::json) and the body readers all consume it.
///
/// Handlers can be unit-tested on any target with a request built by
/// [`Request::new`].
pub struct Request {
    method: Method,
    scheme: Option<String>,
    authority: Option<String>,
    target: String,
    headers: HeaderList,
    body: BodyState,
}

enum BodyState {
    Incoming(IncomingRequest),
    Memory(Vec<u8>),
    Taken,
}

impl Request {
    /// A request built in memory, for testing handlers: no scheme, no
    /// authority, no headers and an empty body until set with the `with_*`
    /// methods.
    pub fn new(method: Method, path_with_query: impl Into<String>) -> Self {
        Self {
            method,
            scheme: None,
            authority: None,
            target: path_with_query.into(),
            headers: HeaderList::new(),
            body: BodyState::Memory(Vec::new()),
        }
    }

    /// Adds a header (builder style, for tests).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the authority, e.g. `example.com:8080` (builder style, for tests).
    pub fn with_authority(mut self, authority: impl Into<String>) -> Self {
        self.authority = Some(authority.into());
        self
    }

    /// Sets the body (builder style, for tests).
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = BodyState::Memory(body.into());
        self
    }

    /// Copies method, target and headers out of the host's request; the body
    /// stays behind until asked for.
    pub(crate) fn from_incoming(incoming: IncomingRequest) -> Self {
        let headers = incoming.headers().entries();
        Self {
            method: incoming.method().into(),
            scheme: incoming.scheme().map(|scheme| match scheme {
                wasi::Scheme::Http => "http".to_owned(),
                wasi::Scheme::Https => "https".to_owned(),
                wasi::Scheme::Other(other) => other,
            }),
            authority: incoming.authority(),
            target: incoming.path_with_query().unwrap_or_else(|| "/".to_owned()),
            headers,
            body: BodyState::Incoming(incoming),
        }
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The scheme (`"http"`, `"https"` or another), if the host knows it.
    pub fn scheme(&self) -> Option<&str> {
        self.scheme.as_deref()
    }

    /// The authority (`host[:port]`) the request was sent to, if known.
    pub fn authority(&self) -> Option<&str> {
        self.authority.as_deref()
    }

    /// The request target as sent: path plus `?query`, e.g. `/a/b?x=1`.
    pub fn path_with_query(&self) -> &str {
        &self.target
    }

    /// The path of the target, without the query; never empty.
    pub fn path(&self) -> &str {
        fields::split_target(&self.target).0
    }

    /// The raw query string (after `?`, not decoded), if there is one.
    pub fn query(&self) -> Option<&str> {
        fields::split_target(&self.target).1
    }

    /// The decoded value of the first query parameter called `name`
    /// (form-urlencoded: `+` is a space, `%XX` a byte).
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        self.query_params()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// All query parameters, decoded, in order.
    pub fn query_params(&self) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
        fields::query_pairs(self.query().unwrap_or(""))
    }

    /// The first value of header `name` (case-insensitive), if it is present
    /// and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// The first value of header `name` (case-insensitive) as raw bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        fields::find(&self.headers, name)
    }

    /// All headers as (name, value) pairs, in the order received. Names are
    /// lowercase when they come from the host.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_slice()))
    }

    /// The `content-length` header, if present and a valid number.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")?.trim().parse().ok()
    }

    /// Reads the whole body, up to [`DEFAULT_BODY_LIMIT`] bytes.
    pub fn body(&mut self) -> Result<Vec<u8>, Error> {
        self.body_with_limit(DEFAULT_BODY_LIMIT)
    }

    /// Reads the whole body, failing with [`Error::BodyTooLarge`] if it is
    /// longer than `limit` bytes (checked against `content-length` first, so
    /// an honest oversized request is refused without reading it).
    pub fn body_with_limit(&mut self, limit: u64) -> Result<Vec<u8>, Error> {
        let declared = self.content_length();
        if declared.is_some_and(|length| length > limit) {
            return Err(Error::BodyTooLarge { limit });
        }
        let capacity = declared.unwrap_or(0).min(limit);
        let mut bytes = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        self.body_reader()?
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)?;
        check_limit(bytes, limit)
    }

    /// Reads the whole body (see [`body`](Self::body)) as UTF-8 text.
    pub fn text(&mut self) -> Result<String, Error> {
        String::from_utf8(self.body()?).map_err(Error::Utf8)
    }

    /// Reads the whole body (see [`body`](Self::body)) and parses it as JSON.
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, Error> {
        serde_json::from_slice(&self.body()?).map_err(Error::Json)
    }

    /// Takes the body as a stream, leaving method, target and headers readable.
    pub fn body_reader(&mut self) -> Result<BodyReader, Error> {
        match std::mem::replace(&mut self.body, BodyState::Taken) {
            BodyState::Incoming(incoming) => BodyReader::incoming(incoming),
            BodyState::Memory(bytes) => Ok(BodyReader::memory(bytes)),
            BodyState::Taken => Err(Error::BodyConsumed),
        }
    }

    /// Turns the request into a stream over its body.
    pub fn into_body_reader(mut self) -> Result<BodyReader, Error> {
        self.body_reader()
    }
}

fn check_limit(bytes: Vec<u8>, limit: u64) -> Result<Vec<u8>, Error> {
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        Err(Error::BodyTooLarge { limit })
    } else {
        Ok(bytes)
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = match &self.body {
            BodyState::Incoming(_) => "incoming",
            BodyState::Memory(_) => "memory",
            BodyState::Taken => "taken",
        };
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("scheme", &self.scheme)
            .field("authority", &self.authority)
            .field("path_with_query", &self.target)
            .field("headers", &self.headers.len())
            .field("body", &body)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, Read};

    use super::*;

    #[test]
    fn target_parts_and_query_params() {
        let request = Request::new(Method::Get, "/items/7?name=caf%C3%A9&tag=a+b&tag=c");
        assert_eq!(request.path(), "/items/7");
        assert_eq!(request.query(), Some("name=caf%C3%A9&tag=a+b&tag=c"));
        assert_eq!(request.query_param("name").as_deref(), Some("café"));
        assert_eq!(request.query_param("tag").as_deref(), Some("a b"));
        assert_eq!(request.query_param("missing"), None);
        assert_eq!(request.query_params().count(), 3);
        assert_eq!(request.method().as_str(), "GET");
        assert_eq!(Method::Other("PURGE".into()).to_string(), "PURGE");
    }

    #[test]
    fn headers_are_looked_up_case_insensitively() {
        let request = Request::new(Method::Post, "/")
            .with_header("content-type", "application/json")
            .with_header("x-bin", vec![0xff, 0xfe]);
        assert_eq!(request.header("Content-Type"), Some("application/json"));
        assert_eq!(request.header("x-bin"), None);
        assert_eq!(request.header_bytes("X-Bin"), Some(&[0xff, 0xfe][..]));
        assert_eq!(request.headers().count(), 2);
    }

    #[test]
    fn body_is_taken_once() {
        let mut request = Request::new(Method::Post, "/").with_body("hello");
        assert_eq!(request.text().ok().as_deref(), Some("hello"));
        assert!(matches!(request.body(), Err(Error::BodyConsumed)));
    }

    #[test]
    fn body_limit_is_enforced_on_declared_and_actual_length() {
        let mut request = Request::new(Method::Post, "/")
            .with_header("content-length", "100")
            .with_body("short");
        assert!(matches!(
            request.body_with_limit(10),
            Err(Error::BodyTooLarge { limit: 10 })
        ));
        let mut request = Request::new(Method::Post, "/").with_body("0123456789");
        assert!(matches!(
            request.body_with_limit(9),
            Err(Error::BodyTooLarge { limit: 9 })
        ));
        let mut request = Request::new(Method::Post, "/").with_body("0123456789");
        assert_eq!(
            request.body_with_limit(10).ok(),
            Some(b"0123456789".to_vec())
        );
    }

    #[test]
    fn body_reader_streams_the_body() {
        let request = Request::new(Method::Post, "/").with_body("line one\nline two\n");
        let mut reader = request.into_body_reader().expect("body not yet taken");
        let mut first = String::new();
        reader.read_line(&mut first).expect("in-memory read");
        let mut rest = String::new();
        reader.read_to_string(&mut rest).expect("in-memory read");
        assert_eq!(
            (first.as_str(), rest.as_str()),
            ("line one\n", "line two\n")
        );
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_body_parses_and_reports_errors() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Item {
            id: u32,
        }
        let mut request = Request::new(Method::Post, "/").with_body(r#"{"id": 7}"#);
        assert_eq!(request.json::<Item>().ok(), Some(Item { id: 7 }));
        let mut request = Request::new(Method::Post, "/").with_body("{");
        let err = request.json::<Item>().expect_err("invalid JSON");
        assert_eq!(err.status(), 400);
    }
}
