//! Topics: subscriptions (configuration set by the node's reconciler) and `publish`, which
//! writes a message once to the topic's durable log (see [`crate::log`]) and makes it pending
//! for every subscription whose filter matches.
//!
//! Each subscription has its own durable cursor and its own queue identity
//! ([`QueueKind::Subscription`]): its own backlog, retries and dead letters, so a slow or
//! failing subscriber never holds the others back, until its backlog reaches `max_depth`.
//!
//! Subscription configurations (filter, and where a removed one stopped) are stored, so a
//! restart knows which log entries each subscription still has to settle. A changed filter
//! applies to later publications; after a restart it applies to the whole unsettled backlog.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::bus::Bus;
use crate::bus::now_ms;
use crate::error::SendError;
use crate::queue::QueueState;
use crate::store::{self, MessageRecord, SubRecord};
use crate::types::{NewMessage, PublishReceipt, QueueId, QueueKind};

/// One subscriber's interest in one topic of a tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The tenant owning the topic.
    pub tenant: String,
    /// The topic.
    pub topic: String,
    /// The subscriber's name, unique within the topic.
    pub subscriber: String,
    /// Attributes a message must carry (with equal values) to be delivered; empty matches all.
    #[serde(default)]
    pub filter: BTreeMap<String, String>,
}

impl Subscription {
    /// The queue that holds this subscription's backlog.
    pub fn queue_id(&self) -> QueueId {
        QueueId::subscription(&self.tenant, &self.topic, &self.subscriber)
    }

    /// Whether a message with `attributes` passes the filter: every filter key is present
    /// with an equal value.
    pub fn matches(&self, attributes: &[(String, String)]) -> bool {
        filter_matches(&self.filter, attributes)
    }
}

/// Whether `attributes` carry every key of `filter` with an equal value.
pub(crate) fn filter_matches(
    filter: &BTreeMap<String, String>,
    attributes: &[(String, String)],
) -> bool {
    filter
        .iter()
        .all(|(k, v)| attributes.iter().any(|(ak, av)| ak == k && av == v))
}

type TopicKey = (String, String);
/// A topic's subscriptions with their queue states, sorted by destination.
type Entries = Arc<[(Subscription, Arc<QueueState>)]>;
type Table = HashMap<TopicKey, Entries>;

/// The subscription table.
#[derive(Default)]
pub(crate) struct Topics {
    subscriptions: RwLock<Table>,
}

impl Topics {
    fn matching(&self, key: &TopicKey) -> Option<Entries> {
        self.subscriptions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }
}

impl Bus {
    /// Replaces the whole set of subscriptions. A new subscription starts at the end of its
    /// topic's log. A removed subscription keeps its backlog (and its consumer, if one runs)
    /// but receives nothing new. A subscriber listed twice for one topic keeps its last entry.
    pub fn set_subscriptions(&self, subscriptions: Vec<Subscription>) {
        let inner = &self.inner;
        let mut grouped: HashMap<TopicKey, BTreeMap<String, Subscription>> = HashMap::new();
        for s in subscriptions {
            grouped
                .entry((s.tenant.clone(), s.topic.clone()))
                .or_default()
                .insert(s.subscriber.clone(), s);
        }
        let mut batch = sled::Batch::default();
        let mut changed = false;
        let mut active = HashSet::new();
        let mut table = Table::new();
        for (key, subs) in grouped {
            let mut entries = Vec::with_capacity(subs.len());
            for s in subs.into_values() {
                let state = inner.queues.get_or_create(&s.queue_id());
                let last = state.log.as_ref().map_or(0, |l| l.last());
                let want = SubRecord {
                    end: None,
                    filter: s.filter.clone(),
                };
                let mut q = state.lock();
                if q.sub.as_ref() != Some(&want) {
                    // New, or re-added with nothing pending: start at the end of the log.
                    let restart = q.sub.as_ref().is_none_or(|r| r.end.is_some());
                    if restart && q.log_pending.is_empty() && last > q.cursor {
                        q.cursor = last;
                        batch.insert(
                            store::prefix(store::CURSOR, &state.dest),
                            &store::encode_next_id(last)[..],
                        );
                    }
                    batch.insert(
                        store::prefix(store::SUB, &state.dest),
                        store::encode_sub(&want),
                    );
                    q.sub = Some(want);
                    changed = true;
                }
                drop(q);
                active.insert(state.id.clone());
                entries.push((s, state));
            }
            entries.sort_by(|a, b| a.1.dest.cmp(&b.1.dest));
            table.insert(key, entries.into());
        }
        // Swap first, so publications after the removal points below skip removed ones.
        *inner
            .topics
            .subscriptions
            .write()
            .unwrap_or_else(|p| p.into_inner()) = table;
        for state in inner.queues.all() {
            let Some(log) = &state.log else { continue };
            if active.contains(&state.id) {
                continue;
            }
            let mut q = state.lock();
            if let Some(rec) = q.sub.as_mut().filter(|r| r.end.is_none()) {
                rec.end = Some(log.last());
                batch.insert(
                    store::prefix(store::SUB, &state.dest),
                    store::encode_sub(rec),
                );
                changed = true;
            }
        }
        if changed {
            match inner.tree.apply_batch(batch) {
                // Later publications wait for later generations, so this is durable first.
                Ok(()) => {
                    inner.commit.mark_written();
                }
                Err(e) => tracing::error!(error = %e, "storing subscriptions failed"),
            }
        }
    }

