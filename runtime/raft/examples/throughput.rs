//! Measures proposals per second on one node with fsync, sequentially and with concurrent
//! proposers (which share fsyncs: one per `Ready` batch).
//!
//! `cargo run --release -p cloudware-raft --example throughput [-- DIR]` (default: a temp dir).

use std::sync::Arc;
use std::time::Instant;

use cloudware_raft::{RaftConfig, RaftNode, StateMachine};

/// Counts commands; snapshots are the count.
#[derive(Default)]
struct Counter(u64);

impl StateMachine for Counter {
    fn apply(&mut self, _index: u64, _command: &[u8]) -> Vec<u8> {
        self.0 += 1;
        self.0.to_be_bytes().to_vec()
    }

    fn snapshot(&self) -> Vec<u8> {
        self.0.to_be_bytes().to_vec()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let bytes: [u8; 8] = snapshot.try_into().map_err(|_| "bad counter snapshot")?;
        self.0 = u64::from_be_bytes(bytes);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| temp.path().to_path_buf(), Into::into);
    let node = Arc::new(RaftNode::open(RaftConfig::new(&dir, 1), Counter::default()).await?);
    let command = vec![0u8; 128];

    let sequential = 500;
    let started = Instant::now();
    for _ in 0..sequential {
        node.propose(command.clone()).await?;
    }
    let elapsed = started.elapsed();
    println!(
        "sequential: {sequential} proposals in {elapsed:?} = {:.0}/s ({:?} each)",
        f64::from(sequential) / elapsed.as_secs_f64(),
        elapsed / sequential
    );

    for tasks in [8u32, 64] {
        let per_task = 200;
        let started = Instant::now();
        let workers: Vec<_> = (0..tasks)
            .map(|_| {
                let node = node.clone();
                let command = command.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        node.propose(command.clone()).await?;
                    }
                    Ok::<_, cloudware_raft::ProposeError>(())
                })
            })
            .collect();
        for worker in workers {
            worker.await??;
        }
        let elapsed = started.elapsed();
        let total = tasks * per_task;
        println!(
            "{tasks} concurrent proposers: {total} proposals in {elapsed:?} = {:.0}/s",
            f64::from(total) / elapsed.as_secs_f64()
        );
    }
    let status = node.status();
    println!(
        "applied {} (snapshot at {}, log from {})",
        status.applied_index, status.snapshot_index, status.first_index
    );
    node.shutdown().await?;
    Ok(())
}
