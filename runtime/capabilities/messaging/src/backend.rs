//! The bus behind the messaging capability: [`MessageBus`], implemented by the single
//! host's durable [`cloudware_bus::Bus`] (unchanged: every call goes straight to it) and by
//! a cluster's [`ReplicatedBus`] ([`Replicated`]), whose acknowledged messages survive the
//! loss of a host and which only the raft leader's host delivers.
//!
//! Consumers are synchronised from configuration on every reconcile pass, which does not
//! wait: on the replicated bus, subscriptions and queue policies are proposed by a task
//! ([`Replicated::new`]) that proposes only what differs from the replicated copy, latest
//! wanted value first, retrying while no leader takes it.

use cloudware_bus::{
    BoxFuture, Bus, DeadLetter, MessageHandler, NewMessage, PublishReceipt, QueueId, QueuePolicy,
    QueueStats, SendError, Subscription,
};
use cloudware_bus_replicated::ReplicatedBus;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument as _;

/// Pause before proposing the wanted subscriptions and policies again after a failure.
const SETTINGS_RETRY: Duration = Duration::from_millis(500);

/// What the messaging capability, its consumers and the queues API need of a bus.
pub trait MessageBus: Send + Sync + 'static {
    /// Appends `msg` to `queue`; returns its id once it is durable.
    fn send<'a>(
        &'a self,
        queue: &'a QueueId,
        msg: NewMessage,
    ) -> BoxFuture<'a, Result<u64, SendError>>;

    /// Publishes `msg` to `tenant`'s `topic` (every matching subscription's queue).
    fn publish<'a>(
        &'a self,
        tenant: &'a str,
        topic: &'a str,
        msg: NewMessage,
    ) -> BoxFuture<'a, Result<PublishReceipt, SendError>>;

    /// Starts a consumer of `queue` on this host.
    fn consume(
        &self,
        queue: QueueId,
        handler: Arc<dyn MessageHandler>,
        concurrency: usize,
    ) -> Consumer;

    /// Sets `queue`'s delivery policy (on the replicated bus: soon, by a background task).
    fn set_policy(&self, queue: &QueueId, policy: QueuePolicy);

    /// `queue`'s delivery policy.
    fn policy(&self, queue: &QueueId) -> QueuePolicy;

    /// Replaces the topic subscriptions (on the replicated bus: soon, by a background task).
    fn set_subscriptions(&self, subscriptions: Vec<Subscription>);

    /// Every queue (of `tenant`, if given) with its statistics.
    fn queues(&self, tenant: Option<&str>) -> Vec<(QueueId, QueueStats)>;

    /// Up to `limit` dead letters of `queue` with ids above `after`.
    fn dead_letters(
        &self,
        queue: &QueueId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, String>;

    /// Moves dead letters of `queue` (all, or `ids`) back into it; returns how many.
    fn replay<'a>(
        &'a self,
        queue: &'a QueueId,
        ids: Option<&'a [u64]>,
    ) -> BoxFuture<'a, Result<usize, String>>;

    /// The host whose consumers deliver, when a replicated bus's group has a known leader
    /// (`None` for a single host's bus).
    fn leader(&self) -> Option<u64> {
        None
    }
}

/// A running consumer of either bus; dropping it stops dispatching.
pub type Consumer = cloudware_bus::ConsumerHandle;

impl MessageBus for Bus {
    fn send<'a>(
        &'a self,
        queue: &'a QueueId,
        msg: NewMessage,
    ) -> BoxFuture<'a, Result<u64, SendError>> {
        Box::pin(Bus::send(self, queue, msg))
    }

    fn publish<'a>(
        &'a self,
        tenant: &'a str,
        topic: &'a str,
        msg: NewMessage,
    ) -> BoxFuture<'a, Result<PublishReceipt, SendError>> {
        Box::pin(Bus::publish(self, tenant, topic, msg))
    }

    fn consume(
        &self,
        queue: QueueId,
        handler: Arc<dyn MessageHandler>,
        concurrency: usize,
    ) -> Consumer {
        Bus::consume(self, queue, handler, concurrency)
    }

    fn set_policy(&self, queue: &QueueId, policy: QueuePolicy) {
        Bus::set_policy(self, queue, policy);
    }

    fn policy(&self, queue: &QueueId) -> QueuePolicy {
        Bus::policy(self, queue)
    }

    fn set_subscriptions(&self, subscriptions: Vec<Subscription>) {
        Bus::set_subscriptions(self, subscriptions);
    }

    fn queues(&self, tenant: Option<&str>) -> Vec<(QueueId, QueueStats)> {
        Bus::queues(self, tenant)
    }

    fn dead_letters(
        &self,
        queue: &QueueId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, String> {
        Bus::dead_letters(self, queue, after, limit).map_err(|err| err.to_string())
    }

    fn replay<'a>(
        &'a self,
        queue: &'a QueueId,
        ids: Option<&'a [u64]>,
    ) -> BoxFuture<'a, Result<usize, String>> {
        Box::pin(async move {
            Bus::replay(self, queue, ids)
                .await
                .map_err(|err| err.to_string())
        })
    }
}

