//! The three hosts of the cluster benchmark: starting, killing and restarting `cloudware up`
//! processes, and HTTP calls to their admin APIs and gateways.

use bytes::Bytes;
use futures::future::join_all;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

pub(crate) const NAMES: [&str; 3] = ["alpha", "beta", "gamma"];
pub(crate) const TENANT: &str = "bench";
pub(crate) const HELLO_TEXT: &str = "Hello from Cloudware!\n";
/// How long a host may take to print its addresses.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound of one admin or gateway exchange (a deploy compiles and probes).
pub(crate) const HTTP_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound for the cluster to agree on something (members, a placement).
pub(crate) const SETTLE: Duration = Duration::from_secs(60);
/// Bound of one write attempt during failover.
pub(crate) const FAILOVER_ATTEMPT: Duration = Duration::from_secs(10);
/// Bound for a write to be acknowledged after the leader was killed.
pub(crate) const FAILOVER_BOUND: Duration = Duration::from_secs(30);
/// Instances of the wrk app: more than the connections of any gateway.
pub(crate) const WEB_INSTANCES: u64 = 48;

/// One `cloudware up --cluster-listen` child process, killed on drop.
pub(crate) struct Host {
    pub(crate) name: String,
    /// `--cluster-listen`: a fixed port, the same on every start (or
    /// `127.0.0.1:0` with `BENCH_CLUSTER_PORT0=1`, see the module docs).
    pub(crate) cluster_listen: String,
    /// Extra arguments (`--join …` for joiners), the same on every start.
    pub(crate) extra: Vec<String>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) child: Option<Child>,
    pub(crate) gateway: SocketAddr,
    pub(crate) admin: SocketAddr,
    /// What the last start printed before it was ready.
    pub(crate) lines: Vec<String>,
}

impl Host {
    pub(crate) fn start(name: &str, extra: Vec<String>) -> Host {
        let cluster_listen = if std::env::var("BENCH_CLUSTER_PORT0").is_ok_and(|v| v == "1") {
            "127.0.0.1:0".to_string()
        } else {
            // A free port now, kept for every start of this host.
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("port").to_string()
        };
        let mut host = Host {
            name: name.to_string(),
            cluster_listen,
            extra,
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
            gateway: "127.0.0.1:1".parse().expect("addr"),
            admin: "127.0.0.1:1".parse().expect("addr"),
            lines: Vec::new(),
        };
        host.spawn();
        host
    }

