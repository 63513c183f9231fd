//! A hello component built the way `cargo component build` builds one: this
//! crate compiles to a `wasm32-wasip1` core module whose `wasi:http`
//! imports and exports come from `wit-bindgen`, while Rust `std` reaches the
//! system through `wasi_snapshot_preview1` imports. The
//! `cloudware-test-artifacts` build script turns the module into a
//! component with `wit-component` and the preview1 reactor adapter, which
//! maps those preview1 imports onto WASI 0.2 (`wasi:cli/environment`,
//! `wasi:cli/stderr`, ...). The runtime must serve the result unchanged.
//!
//! Routes (any method):
//! - `/` answers `Hello from an adapted component!`.
//! - `/env` answers how many environment variables the component sees,
//!   read through `std::env` and so through the adapter (the runtime grants
//!   none: `environment variables: 0`).
//! - anything else is a 404.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "cloudware:platform/http-service",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Component;

impl Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        let path = target
            .split_once('?')
            .map_or(target.as_str(), |(path, _)| path);
        match path {
            "/" => send(response_out, 200, "Hello from an adapted component!\n"),
            "/env" => {
                // `std::env::vars` calls `environ_get` of
                // `wasi_snapshot_preview1`, which the adapter implements
                // with `wasi:cli/environment`.
                let count = std::env::vars_os().count();
                send(
                    response_out,
                    200,
                    &format!("environment variables: {count}\n"),
                );
            }
            _ => send(response_out, 404, "not found\n"),
        }
    }
}

/// Sends a complete plain-text response.
fn send(response_out: ResponseOutparam, status: u16, text: &str) {
    let headers = Fields::new();
    // Appending a valid, unforbidden header to fresh fields cannot fail.
    let _ = headers.append("content-type", b"text/plain");
    let response = OutgoingResponse::new(headers);
    // Every status the routes above use is valid.
    let _ = response.set_status_code(status);
    let Ok(body) = response.body() else {
        return;
    };
    ResponseOutparam::set(response_out, Ok(response));
    if let Ok(stream) = body.write() {
        for chunk in text.as_bytes().chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                // The client went away; there is no one to tell.
                return;
            }
        }
        drop(stream);
    }
    // A body whose trailers cannot be sent is still a complete response.
    let _ = OutgoingBody::finish(body, None);
}

export!(Component);
