//! The HTTP gateway: accepts connections (HTTP/1.1 and HTTP/2), enforces
//! request-size limits, routes each request by Host and path to its
//! component — or, for an app that runs on other hosts only, forwards it to
//! one of them ([`Forwarder`]) — and turns every host-side failure into a
//! short 4xx/5xx answer. One `tracing` span per request records method, path,
//! status, latency and time inside the guest.

mod forward;
mod limits;
mod partner;
mod router;
mod serve;

pub use forward::{
    BoxError, ClientAddr, FORWARD_STATUS_HEADER, FORWARDED_BY_HEADER, ForwardError, ForwardedBody,
    Forwarder, GatewayBody, NOT_HERE, OVERLOADED,
};
pub use limits::{LimitedBody, declared_length};
pub use router::{RemoteTarget, Router, SingleComponent, Target, request_host};
pub use serve::serve_forwarded;

use cloudware_metrics::Metrics;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

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
    limits: GatewayLimits,
    openapi: Option<Arc<cloudware_partner::OpenApi>>,
    forwarder: Option<Arc<dyn Forwarder>>,
    metrics: Option<Arc<Metrics>>,
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
            limits,
            openapi: None,
            forwarder: None,
            metrics: None,
        })
    }

    /// Forwards requests for apps that run on other hosts only
    /// ([`Router::remote`]) through `forwarder`. Without one they get a 503.
    pub fn with_forwarder(mut self, forwarder: Arc<dyn Forwarder>) -> Self {
        self.forwarder = Some(forwarder);
        self
    }

    /// Counts forwarded requests per app in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
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
        let shared = Arc::new(serve::Shared {
            router: self.router,
            limits: self.limits,
            forwarder: self.forwarder,
            metrics: self.metrics,
        });
        let openapi = self.openapi;
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
            let shared = shared.clone();
            let openapi = openapi.clone();
            let service = service_fn(move |request: http::Request<Incoming>| {
                let shared = shared.clone();
                let openapi = openapi.clone();
                async move {
                    match openapi {
                        Some(openapi)
                            if request.method() == http::Method::POST
                                && request.uri().path() == OPENAPI_PATH =>
                        {
                            Ok(partner::serve(&openapi, request)
                                .await
                                .map(GatewayBody::from))
                        }
                        _ => serve::serve_request(shared, peer, request).await,
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
