//! Forwarding requests between hosts: the gateway of any host accepts any
//! route; an app with no instance there is served by a host that runs it.
//!
//! - [`HostForwarder`] (the sending side, a [`cloudware_gateway::Forwarder`])
//!   picks a host that is up among those running the app — the least loaded
//!   by requests in flight per instance, round robin among equals — and sends
//!   the request over the [pool](pool) to `/v1/forward/PATH` on its cluster
//!   port, streaming the body both ways.
//! - It tries another host only where that is safe: the connection could not
//!   be made (nothing was sent), the host answered that it did not serve the
//!   request ([`cloudware_gateway::FORWARD_STATUS_HEADER`]), or the method is
//!   idempotent (`GET`, `HEAD`, `OPTIONS`) and no answer came. A `POST` that
//!   may have reached a guest is never sent twice. At most
//!   [`ForwardConfig::max_attempts`] hosts are tried.
//! - `receive`: the receiving side (local routes only; never forwards again).

pub(crate) mod pool;
mod receive;
mod replay;

pub(crate) use receive::{ForwardReceiver, is_forwarded};

use crate::health::HostHealth;
use bytes::Bytes;
use cloudware_engine::http::RequestBodyError;
use cloudware_gateway::{
    BoxError, ClientAddr, FORWARD_STATUS_HEADER, FORWARDED_BY_HEADER, ForwardError, ForwardedBody,
    Forwarder, LimitedBody, RemoteTarget,
};
use cloudware_node::PeerHealth as _;
use futures::future::BoxFuture;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use pool::PeerPool;
use replay::Replay;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tracing::Instrument as _;

/// How forwarding behaves.
#[derive(Clone, Debug)]
pub struct ForwardConfig {
    /// Most hosts one request is sent to (default 3).
    pub max_attempts: usize,
    /// Bound of waiting for a host's answer head (default 5 minutes: beyond any
    /// sensible guest deadline; a host that stops answering is marked down by
    /// heartbeats long before).
    pub answer_timeout: Duration,
    /// Request-body bytes kept to send again to another host (default 64 KiB);
    /// a larger body that was sent in part is not retried.
    pub replay_limit: usize,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            max_attempts: 3,
            answer_timeout: Duration::from_secs(300),
            replay_limit: 64 * 1024,
        }
    }
}

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1),
/// plus `Expect` (the hop to the peer does not do `100-continue`).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::EXPECT,
];

/// The `X-Forwarded-For` header.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Forwards gateway requests to a host that runs their app: one that is up, with the
/// fewest requests in flight per instance; another host is tried only when nothing can
/// have reached a guest (no connection, a "not here" answer) or, for `GET`, `HEAD` and
/// `OPTIONS`, when no answer came. Get it from [`ClusterHost::forwarder`](crate::ClusterHost::forwarder).
#[derive(Clone)]
pub struct HostForwarder {
    inner: Arc<Inner>,
}

struct Inner {
    self_id: u64,
    pool: PeerPool,
    health: HostHealth,
    config: ForwardConfig,
    /// Requests in flight per host (until their answer's body ends).
    in_flight: Arc<Mutex<HashMap<u64, usize>>>,
    /// Round-robin start among equally loaded hosts.
    next: AtomicUsize,
}

impl HostForwarder {
    pub(crate) fn new(
        self_id: u64,
        pool: PeerPool,
        health: HostHealth,
        config: ForwardConfig,
    ) -> Self {
        HostForwarder {
            inner: Arc::new(Inner {
                self_id,
                pool,
                health,
                config,
                in_flight: Arc::default(),
                next: AtomicUsize::new(0),
            }),
        }
    }

    /// Requests in flight to each host now.
    pub fn in_flight(&self) -> HashMap<u64, usize> {
        lock(&self.inner.in_flight).clone()
    }
}

impl Forwarder for HostForwarder {
    fn forward(
        &self,
        target: RemoteTarget,
        request: http::Request<LimitedBody<Incoming>>,
    ) -> BoxFuture<'static, Result<http::Response<ForwardedBody>, ForwardError>> {
        let inner = self.inner.clone();
        let span = tracing::debug_span!("forward", tenant = %target.tenant, app = %target.app);
        Box::pin(inner.forward(target, request).instrument(span))
    }
}

/// How one attempt ended when it did not produce the answer.
enum Miss {
    /// Nothing reached a guest: another host may be tried.
    Retry(String),
    /// Final.
    Fail(ForwardError),
}

