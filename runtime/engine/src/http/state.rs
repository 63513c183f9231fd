//! What one request's [`wasmtime::Store`] holds: the WASI contexts (no
//! preopens, no environment, no sockets), the resource table, the memory and
//! table limits, the deadline, the outbound HTTP hooks, the deployment's
//! capability grants and how deep in a chain of service calls it runs.

use super::guest_log::GuestLog;
use super::outbound::OutboundPolicy;
use crate::capability::Grants;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

/// The data of one request's store.
pub struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pub(crate) limits: TrackedLimits,
    pub(crate) deadline: Instant,
    hooks: OutboundHooks,
    grants: Grants,
    depth: u32,
}

/// What a capability's host functions see of one request's store.
pub struct CapabilityCtx<'a, G> {
    /// The deployment's grant of this capability; `None` if it has none
    /// (its host functions then refuse every call).
    pub grant: Option<&'a G>,
    /// The store's resource table, for the capability's resources.
    pub table: &'a mut ResourceTable,
    /// When the request (or the call chain it belongs to) must finish.
    pub deadline: Instant,
    /// How many service calls deep this instance runs (0: called by the
    /// gateway, the bus or a partner).
    pub depth: u32,
}

impl RequestState {
    pub(crate) fn new(
        max_memory: usize,
        max_table_elements: usize,
        deadline: Instant,
        outbound: OutboundPolicy,
        log_name: &Arc<str>,
        grants: Grants,
        depth: u32,
    ) -> Self {
        let wasi = WasiCtx::builder()
            .stdout(GuestLog::new("stdout", log_name.clone()))
            .stderr(GuestLog::new("stderr", log_name.clone()))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        RequestState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: TrackedLimits {
                limits: StoreLimitsBuilder::new()
                    .memory_size(max_memory)
                    .table_elements(max_table_elements)
                    .trap_on_grow_failure(true)
                    .build(),
                peak_memory: 0,
            },
            deadline,
            hooks: OutboundHooks { policy: outbound },
            grants,
            depth,
        }
    }

    /// The view of this store that capability `G`'s host functions use.
    pub fn capability<G: std::any::Any + Send + Sync>(&mut self) -> CapabilityCtx<'_, G> {
        CapabilityCtx {
            grant: self.grants.get::<G>(),
            table: &mut self.table,
            deadline: self.deadline,
            depth: self.depth,
        }
    }

    /// When this request must finish.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// How many service calls deep this instance runs.
    pub fn depth(&self) -> u32 {
        self.depth
    }
}

/// [`StoreLimits`] that also remember the largest memory granted (for
/// metering by resources used).
pub(crate) struct TrackedLimits {
    limits: StoreLimits,
    peak_memory: usize,
}

impl TrackedLimits {
    /// The largest linear memory granted so far, in bytes.
    pub(crate) fn peak_memory(&self) -> usize {
        self.peak_memory
    }
}

impl ResourceLimiter for TrackedLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let granted = self.limits.memory_growing(current, desired, maximum)?;
        if granted {
            self.peak_memory = self.peak_memory.max(desired);
        }
        Ok(granted)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Sends a guest's outgoing request only if its host is on the allow-list.
struct OutboundHooks {
    policy: OutboundPolicy,
}

type ResponseFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> ResponseFuture {
        let uri = request.uri();
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
            Some("http") => 80,
            _ => 443,
        });
        if !self.policy.allows(&host, port) {
            tracing::warn!(%host, port, "outbound request denied: host not on the allow-list");
            return Box::new(async { Err(ErrorCode::HttpRequestDenied.into()) });
        }
        _ = fut;
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// The linker with every interface a served component may import: all of
/// WASI 0.2 (cli, clocks, random, io, filesystem and sockets with nothing
/// granted) and `wasi:http`.
pub(crate) fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<RequestState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    Ok(linker)
}
