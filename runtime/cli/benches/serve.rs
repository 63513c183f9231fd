//! HTTP serving benchmark: `cloudware serve` vs `wasmtime serve` vs a bare
//! hyper server, side by side, on the same machine, the same component and
//! the same load.
//!
//! What it measures:
//!
//! 1. Throughput and latency of three servers answering `GET /` with
//!    `Hello from wasip2!\n`:
//!    - `cloudware serve` with the plain wasip2 hello component
//!      (`cloudware_test_artifacts::WASIP2_HELLO`), default settings
//!      (pooling allocator), a private compile cache and `--log-level warn`;
//!    - `wasmtime serve -Scli` with the same component, if the `wasmtime` CLI
//!      is found (`$WASMTIME`, `$PATH`, then `~/.cargo/bin`); skipped otherwise;
//!    - a bare hyper 1 HTTP/1.1 server with no wasm at all, the ceiling. It
//!      runs as a child process (this bench binary re-executed with
//!      `--bare-hyper-server`) on its own 2-worker tokio runtime, so that all
//!      three servers are separate processes scheduled alike, and its memory
//!      can be read like the others'.
//!
//!    Each server is checked to answer `GET /` with 200 and the expected body,
//!    then loaded with `wrk --latency` (a warm-up run first, not recorded),
//!    round-robin over the servers for several rounds. The report gives, per
//!    server, the median over the rounds of requests/s, p50 and p99 latency
//!    (each median taken separately), and the errors of all rounds (socket
//!    errors plus non-2xx/3xx responses; any error flags the server).
//! 2. The time to create one request's store and instance
//!    (`HttpComponent::instantiate_once`), in-process with the default engine
//!    configuration (pooling allocator), for the wasip2 hello and the SDK
//!    hello: median and p99 in µs.
//! 3. Resident memory (`VmRSS`, `VmHWM`) of each server process after its
//!    load runs.
//!
//! Run it with `cargo bench -p cloudware-cli --bench serve`. Settings, from
//! the environment:
//!
//! | variable               | default | meaning                                  |
//! |------------------------|---------|------------------------------------------|
//! | `BENCH_DURATION`       | `10s`   | length of each recorded wrk run          |
//! | `BENCH_WARMUP`         | `2s`    | length of the warm-up run before each    |
//! | `BENCH_CONNECTIONS`    | `32`    | wrk connections (`-c`)                   |
//! | `BENCH_THREADS`        | `2`     | wrk threads (`-t`)                       |
//! | `BENCH_ROUNDS`         | `3`     | rounds over the servers                  |
//! | `BENCH_INSTANTIATIONS` | `2000`  | timed `instantiate_once` calls           |
//! | `WASMTIME`             |         | path of the `wasmtime` CLI to compare to |
//!
//! Every child process is killed when the bench ends, also on panic; every
//! wait is bounded.

use bytes::Bytes;
use cloudware_engine::{Engine, EngineConfig, Limits};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The body every server under test answers `GET /` with.
const EXPECTED_BODY: &str = "Hello from wasip2!\n";
/// Argument that turns this binary into the bare hyper server.
const BARE_HYPER_ARG: &str = "--bare-hyper-server";
/// How long a server may take to start (wasmtime compiles the component).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one `GET /` probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Slack given to wrk beyond its `-d` duration before it is killed.
const WRK_SLACK: Duration = Duration::from_secs(30);
/// Untimed `instantiate_once` calls before the timed ones.
const INSTANTIATION_WARMUP: usize = 100;

fn main() {
    if std::env::args().any(|arg| arg == BARE_HYPER_ARG) {
        bare_hyper::serve();
        return;
    }
    let settings = Settings::from_env();
    print_environment(&settings);

    let instantiation = [
        ("wasip2 hello", cloudware_test_artifacts::WASIP2_HELLO),
        ("SDK hello", cloudware_test_artifacts::HELLO),
    ]
    .map(|(name, path)| (name, measure_instantiation(Path::new(path), &settings)));

    let scratch = tempfile::tempdir().expect("cannot create a temporary directory");
    let servers = start_servers(scratch.path());
    let results = load_servers(&servers, &settings);
    let memory: Vec<_> = servers.iter().map(|server| server.memory()).collect();

    print_load_table(&results);
    print_ratios(&results);
    print_instantiation(&instantiation);
    print_memory(&servers, &memory);
}

