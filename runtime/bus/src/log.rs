//! Topic logs and the in-memory message cache.
//!
//! Each topic has one durable log (`l` keys): `publish` writes a message once, whatever the
//! number of subscriptions. Each subscription is a queue whose ids are log ids: its
//! `log_pending` set holds the entries it still has to settle, and its durable *cursor* is the
//! highest id below every pending entry (the contiguous settled prefix). Out-of-order acks live
//! in memory only; after a restart everything after the cursor that matches the
//! subscription's filter is delivered again (at least once).
//!
//! A log entry is removed once every subscription's floor (cursor) has passed it; the removal
//! batch also records the topic's next id, so ids are never reused.
//!
//! The [`Cache`] keeps fresh messages in memory (within a shared byte [`Budget`]) so a
//! dispatcher hands them to handlers without reading them back from sled.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use crate::queue::QueueState;
use crate::store::{self, MessageRecord};

/// Removed log entries are gathered into batches of at least this many (unless the log is
/// drained), so garbage collection costs one sled batch per many acknowledgements.
const GC_BATCH: u64 = 256;

/// Bytes the caches of one bus may hold.
pub(crate) struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            limit,
        })
    }
}

fn cost(rec: &MessageRecord) -> usize {
    64 + rec.payload.len()
        + rec
            .attributes
            .iter()
            .map(|(k, v)| 48 + k.len() + v.len())
            .sum::<usize>()
}

/// Messages by id, kept in memory while the budget allows.
pub(crate) struct Cache {
    map: Mutex<BTreeMap<u64, Arc<MessageRecord>>>,
    budget: Arc<Budget>,
}

