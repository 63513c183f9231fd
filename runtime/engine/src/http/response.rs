//! From the guest's response to the client's: the hold-back window and the
//! guarded body.
//!
//! `wasi:http` lets a guest send its response head and then keep writing the
//! body — and then trap. To give a half-written response a proper 5xx, the
//! head is held back until the guest's body is complete, the guest has
//! written [`HOLD_BACK_BYTES`], or [`HOLD_BACK_WINDOW`] has passed. Almost
//! every response completes inside that window and goes out as one buffer.
//! A response streamed beyond it carries a [`GuardedBody`], which ends in an
//! error (so the client sees a broken response, never a silently truncated
//! one) if the guest fails before finishing it.

use super::error::HandleError;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::task::JoinHandle;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// Bytes of body buffered before the response head is sent regardless.
pub const HOLD_BACK_BYTES: usize = 64 * 1024;
/// Time after the guest set its response before the head is sent regardless.
pub const HOLD_BACK_WINDOW: Duration = Duration::from_millis(50);

/// The guest's handler task: its outcome says whether the guest finished.
pub(crate) type GuestTask = JoinHandle<Result<(), HandleError>>;

/// Error of a [`ResponseBody`] stream: the guest failed mid-body.
#[derive(Debug, thiserror::Error)]
#[error("the response body was cut short: {0}")]
pub struct BodyError(pub String);

/// The body of a response sent to a client.
pub struct ResponseBody {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Streaming(GuardedBody),
}

impl ResponseBody {
    /// A complete body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        ResponseBody {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        ResponseBody {
            kind: Kind::Full(None),
        }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Full(bytes) => f
                .debug_struct("ResponseBody")
                .field("len", &bytes.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Streaming(_) => f
                .debug_struct("ResponseBody")
                .field("streaming", &true)
                .finish(),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Streaming(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Streaming(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Streaming(_) => SizeHint::default(),
        }
    }
}

/// Waits for the guest's body within the hold-back window and builds the
/// client's response: complete, streaming, or an error if the guest failed
/// before its body was complete.
pub(crate) async fn hold_back(
    response: http::Response<HyperOutgoingBody>,
    mut task: GuestTask,
) -> Result<http::Response<ResponseBody>, HandleError> {
    let (parts, mut body) = response.into_parts();
    let mut buffered = BytesMut::new();
    let window = tokio::time::sleep(HOLD_BACK_WINDOW);
    tokio::pin!(window);
    let mut task_done: Option<Result<(), HandleError>> = None;

    loop {
        tokio::select! {
            biased;
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        buffered.extend_from_slice(&data);
                    }
                    // Trailers are not forwarded: HTTP/1 clients rarely read them.
                    if buffered.len() >= HOLD_BACK_BYTES {
                        break;
                    }
                }
                Some(Err(err)) => {
                    // The body broke (aborted, wrong length …): report the
                    // guest's own failure if it has one.
                    let outcome = match task_done {
                        Some(outcome) => outcome,
                        None => join(&mut task).await,
                    };
                    return Err(match outcome {
                        Err(failure) => failure,
                        Ok(()) => HandleError::Trap(format!("invalid response body: {err}")),
                    });
                }
                None => {
                    // The body ended; it is complete unless the guest failed.
                    let outcome = match task_done {
                        Some(outcome) => Some(outcome),
                        None => tokio::time::timeout(HOLD_BACK_WINDOW, join(&mut task)).await.ok(),
                    };
                    if let Some(Err(failure)) = outcome {
                        return Err(failure);
                    }
                    return Ok(http::Response::from_parts(parts, ResponseBody::full(buffered.freeze())));
                }
            },
            outcome = join(&mut task), if task_done.is_none() => {
                // Keep draining: a finished guest's body is already queued.
                task_done = Some(outcome);
            }
            _ = &mut window => break,
        }
    }

    // Stream the rest; the guard turns a later guest failure into an error.
    let task = match task_done {
        Some(Err(failure)) => return Err(failure),
        Some(Ok(())) => None,
        None => Some(task),
    };
    let guarded = GuardedBody {
        prefix: (!buffered.is_empty()).then(|| buffered.freeze()),
        body,
        task,
    };
    Ok(http::Response::from_parts(
        parts,
        ResponseBody {
            kind: Kind::Streaming(guarded),
        },
    ))
}

/// Awaits the guest task, turning a panicked or cancelled task into an error.
async fn join(task: &mut GuestTask) -> Result<(), HandleError> {
    match task.await {
        Ok(outcome) => outcome,
        Err(err) => Err(HandleError::Internal(format!("guest task failed: {err}"))),
    }
}

/// A streaming response body that fails if the guest does.
struct GuardedBody {
    prefix: Option<Bytes>,
    body: HyperOutgoingBody,
    /// `None` once the guest is known to have finished cleanly.
    task: Option<GuestTask>,
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(prefix) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                // Trailers are dropped (see `hold_back`); poll again.
                Err(_) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            },
            Some(Err(err)) => {
                this.task = None;
                tracing::warn!(error = %err, "response body broke while streaming");
                Poll::Ready(Some(Err(BodyError(err.to_string()))))
            }
            None => {
                // End of body: the guest has dropped or finished it. Whether it
                // finished cleanly is its task's outcome.
                let Some(task) = this.task.as_mut() else {
                    return Poll::Ready(None);
                };
                let outcome = ready!(Pin::new(task).poll(cx));
                this.task = None;
                match outcome {
                    Ok(Ok(())) => Poll::Ready(None),
                    Ok(Err(failure)) => {
                        tracing::warn!(error = %failure, "guest failed while streaming its response");
                        Poll::Ready(Some(Err(BodyError(failure.to_string()))))
                    }
                    Err(err) => Poll::Ready(Some(Err(BodyError(err.to_string())))),
                }
            }
        }
    }
}
