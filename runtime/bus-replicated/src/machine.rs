//! [`BusMachine`]: the bus's whole durable state as a deterministic raft state machine.
//!
//! It holds every queue's unacknowledged messages (body, attributes, enqueue time, attempts,
//! earliest next attempt), every topic's retained log (each publication stored once, with a
//! count of the subscription queues still holding it), subscriptions with their filters,
//! policies, dead letters and id counters. Applying a [`Command`] depends only on the command
//! and the state (times come from the command), so every member and every replay computes the
//! same state. A snapshot is the whole state, postcard-encoded.
//!
//! The machine knows nothing of leases: which messages are being handled right now is the
//! leader's in-memory business (see `deliver`). The state is shared (behind an `RwLock`) with
//! the [`ReplicatedBus`](crate::ReplicatedBus) handle that reads it.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use cloudware_bus::{BusConfig, QueuePolicy};
use cloudware_raft::StateMachine;
use serde::{Deserialize, Serialize};

mod query;

use crate::command::{
    Body, Command, Outcome, QueueKey, Rejection, WirePolicy, WireSubscription, decode, encode,
};

type TopicKey = (String, String);

/// One stored, unacknowledged message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    /// The body; `None` for a subscription queue's message still in its topic's log (under
    /// the same id).
    body: Option<Body>,
    enqueued_ms: u64,
    /// Failed deliveries so far.
    attempts: u32,
    /// Not delivered before this time (retry backoff), ms since the epoch.
    not_before_ms: u64,
}

/// A message that failed `max_attempts` times.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Dead {
    body: Body,
    enqueued_ms: u64,
    attempts: u32,
    last_error: String,
    dead_at_ms: u64,
}

/// One queue: a named queue or a subscription's backlog.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct QueueData {
    /// Set by `SetPolicy`; the machine's default otherwise.
    policy: Option<WirePolicy>,
    /// The next id of a named queue (subscription queues use publication ids).
    next_id: u64,
    messages: BTreeMap<u64, Stored>,
    dead: BTreeMap<u64, Dead>,
    sent_total: u64,
    acked_total: u64,
    last_id: u64,
}

/// A publication retained in its topic's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Retained {
    body: Body,
    /// Subscription queues still holding it; dropped at zero.
    refs: u32,
}

/// A topic's retained log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct TopicLog {
    next_id: u64,
    entries: BTreeMap<u64, Retained>,
}

/// The whole replicated state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MachineState {
    queues: BTreeMap<QueueKey, QueueData>,
    topics: BTreeMap<TopicKey, TopicLog>,
    /// Per topic: subscriber → filter.
    subscriptions: BTreeMap<TopicKey, BTreeMap<String, BTreeMap<String, String>>>,
    /// Bytes of message bodies held (queued, retained in topic logs, dead letters).
    stored_bytes: u64,
}

/// The limits every member applies; must be equal on all members of a group.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    max_message_bytes: usize,
    max_stored_bytes: u64,
    default_policy: WirePolicy,
}

