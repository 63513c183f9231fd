//! Cluster benchmark: three real `cloudware up --cluster-listen` hosts
//! (release build, `alpha`, `beta`, `gamma`, each labelled `name=NAME`) on
//! loopback, driven through their admin APIs and gateways.
//!
//! Measures
//! 1. scale to ready on all three hosts: from the start of
//!    `PUT /v1/apps/scaler/scale` (1 → 3 instances, no spread rules) until
//!    every host's status reports `here >= 1`; and back to 1 (until only one
//!    host runs it), timed separately;
//! 2. committed control-plane writes per second (`POST /v1/tenants`, one
//!    raft commit each, acknowledged once committed and applied) from 1, 16
//!    and 64 concurrent writers, sent to the leader's API and to a
//!    follower's (which forwards them to the leader);
//! 3. requests/s of the hello component with `wrk`: (a) the app pinned to
//!    alpha, load on alpha's gateway; (b) the same placement, load on beta's
//!    gateway (every request forwarded to alpha); (c) the app spread over the
//!    three hosts, one wrk per gateway at once (summed). Same total
//!    connections;
//! 4. failover: `kill -9` of the leader, then a write through a surviving
//!    host, retried until acknowledged; the time from the kill to that
//!    acknowledgement (and, polled alongside, until the survivor names a new
//!    leader); the killed host is restarted on its data directory and
//!    waited for (three members, a linearizable read answered, the write
//!    seen) before the next round.
//!
//! Run: `cargo bench -p cloudware-cli --bench cluster`
//! (`BENCH_SCALE_ROUNDS=10`, `BENCH_WRITE_DURATION=3s`,
//! `BENCH_WRITERS=1,16,64`, `BENCH_DURATION=5s`, `BENCH_WARMUP=1s`,
//! `BENCH_CONNECTIONS=32`, `BENCH_ROUNDS=3`, `BENCH_FAILOVER_ROUNDS=5`;
//! `BENCH_SECTIONS=1,2,3,4` picks the measures).
//! Every host's stderr goes to `stderr.log` in its temporary directory
//! (its end is printed if the bench panics).
//!
//! Each host listens for the cluster on a port picked once and kept over
//! restarts, as a deployment with a fixed `--cluster-listen` would.
//! `BENCH_CLUSTER_PORT0=1` uses `127.0.0.1:0` instead (a new cluster address
//! on every restart): then a restarted host can be stranded — its replayed
//! state may predate another host's address change (the raft commit index
//! is not fsynced on its own, so a `kill -9` loses the last commits'
//! mark), so it dials that host at its old address while the leader dials
//! it at its own old one; seen when two different hosts are restarted in a
//! row.

use bytes::Bytes;
use futures::future::join_all;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

const NAMES: [&str; 3] = ["alpha", "beta", "gamma"];
const TENANT: &str = "bench";
const HELLO_TEXT: &str = "Hello from Cloudware!\n";
/// How long a host may take to print its addresses.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound of one admin or gateway exchange (a deploy compiles and probes).
const HTTP_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound for the cluster to agree on something (members, a placement).
const SETTLE: Duration = Duration::from_secs(60);
/// Bound of one write attempt during failover.
const FAILOVER_ATTEMPT: Duration = Duration::from_secs(10);
/// Bound for a write to be acknowledged after the leader was killed.
const FAILOVER_BOUND: Duration = Duration::from_secs(30);
/// Instances of the wrk app: more than the connections of any gateway.
const WEB_INSTANCES: u64 = 48;

/// One `cloudware up --cluster-listen` child process, killed on drop.
struct Host {
    name: String,
    /// `--cluster-listen`: a fixed port, the same on every start (or
    /// `127.0.0.1:0` with `BENCH_CLUSTER_PORT0=1`, see the module docs).
    cluster_listen: String,
    /// Extra arguments (`--join …` for joiners), the same on every start.
    extra: Vec<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
    gateway: SocketAddr,
    admin: SocketAddr,
    /// What the last start printed before it was ready.
    lines: Vec<String>,
}

