//! Helpers for tests of a platform node: a real `cloudware up` child
//! process, the client commands run against it, and its gateway.

use super::*;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a node may take to print its addresses.
pub const NODE_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one CLI command may take (a deploy compiles and probes).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one HTTP exchange of the tests may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `cloudware up` on loopback with a private data directory;
/// killed when dropped.
pub struct Node {
    child: Option<Child>,
    /// Holds `data/` (the node's) and `home/` (the CLI's `HOME`, empty).
    dir: tempfile::TempDir,
    args: Vec<String>,
    /// The gateway's address (changes on every start).
    pub gateway: SocketAddr,
    /// The admin API's address (changes on every start).
    pub admin: SocketAddr,
    /// The operator token (from `DATA_DIR/admin.token`).
    pub token: String,
    /// The token the last start printed, if it printed one.
    pub printed_token: Option<String>,
    /// What the last start printed on stdout before it was ready.
    pub stdout_lines: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Node {
    /// Starts a fresh node; `args` are extra arguments of `cloudware up`.
    pub fn start(args: &[&str]) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("home")).expect("home dir");
        let mut node = Node {
            child: None,
            dir,
            args: args.iter().map(|a| a.to_string()).collect(),
            gateway: "127.0.0.1:1".parse().expect("addr"),
            admin: "127.0.0.1:1".parse().expect("addr"),
            token: String::new(),
            printed_token: None,
            stdout_lines: Vec::new(),
            stderr: Arc::new(Mutex::new(String::new())),
        };
        node.spawn();
        node
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The node's package store.
    pub fn packages_dir(&self) -> PathBuf {
        self.data_dir().join("packages")
    }

    /// An empty home directory for the CLI (so no CLI config file is read).
    pub fn home_dir(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// The admin API's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// The node's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the node wrote to stderr, over all its starts.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// The last `max` bytes of stderr, for failure messages.
    pub fn stderr_tail(&self) -> String {
        let text = self.stderr();
        let max = 6000;
        if text.len() <= max {
            return text;
        }
        let mut start = text.len() - max;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        format!("…{}", &text[start..])
    }

    /// Stops the node with SIGTERM (asserting a clean exit) if it runs, and
    /// starts it again on the same data directory.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            let status = self.terminate();
            assert!(
                status.success(),
                "the node exited with {status} on SIGTERM; stderr: {}",
                self.stderr_tail()
            );
        }
        self.spawn();
    }

    /// Sends SIGTERM and waits (up to 15 s) for the node to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the node is running");
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the node did not stop within 15 s of SIGTERM; stderr: {}",
                    self.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the node with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the node is running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "the node is already running");
        let data_dir = self.data_dir();
        let mut child = cloudware()
            .arg("up")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(&self.args)
            .env_remove("CLOUDWARE_DATA_DIR")
            .env("HOME", self.home_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cloudware up");
        self.stderr
            .lock()
            .expect("lock")
            .push_str("--- cloudware up starts ---\n");
        collect_stderr(&mut child, self.stderr.clone());
        let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
        let out_pipe = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            // Keep reading until the node exits so it never sees a closed pipe.
            for line in BufReader::new(out_pipe).lines() {
                let Ok(line) = line else { break };
                let _ = lines_tx.send(line);
            }
        });
        self.child = Some(child);

        let deadline = Instant::now() + NODE_START_TIMEOUT;
        let mut lines = Vec::new();
        let (mut gateway, mut admin) = (None, None);
        while admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("Gateway on ") {
                        gateway = Some(parse_http_addr(rest));
                    } else if let Some(rest) = line.strip_prefix("Admin API on ") {
                        admin = Some(parse_http_addr(rest));
                    }
                    lines.push(line);
                }
                Err(err) => panic!(
                    "the node did not print its addresses ({err}); stdout: {lines:?}; stderr: {}",
                    self.stderr_tail()
                ),
            }
        }
        self.gateway = gateway.unwrap_or_else(|| panic!("no gateway line in {lines:?}"));
        self.admin = admin.expect("admin address");
        self.printed_token = lines.iter().find_map(|line| {
            line.starts_with("Operator token")
                .then(|| line.rsplit(' ').next().unwrap_or_default().to_string())
        });
        self.stdout_lines = lines;
        // A host that joined a cluster has no token file: it uses the
        // founder's (the tokens are replicated).
        if let Ok(token) = std::fs::read_to_string(data_dir.join("admin.token")) {
            self.token = token.trim().to_string();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn parse_http_addr(text: &str) -> SocketAddr {
    text.trim()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|err| panic!("not an address: {text:?}: {err}"))
}

