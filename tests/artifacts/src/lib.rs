//! The guest components the tests run, built for `wasm32-wasip2` by this
//! crate's build script.
//!
//! Each constant is the absolute path of a component file; [`ALL`] lists
//! them all. The build script compiles `cloudware-examples/` and
//! `tests/programs/` into `<repository>/target/guests` whenever their sources
//! (or the SDK and WIT they use) change, so `cargo test` alone builds
//! everything a test needs.
//!
//! ```no_run
//! let bytes = cloudware_test_artifacts::read(cloudware_test_artifacts::HELLO);
//! assert!(bytes.starts_with(b"\0asm"));
//! ```

use std::path::Path;

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

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
        for path in [HELLO, WASIP2_HELLO, HOSTILE, WSTD_HELLO] {
            assert!(ALL.iter().any(|(_, listed)| *listed == path), "{path}");
        }
    }
}
