//! Serving `wasi:http` components: a fresh store and instance per request,
//! admission control, deadlines and limits, and the store's host state
//! (WASI contexts, outbound hooks, guest log).

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
pub(crate) use state::linker;
pub use state::{CapabilityCtx, RequestState};

use crate::component::{LinkedComponent, RequestStats, Timed};
use crate::invoke::CallError;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

impl LinkedComponent {
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
        let permits = self
            .admit(self.inner.engine.limits().queue_timeout)
            .await
            .map_err(|err| match err {
                CallError::Overloaded(waited) => HandleError::Overloaded(waited),
                other => HandleError::Internal(other.to_string()),
            })?;
        let Some(pre) = self.inner.proxy.clone() else {
            return Err(HandleError::Internal(
                "the component does not serve HTTP".into(),
            ));
        };
        let timeout = self.inner.settings.request_timeout;
        let deadline = Instant::now() + timeout;
        let mut store = self.new_store(deadline, 0);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let mut http = store.data_mut().http();
        let request = http
            .new_incoming_request(Scheme::Http, request)
            .map_err(|err| HandleError::BadRequest(format!("{err:#}")))?;
        let outparam = http
            .new_response_outparam(sender)
            .map_err(|err| HandleError::Internal(format!("{err:#}")))?;

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
            drop(permits);
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
}

/// The error type a request body given to [`LinkedComponent::handle`] may fail
/// with (`wasi:http`'s own error, e.g. a body-size violation).
pub use wasmtime_wasi_http::Error as RequestBodyError;

#[cfg(test)]
mod tests;