impl Inner {
    /// The hosts to try, best first: up, least in flight per instance, round robin
    /// among equals.
    fn order(&self, target: &RemoteTarget) -> Vec<u64> {
        let mut hosts: Vec<(u64, u32)> = target
            .hosts
            .iter()
            .copied()
            .filter(|(host, _)| *host != self.self_id && self.health.is_up(*host))
            .collect();
        if hosts.is_empty() {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % hosts.len();
        hosts.rotate_left(start);
        let loads = lock(&self.in_flight);
        hosts.sort_by_key(|(host, instances)| {
            let in_flight = loads.get(host).copied().unwrap_or(0) as u64;
            (in_flight + 1) * 1_000_000 / u64::from((*instances).max(1))
        });
        hosts.into_iter().map(|(host, _)| host).collect()
    }

    async fn forward(
        self: Arc<Self>,
        target: RemoteTarget,
        request: http::Request<LimitedBody<Incoming>>,
    ) -> Result<http::Response<ForwardedBody>, ForwardError> {
        let app = format!("{}/{}", target.tenant, target.app);
        let hosts = self.order(&target);
        if hosts.is_empty() {
            return Err(ForwardError::NoHostUp { app });
        }
        let (parts, body) = request.into_parts();
        let headers = self.forwarded_headers(&parts);
        let path = format!(
            "{}{}",
            receive::FORWARD_PREFIX,
            parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
        );
        let idempotent = matches!(
            parts.method,
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        );
        let replay = Replay::new(body, self.config.replay_limit);
        let attempts = hosts.len().min(self.config.max_attempts.max(1));
        let mut misses = Vec::new();
        for (n, host) in hosts.into_iter().take(attempts).enumerate() {
            let Some(body) = replay.attempt() else {
                misses.push("the request body was too large to send again".to_string());
                break;
            };
            if n + 1 == attempts {
                // No attempt follows: keep no more of the body.
                replay.stop_recording();
            }
            let uri = PeerPool::uri(host, &path).map_err(|err| ForwardError::Failed {
                host,
                reason: format!("cannot address the request: {err}"),
            })?;
            let mut request = http::Request::new(body.map_err(BoxError::from).boxed_unsync());
            *request.method_mut() = parts.method.clone();
            *request.uri_mut() = uri;
            *request.headers_mut() = headers.clone();
            match self.attempt(host, request, idempotent).await {
                Ok(response) => return Ok(response),
                Err(Miss::Retry(reason)) => {
                    tracing::debug!(host, %reason, "trying another host");
                    misses.push(format!("host {host}: {reason}"));
                }
                Err(Miss::Fail(err)) => return Err(err),
            }
            if n + 1 < attempts && !replay.replayable() {
                misses.push("the request body was too large to send again".to_string());
                break;
            }
        }
        Err(ForwardError::Unavailable {
            app,
            reason: misses.join("; "),
        })
    }

    /// Sends one attempt to `host`.
    async fn attempt(
        &self,
        host: u64,
        request: http::Request<pool::PoolBody>,
        idempotent: bool,
    ) -> Result<http::Response<ForwardedBody>, Miss> {
        let guard = InFlight::new(&self.in_flight, host);
        let timeout = self.config.answer_timeout;
        let response = match tokio::time::timeout(timeout, self.pool.send(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(err)) if err.is_connect() => return Err(Miss::Retry(error_chain(&err))),
            Ok(Err(err)) if body_too_large(&err) => {
                return Err(Miss::Fail(ForwardError::BodyTooLarge));
            }
            Ok(Err(err)) if idempotent => return Err(Miss::Retry(error_chain(&err))),
            Ok(Err(err)) => {
                return Err(Miss::Fail(ForwardError::Failed {
                    host,
                    reason: error_chain(&err),
                }));
            }
            Err(_) if idempotent => {
                return Err(Miss::Retry(format!("no answer within {timeout:?}")));
            }
            Err(_) => {
                return Err(Miss::Fail(ForwardError::Timeout {
                    host,
                    after: timeout,
                }));
            }
        };
        if let Some(status) = response.headers().get(FORWARD_STATUS_HEADER) {
            let status = String::from_utf8_lossy(status.as_bytes()).into_owned();
            return Err(Miss::Retry(status));
        }
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let body = Counted {
            inner: body,
            _guard: guard,
        }
        .map_err(BoxError::from)
        .boxed_unsync();
        tracing::debug!(host, status = parts.status.as_u16(), "forwarded");
        Ok(http::Response::from_parts(parts, body))
    }

    /// The client's headers as the peer gets them: without hop-by-hop headers,
    /// with `Host`, the client's address appended to `X-Forwarded-For`, and
    /// [`FORWARDED_BY_HEADER`].
    fn forwarded_headers(&self, parts: &http::request::Parts) -> HeaderMap {
        let mut headers = parts.headers.clone();
        strip_hop_by_hop(&mut headers);
        if !headers.contains_key(header::HOST)
            && let Some(authority) = parts.uri.authority()
            && let Ok(value) = HeaderValue::from_str(authority.as_str())
        {
            headers.insert(header::HOST, value);
        }
        if let Some(ClientAddr(client)) = parts.extensions.get::<ClientAddr>() {
            let ip = client.ip().to_string();
            let value = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
                Some(earlier) => format!("{earlier}, {ip}"),
                None => ip,
            };
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(X_FORWARDED_FOR, value);
            }
        }
        headers.insert(FORWARDED_BY_HEADER, HeaderValue::from(self.self_id));
        headers
    }
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
}

/// The error and its causes on one line.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether the request failed because its body exceeded the gateway's limit.
fn body_too_large(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(cause) = source {
        if let Some(RequestBodyError::HttpRequestBodySize(_)) = cause.downcast_ref() {
            return true;
        }
        source = cause.source();
    }
    false
}

fn lock(loads: &Mutex<HashMap<u64, usize>>) -> MutexGuard<'_, HashMap<u64, usize>> {
    loads.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts a request in flight to a host until dropped.
struct InFlight {
    loads: Arc<Mutex<HashMap<u64, usize>>>,
    host: u64,
}

impl InFlight {
    fn new(loads: &Arc<Mutex<HashMap<u64, usize>>>, host: u64) -> Self {
        *lock(loads).entry(host).or_default() += 1;
        InFlight {
            loads: loads.clone(),
            host,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut loads = lock(&self.loads);
        if let Some(count) = loads.get_mut(&self.host) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                loads.remove(&self.host);
            }
        }
    }
}

/// A forwarded answer's body, counted in flight until it ends or is dropped.
struct Counted {
    inner: Incoming,
    _guard: InFlight,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
