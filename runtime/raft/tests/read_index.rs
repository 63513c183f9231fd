//! Linearizable reads on every member of a three-voter group (raft read-index), over an
//! in-process network whose links the test can cut: a follower's read reflects a write the
//! leader acknowledged just before, and a member cut off from the others fails its reads (and
//! writes) within a bound instead of answering from a possibly stale state. Every wait is
//! bounded.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudware_raft::eraftpb::Message;
use cloudware_raft::{ProposeError, RaftNode, Role};
use common::{Journal, init_tracing};
use tokio::sync::mpsc;

const IDS: [u64; 3] = [1, 2, 3];
/// Bound for elections and catch-up.
const SETTLE: Duration = Duration::from_secs(10);
/// The members' read timeout.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// An in-process network: a member's outgoing messages reach the addressed member's inbox,
/// unless either end is cut off.
#[derive(Clone, Default)]
struct Net {
    inner: Arc<Mutex<Links>>,
}

#[derive(Default)]
struct Links {
    inboxes: HashMap<u64, mpsc::UnboundedSender<Message>>,
    cut: HashSet<u64>,
}

impl Net {
    /// The transport of member `from`.
    fn transport(&self, from: u64) -> impl FnMut(Vec<Message>) + Send + 'static {
        let net = self.clone();
        move |messages: Vec<Message>| {
            let links = net.inner.lock().unwrap();
            if links.cut.contains(&from) {
                return;
            }
            for message in messages {
                if links.cut.contains(&message.to) {
                    continue;
                }
                if let Some(inbox) = links.inboxes.get(&message.to) {
                    let _ = inbox.send(message);
                }
            }
        }
    }

    /// Delivers the messages addressed to `node` (until it stops).
    fn attach(&self, node: Arc<RaftNode>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        self.inner.lock().unwrap().inboxes.insert(node.id(), tx);
        tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                if node.step(message).await.is_err() {
                    break;
                }
            }
        });
    }

    /// Cuts every link to and from `id`.
    fn cut(&self, id: u64) {
        self.inner.lock().unwrap().cut.insert(id);
    }

    /// Restores the links of `id`.
    fn heal(&self, id: u64) {
        self.inner.lock().unwrap().cut.remove(&id);
    }
}

struct Member {
    node: Arc<RaftNode>,
    journal: Journal,
    _dir: tempfile::TempDir,
}

