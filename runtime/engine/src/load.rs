//! Turning bytes into a component: validation and compilation (or a
//! compile-cache hit); [`Engine::load_bytes`] also links it with no grants
//! and requires the HTTP handler, for serving one component as is.
//!
//! Each way a file can be unfit is its own [`LoadError`] with a message a
//! user can act on.

use crate::component::LinkedComponent;
use crate::digest::Digest;
use crate::engine::Engine;
use crate::link::{CompiledComponent, LinkPlan};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

/// The interface an HTTP component must export (any 0.2.x version).
pub const HTTP_HANDLER_INTERFACE: &str = "wasi:http/incoming-handler@0.2";

/// Why a file cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The path does not exist.
    #[error("no such file")]
    NotFound,
    /// The path exists but cannot be read.
    #[error("cannot read the file: {0}")]
    Read(#[source] std::io::Error),
    /// The bytes do not start with the wasm magic number.
    #[error("not a WebAssembly file (it does not start with `\\0asm`)")]
    NotWasm,
    /// A core module was given where a component is needed.
    #[error(
        "this is a core WebAssembly module, not a component; build for the `wasm32-wasip2` target or convert it with `wasm-tools component new`"
    )]
    CoreModule,
    /// A wasm binary of an unknown version or layer.
    #[error("unsupported WebAssembly binary (unknown version or layer)")]
    UnknownEncoding,
    /// The component is malformed or fails validation.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// The component exports no interface a deployment can run.
    #[error(
        "the component exports no interface a deployment can run (`wasi:http/incoming-handler`, `cloudware:platform/message-handler` or a service interface); it exports: {exports}"
    )]
    NothingToRun {
        /// The names it does export, comma separated.
        exports: String,
    },
    /// The component does not export the HTTP handler.
    #[error(
        "the component does not export `wasi:http/incoming-handler@0.2.x`, so it cannot serve HTTP (it exports: {exports})"
    )]
    MissingHandler {
        /// The names it does export, comma separated.
        exports: String,
    },
    /// The component imports a capability its deployment was not granted.
    #[error(
        "the component imports `{interface}` (capability `{capability}`), which its deployment was not granted"
    )]
    NotGranted {
        /// The imported interface.
        interface: String,
        /// The capability providing it.
        capability: String,
    },
    /// The component imports an interface that is neither WASI, a platform
    /// capability, nor linked to a service.
    #[error(
        "the component imports `{interface}`, which is not a platform interface and is not linked to a service that exports it"
    )]
    Unlinked {
        /// The imported interface.
        interface: String,
    },
    /// A service link does not fit (types differ, not exported, ...).
    #[error("cannot link `{interface}`: {reason}")]
    BadLink {
        /// The imported interface.
        interface: String,
        /// What does not fit.
        reason: String,
    },
    /// The component imports something the host does not provide.
    #[error("the component imports `{interface}`, which this host does not provide")]
    UnsatisfiedImport {
        /// The import's name, e.g. `acme:orders/api@1.0.0`.
        interface: String,
        /// wasmtime's full explanation.
        detail: String,
    },
}

/// What kind of wasm binary some bytes are, from their 8-byte header.
fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    match bytes[4..8] {
        [0x01, 0x00, 0x00, 0x00] => Err(LoadError::CoreModule),
        [_, _, 0x01, 0x00] => Ok(()),
        _ => Err(LoadError::UnknownEncoding),
    }
}

impl Engine {
    /// Reads, validates and prepares the HTTP component at `path`, with no
    /// capabilities granted.
    pub fn load_file(&self, path: &Path) -> Result<LinkedComponent, LoadError> {
        self.load_bytes(&read(path)?)
    }

