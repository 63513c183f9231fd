//! Committed sends per second on a three-member loopback group (sled on this machine's
//! disk): `IN_FLIGHT` concurrent senders, each awaiting its acknowledgement (committed on a
//! majority), through the leader and through a follower (forwarded). Medians of `ROUNDS`
//! rounds, each on a fresh queue of the same group.
//!
//! Run: `nice cargo bench -p cloudware-bus-replicated --bench replicated`. Message counts
//! come from `BUS_REPL_BENCH_MESSAGES` (default 2 000 per round at 1 in flight, ×8 at 64).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use cloudware_bus::{NewMessage, QueueId};
use common::Cluster;

const ROUNDS: usize = 3;
const PAYLOAD: usize = 256;

async fn round(
    bus: &cloudware_bus_replicated::ReplicatedBus,
    queue: QueueId,
    messages: usize,
    in_flight: usize,
) -> f64 {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for sender in 0..in_flight {
        let bus = bus.clone();
        let queue = queue.clone();
        let count = messages / in_flight + usize::from(sender < messages % in_flight);
        tasks.spawn(async move {
            for _ in 0..count {
                bus.send(&queue, NewMessage::new(vec![7u8; PAYLOAD]))
                    .await
                    .expect("send is acknowledged");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("sender finished");
    }
    messages as f64 / started.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let base: usize = std::env::var("BUS_REPL_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let cluster = Cluster::start(10_000).await;
        let leader = cluster.leader().await;
        let follower = cluster.follower().await;
        println!("3-member loopback group, {PAYLOAD}-byte payloads, medians of {ROUNDS} rounds");
        for (via, id) in [("leader", leader), ("follower", follower)] {
            for in_flight in [1usize, 64] {
                let messages = if in_flight == 1 { base } else { base * 8 };
                let mut rates = Vec::new();
                for r in 0..ROUNDS {
                    let queue = QueueId::queue("bench", format!("{via}-{in_flight}-{r}"));
                    rates.push(round(cluster.bus(id), queue, messages, in_flight).await);
                }
                println!(
                    "send via {via:<8} {in_flight:>3} in flight: {:>8.0} committed sends/s (rounds: {})",
                    median(rates.clone()),
                    rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ")
                );
            }
        }
        cluster.stop().await;
    });
}
