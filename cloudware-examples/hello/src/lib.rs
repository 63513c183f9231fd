//! The hello-world Cloudware component, written with `cloudware-sdk`.
//!
//! Routes (any method):
//! - `/` answers `Hello from Cloudware!` as plain text; kept minimal because
//!   it is the benchmark route.
//! - `/echo` streams the request body back with the request's content type
//!   (or `application/octet-stream`).
//! - `/info` reads the whole body and describes the request as JSON:
//!   `{"method", "path", "query", "headers": {name: value}, "body_len"}`.
//! - anything else is a 404.

use std::collections::BTreeMap;
use std::io;

use cloudware_sdk::http::{Error, Request, Response};
use serde::Serialize;

fn handle(request: Request) -> Result<Response, Error> {
    match request.path() {
        "/" => Ok(Response::text(200, "Hello from Cloudware!\n")),
        "/echo" => echo(request),
        "/info" => info(request),
        _ => Ok(Response::text(404, "not found\n")),
    }
}

cloudware_sdk::http_handler!(handle);

/// Streams the request body back as it arrives.
fn echo(request: Request) -> Result<Response, Error> {
    let content_type = request
        .header_bytes("content-type")
        .map_or_else(|| b"application/octet-stream".to_vec(), <[u8]>::to_vec);
    let body = request.into_body_reader()?;
    Ok(Response::stream(200, body).header("content-type", content_type))
}

/// What `/info` answers.
#[derive(Serialize)]
struct Info<'a> {
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    /// Repeated headers are joined with `", "`.
    headers: BTreeMap<&'a str, String>,
    body_len: u64,
}

/// Describes the request after counting its body (streamed, so any size works).
fn info(mut request: Request) -> Result<Response, Error> {
    let body_len = io::copy(&mut request.body_reader()?, &mut io::sink())?;
    let mut headers = BTreeMap::<&str, String>::new();
    for (name, value) in request.headers() {
        let value = String::from_utf8_lossy(value);
        headers
            .entry(name)
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let info = Info {
        method: request.method().as_str(),
        path: request.path(),
        query: request.query(),
        headers,
        body_len,
    };
    Ok(Response::json(200, &info))
}
