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
//!    (`LinkedComponent::instantiate_once`), in-process with the default engine
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

mod bare_hyper;
mod instantiation;
mod load;
mod report;
mod servers;

use bytes::Bytes;
use cloudware_engine::{Engine, EngineConfig, Limits};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use instantiation::*;
use load::*;
use report::*;
use servers::*;
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
pub(crate) const EXPECTED_BODY: &str = "Hello from wasip2!\n";
/// Argument that turns this binary into the bare hyper server.
pub(crate) const BARE_HYPER_ARG: &str = "--bare-hyper-server";
/// How long a server may take to start (wasmtime compiles the component).
pub(crate) const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one `GET /` probe may take.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Slack given to wrk beyond its `-d` duration before it is killed.
pub(crate) const WRK_SLACK: Duration = Duration::from_secs(30);
/// Untimed `instantiate_once` calls before the timed ones.
pub(crate) const INSTANTIATION_WARMUP: usize = 100;

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
pub(crate) struct Settings {
    pub(crate) duration: String,
    pub(crate) warmup: String,
    pub(crate) connections: u32,
    pub(crate) threads: u32,
    pub(crate) rounds: usize,
    pub(crate) instantiations: usize,
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

pub(crate) fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

pub(crate) fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a valid number")),
        Err(_) => default,
    }
}

/// A wrk duration (`10s`, `500ms`, `1m`, `1h`, or bare seconds).
pub(crate) fn parse_wrk_duration(text: &str) -> Duration {
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

pub(crate) fn print_environment(settings: &Settings) {
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
