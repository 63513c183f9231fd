//! Request-size limits enforced before and while a body reaches a guest.

use bytes::Bytes;
use cloudware_engine::http::RequestBodyError;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// A request body that fails once more than `limit` bytes have arrived.
///
/// The guest reading it sees a `wasi:http` body-size error; nothing beyond
/// the limit is ever buffered.
pub struct LimitedBody<B> {
    inner: B,
    remaining: u64,
    limit: u64,
}

impl<B> LimitedBody<B> {
    /// Wraps `inner`, allowing at most `limit` bytes through.
    pub fn new(inner: B, limit: u64) -> Self {
        LimitedBody {
            inner,
            remaining: limit,
            limit,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<RequestBodyError>,
{
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let this = self.get_mut();
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        this.remaining = 0;
                        return Poll::Ready(Some(Err(RequestBodyError::HttpRequestBodySize(
                            Some(this.limit + 1),
                        ))));
                    }
                    this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(err)) => Poll::Ready(Some(Err(err.into()))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The declared `Content-Length`, if present and well-formed.
pub fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn passes_bodies_within_the_limit() {
        let body = LimitedBody::new(Full::new(Bytes::from_static(b"12345")), 5);
        let collected = body.collect().await.expect("within limit").to_bytes();
        assert_eq!(&collected[..], b"12345");
    }

    #[tokio::test]
    async fn fails_bodies_over_the_limit() {
        let body = LimitedBody::new(Full::new(Bytes::from_static(b"123456")), 5);
        let err = body.collect().await.expect_err("over limit");
        assert!(
            matches!(err, RequestBodyError::HttpRequestBodySize(_)),
            "{err:?}"
        );
    }
}
