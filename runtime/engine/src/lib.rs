//! The Cloudware engine: one shared wasmtime engine per node, components
//! validated, compiled once (and cached on disk by digest), and served with a
//! fresh, limited instance per request.
//!
//! It knows nothing of HTTP routing or of the cluster: the gateway hands it
//! requests, the node tells it which components to load.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use cloudware_engine::{Engine, EngineConfig, Limits};
//! let engine = Engine::new(&EngineConfig::default(), &Limits::default())?;
//! let component = engine.load_file("hello.wasm".as_ref())?;
//! let request = http::Request::get("http://localhost/").body(http_body_util::Empty::<bytes::Bytes>::new())?;
//! let response = component.handle(request, Default::default()).await?;
//! assert_eq!(response.status(), 200);
//! # Ok(()) }
//! ```

mod cache;
pub mod capability;
mod component;
mod config;
mod digest;
mod engine;
pub mod http;
mod invoke;
mod link;
mod load;
pub mod service;

pub use capability::{Capability, Grants};
pub use component::{ComponentSettings, LinkedComponent, RequestStats};
pub use config::{EngineConfig, Limits, default_cache_dir};
pub use digest::{Digest, ParseDigestError};
pub use engine::{AllocationStrategy, Engine, EngineError};
pub use http::{HandleError, InstanceQuota, OutboundPolicy, RequestState, ResponseBody};
pub use invoke::{CallError, CallOrigin, MAX_CALL_DEPTH};
pub use link::{CompiledComponent, LinkPlan};
pub use load::{HTTP_HANDLER_INTERFACE, Interfaces, LoadError};