// ---------------------------------------------------------------------------
// Settings

/// What the environment asks for; see the table at the top.
struct Settings {
    duration: String,
    warmup: String,
    connections: u32,
    threads: u32,
    rounds: usize,
    instantiations: usize,
}

impl Settings {
    fn from_env() -> Self {
        let settings = Settings {
            duration: env_or("BENCH_DURATION", "10s"),
            warmup: env_or("BENCH_WARMUP", "2s"),
            connections: env_number("BENCH_CONNECTIONS", 32),
            threads: env_number("BENCH_THREADS", 2),
            rounds: env_number("BENCH_ROUNDS", 3),
            instantiations: env_number("BENCH_INSTANTIATIONS", 2000),
        };
        // Fail now, not after minutes of measuring, on a duration wrk would
        // reject or that we cannot bound.
        parse_wrk_duration(&settings.duration);
        parse_wrk_duration(&settings.warmup);
        assert!(settings.rounds > 0, "BENCH_ROUNDS must be at least 1");
        assert!(
            settings.instantiations > 0,
            "BENCH_INSTANTIATIONS must be at least 1"
        );
        settings
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a valid number")),
        Err(_) => default,
    }
}

/// A wrk duration (`10s`, `500ms`, `1m`, `1h`, or bare seconds).
fn parse_wrk_duration(text: &str) -> Duration {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let value: u64 = digits
        .parse()
        .unwrap_or_else(|_| panic!("duration {text:?}: expected e.g. `10s`, `1m`"));
    match &text[digits.len()..] {
        "" | "s" => Duration::from_secs(value),
        "ms" => Duration::from_millis(value),
        "m" => Duration::from_secs(value * 60),
        "h" => Duration::from_secs(value * 3600),
        unit => panic!("duration {text:?}: unknown unit {unit:?} (use ms, s, m or h)"),
    }
}

fn print_environment(settings: &Settings) {
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!("# HTTP serving: cloudware serve vs wasmtime serve vs bare hyper");
    println!("cores: {cores}, kernel: {}", kernel.trim());
    println!(
        "load: wrk -t{} -c{} -d{} --latency (warm-up {}), {} round(s), interleaved",
        settings.threads, settings.connections, settings.duration, settings.warmup, settings.rounds
    );
    println!();
}

// ---------------------------------------------------------------------------
// Child processes

/// A child process, killed and reaped when dropped (also while unwinding).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A long-running child process (a server) with its stderr in a file.
struct ChildGuard {
    child: KillOnDrop,
    /// Where its stderr goes.
    log: PathBuf,
}

impl ChildGuard {
    /// Starts `command` with stdout piped, stdin piped (the bare hyper server
    /// exits when it closes) and stderr appended to `log`.
    fn spawn(mut command: Command, log: PathBuf) -> Self {
        let stderr = File::create(&log)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", log.display()));
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {command:?}: {err}"));
        ChildGuard {
            child: KillOnDrop(child),
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Panics, with the process's stderr, if it has exited.
    fn assert_running(&mut self, name: &str) {
        if let Ok(Some(status)) = self.child.0.try_wait() {
            panic!("{name} exited ({status}); stderr:\n{}", self.log_text());
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|err| format!("(unreadable: {err})"))
    }

    /// The first line the process writes to stdout, within `timeout`. The
    /// rest of its stdout is drained in the background so it never blocks.
    fn first_stdout_line(&mut self, name: &str, timeout: Duration) -> String {
        let stdout = self.child.0.stdout.take().expect("stdout is piped");
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line);
            let _ = sender.send(read.map(|_| line));
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        match receiver.recv_timeout(timeout) {
            Ok(Ok(line)) if !line.is_empty() => line,
            Ok(Ok(_)) => panic!(
                "{name} closed stdout before saying where it listens; stderr:\n{}",
                self.log_text()
            ),
            Ok(Err(err)) => panic!("cannot read the stdout of {name}: {err}"),
            Err(_) => panic!(
                "{name} did not say where it listens within {timeout:?}; stderr:\n{}",
                self.log_text()
            ),
        }
    }
}

/// One server under test.
struct Server {
    name: &'static str,
    addr: SocketAddr,
    process: ChildGuard,
}

/// Resident memory of a process, in KiB.
#[derive(Clone, Copy)]
struct Memory {
    rss_kib: u64,
    hwm_kib: u64,
}

impl Server {
    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// `VmRSS` and `VmHWM` from `/proc/PID/status`, if readable.
    fn memory(&self) -> Option<Memory> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.process.pid())).ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|line| line.starts_with(name))?;
            line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        };
        Some(Memory {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
        })
    }

    /// Panics unless `GET /` answers 200 with the expected body.
    fn verify(&mut self) {
        self.process.assert_running(self.name);
        match get_root(self.addr) {
            Ok((200, body)) if body == EXPECTED_BODY => {}
            Ok((status, body)) => panic!(
                "{} at {}: GET / answered {status} {body:?}, expected 200 {EXPECTED_BODY:?}",
                self.name, self.addr
            ),
            Err(err) => panic!("{} at {}: GET / failed: {err}", self.name, self.addr),
        }
    }
}

