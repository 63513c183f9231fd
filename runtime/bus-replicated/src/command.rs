//! The replicated log's vocabulary: the [`Command`]s proposed to raft, the [`Outcome`]s the
//! machine answers with, and their compact binary encoding (postcard).
//!
//! The wire types mirror cloudware-bus's public types ([`QueueId`], [`QueuePolicy`],
//! [`Subscription`]) in a form every member decodes identically: externally tagged enums and
//! durations in milliseconds (postcard cannot decode internally tagged enums). They are
//! converted at the [`ReplicatedBus`](crate::ReplicatedBus) boundary, so callers only see the
//! cloudware-bus types.

use std::collections::BTreeMap;
use std::time::Duration;

use cloudware_bus::{NewMessage, QueueId, QueueKind, QueuePolicy, Subscription};
use serde::{Deserialize, Serialize};

/// A queue's identity in the machine (see [`QueueId`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum QueueKey {
    /// A tenant's named queue.
    Queue {
        /// The owning tenant.
        tenant: String,
        /// The queue's name.
        name: String,
    },
    /// The backlog of one subscription of a tenant's topic.
    Subscription {
        /// The owning tenant.
        tenant: String,
        /// The topic.
        topic: String,
        /// The subscriber.
        subscriber: String,
    },
}

impl From<&QueueId> for QueueKey {
    fn from(id: &QueueId) -> Self {
        match &id.kind {
            QueueKind::Queue { name } => QueueKey::Queue {
                tenant: id.tenant.clone(),
                name: name.clone(),
            },
            QueueKind::Subscription { topic, subscriber } => QueueKey::Subscription {
                tenant: id.tenant.clone(),
                topic: topic.clone(),
                subscriber: subscriber.clone(),
            },
        }
    }
}

impl From<&QueueKey> for QueueId {
    fn from(key: &QueueKey) -> Self {
        match key {
            QueueKey::Queue { tenant, name } => QueueId::queue(tenant, name),
            QueueKey::Subscription {
                tenant,
                topic,
                subscriber,
            } => QueueId::subscription(tenant, topic, subscriber),
        }
    }
}

impl QueueKey {
    /// The tenant owning the queue.
    pub fn tenant(&self) -> &str {
        match self {
            QueueKey::Queue { tenant, .. } | QueueKey::Subscription { tenant, .. } => tenant,
        }
    }

    /// The queue name, or the topic of a subscription.
    pub fn source(&self) -> &str {
        match self {
            QueueKey::Queue { name, .. } => name,
            QueueKey::Subscription { topic, .. } => topic,
        }
    }
}

/// A [`QueuePolicy`] with durations in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WirePolicy {
    /// See [`QueuePolicy::max_depth`].
    pub max_depth: u64,
    /// See [`QueuePolicy::max_attempts`].
    pub max_attempts: u32,
    /// See [`QueuePolicy::backoff_initial`].
    pub backoff_initial_ms: u64,
    /// See [`QueuePolicy::backoff_max`].
    pub backoff_max_ms: u64,
    /// See [`QueuePolicy::lease_timeout`].
    pub lease_timeout_ms: u64,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl From<&QueuePolicy> for WirePolicy {
    fn from(p: &QueuePolicy) -> Self {
        WirePolicy {
            max_depth: p.max_depth,
            max_attempts: p.max_attempts,
            backoff_initial_ms: millis(p.backoff_initial),
            backoff_max_ms: millis(p.backoff_max),
            lease_timeout_ms: millis(p.lease_timeout),
        }
    }
}

impl From<&WirePolicy> for QueuePolicy {
    fn from(p: &WirePolicy) -> Self {
        QueuePolicy {
            max_depth: p.max_depth,
            max_attempts: p.max_attempts,
            backoff_initial: Duration::from_millis(p.backoff_initial_ms),
            backoff_max: Duration::from_millis(p.backoff_max_ms),
            lease_timeout: Duration::from_millis(p.lease_timeout_ms),
        }
    }
}

/// A message body: payload and attributes (see [`NewMessage`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    /// Opaque payload.
    pub payload: Vec<u8>,
    /// Key/value attributes.
    pub attributes: Vec<(String, String)>,
}

impl From<NewMessage> for Body {
    fn from(m: NewMessage) -> Self {
        Body {
            payload: m.payload,
            attributes: m.attributes,
        }
    }
}

/// A [`Subscription`] on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireSubscription {
    /// The owning tenant.
    pub tenant: String,
    /// The topic.
    pub topic: String,
    /// The subscriber, unique within the topic.
    pub subscriber: String,
    /// Attributes a message must carry with equal values; empty matches all.
    pub filter: BTreeMap<String, String>,
}

impl From<Subscription> for WireSubscription {
    fn from(s: Subscription) -> Self {
        WireSubscription {
            tenant: s.tenant,
            topic: s.topic,
            subscriber: s.subscriber,
            filter: s.filter,
        }
    }
}