impl Cache {
    pub(crate) fn new(budget: Arc<Budget>) -> Self {
        Self {
            map: Mutex::new(BTreeMap::new()),
            budget,
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<MessageRecord>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `rec` as message `id` if the budget allows.
    pub(crate) fn insert(&self, id: u64, rec: Arc<MessageRecord>) {
        let c = cost(&rec);
        let used = self.budget.used.fetch_add(c, Ordering::Relaxed);
        if used + c > self.budget.limit {
            self.budget.used.fetch_sub(c, Ordering::Relaxed);
            return;
        }
        if let Some(old) = self.map().insert(id, rec) {
            self.budget.used.fetch_sub(cost(&old), Ordering::Relaxed);
        }
    }

    pub(crate) fn get(&self, id: u64) -> Option<Arc<MessageRecord>> {
        self.map().get(&id).cloned()
    }

    pub(crate) fn remove(&self, id: u64) {
        if let Some(old) = self.map().remove(&id) {
            self.budget.used.fetch_sub(cost(&old), Ordering::Relaxed);
        }
    }

    /// Drops every message with an id up to `id`.
    pub(crate) fn remove_through(&self, id: u64) {
        let mut map = self.map();
        let rest = map.split_off(&id.saturating_add(1));
        let freed: usize = map.values().map(|r| cost(r)).sum();
        *map = rest;
        self.budget.used.fetch_sub(freed, Ordering::Relaxed);
    }
}

/// One topic's log.
pub(crate) struct TopicLog {
    pub tenant: String,
    pub topic: String,
    /// The key prefix of the log's entries.
    pub prefix: Vec<u8>,
    /// The next publication id; `publish` holds it while it assigns, writes and fans out.
    pub next: Mutex<u64>,
    /// The highest id whose fan-out to the subscriptions' pending sets is complete.
    last: AtomicU64,
    /// Every entry up to this id has been removed from disk.
    collected: Mutex<u64>,
    /// Every subscription queue of the topic (configured or not). Weak: each queue holds its
    /// log (`QueueState::log`), and the bus's queue map keeps the queues alive, so strong
    /// references here would form a cycle that outlives the bus.
    pub subs: RwLock<Vec<Weak<QueueState>>>,
    /// Entries not yet collected.
    pub cache: Cache,
}

impl TopicLog {
    pub(crate) fn new(tenant: &str, topic: &str, budget: Arc<Budget>) -> Self {
        Self {
            tenant: tenant.to_string(),
            topic: topic.to_string(),
            prefix: store::log_prefix(tenant, topic),
            next: Mutex::new(1),
            last: AtomicU64::new(0),
            collected: Mutex::new(0),
            subs: RwLock::new(Vec::new()),
            cache: Cache::new(budget),
        }
    }

    /// Sets the counters after loading: `next` is the next id, `oldest` the oldest stored entry.
    pub(crate) fn init(&self, next: u64, oldest: Option<u64>) {
        *self.next.lock().unwrap_or_else(|p| p.into_inner()) = next;
        self.last.store(next - 1, Ordering::SeqCst);
        *self.collected.lock().unwrap_or_else(|p| p.into_inner()) =
            oldest.map_or(next - 1, |o| o - 1);
    }

    /// The highest fanned-out id.
    pub(crate) fn last(&self) -> u64 {
        self.last.load(Ordering::SeqCst)
    }

    /// Records that the fan-out of `id` is complete (called with `next` held).
    pub(crate) fn set_last(&self, id: u64) {
        self.last.store(id, Ordering::SeqCst);
    }

    /// The live subscription queues of the topic.
    pub(crate) fn subs(&self) -> Vec<Arc<QueueState>> {
        self.subs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Removes the entries every subscription has passed, in batches of [`GC_BATCH`].
    pub(crate) fn collect(&self, tree: &crate::tree::Tree) -> Result<(), sled::Error> {
        let last = self.last();
        let floor = self
            .subs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .map(|s| s.floor(last))
            .min()
            .unwrap_or(last);
        let mut collected = self.collected.lock().unwrap_or_else(|p| p.into_inner());
        if floor <= *collected || (floor - *collected < GC_BATCH && floor < last) {
            return Ok(());
        }
        let next = *self.next.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = sled::Batch::default();
        for id in *collected + 1..=floor {
            batch.remove(store::log_key(&self.prefix, id));
        }
        // Ids go on after the removed entries.
        batch.insert(
            store::topic_key(&self.tenant, &self.topic),
            &next.to_be_bytes()[..],
        );
        tree.apply_batch(batch)?;
        *collected = floor;
        drop(collected);
        self.cache.remove_through(floor);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Bus, BusConfig, Delivery, NewMessage, Subscription, handler_fn};

    fn log_entries(bus: &Bus) -> usize {
        bus.inner.tree.scan_prefix([crate::store::LOG]).count()
    }

    async fn drain(bus: &Bus, s: &Subscription) {
        let handler = handler_fn(|_d: Delivery| async { Ok(()) });
        let consumer = bus.consume(s.queue_id(), handler, 8);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while bus.stats(&s.queue_id()).depth > 0 {
            assert!(tokio::time::Instant::now() < deadline, "timed out");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        consumer.stop().await;
    }

    #[tokio::test]
    async fn a_dropped_bus_frees_its_topic_logs_and_queues() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        let sub = Subscription {
            tenant: "acme".into(),
            topic: "t".into(),
            subscriber: "s".into(),
            filter: Default::default(),
        };
        bus.set_subscriptions(vec![sub.clone()]);
        bus.publish("acme", "t", NewMessage::new("x"))
            .await
            .unwrap();
        drain(&bus, &sub).await;
        let log = std::sync::Arc::downgrade(&bus.inner.queues.log("acme", "t"));
        let queue = std::sync::Arc::downgrade(&bus.inner.queues.get(&sub.queue_id()).unwrap());
        let inner = std::sync::Arc::downgrade(&bus.inner);
        drop(bus);
        assert!(inner.upgrade().is_none(), "the bus is freed");
        assert!(log.upgrade().is_none(), "the topic log is freed");
        assert!(queue.upgrade().is_none(), "the subscription queue is freed");
    }

    #[tokio::test]
    async fn log_entries_are_collected_once_every_cursor_passed_them() {
        let dir = tempfile::tempdir().unwrap();
        let subs: Vec<Subscription> = ["fast", "slow"]
            .iter()
            .map(|name| Subscription {
                tenant: "acme".into(),
                topic: "t".into(),
                subscriber: name.to_string(),
                filter: Default::default(),
            })
            .collect();
        {
            let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
            bus.set_subscriptions(subs.clone());
            for i in 0..600u32 {
                let msg = NewMessage::new(i.to_be_bytes());
                bus.publish("acme", "t", msg).await.unwrap();
            }
            assert_eq!(log_entries(&bus), 600, "one write per publication");
            drain(&bus, &subs[0]).await;
            assert_eq!(log_entries(&bus), 600, "the slow cursor holds the log");
            drain(&bus, &subs[1]).await;
            assert_eq!(log_entries(&bus), 0, "collected once both passed");
            assert!(bus.inner.queues.log("acme", "t").cache.get(600).is_none());
            bus.sync().await.unwrap();
        }
        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        bus.set_subscriptions(subs.clone());
        let r = bus.publish("acme", "t", NewMessage::new("next")).await;
        assert_eq!(r.unwrap().id, 601, "ids go on after a collected log");
    }
}
