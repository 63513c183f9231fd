//! End-to-end tests of a single-member node on real sled files and a real tokio runtime.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudware_raft::{ProposeError, RaftNode, Role, SledStorage, Storage};
use common::{Journal, config, init_tracing, open};

fn text(outcome: &[u8]) -> String {
    String::from_utf8(outcome.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_apply_in_order_exactly_once() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (node, journal) = open(config(dir.path())).await;
    let status = node.status();
    assert_eq!(status.role, Role::Leader);
    assert_eq!(status.leader, Some(1));
    assert_eq!(status.voters, vec![1]);

    let mut updates = node.subscribe();
    let start_applied = node.applied_index();
    let mut indices = Vec::new();
    for n in 1..=50 {
        let outcome = text(&node.propose(format!("cmd-{n}").into_bytes()).await.unwrap());
        let (index, len) = outcome.split_once(':').unwrap();
        assert_eq!(len, n.to_string(), "outcome belongs to this command");
        indices.push(index.parse::<u64>().unwrap());
    }
    assert!(indices.windows(2).all(|w| w[0] < w[1]));
    assert!(*indices.last().unwrap() <= node.applied_index());
    assert!(node.applied_index() >= start_applied + 50);
    assert!(updates.has_changed().unwrap());
    assert_eq!(*updates.borrow_and_update(), node.applied_index());

    let expected: Vec<_> = (1..=50).map(|n| format!("cmd-{n}")).collect();
    assert_eq!(journal.commands(), expected);
    assert_eq!(
        journal.apply_calls(),
        indices,
        "apply called once per command"
    );
    journal.assert_applied_once();

    // An empty command is a command too, not a leader no-op.
    assert!(node.propose(Vec::new()).await.is_ok());
    assert_eq!(journal.commands().last().map(String::as_str), Some(""));
    node.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
    assert_eq!(
        node.propose(b"late".to_vec()).await,
        Err(ProposeError::Stopped)
    );
}

#[tokio::test]
async fn restart_rebuilds_the_same_state() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (node, journal) = open(config(dir.path())).await;
    for n in 0..20 {
        node.propose(format!("a{n}").into_bytes()).await.unwrap();
    }
    let before = journal.entries();
    let applied = node.applied_index();
    node.shutdown().await.unwrap();

    let (node, reopened) = open(config(dir.path())).await;
    assert_eq!(reopened.entries(), before);
    reopened.assert_applied_once();
    assert!(
        node.applied_index() > applied,
        "the new leader's no-op is applied"
    );

    let outcome = text(&node.propose(b"after".to_vec()).await.unwrap());
    assert!(outcome.ends_with(":21"), "{outcome}");
    assert_eq!(reopened.entries().len(), 21);
    reopened.assert_applied_once();
    node.shutdown().await.unwrap();

    // Dropping the handle (without shutdown) also stops the node and frees the directory.
    let (node, third) = open(config(dir.path())).await;
    assert_eq!(third.entries().len(), 21);
    drop(node);
    let deadline = Instant::now() + Duration::from_secs(5);
    let reopened = loop {
        match RaftNode::open(config(dir.path()), Journal::default()).await {
            Ok(node) => break node,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(%e, "directory still locked");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("reopen after drop: {e}"),
        }
    };
    reopened.shutdown().await.unwrap();
}

#[tokio::test]
async fn restart_after_snapshot_and_compaction() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.snapshot_every = 10;
    cfg.log_tail = 2;
    let (node, journal) = open(cfg.clone()).await;
    for n in 0..35 {
        node.propose(format!("s{n}").into_bytes()).await.unwrap();
    }
    let before = journal.entries();
    let status = node.status();
    assert!(status.snapshot_index >= 30, "{status:?}");
    assert_eq!(status.first_index, status.snapshot_index - 2 + 1);
    node.shutdown().await.unwrap();

    // The log before the snapshot (minus the tail) is gone from disk.
    let snapshot_index = {
        let storage = SledStorage::open(dir.path()).unwrap();
        let snapshot_index = storage.snapshot_position().index;
        let truncated = storage.truncated().index;
        assert_eq!(truncated, snapshot_index - 2);
        for index in 1..=truncated {
            assert_eq!(storage.entry(index).unwrap(), None, "entry {index} kept");
        }
        assert!(storage.entry(truncated + 1).unwrap().is_some());
        assert!(storage.entries(1, truncated + 1, None, ctx()).is_err());
        snapshot_index
    };

    let (node, reopened) = open(cfg).await;
    assert_eq!(reopened.entries(), before);
    reopened.assert_applied_once();
    // Only entries after the snapshot were re-applied; the rest came from the snapshot.
    let calls = reopened.apply_calls();
    assert!(calls.iter().all(|i| *i > snapshot_index), "{calls:?}");
    assert_eq!(
        calls.len(),
        before.iter().filter(|(i, _)| *i > snapshot_index).count()
    );
    node.shutdown().await.unwrap();
}

fn ctx() -> raft::GetEntriesContext {
    raft::GetEntriesContext::empty(false)
}

