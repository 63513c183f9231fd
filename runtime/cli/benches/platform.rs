//! Platform benchmark: a real `cloudware up` node (release build) on
//! loopback, driven through its admin API.
//!
//! Measures
//! - deploy-to-first-response of the hello package: cold (never compiled:
//!   push + compile + probe + traffic) and warm (digest already compiled);
//! - a node holding 1,000 deployed apps: resident memory, and p50/p99 of
//!   requests spread over random apps (wrk with a Lua script choosing a
//!   random Host per request).
//!
//! Run: `cargo bench -p cloudware-cli --bench platform`
//! (`BENCH_APPS=1000`, `BENCH_DURATION=10s`, `BENCH_CONNECTIONS=32`).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// A `cloudware up` child process, killed on drop.
struct Node {
    child: Child,
    gateway: SocketAddr,
    admin: SocketAddr,
    token: String,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start() -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_cloudware"))
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .args(["--log-level", "warn", "--data-dir"])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn cloudware up");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut addr = |prefix: &str| -> SocketAddr {
            loop {
                let line = lines.next().expect("a line").expect("readable");
                if let Some(rest) = line.strip_prefix(prefix) {
                    return rest
                        .trim()
                        .trim_start_matches("http://")
                        .trim_end_matches('/')
                        .parse()
                        .expect("an address");
                }
            }
        };
        let gateway = addr("Gateway on ");
        let admin = addr("Admin API on ");
        let token = std::fs::read_to_string(dir.path().join("admin.token"))
            .expect("admin.token")
            .trim()
            .to_string();
        Node {
            child,
            gateway,
            admin,
            token,
            _dir: dir,
        }
    }

    fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection; returns status and body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    token: Option<&str>,
    body: Bytes,
) -> (u16, Bytes) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    if method != "GET" {
        builder = builder.header("content-type", "application/json");
    }
    let response = sender
        .send_request(builder.body(Full::new(body)).expect("request"))
        .await
        .expect("response");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, body)
}

async fn admin(node: &Node, method: &str, path: &str, body: impl Into<Bytes>) -> Bytes {
    let (status, reply) = request(
        node.admin,
        method,
        path,
        "admin",
        Some(&node.token),
        body.into(),
    )
    .await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {}",
        String::from_utf8_lossy(&reply)
    );
    reply
}

async fn push(node: &Node, path: &str) -> String {
    let bytes = std::fs::read(path).expect("component");
    let reply = admin(node, "POST", "/v1/packages?tenant=bench", bytes).await;
    let info: serde_json::Value = serde_json::from_slice(&reply).expect("json");
    info["digest"].as_str().expect("digest").to_string()
}

async fn deploy(node: &Node, app: &str, digest: &str, host: &str) {
    let body = serde_json::json!({ "package": digest, "routes": [format!("{host}/")] });
    admin(
        node,
        "POST",
        &format!("/v1/apps/{app}/deployments?tenant=bench"),
        body.to_string(),
    )
    .await;
}

/// Time from the deploy call to the first 200 from the gateway.
async fn deploy_to_first_response(node: &Node, app: &str, digest: &str) -> Duration {
    let host = format!("{app}.bench.test");
    let started = Instant::now();
    deploy(node, app, digest, &host).await;
    for _ in 0..10_000 {
        let (status, _) = request(node.gateway, "GET", "/", &host, None, Bytes::new()).await;
        if status == 200 {
            return started.elapsed();
        }
    }
    panic!("{app} never answered");
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs wrk with a Lua script that picks a random app per request.
fn wrk_random_apps(gateway: SocketAddr, apps: usize) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let script = dir.path().join("random.lua");
    std::fs::write(
        &script,
        format!(
            "math.randomseed(42)\nrequest = function()\n  return wrk.format(\"GET\", \"/\", {{Host = \"app\" .. math.random(0, {}) .. \".bench.test\"}})\nend\n",
            apps - 1
        ),
    )
    .expect("script");
    let duration = std::env::var("BENCH_DURATION").unwrap_or_else(|_| "10s".into());
    let connections = std::env::var("BENCH_CONNECTIONS").unwrap_or_else(|_| "32".into());
    let output = Command::new("wrk")
        .args([
            "-t2",
            "-c",
            &connections,
            "-d",
            &duration,
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(format!("http://{gateway}/"))
        .output()
        .expect("wrk (apt-get install wrk)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let apps: usize = std::env::var("BENCH_APPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        let node = Node::start();
        admin(&node, "POST", "/v1/tenants", r#"{"name":"bench"}"#).await;

        // Cold: the package was never compiled on this node.
        let started = Instant::now();
        let digest = push(&node, cloudware_test_artifacts::HELLO).await;
        let pushed = started.elapsed();
        let deployed = deploy_to_first_response(&node, "cold", &digest).await;
        let cold_total = started.elapsed();

        // Warm: same digest, new apps.
        let mut warm = Vec::new();
        for i in 0..20 {
            warm.push(deploy_to_first_response(&node, &format!("warm{i}"), &digest).await);
        }
        println!("deploy to first response, hello package:");
        println!(
            "  cold (push + compile + probe + first request): {:.1} ms (push and compile {:.1} ms, deploy {:.1} ms)",
            ms(cold_total),
            ms(pushed),
            ms(deployed)
        );
        println!("  warm (cached digest), median of 20: {:.1} ms", ms(median(warm.clone())));
        println!(
            "  warm min/max: {:.1} / {:.1} ms",
            ms(*warm.iter().min().expect("values")),
            ms(*warm.iter().max().expect("values"))
        );

        let (rss_before, _) = node.rss_kib();
        let started = Instant::now();
        for i in 0..apps {
            deploy(&node, &format!("app{i}"), &digest, &format!("app{i}.bench.test")).await;
        }
        println!(
            "deployed {apps} apps in {:.1} s ({:.1} ms each)",
            started.elapsed().as_secs_f64(),
            ms(started.elapsed()) / apps as f64
        );
        let (rss_after, _) = node.rss_kib();
        println!(
            "resident memory: {:.1} MiB before, {:.1} MiB with {apps} apps",
            rss_before as f64 / 1024.0,
            rss_after as f64 / 1024.0
        );
        let report = wrk_random_apps(node.gateway, apps);
        for line in report.lines() {
            let line = line.trim();
            if line.starts_with("50%")
                || line.starts_with("99%")
                || line.starts_with("Requests/sec")
                || line.starts_with("Non-2xx")
                || line.starts_with("Socket errors")
            {
                println!("  random apps: {line}");
            }
        }
        let (rss_loaded, hwm) = node.rss_kib();
        println!(
            "resident memory after load: {:.1} MiB (peak {:.1} MiB)",
            rss_loaded as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
    });
}
