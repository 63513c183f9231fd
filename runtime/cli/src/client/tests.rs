//! Tests of the admin API client.

use super::*;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use std::sync::{Arc, Mutex};

/// What the test server saw of one request.
#[derive(Debug, Default, Clone)]
struct Seen {
    method: String,
    path_and_query: String,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

/// A one-connection-at-a-time HTTP/1 server on 127.0.0.1:0 that records
/// each request and answers `status` with `body`.
async fn server(status: u16, body: &'static str) -> (Url, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let log = log.clone();
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let log = log.clone();
                async move {
                    let (parts, incoming) = request.into_parts();
                    let bytes = incoming.collect().await?.to_bytes();
                    log.lock().unwrap().push(Seen {
                        method: parts.method.to_string(),
                        path_and_query: parts.uri.path_and_query().unwrap().to_string(),
                        headers: parts.headers,
                        body: bytes.to_vec(),
                    });
                    let response = hyper::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Full::new(bytes::Bytes::from_static(body.as_bytes())))
                        .unwrap();
                    Ok::<_, hyper::Error>(response)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    (url, seen)
}

const DIGEST: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

fn package_json(existed: bool) -> String {
    format!(
        r#"{{"digest":"{DIGEST}","size":200000,"imports":[],"exports":["wasi:http/incoming-handler@0.2.6"],"existed":{existed}}}"#
    )
}

#[tokio::test]
async fn push_sends_the_file_with_length_type_and_token() {
    let answer: &'static str = Box::leak(package_json(false).into_boxed_str());
    let (url, seen) = server(201, answer).await;
    let client = Client::new(url, "s3cret").unwrap();

    // Larger than one chunk, so progress is reported more than once.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.wasm");
    let mut bytes = b"\0asm\x0d\x00\x01\x00".to_vec();
    bytes.extend((0..200_000u32).map(|i| (i % 251) as u8));
    std::fs::write(&path, &bytes).unwrap();
    let file = tokio::fs::File::open(&path).await.unwrap();

    let progress = Arc::new(Mutex::new(Vec::new()));
    let record = progress.clone();
    let (info, new) = client
        .push_package(Some("acme"), file, bytes.len() as u64, move |n| {
            record.lock().unwrap().push(n)
        })
        .await
        .unwrap();
    assert!(new);
    assert_eq!(info.digest, DIGEST);

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path_and_query, "/v1/packages?tenant=acme");
    assert_eq!(request.headers["authorization"], "Bearer s3cret");
    assert_eq!(request.headers["content-type"], "application/wasm");
    assert_eq!(
        request.headers["content-length"],
        bytes.len().to_string().as_str()
    );
    assert!(request.headers.get("transfer-encoding").is_none());
    assert!(request.body == bytes, "the body differs from the file");

    let progress = progress.lock().unwrap();
    assert!(progress.len() > 1, "{progress:?}");
    assert_eq!(progress.iter().sum::<u64>(), bytes.len() as u64);
}

#[tokio::test]
async fn push_of_stored_bytes_is_not_new() {
    let answer: &'static str = Box::leak(package_json(true).into_boxed_str());
    let (url, _) = server(200, answer).await;
    let client = Client::new(url, "t").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.wasm");
    std::fs::write(&path, b"\0asm\x0d\x00\x01\x00").unwrap();
    let file = tokio::fs::File::open(&path).await.unwrap();
    let (_, new) = client.push_package(None, file, 8, |_| {}).await.unwrap();
    assert!(!new);
}

#[tokio::test]
async fn json_calls_use_the_contract_paths() {
    let (url, seen) = server(200, r#"{"app":"my app","tenant":"acme","version":3,"package":"sha256:x","routes":["/"],"status":"active","current":true,"created_at":1}"#).await;
    // A base URL with a path prefix keeps it.
    let client = Client::new(url.join("admin/").unwrap(), "t").unwrap();
    let request = wire::CreateDeployment {
        package: DIGEST.into(),
        routes: vec!["/".into()],
        timeout_ms: Some(30_000),
        ..Default::default()
    };
    let deployment = client
        .deploy(Some("acme"), "my app", &request)
        .await
        .unwrap();
    assert_eq!(deployment.version, 3);
    client
        .rollback(None, "shop", &wire::Rollback { to: Some(2) })
        .await
        .unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(
        seen[0].path_and_query,
        "/admin/v1/apps/my%20app/deployments?tenant=acme"
    );
    assert_eq!(seen[0].headers["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"package": DIGEST, "routes": ["/"], "timeout_ms": 30000})
    );
    assert_eq!(seen[1].path_and_query, "/admin/v1/apps/shop/rollback");
    assert_eq!(seen[1].body, br#"{"to":2}"#);
}

#[tokio::test]
async fn server_errors_carry_message_and_exit_code() {
    let (url, _) = server(
        409,
        r#"{"error":{"code":"conflict","message":"route /api is taken by app blog"}}"#,
    )
    .await;
    let client = Client::new(url, "t").unwrap();
    let err = client
        .scale(
            None,
            "shop",
            &wire::Scale {
                instances: 1,
                min_warm: 0,
                spread: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "route /api is taken by app blog");
    assert_eq!(err.exit_code(), exit::REJECTED);

    // Not the API's error body: status and body text.
    let (url, _) = server(404, "<html>\n  Not  here\n</html>").await;
    let err = Client::new(url, "t")
        .unwrap()
        .list_tenants()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the admin API answered 404 Not Found: <html> Not here </html>"
    );
    assert_eq!(err.exit_code(), exit::NOT_FOUND);

    // A 2xx whose JSON does not fit.
    let (url, _) = server(200, r#"{"nope":1}"#).await;
    let err = Client::new(url, "t")
        .unwrap()
        .status(None)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("unexpected answer to GET /v1/status: "),
        "{err}"
    );
    assert_eq!(err.exit_code(), exit::FAILURE);
}

#[tokio::test]
async fn unreachable_server() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = Client::new(Url::parse(&format!("http://{addr}")).unwrap(), "t").unwrap();
    let err = client.list_tokens().await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("cannot reach the admin API at http://{addr}: ")),
        "{message}"
    );
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert_eq!(err.exit_code(), exit::FAILURE);
}

#[test]
fn client_checks_url_and_token() {
    let url = |s| Url::parse(s).unwrap();
    assert!(Client::new(url("https://h/"), "t").is_err());
    assert!(Client::new(url("http://h/"), "bad\ntoken").is_err());
    let client = Client::new(url("http://h:1"), "t").unwrap();
    assert_eq!(
        client.endpoint(&["tokens", "tok/1"], None).as_str(),
        "http://h:1/v1/tokens/tok%2F1"
    );
    assert_eq!(
        client.endpoint(&["status"], Some("a&b")).as_str(),
        "http://h:1/v1/status?tenant=a%26b"
    );
    assert!(is_loopback(&url("http://127.0.0.1:8081")));
    assert!(is_loopback(&url("http://[::1]:8081")));
    assert!(is_loopback(&url("http://LOCALHOST")));
    assert!(!is_loopback(&url("http://10.0.0.1")));
}
