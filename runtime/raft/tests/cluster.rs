//! A three-voter group in one process over real TCP and sled: election, replication, failover
//! to a new leader, and catch-up of a restarted member on a new port. Every wait is bounded.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudware_raft::{
    Membership, MembershipChange, PeerServer, ProposeError, RaftNode, Role, TcpTransport,
    TcpTransportConfig, serve_peers,
};
use common::{Entries, Journal, init_tracing};
use tokio::net::TcpListener;

const IDS: [u64; 3] = [1, 2, 3];
/// Bound for the first election and for catch-up.
const SETTLE: Duration = Duration::from_secs(10);
/// Bound for electing a new leader after the old one stops.
const FAILOVER: Duration = Duration::from_secs(5);

/// One running member: its node, state, transport (a clone; the node owns another) and server.
struct Member {
    node: Arc<RaftNode>,
    journal: Journal,
    transport: TcpTransport,
    server: PeerServer,
}

impl Member {
    async fn stop(self) {
        self.node.shutdown().await.unwrap();
        self.server.stop();
    }
}

/// How a member's directory is initialized when empty.
#[derive(Clone, Copy)]
enum Bootstrap {
    /// All of [`IDS`] as the initial voters.
    Group,
    /// A group of one (this member).
    Alone,
    /// No membership: wait to be added.
    Join,
}

/// Starts member `id` on `dir` with a fresh listener, dialing `peers`.
async fn start(
    id: u64,
    dir: &Path,
    listener: TcpListener,
    peers: &BTreeMap<u64, SocketAddr>,
) -> Member {
    start_as(id, dir, listener, peers, Bootstrap::Group).await
}

