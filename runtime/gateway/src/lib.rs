//! The HTTP gateway: accepts connections (HTTP/1.1 and HTTP/2), enforces
//! request-size limits, routes each request by Host and path to its
//! component and turns every host-side failure into a short 4xx/5xx answer.
//! One `tracing` span per request records method, path, status, latency and
//! time inside the guest.

mod limits;
mod partner;
mod router;

pub use limits::{LimitedBody, declared_length};
pub use router::{RemoteTarget, Router, SingleComponent, Target, request_host};

use cloudware_engine::{HandleError, RequestStats, ResponseBody};
use cloudware_metrics::RequestRecord;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tracing::Instrument;

/// The `tracing` target of the per-request span and access-log line; off
/// unless enabled (e.g. `--access-log`), so the hot path pays nothing for it.
pub const ACCESS_LOG_TARGET: &str = "cloudware::access";

/// How long in-flight requests may take to finish after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Limits the gateway enforces before a request reaches a guest.
#[derive(Clone, Debug)]
pub struct GatewayLimits {
    /// Largest request body, in bytes.
    pub max_request_body: u64,
    /// Largest request head (request line and headers), in bytes.
    pub max_request_headers: usize,
}

impl GatewayLimits {
    /// The gateway's share of the engine's limits.
    pub fn from_engine(limits: &cloudware_engine::Limits) -> Self {
        GatewayLimits {
            max_request_body: limits.max_request_body.as_u64(),
            max_request_headers: usize::try_from(limits.max_request_headers.as_u64())
                .unwrap_or(usize::MAX),
        }
    }
}

/// A bound listener serving whatever its [`Router`] resolves.
pub struct Gateway {
    listener: TcpListener,
    router: Arc<dyn Router>,
    limits: Arc<GatewayLimits>,
    openapi: Option<Arc<cloudware_partner::OpenApi>>,
}

/// The path of the partner API on the gateway port.
pub const OPENAPI_PATH: &str = "/openapi";

impl Gateway {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(
        addr: SocketAddr,
        router: Arc<dyn Router>,
        limits: GatewayLimits,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Gateway {
            listener,
            router,
            limits: Arc::new(limits),
            openapi: None,
        })
    }

    /// Also answers the signed partner API at `POST /openapi`.
    pub fn with_openapi(mut self, openapi: Arc<cloudware_partner::OpenApi>) -> Self {
        self.openapi = Some(openapi);
        self
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting and gives
    /// in-flight requests [`SHUTDOWN_GRACE`] to finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // hyper's read buffer bounds the request head; it cannot go below 8 KiB.
        builder
            .http1()
            .timer(TokioTimer::new())
            .max_buf_size(self.limits.max_request_headers.max(8192))
            .header_read_timeout(Duration::from_secs(30));
        builder.http2().max_header_list_size(
            u32::try_from(self.limits.max_request_headers).unwrap_or(u32::MAX),
        );
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(err) => {
                        // Out of file descriptors and the like: back off briefly.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let router = self.router.clone();
            let limits = self.limits.clone();
            let openapi = self.openapi.clone();
            let service = service_fn(move |request: http::Request<Incoming>| {
                let router = router.clone();
                let limits = limits.clone();
                let openapi = openapi.clone();
                async move {
                    match openapi {
                        Some(openapi)
                            if request.method() == http::Method::POST
                                && request.uri().path() == OPENAPI_PATH =>
                        {
                            Ok(partner::serve(&openapi, request).await)
                        }
                        _ => serve_request(router, limits, request).await,
                    }
                }
            });
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(err) = connection.await {
                    tracing::debug!(%peer, error = %err, "connection closed with an error");
                }
            });
        }
        drop(self.listener);
        tracing::info!(connections = graceful.count(), "shutting down");
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish within the shutdown grace period");
        }
    }
}

/// Handles one request end to end, inside its own span.
async fn serve_request(
    router: Arc<dyn Router>,
    limits: Arc<GatewayLimits>,
    request: http::Request<Incoming>,
) -> Result<http::Response<ResponseBody>, std::convert::Infallible> {
    let span = tracing::info_span!(
        target: ACCESS_LOG_TARGET,
        "request",
        method = %request.method(),
        path = request.uri().path(),
        status = tracing::field::Empty,
        latency_us = tracing::field::Empty,
        guest_us = tracing::field::Empty,
    );
    let method = request.method().clone();
    let uri = request.uri().clone();
    async move {
        let started = Instant::now();
        let stats = Arc::new(RequestStats::default());
        let mut recorder = None;
        let outcome = match admit(&limits, router.as_ref(), request) {
            Ok((target, request)) => {
                recorder = target.recorder;
                target
                    .component
                    .handle(request, stats.clone())
                    .await
                    .map_err(Rejection::from)
            }
            Err(rejection) => Err(rejection),
        };
        let response = match outcome {
            Ok(response) => response,
            Err(rejection) => {
                let (status, reason) = rejection.explain(&limits);
                tracing::warn!(
                    %method,
                    path = uri.path(),
                    status = status.as_u16(),
                    %reason,
                    "request failed"
                );
                plain(status, reason)
            }
        };
        let latency = started.elapsed();
        if let Some(recorder) = recorder {
            recorder.record(RequestRecord {
                latency,
                guest_time: stats.guest_time(),
                peak_memory: stats.peak_memory(),
                server_error: response.status().is_server_error(),
            });
        }
        let span = tracing::Span::current();
        span.record("status", response.status().as_u16());
        span.record("latency_us", latency.as_micros() as u64);
        span.record("guest_us", stats.guest_time().as_micros() as u64);
        tracing::info!(target: ACCESS_LOG_TARGET, "done");
        Ok(response)
    }
    .instrument(span)
    .await
}

enum Rejection {
    NotRouted { host: String, path: String },
    TooLarge(u64),
    Handle(HandleError),
}

impl Rejection {
    /// The status and one-line reason the client gets.
    fn explain(&self, limits: &GatewayLimits) -> (http::StatusCode, String) {
        match self {
            Rejection::NotRouted { host, path } => (
                http::StatusCode::NOT_FOUND,
                format!("no app is deployed at {host}{path}"),
            ),
            Rejection::Handle(err) => (err.status(), err.to_string()),
            Rejection::TooLarge(declared) => (
                http::StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body of {declared} bytes exceeds the limit of {} bytes",
                    limits.max_request_body
                ),
            ),
        }
    }
}

impl From<HandleError> for Rejection {
    fn from(err: HandleError) -> Self {
        Rejection::Handle(err)
    }
}

/// Routes the request and applies the body limit: a declared oversize body is
/// refused outright, any other body is counted as it streams.
fn admit(
    limits: &GatewayLimits,
    router: &dyn Router,
    request: http::Request<Incoming>,
) -> Result<(Target, http::Request<LimitedBody<Incoming>>), Rejection> {
    let host = request_host(&request).unwrap_or_default();
    let Some(target) = router.route(host, request.uri().path()) else {
        return Err(Rejection::NotRouted {
            host: host.to_string(),
            path: request.uri().path().to_string(),
        });
    };
    if let Some(declared) = declared_length(request.headers())
        && declared > limits.max_request_body
    {
        return Err(Rejection::TooLarge(declared));
    }
    let request = request.map(|body| LimitedBody::new(body, limits.max_request_body));
    Ok((target, request))
}

fn plain(status: http::StatusCode, reason: String) -> http::Response<ResponseBody> {
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