/// One replicated state change. Every field a decision depends on (times included) is in the
/// command, so applying it is deterministic on every member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Appends a message to a named queue; answers [`Outcome::Sent`].
    Send {
        /// The queue (must be [`QueueKey::Queue`]).
        queue: QueueKey,
        /// The message.
        msg: Body,
        /// The proposer's clock, ms since the Unix epoch.
        at_ms: u64,
    },
    /// Publishes to a topic: stored once in the topic's log, pending for every matching
    /// subscription; answers [`Outcome::Published`].
    Publish {
        /// The owning tenant.
        tenant: String,
        /// The topic.
        topic: String,
        /// The message.
        msg: Body,
        /// The proposer's clock, ms since the Unix epoch.
        at_ms: u64,
    },
    /// Removes a delivered message (its handler returned `Ok`).
    Ack {
        /// The queue.
        queue: QueueKey,
        /// The message id.
        id: u64,
    },
    /// Records a failed delivery: retried after the policy's backoff, or dead-lettered after
    /// `max_attempts`.
    Fail {
        /// The queue.
        queue: QueueKey,
        /// The message id.
        id: u64,
        /// The attempt that failed (1-based); ignored unless it is the message's next attempt,
        /// so a stale report (e.g. from a deposed leader) never counts twice.
        attempt: u32,
        /// Why it failed.
        error: String,
        /// The proposer's clock, ms since the Unix epoch.
        at_ms: u64,
    },
    /// Moves dead letters (all, or `ids`) back into the queue with their attempts reset.
    Replay {
        /// The queue.
        queue: QueueKey,
        /// Which dead letters; `None` for all.
        ids: Option<Vec<u64>>,
    },
    /// Deletes dead letters (all, or `ids`).
    PurgeDead {
        /// The queue.
        queue: QueueKey,
        /// Which dead letters; `None` for all.
        ids: Option<Vec<u64>>,
    },
    /// Sets a queue's policy (depth limit, attempts, backoff, lease).
    SetPolicy {
        /// The queue.
        queue: QueueKey,
        /// The policy.
        policy: WirePolicy,
    },
    /// Replaces the whole set of subscriptions.
    SetSubscriptions {
        /// The new set; a subscriber listed twice for one topic keeps its last entry.
        subscriptions: Vec<WireSubscription>,
    },
}

/// Why the machine refused a command. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// The queue (for a publication: one matching subscription's queue) is at its depth limit.
    Full {
        /// The full queue.
        queue: QueueKey,
        /// Its depth.
        depth: u64,
        /// Its `max_depth`.
        limit: u64,
    },
    /// The message (payload plus attributes) is larger than the limit.
    TooLarge {
        /// Its size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The machine already holds `limit` bytes of message bodies (the bound that keeps a
    /// snapshot within one raft transport frame).
    OverCapacity {
        /// Bytes held.
        stored: u64,
        /// The configured bound.
        limit: u64,
    },
    /// `Send` addressed a subscription's queue; publish to its topic instead.
    NotAQueue {
        /// The addressed queue.
        queue: QueueKey,
    },
    /// The command could not be decoded (a member of a newer version?).
    Malformed(String),
}

/// What applying a command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// `Send` stored the message under `id`.
    Sent {
        /// The message id, monotonic per queue.
        id: u64,
    },
    /// `Publish` stored the publication.
    Published {
        /// The publication id, monotonic per topic.
        id: u64,
        /// How many subscriptions matched.
        delivered_to: u32,
    },
    /// `Ack` ran; `removed` is false if the message was already gone.
    Acked {
        /// Whether a message was removed.
        removed: bool,
    },
    /// `Fail` ran.
    Failed {
        /// Whether the report counted (false: stale or the message is gone).
        counted: bool,
        /// Whether the message moved to the dead letters.
        dead: bool,
    },
    /// `Replay` or `PurgeDead` moved or deleted `count` dead letters.
    Count {
        /// How many.
        count: usize,
    },
    /// A configuration command was applied.
    Done,
    /// The command was refused; nothing changed.
    Rejected(Rejection),
}

/// Encodes a command or outcome (postcard: compact, deterministic).
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Encoding plain data types into a Vec cannot fail; an empty vector would decode as an
    // error on the other side, never as a wrong value.
    postcard::to_allocvec(value).unwrap_or_default()
}

/// Decodes a command or outcome.
pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_ids_convert_both_ways() {
        let queue = QueueId::subscription("t", "orders", "billing");
        let key = QueueKey::from(&queue);
        assert_eq!(QueueId::from(&key), queue);
        let policy = QueuePolicy::default();
        assert_eq!(QueuePolicy::from(&WirePolicy::from(&policy)), policy);
        let command = Command::Fail {
            queue: key,
            id: 7,
            attempt: 2,
            error: "boom".into(),
            at_ms: 1,
        };
        let bytes = encode(&command);
        assert_eq!(decode::<Command>(&bytes).unwrap(), command);
        assert!(decode::<Command>(&[0xff, 0xff]).is_err());
    }
}
