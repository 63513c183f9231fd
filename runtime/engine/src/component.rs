//! A component ready to run: compiled, linked against one deployment's
//! grants and services, and pre-instantiated. Every use (an HTTP request, a
//! queue message, a service call, a partner call) gets a fresh store and
//! instance under the deployment's limits, after admission control.

use crate::capability::Grants;
use crate::digest::Digest;
use crate::engine::Engine;
use crate::http::{DeadlineExceeded, InstanceQuota, OutboundPolicy, RequestState};
use crate::invoke::CallError;
use crate::load::Interfaces;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, types};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// A component linked for one deployment and pre-instantiated.
///
/// Cheap to clone. Each use gets its own store and instance, so requests
/// never see each other's state.
#[derive(Clone)]
pub struct LinkedComponent {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    pub(crate) digest: Digest,
    pub(crate) pre: InstancePre<RequestState>,
    /// Present when the component exports `wasi:http/incoming-handler`.
    pub(crate) proxy: Option<ProxyPre<RequestState>>,
    pub(crate) interfaces: Arc<Interfaces>,
    /// Exported functions by (interface, function): index and type.
    pub(crate) functions: Arc<HashMap<(String, String), ExportedFunction>>,
    pub(crate) component: Component,
    /// Names the component in its guest's log lines.
    pub(crate) log_name: Arc<str>,
    pub(crate) grants: Grants,
    pub(crate) settings: ComponentSettings,
}

/// One function of an exported interface.
#[derive(Clone)]
pub(crate) struct ExportedFunction {
    pub(crate) index: ComponentExportIndex,
    pub(crate) ty: types::ComponentFunc,
}

/// How one deployment of a component runs. Limits are clamped to the
/// engine's: a deployment can ask for less than the node allows, not more.
#[derive(Clone, Debug)]
pub struct ComponentSettings {
    /// Wall-clock budget of one request.
    pub request_timeout: Duration,
    /// Largest linear memory of one instance, in bytes.
    pub max_memory: u64,
    /// Hosts the component may call.
    pub outbound: OutboundPolicy,
    /// Instances of this app that may run at once.
    pub quota: InstanceQuota,
}

impl ComponentSettings {
    /// The node's own limits, deny-all outbound, and a quota of the whole pool.
    pub fn defaults(engine: &Engine) -> Self {
        let limits = engine.limits();
        ComponentSettings {
            request_timeout: limits.request_timeout,
            max_memory: limits.max_memory.as_u64(),
            outbound: OutboundPolicy::deny_all(),
            quota: InstanceQuota::new(limits.max_concurrent_instances),
        }
    }
}

/// Measurements of one handled request, filled in as it runs.
#[derive(Debug, Default)]
pub struct RequestStats {
    pub(crate) guest_nanos: AtomicU64,
    pub(crate) peak_memory: AtomicU64,
}

impl RequestStats {
    /// Time spent running the guest (instantiation and its handler,
    /// including host calls it made synchronously).
    pub fn guest_time(&self) -> Duration {
        Duration::from_nanos(self.guest_nanos.load(Ordering::Relaxed))
    }

    /// The largest linear memory the request's instance reached, in bytes
    /// (known once the guest finished).
    pub fn peak_memory(&self) -> u64 {
        self.peak_memory.load(Ordering::Relaxed)
    }
}

impl LinkedComponent {
    /// The same compiled component run with other settings (another
    /// deployment of the same package shares the compiled code).
    pub fn with_settings(&self, settings: ComponentSettings) -> Self {
        let limits = self.inner.engine.limits();
        let settings = ComponentSettings {
            request_timeout: settings.request_timeout.min(limits.request_timeout),
            max_memory: settings.max_memory.min(limits.max_memory.as_u64()),
            ..settings
        };
        LinkedComponent {
            inner: Arc::new(Inner {
                engine: self.inner.engine.clone(),
                digest: self.inner.digest,
                pre: self.inner.pre.clone(),
                proxy: self.inner.proxy.clone(),
                interfaces: self.inner.interfaces.clone(),
                functions: self.inner.functions.clone(),
                component: self.inner.component.clone(),
                log_name: self.inner.log_name.clone(),
                grants: self.inner.grants.clone(),
                settings,
            }),
        }
    }

    /// The same component with a different outbound allow-list.
    pub fn with_outbound(self, outbound: OutboundPolicy) -> Self {
        let settings = ComponentSettings {
            outbound,
            ..self.inner.settings.clone()
        };
        self.with_settings(settings)
    }

    /// The component's content digest.
    pub fn digest(&self) -> Digest {
        self.inner.digest
    }