    /// The current subscriptions, sorted by tenant, topic and subscriber.
    pub fn subscriptions(&self) -> Vec<Subscription> {
        let table = self
            .inner
            .topics
            .subscriptions
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Subscription> = table
            .values()
            .flat_map(|s| s.iter().map(|(s, _)| s.clone()))
            .collect();
        out.sort_by(|a, b| {
            (&a.tenant, &a.topic, &a.subscriber).cmp(&(&b.tenant, &b.topic, &b.subscriber))
        });
        out
    }

    /// The queue of `subscriber`'s subscription to `tenant`'s `topic`.
    pub fn subscription_queue(&self, tenant: &str, topic: &str, subscriber: &str) -> QueueId {
        QueueId::subscription(tenant, topic, subscriber)
    }

    /// Publishes `msg` to `tenant`'s `topic`: writes it once to the topic's log, makes it
    /// pending for every subscription whose filter matches, and returns once it is durable.
    ///
    /// All or nothing: if any matching subscription already has `max_depth` unsettled
    /// entries, nothing is stored and [`SendError::Full`] names that subscription's queue.
    /// With no matching subscription the message is not stored (`delivered_to == 0`) but
    /// still gets a publication id.
    pub async fn publish(
        &self,
        tenant: &str,
        topic: &str,
        msg: NewMessage,
    ) -> Result<PublishReceipt, SendError> {
        let inner = &self.inner;
        inner.check_size(&msg)?;
        let key = (tenant.to_string(), topic.to_string());
        let targets: Vec<Arc<QueueState>> = inner
            .topics
            .matching(&key)
            .map(|subs| {
                subs.iter()
                    .filter(|(s, _)| s.matches(&msg.attributes))
                    .map(|(_, q)| q.clone())
                    .collect()
            })
            .unwrap_or_default();
        let log = inner.queues.log(tenant, topic);
        let (id, generation) = {
            let mut next = log.next.lock().unwrap_or_else(|p| p.into_inner());
            let id = *next;
            // Sorted by destination (see `set_subscriptions`), so locks never deadlock.
            let mut guards: Vec<_> = targets.iter().map(|t| t.lock()).collect();
            for (t, g) in targets.iter().zip(&guards) {
                if g.depth >= g.policy.max_depth {
                    return Err(SendError::Full {
                        queue: t.id.clone(),
                        depth: g.depth,
                        limit: g.policy.max_depth,
                    });
                }
            }
            if targets.is_empty() {
                inner
                    .tree
                    .insert(store::topic_key(tenant, topic), &(id + 1).to_be_bytes()[..])?;
            } else {
                let record = MessageRecord {
                    attempts: 0,
                    enqueued_ms: now_ms(),
                    attributes: msg.attributes,
                    payload: msg.payload,
                };
                let encoded = store::encode_message(
                    0,
                    record.enqueued_ms,
                    &record.attributes,
                    &record.payload,
                );
                inner
                    .tree
                    .insert(store::log_key(&log.prefix, id), encoded)?;
                log.cache.insert(id, Arc::new(record));
            }
            for g in &mut guards {
                g.ready.insert(id);
                g.log_pending.insert(id);
                g.depth += 1;
                g.next_id = g.next_id.max(id + 1);
            }
            drop(guards);
            log.set_last(id);
            *next = id + 1;
            (id, inner.commit.mark_written())
        };
        for t in &targets {
            t.notify.notify_waiters();
        }
        inner
            .commit
            .wait(generation)
            .await
            .map_err(SendError::Storage)?;
        if tracing::enabled!(tracing::Level::TRACE) {
            let to: Vec<_> = targets
                .iter()
                .filter_map(|t| match &t.id.kind {
                    QueueKind::Subscription { subscriber, .. } => Some(subscriber.as_str()),
                    QueueKind::Queue { .. } => None,
                })
                .collect();
            tracing::trace!(tenant, topic, id, ?to, "published");
        }
        Ok(PublishReceipt {
            id,
            delivered_to: targets.len() as u32,
        })
    }
}
