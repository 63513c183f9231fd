//! Serving `wasi:http` components: one pre-instantiated component, a fresh
//! store and instance per request, admission control, deadlines and limits.

mod error;
mod guest_log;
mod outbound;
mod quota;
mod response;
mod state;

pub use error::{DeadlineExceeded, HandleError};
pub use guest_log::GUEST_LOG_TARGET;
pub use outbound::{InvalidAllowEntry, OutboundPolicy};
pub use quota::InstanceQuota;
pub use response::{BodyError, HOLD_BACK_BYTES, HOLD_BACK_WINDOW, ResponseBody};
pub use state::RequestState;
pub(crate) use state::linker;

use crate::digest::Digest;
use crate::engine::Engine;
use crate::load::{Interfaces, LoadError};
use bytes::Bytes;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::component::InstancePre;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

/// A component ready to serve HTTP: compiled, linked and pre-instantiated.
///
/// Cheap to clone. Each [`HttpComponent::handle`] call gets its own store and
/// instance, so requests never see each other's state.
#[derive(Clone)]
pub struct HttpComponent {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    digest: Digest,
    pre: ProxyPre<RequestState>,
    interfaces: Arc<Interfaces>,
    /// Names the component in its guest's log lines.
    log_name: Arc<str>,
    settings: ComponentSettings,
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
    guest_nanos: AtomicU64,
    peak_memory: AtomicU64,
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

impl HttpComponent {
    pub(crate) fn new(
        engine: Engine,
        digest: Digest,
        pre: InstancePre<RequestState>,
        interfaces: Interfaces,
    ) -> Result<Self, LoadError> {
        let pre = ProxyPre::new(pre).map_err(|err| LoadError::MissingHandler {
            exports: format!("{err:#}"),
        })?;
        let settings = ComponentSettings::defaults(&engine);
        Ok(HttpComponent {
            inner: Arc::new(Inner {
                engine,
                digest,
                pre,
                interfaces: Arc::new(interfaces),
                log_name: Arc::from(digest.to_string()),
                settings,
            }),
        })
    }

    /// The same compiled component run with other settings (another
    /// deployment of the same package shares the compiled code).
    pub fn with_settings(&self, settings: ComponentSettings) -> Self {
        let limits = self.inner.engine.limits();
        let settings = ComponentSettings {
            request_timeout: settings.request_timeout.min(limits.request_timeout),
            max_memory: settings.max_memory.min(limits.max_memory.as_u64()),
            ..settings
        };
        HttpComponent {
            inner: Arc::new(Inner {
                engine: self.inner.engine.clone(),
                digest: self.inner.digest,
                pre: self.inner.pre.clone(),
                interfaces: self.inner.interfaces.clone(),
                log_name: self.inner.log_name.clone(),
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

    /// Instances of this component's app running now.
    pub fn busy_instances(&self) -> usize {
        self.inner.settings.quota.busy() as usize
    }

    /// Creates one request's store and instance, without handling anything;
    /// for measuring instantiation.
    pub async fn instantiate_once(&self) -> wasmtime::Result<()> {
        let mut store = self.new_store(Instant::now() + Duration::from_secs(10));
        self.inner.pre.instantiate_async(&mut store).await?;
        Ok(())
    }

    fn new_store(&self, deadline: Instant) -> Store<RequestState> {
        let limits = self.inner.engine.limits();
        let settings = &self.inner.settings;
        let state = RequestState::new(
            usize::try_from(settings.max_memory).unwrap_or(usize::MAX),
            limits.max_table_elements as usize,
            deadline,
            settings.outbound.clone(),
            &self.inner.log_name,
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

    /// Handles one request: waits for a free instance (up to the queue
    /// timeout), runs the guest's handler in a fresh instance under the
    /// request deadline, and returns its response.
    pub async fn handle<B>(
        &self,
        request: http::Request<B>,
        stats: Arc<RequestStats>,
    ) -> Result<http::Response<ResponseBody>, HandleError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let permits = self.admit(self.inner.engine.limits().queue_timeout).await?;
        let timeout = self.inner.settings.request_timeout;
        let deadline = Instant::now() + timeout;
        let mut store = self.new_store(deadline);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let mut http = store.data_mut().http();
        let request = http
            .new_incoming_request(Scheme::Http, request)
            .map_err(|err| HandleError::BadRequest(format!("{err:#}")))?;
        let outparam = http
            .new_response_outparam(sender)
            .map_err(|err| HandleError::Internal(format!("{err:#}")))?;

        let pre = self.inner.pre.clone();
        let peak = stats.clone();
        let guest = async move {
            let result = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, outparam)
                    .await
            }
            .await;
            peak.peak_memory
                .store(store.data().limits.peak_memory() as u64, Ordering::Relaxed);
            result
        };
        let task = tokio::spawn(async move {
            let timed = Timed {
                inner: guest,
                stats,
            };
            let outcome = match tokio::time::timeout_at(deadline.into(), timed).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(HandleError::from_guest(err)),
                Err(_) => Err(HandleError::DeadlineExceeded(timeout)),
            };
            // The store (and its pool slot) is gone by now; free the permits.
            drop::<Permits>(permits);
            outcome
        });

        match receiver.await {
            Ok(Ok(response)) => response::hold_back(response, task).await,
            Ok(Err(code)) => Err(HandleError::GuestError(code)),
            // The guest never set a response; its task says why.
            Err(_) => match task.await {
                Ok(Ok(())) => Err(HandleError::NoResponse),
                Ok(Err(failure)) => Err(failure),
                Err(err) => Err(HandleError::Internal(format!("guest task failed: {err}"))),
            },
        }
    }

    /// Takes a permit from the app's quota, then an instance slot (one
    /// reserved for the app if free, else one of the engine's pool), waiting
    /// at most `queue_timeout` for both.
    async fn admit(&self, queue_timeout: Duration) -> Result<Permits, HandleError> {
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
            _ => Err(HandleError::Overloaded(queue_timeout)),
        }
    }
}

/// A request's place in its app's quota and in the engine's pool.
struct Permits {
    _app: OwnedSemaphorePermit,
    _slot: OwnedSemaphorePermit,
}

pin_project_lite::pin_project! {
    /// Adds the time spent polling `inner` to the request's guest time.
    struct Timed<F> {
        #[pin]
        inner: F,
        stats: Arc<RequestStats>,
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

/// The error type a request body given to [`HttpComponent::handle`] may fail
/// with (`wasi:http`'s own error, e.g. a body-size violation).
pub use wasmtime_wasi_http::Error as RequestBodyError;

#[cfg(test)]
mod tests;
