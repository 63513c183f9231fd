//! Test harness: a three-member replicated bus in one process over loopback TCP and sled
//! (adapted from cloudware-raft's cluster test), a recording handler, bounded waits.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudware_bus::{BusConfig, Delivery, MessageHandler, QueuePolicy, handler_fn};
use cloudware_bus_replicated::{LocalForwarder, ReplicatedBus, ReplicatedConfig};
use cloudware_raft::{PeerServer, RaftConfig, Role, TcpTransport, TcpTransportConfig, serve_peers};
use tempfile::TempDir;
use tokio::net::TcpListener;

pub const IDS: [u64; 3] = [1, 2, 3];
/// Bound for elections, catch-up and deliveries.
pub const SETTLE: Duration = Duration::from_secs(20);

/// One running member.
pub struct Member {
    pub bus: ReplicatedBus,
    pub transport: TcpTransport,
    server: PeerServer,
}

/// Three members, their directories and addresses, and the in-process forwarder.
pub struct Cluster {
    pub members: BTreeMap<u64, Member>,
    dirs: BTreeMap<u64, TempDir>,
    addrs: BTreeMap<u64, SocketAddr>,
    pub forwarder: Arc<LocalForwarder>,
    snapshot_every: u64,
}

/// A bus configuration with a quick default policy for tests.
pub fn bus_config() -> ReplicatedConfig {
    ReplicatedConfig {
        bus: BusConfig {
            max_payload_bytes: 64 * 1024,
            default_policy: QueuePolicy {
                backoff_initial: Duration::from_millis(50),
                backoff_max: Duration::from_millis(200),
                lease_timeout: Duration::from_secs(10),
                ..QueuePolicy::default()
            },
        },
        leader_wait: SETTLE,
        ..ReplicatedConfig::default()
    }
}

impl Cluster {
    /// Starts three members bootstrapped as one group; snapshots every `snapshot_every`
    /// applied entries.
    pub async fn start(snapshot_every: u64) -> Cluster {
        init_tracing();
        let mut cluster = Cluster {
            members: BTreeMap::new(),
            dirs: IDS
                .iter()
                .map(|&id| (id, tempfile::tempdir().unwrap()))
                .collect(),
            addrs: BTreeMap::new(),
            forwarder: LocalForwarder::new(),
            snapshot_every,
        };
        let mut listeners = BTreeMap::new();
        for id in IDS {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            cluster.addrs.insert(id, listener.local_addr().unwrap());
            listeners.insert(id, listener);
        }
        for (id, listener) in listeners {
            let member = cluster.open(id, listener).await;
            cluster.members.insert(id, member);
        }
        cluster
    }

    async fn open(&self, id: u64, listener: TcpListener) -> Member {
        let mut config = RaftConfig::new(self.dirs[&id].path(), id);
        config.initial_voters = IDS.to_vec();
        // Elections must not flap on a loaded two-core machine.
        config.tick = Duration::from_millis(50);
        config.snapshot_every = self.snapshot_every;
        config.log_tail = 5;
        config.startup_timeout = SETTLE;
        let transport = TcpTransport::new(id, TcpTransportConfig::default());
        for (&peer, &addr) in &self.addrs {
            if peer != id {
                transport.set_peer(peer, addr);
            }
        }
        let bus = ReplicatedBus::open(config, bus_config(), transport.clone())
            .await
            .expect("member opens");
        transport.report_unreachable_to(bus.node());
        let server = serve_peers(listener, Arc::clone(bus.node())).unwrap();
        self.forwarder.insert(bus.node());
        bus.set_forwarder(self.forwarder.clone());
        Member {
            bus,
            transport,
            server,
        }
    }

    pub fn bus(&self, id: u64) -> &ReplicatedBus {
        &self.members[&id].bus
    }

    /// The leader every running member agrees on, waiting (bounded) for one.
    pub async fn leader(&self) -> u64 {
        wait_for("a leader known to all members", SETTLE, || {
            let (&leader, _) = self
                .members
                .iter()
                .find(|(_, m)| m.bus.node().status().role == Role::Leader)?;
            self.members
                .values()
                .all(|m| m.bus.node().status().leader == Some(leader))
                .then_some(leader)
        })
        .await
    }

    /// A running member that is not the leader.
    pub async fn follower(&self) -> u64 {
        let leader = self.leader().await;
        *self.members.keys().find(|&&id| id != leader).unwrap()
    }

    /// Stops member `id` (its node and peer server) as a crash would, as far as the others
    /// can tell.
    pub async fn kill(&mut self, id: u64) {
        let member = self.members.remove(&id).expect("member is running");
        self.forwarder.remove(id);
        member.bus.shutdown().await.unwrap();
        member.server.stop();
    }

    /// Restarts member `id` on its directory with a new port.
    pub async fn restart(&mut self, id: u64) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        self.addrs.insert(id, addr);
        for member in self.members.values() {
            member.transport.set_peer(id, addr);
        }
        let member = self.open(id, listener).await;
        self.members.insert(id, member);
    }

    /// Shuts every member down.
    pub async fn stop(mut self) {
        let ids: Vec<u64> = self.members.keys().copied().collect();
        for id in ids {
            self.kill(id).await;
        }
    }
}

/// Every delivery seen by the handlers: (member, queue source, message id, payload, attempt).
#[derive(Clone, Default)]
pub struct Recorder {
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

#[derive(Clone, Debug)]
pub struct Seen {
    pub member: u64,
    pub queue: String,
    pub id: u64,
    pub payload: String,
    pub attempt: u32,
    pub at: Instant,
}

impl Recorder {
    /// A handler for member `member` that records each delivery, waits `delay`, and answers
    /// with `answer(delivery)`.
    pub fn handler(
        &self,
        member: u64,
        delay: Duration,
        answer: impl Fn(&Delivery) -> Result<(), String> + Send + Sync + 'static,
    ) -> Arc<dyn MessageHandler> {
        let seen = Arc::clone(&self.seen);
        let answer = Arc::new(answer);
        handler_fn(move |d: Delivery| {
            seen.lock().unwrap().push(Seen {
                member,
                queue: d.queue.to_string(),
                id: d.id,
                payload: String::from_utf8_lossy(&d.payload).into_owned(),
                attempt: d.attempt,
                at: Instant::now(),
            });
            let result = answer(&d);
            async move {
                tokio::time::sleep(delay).await;
                result
            }
        })
    }

    pub fn all(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How often each payload of `queue` was delivered.
    pub fn counts(&self, queue: &str) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for s in self.all().into_iter().filter(|s| s.queue == queue) {
            *counts.entry(s.payload).or_default() += 1;
        }
        counts
    }
}

/// Polls `check` every 20 ms until it yields a value; panics after `timeout`.
pub async fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
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

/// Installs a test tracing subscriber once (set RUST_LOG to see logs).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