/// Subscriptions and policies the consumers want (proposed by the settings task).
#[derive(Clone, Default)]
struct Wanted {
    subscriptions: Option<Vec<Subscription>>,
    policies: BTreeMap<QueueId, QueuePolicy>,
}

/// The cluster's [`ReplicatedBus`] as a [`MessageBus`].
pub struct Replicated {
    bus: ReplicatedBus,
    wanted: watch::Sender<Wanted>,
}

impl Replicated {
    /// Wraps `bus` and starts the task proposing wanted subscriptions and policies (it ends
    /// when this is dropped). Must be called inside a Tokio runtime.
    pub fn new(bus: ReplicatedBus) -> Arc<Self> {
        let (wanted, changes) = watch::channel(Wanted::default());
        let span = tracing::info_span!("bus_settings", node = bus.node().id());
        tokio::spawn(propose_settings(bus.clone(), changes).instrument(span));
        Arc::new(Replicated { bus, wanted })
    }

    /// The replicated bus.
    pub fn bus(&self) -> &ReplicatedBus {
        &self.bus
    }
}

fn sort_key(s: &Subscription) -> (String, String, String) {
    (s.tenant.clone(), s.topic.clone(), s.subscriber.clone())
}

/// Proposes the latest wanted settings that differ from the replicated copy.
async fn propose_settings(bus: ReplicatedBus, mut changes: watch::Receiver<Wanted>) {
    loop {
        let wanted = changes.borrow_and_update().clone();
        let mut failed = false;
        if let Some(mut subscriptions) = wanted.subscriptions {
            subscriptions.sort_by_key(sort_key);
            let mut current = bus.subscriptions();
            current.sort_by_key(sort_key);
            if current != subscriptions
                && let Err(error) = bus.set_subscriptions(subscriptions).await
            {
                tracing::warn!(%error, "could not set the topic subscriptions; retrying");
                failed = true;
            }
        }
        for (queue, policy) in &wanted.policies {
            if bus.policy(queue) != *policy
                && let Err(error) = bus.set_policy(queue, policy).await
            {
                tracing::warn!(%queue, %error, "could not set a queue policy; retrying");
                failed = true;
            }
        }
        if failed {
            tokio::time::sleep(SETTINGS_RETRY).await;
            continue;
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

impl MessageBus for Replicated {
    fn send<'a>(
        &'a self,
        queue: &'a QueueId,
        msg: NewMessage,
    ) -> BoxFuture<'a, Result<u64, SendError>> {
        Box::pin(async move { Ok(self.bus.send(queue, msg).await?) })
    }

    fn publish<'a>(
        &'a self,
        tenant: &'a str,
        topic: &'a str,
        msg: NewMessage,
    ) -> BoxFuture<'a, Result<PublishReceipt, SendError>> {
        Box::pin(async move { Ok(self.bus.publish(tenant, topic, msg).await?) })
    }

    fn consume(
        &self,
        queue: QueueId,
        handler: Arc<dyn MessageHandler>,
        concurrency: usize,
    ) -> Consumer {
        self.bus.consume(queue, handler, concurrency)
    }

    fn set_policy(&self, queue: &QueueId, policy: QueuePolicy) {
        self.wanted.send_if_modified(|wanted| {
            let changed = wanted.policies.get(queue) != Some(&policy);
            wanted.policies.insert(queue.clone(), policy);
            changed
        });
    }

    fn policy(&self, queue: &QueueId) -> QueuePolicy {
        self.bus.policy(queue)
    }

    fn set_subscriptions(&self, subscriptions: Vec<Subscription>) {
        self.wanted.send_if_modified(|wanted| {
            let changed = wanted.subscriptions.as_ref() != Some(&subscriptions);
            wanted.subscriptions = Some(subscriptions);
            changed
        });
    }

    fn queues(&self, tenant: Option<&str>) -> Vec<(QueueId, QueueStats)> {
        self.bus.queues(tenant)
    }

    fn leader(&self) -> Option<u64> {
        self.bus.node().status().leader
    }

    fn dead_letters(
        &self,
        queue: &QueueId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, String> {
        Ok(self.bus.dead_letters(queue, after, limit))
    }

    fn replay<'a>(
        &'a self,
        queue: &'a QueueId,
        ids: Option<&'a [u64]>,
    ) -> BoxFuture<'a, Result<usize, String>> {
        Box::pin(async move {
            self.bus
                .replay(queue, ids)
                .await
                .map_err(|err| err.to_string())
        })
    }
}