/// Starts every server (wasmtime only if found) and checks each answers.
fn start_servers(scratch: &Path) -> Vec<Server> {
    let mut servers = vec![start_cloudware(scratch)];
    match find_wasmtime() {
        Some(wasmtime) => servers.push(start_wasmtime(&wasmtime, scratch)),
        None => {
            println!(
                "wasmtime serve: skipped: wasmtime CLI not found (cargo install wasmtime-cli --version 48.0.8)"
            );
        }
    }
    servers.push(start_bare_hyper(scratch));
    for server in &mut servers {
        server.verify();
        println!("{}: listening on {}, GET / ok", server.name, server.url());
    }
    println!();
    servers
}

fn start_cloudware(scratch: &Path) -> Server {
    let name = "cloudware serve";
    let mut command = Command::new(env!("CARGO_BIN_EXE_cloudware"));
    command
        .arg("serve")
        .arg(cloudware_test_artifacts::WASIP2_HELLO)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "warn",
            "--cache-dir",
        ])
        .arg(scratch.join("cloudware-cache"));
    let mut process = ChildGuard::spawn(command, scratch.join("cloudware.log"));
    // "Serving PATH (sha256:…) on http://ADDR/"
    let line = process.first_stdout_line(name, STARTUP_TIMEOUT);
    let addr = line
        .trim_end()
        .rsplit_once(" on http://")
        .and_then(|(_, rest)| rest.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("{name}: no address in its first line {line:?}"));
    Server {
        name,
        addr,
        process,
    }
}

/// `$WASMTIME`, else `wasmtime` on `$PATH`, else in `$CARGO_HOME/bin` or
/// `~/.cargo/bin`.
fn find_wasmtime() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WASMTIME") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let cargo_homes = [
        std::env::var_os("CARGO_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")),
    ];
    on_path
        .into_iter()
        .chain(
            cargo_homes
                .into_iter()
                .flatten()
                .map(|home| home.join("bin")),
        )
        .map(|dir| dir.join("wasmtime"))
        .find(|candidate| candidate.is_file())
}

fn start_wasmtime(wasmtime: &Path, scratch: &Path) -> Server {
    let name = "wasmtime serve";
    let version = run_bounded(Command::new(wasmtime).arg("--version"), PROBE_TIMEOUT);
    println!("wasmtime: {} ({})", version.trim(), wasmtime.display());

    // wasmtime serve cannot bind port 0 and report it on stdout: take a free
    // port and hand it over (the window for a clash is tiny).
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("cannot find a free port")
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut command = Command::new(wasmtime);
    command
        .args(["serve", "-Scli", "--addr"])
        .arg(addr.to_string())
        .arg(cloudware_test_artifacts::WASIP2_HELLO);
    let mut process = ChildGuard::spawn(command, scratch.join("wasmtime.log"));
    wait_until_answering(name, addr, &mut process);
    Server {
        name,
        addr,
        process,
    }
}