impl Host {
    fn start(name: &str, extra: Vec<String>) -> Host {
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
    fn spawn(&mut self) {
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
    fn printed(&self, prefix: &str) -> String {
        self.lines
            .iter()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {:?}", self.lines))
            .trim()
            .to_string()
    }

    /// SIGKILL (no chance to clean up), and reap.
    fn kill9(&mut self) {
        let mut child = self.child.take().expect("the host is running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default();
        let mut start = text.len().saturating_sub(4000);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_string()
    }

    /// Lines at WARN or above in the host's stderr, over all its starts.
    fn warnings(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("stderr.log"))
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains("WARN") || line.contains("ERROR"))
            .count()
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

fn parse_http_addr(text: &str) -> SocketAddr {
    text.trim()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|err| panic!("not an address: {text:?}: {err}"))
}

/// Three hosts: alpha founds the cluster, beta and gamma join it.
struct Cluster {
    hosts: Vec<Host>,
    /// The founder's operator token (valid on every host).
    token: String,
}

impl Cluster {
    fn start() -> Cluster {
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
async fn request(
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

fn build(
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

async fn read(response: http::Response<hyper::body::Incoming>) -> Result<(u16, Bytes), String> {
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
struct Conn {
    addr: SocketAddr,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        Conn { addr, sender: None }
    }

    async fn send(
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

    async fn exchange(
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
    async fn api(
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

    async fn api_ok(&self, at: usize, method: &str, path: &str, body: impl Into<Bytes>) -> Value {
        self.api(at, method, path, body, HTTP_TIMEOUT)
            .await
            .unwrap_or_else(|err| panic!("{err}; stderr: {}", self.hosts[at].stderr_tail()))
    }

    async fn get(&self, at: usize, path: &str) -> Result<Value, String> {
        self.api(at, "GET", path, Bytes::new(), Duration::from_secs(10))
            .await
    }

    /// `(leader, [(id, name, role, state)])` as host `at` sees them.
    async fn members(
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
    async fn stable_leader(&self) -> Option<usize> {
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

    async fn wait_stable(&self) -> usize {
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
    fn pids(&self) -> Vec<u32> {
        self.hosts
            .iter()
            .map(|h| h.child.as_ref().expect("running").id())
            .collect()
    }

    /// `here` of `app` on every host (`None`: no answer).
    async fn here(&self, app: &str) -> Vec<Option<u64>> {
        let path = format!("/v1/apps/{app}/status?tenant={TENANT}");
        join_all((0..3).map(|at| {
            let path = path.clone();
            async move { self.get(at, &path).await.ok()?["here"].as_u64() }
        }))
        .await
    }

    /// Polls until `done` holds for the `here` figures of every host.
    async fn wait_here(&self, app: &str, what: &str, done: impl Fn(&[u64]) -> bool) {
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

    async fn scale(&self, at: usize, app: &str, instances: u64, spread: Value) {
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
    async fn wait_served(&self, app: &str) {
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

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn env_count(name: &str, default: usize) -> usize {
    env_or(name, &default.to_string())
        .parse()
        .unwrap_or_else(|_| panic!("{name}: a count"))
}

fn env_duration(name: &str, default: &str) -> Duration {
    humantime::parse_duration(&env_or(name, default))
        .unwrap_or_else(|err| panic!("{name}: a duration like 5s: {err}"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `median (min–max)` in milliseconds.
fn spread_ms(values: &[Duration]) -> String {
    let mut sorted = values.to_vec();
    sorted.sort();
    format!(
        "{:.1} ms ({:.1}–{:.1})",
        ms(sorted[sorted.len() / 2]),
        ms(sorted[0]),
        ms(sorted[sorted.len() - 1])
    )
}

fn median_f64(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

// 1. Scale to ready.

struct ScaleFigures {
    up: Vec<Duration>,
    up_acknowledged: Vec<Duration>,
    down: Vec<Duration>,
}

async fn scale_rounds(cluster: &Cluster, rounds: usize) -> ScaleFigures {
    let only_one = |here: &[u64]| here.iter().filter(|n| **n > 0).count() == 1;
    let everywhere = |here: &[u64]| here.iter().all(|n| *n >= 1);
    cluster.scale(0, "scaler", 1, json!([])).await;
    cluster
        .wait_here("scaler", "scaler on one host", only_one)
        .await;
    let mut figures = ScaleFigures {
        up: Vec::new(),
        up_acknowledged: Vec::new(),
        down: Vec::new(),
    };
    for round in 0..rounds {
        // Alternate the host that receives the scale request.
        let at = round % 3;
        let started = Instant::now();
        cluster.scale(at, "scaler", 3, json!([])).await;
        let acknowledged = started.elapsed();
        cluster
            .wait_here("scaler", "scaler on three hosts", everywhere)
            .await;
        let up = started.elapsed();
        let started = Instant::now();
        cluster.scale(at, "scaler", 1, json!([])).await;
        cluster
            .wait_here("scaler", "scaler back on one host", only_one)
            .await;
        let down = started.elapsed();
        println!(
            "  round {:>2} (via {}): 1 → 3 ready everywhere {:.1} ms (scale acknowledged after {:.1} ms); 3 → 1 {:.1} ms",
            round + 1,
            cluster.hosts[at].name,
            ms(up),
            ms(acknowledged),
            ms(down)
        );
        figures.up.push(up);
        figures.up_acknowledged.push(acknowledged);
        figures.down.push(down);
    }
    figures
}

// 2. Committed writes.

struct WriteFigures {
    cpu: CpuUse,
    /// Writes acknowledged.
    writes: u64,
    writes_per_second: f64,
    p50: Duration,
    max: Duration,
    errors: u64,
}

async fn write_load(
    cluster: &Cluster,
    at: usize,
    writers: usize,
    duration: Duration,
    label: &str,
) -> WriteFigures {
    let addr = cluster.hosts[at].admin;
    let pids = cluster.pids();
    let cpu = CpuSample::take(&pids);
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let token = cluster.token.clone();
            let label = label.to_string();
            tokio::spawn(async move {
                let mut conn = Conn::new(addr);
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut n = 0u64;
                while Instant::now() < deadline && errors < 1000 {
                    n += 1;
                    let body = json!({ "name": format!("{label}-{writer}-{n}") }).to_string();
                    let sent = Instant::now();
                    match conn.send("POST", "/v1/tenants", &token, body.into()).await {
                        Ok((status, _)) if (200..300).contains(&status) => {
                            latencies.push(sent.elapsed())
                        }
                        Ok((status, body)) => {
                            errors += 1;
                            if errors == 1 {
                                eprintln!(
                                    "write refused: {status} {}",
                                    String::from_utf8_lossy(&body)
                                );
                            }
                        }
                        Err(err) => {
                            errors += 1;
                            if errors == 1 {
                                eprintln!("write failed: {err}");
                            }
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in join_all(tasks).await {
        let (mine, failed) = task.expect("writer");
        latencies.extend(mine);
        errors += failed;
    }
    let elapsed = started.elapsed();
    let cpu = cpu.since(&pids);
    latencies.sort();
    WriteFigures {
        cpu,
        writes: latencies.len() as u64,
        writes_per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: latencies
            .get(latencies.len() / 2)
            .copied()
            .unwrap_or_default(),
        max: latencies.last().copied().unwrap_or_default(),
        errors,
    }
}

// 3. wrk.

#[derive(Clone, Debug, Default)]
struct Wrk {
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn wrk_command(gateway: SocketAddr, threads: usize, connections: usize, seconds: u64) -> Command {
    let mut command = Command::new("wrk");
    command
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .args(["--latency", "-H", "Host: web.bench.test"])
        .arg(format!("http://{gateway}/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs one wrk per `(gateway, connections)` at once; their reports.
fn wrk_at_once(loads: &[(SocketAddr, usize)], threads: usize, seconds: u64) -> Vec<Wrk> {
    let children: Vec<Child> = loads
        .iter()
        .map(|(gateway, connections)| {
            wrk_command(*gateway, threads.min(*connections), *connections, seconds)
                .spawn()
                .expect("wrk (apt-get install wrk)")
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().expect("wrk output");
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(output.status.success(), "wrk failed: {text}");
            parse_wrk(&text)
        })
        .collect()
}

fn parse_wrk(report: &str) -> Wrk {
    let mut wrk = Wrk::default();
    for line in report.lines() {
        let line = line.trim();
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(rate) = line.strip_prefix("Requests/sec:") {
            wrk.requests_per_second = rate.trim().parse().unwrap_or(0.0);
        } else if words.first() == Some(&"50%") {
            wrk.p50_ms = wrk_ms(words[1]);
        } else if words.first() == Some(&"99%") {
            wrk.p99_ms = wrk_ms(words[1]);
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            wrk.errors += rest.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            wrk.errors += rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    wrk
}

/// `812.00us`, `1.23ms`, `2.00s` → milliseconds.
fn wrk_ms(text: &str) -> f64 {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => f64::NAN,
    }
}

fn sum_of(runs: &[Wrk]) -> Wrk {
    Wrk {
        requests_per_second: runs.iter().map(|w| w.requests_per_second).sum(),
        // The slowest of the concurrent wrk processes.
        p50_ms: runs.iter().map(|w| w.p50_ms).fold(0.0, f64::max),
        p99_ms: runs.iter().map(|w| w.p99_ms).fold(0.0, f64::max),
        errors: runs.iter().map(|w| w.errors).sum(),
    }
}

fn median_wrk(runs: &[Wrk]) -> Wrk {
    let pick = |f: fn(&Wrk) -> f64| median_f64(&runs.iter().map(f).collect::<Vec<_>>());
    Wrk {
        requests_per_second: pick(|w| w.requests_per_second),
        p50_ms: pick(|w| w.p50_ms),
        p99_ms: pick(|w| w.p99_ms),
        errors: runs.iter().map(|w| w.errors).sum(),
    }
}

fn fmt_wrk(w: &Wrk) -> String {
    format!(
        "{:>9.0} req/s; p50 {:.3} ms, p99 {:.3} ms; errors {}",
        w.requests_per_second, w.p50_ms, w.p99_ms, w.errors
    )
}

/// CPU time of the hosts (`/proc/PID/stat`, clock ticks) and of the
/// machine (`/proc/stat`) at one moment.
struct CpuSample {
    at: Instant,
    hosts: Vec<u64>,
    /// Bytes each host caused to be written to storage (`/proc/PID/io`).
    written: Vec<u64>,
    busy: u64,
    total: u64,
}

/// Clock ticks per second of `/proc` figures (`getconf CLK_TCK`; 100 on
/// Linux x86-64).
const CLOCK_TICKS: f64 = 100.0;

impl CpuSample {
    fn take(pids: &[u32]) -> CpuSample {
        let hosts = pids
            .iter()
            .map(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // Fields after the command name: state is field 3, utime 14, stime 15.
                let fields: Vec<u64> = stat
                    .rsplit_once(')')
                    .map(|(_, rest)| rest)
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(|f| f.parse().unwrap_or(0))
                    .collect();
                fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0)
            })
            .collect();
        let written = pids
            .iter()
            .map(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/io"))
                    .unwrap_or_default()
                    .lines()
                    .find_map(|line| line.strip_prefix("write_bytes:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0)
            })
            .collect();
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let cpu: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is in user).
        let total: u64 = cpu.iter().take(8).sum();
        let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
        CpuSample {
            at: Instant::now(),
            hosts,
            written,
            busy: total - idle,
            total,
        }
    }

    /// Cores used by each host and the machine's busy share since `self`.
    fn since(&self, pids: &[u32]) -> CpuUse {
        let now = CpuSample::take(pids);
        let seconds = self.at.elapsed().as_secs_f64();
        CpuUse {
            cores: now
                .hosts
                .iter()
                .zip(&self.hosts)
                .map(|(after, before)| after.saturating_sub(*before) as f64 / CLOCK_TICKS / seconds)
                .collect(),
            written: now
                .written
                .iter()
                .zip(&self.written)
                .map(|(after, before)| after.saturating_sub(*before))
                .collect(),
            busy: now.busy.saturating_sub(self.busy) as f64
                / now.total.saturating_sub(self.total).max(1) as f64,
        }
    }
}

/// CPU used over a wrk run.
#[derive(Clone, Debug, Default)]
struct CpuUse {
    /// Cores used by each host.
    cores: Vec<f64>,
    /// Bytes each host wrote to storage.
    written: Vec<u64>,
    /// The machine's busy share (every process, wrk included).
    busy: f64,
}

impl CpuUse {
    /// CPU time of the three hosts per request, in microseconds.
    fn per_request_us(&self, wrk: &Wrk) -> f64 {
        self.cores.iter().sum::<f64>() * 1e6 / wrk.requests_per_second
    }
}

impl std::fmt::Display for CpuUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cores: Vec<String> = NAMES
            .iter()
            .zip(&self.cores)
            .map(|(name, cores)| format!("{name} {cores:.2}"))
            .collect();
        write!(
            f,
            "cores used: {}; machine busy {:.0}%",
            cores.join(", "),
            self.busy * 100.0
        )
    }
}

/// Places `web` as `spread` says and waits until every host's `here` is
/// `expected` and every gateway serves it.
async fn place_web(cluster: &Cluster, spread: Value, expected: [u64; 3]) {
    cluster.scale(0, "web", WEB_INSTANCES, spread).await;
    cluster
        .wait_here("web", "web placed", |here| here == expected)
        .await;
    cluster.wait_served("web").await;
}

struct WrkFigures {
    local: Vec<Wrk>,
    forwarded: Vec<Wrk>,
    spread: Vec<Wrk>,
    /// The hosts' CPU time per request (µs), per round.
    local_us: Vec<f64>,
    forwarded_us: Vec<f64>,
    spread_us: Vec<f64>,
}

async fn wrk_rounds(
    cluster: &Cluster,
    rounds: usize,
    connections: usize,
    seconds: u64,
    warmup: u64,
) -> WrkFigures {
    let mut figures = WrkFigures {
        local: Vec::new(),
        forwarded: Vec::new(),
        spread: Vec::new(),
        local_us: Vec::new(),
        forwarded_us: Vec::new(),
        spread_us: Vec::new(),
    };
    let gateways: Vec<SocketAddr> = cluster.hosts.iter().map(|h| h.gateway).collect();
    // Connections of the three wrk processes of (c): 32 → 11, 11, 10.
    let split: Vec<(SocketAddr, usize)> = (0..3)
        .map(|i| {
            (
                gateways[i],
                connections / 3 + usize::from(i < connections % 3),
            )
        })
        .collect();
    let pids = cluster.pids();
    // wrk's report and the CPU the hosts and the machine used meanwhile.
    let run = |loads: Vec<(SocketAddr, usize)>, threads: usize| {
        tokio::task::block_in_place(|| {
            if warmup > 0 {
                wrk_at_once(&loads, threads, warmup);
            }
            let before = CpuSample::take(&pids);
            let reports = wrk_at_once(&loads, threads, seconds);
            (reports, before.since(&pids))
        })
    };
    let pinned = json!([{ "requirements": { "name": "alpha" }, "weight": 1 }]);
    for round in 0..rounds {
        place_web(cluster, pinned.clone(), [WEB_INSTANCES, 0, 0]).await;
        let (local, local_cpu) = run(vec![(gateways[0], connections)], 2);
        let (forwarded, forwarded_cpu) = run(vec![(gateways[1], connections)], 2);
        place_web(cluster, json!([]), [WEB_INSTANCES / 3; 3]).await;
        let (spread, spread_cpu) = run(split.clone(), 1);
        let (local, forwarded, spread) = (sum_of(&local), sum_of(&forwarded), sum_of(&spread));
        println!("  round {}:", round + 1);
        for (label, wrk, cpu) in [
            ("(a) pinned to alpha, load on alpha:", &local, &local_cpu),
            (
                "(b) pinned to alpha, load on beta: ",
                &forwarded,
                &forwarded_cpu,
            ),
            ("(c) spread, load on all three:     ", &spread, &spread_cpu),
        ] {
            println!(
                "    {label} {}; {cpu}; hosts' CPU per request {:.1} µs",
                fmt_wrk(wrk),
                cpu.per_request_us(wrk)
            );
        }
        figures.local_us.push(local_cpu.per_request_us(&local));
        figures
            .forwarded_us
            .push(forwarded_cpu.per_request_us(&forwarded));
        figures.spread_us.push(spread_cpu.per_request_us(&spread));
        figures.local.push(local);
        figures.forwarded.push(forwarded);
        figures.spread.push(spread);
    }
    figures
}

// 4. Failover.

struct FailoverRound {
    killed: String,
    acknowledged: Duration,
    attempts: usize,
    new_leader_seen: Option<Duration>,
    back: Duration,
}

async fn failover_round(cluster: &mut Cluster, round: usize) -> FailoverRound {
    let leader_at = cluster.wait_stable().await;
    let survivor_at = (leader_at + 1) % 3;
    let (old_leader, _) = cluster.members(survivor_at).await.expect("members");
    let old_leader = old_leader.expect("a leader");
    let killed_name = cluster.hosts[leader_at].name.clone();

    cluster.hosts[leader_at].kill9();
    let killed = Instant::now();

    // Writes through the survivor until one is acknowledged; alongside,
    // the survivor's view of the leader.
    let cluster_ref: &Cluster = cluster;
    let writes = async {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let name = format!("failover-{round}-{attempts}");
            let body = json!({ "name": name }).to_string();
            match cluster_ref
                .api(survivor_at, "POST", "/v1/tenants", body, FAILOVER_ATTEMPT)
                .await
            {
                Ok(_) => return (killed.elapsed(), attempts, name),
                Err(err) => {
                    assert!(
                        killed.elapsed() < FAILOVER_BOUND && attempts < 10_000,
                        "no write acknowledged within {FAILOVER_BOUND:?} of the kill: {err}"
                    );
                }
            }
        }
    };
    let leader_seen = async {
        while killed.elapsed() < FAILOVER_BOUND {
            if let Some((Some(leader), _)) = cluster_ref.members(survivor_at).await
                && leader != old_leader
            {
                return Some(killed.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    };
    let ((acknowledged, attempts, last_write), new_leader_seen) = tokio::join!(writes, leader_seen);

    // Back: restart on the same data directory, then three members seen by
    // it, a linearizable read answered by it, and the write seen.
    let restarted = Instant::now();
    tokio::task::block_in_place(|| cluster.hosts[leader_at].spawn());
    loop {
        let members = cluster.members(leader_at).await;
        let three = members.as_ref().is_some_and(|(leader, hosts)| {
            leader.is_some()
                && hosts.len() == 3
                && hosts
                    .iter()
                    .filter(|h| h.2 == "leader" || h.2 == "voter")
                    .count()
                    == 3
        });
        if three
            && cluster.get(leader_at, "/v1/apps").await.is_ok()
            && let Ok(tenants) = cluster.get(leader_at, "/v1/tenants").await
            && tenants
                .as_array()
                .is_some_and(|list| list.iter().any(|t| t["name"] == last_write.as_str()))
        {
            break;
        }
        if restarted.elapsed() >= SETTLE {
            let mut views = Vec::new();
            for at in 0..3 {
                let view = cluster.get(at, "/v1/nodes").await;
                views.push(format!("{}: {view:?}", cluster.hosts[at].name));
            }
            panic!(
                "{killed_name} not back within {SETTLE:?}: {members:?}; /v1/nodes of each host: {views:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let back = restarted.elapsed();
    FailoverRound {
        killed: killed_name,
        acknowledged,
        attempts,
        new_leader_seen,
        back,
    }
}

fn main() {
    let sections: Vec<u32> = env_or("BENCH_SECTIONS", "1,2,3,4")
        .split(',')
        .map(|n| n.trim().parse().expect("BENCH_SECTIONS: numbers 1-4"))
        .collect();
    let scale_rounds_n = env_count("BENCH_SCALE_ROUNDS", 10).max(1);
    let write_duration = env_duration("BENCH_WRITE_DURATION", "3s");
    let writer_counts: Vec<usize> = env_or("BENCH_WRITERS", "1,16,64")
        .split(',')
        .map(|n| n.trim().parse().expect("BENCH_WRITERS: counts"))
        .collect();
    let wrk_seconds = env_duration("BENCH_DURATION", "5s").as_secs().max(1);
    let warmup_seconds = env_duration("BENCH_WARMUP", "1s").as_secs();
    let connections = env_count("BENCH_CONNECTIONS", 32).max(3);
    let wrk_rounds_n = env_count("BENCH_ROUNDS", 3).max(1);
    let failover_rounds = env_count("BENCH_FAILOVER_ROUNDS", 5).max(1);

    // Outside the runtime, so a panic anywhere drops (kills) the hosts.
    let started = Instant::now();
    let mut cluster = Cluster::start();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut summary: Vec<String> = Vec::new();
    runtime.block_on(async {
        let leader = cluster.wait_stable().await;
        println!(
            "three hosts up and agreed in {:.1} s; leader {}",
            started.elapsed().as_secs_f64(),
            cluster.hosts[leader].name
        );
        deploy_apps(&cluster).await;

        if sections.contains(&1) {
            println!(
                "1. scale 1 → 3 instances until every host runs one ({scale_rounds_n} rounds)"
            );
            let scale = scale_rounds(&cluster, scale_rounds_n).await;
            summary.push(format!(
                "| scale 1 → 3, until `here ≥ 1` on all three hosts ({} rounds) | {} |",
                scale.up.len(),
                spread_ms(&scale.up)
            ));
            summary.push(format!(
                "| … of which the `PUT …/scale` call | {} |",
                spread_ms(&scale.up_acknowledged)
            ));
            summary.push(format!(
                "| scale 3 → 1, until only one host runs it | {} |",
                spread_ms(&scale.down)
            ));
        }

        if sections.contains(&2) {
            println!("2. committed writes (POST /v1/tenants), {write_duration:?} per figure");
            let leader = cluster.wait_stable().await;
            let follower = (leader + 1) % 3;
            write_load(&cluster, leader, 16, Duration::from_secs(1), "warm").await;
            for (i, writers) in writer_counts.iter().enumerate() {
                let to_leader =
                    write_load(&cluster, leader, *writers, write_duration, &format!("l{i}")).await;
                let to_follower =
                    write_load(&cluster, follower, *writers, write_duration, &format!("f{i}"))
                        .await;
                println!(
                    "  {writers:>3} writers: to the leader ({}) {:.0} writes/s (p50 {:.2} ms, max {:.1} ms, errors {}); to a follower ({}) {:.0} writes/s (p50 {:.2} ms, max {:.1} ms, errors {})",
                    cluster.hosts[leader].name,
                    to_leader.writes_per_second,
                    ms(to_leader.p50),
                    ms(to_leader.max),
                    to_leader.errors,
                    cluster.hosts[follower].name,
                    to_follower.writes_per_second,
                    ms(to_follower.p50),
                    ms(to_follower.max),
                    to_follower.errors
                );
                for (whom, figures) in [("the leader", &to_leader), ("a follower", &to_follower)] {
                    let written: u64 = figures.cpu.written.iter().sum();
                    println!(
                        "      to {whom}: {}; the three hosts wrote {:.0} MiB to storage ({:.1} KiB per committed write)",
                        figures.cpu,
                        written as f64 / 1048576.0,
                        written as f64 / 1024.0 / figures.writes.max(1) as f64
                    );
                }
                summary.push(format!(
                    "| committed writes/s, {writers} writer(s): to the leader / to a follower | {:.0} / {:.0} (p50 {:.2} / {:.2} ms; errors {} / {}) |",
                    to_leader.writes_per_second,
                    to_follower.writes_per_second,
                    ms(to_leader.p50),
                    ms(to_follower.p50),
                    to_leader.errors,
                    to_follower.errors
                ));
            }
        }

        if sections.contains(&3) {
            println!(
                "3. wrk on the hello route, {connections} connections, {wrk_seconds} s ({warmup_seconds} s warm-up), {wrk_rounds_n} rounds"
            );
            let wrk = wrk_rounds(
                &cluster,
                wrk_rounds_n,
                connections,
                wrk_seconds,
                warmup_seconds,
            )
            .await;
            let (a, b, c) = (
                median_wrk(&wrk.local),
                median_wrk(&wrk.forwarded),
                median_wrk(&wrk.spread),
            );
            summary.push(format!(
                "| (a) pinned to alpha, wrk on alpha (local) | {} |",
                fmt_wrk(&a)
            ));
            summary.push(format!(
                "| (b) pinned to alpha, wrk on beta (forwarded) | {} |",
                fmt_wrk(&b)
            ));
            summary.push(format!(
                "| (c) spread over three, wrk on all three gateways | {} |",
                fmt_wrk(&c)
            ));
            summary.push(format!(
                "| ratios b/a, c/a (requests/s) | {:.2}x, {:.2}x |",
                b.requests_per_second / a.requests_per_second,
                c.requests_per_second / a.requests_per_second
            ));
            summary.push(format!(
                "| the three hosts' CPU per request: a / b / c | {:.1} / {:.1} / {:.1} µs |",
                median_f64(&wrk.local_us),
                median_f64(&wrk.forwarded_us),
                median_f64(&wrk.spread_us)
            ));
        }

        if sections.contains(&4) {
            println!("4. failover ({failover_rounds} rounds)");
            let mut failovers = Vec::new();
            for round in 1..=failover_rounds {
                let figures = failover_round(&mut cluster, round).await;
                println!(
                    "  round {round}: killed {} (leader); write acknowledged {:.0} ms after the kill ({} attempt(s)); new leader seen after {}; restarted host back after {:.0} ms",
                    figures.killed,
                    ms(figures.acknowledged),
                    figures.attempts,
                    figures
                        .new_leader_seen
                        .map(|d| format!("{:.0} ms", ms(d)))
                        .unwrap_or_else(|| "—".into()),
                    ms(figures.back)
                );
                failovers.push(figures);
            }
            let acknowledged: Vec<Duration> = failovers.iter().map(|f| f.acknowledged).collect();
            let seen: Vec<Duration> = failovers.iter().filter_map(|f| f.new_leader_seen).collect();
            let back: Vec<Duration> = failovers.iter().map(|f| f.back).collect();
            summary.push(format!(
                "| failover: kill -9 of the leader → a write acknowledged by a survivor ({} rounds) | {} |",
                acknowledged.len(),
                spread_ms(&acknowledged)
            ));
            if !seen.is_empty() {
                summary.push(format!(
                    "| failover: kill -9 → the survivor names a new leader | {} |",
                    spread_ms(&seen)
                ));
            }
            summary.push(format!(
                "| restart of the killed host → back (3 members, linearizable read, latest write) | {} |",
                spread_ms(&back)
            ));
        }
    });

    println!();
    println!("Summary (medians; min–max in brackets)");
    println!("| figure | result |");
    println!("|---|---:|");
    for row in &summary {
        println!("{row}");
    }
    let warnings: Vec<String> = cluster
        .hosts
        .iter()
        .map(|h| format!("{} {}", h.name, h.warnings()))
        .collect();
    println!(
        "(WARN/ERROR lines in the hosts' stderr: {}; total run {:.0} s)",
        warnings.join(", "),
        started.elapsed().as_secs_f64()
    );
}

/// The `bench` tenant, the hello package, and the apps `scaler` and `web`
/// (routes `APP.bench.test/`), served by every gateway.
async fn deploy_apps(cluster: &Cluster) {
    cluster
        .api_ok(
            0,
            "POST",
            "/v1/tenants",
            json!({ "name": TENANT }).to_string(),
        )
        .await;
    let package = std::fs::read(cloudware_test_artifacts::HELLO).expect("hello component");
    let pushed = cluster
        .api_ok(0, "POST", &format!("/v1/packages?tenant={TENANT}"), package)
        .await;
    let digest = pushed["digest"].as_str().expect("digest").to_string();
    for app in ["scaler", "web"] {
        let body = json!({ "package": digest, "routes": [format!("{app}.bench.test/")] });
        cluster
            .api_ok(
                0,
                "POST",
                &format!("/v1/apps/{app}/deployments?tenant={TENANT}"),
                body.to_string(),
            )
            .await;
        cluster.wait_served(app).await;
    }
}
