//! A component that drives the key-value capability over HTTP, for the
//! capability's integration tests. It imports `wasi:keyvalue/store`,
//! `wasi:keyvalue/atomics`, `wasi:keyvalue/batch` and
//! `cloudware:platform/keyvalue-ext`.
//!
//! Routes (any method; query parameters percent-decoded; every route takes
//! `bucket=NAME`):
//! - `/open` opens the bucket and answers `opened`.
//! - `/get?key=K` answers the value, or 404 `absent`.
//! - `/set?key=K` stores the request body.
//! - `/delete?key=K`, `/exists?key=K` (`true`/`false`).
//! - `/incr?key=K[&delta=N]` increments (by 1) and answers the new value.
//! - `/cas?key=K&value=V[&expected=E]` compare-and-swap (no `expected`:
//!   only if absent); answers `true` or `false`.
//! - `/ttl?key=K&ms=N` stores the request body for `N` milliseconds.
//! - `/list` answers every key (all pages), sorted, one per line.
//! - `/many?keys=a,b,c` sets each key to its own name (`set-many`), then
//!   answers `get-many` of the same keys plus `missing` as `k=v` lines.
//!
//! A key-value error answers 403 (`access-denied`), 404 (`no-such-store`)
//! or 500 (`other: MESSAGE`), with that text as the body.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "cloudware:platform/http-service",
    generate_all,
});

use cloudware::platform::keyvalue_ext;
use exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::keyvalue::store::{self, Bucket};
use wasi::keyvalue::{atomics, batch};

/// How many bytes one read of the request body asks for.
const READ_CHUNK: u64 = 64 * 1024;
/// How many bytes one write of the response body hands over.
const WRITE_CHUNK: usize = 4096;

struct Component;

impl Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
        let params = parse_query(query);
        let body = read_body(request);
        let (status, text) = match route(path, &params, body) {
            Ok(Reply(status, text)) => (status, text),
            Err(Failure::Kv(err)) => describe(&err),
            Err(Failure::BadRequest(message)) => (400, message),
        };
        send(response_out, status, text.as_bytes());
    }
}

export!(Component);

/// A successful answer: status and body.
struct Reply(u16, String);

enum Failure {
    Kv(store::Error),
    BadRequest(String),
}

impl From<store::Error> for Failure {
    fn from(err: store::Error) -> Self {
        Failure::Kv(err)
    }
}

fn ok(text: impl Into<String>) -> Result<Reply, Failure> {
    Ok(Reply(200, text.into()))
}

fn route(path: &str, params: &[(String, String)], body: Vec<u8>) -> Result<Reply, Failure> {
    let bucket = store::open(param(params, "bucket").unwrap_or(""))?;
    let key = || param(params, "key").ok_or_else(|| Failure::BadRequest("missing key".into()));
    match path {
        "/open" => ok("opened"),
        "/get" => match bucket.get(key()?)? {
            Some(value) => ok(String::from_utf8_lossy(&value)),
            None => Ok(Reply(404, "absent".into())),
        },
        "/set" => {
            bucket.set(key()?, &body)?;
            ok("ok")
        }
        "/delete" => {
            bucket.delete(key()?)?;
            ok("ok")
        }
        "/exists" => ok(bucket.exists(key()?)?.to_string()),
        "/incr" => {
            let delta = number(params, "delta")?.unwrap_or(1);
            ok(atomics::increment(&bucket, key()?, delta)?.to_string())
        }
        "/cas" => {
            let value = param(params, "value").unwrap_or("");
            let expected = param(params, "expected").map(str::as_bytes);
            let swapped =
                keyvalue_ext::compare_and_swap(&bucket, key()?, expected, value.as_bytes())?;
            ok(swapped.to_string())
        }
        "/ttl" => {
            let ms =
                number(params, "ms")?.ok_or_else(|| Failure::BadRequest("missing ms".into()))?;
            keyvalue_ext::set_with_ttl(&bucket, key()?, &body, ms)?;
            ok("ok")
        }
        "/list" => ok(list_all(&bucket)?),
        "/many" => many(&bucket, param(params, "keys").unwrap_or("")),
        _ => Ok(Reply(404, "no such route".into())),
    }
}

/// Every key of the bucket, following the cursor, sorted, one per line.
fn list_all(bucket: &Bucket) -> Result<String, Failure> {
    let mut keys = Vec::new();
    let mut cursor = None;
    // Bounded: a bucket of the tests holds far fewer pages.
    for _ in 0..10_000 {
        let page = bucket.list_keys(cursor)?;
        keys.extend(page.keys);
        cursor = page.cursor;
        if cursor.is_none() {
            keys.sort();
            keys.dedup();
            return Ok(keys.join("\n"));
        }
    }
    Err(Failure::BadRequest("listing did not end".into()))
}

fn many(bucket: &Bucket, keys: &str) -> Result<Reply, Failure> {
    let keys: Vec<String> = keys
        .split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect();
    let pairs: Vec<(String, Vec<u8>)> = keys
        .iter()
        .map(|k| (k.clone(), k.clone().into_bytes()))
        .collect();
    batch::set_many(bucket, &pairs)?;
    let mut asked = keys.clone();
    asked.push("missing".into());
    let found = batch::get_many(bucket, &asked)?;
    let lines: Vec<String> = asked
        .iter()
        .zip(found)
        .map(|(key, value)| match value {
            Some((_, value)) => format!("{key}={}", String::from_utf8_lossy(&value)),
            None => format!("{key}=<none>"),
        })
        .collect();
    batch::delete_many(bucket, &keys)?;
    ok(lines.join("\n"))
}

fn describe(err: &store::Error) -> (u16, String) {
    match err {
        store::Error::AccessDenied => (403, "access-denied".into()),
        store::Error::NoSuchStore => (404, "no-such-store".into()),
        store::Error::Other(message) => (500, format!("other: {message}")),
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn number(params: &[(String, String)], name: &str) -> Result<Option<u64>, Failure> {
    param(params, name)
        .map(|text| {
            text.parse()
                .map_err(|_| Failure::BadRequest(format!("{name} is not a number")))
        })
        .transpose()
}

/// Splits `a=1&b=2`, percent-decoding names and values.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The whole request body (empty if it cannot be read).
fn read_body(request: IncomingRequest) -> Vec<u8> {
    let mut bytes = Vec::new();
    let Ok(body) = request.consume() else {
        return bytes;
    };
    if let Ok(stream) = body.stream() {
        // Ends at `closed`, or early if the stream fails.
        while let Ok(chunk) = stream.blocking_read(READ_CHUNK) {
            bytes.extend_from_slice(&chunk);
        }
    }
    bytes
}

/// Sends a plain-text response.
fn send(response_out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = [
        ("content-type".to_owned(), b"text/plain".to_vec()),
        (
            "content-length".to_owned(),
            body.len().to_string().into_bytes(),
        ),
    ];
    let Ok(fields) = Fields::from_list(&headers) else {
        return;
    };
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(response_out, Ok(response));
    let Ok(stream) = outgoing.write() else {
        return;
    };
    for chunk in body.chunks(WRITE_CHUNK) {
        if stream.blocking_write_and_flush(chunk).is_err() {
            return;
        }
    }
    drop(stream);
    let _ = OutgoingBody::finish(outgoing, None);
}
