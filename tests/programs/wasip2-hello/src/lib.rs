//! A hello component written against the raw `wasip2` bindings only, the way
//! any third-party `wasi:http/proxy` component might be. The runtime must
//! serve it unchanged.
//!
//! Routes (any method):
//! - `/` answers `Hello from wasip2!` as plain text.
//! - `/echo` streams the request body back chunk by chunk, with the request's
//!   content type (or `application/octet-stream`).
//! - `/info` reads the whole body and describes the request as JSON:
//!   `{"method", "path", "query", "headers": {name: value}, "body_len"}`.
//! - `/fetch?url=http://HOST[:PORT]/PATH` makes an outbound GET and answers
//!   `upstream STATUS: BODY`, or 502 naming the `wasi:http` error code (e.g.
//!   `HttpRequestDenied` when the host is not on the allow-list).
//! - anything else is a 404.
//!
//! Every response carries the request's `x-echo` header back, if it had one.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingRequest, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, ResponseOutparam, Scheme,
};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

/// How many bytes one read of the request body asks for.
const READ_CHUNK: u64 = 64 * 1024;

struct Component;

impl Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        let path = target
            .split_once('?')
            .map_or(target.as_str(), |(path, _)| path);
        let headers = request.headers().entries();
        let mut response_headers: Vec<(String, Vec<u8>)> = headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("x-echo"))
            .map(|(_, value)| ("x-echo".to_owned(), value.clone()))
            .collect();
        match path {
            "/" => {
                response_headers.push(content_type("text/plain"));
                send(
                    response_out,
                    200,
                    &response_headers,
                    b"Hello from wasip2!\n",
                );
            }
            "/echo" => {
                let request_type = headers
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
                    .map(|(_, value)| value.clone());
                response_headers.push((
                    "content-type".to_owned(),
                    request_type.unwrap_or_else(|| b"application/octet-stream".to_vec()),
                ));
                echo(&request, response_out, &response_headers);
            }
            "/info" => {
                let json = info(&request, &target, &headers);
                response_headers.push(content_type("application/json"));
                send(response_out, 200, &response_headers, json.as_bytes());
            }
            "/fetch" => {
                response_headers.push(content_type("text/plain"));
                let url = target.split_once("?url=").map(|(_, url)| url);
                let (status, text) = match url.map(fetch) {
                    Some(Ok((status, body))) => (200, format!("upstream {status}: {body}")),
                    Some(Err(reason)) => (502, format!("outbound request failed: {reason}\n")),
                    None => (400, "missing ?url=\n".to_owned()),
                };
                send(response_out, status, &response_headers, text.as_bytes());
            }
            _ => {
                response_headers.push(content_type("text/plain"));
                send(response_out, 404, &response_headers, b"not found\n");
            }
        }
    }
}

wasip2::http::proxy::export!(Component);

fn content_type(value: &str) -> (String, Vec<u8>) {
    ("content-type".to_owned(), value.as_bytes().to_vec())
}

/// Sends the response head, then `body`, then finishes the body.
fn send(response_out: ResponseOutparam, status: u16, headers: &[(String, Vec<u8>)], body: &[u8]) {
    let mut headers = headers.to_vec();
    headers.push((
        "content-length".to_owned(),
        body.len().to_string().into_bytes(),
    ));
    let Some((outgoing_body, stream)) = start_response(response_out, status, &headers) else {
        return;
    };
    if write_all(&stream, body).is_ok() {
        drop(stream);
        // An error here means the client went away; nothing is left to do.
        let _ = OutgoingBody::finish(outgoing_body, None);
    }
}

