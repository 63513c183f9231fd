//! `cloudware serve` runs components made by other toolchains unchanged:
//! one built the way cargo-component builds it (a `wasm32-wasip1` core
//! module plus the `wasi_snapshot_preview1` adapter) and one made from
//! JavaScript by jco (componentize-js on the StarlingMonkey engine).

mod common;

use common::{HTTP_TIMEOUT, Reply, Server, block_on, full, send};
use std::net::SocketAddr;

/// Sends `method path` on a fresh connection, waiting at most
/// [`HTTP_TIMEOUT`].
fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("host", addr.to_string())
        .body(full(bytes::Bytes::new()))
        .expect("request");
    block_on(async move {
        tokio::time::timeout(HTTP_TIMEOUT, send(addr, request))
            .await
            .unwrap_or_else(|_| panic!("no answer to {method} {path} within {HTTP_TIMEOUT:?}"))
    })
}

/// Asserts a complete response with `status` and exactly `body`.
fn assert_reply(server: &Server, reply: &Reply, status: u16, body: &str) {
    assert_eq!(
        (reply.status, reply.body.as_deref()),
        (status, Ok(body.as_bytes())),
        "server stderr: {}",
        server.stderr()
    );
}

#[test]
fn a_cargo_component_style_component_answers_unchanged() {
    let path = cloudware_test_artifacts::ADAPTER_HELLO;
    // Made as cargo-component makes it, not as a wasip2 build: its own core
    // module speaks preview1, and the adapter inside it brings in WASI 0.2
    // interfaces (`wasi:cli/environment`, `wasi:filesystem`) that the
    // guest's world never names.
    let bytes = cloudware_test_artifacts::read(path);
    let core = cloudware_test_artifacts::core_module_imports(&bytes);
    assert!(
        core.iter()
            .any(|(module, _)| module == "wasi_snapshot_preview1"),
        "no core module of {path} imports wasi_snapshot_preview1: {core:?}"
    );
    let imports = cloudware_test_artifacts::component_imports(&bytes);
    for adapter_import in ["wasi:cli/environment@0.2.", "wasi:filesystem/preopens@0.2."] {
        assert!(
            imports.iter().any(|name| name.starts_with(adapter_import)),
            "{path} does not import {adapter_import}*: {imports:?}"
        );
    }

    let server = Server::start(path, &[]);
    let hello = request(server.addr, "GET", "/");
    assert_reply(&server, &hello, 200, "Hello from an adapted component!\n");
    // `std::env` goes through the adapter's `environ_get` to
    // `wasi:cli/environment`, which the runtime links with nothing in it.
    let env = request(server.addr, "GET", "/env");
    assert_reply(&server, &env, 200, "environment variables: 0\n");
    let missing = request(server.addr, "GET", "/no-such-page");
    assert_reply(&server, &missing, 404, "not found\n");
}

/// The jco component, if it was built. The build script leaves it out when
/// `node` or `npm` is missing; that is allowed on a developer's machine
/// (with a loud notice) but not in CI, where this panics.
fn jco_hello() -> Option<&'static str> {
    if let Some(path) = cloudware_test_artifacts::JCO_HELLO {
        return Some(path);
    }
    let in_ci = std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false");
    assert!(
        !in_ci,
        "CI is set but the jco component was not built: `node` and `npm` must be on the PATH \
         when cloudware-test-artifacts builds (see the cargo warning from its build script)"
    );
    eprintln!(
        "\n********************************************************************\n\
         SKIPPED: the jco component was not built (`node` or `npm` missing,\n\
         or CLOUDWARE_SKIP_JS set); install Node.js 20+ and rebuild to test it.\n\
         ********************************************************************\n"
    );
    None
}

#[test]
fn a_jco_component_answers_unchanged() {
    let Some(path) = jco_hello() else {
        return;
    };
    // Built against the WASI 0.2.10 proxy world of tests/programs-js, the
    // version componentize-js's engine implements: older than the host's
    // own WIT, which must not matter.
    let imports =
        cloudware_test_artifacts::component_imports(&cloudware_test_artifacts::read(path));
    assert!(
        imports.iter().any(|name| name == "wasi:http/types@0.2.10"),
        "{path} was not built against wasi:http@0.2.10: {imports:?}"
    );

    // StarlingMonkey makes a component of about 14 MiB, which takes minutes
    // to compile with the unoptimized Cranelift of a test build: keep the
    // compiled code between runs (the cache is keyed by the component's
    // digest and the engine's compatibility hash).
    let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/toolchains-compile-cache");
    let server = Server::start_raw(path, &["--cache-dir", cache]);
    let hello = request(server.addr, "GET", "/");
    assert_reply(&server, &hello, 200, "Hello from jco!\n");
    let info = request(server.addr, "GET", "/info");
    assert_reply(&server, &info, 200, "GET /info\n");
    let posted = request(server.addr, "POST", "/info");
    assert_reply(&server, &posted, 200, "POST /info\n");
    let missing = request(server.addr, "GET", "/no-such-page");
    assert_reply(&server, &missing, 404, "not found\n");
}
