//! What a component-to-component service call costs on one node.
//!
//! `svc-caller` (an HTTP front) is linked to `svc-echo`, which exports
//! `bench:svc/echo@0.1.0`; every call gets a fresh instance of `svc-echo`.
//! Printed, in one run:
//!
//! 1. the per-call overhead measured in the guest: `svc-caller` times `N`
//!    calls of `echo` with `wasi:clocks/monotonic-clock`; per round,
//!    (elapsed for `/call?n=N` − elapsed for `/call?n=0`) / N. p50 and p99
//!    over the rounds, against the target p50 < 50 µs;
//! 2. the raw host-side latency of `LinkedComponent::call` of `echo`;
//! 3. for context, the latency of a request through `handle`, which also
//!    makes one instance (`/call?n=0`), and of one with one call in it
//!    (`/call?n=1`: two instances).
//!
//! ```sh
//! nice cargo bench -p cloudware-engine --bench service_call
//! ```
//!
//! `SERVICE_CALL_ROUNDS` and `SERVICE_CALL_N` override the 200 rounds of
//! N = 100; every section also stops after `SECTION_BUDGET`.

use bytes::Bytes;
use cloudware_engine::service::{ServiceImport, ServiceTarget};
use cloudware_engine::{
    CallOrigin, CompiledComponent, Engine, EngineConfig, Limits, LinkPlan, LinkedComponent,
};
use http_body_util::{BodyExt, Empty};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use wasmtime::component::Val;

/// The service interface.
const ECHO: &str = "bench:svc/echo@0.1.0";
/// The target for the p50 of the per-call overhead.
const TARGET_P50: Duration = Duration::from_micros(50);
/// The longest one section of the benchmark runs.
const SECTION_BUDGET: Duration = Duration::from_secs(60);
/// Untimed requests before each section.
const WARMUP: usize = 50;
/// Samples of the host-side and `handle` sections.
const SAMPLES: usize = 5000;

/// A target set after linking, so that `svc-echo` can link to itself.
#[derive(Default)]
struct Slot(OnceLock<LinkedComponent>);

impl ServiceTarget for Slot {
    fn resolve(&self) -> Option<LinkedComponent> {
        self.0.get().cloned()
    }
}

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<(), Failure> {
    let rounds = env_number("SERVICE_CALL_ROUNDS", 200)?;
    let n = env_number("SERVICE_CALL_N", 100)?.max(1);
    let config = EngineConfig {
        cache_dir: None,
        ..Default::default()
    };
    let engine = Engine::new(&config, &Limits::default())?;
    let echo = engine.compile_file(cloudware_test_artifacts::SVC_ECHO.as_ref())?;
    let slot = Arc::new(Slot::default());
    let echo_linked = link(&echo, &echo, slot.clone())?;
    let _ = slot.0.set(echo_linked.clone());
    let caller = engine.compile_file(cloudware_test_artifacts::SVC_CALLER.as_ref())?;
    let caller = link(&caller, &echo, Arc::new(echo_linked.clone()))?;

    println!(
        "# Service call on one node ({:?} allocation)",
        engine.allocation()
    );
    println!();

    // 1. In-guest per-call overhead.
    for _ in 0..WARMUP {
        guest_elapsed(&caller, n).await?;
    }
    let mut per_call = Vec::with_capacity(rounds);
    let started = Instant::now();
    while per_call.len() < rounds && started.elapsed() < SECTION_BUDGET {
        let base = guest_elapsed(&caller, 0).await?;
        let full = guest_elapsed(&caller, n).await?;
        per_call.push(Duration::from_nanos(full.saturating_sub(base) / n as u64));
    }
    let (p50, p99) = percentiles(&mut per_call);
    let verdict = if p50 < TARGET_P50 { "met" } else { "NOT met" };
    println!("## Per-call overhead, measured in the guest");
    println!(
        "{} rounds of N = {n}: p50 {} µs, p99 {} µs (target p50 < {} µs: {verdict})",
        per_call.len(),
        micros(p50),
        micros(p99),
        micros(TARGET_P50),
    );
    println!();

    // 2. Host-side `LinkedComponent::call`.
    let order = order();
    let mut host = Vec::with_capacity(SAMPLES);
    let started = Instant::now();
    for i in 0..WARMUP + SAMPLES {
        if started.elapsed() >= SECTION_BUDGET {
            break;
        }
        let one = Instant::now();
        let results = echo_linked
            .call(
                ECHO,
                "echo",
                vec![order.clone()],
                CallOrigin::external(),
                Default::default(),
            )
            .await?;
        let took = one.elapsed();
        if !matches!(results.first(), Some(Val::Result(Ok(_)))) {
            return Err(format!("echo answered {results:?}").into());
        }
        if i >= WARMUP {
            host.push(took);
        }
    }

    // 3. Requests through `handle`.
    let request_zero = timed_requests(&caller, "/call?n=0").await?;
    let request_one = timed_requests(&caller, "/call?n=1").await?;

    println!("## Latency (host clock)");
    println!("| what | instances | samples | p50 µs | p99 µs |");
    println!("|---|---:|---:|---:|---:|");
    for (what, instances, mut samples) in [
        ("`LinkedComponent::call` of `echo`", 1, host),
        ("`handle` of `/call?n=0`", 1, request_zero),
        ("`handle` of `/call?n=1`", 2, request_one),
    ] {
        let (p50, p99) = percentiles(&mut samples);
        println!(
            "| {what} | {instances} | {} | {} | {} |",
            samples.len(),
            micros(p50),
            micros(p99)
        );
    }
    Ok(())
}