    /// Starts the process (again) on the host's data directory, and waits
    /// for its addresses (new ones on every start).
    pub(crate) fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("stderr.log"))
            .expect("stderr log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_cloudware"))
            .arg("up")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--cluster-listen", &self.cluster_listen])
            .args(["--log-level", "warn"])
            .args(["--name", &self.name])
            .args(["--label", &format!("name={}", self.name)])
            .args(&self.extra)
            .env_remove("CLOUDWARE_DATA_DIR")
            .env_remove("CLOUDWARE_JOIN_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn cloudware up");
        let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            // Read until the host exits so it never writes to a closed pipe.
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let _ = lines_tx.send(line);
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
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
                    "{} did not print its addresses ({err}); stdout: {lines:?}; stderr: {}",
                    self.name,
                    self.stderr_tail()
                ),
            }
        }
        self.gateway = gateway.expect("a gateway line");
        self.admin = admin.expect("an admin line");
        self.lines = lines;
    }

    /// The value after `prefix` on a line the last start printed.
    pub(crate) fn printed(&self, prefix: &str) -> String {
        self.lines
            .iter()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {:?}", self.lines))
            .trim()
            .to_string()
    }

    /// SIGKILL (no chance to clean up), and reap.
    pub(crate) fn kill9(&mut self) {
        let mut child = self.child.take().expect("the host is running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    pub(crate) fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default();
        let mut start = text.len().saturating_sub(4000);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_string()
    }

    /// Lines at WARN or above in the host's stderr, over all its starts, by message (the
    /// line after its target, cut before the first field), most frequent first.
    pub(crate) fn warnings(&self) -> Vec<(String, usize)> {
        let text = std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default();
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for line in text
            .lines()
            .filter(|line| line.contains("WARN") || line.contains("ERROR"))
        {
            let message = line.rsplit_once("}: ").map_or(line, |(_, rest)| rest);
            let message = message.split_once(": ").map_or(message, |(_, rest)| rest);
            let cut = message.find('=').and_then(|eq| message[..eq].rfind(' '));
            let message = cut.map_or(message, |end| &message[..end]);
            *counts
                .entry(message.chars().take(80).collect())
                .or_default() += 1;
        }
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        counts
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The temporary directory goes with the host: show what it
            // logged, and whether it had died.
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            eprintln!(
                "--- {} (exited: {exited:?}); last start printed {:?}; end of stderr:\n{}",
                self.name,
                self.lines,
                self.stderr_tail()
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(crate) fn parse_http_addr(text: &str) -> SocketAddr {
    text.trim()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|err| panic!("not an address: {text:?}: {err}"))
}

/// Three hosts: alpha founds the cluster, beta and gamma join it.
pub(crate) struct Cluster {
    pub(crate) hosts: Vec<Host>,
    /// The founder's operator token (valid on every host).
    pub(crate) token: String,
}

impl Cluster {
    pub(crate) fn start() -> Cluster {
        let founder = Host::start(NAMES[0], Vec::new());
        let line = founder.printed("Founded a cluster. Join token ");
        let join_token = line.rsplit(' ').next().expect("token").to_string();
        let cluster_addr = founder.printed("Cluster host 1 on ");
        let token = std::fs::read_to_string(founder.dir.path().join("data/admin.token"))
            .expect("admin.token")
            .trim()
            .to_string();
        let mut hosts = vec![founder];
        for name in &NAMES[1..] {
            let extra = vec![
                "--join".to_string(),
                cluster_addr.clone(),
                "--join-token".to_string(),
                join_token.clone(),
            ];
            hosts.push(Host::start(name, extra));
        }
        Cluster { hosts, token }
    }
}

/// One HTTP/1.1 exchange on a fresh connection: status and body.
pub(crate) async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    token: Option<&str>,
    body: Bytes,
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    let exchange = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|err| format!("connect {addr}: {err}"))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|err| format!("handshake: {err}"))?;
        tokio::spawn(conn);
        let response = sender
            .send_request(build(method, path, host, token, body))
            .await
            .map_err(|err| format!("{method} {path}: {err}"))?;
        read(response).await
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("{method} {path}: no answer within {timeout:?}")))
}

pub(crate) fn build(
    method: &str,
    path: &str,
    host: &str,
    token: Option<&str>,
    body: Bytes,
) -> http::Request<Full<Bytes>> {
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
    builder.body(Full::new(body)).expect("request")
}

pub(crate) async fn read(
    response: http::Response<hyper::body::Incoming>,
) -> Result<(u16, Bytes), String> {
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|err| format!("body: {err}"))?
        .to_bytes();
    Ok((status, body))
}

/// A kept-alive admin API connection (one per concurrent writer).
pub(crate) struct Conn {
    pub(crate) addr: SocketAddr,
    pub(crate) sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub(crate) fn new(addr: SocketAddr) -> Conn {
        Conn { addr, sender: None }
    }

    pub(crate) async fn send(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes), String> {
        let result = tokio::time::timeout(HTTP_TIMEOUT, self.exchange(method, path, token, body))
            .await
            .unwrap_or_else(|_| Err("timed out".into()));
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    pub(crate) async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes), String> {
        if self.sender.is_none() {
            let stream = TcpStream::connect(self.addr)
                .await
                .map_err(|err| format!("connect: {err}"))?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|err| format!("handshake: {err}"))?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected");
        sender
            .ready()
            .await
            .map_err(|err| format!("connection: {err}"))?;
        let response = sender
            .send_request(build(method, path, "admin", Some(token), body))
            .await
            .map_err(|err| format!("{method} {path}: {err}"))?;
        read(response).await
    }
}

impl Cluster {
    pub(crate) async fn api(
        &self,
        at: usize,
        method: &str,
        path: &str,
        body: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Value, String> {
        let (status, reply) = request(
            self.hosts[at].admin,
            method,
            path,
            "admin",
            Some(&self.token),
            body.into(),
            timeout,
        )
        .await?;
        if !(200..300).contains(&status) {
            return Err(format!(
                "{method} {path} on {}: {status} {}",
                self.hosts[at].name,
                String::from_utf8_lossy(&reply)
            ));
        }
        if reply.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&reply).map_err(|err| format!("{method} {path}: {err}"))
    }

    pub(crate) async fn api_ok(
        &self,
        at: usize,
        method: &str,
        path: &str,
        body: impl Into<Bytes>,
    ) -> Value {
        self.api(at, method, path, body, HTTP_TIMEOUT)
            .await
            .unwrap_or_else(|err| panic!("{err}; stderr: {}", self.hosts[at].stderr_tail()))
    }

