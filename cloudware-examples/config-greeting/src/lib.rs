//! Greets with the deployment's configuration, and shows that it holds a
//! secret without ever revealing it.
//!
//! Any request answers, as plain text:
//!
//! ```text
//! Hello, world!
//! api_key: set (24 bytes)
//! ```
//!
//! where the first line is configuration value `greeting` (default
//! `Hello`) followed by `, world!`, and the second tells whether secret
//! `api_key` is set and how long it is: its value is never logged or
//! returned.
//!
//! ```sh
//! cloudware deploy greeting --package target/guests/wasm32-wasip2/release/config_greeting.wasm \
//!     --route /greet --config greeting=Bonjour --secret api_key=s3cr3t-value
//! curl localhost:8080/greet    # Bonjour, world!  /  api_key: set (12 bytes)
//! ```
//!
//! Configuration values and secrets both come through
//! `wasi:config/store`, which every deployment may import; secrets are
//! sealed at rest and never shown back by `cloudware history` or the API.

use cloudware_sdk::config;
use cloudware_sdk::http::{Request, Response};

fn handle(_request: Request) -> Response {
    let greeting = config::get("greeting").unwrap_or_else(|| "Hello".to_owned());
    let secret = match config::get("api_key") {
        Some(value) => format!("set ({} bytes)", value.len()),
        None => "not set".to_owned(),
    };
    // Logged through wasi:logging: the greeting and the secret's length,
    // never its value.
    cloudware_sdk::log::info!("greeting with {greeting:?}; api_key {secret}");
    Response::text(200, format!("{greeting}, world!\napi_key: {secret}\n"))
}

cloudware_sdk::http_handler!(handle);