/// Streams the request body into the response body as it arrives.
fn echo(request: &IncomingRequest, response_out: ResponseOutparam, headers: &[(String, Vec<u8>)]) {
    let Ok(incoming_body) = request.consume() else {
        return fail(response_out, "request body already consumed");
    };
    let Ok(input) = incoming_body.stream() else {
        return fail(response_out, "request body stream already taken");
    };
    let Some((outgoing_body, output)) = start_response(response_out, 200, headers) else {
        return;
    };
    loop {
        match input.blocking_read(READ_CHUNK) {
            Ok(chunk) => {
                if write_all(&output, &chunk).is_err() {
                    // Dropping the body unfinished aborts the response.
                    return;
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(_)) => return,
        }
    }
    drop(output);
    let _ = OutgoingBody::finish(outgoing_body, None);
}

/// GETs `url` through `wasi:http/outgoing-handler`; returns the upstream's
/// status and body, or why it failed.
fn fetch(url: &str) -> Result<(u16, String), String> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", rest)) => (Scheme::Http, rest),
        Some(("https", rest)) => (Scheme::Https, rest),
        _ => return Err(format!("unsupported url {url:?}")),
    };
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let request = OutgoingRequest::new(Fields::new());
    let configured = request.set_scheme(Some(&scheme)).is_ok()
        && request.set_authority(Some(authority)).is_ok()
        && request.set_path_with_query(Some(path)).is_ok();
    if !configured {
        return Err(format!("invalid url {url:?}"));
    }
    let future = outgoing_handler::handle(request, None).map_err(|code| format!("{code:?}"))?;
    future.subscribe().block();
    let response: IncomingResponse = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(format!("{code:?}")),
        Some(Err(())) | None => return Err("response already taken".to_owned()),
    };
    let status = response.status();
    let body = response
        .consume()
        .map_err(|()| "no response body".to_owned())?;
    let stream = body.stream().map_err(|()| "no body stream".to_owned())?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(err)) => return Err(err.to_debug_string()),
        }
    }
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// Builds the `/info` JSON after counting the request body.
fn info(request: &IncomingRequest, target: &str, headers: &[(String, Vec<u8>)]) -> String {
    let body_len = request.consume().ok().map_or(0, |body| {
        body.stream().ok().map_or(0, |stream| count_bytes(&stream))
    });
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };

    let mut names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let header_members: Vec<String> = names
        .iter()
        .map(|name| {
            let joined = headers
                .iter()
                .filter(|(other, _)| other == name)
                .map(|(_, value)| String::from_utf8_lossy(value))
                .collect::<Vec<_>>()
                .join(", ");
            format!("{}:{}", json_string(name), json_string(&joined))
        })
        .collect();

    format!(
        "{{\"method\":{},\"path\":{},\"query\":{},\"headers\":{{{}}},\"body_len\":{}}}",
        json_string(method_name(&request.method())),
        json_string(path),
        query.map_or_else(|| "null".to_owned(), json_string),
        header_members.join(","),
        body_len,
    )
}

/// Reads a stream to its end, returning how many bytes it had.
fn count_bytes(stream: &InputStream) -> u64 {
    let mut total = 0;
    while let Ok(skipped) = stream.blocking_skip(READ_CHUNK) {
        total += skipped;
    }
    total
}

fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(other) => other,
    }
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Sets the response head and opens its body for writing. If the host
/// rejects the head, the request fails with an internal error instead.
fn start_response(
    response_out: ResponseOutparam,
    status: u16,
    headers: &[(String, Vec<u8>)],
) -> Option<(OutgoingBody, OutputStream)> {
    let Ok(fields) = Fields::from_list(headers) else {
        fail(response_out, "invalid response headers");
        return None;
    };
    let response = OutgoingResponse::new(fields);
    if response.set_status_code(status).is_err() {
        fail(response_out, "invalid response status");
        return None;
    }
    let Ok(body) = response.body() else {
        fail(response_out, "response body already taken");
        return None;
    };
    ResponseOutparam::set(response_out, Ok(response));
    let stream = body.write().ok()?;
    Some((body, stream))
}

fn fail(response_out: ResponseOutparam, message: &str) {
    ResponseOutparam::set(
        response_out,
        Err(ErrorCode::InternalError(Some(message.to_owned()))),
    );
}

/// Writes all of `bytes`, as much per call as `check-write` allows, waiting
/// for the host to drain its buffer when it is full.
fn write_all(stream: &OutputStream, mut bytes: &[u8]) -> Result<(), StreamError> {
    while !bytes.is_empty() {
        let permitted = stream.check_write()?;
        if permitted == 0 {
            stream.subscribe().block();
            continue;
        }
        let len = bytes
            .len()
            .min(usize::try_from(permitted).unwrap_or(usize::MAX));
        stream.write(&bytes[..len])?;
        bytes = &bytes[len..];
    }
    stream.blocking_flush()
}
