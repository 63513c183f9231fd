//! The in-memory side of each queue: counters, the set of ready ids, retry timers, and leases.
//!
//! The messages themselves stay in sled; memory holds only ids. A message id is in exactly one
//! of `ready`, `delayed` (waiting for its backoff) or `in_flight` (leased to a handler) while it
//! is stored. Leases are never persisted: after a restart every stored message is ready again.
//!
//! A subscription queue's ids are ids of its topic's log (see [`crate::log`]); `log_pending`
//! tracks which of them it still has to settle, which determines its durable cursor.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::log::{Budget, Cache, TopicLog};
use crate::store::{self, SubRecord};
use crate::types::{QueueId, QueueKind, QueuePolicy, QueueStats};

/// Bytes of fresh messages the bus keeps in memory to hand them out without a read.
const CACHE_BYTES: usize = 64 << 20;

/// One queue's state, shared by senders, dispatchers and operator functions.
pub(crate) struct QueueState {
    pub id: QueueId,
    /// The encoded destination (see [`store::dest`]).
    pub dest: Vec<u8>,
    inner: Mutex<QueueInner>,
    /// Woken when messages become ready (send, retry scheduled, replay).
    pub notify: Notify,
    /// For a subscription: its topic's log.
    pub log: Option<Arc<TopicLog>>,
    /// Fresh messages of a named queue.
    pub cache: Cache,
}

/// The mutable part of a [`QueueState`].
pub(crate) struct QueueInner {
    pub policy: QueuePolicy,
    /// The id the next message gets; ids are assigned consecutively from 1.
    pub next_id: u64,
    pub acked_total: u64,
    /// Stored messages (ready + delayed + in flight).
    pub depth: u64,
    pub dead: u64,
    pub ready: BTreeSet<u64>,
    pub delayed: BinaryHeap<Reverse<(Instant, u64)>>,
    pub in_flight: HashSet<u64>,
    /// Subscription: log ids still to be settled (ready, delayed or in flight).
    pub log_pending: BTreeSet<u64>,
    /// Subscription: ids stored under the queue's own `m` keys (replayed dead letters).
    pub own: HashSet<u64>,
    /// Subscription: failed attempts of pending log entries (mirrors the `a` keys).
    pub attempts: HashMap<u64, u32>,
    /// Subscription: the cursor last written to disk.
    pub cursor: u64,
    /// Subscription: its configuration as stored on disk, once registered.
    pub sub: Option<SubRecord>,
}

impl QueueInner {
    /// Whether `id` of this (subscription) queue lives in the topic log.
    pub(crate) fn in_log(&self, id: u64) -> bool {
        !self.own.contains(&id)
    }
}

/// What a dispatcher gets when it asks for work.
pub(crate) enum Claim {
    /// Message `id` is now leased to the caller.
    Ready(u64),
    /// Nothing ready; the earliest retry is due at this instant, if any.
    Wait(Option<Instant>),
}

impl QueueState {
    fn new(
        id: QueueId,
        policy: QueuePolicy,
        log: Option<Arc<TopicLog>>,
        budget: Arc<Budget>,
    ) -> Self {
        let dest = store::dest(&id);
        Self {
            log,
            cache: Cache::new(budget),
            id,
            dest,
            inner: Mutex::new(QueueInner {
                policy,
                next_id: 1,
                acked_total: 0,
                depth: 0,
                dead: 0,
                ready: BTreeSet::new(),
                delayed: BinaryHeap::new(),
                in_flight: HashSet::new(),
                log_pending: BTreeSet::new(),
                own: HashSet::new(),
                attempts: HashMap::new(),
                cursor: 0,
                sub: None,
            }),
            notify: Notify::new(),
        }
    }

    /// Locks the mutable state. A poisoned lock is recovered: the state is plain counters and
    /// sets that every critical section leaves consistent before it can panic.
    pub(crate) fn lock(&self) -> MutexGuard<'_, QueueInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Leases the next ready message, moving due retries to ready first.
    pub(crate) fn claim(&self, now: Instant) -> Claim {
        let mut q = self.lock();
        while let Some(Reverse((at, id))) = q.delayed.peek().copied() {
            if at > now {
                break;
            }
            q.delayed.pop();
            q.ready.insert(id);
        }
        match q.ready.pop_first() {
            Some(id) => {
                q.in_flight.insert(id);
                Claim::Ready(id)
            }
            None => Claim::Wait(q.delayed.peek().map(|Reverse((at, _))| *at)),
        }
    }

