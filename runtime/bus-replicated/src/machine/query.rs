//! Read-only queries of [`MachineState`] for the handle and the consumers: statistics,
//! queue listing, dead letters, subscriptions, and the due messages a leader leases.

use std::collections::HashSet;

use cloudware_bus::{DeadLetter, Delivery, QueueId, QueuePolicy, QueueStats};

use super::{Limits, MachineState};
use crate::command::{Body, QueueKey, WireSubscription};

impl MachineState {
    /// The current subscriptions, sorted.
    pub(crate) fn subscriptions(&self) -> Vec<WireSubscription> {
        self.subscriptions
            .iter()
            .flat_map(|((tenant, topic), subs)| {
                subs.iter()
                    .map(move |(subscriber, filter)| WireSubscription {
                        tenant: tenant.clone(),
                        topic: topic.clone(),
                        subscriber: subscriber.clone(),
                        filter: filter.clone(),
                    })
            })
            .collect()
    }

    /// The policy in effect for `queue`.
    pub(crate) fn queue_policy(&self, limits: &Limits, queue: &QueueKey) -> QueuePolicy {
        QueuePolicy::from(self.policy(limits, queue))
    }

    /// Counters of `queue` at `now_ms`; `in_flight` are ids leased on this host.
    pub(crate) fn stats(
        &self,
        queue: &QueueKey,
        now_ms: u64,
        in_flight: &HashSet<u64>,
    ) -> QueueStats {
        let Some(q) = self.queues.get(queue) else {
            return QueueStats::default();
        };
        let mut stats = QueueStats {
            depth: q.messages.len() as u64,
            dead: q.dead.len() as u64,
            sent_total: q.sent_total,
            acked_total: q.acked_total,
            last_id: q.last_id,
            ..QueueStats::default()
        };
        for (id, m) in &q.messages {
            if in_flight.contains(id) {
                stats.in_flight += 1;
            } else if m.not_before_ms > now_ms {
                stats.delayed += 1;
            } else {
                stats.ready += 1;
            }
        }
        stats
    }

    /// Every queue (of `tenant`, if given), sorted.
    pub(crate) fn queue_keys(&self, tenant: Option<&str>) -> Vec<QueueKey> {
        self.queues
            .keys()
            .filter(|k| tenant.is_none_or(|t| k.tenant() == t))
            .cloned()
            .collect()
    }

    /// Up to `limit` dead letters of `queue` with ids above `after`.
    pub(crate) fn dead_letters(
        &self,
        queue: &QueueKey,
        after: Option<u64>,
        limit: usize,
    ) -> Vec<DeadLetter> {
        let Some(q) = self.queues.get(queue) else {
            return Vec::new();
        };
        let start = match after {
            Some(u64::MAX) => return Vec::new(),
            Some(after) => after + 1,
            None => 0,
        };
        q.dead
            .range(start..)
            .take(limit)
            .map(|(&id, d)| DeadLetter {
                id,
                payload: d.body.payload.clone(),
                attributes: d.body.attributes.clone(),
                attempts: d.attempts,
                last_error: d.last_error.clone(),
                dead_at_ms: d.dead_at_ms,
            })
            .collect()
    }

    /// Up to `limit` messages of `queue` due at `now_ms` and not in `leased`, in id order,
    /// as deliveries; and the earliest time a not-yet-due one becomes due.
    pub(crate) fn due(
        &self,
        queue: &QueueKey,
        now_ms: u64,
        leased: &HashSet<u64>,
        limit: usize,
    ) -> (Vec<Delivery>, Option<u64>) {
        let Some(q) = self.queues.get(queue) else {
            return (Vec::new(), None);
        };
        let mut out = Vec::new();
        let mut next = None::<u64>;
        let id_of = QueueId::from(queue);
        for (&id, m) in &q.messages {
            if leased.contains(&id) {
                continue;
            }
            if m.not_before_ms > now_ms {
                next = Some(next.map_or(m.not_before_ms, |n| n.min(m.not_before_ms)));
                continue;
            }
            if out.len() >= limit {
                // Something is due now; no timer needed.
                next = Some(now_ms);
                break;
            }
            let body = match &m.body {
                Some(body) => Some(body),
                None => self.retained(queue, id),
            };
            let Some(body) = body else { continue };
            out.push(Delivery {
                queue: id_of.clone(),
                id,
                source: queue.source().to_string(),
                payload: body.payload.clone(),
                attributes: body.attributes.clone(),
                attempt: m.attempts.saturating_add(1),
            });
        }
        (out, next)
    }

    fn retained(&self, queue: &QueueKey, id: u64) -> Option<&Body> {
        let QueueKey::Subscription { tenant, topic, .. } = queue else {
            return None;
        };
        let log = self.topics.get(&(tenant.clone(), topic.clone()))?;
        log.entries.get(&id).map(|e| &e.body)
    }

    /// Bytes of message bodies held.
    pub(crate) fn stored_bytes(&self) -> u64 {
        self.stored_bytes
    }

    /// Publications retained in topic logs (for tests and metrics).
    pub(crate) fn retained_count(&self) -> usize {
        self.topics.values().map(|t| t.entries.len()).sum()
    }
}