/// `compiled` with its import of [`ECHO`] linked to `target`.
fn link(
    compiled: &CompiledComponent,
    exporter: &CompiledComponent,
    target: Arc<dyn ServiceTarget>,
) -> Result<LinkedComponent, Failure> {
    Ok(compiled.link(&LinkPlan {
        grants: Default::default(),
        services: vec![ServiceImport {
            interface: ECHO.to_owned(),
            exporter: exporter.clone(),
            target,
        }],
    })?)
}

/// `GET path` through `handle`: the body, which must come with a 200.
async fn get(caller: &LinkedComponent, path: &str) -> Result<String, Failure> {
    let request =
        http::Request::get(format!("http://localhost{path}")).body(Empty::<Bytes>::new())?;
    let response = caller.handle(request, Default::default()).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    if status != 200 {
        return Err(format!("GET {path}: {status} {body}").into());
    }
    Ok(body)
}

/// The guest's elapsed nanoseconds for `/call?n=N`, whose calls must all
/// have succeeded.
async fn guest_elapsed(caller: &LinkedComponent, n: usize) -> Result<u64, Failure> {
    let body = get(caller, &format!("/call?n={n}")).await?;
    if !body.contains(&format!("\nok={n}\n")) {
        return Err(format!("/call?n={n} answered {body}").into());
    }
    body.lines()
        .find_map(|line| line.strip_prefix("elapsed_ns="))
        .and_then(|ns| ns.parse().ok())
        .ok_or_else(|| format!("/call?n={n} answered no elapsed_ns: {body}").into())
}

/// Latencies of `GET path` through `handle`, after a warm-up.
async fn timed_requests(caller: &LinkedComponent, path: &str) -> Result<Vec<Duration>, Failure> {
    let mut samples = Vec::with_capacity(SAMPLES);
    let started = Instant::now();
    for i in 0..WARMUP + SAMPLES {
        if started.elapsed() >= SECTION_BUDGET {
            break;
        }
        let one = Instant::now();
        get(caller, path).await?;
        if i >= WARMUP {
            samples.push(one.elapsed());
        }
    }
    Ok(samples)
}

/// The small order `svc-caller` sends, as a value.
fn order() -> Val {
    let item = |sku: &str, qty| {
        Val::Record(vec![
            ("sku".into(), Val::String(sku.into())),
            ("qty".into(), Val::U32(qty)),
        ])
    };
    Val::Record(vec![
        ("id".into(), Val::U64(42)),
        (
            "items".into(),
            Val::List(vec![item("apple", 3), item("pear", 1)]),
        ),
        (
            "note".into(),
            Val::Option(Some(Box::new(Val::String("fragile".into())))),
        ),
    ])
}

/// p50 and p99 (nearest rank) of `samples`; zero if there are none.
fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |p: f64| {
        let rank = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len().max(1));
        samples.get(rank - 1).copied().unwrap_or_default()
    };
    (at(0.50), at(0.99))
}

fn micros(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

/// A positive number from the environment, or `default`.
fn env_number(name: &str, default: usize) -> Result<usize, Failure> {
    match std::env::var(name) {
        Ok(text) => Ok(text
            .parse()
            .map_err(|_| format!("{name}={text} is not a number"))?),
        Err(_) => Ok(default),
    }
}
