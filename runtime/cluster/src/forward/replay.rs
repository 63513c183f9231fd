//! A request body that can be sent again to another host: the frames read so
//! far are kept (up to a limit), so a retry sends the same bytes. Past the
//! limit the body can no longer be replayed and a retry is refused.
//!
//! Every attempt reads through its own [`ReplayBody`]; starting a new attempt
//! makes the older readers fail, so a connection still writing the old
//! attempt's body can never steal frames from the new one.

use bytes::Bytes;
use cloudware_engine::http::RequestBodyError;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

/// The shared source of every attempt's body.
pub(crate) struct Replay<B> {
    shared: Arc<Mutex<Shared<B>>>,
    hint: SizeHint,
}

struct Shared<B> {
    inner: B,
    /// Frames read from `inner` so far (while `recording`).
    recorded: Vec<Recorded>,
    recorded_bytes: usize,
    limit: usize,
    /// False once more than `limit` bytes were read, the inner body failed, or
    /// recording was stopped: no further attempt may start.
    replayable: bool,
    /// Whether `inner` has been polled at all.
    touched: bool,
    /// `inner` has ended.
    ended: bool,
    /// The attempt allowed to read.
    generation: u64,
}

enum Recorded {
    Data(Bytes),
    Trailers(http::HeaderMap),
}

impl<B> Replay<B>
where
    B: Body<Data = Bytes, Error = RequestBodyError> + Unpin,
{
    /// Keeps up to `limit` bytes of `inner` for retries.
    pub(crate) fn new(inner: B, limit: usize) -> Self {
        let hint = inner.size_hint();
        Replay {
            shared: Arc::new(Mutex::new(Shared {
                inner,
                recorded: Vec::new(),
                recorded_bytes: 0,
                limit,
                replayable: true,
                touched: false,
                ended: false,
                generation: 0,
            })),
            hint,
        }
    }

    /// The body of the next attempt, from the first byte; `None` when the body
    /// can no longer be replayed. Readers of earlier attempts fail from now on.
    pub(crate) fn attempt(&self) -> Option<ReplayBody<B>> {
        let mut shared = lock(&self.shared);
        if !shared.replayable {
            return None;
        }
        shared.generation += 1;
        Some(ReplayBody {
            shared: self.shared.clone(),
            generation: shared.generation,
            position: 0,
            hint: self.hint,
        })
    }

    /// Whether another attempt could start.
    pub(crate) fn replayable(&self) -> bool {
        lock(&self.shared).replayable
    }

    /// No further attempt will start (call it after [`Replay::attempt`] returned the
    /// last one): keep no more frames. The frames kept so far stay for that attempt.
    pub(crate) fn stop_recording(&self) {
        lock(&self.shared).replayable = false;
    }
}

fn lock<B>(shared: &Mutex<Shared<B>>) -> MutexGuard<'_, Shared<B>> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One attempt's view of the body.
pub(crate) struct ReplayBody<B> {
    shared: Arc<Mutex<Shared<B>>>,
    generation: u64,
    /// Index of the next recorded frame to yield.
    position: usize,
    hint: SizeHint,
}

impl<B> Body for ReplayBody<B>
where
    B: Body<Data = Bytes, Error = RequestBodyError> + Unpin,
{
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let this = self.get_mut();
        let mut shared = lock(&this.shared);
        if shared.generation != this.generation {
            return Poll::Ready(Some(Err(RequestBodyError::InternalError(Some(
                "superseded by a retry on another host".into(),
            )))));
        }
        if let Some(frame) = shared.recorded.get(this.position) {
            this.position += 1;
            let frame = match frame {
                Recorded::Data(data) => Frame::data(data.clone()),
                Recorded::Trailers(trailers) => Frame::trailers(trailers.clone()),
            };
            return Poll::Ready(Some(Ok(frame)));
        }
        if shared.ended {
            return Poll::Ready(None);
        }
        shared.touched = true;
        let shared = &mut *shared;
        match Pin::new(&mut shared.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                shared.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(err))) => {
                shared.replayable = false;
                shared.recorded = Vec::new();
                Poll::Ready(Some(Err(err)))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if shared.replayable {
                    let recorded = match frame.data_ref() {
                        Some(data) => {
                            shared.recorded_bytes += data.len();
                            Recorded::Data(data.clone())
                        }
                        None => {
                            Recorded::Trailers(frame.trailers_ref().cloned().unwrap_or_default())
                        }
                    };
                    if shared.recorded_bytes > shared.limit {
                        shared.replayable = false;
                        shared.recorded = Vec::new();
                    } else {
                        shared.recorded.push(recorded);
                        this.position += 1;
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let shared = lock(&self.shared);
        shared.generation == self.generation
            && self.position >= shared.recorded.len()
            && (shared.ended || (!shared.touched && shared.inner.is_end_stream()))
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    type Chunks = StreamBody<
        futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, RequestBodyError>>>,
    >;

    fn chunks(parts: &[&'static str]) -> Chunks {
        let frames: Vec<_> = parts
            .iter()
            .map(|part| Ok(Frame::data(Bytes::from_static(part.as_bytes()))))
            .collect();
        StreamBody::new(futures::stream::iter(frames))
    }

    async fn read(body: ReplayBody<Chunks>) -> Result<Bytes, RequestBodyError> {
        Ok(body.collect().await?.to_bytes())
    }

    #[tokio::test]
    async fn a_retry_sends_the_same_bytes() {
        let replay = Replay::new(chunks(&["ab", "cd", "ef"]), 16);
        let mut first = replay.attempt().expect("first");
        // The first attempt read part of the body before it failed.
        let frame = first.frame().await.expect("frame").expect("data");
        assert_eq!(frame.into_data().ok(), Some(Bytes::from_static(b"ab")));
        let second = replay.attempt().expect("replayable");
        assert!(first.frame().await.expect("frame").is_err(), "superseded");
        assert_eq!(read(second).await.expect("body"), "abcdef");
        let third = replay.attempt().expect("still replayable");
        assert_eq!(read(third).await.expect("body"), "abcdef");
    }

    #[tokio::test]
    async fn past_the_limit_there_is_no_retry() {
        let replay = Replay::new(chunks(&["abcd", "efgh"]), 6);
        let first = replay.attempt().expect("first");
        assert_eq!(read(first).await.expect("body"), "abcdefgh");
        assert!(!replay.replayable());
        assert!(replay.attempt().is_none());
    }

    #[tokio::test]
    async fn an_untouched_empty_body_ends_at_once() {
        let replay = Replay::new(chunks(&[]), 16);
        let body = replay.attempt().expect("first");
        assert_eq!(read(body).await.expect("body"), "");
    }

    #[tokio::test]
    async fn the_last_attempt_still_gets_the_kept_frames() {
        let replay = Replay::new(chunks(&["ab", "cd"]), 16);
        let mut first = replay.attempt().expect("first");
        let _ = first.frame().await;
        let last = replay.attempt().expect("second");
        replay.stop_recording();
        assert!(replay.attempt().is_none());
        assert_eq!(read(last).await.expect("body"), "abcd");
    }
}
