//! The guest components the tests run, built by this crate's build script.
//!
//! Each constant is the absolute path of a component file; [`ALL`] lists
//! them all. The build script compiles `cloudware-examples/` and
//! `tests/programs/` for `wasm32-wasip2` into `<repository>/target/guests`
//! whenever their sources (or the SDK and WIT they use) change, so
//! `cargo test` alone builds everything a test needs. Two components come
//! from other toolchains:
//!
//! - [`ADAPTER_HELLO`] is built as `cargo component build` builds a
//!   library: a `wasm32-wasip1` core module, componentized with
//!   `wit-component` and the `wasi_snapshot_preview1` reactor adapter.
//! - [`JCO_HELLO`] is JavaScript componentized by `jco componentize`
//!   (componentize-js and StarlingMonkey) from `tests/programs-js`; it is
//!   `None` when `node` or `npm` was missing at build time, or when
//!   `CLOUDWARE_SKIP_JS=1` was set.
//!
//! ```no_run
//! let bytes = cloudware_test_artifacts::read(cloudware_test_artifacts::HELLO);
//! assert!(bytes.starts_with(b"\0asm"));
//! ```

use std::path::Path;

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// The names a component imports at its top level, such as
/// `wasi:http/types@0.2.12`.
///
/// # Panics
///
/// If `bytes` is not a well-formed component.
pub fn component_imports(bytes: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    walk(bytes, |depth, payload| {
        if let (0, wasmparser::Payload::ComponentImportSection(reader)) = (depth, payload) {
            for import in reader.clone() {
                names.push(import.expect("component import").name.name.to_owned());
            }
        }
    });
    names
}

/// The `(module, name)` imports of every core module inside a component,
/// at any depth (the component's own modules, adapters, shims).
///
/// # Panics
///
/// If `bytes` is not a well-formed component.
pub fn core_module_imports(bytes: &[u8]) -> Vec<(String, String)> {
    let mut imports = Vec::new();
    walk(bytes, |_, payload| {
        if let wasmparser::Payload::ImportSection(reader) = payload {
            for import in reader.clone().into_imports() {
                let import = import.expect("core import");
                imports.push((import.module.to_owned(), import.name.to_owned()));
            }
        }
    });
    imports
}

/// Calls `visit` with every payload of `bytes` and its nesting depth (0:
/// the outermost component or module).
fn walk(bytes: &[u8], mut visit: impl FnMut(usize, &wasmparser::Payload<'_>)) {
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload.expect("well-formed wasm");
        visit(depth, &payload);
        match payload {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
}

/// Reads a component file.
///
/// # Panics
///
/// If the file cannot be read; artifacts are produced by the build script,
/// so a missing one is a broken build, not a condition to handle.
pub fn read(path: impl AsRef<Path>) -> Vec<u8> {
    let path = path.as_ref();
    std::fs::read(path)
        .unwrap_or_else(|err| panic!("cannot read test artifact {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `\0asm` followed by the component-model version and layer bytes.
    const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

    #[test]
    fn every_artifact_is_a_component() {
        assert!(!ALL.is_empty());
        for (name, path) in ALL {
            assert!(Path::new(path).is_absolute(), "{name}: {path} is relative");
            let bytes = read(path);
            assert!(
                bytes.starts_with(&COMPONENT_HEADER),
                "{name}: {path} does not start with a component header: {:02x?}",
                &bytes[..bytes.len().min(8)]
            );
        }
    }

    #[test]
    fn constants_are_listed_in_all() {
        let paths = [
            HELLO,
            KV_COUNTER,
            CONFIG_GREETING,
            OUTBOUND_FETCH,
            ORDERS_SERVICE,
            ORDERS_CLIENT,
            QUEUE_PRODUCER,
            QUEUE_WORKER,
            PUBSUB_PUBLISHER,
            PUBSUB_SUBSCRIBER,
            WASIP2_HELLO,
            HOSTILE,
            WSTD_HELLO,
            KV_GUEST,
            SVC_ECHO,
            SVC_CALLER,
            SVC_WRONG,
            ADAPTER_HELLO,
        ];
        for path in paths.into_iter().chain(JCO_HELLO) {
            assert!(ALL.iter().any(|(_, listed)| *listed == path), "{path}");
        }
    }

    /// The adapted component is what cargo-component makes: its own core
    /// module speaks `wasi_snapshot_preview1`, which only the adapter
    /// module inside it provides, and the adapter pulls in WASI 0.2
    /// interfaces the guest's WIT world never names. A plain `wasm32-wasip2`
    /// build has neither.
    #[test]
    fn adapter_hello_carries_the_preview1_adapter() {
        let adapted = read(ADAPTER_HELLO);
        let core = core_module_imports(&adapted);
        assert!(
            core.iter()
                .any(|(module, name)| module == "wasi_snapshot_preview1" && name == "environ_get"),
            "no core module imports wasi_snapshot_preview1: {core:?}"
        );
        let imports = component_imports(&adapted);
        assert!(
            imports
                .iter()
                .any(|name| name.starts_with("wasi:cli/environment@0.2.")),
            "the adapted component does not import wasi:cli/environment: {imports:?}"
        );
        assert!(
            imports
                .iter()
                .any(|name| name.starts_with("wasi:http/types@0.2.")),
            "{imports:?}"
        );

        let plain = read(WASIP2_HELLO);
        assert!(
            !core_module_imports(&plain)
                .iter()
                .any(|(module, _)| module == "wasi_snapshot_preview1"),
            "a wasm32-wasip2 build should need no preview1 adapter"
        );
    }

    #[test]
    fn jco_hello_is_a_componentize_js_component() {
        let Some(path) = JCO_HELLO else {
            eprintln!("SKIPPED: JCO_HELLO is None (node or npm missing at build time)");
            return;
        };
        let bytes = read(path);
        let imports = component_imports(&bytes);
        assert!(
            imports
                .iter()
                .any(|name| name.starts_with("wasi:http/types@0.2.")),
            "{imports:?}"
        );
    }
}
