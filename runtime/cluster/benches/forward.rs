//! Forwarding overhead: requests/s of the hello component served directly by the gateway of
//! the host that runs it, and through another host's gateway that forwards every request
//! to it over the cluster port (pooled mutual-TLS HTTP/1.1). Two real `ClusterHost`s in
//! this process on 127.0.0.1; load from `wrk` (must be on PATH).
//!
//! Run: `cargo bench -p cloudware-cluster --bench forward`
//! (`BENCH_DURATION=5s`, `BENCH_CONNECTIONS=32`, `BENCH_ROUNDS=3`). Prints the median of
//! the rounds for each path.

use cloudware_cluster::{ClusterHost, ClusterOptions, JoinSpec};
use cloudware_engine::{Engine, EngineConfig, Limits, LinkedComponent};
use cloudware_gateway::{Gateway, GatewayLimits, RemoteTarget, Router, Target};
use cloudware_node::PackageStore;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

/// Serves hello here, or knows it runs on host 2.
enum Bench {
    Local(LinkedComponent),
    OnHost2,
}

impl Router for Bench {
    fn route(&self, _host: &str, _path: &str) -> Option<Target> {
        match self {
            Bench::Local(component) => Some(Target {
                component: component.clone(),
                recorder: None,
            }),
            Bench::OnHost2 => None,
        }
    }

    fn remote(&self, _host: &str, _path: &str) -> Option<RemoteTarget> {
        matches!(self, Bench::OnHost2).then(|| RemoteTarget {
            tenant: "acme".into(),
            app: "hello".into(),
            hosts: vec![(2, 1)],
        })
    }
}

fn options(dir: &Path, id: u64, join: Option<JoinSpec>) -> ClusterOptions {
    ClusterOptions {
        data_dir: dir.join(format!("host-{id}")),
        listen: "127.0.0.1:0".parse().expect("addr"),
        advertise: None,
        api: "127.0.0.1:9".parse().expect("addr"),
        gateway: "127.0.0.1:9".parse().expect("addr"),
        name: format!("host-{id}"),
        labels: Default::default(),
        join,
        snapshot_every: None,
        shared_key: None,
    }
}

async fn gateway(router: Arc<dyn Router>, host: Option<&ClusterHost>) -> SocketAddr {
    let limits = GatewayLimits::from_engine(&Limits::default());
    let mut gateway = Gateway::bind("127.0.0.1:0".parse().expect("addr"), router, limits)
        .await
        .expect("gateway");
    if let Some(host) = host {
        gateway = gateway.with_forwarder(Arc::new(host.forwarder()));
    }
    let addr = gateway.local_addr().expect("addr");
    tokio::spawn(gateway.serve(std::future::pending()));
    addr
}

/// One wrk run: requests/s and non-2xx answers.
fn wrk(addr: SocketAddr, duration: &str, connections: &str) -> (f64, u64) {
    let output = Command::new("wrk")
        .args(["-t", "1", "-c", connections, "-d", duration])
        .args(["-H", "Host: hello.test"])
        .arg(format!("http://{addr}/"))
        .output()
        .expect("wrk (is it installed?)");
    let text = String::from_utf8_lossy(&output.stdout);
    let number = |prefix: &str| -> Option<f64> {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.trim().parse().ok())
    };
    let rps = number("Requests/sec:").unwrap_or_else(|| panic!("wrk said:\n{text}"));
    let bad = number("Non-2xx or 3xx responses:").unwrap_or(0.0) as u64;
    (rps, bad)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let duration = std::env::var("BENCH_DURATION").unwrap_or_else(|_| "5s".into());
    let connections = std::env::var("BENCH_CONNECTIONS").unwrap_or_else(|_| "32".into());
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let engine = Engine::new(
        &EngineConfig {
            cache_dir: None,
            ..EngineConfig::default()
        },
        &Limits::default(),
    )
    .expect("engine");
    let hello = engine
        .load_file(Path::new(cloudware_test_artifacts::HELLO))
        .expect("hello");
    let (_hosts, direct, forwarded) = runtime.block_on(async {
        let store = |id: u64| {
            PackageStore::open(dir.path().join(format!("host-{id}/packages"))).expect("store")
        };
        let first = ClusterHost::start(options(dir.path(), 1, None), store(1))
            .await
            .expect("host 1");
        let join = JoinSpec {
            peer: first.cluster_addr(),
            token: first.founded_with().expect("founded").clone(),
        };
        let second = ClusterHost::start(options(dir.path(), 2, Some(join)), store(2))
            .await
            .expect("host 2");
        let local: Arc<dyn Router> = Arc::new(Bench::Local(hello));
        second.serve_forwarded(
            local.clone(),
            GatewayLimits::from_engine(&Limits::default()),
        );
        let direct = gateway(local, None).await;
        let forwarded = gateway(Arc::new(Bench::OnHost2), Some(&first)).await;
        (vec![first, second], direct, forwarded)
    });
    let paths = [("direct", direct), ("forwarded", forwarded)];
    let mut results = vec![Vec::new(); paths.len()];
    for round in 1..=rounds {
        for ((name, addr), results) in paths.iter().zip(&mut results) {
            wrk(*addr, "1s", &connections);
            let (rps, bad) = wrk(*addr, &duration, &connections);
            println!("round {round}/{rounds}: {name:<10} {rps:>9.0} req/s  non-2xx {bad}");
            assert_eq!(bad, 0, "{name}: non-2xx answers");
            results.push(rps);
        }
    }
    let direct = median(results[0].clone());
    let forwarded = median(results[1].clone());
    println!(
        "median of {rounds}: direct {direct:.0} req/s, forwarded {forwarded:.0} req/s ({:.2}x)",
        forwarded / direct
    );
}
