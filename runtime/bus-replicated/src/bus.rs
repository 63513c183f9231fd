//! [`ReplicatedBus`]: the handle a host holds — open, send, publish, policies, subscriptions,
//! statistics and dead letters — over a [`RaftNode`] running the [`BusMachine`].
//!
//! Writes are [`Command`]s proposed to raft: on the leader directly, from a follower through
//! the [`BusForwarder`]. They return once the command is committed (fsynced on a majority)
//! and applied. Reads (`stats`, `dead_letters` …) look at this member's copy of the machine,
//! which may trail the leader by a few entries; [`ReplicatedBus::sync_reads`] waits until it
//! reflects everything acknowledged before the call.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cloudware_bus::{
    BusConfig, DeadLetter, NewMessage, PublishReceipt, QueueId, QueuePolicy, QueueStats,
    Subscription,
};
use cloudware_raft::{ProposeError, RaftConfig, RaftError, RaftNode, Role, Transport};
use tokio::sync::Notify;

use crate::command::{Body, Command, Outcome, QueueKey, WirePolicy, decode, encode};
use crate::error::BusError;
use crate::forward::{BusForwarder, ForwardError};
use crate::machine::{BusMachine, Shared};

/// How long a write waits for a leader (elections, forwarding retries) by default.
pub const DEFAULT_LEADER_WAIT: Duration = Duration::from_secs(10);

/// Pause between attempts while no leader takes a command.
const RETRY_PAUSE: Duration = Duration::from_millis(25);

/// Milliseconds since the Unix epoch by this host's clock.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Options of [`ReplicatedBus::open`] besides raft's.
#[derive(Clone, Debug)]
pub struct ReplicatedConfig {
    /// Message size limit and default queue policy. Must be equal on every member.
    pub bus: BusConfig,
    /// How long a write waits for a leader before failing with [`BusError::Unavailable`].
    pub leader_wait: Duration,
    /// Most bytes of message bodies the group holds (queued, retained, dead); sends beyond
    /// are refused with [`BusError::OverCapacity`]. Keeps a snapshot (the whole machine)
    /// within one raft transport frame (64 MiB). Must be equal on every member.
    pub max_stored_bytes: u64,
}

/// Default of [`ReplicatedConfig::max_stored_bytes`]: 48 MiB.
pub const DEFAULT_MAX_STORED_BYTES: u64 = 48 << 20;

impl Default for ReplicatedConfig {
    fn default() -> Self {
        ReplicatedConfig {
            bus: BusConfig::default(),
            leader_wait: DEFAULT_LEADER_WAIT,
            max_stored_bytes: DEFAULT_MAX_STORED_BYTES,
        }
    }
}

/// The shared insides of a [`ReplicatedBus`].
pub(crate) struct Inner {
    pub(crate) node: Arc<RaftNode>,
    pub(crate) machine: Arc<Shared>,
    forwarder: OnceLock<Arc<dyn BusForwarder>>,
    leader_wait: Duration,
    /// Messages handed to a handler on this host, per queue (only while this host leads).
    leases: Mutex<HashMap<QueueKey, HashSet<u64>>>,
    /// Woken whenever a lease is released, and on shutdown.
    pub(crate) released: Notify,
    /// Set by [`ReplicatedBus::shutdown`]: consumers stop claiming at once.
    stopped: AtomicBool,
}

/// The message bus replicated by a raft group. Cheap to clone.
#[derive(Clone)]
pub struct ReplicatedBus {
    pub(crate) inner: Arc<Inner>,
}

impl ReplicatedBus {
    /// Opens (or recovers) this member's raft node running a [`BusMachine`], with `transport`
    /// for its peers. Feed incoming peer messages to [`ReplicatedBus::node`] (e.g. with
    /// `cloudware_raft::serve_peers`).
    pub async fn open<T: Transport>(
        raft: RaftConfig,
        config: ReplicatedConfig,
        transport: T,
    ) -> Result<ReplicatedBus, RaftError> {
        let machine = BusMachine::new(&config.bus, config.max_stored_bytes);
        let shared = Arc::clone(&machine.shared);
        let node = RaftNode::open_with_transport(raft, machine, transport).await?;
        Ok(ReplicatedBus {
            inner: Arc::new(Inner {
                node: Arc::new(node),
                machine: shared,
                forwarder: OnceLock::new(),
                leader_wait: config.leader_wait,
                leases: Mutex::new(HashMap::new()),
                released: Notify::new(),
                stopped: AtomicBool::new(false),
            }),
        })
    }

    /// The raft node (for the peer server, membership changes, status).
    pub fn node(&self) -> &Arc<RaftNode> {
        &self.inner.node
    }

    /// Sets how a follower forwards writes to the leader (once; later calls are ignored).
    /// Without one, only the leader accepts writes.
    pub fn set_forwarder(&self, forwarder: Arc<dyn BusForwarder>) {
        let _ = self.inner.forwarder.set(forwarder);
    }

