//! Serving one request: route it, apply the body limit, run the guest (or
//! hand it to the [`Forwarder`] when the app runs on other hosts), turn every
//! failure into a short 4xx/5xx answer, and record it — all inside one
//! `tracing` span. The public gateway ([`serve_request`]) and a host
//! receiving a forwarded request ([`serve_forwarded`]) share this path; only
//! the public one ever forwards.

use crate::forward::{
    ClientAddr, FORWARD_STATUS_HEADER, FORWARDED_BY_HEADER, ForwardError, Forwarder, GatewayBody,
    NOT_HERE, OVERLOADED,
};
use crate::{ACCESS_LOG_TARGET, GatewayLimits, LimitedBody, RemoteTarget, Router, Target};
use crate::{declared_length, request_host};
use bytes::Bytes;
use cloudware_engine::http::RequestBodyError;
use cloudware_engine::{HandleError, RequestStats, ResponseBody};
use cloudware_metrics::{AppRecorder, Metrics, RequestRecord};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// What the public gateway serves with.
pub(crate) struct Shared {
    pub(crate) router: Arc<dyn Router>,
    pub(crate) limits: GatewayLimits,
    pub(crate) forwarder: Option<Arc<dyn Forwarder>>,
    pub(crate) metrics: Option<Arc<Metrics>>,
}

/// Where a request arrived.
#[derive(Clone, Copy)]
enum Mode {
    /// At the public gateway: apps running elsewhere are forwarded if a
    /// forwarder is set.
    Public { may_forward: bool },
    /// Forwarded by another host: local routes only.
    Forwarded,
}

/// Where an admitted request goes.
enum Destination {
    Here(Target),
    Elsewhere(RemoteTarget),
}

/// Handles one request of the public gateway end to end, inside its own span.
pub(crate) async fn serve_request(
    shared: Arc<Shared>,
    peer: SocketAddr,
    request: http::Request<Incoming>,
) -> Result<http::Response<GatewayBody>, std::convert::Infallible> {
    let span = tracing::info_span!(
        target: ACCESS_LOG_TARGET,
        "request",
        method = %request.method(),
        path = request.uri().path(),
        status = tracing::field::Empty,
        latency_us = tracing::field::Empty,
        guest_us = tracing::field::Empty,
        forwarded = tracing::field::Empty,
    );
    let method = request.method().clone();
    let uri = request.uri().clone();
    async move {
        let started = Instant::now();
        let stats = Arc::new(RequestStats::default());
        let mode = Mode::Public {
            may_forward: shared.forwarder.is_some(),
        };
        let (outcome, recorder) = match admit(&shared.limits, shared.router.as_ref(), request, mode)
        {
            Ok((Destination::Here(target), request)) => {
                let outcome = target
                    .component
                    .handle(request, stats.clone())
                    .await
                    .map(|response| response.map(GatewayBody::from))
                    .map_err(Rejection::from);
                (outcome, target.recorder)
            }
            Ok((Destination::Elsewhere(remote), request)) => {
                tracing::Span::current().record("forwarded", true);
                (forward(&shared, remote, peer, request).await, None)
            }
            Err(rejection) => (Err(rejection), None),
        };
        let response = match outcome {
            Ok(response) => response,
            Err(rejection) => {
                reject(&rejection, &shared.limits, &method, &uri, mode).map(GatewayBody::from)
            }
        };
        finish(started, &stats, recorder, response.status());
        Ok(response)
    }
    .instrument(span)
    .await
}

/// Serves a request another host forwarded here (`from` is its host id):
/// with the local routes only, never forwarding it again. When no app is
/// routed here for it, or the app had no free instance, the answer carries
/// [`FORWARD_STATUS_HEADER`] and no guest saw the request, so the sender may
/// try another host. The body limit applies as at the public gateway.
pub async fn serve_forwarded<B>(
    router: &dyn Router,
    limits: &GatewayLimits,
    from: u64,
    mut request: http::Request<B>,
) -> http::Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<RequestBodyError>,
{
    let span = tracing::info_span!(
        target: ACCESS_LOG_TARGET,
        "request",
        method = %request.method(),
        path = request.uri().path(),
        status = tracing::field::Empty,
        latency_us = tracing::field::Empty,
        guest_us = tracing::field::Empty,
        forwarded_from = from,
    );
    // The guest sees the client's request, not the hop.
    request.headers_mut().remove(FORWARDED_BY_HEADER);
    let method = request.method().clone();
    let uri = request.uri().clone();
    async move {
        let started = Instant::now();
        let stats = Arc::new(RequestStats::default());
        let (outcome, recorder) = match admit(limits, router, request, Mode::Forwarded) {
            Ok((Destination::Here(target), request)) => {
                let outcome = target
                    .component
                    .handle(request, stats.clone())
                    .await
                    .map_err(Rejection::from);
                (outcome, target.recorder)
            }
            // Not reached: forwarded requests are never admitted elsewhere.
            Ok((Destination::Elsewhere(_), _)) => (Err(Rejection::Loop), None),
            Err(rejection) => (Err(rejection), None),
        };
        let response = match outcome {
            Ok(response) => response,
            Err(rejection) => reject(&rejection, limits, &method, &uri, Mode::Forwarded),
        };
        finish(started, &stats, recorder, response.status());
        response
    }
    .instrument(span)
    .await
}

