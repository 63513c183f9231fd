//! The bus's public value types: queue identities, messages, per-queue policies, the bus
//! configuration, deliveries handed to consumers, statistics and dead letters.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Identifies one durable queue: a tenant's named queue, or the private queue that carries one
/// topic subscription's backlog.
///
/// The two kinds live under different key prefixes, so a subscription queue can never collide
/// with a user queue whatever the names are.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QueueId {
    /// The tenant owning the queue.
    pub tenant: String,
    /// Which queue of the tenant.
    pub kind: QueueKind,
}

/// The two kinds of queue: named by a developer, or created for a topic subscription.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QueueKind {
    /// A named queue that senders address directly ("async service request").
    Queue {
        /// The queue's name, unique within the tenant.
        name: String,
    },
    /// The backlog of one subscriber of one topic ("publish/subscribe").
    Subscription {
        /// The topic the subscription listens to.
        topic: String,
        /// The subscriber's name, unique within the topic.
        subscriber: String,
    },
}

impl QueueId {
    /// A tenant's named queue.
    pub fn queue(tenant: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            tenant: tenant.into(),
            kind: QueueKind::Queue { name: name.into() },
        }
    }

    /// The private queue of `subscriber`'s subscription to `tenant`'s `topic`.
    pub fn subscription(
        tenant: impl Into<String>,
        topic: impl Into<String>,
        subscriber: impl Into<String>,
    ) -> Self {
        Self {
            tenant: tenant.into(),
            kind: QueueKind::Subscription {
                topic: topic.into(),
                subscriber: subscriber.into(),
            },
        }
    }

    /// Where messages of this queue come from: the queue name, or the topic name.
    pub fn source(&self) -> &str {
        match &self.kind {
            QueueKind::Queue { name } => name,
            QueueKind::Subscription { topic, .. } => topic,
        }
    }

    /// Whether this is a topic subscription's queue.
    pub fn is_subscription(&self) -> bool {
        matches!(self.kind, QueueKind::Subscription { .. })
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            QueueKind::Queue { name } => write!(f, "{}/{}", self.tenant, name),
            QueueKind::Subscription { topic, subscriber } => {
                write!(f, "{}/topic:{}#{}", self.tenant, topic, subscriber)
            }
        }
    }
}

/// A message as a sender hands it to the bus.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewMessage {
    /// Opaque body.
    pub payload: Vec<u8>,
    /// Key/value attributes; topic subscription filters match on them.
    pub attributes: Vec<(String, String)>,
}

impl NewMessage {
    /// A message with a payload and no attributes.
    pub fn new(payload: impl Into<Vec<u8>>) -> Self {
        Self {
            payload: payload.into(),
            attributes: Vec::new(),
        }
    }

    /// Adds an attribute.
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.push((key.into(), value.into()));
        self
    }
}

/// Limits and retry behaviour of one queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueuePolicy {
    /// Most messages the queue holds (ready, delayed and in flight); sends beyond are refused.
    pub max_depth: u64,
    /// Failed deliveries after which a message moves to the dead-letter store.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles for every further one.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Longest delay between attempts.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// How long a handler may hold a message before the attempt counts as failed.
    #[serde(with = "humantime_serde")]
    pub lease_timeout: Duration,
}

impl Default for QueuePolicy {
    fn default() -> Self {
        Self {
            max_depth: 100_000,
            max_attempts: 5,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            lease_timeout: Duration::from_secs(60),
        }
    }
}

impl QueuePolicy {
    /// The delay before the attempt after failed attempt number `failed` (1-based):
    /// `backoff_initial * 2^(failed-1)`, capped at `backoff_max`.
    pub fn backoff(&self, failed: u32) -> Duration {
        let exp = failed.saturating_sub(1).min(31);
        self.backoff_initial
            .checked_mul(1u32 << exp)
            .unwrap_or(self.backoff_max)
            .min(self.backoff_max)
    }
}

/// Configuration of a [`Bus`](crate::Bus).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusConfig {
    /// Largest payload accepted by `send` and `publish`.
    pub max_payload_bytes: usize,
    /// Policy of every queue that has none set explicitly.
    pub default_policy: QueuePolicy,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: 1024 * 1024,
            default_policy: QueuePolicy::default(),
        }
    }
}

/// One delivery of a message to a consumer's handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The queue the message is taken from.
    pub queue: QueueId,
    /// The message id, monotonic per queue.
    pub id: u64,
    /// The queue name or, for a subscription, the topic name.
    pub source: String,
    /// The message body.
    pub payload: Vec<u8>,
    /// The message attributes.
    pub attributes: Vec<(String, String)>,
    /// 1 for the first delivery, incremented after every failed one.
    pub attempt: u32,
}

/// Counters of one queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Messages stored in the queue: ready, waiting for a retry, or in flight.
    pub depth: u64,
    /// Messages ready for delivery now.
    pub ready: u64,
    /// Messages waiting for their retry backoff to elapse.
    pub delayed: u64,
    /// Messages handed to a handler that has not finished yet.
    pub in_flight: u64,
    /// Messages in the dead-letter store.
    pub dead: u64,
    /// Messages ever accepted by the queue (ids are consecutive, so this is also the last id).
    pub sent_total: u64,
    /// Messages acknowledged since the bus was opened.
    pub acked_total: u64,
    /// The highest message id assigned so far (0 if none).
    pub last_id: u64,
}

/// A message that failed `max_attempts` times, kept for an operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The message's id in its queue.
    pub id: u64,
    /// The message body.
    pub payload: Vec<u8>,
    /// The message attributes.
    pub attributes: Vec<(String, String)>,
    /// How many deliveries failed.
    pub attempts: u32,
    /// The error of the last failed delivery.
    pub last_error: String,
    /// When the message was dead-lettered, in milliseconds since the Unix epoch.
    pub dead_at_ms: u64,
}

/// What `publish` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishReceipt {
    /// The publication's sequence number, monotonic per tenant and topic.
    pub id: u64,
    /// How many subscriptions matched and received the message.
    pub delivered_to: u32,
}

/// Group-commit counters: how many writes were made durable by how many flushes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitStats {
    /// Write batches handed to the flusher (sends, publishes, retries, acks …).
    pub writes: u64,
    /// Successful flushes (`fsync`s) so far.
    pub flushes: u64,
}