    /// Validates, compiles and links an HTTP component with no
    /// capabilities granted. CPU-heavy; call it from a blocking context.
    pub fn load_bytes(&self, bytes: &[u8]) -> Result<LinkedComponent, LoadError> {
        let compiled = self.compile(bytes)?;
        let linked = compiled.link(&LinkPlan::default())?;
        if !linked.is_http() {
            check_exports(self, &compiled.component)?;
        }
        Ok(linked)
    }

    /// Reads and compiles the component at `path`.
    pub fn compile_file(&self, path: &Path) -> Result<CompiledComponent, LoadError> {
        self.compile(&read(path)?)
    }

    /// Validates and compiles a component from its bytes, or takes the
    /// compiled code from the cache when its digest was seen before. This
    /// is CPU-heavy; call it from a blocking context.
    pub fn compile(&self, bytes: &[u8]) -> Result<CompiledComponent, LoadError> {
        check_header(bytes)?;
        let digest = Digest::of(bytes);
        let started = Instant::now();
        let (component, cached) = match self.cache().and_then(|c| c.load(self.wasmtime(), &digest))
        {
            Some(component) => (component, true),
            None => {
                let component = Component::new(self.wasmtime(), bytes)
                    .map_err(|err| LoadError::Invalid(format!("{err:#}")))?;
                (component, false)
            }
        };
        let interfaces = Interfaces::of(self, &component);
        if !cached
            && let Some(cache) = self.cache()
            && let Err(err) = cache.store(&digest, &component)
        {
            tracing::warn!(%digest, error = %err, "cannot write the compile cache");
        }
        tracing::info!(
            %digest,
            cached,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "component compiled"
        );
        Ok(CompiledComponent {
            engine: self.clone(),
            digest,
            component,
            interfaces: Arc::new(interfaces),
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => LoadError::NotFound,
        _ => LoadError::Read(err),
    })
}

/// The names a component imports and exports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interfaces {
    /// Imported interfaces (e.g. `wasi:http/types@0.2.12`).
    pub imports: Vec<String>,
    /// Exported interfaces.
    pub exports: Vec<String>,
}

impl Interfaces {
    fn of(engine: &Engine, component: &Component) -> Self {
        let ty = component.component_type();
        Interfaces {
            imports: ty
                .imports(engine.wasmtime())
                .map(|(name, _)| name.to_string())
                .collect(),
            exports: ty
                .exports(engine.wasmtime())
                .map(|(name, _)| name.to_string())
                .collect(),
        }
    }
}

/// Checks that the HTTP handler is exported, listing what is exported if not.
fn check_exports(engine: &Engine, component: &Component) -> Result<(), LoadError> {
    let ty = component.component_type();
    let mut names = Vec::new();
    for (name, item) in ty.exports(engine.wasmtime()) {
        if name.starts_with(HTTP_HANDLER_INTERFACE)
            && matches!(item.ty, ComponentItem::ComponentInstance(_))
        {
            return Ok(());
        }
        names.push(name.to_string());
    }
    Err(LoadError::MissingHandler {
        exports: if names.is_empty() {
            "nothing".to_string()
        } else {
            names.join(", ")
        },
    })
}

/// Names the import wasmtime could not satisfy, from its error.
pub(crate) fn unsatisfied_import(err: &wasmtime::Error) -> LoadError {
    let detail = format!("{err:#}");
    // wasmtime reports "component imports instance `NAME`, but a matching
    // implementation was not found in the linker"; take the first quoted name.
    let interface = detail
        .split('`')
        .nth(1)
        .map(str::to_string)
        .unwrap_or_else(|| detail.clone());
    LoadError::UnsatisfiedImport { interface, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_classified() {
        assert!(matches!(
            check_header(b"hello world"),
            Err(LoadError::NotWasm)
        ));
        assert!(matches!(check_header(b"\0as"), Err(LoadError::NotWasm)));
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(LoadError::CoreModule)
        ));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
        assert!(matches!(
            check_header(b"\0asm\x0d\0\x02\0"),
            Err(LoadError::UnknownEncoding)
        ));
    }
}
