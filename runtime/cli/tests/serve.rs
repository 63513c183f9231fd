//! `cloudware serve` end to end: real components, a real server process,
//! real HTTP over loopback.

mod common;

use bytes::Bytes;
use common::{Server, full, get, send};
use http_body_util::{BodyExt, StreamBody};
use sha2::{Digest, Sha256};

const TEN_MIB: usize = 10 * 1024 * 1024;

/// Components that must behave the same: our SDK's and a plain `wasip2` one.
fn hello_components() -> [(&'static str, &'static str); 2] {
    [
        (cloudware_test_artifacts::HELLO, "Hello from Cloudware!\n"),
        (
            cloudware_test_artifacts::WASIP2_HELLO,
            "Hello from wasip2!\n",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn hello_components_answer() {
    for (component, greeting) in hello_components() {
        let server = Server::start(component, &[]);
        let reply = get(server.addr, "/").await;
        assert_eq!(reply.status, 200, "{component}");
        assert_eq!(reply.text(), greeting);
        let missing = get(server.addr, "/no-such-page").await;
        assert_eq!(missing.status, 404, "{component}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn method_path_query_headers_and_body_reach_the_guest() {
    for (component, _) in hello_components() {
        let server = Server::start(component, &[]);
        let request = http::Request::put(format!("http://{}/info?x=1&y=two", server.addr))
            .header("host", server.addr.to_string())
            .header("x-test", "yes please")
            .header("content-type", "text/plain")
            .body(full("twelve bytes"))
            .expect("request");
        let reply = send(server.addr, request).await;
        assert_eq!(reply.status, 200, "{component}: {}", reply.text());
        let info: serde_json::Value = serde_json::from_str(&reply.text()).expect("json");
        assert_eq!(info["method"], "PUT", "{component}");
        assert_eq!(info["path"], "/info");
        assert_eq!(info["query"], "x=1&y=two");
        assert_eq!(info["headers"]["x-test"], "yes please");
        assert_eq!(info["body_len"], 12);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn response_headers_come_back() {
    let server = Server::start(cloudware_test_artifacts::WASIP2_HELLO, &[]);
    let request = http::Request::get(format!("http://{}/info", server.addr))
        .header("host", server.addr.to_string())
        .header("x-echo", "round trip")
        .body(full(Bytes::new()))
        .expect("request");
    let reply = send(server.addr, request).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers.get("x-echo").map(|v| v.as_bytes()),
        Some(&b"round trip"[..])
    );
    assert_eq!(
        reply.headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_mib_streams_through_both_ways() {
    // Deterministic, non-repeating-looking content.
    let payload: Vec<u8> = (0..TEN_MIB).map(|i| (i * 31 % 251) as u8).collect();
    let expected = Sha256::digest(&payload);
    for (component, _) in hello_components() {
        let server = Server::start(component, &[]);
        // Sent in 64 KiB chunks without a Content-Length: chunked encoding,
        // so the guest must stream rather than see one buffer.
        let chunks: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = payload
            .chunks(64 * 1024)
            .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let body = BodyExt::boxed(StreamBody::new(futures::stream::iter(chunks)));
        let request = http::Request::post(format!("http://{}/echo", server.addr))
            .header("host", server.addr.to_string())
            .header("content-type", "application/octet-stream")
            .body(body)
            .expect("request");
        let reply = send(server.addr, request).await;
        assert_eq!(reply.status, 200, "{component}");
        let body = reply.body.expect("complete body");
        assert_eq!(body.len(), TEN_MIB, "{component}");
        assert_eq!(Sha256::digest(&body), expected, "{component}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversize_body_is_refused() {
    let server = Server::start(
        cloudware_test_artifacts::HELLO,
        &["--max-request-body", "1KiB"],
    );
    let request = http::Request::post(format!("http://{}/echo", server.addr))
        .header("host", server.addr.to_string())
        .body(full(vec![b'x'; 4096]))
        .expect("request");
    let reply = send(server.addr, request).await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert!(
        reply.text().contains("exceeds the limit"),
        "{}",
        reply.text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversize_headers_are_refused() {
    let server = Server::start(
        cloudware_test_artifacts::HELLO,
        &["--max-request-headers", "16KiB"],
    );
    let request = http::Request::get(format!("http://{}/", server.addr))
        .header("host", server.addr.to_string())
        .header("x-big", "a".repeat(64 * 1024))
        .body(full(Bytes::new()))
        .expect("request");
    let reply = send(server.addr, request).await;
    assert_eq!(reply.status, 431);
    // And the server is fine afterwards.
    assert_eq!(get(server.addr, "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_the_request_span() {
    let server = Server::start(
        cloudware_test_artifacts::HELLO,
        &["--log-format", "json", "--access-log"],
    );
    assert_eq!(get(server.addr, "/?q=1").await.status, 200);
    let logs = server.wait_for_stderr("\"done\"");
    let line = logs
        .lines()
        .find(|l| l.contains("\"done\""))
        .expect("access log line");
    let entry: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    let span = &entry["span"];
    assert_eq!(span["method"], "GET", "{line}");
    assert_eq!(span["path"], "/", "{line}");
    assert_eq!(span["status"], 200, "{line}");
    assert!(span["latency_us"].as_u64().is_some(), "{line}");
    assert!(span["guest_us"].as_u64().is_some_and(|us| us > 0), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_reuses_the_compiled_code() {
    let cache = tempfile::tempdir().expect("cache");
    let dir = cache.path().to_str().expect("utf-8").to_string();
    let first = Server::start_raw(cloudware_test_artifacts::HELLO, &["--cache-dir", &dir]);
    assert_eq!(get(first.addr, "/").await.status, 200);
    first.wait_for_stderr("cached=false");
    assert!(first.terminate().success());
    let entries: Vec<_> = std::fs::read_dir(cache.path())
        .expect("cache dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].ends_with(".cwasm"), "{entries:?}");

    let second = Server::start_raw(cloudware_test_artifacts::HELLO, &["--cache-dir", &dir]);
    second.wait_for_stderr("cached=true");
    assert_eq!(get(second.addr, "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wstd_component_answers_unchanged() {
    let server = Server::start(cloudware_test_artifacts::WSTD_HELLO, &[]);
    let reply = get(server.addr, "/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "Hello from wstd!\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_address_space_for_the_pool_it_falls_back_to_on_demand() {
    // 64 GiB of address space: far less than the pool's reservation (each of
    // its hundreds of memory slots reserves 4 GiB), plenty for on-demand
    // instances. `ulimit -v` counts KiB.
    let cache = tempfile::tempdir().expect("cache");
    let script = format!(
        "ulimit -v {} && exec \"$0\" serve \"$1\" --listen 127.0.0.1:0 --cache-dir \"$2\"",
        64 * 1024 * 1024
    );
    let mut child = std::process::Command::new("bash")
        .args(["-c", &script, env!("CARGO_BIN_EXE_cloudware")])
        .arg(cloudware_test_artifacts::HELLO)
        .arg(cache.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let addr = common::serving_addr(child.stdout.take().expect("stdout"))
        .unwrap_or_else(|line| panic!("no address in {line:?}"));
    let reply = get(addr, "/").await;
    let _ = child.kill();
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(reply.status, 200, "{stderr}");
    assert!(
        stderr.contains("falling back to on-demand allocation"),
        "{stderr}"
    );
    assert!(stderr.contains("allocation=OnDemand"), "{stderr}");
}