async fn start_as(
    id: u64,
    dir: &Path,
    listener: TcpListener,
    peers: &BTreeMap<u64, SocketAddr>,
    bootstrap: Bootstrap,
) -> Member {
    let mut config = common::config(dir);
    config.node_id = id;
    match bootstrap {
        Bootstrap::Group => config.initial_voters = IDS.to_vec(),
        Bootstrap::Alone => {}
        Bootstrap::Join => config.join = true,
    }
    // Slower than the single-node tests' 20 ms: elections must not flap on a loaded machine.
    config.tick = Duration::from_millis(50);
    // A short tail, so compaction can force a lagging member to catch up from a snapshot.
    config.log_tail = 5;
    let transport = TcpTransport::new(id, TcpTransportConfig::default());
    for (&peer, &addr) in peers {
        if peer != id {
            transport.set_peer(peer, addr);
        }
    }
    let journal = Journal::default();
    let node = RaftNode::open_with_transport(config, journal.clone(), transport.clone())
        .await
        .expect("member opens");
    let node = Arc::new(node);
    transport.report_unreachable_to(&node);
    let server = serve_peers(listener, Arc::clone(&node)).unwrap();
    Member {
        node,
        journal,
        transport,
        server,
    }
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// Polls `check` every 20 ms until it yields a value; panics after `timeout`.
async fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The id of a leader every given member agrees on, if there is one.
fn agreed_leader(members: &BTreeMap<u64, Member>) -> Option<u64> {
    let (&leader, _) = members
        .iter()
        .find(|(_, m)| m.node.status().role == Role::Leader)?;
    members
        .values()
        .all(|m| m.node.status().leader == Some(leader))
        .then_some(leader)
}

/// Runs `request` on the current leader; retries (bounded) while leadership moves or raft
/// drops the request (not applied: safe to retry).
async fn through_leader<T, F>(
    members: &BTreeMap<u64, Member>,
    what: &str,
    request: impl Fn(Arc<RaftNode>) -> F,
) -> T
where
    F: std::future::Future<Output = Result<T, ProposeError>>,
{
    let deadline = Instant::now() + SETTLE;
    loop {
        let leader = members
            .values()
            .find(|m| m.node.status().role == Role::Leader);
        if let Some(leader) = leader {
            match request(Arc::clone(&leader.node)).await {
                Ok(value) => return value,
                Err(ProposeError::NotLeader { .. } | ProposeError::Dropped) => {}
                Err(error) => panic!("{what}: {error}"),
            }
        }
        assert!(Instant::now() < deadline, "no leader accepted {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Proposes `command` through the current leader.
async fn propose(members: &BTreeMap<u64, Member>, command: String) {
    through_leader(members, &command, |node| {
        let command = command.clone().into_bytes();
        async move { node.propose(command).await }
    })
    .await;
}

/// Applies a membership change through the current leader.
async fn change(members: &BTreeMap<u64, Member>, change: MembershipChange) -> Membership {
    through_leader(members, &format!("{change:?}"), |node| async move {
        node.change_membership(change).await
    })
    .await
}

/// Waits until every member applied the same entries, including all of `commands`.
async fn wait_converged(members: &BTreeMap<u64, Member>, commands: &[String]) -> Entries {
    wait_for("all members apply the same entries", SETTLE, || {
        let mut states = members.values().map(|m| m.journal.entries());
        let first = states.next()?;
        let applied: Vec<_> = first.iter().map(|(_, c)| c.clone()).collect();
        let complete = commands.iter().all(|c| applied.contains(c));
        (complete && states.all(|s| s == first)).then_some(first)
    })
    .await
}

/// A data directory and a bound peer listener for each of [`IDS`], and the
/// listeners' addresses.
async fn bind_members() -> (
    BTreeMap<u64, tempfile::TempDir>,
    BTreeMap<u64, TcpListener>,
    BTreeMap<u64, std::net::SocketAddr>,
) {
    let dirs = IDS
        .iter()
        .map(|&id| (id, tempfile::tempdir().unwrap()))
        .collect();
    let mut listeners = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    for id in IDS {
        let listener = listener().await;
        addrs.insert(id, listener.local_addr().unwrap());
        listeners.insert(id, listener);
    }
    (dirs, listeners, addrs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_elect_replicate_fail_over_and_catch_up() {
    init_tracing();
    let (dirs, listeners, mut addrs) = bind_members().await;
    let mut members = BTreeMap::new();
    for (id, listener) in listeners {
        members.insert(id, start(id, dirs[&id].path(), listener, &addrs).await);
    }
    for member in members.values() {
        assert_eq!(member.node.status().voters, IDS.to_vec());
    }

    // A leader is elected and known to all.
    let started = Instant::now();
    let leader = wait_for("a leader is elected", SETTLE, || agreed_leader(&members)).await;
    tracing::info!(leader, elapsed = ?started.elapsed(), "leader elected");

    // 100 proposals through the leader apply identically on all three.
    let mut commands: Vec<String> = (1..=100).map(|n| format!("cmd-{n}")).collect();
    for command in &commands {
        propose(&members, command.clone()).await;
    }
    let entries = wait_converged(&members, &commands).await;
    let applied: Vec<_> = entries.iter().map(|(_, c)| c.clone()).collect();
    assert_eq!(applied, commands, "applied once each, in order");
    for member in members.values() {
        member.journal.assert_applied_once();
    }

    // A linearizable read through the leader's read-index round with its peers.
    let read = members[&leader].node.read_index().await.unwrap();
    assert!(read >= entries.last().unwrap().0);

    // The leader stops: the other two elect a new one and accept proposals.
    let old = members.remove(&leader).unwrap();
    let old_last = old.node.status().last_index;
    old.stop().await;
    let stopped = Instant::now();
    let new_leader = wait_for("a new leader is elected", FAILOVER, || {
        agreed_leader(&members)
    })
    .await;
    assert_ne!(new_leader, leader);
    tracing::info!(new_leader, elapsed = ?stopped.elapsed(), "failed over");
    for n in 101..=110 {
        let command = format!("cmd-{n}");
        propose(&members, command.clone()).await;
        commands.push(command);
    }
    wait_converged(&members, &commands).await;
    // Compact both logs past everything the stopped member has, so it must catch up from a
    // snapshot sent over TCP.
    for member in members.values() {
        let snapshot = member.node.compact_now().await.unwrap();
        assert!(snapshot > old_last);
        wait_for(
            "the log is compacted past the stopped member",
            SETTLE,
            || (member.node.status().first_index > old_last + 1).then_some(()),
        )
        .await;
    }
    let compacted = members[&new_leader].node.status().snapshot_index;
    let dropped = members[&new_leader].transport.dropped();
    tracing::info!(
        dropped,
        "messages the new leader dropped for the stopped member"
    );

    // The old leader restarts on its directory with a new port and catches up.
    let listener = listener().await;
    let new_addr = listener.local_addr().unwrap();
    assert_ne!(new_addr, addrs[&leader]);
    addrs.insert(leader, new_addr);
    for member in members.values() {
        member.transport.set_peer(leader, new_addr);
    }
    let restarted = start(leader, dirs[&leader].path(), listener, &addrs).await;
    assert_eq!(restarted.node.status().voters, IDS.to_vec());
    members.insert(leader, restarted);
    let entries = wait_converged(&members, &commands).await;
    let applied: Vec<_> = entries.iter().map(|(_, c)| c.clone()).collect();
    assert_eq!(applied, commands);
    let status = members[&leader].node.status();
    assert!(
        status.snapshot_index >= compacted,
        "caught up from the leader's snapshot: {status:?}"
    );
    assert_eq!(
        wait_for("the restarted member follows", SETTLE, || agreed_leader(
            &members
        ))
        .await,
        new_leader,
        "a caught-up follower does not disrupt the leader (pre-vote)"
    );

    // All three take part again.
    propose(&members, "after-restart".to_string()).await;
    commands.push("after-restart".to_string());
    wait_converged(&members, &commands).await;
    for member in members.values() {
        member.journal.assert_applied_once();
    }
    for (_, member) in members {
        member.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_one_grows_by_conf_changes_then_loses_and_removes_its_founder() {
    init_tracing();
    let (dirs, mut listeners, addrs) = bind_members().await;
    let mut members = BTreeMap::new();
    let founder = start_as(
        1,
        dirs[&1].path(),
        listeners.remove(&1).unwrap(),
        &addrs,
        Bootstrap::Alone,
    )
    .await;
    assert_eq!(founder.node.status().voters, vec![1]);
    assert_eq!(founder.node.status().role, Role::Leader);
    members.insert(1, founder);
    let mut commands: Vec<String> = (1..=30).map(|n| format!("early-{n}")).collect();
    for command in &commands {
        propose(&members, command.clone()).await;
    }
    // Compact, so the joiners must start from a snapshot.
    members[&1].node.compact_now().await.unwrap();

    for id in [2, 3] {
        let joiner = start_as(
            id,
            dirs[&id].path(),
            listeners.remove(&id).unwrap(),
            &addrs,
            Bootstrap::Join,
        )
        .await;
        let status = joiner.node.status();
        assert!(
            status.voters.is_empty(),
            "a joiner starts with no membership"
        );
        assert_eq!(status.applied_index, 0);
        // A node outside the group cannot take proposals or membership changes.
        assert!(matches!(
            joiner
                .node
                .change_membership(MembershipChange::AddVoter(9))
                .await,
            Err(ProposeError::NotLeader { .. })
        ));
        members.insert(id, joiner);
        let membership = change(&members, MembershipChange::AddVoter(id)).await;
        assert!(membership.voters.contains(&id), "{membership:?}");
        wait_converged(&members, &commands).await;
    }
    for member in members.values() {
        wait_for("every member knows all three voters", SETTLE, || {
            (member.node.status().voters == IDS.to_vec()).then_some(())
        })
        .await;
    }
    for n in 1..=10 {
        let command = format!("three-{n}");
        propose(&members, command.clone()).await;
        commands.push(command);
    }
    let entries = wait_converged(&members, &commands).await;
    let applied: Vec<_> = entries.iter().map(|(_, c)| c.clone()).collect();
    assert_eq!(applied, commands, "applied once each, in order, everywhere");

    // The founder is lost; the two joiners elect a leader and remove it from the group.
    members.remove(&1).unwrap().stop().await;
    let leader = wait_for("a new leader is elected", FAILOVER, || {
        agreed_leader(&members)
    })
    .await;
    assert_ne!(leader, 1);
    let membership = change(&members, MembershipChange::Remove(1)).await;
    assert_eq!(membership.voters, vec![2, 3]);
    for member in members.values() {
        member.transport.remove_peer(1);
    }
    propose(&members, "after-removal".to_string()).await;
    commands.push("after-removal".to_string());
    wait_converged(&members, &commands).await;
    for member in members.values() {
        member.journal.assert_applied_once();
        assert_eq!(member.node.status().voters, vec![2, 3]);
    }
    for (_, member) in members {
        member.stop().await;
    }
}
