//! The key-value capability (the "cache cloud"): buckets owned by a
//! tenant, through the standard `wasi:keyvalue@0.2.0-draft` interfaces
//! (`store`, `atomics`, `batch`, exactly as `wasmtime serve -S keyvalue`
//! provides them) and the platform's `cloudware:platform/keyvalue-ext`
//! (compare-and-swap, time-to-live).
//!
//! A deployment is granted a [`KeyValueGrant`]: its tenant, the bucket
//! names it may open and the node's [`KvBackend`]. `open` succeeds only for
//! a granted name (else `error::access-denied`), and every key lives in the
//! tenant's and bucket's namespace, so tenants never see each other's data
//! even under the same bucket name. Without a grant every call is denied.
//!
//! Backends: [`SledBackend`] (embedded, the default) and [`RedisBackend`],
//! chosen by [`KvConfig`]. Their shared conventions (counters as decimal
//! ASCII, TTL rules, limits) are in the [`backend`] module.

#![warn(missing_docs)]

pub mod backend;
pub mod config;
mod host;
pub mod redis_backend;
pub mod sled_backend;

pub use backend::{
    BoxFuture, Found, KeyPage, KvBackend, KvError, KvResult, MAX_KEY_BYTES, MAX_PAGE, MAX_TTL,
    MAX_VALUE_BYTES, Namespace, spawn_sweeper,
};
pub use config::{BackendKind, ConfigError, GrantError, KvConfig, KvGrantSection};
pub use redis_backend::RedisBackend;
pub use sled_backend::SledBackend;

use cloudware_engine::Capability;
use cloudware_engine::http::RequestState;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use wasmtime::component::Linker;

/// `wasi:keyvalue/store`, with its version.
pub const STORE_INTERFACE: &str = "wasi:keyvalue/store@0.2.0-draft";
/// `wasi:keyvalue/atomics`, with its version.
pub const ATOMICS_INTERFACE: &str = "wasi:keyvalue/atomics@0.2.0-draft";
/// `wasi:keyvalue/batch`, with its version.
pub const BATCH_INTERFACE: &str = "wasi:keyvalue/batch@0.2.0-draft";
/// `cloudware:platform/keyvalue-ext`, with its version.
pub const EXT_INTERFACE: &str = "cloudware:platform/keyvalue-ext@0.1.0";
/// Every interface the capability provides.
pub const INTERFACES: &[&str] = &[
    STORE_INTERFACE,
    ATOMICS_INTERFACE,
    BATCH_INTERFACE,
    EXT_INTERFACE,
];
/// The capability's name in deployment grants.
pub const NAME: &str = "keyvalue";

/// The capability, added once to the node's engine. Deployments need a
/// [`KeyValueGrant`] to import it.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyValueCapability;

impl Capability for KeyValueCapability {
    fn name(&self) -> &'static str {
        NAME
    }

    fn interfaces(&self) -> &'static [&'static str] {
        INTERFACES
    }

    fn add_to_linker(&self, linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
        host::add_to_linker(linker)
    }
}

/// What one deployment may do with the capability.
#[derive(Clone)]
pub struct KeyValueGrant {
    /// The tenant owning the buckets: their namespace in the backend.
    pub tenant: String,
    /// The bucket names the deployment may open.
    pub buckets: BTreeSet<String>,
    /// Where the buckets are stored (shared by every deployment of a node).
    pub backend: Arc<dyn KvBackend>,
}

impl KeyValueGrant {
    /// Grants `buckets` of `tenant`, stored in `backend`.
    pub fn new<I, S>(tenant: &str, buckets: I, backend: Arc<dyn KvBackend>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        KeyValueGrant {
            tenant: tenant.to_owned(),
            buckets: buckets.into_iter().map(Into::into).collect(),
            backend,
        }
    }
}

impl fmt::Debug for KeyValueGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValueGrant")
            .field("tenant", &self.tenant)
            .field("buckets", &self.buckets)
            .field("backend", &self.backend.kind())
            .finish()
    }
}