    /// What it imports and exports.
    pub fn interfaces(&self) -> &Interfaces {
        &self.inner.interfaces
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &ComponentSettings {
        &self.inner.settings
    }

    /// What its deployment was granted.
    pub fn grants(&self) -> &Grants {
        &self.inner.grants
    }

    /// Whether it serves HTTP (exports `wasi:http/incoming-handler`).
    pub fn is_http(&self) -> bool {
        self.inner.proxy.is_some()
    }

    /// The type of `function` in the exported `interface`, if it has one.
    pub fn export_function(&self, interface: &str, function: &str) -> Option<types::ComponentFunc> {
        self.inner
            .functions
            .get(&(interface.to_owned(), function.to_owned()))
            .map(|f| f.ty.clone())
    }

    /// The exported function named `function` in any exported interface
    /// other than the HTTP handler (the first interface in name order if
    /// several export it): the interface's name and the function's type.
    pub fn find_function(&self, function: &str) -> Option<(String, types::ComponentFunc)> {
        let mut found: Vec<_> = self
            .inner
            .functions
            .iter()
            .filter(|((interface, name), _)| {
                name == function && !interface.starts_with(crate::load::HTTP_HANDLER_INTERFACE)
            })
            .map(|((interface, _), f)| (interface.clone(), f.ty.clone()))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found.into_iter().next()
    }

    /// The exported interface whose name starts with `prefix` (e.g.
    /// `cloudware:platform/message-handler@0.1`), whatever its patch version.
    pub fn export_named(&self, prefix: &str) -> Option<&str> {
        self.inner
            .interfaces
            .exports
            .iter()
            .find(|name| name.starts_with(prefix))
            .map(String::as_str)
    }

    /// Instances of this component's app running now.
    pub fn busy_instances(&self) -> usize {
        self.inner.settings.quota.busy() as usize
    }

    /// Creates one store and instance, without running anything; for
    /// measuring instantiation.
    pub async fn instantiate_once(&self) -> wasmtime::Result<()> {
        let mut store = self.new_store(Instant::now() + Duration::from_secs(10), 0);
        self.inner.pre.instantiate_async(&mut store).await?;
        Ok(())
    }

    pub(crate) fn new_store(&self, deadline: Instant, depth: u32) -> Store<RequestState> {
        let limits = self.inner.engine.limits();
        let settings = &self.inner.settings;
        let state = RequestState::new(
            usize::try_from(settings.max_memory).unwrap_or(usize::MAX),
            limits.max_table_elements as usize,
            deadline,
            settings.outbound.clone(),
            &self.inner.log_name,
            self.inner.grants.clone(),
            depth,
        );
        let mut store = Store::new(self.inner.engine.wasmtime(), state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(1);
        let timeout = settings.request_timeout;
        store.epoch_deadline_callback(move |ctx| {
            if Instant::now() >= ctx.data().deadline {
                Err(wasmtime::Error::new(DeadlineExceeded(timeout)))
            } else {
                // Let other requests run on this thread, then check again
                // at the next tick.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Takes a permit from the app's quota, then an instance slot (one
    /// reserved for the app if free, else one of the engine's pool), waiting
    /// at most `queue_timeout` for both.
    pub(crate) async fn admit(&self, queue_timeout: Duration) -> Result<Permits, CallError> {
        let quota = &self.inner.settings.quota;
        let slots = self.inner.engine.slots().clone();
        let admitted = async {
            let app = match quota.semaphore().clone().try_acquire_owned() {
                Ok(app) => app,
                Err(_) => quota.semaphore().clone().acquire_owned().await?,
            };
            let slot = match quota.try_reserved_slot() {
                Some(slot) => slot,
                None => match slots.clone().try_acquire_owned() {
                    Ok(slot) => slot,
                    Err(_) => slots.acquire_owned().await?,
                },
            };
            Ok::<_, tokio::sync::AcquireError>(Permits {
                _app: app,
                _slot: slot,
            })
        };
        match tokio::time::timeout(queue_timeout, admitted).await {
            Ok(Ok(permits)) => Ok(permits),
            _ => Err(CallError::Overloaded(queue_timeout)),
        }
    }
}

/// A request's place in its app's quota and in the engine's pool.
pub(crate) struct Permits {
    _app: OwnedSemaphorePermit,
    _slot: OwnedSemaphorePermit,
}

pin_project_lite::pin_project! {
    /// Adds the time spent polling `inner` to the request's guest time.
    pub(crate) struct Timed<F> {
        #[pin]
        pub(crate) inner: F,
        pub(crate) stats: Arc<RequestStats>,
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let started = Instant::now();
        let poll = this.inner.poll(cx);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        this.stats.guest_nanos.fetch_add(nanos, Ordering::Relaxed);
        poll
    }
}