/// A `cloudware` client command against `node`'s admin API with `token`
/// (`""`: none) in the environment, and no CLI config file.
pub fn cli_command(node: &Node, token: &str, args: &[&str]) -> Command {
    let mut cmd = cloudware();
    cmd.args(args)
        .env("CLOUDWARE_URL", node.url())
        .env("HOME", node.home_dir())
        .env_remove("CLOUDWARE_CONFIG")
        .env_remove("CLOUDWARE_TOKEN")
        .stdin(Stdio::null());
    if !token.is_empty() {
        cmd.env("CLOUDWARE_TOKEN", token);
    }
    cmd
}

/// Runs a client command to completion: (exit code, stdout, stderr).
pub fn cli(node: &Node, token: &str, args: &[&str]) -> (i32, String, String) {
    Running::spawn(cli_command(node, token, args)).finish(CLI_TIMEOUT)
}

/// Runs a client command that must succeed; returns its stdout.
pub fn cli_ok(node: &Node, token: &str, args: &[&str]) -> String {
    let (code, stdout, stderr) = cli(node, token, args);
    assert_eq!(
        code,
        0,
        "`cloudware {}` failed: stdout {stdout:?}, stderr {stderr:?}; node stderr: {}",
        args.join(" "),
        node.stderr_tail()
    );
    stdout
}

/// Runs a client command with `--output json` that must succeed; returns
/// its parsed stdout.
pub fn cli_json(node: &Node, token: &str, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let stdout = cli_ok(node, token, &all);
    serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("not JSON ({err}): {stdout:?}"))
}

/// The last non-empty line of `text`.
pub fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or_default()
        .trim()
}

/// Creates a token with the operator token; returns (id, secret).
pub fn create_token(node: &Node, tenant: Option<&str>, role: &str) -> (String, String) {
    let mut args = vec!["token", "create", "--role", role];
    if let Some(tenant) = tenant {
        args.extend(["--tenant", tenant]);
    }
    let created = cli_json(node, &node.token, &args);
    let id = created["id"].as_str().expect("token id").to_string();
    let secret = created["token"].as_str().expect("token secret").to_string();
    (id, secret)
}

