//! Fetches a URL through outgoing `wasi:http` and relays the answer.
//!
//! `GET /?url=http://HOST[:PORT]/PATH` fetches the URL and answers with its
//! status, `content-type` and body (at most 1 MiB). The platform lets a
//! deployment reach only the hosts it was granted with `--allow-outbound`;
//! any other host answers 403 `outbound request denied`. Without `url` the
//! answer is a short usage text (so the health probe passes).
//!
//! ```sh
//! cloudware deploy fetch --package target/guests/wasm32-wasip2/release/outbound_fetch.wasm \
//!     --route /fetch --allow-outbound example.com
//! curl 'localhost:8080/fetch?url=http://example.com/'       # example.com's page
//! curl 'localhost:8080/fetch?url=http://example.org/'       # 403 outbound request denied
//! ```
//!
//! Outgoing HTTP has no idiomatic wrapper in the SDK yet; this example uses
//! the raw [`cloudware_sdk::bindings`].

use cloudware_sdk::bindings::wasi::http::outgoing_handler;
use cloudware_sdk::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingResponse, Method, OutgoingRequest, Scheme,
};
use cloudware_sdk::bindings::wasi::io::streams::StreamError;
use cloudware_sdk::http::{Request, Response};

/// The most of the upstream body relayed.
const MAX_BODY: usize = 1024 * 1024;

fn handle(request: Request) -> Response {
    let Some(url) = request.query_param("url") else {
        return Response::text(200, "usage: GET ?url=http://HOST/PATH\n");
    };
    let target = match Target::parse(&url) {
        Ok(target) => target,
        Err(message) => return Response::text(400, format!("{message}\n")),
    };
    match fetch(&target) {
        Ok(response) => response,
        Err(ErrorCode::HttpRequestDenied) => Response::text(
            403,
            format!(
                "outbound request denied: {} is not allowed\n",
                target.authority
            ),
        ),
        Err(err) => Response::text(502, format!("fetching {url} failed: {err:?}\n")),
    }
}

cloudware_sdk::http_handler!(handle);

/// A URL split the way `outgoing-request` takes it.
struct Target {
    scheme: Scheme,
    authority: String,
    path_with_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("not an absolute URL: {url}"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(format!("unsupported scheme: {other}")),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("no host in {url}"));
        }
        let path_with_query = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        Ok(Target {
            scheme,
            authority: authority.to_owned(),
            path_with_query,
        })
    }
}

/// Sends `GET target` and turns the answer into a response.
fn fetch(target: &Target) -> Result<Response, ErrorCode> {
    let request = OutgoingRequest::new(Fields::new());
    let invalid = |what: &str| ErrorCode::InternalError(Some(format!("invalid {what}")));
    request
        .set_method(&Method::Get)
        .map_err(|()| invalid("method"))?;
    request
        .set_scheme(Some(&target.scheme))
        .map_err(|()| invalid("scheme"))?;
    request
        .set_authority(Some(&target.authority))
        .map_err(|()| invalid("authority"))?;
    request
        .set_path_with_query(Some(&target.path_with_query))
        .map_err(|()| invalid("path"))?;
    let pending = outgoing_handler::handle(request, None)?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or_else(|| invalid("response state"))?
        .map_err(|()| invalid("response state"))??;
    relay(response)
}

/// Reads the upstream answer (up to [`MAX_BODY`]) into a response.
fn relay(upstream: IncomingResponse) -> Result<Response, ErrorCode> {
    let status = upstream.status();
    let content_type = upstream
        .headers()
        .get("content-type")
        .into_iter()
        .next()
        .unwrap_or_else(|| b"application/octet-stream".to_vec());
    let body = upstream
        .consume()
        .map_err(|()| ErrorCode::InternalError(Some("body already taken".into())))?;
    let stream = body
        .stream()
        .map_err(|()| ErrorCode::InternalError(Some("body stream already taken".into())))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > MAX_BODY {
                    bytes.truncate(MAX_BODY);
                    break;
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(err)) => {
                return Err(ErrorCode::InternalError(Some(err.to_debug_string())));
            }
        }
    }
    Ok(Response::new(status)
        .header("content-type", content_type)
        .body(bytes))
}
