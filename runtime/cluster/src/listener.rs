//! The cluster port: accepts TLS connections and serves each by its ALPN protocol — raft
//! frames of the control plane (`cw-raft/2`) or of the message bus's group (`cw-bus-raft/2`)
//! (callers must present a cluster certificate; the frames follow the caller's own address,
//! see [`crate::peers`]) or host-to-host HTTP calls, over
//! HTTP/1.1 (one call per connection) or HTTP/2 (the pooled, multiplexed connections of
//! forwarding and heartbeats); the caller's host id, if it presented a certificate, goes
//! with every request. Forwarded
//! gateway requests (`/v1/forward/…`) go straight to the [`ForwardReceiver`], with their
//! body as hyper delivers it, service calls (`POST /v1/call`) to the [`CallReceiver`];
//! every other call to the rpc router.

use crate::calls::{CALL_PATH, CallReceiver};
use crate::forward::{ForwardReceiver, is_forwarded};
use crate::peers::{PeerBook, read_preamble};
use crate::rpc::Caller;
use crate::tls::{ALPN_BUS_RAFT, ALPN_H2, ALPN_HTTP, ALPN_RAFT};
use axum::Router;
use cloudware_cluster_tls::PeerNodeId as _;
use cloudware_cluster_tls::rustls::ServerConfig;
use cloudware_cluster_tls::tokio_rustls::TlsAcceptor;
use cloudware_raft::tcp::MAX_FRAME_BYTES;
use cloudware_raft::{RaftNode, serve_peer_stream};
use futures::TryFutureExt as _;
use futures::future::Either;
use http_body_util::Either as BodyEither;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt as _;
use tracing::Instrument as _;

/// Bound of a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The running cluster port; dropping it closes the listener and its connections.
pub(crate) struct ClusterListener {
    task: JoinHandle<()>,
}

impl Drop for ClusterListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The two raft groups a host is a member of.
#[derive(Clone)]
pub(crate) struct RaftGroups {
    /// The control plane's.
    pub(crate) control: Arc<RaftNode>,
    /// The message bus's.
    pub(crate) bus: Arc<RaftNode>,
    /// Where peers listen: a raft connection opens with the dialer's address.
    pub(crate) book: Arc<PeerBook>,
}

/// Serves the cluster port on `listener`.
pub(crate) fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    raft: RaftGroups,
    router: Router,
    forwards: Arc<ForwardReceiver>,
    calls: Arc<CallReceiver>,
) -> std::io::Result<ClusterListener> {
    let local_addr = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(tls);
    let span = tracing::info_span!("cluster_port", %local_addr);
    let task = tokio::spawn(
        async move {
            tracing::info!("serving the cluster port");
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, remote)) => {
                            let span = tracing::info_span!("cluster_conn", %remote);
                            connections.spawn(
                                connection(
                                    stream,
                                    acceptor.clone(),
                                    raft.clone(),
                                    router.clone(),
                                    forwards.clone(),
                                    calls.clone(),
                                )
                                .instrument(span),
                            );
                        }
                        Err(error) => {
                            tracing::warn!(%error, "accepting a cluster connection failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        }
        .instrument(span),
    );
    Ok(ClusterListener { task })
}

async fn connection(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    raft: RaftGroups,
    router: Router,
    forwards: Arc<ForwardReceiver>,
    calls: Arc<CallReceiver>,
) {
    let _ = stream.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::warn!(%error, "cluster TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::warn!("cluster TLS handshake timed out");
            return;
        }
    };
    let peer = tls.peer_node_id();
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    match alpn.as_deref() {
        Some(proto @ (ALPN_RAFT | ALPN_BUS_RAFT)) => {
            let Some(peer) = peer else {
                tracing::warn!("raft connection without a cluster certificate; closing");
                return;
            };
            let (group, node) = if proto == ALPN_RAFT {
                ("control", raft.control)
            } else {
                ("bus", raft.bus)
            };
            let mut tls = tls;
            match read_preamble(&mut tls).await {
                Ok(addr) => raft.book.heard_from(peer, addr),
                Err(error) => {
                    tracing::warn!(peer, group, %error, "raft connection without a preamble; closing");
                    return;
                }
            }
            tracing::debug!(peer, group, "raft peer connected");
            serve_peer_stream(tls, &*node, MAX_FRAME_BYTES).await;
        }
        Some(proto @ (ALPN_HTTP | ALPN_H2)) => {
            let h2 = proto == ALPN_H2;
            let service = hyper::service::service_fn(
                move |mut request: http::Request<hyper::body::Incoming>| {
                    if is_forwarded(request.uri().path()) {
                        let forwards = forwards.clone();
                        return Either::Left(Either::Left(async move {
                            let response = forwards.serve(peer, request).await;
                            Ok::<_, Infallible>(response.map(BodyEither::Right))
                        }));
                    }
                    if request.uri().path() == CALL_PATH && request.method() == http::Method::POST {
                        let calls = calls.clone();
                        return Either::Left(Either::Right(async move {
                            let response = calls.serve(peer, request).await;
                            Ok::<_, Infallible>(response.map(BodyEither::Right))
                        }));
                    }
                    request.extensions_mut().insert(Caller(peer));
                    Either::Right(
                        router
                            .clone()
                            .oneshot(request.map(axum::body::Body::new))
                            .map_ok(|response| response.map(BodyEither::Left)),
                    )
                },
            );
            let served = if h2 {
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await
            } else {
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await
            };
            if let Err(error) = served {
                tracing::debug!(%error, "cluster call connection ended");
            }
        }
        other => {
            tracing::warn!(alpn = ?other.map(String::from_utf8_lossy), "unknown cluster protocol; closing");
        }
    }
}
