//! cloudware-bus next to NATS JetStream (file storage), on this machine:
//!
//! 1. durable queue throughput: `SENDERS` concurrent senders push `MESSAGES` messages of
//!    `PAYLOAD` bytes in total, each awaiting its acknowledgement (ours: fsynced), messages/s;
//!    1b. the same with `WIDE_SENDERS` in flight (group commit gathers more per fsync);
//! 2. pub/sub fan-out: `FANOUT` messages published (same concurrency) to a topic with
//!    `SUBSCRIBERS` subscriptions; time until every subscriber received and acknowledged all.
//!
//! Medians of `ROUNDS` rounds, each on a fresh store. NATS runs as a child process
//! (`nats-server -js`, killed at the end); without the binary its side is skipped.
//! Parameters come from `BUS_BENCH_<NAME>` environment variables.
//!
//! Run: `nice cargo bench -p cloudware-bus --bench bus`.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use cloudware_bus::{Bus, BusConfig, Delivery, NewMessage, QueueId, Subscription, handler_fn};
use futures::StreamExt;

/// Bound on any one measured phase.
const PHASE_LIMIT: Duration = Duration::from_secs(300);
const NATS_BIN: &str = "/usr/sbin/nats-server";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Params {
    messages: usize,
    senders: usize,
    /// In-flight count of the extra "wide" queue measurement.
    wide_senders: usize,
    payload: usize,
    fanout: usize,
    subscribers: usize,
    rounds: usize,
    consumer_concurrency: usize,
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(format!("BUS_BENCH_{name}"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Params {
    fn from_env() -> Self {
        Self {
            messages: env("MESSAGES", 20_000),
            senders: env("SENDERS", 64).max(1),
            wide_senders: env("WIDE_SENDERS", 512).max(1),
            payload: env("PAYLOAD", 128),
            fanout: env("FANOUT", 5_000),
            subscribers: env("SUBSCRIBERS", 10).max(1),
            rounds: env("ROUNDS", 3).max(1),
            consumer_concurrency: env("CONSUMER_CONCURRENCY", 64).max(1),
        }
    }

    /// How many of `total` messages sender `s` of `senders` sends.
    fn share(total: usize, senders: usize, s: usize) -> usize {
        total / senders + usize::from(s < total % senders)
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing special. Only run
    // the (long) measurement under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("bus benchmark: run with `cargo bench -p cloudware-bus --bench bus`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(Params::from_env()));
}

async fn run(p: Params) {
    println!(
        "cloudware-bus vs NATS JetStream — {} rounds, payload {} B, {} concurrent senders\n",
        p.rounds, p.payload, p.senders
    );
    let phases = std::env::var("BUS_BENCH_PHASES").unwrap_or_else(|_| "queue,wide,fanout".into());
    let nats = match NatsServer::start() {
        Ok(n) => Some(n),
        Err(e) => {
            println!("note: NATS side skipped ({e})\n");
            None
        }
    };
    let scratch = tempfile::tempdir().expect("tempdir");

    let mut widths = Vec::new();
    if phases.contains("queue") {
        widths.push(p.senders);
    }
    if phases.contains("wide") && p.wide_senders != p.senders {
        widths.push(p.wide_senders);
    }
    for (i, senders) in widths.into_iter().enumerate() {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..p.rounds {
            let dir = scratch.path().join(format!("q{senders}-{round}"));
            let r = bus_queue(&p, senders, &dir).await;
            let _ = std::fs::remove_dir_all(&dir);
            println!("  round {round}: bus   send {r:>9.0} msg/s");
            ours.push(r);
            if let Some(n) = &nats {
                match nats_queue(&p, senders, n, round * 10 + i).await {
                    Ok(r) => {
                        println!("  round {round}: NATS  send {r:>9.0} msg/s");
                        theirs.push(r);
                    }
                    Err(e) => println!("  round {round}: NATS failed: {e}"),
                }
            }
        }
        report(
            &format!(
                "({}) durable queue: {} messages, {senders} in flight",
                if i == 0 { "1" } else { "1b" },
                p.messages
            ),
            "msg/s",
            &mut ours,
            &mut theirs,
        );
    }

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..p.rounds * usize::from(phases.contains("fanout")) {
        let dir = scratch.path().join(format!("f{round}"));
        let r = bus_fanout(&p, &dir).await;
        let _ = std::fs::remove_dir_all(&dir);
        println!("  round {round}: bus   fan-out {:>9.0} deliveries/s", r);
        ours.push(r);
        if let Some(n) = &nats {
            match nats_fanout(&p, n, round).await {
                Ok(r) => {
                    println!("  round {round}: NATS  fan-out {:>9.0} deliveries/s", r);
                    theirs.push(r);
                }
                Err(e) => println!("  round {round}: NATS failed: {e}"),
            }
        }
    }
    report(
        &format!(
            "(2) fan-out: {} messages x {} subscribers, until all acked",
            p.fanout, p.subscribers
        ),
        "deliveries/s",
        &mut ours,
        &mut theirs,
    );
    println!(
        "durability: cloudware-bus acknowledges a send only after fsync (group commit). \
         nats-server 2.9 acknowledges a JetStream publish once written to the OS page cache: \
         its file store fsyncs on a background timer (defaultSyncInterval, 60 s in 2.9) and has \
         no option to fsync every write (`sync_interval: always` arrived in 2.10)."
    );
    drop(nats);
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn report(title: &str, unit: &str, ours: &mut [f64], theirs: &mut [f64]) {
    if ours.is_empty() {
        return;
    }
    let m = median(ours);
    println!("{title}");
    println!("  cloudware-bus  median {m:>10.0} {unit}");
    if theirs.is_empty() {
        println!("  NATS JetStream skipped\n");
        return;
    }
    let n = median(theirs);
    println!("  NATS JetStream median {n:>10.0} {unit}");
    println!("  ratio ours/NATS {:.2}x (higher is better)\n", m / n);
}

fn bench_bus(dir: &Path) -> Bus {
    Bus::open(dir, BusConfig::default()).expect("open bus")
}

/// Durable sends; returns messages/s.
async fn bus_queue(p: &Params, senders: usize, dir: &Path) -> f64 {
    let bus = bench_bus(dir);
    let queue = QueueId::queue("bench", "q");
    let payload = vec![7u8; p.payload];
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..senders {
        let (bus, queue, payload, n) = (
            bus.clone(),
            queue.clone(),
            payload.clone(),
            Params::share(p.messages, senders, s),
        );
        tasks.spawn(async move {
            for _ in 0..n {
                bus.send(&queue, NewMessage::new(payload.clone()))
                    .await
                    .expect("send");
            }
        });
    }
    tokio::time::timeout(PHASE_LIMIT, async {
        while let Some(r) = tasks.join_next().await {
            r.expect("sender");
        }
    })
    .await
    .expect("bus sends finished in time");
    let secs = start.elapsed().as_secs_f64();
    let c = bus.commit_stats();
    assert_eq!(bus.stats(&queue).depth, p.messages as u64);
    println!(
        "           ({} flushes, {:.1} messages per fsync)",
        c.flushes,
        p.messages as f64 / c.flushes.max(1) as f64
    );
    p.messages as f64 / secs
}

/// Fan-out through subscriptions; returns deliveries/s (messages x subscribers / time).
async fn bus_fanout(p: &Params, dir: &Path) -> f64 {
    let bus = bench_bus(dir);
    let subs: Vec<Subscription> = (0..p.subscribers)
        .map(|i| Subscription {
            tenant: "bench".into(),
            topic: "fan".into(),
            subscriber: format!("s{i}"),
            filter: Default::default(),
        })
        .collect();
    bus.set_subscriptions(subs.clone());
    let acked = Arc::new(AtomicU64::new(0));
    let consumers: Vec<_> = subs
        .iter()
        .map(|s| {
            let acked = acked.clone();
            let handler = handler_fn(move |_d: Delivery| {
                acked.fetch_add(1, Ordering::Relaxed);
                async { Ok(()) }
            });
            bus.consume(s.queue_id(), handler, p.consumer_concurrency)
        })
        .collect();
    let payload = vec![7u8; p.payload];
    let target = (p.fanout * p.subscribers) as u64;
    let mut published = Duration::ZERO;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..p.senders {
        let (bus, payload, n) = (
            bus.clone(),
            payload.clone(),
            Params::share(p.fanout, p.senders, s),
        );
        tasks.spawn(async move {
            for _ in 0..n {
                bus.publish("bench", "fan", NewMessage::new(payload.clone()))
                    .await
                    .expect("publish");
            }
        });
    }
    tokio::time::timeout(PHASE_LIMIT, async {
        while let Some(r) = tasks.join_next().await {
            r.expect("publisher");
        }
        published = start.elapsed();
        while acked.load(Ordering::Relaxed) < target {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("bus fan-out finished in time");
    let secs = start.elapsed().as_secs_f64();
    let c = bus.commit_stats();
    println!(
        "           (published in {:.2} s, all acked after {secs:.2} s; {} flushes)",
        published.as_secs_f64(),
        c.flushes
    );
    for c in consumers {
        c.stop().await;
    }
    target as f64 / secs
}

/// A `nats-server -js` child process on a free loopback port; killed on drop.
struct NatsServer {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    fn start() -> Result<Self, BoxError> {
        if std::env::var("BUS_BENCH_NATS").is_ok_and(|v| v == "0") {
            return Err("BUS_BENCH_NATS=0".into());
        }
        if !Path::new(NATS_BIN).exists() {
            return Err(format!("{NATS_BIN} not found").into());
        }
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(NATS_BIN)
            .args(["-js", "-sd"])
            .arg(dir.path())
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let server = Self {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("nats-server did not start listening within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        println!(
            "NATS: {} (pid {}), store in a temp dir\n",
            server.url,
            server.child.id()
        );
        Ok(server)
    }

    async fn jetstream(&self) -> Result<jetstream::Context, BoxError> {
        let client = async_nats::connect(&self.url).await?;
        Ok(jetstream::new(client))
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// JetStream publishes awaiting their acks; returns messages/s.
async fn nats_queue(
    p: &Params,
    senders: usize,
    nats: &NatsServer,
    round: usize,
) -> Result<f64, BoxError> {
    let js = nats.jetstream().await?;
    let subject = format!("q.{round}");
    js.create_stream(stream::Config {
        name: format!("Q{round}"),
        subjects: vec![subject.clone()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::WorkQueue,
        ..Default::default()
    })
    .await?;
    let payload = bytes_of(p.payload);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..senders {
        let (js, subject, payload, n) = (
            js.clone(),
            subject.clone(),
            payload.clone(),
            Params::share(p.messages, senders, s),
        );
        tasks.spawn(async move {
            for _ in 0..n {
                js.publish(subject.clone(), payload.clone()).await?.await?;
            }
            Ok::<_, BoxError>(())
        });
    }
    tokio::time::timeout(PHASE_LIMIT, async {
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        Ok::<_, BoxError>(())
    })
    .await??;
    let secs = start.elapsed().as_secs_f64();
    js.delete_stream(format!("Q{round}")).await?;
    Ok(p.messages as f64 / secs)
}

fn bytes_of(n: usize) -> bytes::Bytes {
    bytes::Bytes::from(vec![7u8; n])
}

/// A stream with one durable pull consumer per subscriber, each acking every message;
/// returns deliveries/s until every consumer acked all.
async fn nats_fanout(p: &Params, nats: &NatsServer, round: usize) -> Result<f64, BoxError> {
    let js = nats.jetstream().await?;
    let subject = format!("f.{round}");
    let stream = js
        .create_stream(stream::Config {
            name: format!("F{round}"),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Interest,
            ..Default::default()
        })
        .await?;
    let mut receivers = tokio::task::JoinSet::new();
    for i in 0..p.subscribers {
        let consumer = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(format!("c{i}")),
                ack_policy: consumer::AckPolicy::Explicit,
                ..Default::default()
            })
            .await?;
        let want = p.fanout;
        receivers.spawn(async move {
            let mut messages = consumer.messages().await?;
            let mut got = 0;
            while got < want {
                match messages.next().await {
                    Some(m) => {
                        m?.ack().await?;
                        got += 1;
                    }
                    None => return Err::<(), BoxError>("consumer stream ended".into()),
                }
            }
            Ok(())
        });
    }
    let payload = bytes_of(p.payload);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..p.senders {
        let (js, subject, payload, n) = (
            js.clone(),
            subject.clone(),
            payload.clone(),
            Params::share(p.fanout, p.senders, s),
        );
        tasks.spawn(async move {
            for _ in 0..n {
                js.publish(subject.clone(), payload.clone()).await?.await?;
            }
            Ok::<_, BoxError>(())
        });
    }
    tokio::time::timeout(PHASE_LIMIT, async {
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        while let Some(r) = receivers.join_next().await {
            r??;
        }
        Ok::<_, BoxError>(())
    })
    .await??;
    let secs = start.elapsed().as_secs_f64();
    js.delete_stream(format!("F{round}")).await?;
    Ok((p.fanout * p.subscribers) as f64 / secs)
}
