//! Apps that run on other hosts: the gateway's side of forwarding.
//!
//! When no app is routed here for a request but the [`Router`](crate::Router)
//! knows it runs elsewhere ([`RemoteTarget`]), the gateway hands the request to
//! a [`Forwarder`] (the cluster's, which picks a host that is up and sends the
//! request over the cluster port) and streams its answer back. A forwarded
//! request carries [`FORWARDED_BY_HEADER`]; the receiving host serves it with
//! its local routes only ([`serve_forwarded`](crate::serve_forwarded)) and
//! answers [`FORWARD_STATUS_HEADER`] when it did not serve it at all, so the
//! sender knows another host may be tried safely.

use crate::{LimitedBody, RemoteTarget};
use bytes::Bytes;
use cloudware_engine::ResponseBody;
use futures::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A boxed error of a body stream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of an answer a [`Forwarder`] got from another host.
pub type ForwardedBody = UnsyncBoxBody<Bytes, BoxError>;

/// Set on a request sent to another host: the sending host's id. A request
/// carrying it is never forwarded again.
pub const FORWARDED_BY_HEADER: &str = "cloudware-forwarded-by";

/// Set by the receiving host on an answer to a forwarded request that it did
/// not serve (no guest saw the request): [`NOT_HERE`] or [`OVERLOADED`]. The
/// sender may then try another host, even for a `POST`.
pub const FORWARD_STATUS_HEADER: &str = "cloudware-forward-status";

/// [`FORWARD_STATUS_HEADER`]: the app is not placed on the receiving host.
pub const NOT_HERE: &str = "not-here";

/// [`FORWARD_STATUS_HEADER`]: the app is here but had no free instance.
pub const OVERLOADED: &str = "overloaded";

/// The client's address, in the extensions of a request given to a
/// [`Forwarder`] (for `X-Forwarded-For`).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

/// Sends requests for apps that run on other hosts to one of those hosts.
pub trait Forwarder: Send + Sync + 'static {
    /// Forwards `request` to one of `target.hosts` and returns its answer,
    /// streaming. The body is already limited to the gateway's request-body
    /// limit.
    fn forward(
        &self,
        target: RemoteTarget,
        request: http::Request<LimitedBody<Incoming>>,
    ) -> BoxFuture<'static, Result<http::Response<ForwardedBody>, ForwardError>>;
}

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// None of the hosts that run the app is up.
    #[error("{app} runs on no host that is up")]
    NoHostUp {
        /// `tenant/app`.
        app: String,
    },
    /// No host that runs the app could be reached, or none served the request
    /// (the request reached no guest).
    #[error("no host serving {app} took the request: {reason}")]
    Unavailable {
        /// `tenant/app`.
        app: String,
        /// What the hosts tried answered.
        reason: String,
    },
    /// The request reached `host` and then failed; it is not retried because
    /// a guest may have seen it.
    #[error("host {host} failed to answer: {reason}")]
    Failed {
        /// The host.
        host: u64,
        /// What failed.
        reason: String,
    },
    /// `host` did not answer within the bound.
    #[error("host {host} did not answer within {after:?}")]
    Timeout {
        /// The host.
        host: u64,
        /// The bound.
        after: Duration,
    },
    /// The request body exceeded the gateway's limit while it was forwarded.
    #[error("the request body exceeds the limit")]
    BodyTooLarge,
}

impl ForwardError {
    /// The status the client gets.
    pub fn status(&self) -> http::StatusCode {
        match self {
            ForwardError::NoHostUp { .. } | ForwardError::Unavailable { .. } => {
                http::StatusCode::SERVICE_UNAVAILABLE
            }
            ForwardError::Failed { .. } => http::StatusCode::BAD_GATEWAY,
            ForwardError::Timeout { .. } => http::StatusCode::GATEWAY_TIMEOUT,
            ForwardError::BodyTooLarge => http::StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

/// The body of a gateway response: a local guest's, or another host's.
pub struct GatewayBody {
    kind: Kind,
}

enum Kind {
    Local(ResponseBody),
    Forwarded(ForwardedBody),
}

impl GatewayBody {
    /// The body of an answer from another host.
    pub fn forwarded(body: ForwardedBody) -> Self {
        GatewayBody {
            kind: Kind::Forwarded(body),
        }
    }
}

impl From<ResponseBody> for GatewayBody {
    fn from(body: ResponseBody) -> Self {
        GatewayBody {
            kind: Kind::Local(body),
        }
    }
}

impl std::fmt::Debug for GatewayBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Local(body) => body.fmt(f),
            Kind::Forwarded(_) => f.write_str("GatewayBody(forwarded)"),
        }
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Local(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|err| Box::new(err) as BoxError),
            Kind::Forwarded(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Local(body) => body.is_end_stream(),
            Kind::Forwarded(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Local(body) => body.size_hint(),
            Kind::Forwarded(body) => body.size_hint(),
        }
    }
}
