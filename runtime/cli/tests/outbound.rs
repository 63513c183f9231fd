//! Outbound HTTP from a guest: denied unless the host is on the allow-list.

mod common;

use bytes::Bytes;
use common::{Server, get};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::net::TcpListener;

/// A real upstream HTTP server on loopback that counts its requests.
async fn upstream() -> (SocketAddr, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicU32::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        // Bounded: the test makes at most a handful of requests.
        for _ in 0..32 {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"upstream says hi"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, hits)
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_requests_are_denied_by_default() {
    let (upstream, hits) = upstream().await;
    let server = Server::start(cloudware_test_artifacts::WASIP2_HELLO, &[]);
    let reply = get(server.addr, &format!("/fetch?url=http://{upstream}/")).await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert!(
        reply.text().contains("HttpRequestDenied"),
        "{}",
        reply.text()
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the request must not leave the host"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_hosts_are_reached_and_others_still_denied() {
    let (allowed, allowed_hits) = upstream().await;
    let (other, other_hits) = upstream().await;
    let server = Server::start(
        cloudware_test_artifacts::WASIP2_HELLO,
        &["--allow-outbound", &allowed.to_string()],
    );
    let reply = get(server.addr, &format!("/fetch?url=http://{allowed}/hello")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "upstream 200: upstream says hi");
    assert_eq!(allowed_hits.load(Ordering::SeqCst), 1);

    // Same host, another port: not on the list.
    let reply = get(server.addr, &format!("/fetch?url=http://{other}/")).await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert!(
        reply.text().contains("HttpRequestDenied"),
        "{}",
        reply.text()
    );
    assert_eq!(other_hits.load(Ordering::SeqCst), 0);
}