/// Polls `GET /` until the server answers at all, up to [`STARTUP_TIMEOUT`].
fn wait_until_answering(name: &str, addr: SocketAddr, process: &mut ChildGuard) {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        process.assert_running(name);
        match get_root(addr) {
            Ok(_) => return,
            Err(err) if Instant::now() >= deadline => panic!(
                "{name} did not answer on {addr} within {STARTUP_TIMEOUT:?} ({err}); stderr:\n{}",
                process.log_text()
            ),
            Err(_) => thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn start_bare_hyper(scratch: &Path) -> Server {
    let name = "bare hyper";
    let exe = std::env::current_exe().expect("cannot find this bench's executable");
    let mut command = Command::new(exe);
    command.arg(BARE_HYPER_ARG);
    let mut process = ChildGuard::spawn(command, scratch.join("hyper.log"));
    let line = process.first_stdout_line(name, STARTUP_TIMEOUT);
    let addr = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name}: expected an address, got {line:?}"));
    Server {
        name,
        addr,
        process,
    }
}

/// Runs a short command to completion, within `timeout`, returning stdout.
fn run_bounded(command: &mut Command, timeout: Duration) -> String {
    let program = format!("{command:?}");
    let mut child = KillOnDrop(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {program}: {err}")),
    );
    let stdout = drain(child.0.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.0.stderr.take().expect("stderr is piped"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.0.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => panic!("{program} did not finish within {timeout:?}"),
            Err(err) => panic!("cannot wait for {program}: {err}"),
        }
    };
    let stdout = stdout.join().expect("stdout reader panicked");
    let stderr = stderr.join().expect("stderr reader panicked");
    assert!(
        status.success(),
        "{program} failed ({status}):\n{stdout}{stderr}"
    );
    stdout
}

/// Reads a pipe to its end on a thread.
fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

// ---------------------------------------------------------------------------
// HTTP probe

/// `GET /` over a fresh HTTP/1.1 connection: status and body.
fn get_root(addr: SocketAddr) -> Result<(u16, String), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start a tokio runtime: {err}"))?;
    runtime.block_on(async {
        tokio::time::timeout(PROBE_TIMEOUT, get_root_async(addr))
            .await
            .map_err(|_| format!("no answer within {PROBE_TIMEOUT:?}"))?
    })
}