    /// Appends `msg` to `queue`; returns its id once committed on a majority.
    pub async fn send(&self, queue: &QueueId, msg: NewMessage) -> Result<u64, BusError> {
        let body = Body::from(msg);
        self.check(&body)?;
        let command = Command::Send {
            queue: QueueKey::from(queue),
            msg: body,
            at_ms: now_ms(),
        };
        match self.inner.propose("send", &command).await? {
            Outcome::Sent { id } => Ok(id),
            other => Err(unexpected("send", &other)),
        }
    }

    /// Publishes `msg` to `tenant`'s `topic`: pending for every subscription whose filter
    /// matches (all or nothing against their depth limits), once committed on a majority.
    pub async fn publish(
        &self,
        tenant: &str,
        topic: &str,
        msg: NewMessage,
    ) -> Result<PublishReceipt, BusError> {
        let body = Body::from(msg);
        self.check(&body)?;
        let command = Command::Publish {
            tenant: tenant.to_string(),
            topic: topic.to_string(),
            msg: body,
            at_ms: now_ms(),
        };
        match self.inner.propose("publish", &command).await? {
            Outcome::Published { id, delivered_to } => Ok(PublishReceipt { id, delivered_to }),
            other => Err(unexpected("publish", &other)),
        }
    }

    /// Sets the policy of `queue` for the whole group.
    pub async fn set_policy(&self, queue: &QueueId, policy: &QueuePolicy) -> Result<(), BusError> {
        let command = Command::SetPolicy {
            queue: QueueKey::from(queue),
            policy: WirePolicy::from(policy),
        };
        self.inner.propose("set_policy", &command).await.map(drop)
    }

    /// The policy of `queue` as applied here.
    pub fn policy(&self, queue: &QueueId) -> QueuePolicy {
        let machine = &self.inner.machine;
        machine
            .read()
            .queue_policy(&machine.limits, &QueueKey::from(queue))
    }

    /// Replaces the group's whole set of subscriptions. A new subscription receives later
    /// publications; a removed one keeps its backlog but receives nothing new.
    pub async fn set_subscriptions(
        &self,
        subscriptions: Vec<Subscription>,
    ) -> Result<(), BusError> {
        let command = Command::SetSubscriptions {
            subscriptions: subscriptions.into_iter().map(Into::into).collect(),
        };
        self.inner
            .propose("set_subscriptions", &command)
            .await
            .map(drop)
    }

    /// The subscriptions as applied here, sorted by tenant, topic and subscriber.
    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.inner
            .machine
            .read()
            .subscriptions()
            .into_iter()
            .map(|s| Subscription {
                tenant: s.tenant,
                topic: s.topic,
                subscriber: s.subscriber,
                filter: s.filter,
            })
            .collect()
    }

    /// The counters of `queue` as applied here (`in_flight`: handlers running on this host).
    pub fn stats(&self, queue: &QueueId) -> QueueStats {
        let key = QueueKey::from(queue);
        let leased = self.inner.leased(&key);
        self.inner.machine.read().stats(&key, now_ms(), &leased)
    }

    /// Every queue (of `tenant`, if given) with its counters, sorted.
    pub fn queues(&self, tenant: Option<&str>) -> Vec<(QueueId, QueueStats)> {
        let keys = self.inner.machine.read().queue_keys(tenant);
        keys.iter()
            .map(|key| {
                let id = QueueId::from(key);
                let stats = self.stats(&id);
                (id, stats)
            })
            .collect()
    }

    /// Up to `limit` dead letters of `queue` with ids above `after`, in id order.
    pub fn dead_letters(
        &self,
        queue: &QueueId,
        after: Option<u64>,
        limit: usize,
    ) -> Vec<DeadLetter> {
        self.inner
            .machine
            .read()
            .dead_letters(&QueueKey::from(queue), after, limit)
    }

    /// Moves dead letters of `queue` (all, or `ids`) back into it with their attempts reset;
    /// returns how many moved. Ignores `max_depth`.
    pub async fn replay(&self, queue: &QueueId, ids: Option<&[u64]>) -> Result<usize, BusError> {
        let command = Command::Replay {
            queue: QueueKey::from(queue),
            ids: ids.map(<[u64]>::to_vec),
        };
        match self.inner.propose("replay", &command).await? {
            Outcome::Count { count } => Ok(count),
            other => Err(unexpected("replay", &other)),
        }
    }

    /// Deletes dead letters of `queue` (all, or `ids`); returns how many.
    pub async fn purge_dead(
        &self,
        queue: &QueueId,
        ids: Option<&[u64]>,
    ) -> Result<usize, BusError> {
        let command = Command::PurgeDead {
            queue: QueueKey::from(queue),
            ids: ids.map(<[u64]>::to_vec),
        };
        match self.inner.propose("purge_dead", &command).await? {
            Outcome::Count { count } => Ok(count),
            other => Err(unexpected("purge_dead", &other)),
        }
    }

    /// Waits until this member's copy reflects every write acknowledged anywhere before the
    /// call (raft read index), so the reads after it are linearizable. While no leader is
    /// known (an election, or this member just started) it waits, up to `leader_wait`.
    pub async fn sync_reads(&self) -> Result<(), BusError> {
        let op = "sync_reads";
        let node = &self.inner.node;
        let started = Instant::now();
        let mut status = node.watch_status();
        loop {
            status.borrow_and_update();
            let reason = match node.read_index().await {
                Ok(_) => return Ok(()),
                Err(ProposeError::Stopped) => return Err(BusError::Stopped { op }),
                Err(e) => e.to_string(),
            };
            let waited = started.elapsed();
            if waited >= self.inner.leader_wait {
                return Err(BusError::Unavailable { op, waited, reason });
            }
            tokio::select! {
                changed = status.changed() => if changed.is_err() {
                    return Err(BusError::Stopped { op });
                },
                _ = tokio::time::sleep(RETRY_PAUSE) => {}
            }
        }
    }

    /// Bytes of message bodies held by the machine here.
    pub fn stored_bytes(&self) -> u64 {
        self.inner.machine.read().stored_bytes()
    }

    /// Publications retained in topic logs here (for tests and metrics).
    pub fn retained_publications(&self) -> usize {
        self.inner.machine.read().retained_count()
    }

    /// Stops this member: consumers stop claiming messages, then the raft node stops (running
    /// handlers finish; their settlements fail and the new leader delivers those messages
    /// again). Idempotent.
    pub async fn shutdown(&self) -> Result<(), RaftError> {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.released.notify_waiters();
        self.inner.node.shutdown().await
    }

    fn check(&self, body: &Body) -> Result<(), BusError> {
        self.inner
            .machine
            .limits
            .check(body)
            .map_err(|r| BusError::rejected("check", r))
    }
}