/// Starts the three voters on one [`Net`].
async fn group(net: &Net) -> BTreeMap<u64, Member> {
    let mut members = BTreeMap::new();
    for id in IDS {
        let dir = tempfile::tempdir().unwrap();
        let mut config = common::config(dir.path());
        config.node_id = id;
        config.initial_voters = IDS.to_vec();
        config.tick = Duration::from_millis(50);
        config.read_timeout = READ_TIMEOUT;
        config.propose_timeout = READ_TIMEOUT;
        let journal = Journal::default();
        let node = RaftNode::open_with_transport(config, journal.clone(), net.transport(id))
            .await
            .expect("member opens");
        let node = Arc::new(node);
        net.attach(Arc::clone(&node));
        members.insert(
            id,
            Member {
                node,
                journal,
                _dir: dir,
            },
        );
    }
    members
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

/// The leader all of `ids` agree on, if any.
fn agreed_leader(members: &BTreeMap<u64, Member>, ids: &[u64]) -> Option<u64> {
    let leader = ids
        .iter()
        .copied()
        .find(|id| members[id].node.status().role == Role::Leader)?;
    ids.iter()
        .all(|id| members[id].node.status().leader == Some(leader))
        .then_some(leader)
}

/// Proposes `command` on `leader`, retrying (bounded) while raft drops it; returns its index.
async fn propose_on(node: &RaftNode, command: &str) -> u64 {
    let deadline = Instant::now() + SETTLE;
    loop {
        match node.propose(command.as_bytes().to_vec()).await {
            Ok(outcome) => {
                let outcome = String::from_utf8(outcome).unwrap();
                return outcome.split_once(':').unwrap().0.parse().unwrap();
            }
            Err(ProposeError::Dropped) if Instant::now() < deadline => {}
            Err(error) => panic!("proposing {command}: {error}"),
        }
    }
}

async fn stop(members: BTreeMap<u64, Member>) {
    for member in members.values() {
        member.node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_read_reflects_the_write_the_leader_acknowledged_just_before() {
    init_tracing();
    let net = Net::default();
    let members = group(&net).await;
    let leader = wait_for("a leader", SETTLE, || agreed_leader(&members, &IDS)).await;
    let followers: Vec<u64> = IDS.iter().copied().filter(|id| *id != leader).collect();

    let mut slowest = Duration::ZERO;
    for n in 1..=30 {
        let command = format!("w{n}");
        let index = propose_on(&members[&leader].node, &command).await;
        // The write is acknowledged; a follower that may not have applied it yet reads.
        let follower = &members[&followers[n % 2]];
        let started = Instant::now();
        let read = follower.node.read_index().await.expect("follower read");
        slowest = slowest.max(started.elapsed());
        assert!(read >= index, "read index {read} < acknowledged {index}");
        assert!(follower.node.applied_index() >= read);
        assert!(
            follower.journal.commands().contains(&command),
            "the follower's state after read_index has {command}"
        );
    }
    tracing::info!(?slowest, "slowest follower read");
    for member in members.values() {
        member.journal.assert_applied_once();
    }
    stop(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_member_fails_reads_and_writes_within_the_timeout_then_catches_up() {
    init_tracing();
    let net = Net::default();
    let members = group(&net).await;
    let leader = wait_for("a leader", SETTLE, || agreed_leader(&members, &IDS)).await;
    propose_on(&members[&leader].node, "before").await;

    // 1. A follower cut off from both others cannot confirm a read: it fails, in time.
    let follower = IDS.iter().copied().find(|id| *id != leader).unwrap();
    net.cut(follower);
    for _ in 0..3 {
        let started = Instant::now();
        let read = members[&follower].node.read_index().await;
        let elapsed = started.elapsed();
        assert!(read.is_err(), "a cut-off follower read succeeded: {read:?}");
        assert!(
            elapsed <= READ_TIMEOUT + Duration::from_millis(500),
            "the read failed after {elapsed:?}"
        );
    }
    // The other two go on meanwhile.
    propose_on(&members[&leader].node, "while-follower-cut").await;
    net.heal(follower);
    wait_for("the follower reads again", SETTLE, || {
        members[&follower]
            .journal
            .commands()
            .contains(&"while-follower-cut".to_string())
            .then_some(())
    })
    .await;
    let leader = wait_for("a leader after the heal", SETTLE, || {
        agreed_leader(&members, &IDS)
    })
    .await;
    members[&follower].node.read_index().await.expect("read");

    // 2. The leader is cut off: it steps down (check-quorum) and neither reads nor writes go
    //    through it, while the other two elect a new leader and take writes.
    net.cut(leader);
    let started = Instant::now();
    let read = members[&leader].node.read_index().await;
    assert!(read.is_err(), "a cut-off leader served a read: {read:?}");
    assert!(started.elapsed() <= READ_TIMEOUT + Duration::from_millis(500));
    let write = members[&leader]
        .node
        .propose(b"on-the-cut-off-leader".to_vec())
        .await;
    assert!(
        matches!(
            write,
            Err(ProposeError::NotLeader { .. } | ProposeError::Timeout(_))
        ),
        "a cut-off leader acknowledged a write: {write:?}"
    );
    wait_for("the cut-off leader steps down", SETTLE, || {
        (members[&leader].node.status().role != Role::Leader).then_some(())
    })
    .await;
    let majority: Vec<u64> = IDS.iter().copied().filter(|id| *id != leader).collect();
    let new_leader = wait_for("a new leader", SETTLE, || {
        agreed_leader(&members, &majority)
    })
    .await;
    let index = propose_on(&members[&new_leader].node, "while-leader-cut").await;
    let started = Instant::now();
    assert_eq!(
        members[&leader].node.read_index().await,
        Err(ProposeError::NotLeader { leader: None }),
        "a member cut off for longer than an election timeout knows no leader"
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "failed at once"
    );

    // 3. Healed, the old leader follows the new one and its reads see the majority's writes.
    net.heal(leader);
    let read = wait_for_ok("the old leader reads again", || {
        let node = Arc::clone(&members[&leader].node);
        async move { node.read_index().await }
    })
    .await;
    assert!(read >= index);
    assert!(
        members[&leader]
            .journal
            .commands()
            .contains(&"while-leader-cut".to_string())
    );
    assert_eq!(members[&leader].node.status().leader, Some(new_leader));
    for member in members.values() {
        member.journal.assert_applied_once();
    }
    stop(members).await;
}

/// Retries `attempt` (bounded by [`SETTLE`]) until it succeeds.
async fn wait_for_ok<T, F>(what: &str, attempt: impl Fn() -> F) -> T
where
    F: std::future::Future<Output = Result<T, ProposeError>>,
{
    let deadline = Instant::now() + SETTLE;
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(error) => assert!(Instant::now() < deadline, "{what}: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_member_answers_reads_at_once() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (node, _journal) = common::open(common::config(dir.path())).await;
    let index = propose_on(&node, "one").await;
    let started = Instant::now();
    for _ in 0..1_000 {
        assert!(node.read_index().await.unwrap() >= index);
    }
    let elapsed = started.elapsed();
    tracing::info!(?elapsed, "1000 reads on a single member");
    // No election, no heartbeat round, no disk write per read: well under a millisecond each.
    assert!(
        elapsed < Duration::from_secs(1),
        "1000 reads took {elapsed:?}"
    );
    node.shutdown().await.unwrap();
}