async fn get_root_async(addr: SocketAddr) -> Result<(u16, String), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|err| format!("connect: {err}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|err| format!("handshake: {err}"))?;
    tokio::spawn(connection);
    let request = http::Request::get("/")
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|err| format!("request: {err}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| format!("send: {err}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|err| format!("body: {err}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

// ---------------------------------------------------------------------------
// Load with wrk

/// What one wrk run measured.
#[derive(Clone, Copy, Debug, PartialEq)]
struct WrkRun {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Socket errors (connect, read, write, timeout).
    socket_errors: u64,
    /// Responses that were neither 2xx nor 3xx.
    bad_responses: u64,
}

impl WrkRun {
    fn errors(&self) -> u64 {
        self.socket_errors + self.bad_responses
    }
}

/// Medians over the rounds of one server.
struct LoadResult {
    name: &'static str,
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Errors summed over all rounds.
    errors: u64,
}

/// Loads every server in turn, `settings.rounds` times, interleaved.
fn load_servers(servers: &[Server], settings: &Settings) -> Vec<LoadResult> {
    let mut runs: Vec<Vec<WrkRun>> = vec![Vec::new(); servers.len()];
    for round in 1..=settings.rounds {
        for (server, runs) in servers.iter().zip(&mut runs) {
            wrk(&server.url(), &settings.warmup, settings);
            let run = wrk(&server.url(), &settings.duration, settings);
            println!(
                "round {round}/{}: {:<16} {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  errors {}{}",
                settings.rounds,
                server.name,
                run.requests_per_sec,
                run.p50_ms,
                run.p99_ms,
                run.errors(),
                if run.errors() > 0 { "  (!)" } else { "" },
            );
            runs.push(run);
        }
    }
    println!();
    servers
        .iter()
        .zip(runs)
        .map(|(server, runs)| LoadResult {
            name: server.name,
            requests_per_sec: median(runs.iter().map(|run| run.requests_per_sec)),
            p50_ms: median(runs.iter().map(|run| run.p50_ms)),
            p99_ms: median(runs.iter().map(|run| run.p99_ms)),
            errors: runs.iter().map(WrkRun::errors).sum(),
        })
        .collect()
}

/// One wrk run against `url` for `duration`.
fn wrk(url: &str, duration: &str, settings: &Settings) -> WrkRun {
    let timeout = parse_wrk_duration(duration) + WRK_SLACK;
    let output = run_bounded(
        Command::new("wrk")
            .arg(format!("-t{}", settings.threads))
            .arg(format!("-c{}", settings.connections))
            .arg(format!("-d{duration}"))
            .args(["--latency", url]),
        timeout,
    );
    parse_wrk(&output).unwrap_or_else(|err| panic!("cannot parse wrk's output ({err}):\n{output}"))
}

/// Parses wrk's report (with `--latency`).
fn parse_wrk(output: &str) -> Result<WrkRun, String> {
    let mut requests_per_sec = None;
    let mut p50_ms = None;
    let mut p99_ms = None;
    let mut socket_errors = 0;
    let mut bad_responses = 0;
    for line in output.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("Requests/sec:") {
            let value = value.trim();
            requests_per_sec = Some(
                value
                    .parse()
                    .map_err(|_| format!("bad Requests/sec {value:?}"))?,
            );
        } else if let Some(value) = line.strip_prefix("50%") {
            p50_ms = Some(parse_latency_ms(value.trim())?);
        } else if let Some(value) = line.strip_prefix("99%") {
            p99_ms = Some(parse_latency_ms(value.trim())?);
        } else if let Some(counts) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for count in counts.split(',') {
                let number = count.split_whitespace().nth(1);
                socket_errors += number
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| format!("bad socket error count {count:?}"))?;
            }
        } else if let Some(value) = line.strip_prefix("Non-2xx or 3xx responses:") {
            let value = value.trim();
            bad_responses = value
                .parse()
                .map_err(|_| format!("bad non-2xx count {value:?}"))?;
        }
    }
    Ok(WrkRun {
        requests_per_sec: requests_per_sec.ok_or("no `Requests/sec:` line")?,
        p50_ms: p50_ms.ok_or("no `50%` latency line (was --latency passed?)")?,
        p99_ms: p99_ms.ok_or("no `99%` latency line (was --latency passed?)")?,
        socket_errors,
        bad_responses,
    })
}

/// A wrk latency (`403.00us`, `1.14ms`, `2.00s`, `1.00m`) in milliseconds.
fn parse_latency_ms(text: &str) -> Result<f64, String> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| format!("latency {text:?} has no unit"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("bad latency number {text:?}"))?;
    let scale = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return Err(format!("unknown latency unit in {text:?}")),
    };
    Ok(value * scale)
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    assert!(!values.is_empty(), "median of nothing");
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

// ---------------------------------------------------------------------------
// Instantiation

/// Median and p99 of one request's instantiation, in µs.
struct InstantiationTime {
    median_us: f64,
    p99_us: f64,
}

