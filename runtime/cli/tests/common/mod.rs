//! Shared helpers of the end-to-end tests: a real `cloudware serve` child
//! process on a loopback port, and a real HTTP/1.1 client.

#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// The `cloudware` binary under test.
pub fn cloudware() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloudware"));
    cmd.env_remove("CLOUDWARE_LOG")
        .env_remove("CLOUDWARE_LOG_FORMAT");
    cmd
}

/// A running `cloudware serve`, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    _cache: Option<tempfile::TempDir>,
}

impl Server {
    /// Serves `component` on a free loopback port with a private cache.
    pub fn start(component: &str, args: &[&str]) -> Server {
        let cache = tempfile::tempdir().expect("cache dir");
        let cache_dir = cache.path().to_str().expect("utf-8 path").to_string();
        let mut all = vec!["--cache-dir", cache_dir.as_str()];
        all.extend_from_slice(args);
        let mut server = Server::start_raw(component, &all);
        server._cache = Some(cache);
        server
    }

    /// Serves `component` with exactly `args` (plus `--listen 127.0.0.1:0`).
    pub fn start_raw(component: &str, args: &[&str]) -> Server {
        let mut child = cloudware()
            .arg("serve")
            .arg(component)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cloudware");
        let stderr = Arc::new(Mutex::new(String::new()));
        collect_stderr(&mut child, stderr.clone());
        let stdout = child.stdout.take().expect("stdout");
        let addr = serving_addr(stdout).unwrap_or_else(|line| {
            panic!(
                "no address in {line:?}; stderr: {}",
                stderr.lock().expect("lock")
            )
        });
        Server {
            child,
            addr,
            stderr,
            _cache: None,
        }
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// Waits (up to 5 s) until stderr contains `needle`; returns all of it.
    pub fn wait_for_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = self.stderr();
            if text.contains(needle) {
                return text;
            }
            assert!(Instant::now() < deadline, "no {needle:?} in stderr: {text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the `Serving … on http://ADDR/` line a server prints first and
/// returns ADDR, or the line it got instead.
pub fn serving_addr(stdout: impl Read) -> Result<SocketAddr, String> {
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|err| err.to_string())?;
    line.split("http://")
        .nth(1)
        .and_then(|rest| rest.trim().trim_end_matches('/').parse().ok())
        .ok_or(line)
}

/// Appends everything `child` writes to stderr to `sink`, from a thread.
pub fn collect_stderr(child: &mut Child, sink: Arc<Mutex<String>>) {
    let mut pipe = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("lock")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}

/// A request body for [`send`].
pub type Body = BoxBody<Bytes, std::io::Error>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A response as the client saw it: head, and the body or the error that cut it.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Result<Bytes, String>,
    pub elapsed: Duration,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.body.as_ref().expect("complete body")).into_owned()
    }
}

/// Sends one request on a fresh HTTP/1.1 connection.
pub async fn send(addr: SocketAddr, request: http::Request<Body>) -> Reply {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let response = sender.send_request(request).await.expect("response head");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| e.to_string());
    Reply {
        status,
        headers,
        body,
        elapsed: started.elapsed(),
    }
}

/// `GET path` against `addr`.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    let request = http::Request::get(format!("http://{addr}{path}"))
        .header("host", addr.to_string())
        .body(full(Bytes::new()))
        .expect("request");
    send(addr, request).await
}

/// Writes `bytes` to a fresh file in `dir` and returns its path.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write file");
    path
}

// ---------------------------------------------------------------------------
// A platform node (`cloudware up`) and the CLI driving it.
// ---------------------------------------------------------------------------

pub mod capabilities;
pub mod cluster;
mod node;
pub mod partner;
pub mod paused;
#[allow(unused_imports)]
pub use node::*;
