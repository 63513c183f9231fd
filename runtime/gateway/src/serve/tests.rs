//! The gateway's forwarding decisions over a real socket, with a router whose
//! apps run elsewhere and a fake forwarder.

use super::*;
use crate::{ForwardedBody, Gateway};
use http_body_util::{BodyExt, Full};
use std::sync::Mutex;

/// Routes nothing here; `remote.test` runs on hosts 2 and 3.
struct Elsewhere;

impl Router for Elsewhere {
    fn route(&self, _host: &str, _path: &str) -> Option<Target> {
        None
    }

    fn remote(&self, host: &str, _path: &str) -> Option<RemoteTarget> {
        (host == "remote.test").then(|| RemoteTarget {
            tenant: "acme".into(),
            app: "shop".into(),
            hosts: vec![(2, 1), (3, 2)],
        })
    }
}

/// What the fake forwarder saw.
#[derive(Default)]
struct Seen {
    calls: usize,
    client: Option<SocketAddr>,
    path: String,
}

/// Echoes the request back, or fails with `NoHostUp` for `/down`.
#[derive(Default)]
struct Echo {
    seen: Mutex<Seen>,
}

impl Forwarder for Echo {
    fn forward(
        &self,
        target: RemoteTarget,
        request: http::Request<LimitedBody<Incoming>>,
    ) -> futures::future::BoxFuture<'static, Result<http::Response<ForwardedBody>, ForwardError>>
    {
        let mut seen = self.seen.lock().expect("lock");
        seen.calls += 1;
        seen.client = request.extensions().get::<ClientAddr>().map(|c| c.0);
        seen.path = request.uri().path().to_string();
        drop(seen);
        Box::pin(async move {
            if request.uri().path() == "/down" {
                return Err(ForwardError::NoHostUp {
                    app: format!("{}/{}", target.tenant, target.app),
                });
            }
            let body = request
                .into_body()
                .collect()
                .await
                .map_err(|_| ForwardError::BodyTooLarge)?
                .to_bytes();
            let body = Full::new(body)
                .map_err(|never| match never {})
                .boxed_unsync();
            Ok(http::Response::new(body))
        })
    }
}

async fn start(forwarder: Option<Arc<Echo>>) -> (SocketAddr, Arc<Metrics>) {
    let limits = GatewayLimits {
        max_request_body: 16,
        max_request_headers: 8192,
    };
    let metrics = Arc::new(Metrics::new());
    let mut gateway = Gateway::bind(
        "127.0.0.1:0".parse().expect("addr"),
        Arc::new(Elsewhere),
        limits,
    )
    .await
    .expect("bind")
    .with_metrics(metrics.clone());
    if let Some(forwarder) = forwarder {
        gateway = gateway.with_forwarder(forwarder);
    }
    let addr = gateway.local_addr().expect("addr");
    tokio::spawn(gateway.serve(std::future::pending()));
    (addr, metrics)
}

/// Sends one request; answers status, headers and body.
async fn send(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &'static str,
) -> (http::StatusCode, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    let mut request = http::Request::post(path).header("host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from(body))).expect("request");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn apps_elsewhere_go_through_the_forwarder() {
    let echo = Arc::new(Echo::default());
    let (addr, metrics) = start(Some(echo.clone())).await;
    let (status, body) = send(addr, "remote.test", "/cart", &[], "one item").await;
    assert_eq!(status, 200);
    assert_eq!(body, "one item");
    {
        let seen = echo.seen.lock().expect("lock");
        assert_eq!(seen.calls, 1);
        assert_eq!(seen.path, "/cart");
        assert!(seen.client.is_some_and(|c| c.ip().is_loopback()));
    }
    let (status, body) = send(addr, "remote.test", "/down", &[], "").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("acme/shop runs on no host that is up"),
        "{body}"
    );
    let text = metrics.render();
    assert!(
        text.contains(r#"cloudware_app_forwarded_requests_total{tenant="acme",app="shop"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"cloudware_app_forward_failures_total{tenant="acme",app="shop"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn forwarded_requests_are_not_forwarded_again() {
    let echo = Arc::new(Echo::default());
    let (addr, _) = start(Some(echo.clone())).await;
    let (status, body) = send(
        addr,
        "remote.test",
        "/cart",
        &[(FORWARDED_BY_HEADER, "2")],
        "",
    )
    .await;
    assert_eq!(status, http::StatusCode::LOOP_DETECTED, "{body}");
    assert_eq!(echo.seen.lock().expect("lock").calls, 0);
}

#[tokio::test]
async fn limits_apply_before_forwarding() {
    let echo = Arc::new(Echo::default());
    let (addr, _) = start(Some(echo.clone())).await;
    let (status, _) = send(
        addr,
        "remote.test",
        "/cart",
        &[],
        "far more than sixteen bytes",
    )
    .await;
    assert_eq!(status, http::StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(echo.seen.lock().expect("lock").calls, 0);
}

#[tokio::test]
async fn without_a_forwarder_apps_elsewhere_are_unavailable() {
    let (addr, _) = start(None).await;
    let (status, body) = send(addr, "remote.test", "/", &[], "").await;
    assert_eq!(status, 503, "{body}");
    let (status, _) = send(addr, "nowhere.test", "/", &[], "").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_host_not_running_the_app_says_so() {
    let limits = GatewayLimits {
        max_request_body: 16,
        max_request_headers: 8192,
    };
    let request = http::Request::get("/cart")
        .header("host", "remote.test")
        .header(FORWARDED_BY_HEADER, "2")
        .body(Full::new(Bytes::new()))
        .expect("request");
    // `Elsewhere::remote` knows the app, but a forwarded request never goes on.
    let response = serve_forwarded(&Elsewhere, &limits, 2, request).await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response
            .headers()
            .get(FORWARD_STATUS_HEADER)
            .and_then(|v| v.to_str().ok()),
        Some(NOT_HERE)
    );
}
