//! A hello component written with `wstd`, the async runtime for WASI 0.2 that
//! many third-party Rust components are built with. It stands for components
//! whose authors never heard of Cloudware: async `wasi:io` polling, `http`
//! crate types, and a `wasi:random/insecure-seed` import.
//!
//! Routes: `GET /` answers `Hello from wstd!`; anything else is a 404.

use wstd::http::body::Body;
use wstd::http::{Error, Method, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let (status, text) = if request.method() == Method::GET && request.uri().path() == "/" {
        (StatusCode::OK, "Hello from wstd!\n")
    } else {
        (StatusCode::NOT_FOUND, "not found\n")
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(text.into())?)
}