    /// Ends the lease of `id` and makes it ready again at `at` (now, or after a backoff).
    pub(crate) fn release(&self, id: u64, at: Option<Instant>) {
        {
            let mut q = self.lock();
            if q.in_flight.remove(&id) {
                match at {
                    Some(at) => q.delayed.push(Reverse((at, id))),
                    None => {
                        q.ready.insert(id);
                    }
                }
            }
        }
        self.notify.notify_waiters();
    }

    /// Ends the lease of `id`, whose message is no longer stored in the queue.
    pub(crate) fn forget(&self, id: u64, acked: bool, dead: bool) {
        let mut q = self.lock();
        if q.in_flight.remove(&id) {
            q.depth = q.depth.saturating_sub(1);
        }
        if acked {
            q.acked_total += 1;
        }
        if dead {
            q.dead += 1;
        }
    }

    /// Subscription: the highest log id below every entry it still has to settle, given the
    /// log's last fanned-out id `last`.
    pub(crate) fn floor(&self, last: u64) -> u64 {
        let q = self.lock();
        q.log_pending.first().map_or(last, |first| first - 1)
    }

    /// The queue's policy.
    pub(crate) fn policy(&self) -> QueuePolicy {
        self.lock().policy.clone()
    }

    /// A snapshot of the counters.
    pub(crate) fn stats(&self) -> QueueStats {
        let q = self.lock();
        QueueStats {
            depth: q.depth,
            ready: q.ready.len() as u64,
            delayed: q.delayed.len() as u64,
            in_flight: q.in_flight.len() as u64,
            dead: q.dead,
            sent_total: q.next_id.saturating_sub(1),
            acked_total: q.acked_total,
            last_id: q.next_id.saturating_sub(1),
        }
    }

    /// Whether anything of this queue exists on disk.
    pub(crate) fn exists(&self) -> bool {
        let q = self.lock();
        q.next_id > 1 || q.depth > 0 || q.dead > 0 || q.sub.is_some()
    }
}

/// All queues known to the bus: loaded from disk at open, created on first use.
pub(crate) struct Queues {
    map: RwLock<HashMap<QueueId, Arc<QueueState>>>,
    logs: Mutex<HashMap<(String, String), Arc<TopicLog>>>,
    budget: Arc<Budget>,
    default_policy: QueuePolicy,
}

impl Queues {
    pub(crate) fn new(default_policy: QueuePolicy) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            logs: Mutex::new(HashMap::new()),
            budget: Budget::new(CACHE_BYTES),
            default_policy,
        }
    }

    /// The queue's state, if it is known.
    pub(crate) fn get(&self, id: &QueueId) -> Option<Arc<QueueState>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// The queue's state, created (with the default policy) if it is not known yet.
    pub(crate) fn get_or_create(&self, id: &QueueId) -> Arc<QueueState> {
        if let Some(q) = self.get(id) {
            return q;
        }
        let log = match &id.kind {
            QueueKind::Subscription { topic, .. } => Some(self.log(&id.tenant, topic)),
            QueueKind::Queue { .. } => None,
        };
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.clone())
            .or_insert_with(|| {
                let state = Arc::new(QueueState::new(
                    id.clone(),
                    self.default_policy.clone(),
                    log.clone(),
                    self.budget.clone(),
                ));
                if let Some(log) = &log {
                    log.subs
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Arc::downgrade(&state));
                }
                state
            })
            .clone()
    }

    /// The log of `tenant`'s `topic`, created empty if it is not known yet.
    pub(crate) fn log(&self, tenant: &str, topic: &str) -> Arc<TopicLog> {
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.entry((tenant.to_string(), topic.to_string()))
            .or_insert_with(|| Arc::new(TopicLog::new(tenant, topic, self.budget.clone())))
            .clone()
    }

    /// Every known queue.
    pub(crate) fn all(&self) -> Vec<Arc<QueueState>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}
