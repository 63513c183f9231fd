//! Calls over the pooled HTTP/2 connections ([`PeerPool`]): forwarded proposals and service
//! calls. Proposals are frequent enough under write load that a new mutual-TLS handshake per call halved a
//! follower's write rate. (The bus keeps a connection per forwarded command: its commands
//! carry no request id, so it must tell "not sent" — a refused connection — from "sent, no
//! answer", which a pooled connection whose peer just died blurs.)

use super::client::{Answer, read_answer};
use crate::forward::error_chain;
use crate::forward::pool::{PeerPool, PoolBody};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use http_body_util::{BodyExt as _, Full};
use std::time::Duration;

/// Why a pooled call produced no answer.
#[derive(Debug)]
pub(crate) enum PostError {
    /// No connection could be made: the request was not sent.
    NotSent(String),
    /// Sent, but no (complete) answer came: the callee may have acted on it.
    Unanswered(String),
}

impl std::fmt::Display for PostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PostError::NotSent(reason) => write!(f, "not sent: {reason}"),
            PostError::Unanswered(reason) => write!(f, "no answer: {reason}"),
        }
    }
}

/// `POST`s `body` to `path` on host `id` with `header` (if any), bounded by `timeout`;
/// reads at most `limit` bytes of the answer.
pub(crate) async fn post(
    pool: &PeerPool,
    id: u64,
    path: &str,
    body: Bytes,
    header: Option<(HeaderName, HeaderValue)>,
    timeout: Duration,
    limit: usize,
) -> Result<Answer, PostError> {
    let uri = PeerPool::uri(id, path).map_err(|err| PostError::NotSent(err.to_string()))?;
    let mut request = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(PoolBody::new(
            Full::new(body).map_err(|never| match never {}),
        ))
        .map_err(|err| PostError::NotSent(err.to_string()))?;
    if let Some((name, value)) = header {
        request.headers_mut().insert(name, value);
    }
    let exchange = async {
        let response = match pool.send(request).await {
            Ok(response) => response,
            Err(err) if err.is_connect() => return Err(PostError::NotSent(err.to_string())),
            Err(err) => return Err(PostError::Unanswered(error_chain(&err))),
        };
        read_answer(response, limit)
            .await
            .map_err(PostError::Unanswered)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(PostError::Unanswered(format!(
                "no answer from host {id} within {timeout:?}"
            )))
        })
}