/// A child process with its output collected; killed when dropped.
pub struct Running {
    child: Option<Child>,
    what: String,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Spawns `cmd` with piped stdout and stderr.
    pub fn spawn(mut cmd: Command) -> Running {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot spawn {what}: {err}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        for (pipe, sink) in [
            (
                Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
                stdout.clone(),
            ),
            (
                Box::new(child.stderr.take().expect("stderr")) as Box<dyn Read + Send>,
                stderr.clone(),
            ),
        ] {
            readers.push(std::thread::spawn(move || {
                let mut pipe = pipe;
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock().expect("lock").extend_from_slice(&buf[..n]);
                }
            }));
        }
        Running {
            child: Some(child),
            what,
            stdout,
            stderr,
            readers,
        }
    }

    /// Waits up to `timeout` for the exit: (exit code, stdout, stderr).
    /// Panics (after killing it) if the process is still running then.
    pub fn finish(mut self, timeout: Duration) -> (i32, String, String) {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not finish within {timeout:?}; stderr so far: {}",
                    self.what,
                    String::from_utf8_lossy(&self.stderr.lock().expect("lock"))
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let text = |sink: &Arc<Mutex<Vec<u8>>>| {
            String::from_utf8_lossy(&sink.lock().expect("lock")).into_owned()
        };
        (
            status.code().unwrap_or(-1),
            text(&self.stdout),
            text(&self.stderr),
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `future` to completion on a fresh current-thread runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// Sends one request (fresh connection), waiting at most [`HTTP_TIMEOUT`].
pub fn send_blocking(addr: SocketAddr, request: http::Request<Body>) -> Reply {
    block_on(async move {
        tokio::time::timeout(HTTP_TIMEOUT, send(addr, request))
            .await
            .unwrap_or_else(|_| panic!("no answer from {addr} within {HTTP_TIMEOUT:?}"))
    })
}

/// `GET path` at the node's gateway with `host` as the Host header.
pub fn gateway_get(node: &Node, host: &str, path: &str) -> Reply {
    gateway_get_with(node, host, path, &[])
}

/// `GET path` at the node's gateway with `host` and extra headers.
pub fn gateway_get_with(node: &Node, host: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    // Origin-form (`GET /path`): an absolute URI would take precedence over
    // the Host header.
    let mut request = http::Request::get(path).header("host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send_blocking(
        node.gateway,
        request.body(full(Bytes::new())).expect("request"),
    )
}

/// A request to the node's admin API: `method path`, with `token` as the
/// bearer (`None`: no Authorization header) and an optional JSON body.
pub fn admin_request(
    node: &Node,
    method: &str,
    path: &str,
    token: Option<&str>,
    json_body: Option<&str>,
) -> Reply {
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", node.admin.to_string());
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = match json_body {
        Some(text) => {
            request = request.header("content-type", "application/json");
            Bytes::copy_from_slice(text.as_bytes())
        }
        None => Bytes::new(),
    };
    send_blocking(node.admin, request.body(full(body)).expect("request"))
}

/// Polls `probe` every 50 ms until it returns `Some`, for at most `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, probe: impl FnMut() -> Option<T>) -> T {
    wait_until_or(timeout, probe).unwrap_or_else(|| panic!("timed out after {timeout:?}: {what}"))
}

/// Polls `probe` every 50 ms until it returns `Some`, for at most `timeout`;
/// `None` when it never did.
pub fn wait_until_or<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The names of the files in `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Checks that the package store at `dir` holds only complete packages:
/// every file is `sha256-<hex>.wasm` and its bytes hash to `<hex>`.
/// Returns their digests (`sha256:<hex>`), sorted.
pub fn verified_package_digests(dir: &Path) -> Vec<String> {
    file_names(dir)
        .into_iter()
        .map(|name| {
            let hex = name
                .strip_prefix("sha256-")
                .and_then(|rest| rest.strip_suffix(".wasm"))
                .unwrap_or_else(|| panic!("unexpected file {name:?} in {}", dir.display()));
            let bytes = std::fs::read(dir.join(&name)).expect("read package");
            let digest = sha256_digest(&bytes);
            assert_eq!(
                digest,
                format!("sha256:{hex}"),
                "{name} holds bytes of another digest (a partial write?)"
            );
            digest
        })
        .collect()
}

/// Pushes `component` for `tenant` and deploys it as `app` at `route`;
/// returns the package digest.
pub fn push_and_deploy(
    node: &Node,
    token: &str,
    tenant: &str,
    component: &str,
    app: &str,
    route: &str,
) -> String {
    let pushed = cli_ok(node, token, &["push", component, "--tenant", tenant]);
    let digest = last_line(&pushed).to_string();
    cli_ok(
        node,
        token,
        &[
            "deploy",
            app,
            "--tenant",
            tenant,
            "--package",
            &digest,
            "--route",
            route,
        ],
    );
    digest
}

/// `method path` at the node's gateway with `host` as the Host header, extra
/// `headers` and `body`.
pub fn gateway_send(
    node: &Node,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send_blocking(
        node.gateway,
        request
            .body(full(Bytes::copy_from_slice(body)))
            .expect("request"),
    )
}

/// Creates tenant `tenant` with the operator token and returns a developer
/// token of it.
pub fn tenant_developer(node: &Node, tenant: &str) -> String {
    cli_ok(node, &node.token, &["tenant", "create", tenant]);
    create_token(node, Some(tenant), "developer").1
}

/// Runs `cloudware deploy APP --package PACKAGE ARGS…` with `token`, which
/// must succeed; returns its stdout.
pub fn deploy_ok(node: &Node, token: &str, app: &str, package: &str, args: &[&str]) -> String {
    let mut all = vec!["deploy", app, "--package", package];
    all.extend_from_slice(args);
    cli_ok(node, token, &all)
}

/// Every regular file under `dir`, at any depth.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(path),
                Ok(kind) if kind.is_file() => files.push(path),
                _ => {}
            }
        }
    }
    files
}