fn unexpected(op: &'static str, outcome: &Outcome) -> BusError {
    BusError::Codec {
        op,
        reason: format!("unexpected outcome {outcome:?}"),
    }
}

impl Inner {
    /// Proposes `command` on the leader (here, or through the forwarder), waiting up to
    /// `leader_wait` for one; decodes the outcome and turns a rejection into an error.
    pub(crate) async fn propose(
        &self,
        op: &'static str,
        command: &Command,
    ) -> Result<Outcome, BusError> {
        let bytes = encode(command);
        let started = Instant::now();
        let mut status = self.node.watch_status();
        let mut last = String::from("no leader known");
        loop {
            let current = status.borrow_and_update().clone();
            let answer = if current.role == Role::Leader {
                match self.node.propose(bytes.clone()).await {
                    Ok(answer) => Some(answer),
                    Err(e @ (ProposeError::NotLeader { .. } | ProposeError::Dropped)) => {
                        last = e.to_string();
                        None
                    }
                    Err(ProposeError::Stopped) => return Err(BusError::Stopped { op }),
                    Err(e @ ProposeError::Timeout(_)) => {
                        return Err(BusError::Unknown {
                            op,
                            reason: e.to_string(),
                        });
                    }
                }
            } else if let Some(forwarder) = self.forwarder.get() {
                match forwarder.forward(current.leader, bytes.clone()).await {
                    Ok(answer) => Some(answer),
                    Err(ForwardError::NotApplied(reason)) => {
                        last = reason;
                        None
                    }
                    Err(ForwardError::Unknown(reason)) => {
                        return Err(BusError::Unknown { op, reason });
                    }
                }
            } else {
                last = format!(
                    "this member is not the leader (leader: {:?})",
                    current.leader
                );
                None
            };
            if let Some(answer) = answer {
                return match decode::<Outcome>(&answer) {
                    Ok(Outcome::Rejected(rejection)) => Err(BusError::rejected(op, rejection)),
                    Ok(outcome) => Ok(outcome),
                    Err(reason) => Err(BusError::Codec { op, reason }),
                };
            }
            let waited = started.elapsed();
            if waited >= self.leader_wait {
                return Err(BusError::Unavailable {
                    op,
                    waited,
                    reason: last,
                });
            }
            tokio::select! {
                changed = status.changed() => if changed.is_err() {
                    return Err(BusError::Stopped { op });
                },
                _ = tokio::time::sleep(RETRY_PAUSE) => {}
            }
        }
    }

    /// Whether [`ReplicatedBus::shutdown`] was called.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// The ids of `queue` leased on this host.
    pub(crate) fn leased(&self, queue: &QueueKey) -> HashSet<u64> {
        self.leases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(queue)
            .cloned()
            .unwrap_or_default()
    }

    /// Leases up to `limit` due messages of `queue` (not leased yet); returns them as
    /// deliveries with the earliest time a delayed one becomes due.
    pub(crate) fn claim(
        &self,
        queue: &QueueKey,
        limit: usize,
    ) -> (Vec<cloudware_bus::Delivery>, Option<u64>) {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        let leased = leases.entry(queue.clone()).or_default();
        let (due, next) = self.machine.read().due(queue, now_ms(), leased, limit);
        leased.extend(due.iter().map(|d| d.id));
        (due, next)
    }

    /// Releases the lease of message `id` of `queue`.
    pub(crate) fn release(&self, queue: &QueueKey, id: u64) {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(leased) = leases.get_mut(queue) {
            leased.remove(&id);
        }
        drop(leases);
        self.released.notify_waiters();
    }
}