/// Times `instantiate_once` in-process with the default engine configuration
/// (pooling allocator), with a private compile cache.
fn measure_instantiation(path: &Path, settings: &Settings) -> InstantiationTime {
    let cache = tempfile::tempdir().expect("cannot create a temporary directory");
    let config = EngineConfig {
        cache_dir: Some(cache.path().to_owned()),
        ..EngineConfig::default()
    };
    let engine = Engine::new(&config, &Limits::default()).expect("cannot create the engine");
    let component = engine
        .load_file(path)
        .unwrap_or_else(|err| panic!("cannot load {}: {err}", path.display()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot start a tokio runtime");
    let mut micros: Vec<f64> = runtime.block_on(async {
        for _ in 0..INSTANTIATION_WARMUP {
            instantiate(&component).await;
        }
        let mut micros = Vec::with_capacity(settings.instantiations);
        for _ in 0..settings.instantiations {
            let start = Instant::now();
            instantiate(&component).await;
            micros.push(start.elapsed().as_secs_f64() * 1e6);
        }
        micros
    });
    micros.sort_by(f64::total_cmp);
    InstantiationTime {
        median_us: median(micros.iter().copied()),
        p99_us: percentile(&micros, 0.99),
    }
}

async fn instantiate(component: &cloudware_engine::HttpComponent) {
    component
        .instantiate_once()
        .await
        .unwrap_or_else(|err| panic!("instantiation failed: {err:?}"));
}

/// The `q` quantile of sorted values (nearest rank).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ---------------------------------------------------------------------------
// Report

fn print_load_table(results: &[LoadResult]) {
    println!("## Load (medians of the rounds)");
    println!("| server | requests/s | p50 ms | p99 ms | errors |");
    println!("|---|---:|---:|---:|---:|");
    for result in results {
        println!(
            "| {} | {:.0} | {:.3} | {:.3} | {}{} |",
            result.name,
            result.requests_per_sec,
            result.p50_ms,
            result.p99_ms,
            result.errors,
            if result.errors > 0 { " (flagged)" } else { "" },
        );
    }
    println!();
}

fn print_ratios(results: &[LoadResult]) {
    let find = |name: &str| results.iter().find(|result| result.name == name);
    let cloudware = find("cloudware serve").expect("cloudware was measured");
    println!("## Ratios");
    match find("wasmtime serve") {
        Some(wasmtime) => {
            let throughput = cloudware.requests_per_sec / wasmtime.requests_per_sec;
            let verdict = if throughput >= 1.5 {
                "target 1.5x met"
            } else if throughput >= 1.0 {
                "target 1.5x NOT met, floor 1.0x met"
            } else {
                "BELOW the 1.0x floor"
            };
            println!("cloudware / wasmtime requests/s: {throughput:.2}x ({verdict})");
            println!(
                "cloudware / wasmtime p99 latency: {:.2}x (lower is better)",
                cloudware.p99_ms / wasmtime.p99_ms
            );
        }
        None => println!("cloudware / wasmtime: skipped (wasmtime CLI not found)"),
    }
    if let Some(hyper) = find("bare hyper") {
        println!(
            "cloudware / bare hyper requests/s: {:.2}x",
            cloudware.requests_per_sec / hyper.requests_per_sec
        );
    }
    println!();
}

fn print_instantiation(times: &[(&str, InstantiationTime)]) {
    println!("## Instantiation (instantiate_once, in-process, default config = pooling)");
    for (name, time) in times {
        println!(
            "{name}: median {:.1} µs, p99 {:.1} µs",
            time.median_us, time.p99_us
        );
    }
    println!();
}

fn print_memory(servers: &[Server], memory: &[Option<Memory>]) {
    println!("## Resident memory after the load runs");
    for (server, memory) in servers.iter().zip(memory) {
        match memory {
            Some(memory) => println!(
                "{}: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
                server.name,
                memory.rss_kib as f64 / 1024.0,
                memory.hwm_kib as f64 / 1024.0
            ),
            None => println!("{}: unreadable", server.name),
        }
    }
}

// ---------------------------------------------------------------------------
// The bare hyper server

mod bare_hyper {
    use super::*;

    /// Serves `EXPECTED_BODY` on 127.0.0.1 with two tokio workers; prints the
    /// address on stdout, and exits when stdin closes (the bench died).
    pub fn serve() {
        thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            std::process::exit(0);
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("cannot start a tokio runtime");
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("cannot bind 127.0.0.1:0");
            let addr = listener.local_addr().expect("no local address");
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{addr}").expect("cannot write to stdout");
            stdout.flush().expect("cannot write to stdout");
            drop(stdout);
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // Out of file descriptors or similar: back off.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                // Like the cloudware gateway.
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(hello))
                        .await;
                });
            }
        });
    }

    async fn hello(
        _request: http::Request<hyper::body::Incoming>,
    ) -> Result<http::Response<Full<Bytes>>, Infallible> {
        let response = http::Response::builder()
            .header(http::header::CONTENT_TYPE, "text/plain")
            .body(Full::new(Bytes::from_static(EXPECTED_BODY.as_bytes())))
            .expect("a valid response");
        Ok(response)
    }
}