/// Hands `request` to the forwarder and counts it.
async fn forward(
    shared: &Shared,
    remote: RemoteTarget,
    peer: SocketAddr,
    mut request: http::Request<LimitedBody<Incoming>>,
) -> Result<http::Response<GatewayBody>, Rejection> {
    let Some(forwarder) = &shared.forwarder else {
        return Err(Rejection::Unforwardable);
    };
    request.extensions_mut().insert(ClientAddr(peer));
    let app = shared
        .metrics
        .as_ref()
        .map(|_| (remote.tenant.clone(), remote.app.clone()));
    let result = forwarder.forward(remote, request).await;
    if let (Some(metrics), Some((tenant, app))) = (&shared.metrics, app) {
        metrics.count_forwarded(&tenant, &app, result.is_ok());
    }
    match result {
        Ok(response) => Ok(response.map(GatewayBody::forwarded)),
        Err(err) => Err(Rejection::Forward(err)),
    }
}

/// Records the finished request: the app's metrics and the span's fields.
fn finish(
    started: Instant,
    stats: &RequestStats,
    recorder: Option<AppRecorder>,
    status: http::StatusCode,
) {
    let latency = started.elapsed();
    if let Some(recorder) = recorder {
        recorder.record(RequestRecord {
            latency,
            guest_time: stats.guest_time(),
            peak_memory: stats.peak_memory(),
            server_error: status.is_server_error(),
        });
    }
    let span = tracing::Span::current();
    span.record("status", status.as_u16());
    span.record("latency_us", latency.as_micros() as u64);
    span.record("guest_us", stats.guest_time().as_micros() as u64);
    tracing::info!(target: ACCESS_LOG_TARGET, "done");
}

/// Why a request got no answer from a guest.
enum Rejection {
    /// No app is routed at the request's host and path.
    NotRouted {
        host: String,
        path: String,
    },
    /// A forwarded request for an app that is not placed here.
    NotHere {
        host: String,
        path: String,
    },
    /// The app runs on other hosts and this gateway cannot forward.
    Unforwardable,
    /// The request was forwarded once already.
    Loop,
    TooLarge(u64),
    Handle(HandleError),
    Forward(ForwardError),
}

impl Rejection {
    /// The status and one-line reason the client gets.
    fn explain(&self, limits: &GatewayLimits) -> (http::StatusCode, String) {
        match self {
            Rejection::NotRouted { host, path } => (
                http::StatusCode::NOT_FOUND,
                format!("no app is deployed at {host}{path}"),
            ),
            Rejection::NotHere { host, path } => (
                http::StatusCode::SERVICE_UNAVAILABLE,
                format!("the app at {host}{path} does not run on this host"),
            ),
            Rejection::Unforwardable => (
                http::StatusCode::SERVICE_UNAVAILABLE,
                "the app runs on other hosts only, and this host does not forward".into(),
            ),
            Rejection::Loop => (
                http::StatusCode::LOOP_DETECTED,
                "the request was already forwarded by another host".into(),
            ),
            Rejection::Handle(err) => (err.status(), err.to_string()),
            Rejection::Forward(err) => (err.status(), err.to_string()),
            Rejection::TooLarge(declared) => (
                http::StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body of {declared} bytes exceeds the limit of {} bytes",
                    limits.max_request_body
                ),
            ),
        }
    }

    /// For a forwarded request: the [`FORWARD_STATUS_HEADER`] value when no
    /// guest saw the request and the sender may try another host.
    fn not_served(&self) -> Option<&'static str> {
        match self {
            Rejection::NotHere { .. } => Some(NOT_HERE),
            Rejection::Handle(HandleError::Overloaded(_)) => Some(OVERLOADED),
            _ => None,
        }
    }
}

impl From<HandleError> for Rejection {
    fn from(err: HandleError) -> Self {
        Rejection::Handle(err)
    }
}

/// Logs a rejection and builds its answer.
fn reject(
    rejection: &Rejection,
    limits: &GatewayLimits,
    method: &http::Method,
    uri: &http::Uri,
    mode: Mode,
) -> http::Response<ResponseBody> {
    let (status, reason) = rejection.explain(limits);
    tracing::warn!(
        %method,
        path = uri.path(),
        status = status.as_u16(),
        %reason,
        "request failed"
    );
    let mut response = plain(status, reason);
    if let (Mode::Forwarded, Some(marker)) = (mode, rejection.not_served()) {
        response.headers_mut().insert(
            FORWARD_STATUS_HEADER,
            http::HeaderValue::from_static(marker),
        );
    }
    response
}

/// Routes the request and applies the body limit: a declared oversize body is
/// refused outright, any other body is counted as it streams.
fn admit<B>(
    limits: &GatewayLimits,
    router: &dyn Router,
    request: http::Request<B>,
    mode: Mode,
) -> Result<(Destination, http::Request<LimitedBody<B>>), Rejection> {
    let host = request_host(&request).unwrap_or_default();
    let path = request.uri().path();
    let destination = match (router.route(host, path), mode) {
        (Some(target), _) => Destination::Here(target),
        (None, Mode::Forwarded) => {
            return Err(Rejection::NotHere {
                host: host.to_string(),
                path: path.to_string(),
            });
        }
        (None, Mode::Public { may_forward }) => match router.remote(host, path) {
            Some(_) if request.headers().contains_key(FORWARDED_BY_HEADER) => {
                return Err(Rejection::Loop);
            }
            Some(_) if !may_forward => return Err(Rejection::Unforwardable),
            Some(remote) => Destination::Elsewhere(remote),
            None => {
                return Err(Rejection::NotRouted {
                    host: host.to_string(),
                    path: path.to_string(),
                });
            }
        },
    };
    if let Some(declared) = declared_length(request.headers())
        && declared > limits.max_request_body
    {
        return Err(Rejection::TooLarge(declared));
    }
    let request = request.map(|body| LimitedBody::new(body, limits.max_request_body));
    Ok((destination, request))
}

/// A short plain-text answer.
pub(crate) fn plain(status: http::StatusCode, reason: String) -> http::Response<ResponseBody> {
    let text = format!(
        "{} {}: {reason}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let mut response = http::Response::new(ResponseBody::full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests;
