//! Serving `wasi:http` components: one pre-instantiated component, a fresh
//! store and instance per request, admission control, deadlines and limits.

mod error;
mod outbound;
mod response;
mod state;

pub use error::{DeadlineExceeded, HandleError};
pub use outbound::{InvalidAllowEntry, OutboundPolicy};
pub use response::{BodyError, HOLD_BACK_BYTES, HOLD_BACK_WINDOW, ResponseBody};
pub use state::RequestState;
pub(crate) use state::linker;

use crate::digest::Digest;
use crate::engine::Engine;
use crate::load::LoadError;
use bytes::Bytes;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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
    outbound: OutboundPolicy,
    admission: Arc<Semaphore>,
}

/// Measurements of one handled request, filled in as it runs.
#[derive(Debug, Default)]
pub struct RequestStats {
    guest_nanos: AtomicU64,
}

impl RequestStats {
    /// Time spent running the guest (instantiation and its handler,
    /// including host calls it made synchronously).
    pub fn guest_time(&self) -> Duration {
        Duration::from_nanos(self.guest_nanos.load(Ordering::Relaxed))
    }
}

impl HttpComponent {
    pub(crate) fn new(
        engine: Engine,
        digest: Digest,
        pre: InstancePre<RequestState>,
    ) -> Result<Self, LoadError> {
        let pre = ProxyPre::new(pre).map_err(|err| LoadError::MissingHandler {
            exports: format!("{err:#}"),
        })?;
        let permits = engine.limits().max_concurrent_instances as usize;
        Ok(HttpComponent {
            inner: Arc::new(Inner {
                engine,
                digest,
                pre,
                outbound: OutboundPolicy::deny_all(),
                admission: Arc::new(Semaphore::new(permits)),
            }),
        })
    }

    /// The same component with a different outbound allow-list.
    pub fn with_outbound(self, outbound: OutboundPolicy) -> Self {
        let inner = &self.inner;
        HttpComponent {
            inner: Arc::new(Inner {
                engine: inner.engine.clone(),
                digest: inner.digest,
                pre: inner.pre.clone(),
                outbound,
                admission: inner.admission.clone(),
            }),
        }
    }

    /// The component's content digest.
    pub fn digest(&self) -> Digest {
        self.inner.digest
    }

    /// Instances currently running.
    pub fn busy_instances(&self) -> usize {
        self.inner.engine.limits().max_concurrent_instances as usize
            - self.inner.admission.available_permits()
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
        let state = RequestState::new(
            usize::try_from(limits.max_memory.as_u64()).unwrap_or(usize::MAX),
            limits.max_table_elements as usize,
            deadline,
            self.inner.outbound.clone(),
        );
        let mut store = Store::new(self.inner.engine.wasmtime(), state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(1);
        let timeout = limits.request_timeout;
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
        let limits = self.inner.engine.limits();
        let permit = self.admit(limits.queue_timeout).await?;
        let timeout = limits.request_timeout;
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
        let guest = async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, outparam)
                .await
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
            // The store (and its pool slot) is gone by now; free the permit.
            drop::<OwnedSemaphorePermit>(permit);
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

    async fn admit(&self, queue_timeout: Duration) -> Result<OwnedSemaphorePermit, HandleError> {
        let admission = self.inner.admission.clone();
        if let Ok(permit) = admission.clone().try_acquire_owned() {
            return Ok(permit);
        }
        match tokio::time::timeout(queue_timeout, admission.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(HandleError::Overloaded(queue_timeout)),
        }
    }
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