    pub(crate) async fn get(&self, at: usize, path: &str) -> Result<Value, String> {
        self.api(at, "GET", path, Bytes::new(), Duration::from_secs(10))
            .await
    }

    /// `(leader, [(id, name, role, state)])` as host `at` sees them.
    pub(crate) async fn members(
        &self,
        at: usize,
    ) -> Option<(Option<u64>, Vec<(u64, String, String, String)>)> {
        let nodes = self.get(at, "/v1/nodes").await.ok()?;
        let hosts = nodes["hosts"]
            .as_array()?
            .iter()
            .map(|h| {
                Some((
                    h["id"].as_u64()?,
                    h["name"].as_str()?.to_string(),
                    h["role"].as_str()?.to_string(),
                    h["state"].as_str()?.to_string(),
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        Some((nodes["leader"].as_u64(), hosts))
    }

    /// The leader's index in `hosts`, once every host agrees on three
    /// members that are all up and ready, one of them leader.
    pub(crate) async fn stable_leader(&self) -> Option<usize> {
        let views = join_all((0..3).map(|at| self.members(at))).await;
        let mut leader_name = None;
        for view in views {
            let (leader, hosts) = view?;
            let leaders: Vec<_> = hosts.iter().filter(|h| h.2 == "leader").collect();
            let voters = hosts.iter().filter(|h| h.2 == "voter").count();
            let ready = hosts.iter().all(|h| h.3 == "ready");
            if hosts.len() != 3 || leaders.len() != 1 || voters != 2 || !ready {
                return None;
            }
            if leader != Some(leaders[0].0) {
                return None;
            }
            if leader_name.get_or_insert(leaders[0].1.clone()) != &leaders[0].1 {
                return None;
            }
        }
        let name = leader_name?;
        self.hosts.iter().position(|h| h.name == name)
    }

    pub(crate) async fn wait_stable(&self) -> usize {
        let started = Instant::now();
        loop {
            if let Some(leader) = self.stable_leader().await {
                return leader;
            }
            assert!(
                started.elapsed() < SETTLE,
                "the cluster did not settle within {SETTLE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The hosts' process ids.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.hosts
            .iter()
            .map(|h| h.child.as_ref().expect("running").id())
            .collect()
    }

    /// `here` of `app` on every host (`None`: no answer).
    pub(crate) async fn here(&self, app: &str) -> Vec<Option<u64>> {
        let path = format!("/v1/apps/{app}/status?tenant={TENANT}");
        join_all((0..3).map(|at| {
            let path = path.clone();
            async move { self.get(at, &path).await.ok()?["here"].as_u64() }
        }))
        .await
    }

    /// Polls until `done` holds for the `here` figures of every host.
    pub(crate) async fn wait_here(&self, app: &str, what: &str, done: impl Fn(&[u64]) -> bool) {
        let started = Instant::now();
        let mut last = Vec::new();
        loop {
            let seen = self.here(app).await;
            if let Some(seen) = seen.iter().copied().collect::<Option<Vec<u64>>>() {
                if done(&seen) {
                    return;
                }
                last = seen;
            }
            assert!(
                started.elapsed() < SETTLE,
                "{what}: not within {SETTLE:?}; last `here` {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub(crate) async fn scale(&self, at: usize, app: &str, instances: u64, spread: Value) {
        let body = json!({ "instances": instances, "min_warm": 0, "spread": spread });
        self.api_ok(
            at,
            "PUT",
            &format!("/v1/apps/{app}/scale?tenant={TENANT}"),
            body.to_string(),
        )
        .await;
    }

    /// Waits until every gateway answers `app`'s host with hello.
    pub(crate) async fn wait_served(&self, app: &str) {
        let host = format!("{app}.bench.test");
        for at in 0..3 {
            let started = Instant::now();
            loop {
                let reply = request(
                    self.hosts[at].gateway,
                    "GET",
                    "/",
                    &host,
                    None,
                    Bytes::new(),
                    Duration::from_secs(10),
                )
                .await;
                if matches!(&reply, Ok((200, body)) if body == HELLO_TEXT.as_bytes()) {
                    break;
                }
                assert!(
                    started.elapsed() < SETTLE,
                    "{app} on {}'s gateway: {reply:?}",
                    self.hosts[at].name
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