#[tokio::test]
async fn compact_now_snapshots_at_the_applied_index() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.log_tail = 0;
    let (node, journal) = open(cfg.clone()).await;
    for n in 0..5 {
        node.propose(format!("k{n}").into_bytes()).await.unwrap();
    }
    let index = node.compact_now().await.unwrap();
    assert_eq!(index, node.applied_index());
    let status = node.status();
    assert_eq!(status.snapshot_index, index);
    assert_eq!(status.first_index, index + 1);
    let before = journal.entries();
    node.shutdown().await.unwrap();

    let (node, reopened) = open(cfg).await;
    assert_eq!(reopened.entries(), before);
    assert!(
        reopened.apply_calls().is_empty(),
        "state came from the snapshot"
    );
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_proposals_are_totally_ordered() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.snapshot_every = 64; // exercise compaction under load too
    cfg.log_tail = 8;
    let (node, journal) = open(cfg).await;
    let node = Arc::new(node);
    let started = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let node = node.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for n in 0..25 {
                    let command = format!("t{task}-{n}");
                    let outcome = node.propose(command.clone().into_bytes()).await.unwrap();
                    outcomes.push((command, text(&outcome)));
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    eprintln!(
        "200 proposals from 8 tasks in {elapsed:?} ({:.0}/s, fsync per batch)",
        200.0 / elapsed.as_secs_f64()
    );

    let entries = journal.entries();
    assert_eq!(entries.len(), 200);
    journal.assert_applied_once();
    let distinct: HashSet<_> = outcomes.iter().map(|(_, o)| o.clone()).collect();
    assert_eq!(distinct.len(), 200, "every proposal got its own outcome");
    // Each outcome names the index its command was applied at.
    for (command, outcome) in &outcomes {
        let index: u64 = outcome.split_once(':').unwrap().0.parse().unwrap();
        assert!(
            entries.contains(&(index, command.clone())),
            "{command} {outcome}"
        );
    }
    // Each task's commands keep the task's order.
    for task in 0..8 {
        let prefix = format!("t{task}-");
        let seen: Vec<_> = entries
            .iter()
            .filter(|(_, c)| c.starts_with(&prefix))
            .map(|(_, c)| c.clone())
            .collect();
        let expected: Vec<_> = (0..25).map(|n| format!("{prefix}{n}")).collect();
        assert_eq!(seen, expected);
    }
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_drops_and_reads() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // One uncommitted byte: within one batch, raft accepts the first proposal, drops the rest.
    cfg.max_uncommitted_bytes = 1;
    let (node, journal) = open(cfg).await;
    let node = Arc::new(node);

    // Hold the state machine inside `apply`: the proposal cannot get its outcome in time, but
    // the command is still applied once released.
    journal.gate.close();
    let timeout = Duration::from_millis(200);
    let timed_out = node.propose_with_timeout(b"block".to_vec(), timeout).await;
    assert_eq!(timed_out, Err(ProposeError::Timeout(timeout)));
    journal.gate.open();
    let mut applied = node.subscribe();
    tokio::time::timeout(Duration::from_secs(5), async {
        while !journal.commands().contains(&"block".to_string()) {
            applied.changed().await.unwrap();
        }
    })
    .await
    .expect("the timed-out command is applied anyway");

    // Read index is linearizable: it covers every acknowledged command.
    let outcome = text(&node.propose(b"acked".to_vec()).await.unwrap());
    let acked_index: u64 = outcome.split_once(':').unwrap().0.parse().unwrap();
    let read = node.read_index().await.unwrap();
    assert!(
        read >= acked_index,
        "read index {read} < acknowledged {acked_index}"
    );
    assert!(node.applied_index() >= read);

    let proposals: Vec<_> = (0..20)
        .map(|n| {
            let node = node.clone();
            tokio::spawn(async move { (n, node.propose(format!("d{n}").into_bytes()).await) })
        })
        .collect();
    let mut dropped = Vec::new();
    for p in proposals {
        let (n, result) = p.await.unwrap();
        match result {
            Ok(_) => {}
            Err(ProposeError::Dropped) => dropped.push(format!("d{n}")),
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(!dropped.is_empty(), "expected raft to drop some proposals");
    node.read_index().await.unwrap();
    let commands = journal.commands();
    for command in &dropped {
        assert!(!commands.contains(command), "dropped {command} was applied");
    }
    assert_eq!(commands.len(), 2 + 20 - dropped.len());
    journal.assert_applied_once();
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_non_member_is_not_leader() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = open(config(dir.path())).await;
    node.propose(b"x".to_vec()).await.unwrap();
    node.shutdown().await.unwrap();

    // Same directory, another id: the stored membership says node 1 is the only voter.
    let mut cfg = config(dir.path());
    cfg.node_id = 2;
    let (node, journal) = open(cfg).await;
    assert_eq!(
        journal.commands(),
        vec!["x".to_string()],
        "committed log replayed"
    );
    assert_eq!(node.status().role, Role::Follower);
    assert_eq!(
        node.propose(b"y".to_vec()).await,
        Err(ProposeError::NotLeader { leader: None })
    );
    assert_eq!(
        node.read_index().await,
        Err(ProposeError::NotLeader { leader: None })
    );
    node.shutdown().await.unwrap();
}