/// A body's size: payload plus attribute keys and values.
fn body_size(body: &Body) -> usize {
    body.payload.len()
        + body
            .attributes
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

impl Limits {
    pub(crate) fn new(config: &BusConfig, max_stored_bytes: u64) -> Self {
        Limits {
            max_message_bytes: config.max_payload_bytes,
            max_stored_bytes,
            default_policy: WirePolicy::from(&config.default_policy),
        }
    }

    /// Refuses a body over the size limit (payload plus attribute keys and values).
    pub(crate) fn check(&self, body: &Body) -> Result<(), Rejection> {
        let size = body_size(body);
        if size > self.max_message_bytes {
            return Err(Rejection::TooLarge {
                size,
                limit: self.max_message_bytes,
            });
        }
        Ok(())
    }
}

/// Whether `attributes` carry every key of `filter` with an equal value (as
/// [`cloudware_bus::Subscription::matches`]).
fn filter_matches(filter: &BTreeMap<String, String>, attributes: &[(String, String)]) -> bool {
    filter
        .iter()
        .all(|(k, v)| attributes.iter().any(|(ak, av)| ak == k && av == v))
}

/// `body_size` as the machine counts it.
fn size64(body: &Body) -> u64 {
    body_size(body) as u64
}

fn backoff_ms(policy: &WirePolicy, failed: u32) -> u64 {
    u64::try_from(QueuePolicy::from(policy).backoff(failed).as_millis()).unwrap_or(u64::MAX)
}

impl MachineState {
    /// Applies one command.
    pub(crate) fn apply(&mut self, limits: &Limits, command: Command) -> Outcome {
        let result = match command {
            Command::Send { queue, msg, at_ms } => self.send(limits, queue, msg, at_ms),
            Command::Publish {
                tenant,
                topic,
                msg,
                at_ms,
            } => self.publish(limits, tenant, topic, msg, at_ms),
            Command::Ack { queue, id } => Ok(Outcome::Acked {
                removed: self.ack(&queue, id),
            }),
            Command::Fail {
                queue,
                id,
                attempt,
                error,
                at_ms,
            } => Ok(self.fail(limits, &queue, id, attempt, error, at_ms)),
            Command::Replay { queue, ids } => Ok(Outcome::Count {
                count: self.replay(&queue, ids),
            }),
            Command::PurgeDead { queue, ids } => Ok(Outcome::Count {
                count: self.purge_dead(&queue, ids),
            }),
            Command::SetPolicy { queue, policy } => {
                self.queues.entry(queue).or_default().policy = Some(policy);
                Ok(Outcome::Done)
            }
            Command::SetSubscriptions { subscriptions } => {
                self.set_subscriptions(subscriptions);
                Ok(Outcome::Done)
            }
        };
        result.unwrap_or_else(Outcome::Rejected)
    }

    fn policy<'a>(&'a self, limits: &'a Limits, queue: &QueueKey) -> &'a WirePolicy {
        self.queues
            .get(queue)
            .and_then(|q| q.policy.as_ref())
            .unwrap_or(&limits.default_policy)
    }

    /// Refuses storing `body` when the machine would hold more than `max_stored_bytes`.
    fn check_capacity(&self, limits: &Limits, body: &Body) -> Result<(), Rejection> {
        let after = self.stored_bytes.saturating_add(size64(body));
        if after > limits.max_stored_bytes {
            return Err(Rejection::OverCapacity {
                stored: self.stored_bytes,
                limit: limits.max_stored_bytes,
            });
        }
        Ok(())
    }

    fn send(
        &mut self,
        limits: &Limits,
        queue: QueueKey,
        msg: Body,
        at_ms: u64,
    ) -> Result<Outcome, Rejection> {
        limits.check(&msg)?;
        if matches!(queue, QueueKey::Subscription { .. }) {
            return Err(Rejection::NotAQueue { queue });
        }
        let limit = self.policy(limits, &queue).max_depth;
        let depth = self.queues.get(&queue).map_or(0, |q| q.messages.len()) as u64;
        if depth >= limit {
            return Err(Rejection::Full {
                queue,
                depth,
                limit,
            });
        }
        self.check_capacity(limits, &msg)?;
        let size = size64(&msg);
        self.stored_bytes += size;
        let q = self.queues.entry(queue).or_default();
        q.next_id += 1;
        let id = q.next_id;
        q.messages.insert(
            id,
            Stored {
                body: Some(msg),
                enqueued_ms: at_ms,
                attempts: 0,
                not_before_ms: 0,
            },
        );
        q.sent_total += 1;
        q.last_id = id;
        Ok(Outcome::Sent { id })
    }

    fn publish(
        &mut self,
        limits: &Limits,
        tenant: String,
        topic: String,
        msg: Body,
        at_ms: u64,
    ) -> Result<Outcome, Rejection> {
        limits.check(&msg)?;
        let key = (tenant, topic);
        let targets: Vec<QueueKey> = self
            .subscriptions
            .get(&key)
            .into_iter()
            .flatten()
            .filter(|(_, filter)| filter_matches(filter, &msg.attributes))
            .map(|(subscriber, _)| QueueKey::Subscription {
                tenant: key.0.clone(),
                topic: key.1.clone(),
                subscriber: subscriber.clone(),
            })
            .collect();
        // All or nothing: refuse before changing anything.
        for target in &targets {
            let depth = self.queues.get(target).map_or(0, |q| q.messages.len()) as u64;
            let limit = self.policy(limits, target).max_depth;
            if depth >= limit {
                return Err(Rejection::Full {
                    queue: target.clone(),
                    depth,
                    limit,
                });
            }
        }
        if !targets.is_empty() {
            self.check_capacity(limits, &msg)?;
            self.stored_bytes += size64(&msg);
        }
        let log = self.topics.entry(key).or_default();
        log.next_id += 1;
        let id = log.next_id;
        if !targets.is_empty() {
            log.entries.insert(
                id,
                Retained {
                    body: msg,
                    refs: targets.len() as u32,
                },
            );
        }
        for target in &targets {
            let q = self.queues.entry(target.clone()).or_default();
            q.messages.insert(
                id,
                Stored {
                    body: None,
                    enqueued_ms: at_ms,
                    attempts: 0,
                    not_before_ms: 0,
                },
            );
            q.sent_total += 1;
            q.last_id = q.last_id.max(id);
        }
        Ok(Outcome::Published {
            id,
            delivered_to: targets.len() as u32,
        })
    }

    /// Drops one reference to a retained publication; returns its body when asked to.
    fn release(&mut self, queue: &QueueKey, id: u64, take: bool) -> Option<Body> {
        let QueueKey::Subscription { tenant, topic, .. } = queue else {
            return None;
        };
        let log = self.topics.get_mut(&(tenant.clone(), topic.clone()))?;
        let entry = log.entries.get_mut(&id)?;
        entry.refs = entry.refs.saturating_sub(1);
        if entry.refs == 0 {
            let body = log.entries.remove(&id).map(|e| e.body)?;
            self.stored_bytes = self.stored_bytes.saturating_sub(size64(&body));
            return Some(body);
        }
        take.then(|| entry.body.clone())
    }

    fn ack(&mut self, queue: &QueueKey, id: u64) -> bool {
        let Some(q) = self.queues.get_mut(queue) else {
            return false;
        };
        let Some(stored) = q.messages.remove(&id) else {
            return false;
        };
        q.acked_total += 1;
        match &stored.body {
            Some(body) => self.stored_bytes = self.stored_bytes.saturating_sub(size64(body)),
            None => {
                self.release(queue, id, false);
            }
        }
        true
    }

    fn fail(
        &mut self,
        limits: &Limits,
        queue: &QueueKey,
        id: u64,
        attempt: u32,
        error: String,
        at_ms: u64,
    ) -> Outcome {
        let policy = self.policy(limits, queue).clone();
        let stale = Outcome::Failed {
            counted: false,
            dead: false,
        };
        let Some(q) = self.queues.get_mut(queue) else {
            return stale;
        };
        let Some(stored) = q.messages.get_mut(&id) else {
            return stale;
        };
        if stored.attempts.checked_add(1) != Some(attempt) {
            return stale;
        }
        stored.attempts = attempt;
        if attempt < policy.max_attempts {
            stored.not_before_ms = at_ms.saturating_add(backoff_ms(&policy, attempt));
            return Outcome::Failed {
                counted: true,
                dead: false,
            };
        }
        let Some(stored) = q.messages.remove(&id) else {
            return stale;
        };
        let body = match stored.body {
            Some(body) => {
                self.stored_bytes = self.stored_bytes.saturating_sub(size64(&body));
                body
            }
            None => self.release(queue, id, true).unwrap_or_default(),
        };
        // The dead letter holds its own copy (may exceed the limit: failures never block).
        self.stored_bytes = self.stored_bytes.saturating_add(size64(&body));
        let dead = Dead {
            body,
            enqueued_ms: stored.enqueued_ms,
            attempts: stored.attempts,
            last_error: error,
            dead_at_ms: at_ms,
        };
        if let Some(q) = self.queues.get_mut(queue) {
            q.dead.insert(id, dead);
        }
        Outcome::Failed {
            counted: true,
            dead: true,
        }
    }

    /// Ids of `queue`'s dead letters selected by `ids` (all when `None`).
    fn selected_dead(q: &QueueData, ids: Option<Vec<u64>>) -> Vec<u64> {
        match ids {
            None => q.dead.keys().copied().collect(),
            Some(ids) => ids
                .into_iter()
                .filter(|id| q.dead.contains_key(id))
                .collect(),
        }
    }

    fn replay(&mut self, queue: &QueueKey, ids: Option<Vec<u64>>) -> usize {
        let Some(q) = self.queues.get_mut(queue) else {
            return 0;
        };
        let mut moved = 0;
        for id in Self::selected_dead(q, ids) {
            if let Some(dead) = q.dead.remove(&id) {
                q.messages.insert(
                    id,
                    Stored {
                        body: Some(dead.body),
                        enqueued_ms: dead.enqueued_ms,
                        attempts: 0,
                        not_before_ms: 0,
                    },
                );
                moved += 1;
            }
        }
        moved
    }

    fn purge_dead(&mut self, queue: &QueueKey, ids: Option<Vec<u64>>) -> usize {
        let Some(q) = self.queues.get_mut(queue) else {
            return 0;
        };
        let mut removed = 0;
        for id in Self::selected_dead(q, ids) {
            if let Some(dead) = q.dead.remove(&id) {
                self.stored_bytes = self.stored_bytes.saturating_sub(size64(&dead.body));
                removed += 1;
            }
        }
        removed
    }

    fn set_subscriptions(&mut self, subscriptions: Vec<WireSubscription>) {
        let mut table: BTreeMap<TopicKey, BTreeMap<String, BTreeMap<String, String>>> =
            BTreeMap::new();
        for s in subscriptions {
            table
                .entry((s.tenant, s.topic))
                .or_default()
                .insert(s.subscriber, s.filter);
        }
        self.subscriptions = table;
    }
}

/// The state and the limits, shared between the raft driver (writer) and the handle (reader).
#[derive(Debug)]
pub(crate) struct Shared {
    state: RwLock<MachineState>,
    pub(crate) limits: Limits,
}

impl Shared {
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, MachineState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, MachineState> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The bus as a [`StateMachine`]: decodes each committed [`Command`], applies it, and answers
/// with an encoded [`Outcome`]. Cloning shares the state.
#[derive(Clone, Debug)]
pub struct BusMachine {
    pub(crate) shared: Arc<Shared>,
}

impl BusMachine {
    /// An empty machine enforcing `config`'s limits (message size, default policy) and
    /// holding at most `max_stored_bytes` of message bodies. Every member of a group must use
    /// the same limits: they decide what is applied.
    pub fn new(config: &BusConfig, max_stored_bytes: u64) -> Self {
        BusMachine {
            shared: Arc::new(Shared {
                state: RwLock::new(MachineState::default()),
                limits: Limits::new(config, max_stored_bytes),
            }),
        }
    }

    /// Applies an encoded command directly (what raft does on commit); for tests and tools.
    pub fn apply_command(&self, command: &Command) -> Outcome {
        self.shared
            .write()
            .apply(&self.shared.limits, command.clone())
    }
}

impl StateMachine for BusMachine {
    fn apply(&mut self, _index: u64, command: &[u8]) -> Vec<u8> {
        let outcome = match decode::<Command>(command) {
            Ok(command) => self.shared.write().apply(&self.shared.limits, command),
            Err(e) => {
                tracing::warn!(error = %e, "skipping an undecodable bus command");
                Outcome::Rejected(Rejection::Malformed(e))
            }
        };
        encode(&outcome)
    }

    fn snapshot(&self) -> Vec<u8> {
        encode(&*self.shared.read())
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        // An empty snapshot is the initial state (e.g. a raft snapshot with no data yet).
        let state: MachineState = if snapshot.is_empty() {
            MachineState::default()
        } else {
            decode(snapshot)?
        };
        *self.shared.write() = state;
        Ok(())
    }
}
