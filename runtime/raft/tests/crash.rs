//! Durability under `kill -9`: a child process (this test binary, re-executed) proposes commands
//! and prints each acknowledged one; the parent SIGKILLs it mid-stream, reopens the directory
//! and checks that every acknowledged command is there, at the acknowledged index, once.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{config, open};

/// Set (to the data directory) in the child's environment.
const CHILD_ENV: &str = "CLOUDWARE_RAFT_CRASH_CHILD_DIR";

/// The child side. A no-op unless the parent test started this binary with [`CHILD_ENV`].
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut cfg = config(std::path::Path::new(&dir));
        cfg.snapshot_every = 150; // a few snapshots, but the kill lands well past the last one
        cfg.log_tail = 5;
        let (node, _journal) = open(cfg).await;
        let node = std::sync::Arc::new(node);
        println!("READY");
        let workers: Vec<_> = (0..4)
            .map(|worker| {
                let node = node.clone();
                tokio::spawn(async move {
                    for n in 0.. {
                        let command = format!("w{worker}-{n}");
                        let outcome = node.propose(command.clone().into_bytes()).await.unwrap();
                        let outcome = String::from_utf8(outcome).unwrap();
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ACK {command} {outcome}").unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.unwrap();
        }
    });
}

#[test]
fn acknowledged_entries_survive_kill_9() {
    if std::env::var(CHILD_ENV).is_ok() || std::env::var(IDLE_CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    // Let it run until 400 acknowledgements or 2 s after the first one, then kill -9.
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stop_at = None;
    while acked.len() < 400 && stop_at.is_none_or(|t| Instant::now() < t) {
        assert!(
            Instant::now() < deadline,
            "child produced no acknowledgements"
        );
        match lines.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                if let Some(ack) = line.strip_prefix("ACK ") {
                    acked.push(ack.to_string());
                    stop_at.get_or_insert(Instant::now() + Duration::from_secs(2));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("child exited early"),
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    // Lines written before the kill are still in the pipe: they were acknowledged too.
    acked.extend(
        lines
            .try_iter()
            .filter_map(|l| l.strip_prefix("ACK ").map(str::to_string)),
    );
    assert!(!acked.is_empty());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (node, journal) = open(config(dir.path())).await;
        let entries = journal.entries();
        journal.assert_applied_once();
        for ack in &acked {
            let (command, outcome) = ack.split_once(' ').unwrap();
            let index: u64 = outcome.split_once(':').unwrap().0.parse().unwrap();
            assert!(
                entries.contains(&(index, command.to_string())),
                "acknowledged {command} at {index} is missing after the crash"
            );
        }
        eprintln!(
            "killed after {} acknowledgements; {} commands recovered",
            acked.len(),
            entries.len()
        );
        node.shutdown().await.unwrap();
    });
}

/// Set (to the data directory) in the environment of the idle child.
const IDLE_CHILD_ENV: &str = "CLOUDWARE_RAFT_IDLE_CHILD_DIR";
/// How long the idle child waits after its last acknowledged write before it says `IDLE`:
/// fifty of the test config's 20 ms ticks. (The child turns sled's background flush off:
/// without the driver's flush of the commit index, nothing would write it however long the
/// wait.)
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// The idle child: proposes a few commands one after the other, prints each acknowledgement,
/// then stays idle (no further `Ready` that would flush) and says `IDLE`.
#[test]
fn idle_child() {
    let Ok(dir) = std::env::var(IDLE_CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let mut cfg = config(std::path::Path::new(&dir));
        cfg.background_flush = None;
        let (node, _journal) = open(cfg).await;
        for n in 0..20 {
            let outcome = node.propose(format!("c{n}").into_bytes()).await.unwrap();
            let index = String::from_utf8(outcome).unwrap();
            println!("ACK {index}");
        }
        tokio::time::sleep(IDLE_WAIT).await;
        println!("IDLE");
        std::future::pending::<()>().await;
    });
}

/// A host replays its log up to its durable commit index when it restarts, so the commit index
/// must not stay unflushed while the node is idle: after `kill -9` of an idle node, the stored
/// commit index covers every acknowledged write.
#[test]
fn the_commit_index_is_durable_soon_after_an_acknowledged_write() {
    if std::env::var(CHILD_ENV).is_ok() || std::env::var(IDLE_CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "idle_child", "--nocapture", "--test-threads=1"])
        .env(IDLE_CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut last_acked = 0u64;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(outcome) = line.strip_prefix("ACK ") {
            last_acked = outcome.split_once(':').unwrap().0.parse().unwrap();
        }
        if line == "IDLE" {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(last_acked > 0, "the child acknowledged nothing");

    let storage = cloudware_raft::SledStorage::open(dir.path()).unwrap();
    let commit = storage.hard_state().commit;
    assert!(
        commit >= last_acked,
        "the stored commit index {commit} is behind the last acknowledged write {last_acked}"
    );
}
