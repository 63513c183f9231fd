//! Consumers: the deployments that handle a queue's or a subscription's
//! messages. Each delivery is handed to a fresh instance of the app's
//! current component through its exported
//! `cloudware:platform/message-handler`; `ok` acknowledges, `err` or a trap
//! schedules a retry (the bus's backoff and dead-letter queue).

use crate::backend::{Consumer, MessageBus};
use cloudware_bus::{BoxFuture, Delivery, MessageHandler, QueueId, QueuePolicy, Subscription};
use cloudware_engine::{CallOrigin, LinkedComponent};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use wasmtime::component::Val;

/// The interface a consumer exports (any 0.1.x version).
pub const HANDLER_INTERFACE: &str = "cloudware:platform/message-handler@0.1";

/// Finds an app's current component when a message arrives, so a redeploy
/// or rollback takes effect for the next delivery.
pub trait ComponentResolver: Send + Sync + 'static {
    /// The current component of `tenant`'s `app` on this node.
    fn resolve(&self, tenant: &str, app: &str) -> Option<LinkedComponent>;
}

/// One consumer a deployment asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerSpec {
    /// The queue it takes messages from.
    pub queue: QueueId,
    /// The consuming app's tenant.
    pub tenant: String,
    /// The consuming app.
    pub app: String,
    /// The queue's delivery policy.
    pub policy: QueuePolicy,
    /// Messages handled at once.
    pub concurrency: u32,
}

/// The consumers running on this node.
pub struct Consumers {
    bus: Arc<dyn MessageBus>,
    resolver: Arc<dyn ComponentResolver>,
    running: Mutex<HashMap<(QueueId, String), (ConsumerSpec, Consumer)>>,
}

impl Consumers {
    /// No consumers yet.
    pub fn new(bus: Arc<dyn MessageBus>, resolver: Arc<dyn ComponentResolver>) -> Self {
        Consumers {
            bus,
            resolver,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Makes the running consumers and the bus's subscriptions exactly
    /// these: starts new ones, restarts changed ones, stops the rest.
    pub fn sync(&self, wanted: Vec<ConsumerSpec>, subscriptions: Vec<Subscription>) {
        self.bus.set_subscriptions(subscriptions);
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = HashMap::new();
        for spec in wanted {
            let key = (spec.queue.clone(), spec.app.clone());
            if next.contains_key(&key) {
                continue;
            }
            match running.remove(&key) {
                Some((old, handle)) if old == spec && !handle.is_finished() => {
                    next.insert(key, (old, handle));
                }
                _ => {
                    self.bus.set_policy(&spec.queue, spec.policy.clone());
                    let handler = Arc::new(ComponentHandler {
                        resolver: self.resolver.clone(),
                        tenant: spec.tenant.clone(),
                        app: spec.app.clone(),
                    });
                    tracing::info!(queue = %spec.queue, app = %spec.app, "consumer started");
                    let handle = self.bus.consume(
                        spec.queue.clone(),
                        handler,
                        spec.concurrency.max(1) as usize,
                    );
                    next.insert(key, (spec, handle));
                }
            }
        }
        // Whatever is left is no longer wanted; dropping a handle stops it.
        for ((queue, app), _) in running.drain() {
            tracing::info!(%queue, %app, "consumer stopped");
        }
        *running = next;
    }

    /// How many consumers run.
    pub fn len(&self) -> usize {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether none run.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Hands deliveries to an app's component.
struct ComponentHandler {
    resolver: Arc<dyn ComponentResolver>,
    tenant: String,
    app: String,
}

impl MessageHandler for ComponentHandler {
    fn handle(&self, delivery: Delivery) -> BoxFuture<'static, Result<(), String>> {
        let component = self.resolver.resolve(&self.tenant, &self.app);
        let app = self.app.clone();
        Box::pin(async move {
            let component = component
                .ok_or_else(|| format!("app `{app}` has no current deployment on this node"))?;
            let interface = component
                .export_named(HANDLER_INTERFACE)
                .ok_or_else(|| {
                    format!("app `{app}` does not export `cloudware:platform/message-handler`")
                })?
                .to_owned();
            let results = component
                .call(
                    &interface,
                    "handle",
                    vec![message(delivery)],
                    CallOrigin::external(),
                    Default::default(),
                )
                .await
                .map_err(|err| err.to_string())?;
            match results.first() {
                Some(Val::Result(Ok(_))) => Ok(()),
                Some(Val::Result(Err(Some(reason)))) => Err(match reason.as_ref() {
                    Val::String(reason) => reason.clone(),
                    other => format!("{other:?}"),
                }),
                Some(Val::Result(Err(None))) => Err("the handler failed".into()),
                other => Err(format!("unexpected handler result {other:?}")),
            }
        })
    }
}

/// The `message` record of `cloudware:platform/messages`.
fn message(delivery: Delivery) -> Val {
    Val::Record(vec![
        ("id".into(), Val::U64(delivery.id)),
        ("source".into(), Val::String(delivery.source)),
        (
            "payload".into(),
            Val::List(delivery.payload.into_iter().map(Val::U8).collect()),
        ),
        (
            "attributes".into(),
            Val::List(
                delivery
                    .attributes
                    .into_iter()
                    .map(|(k, v)| Val::Tuple(vec![Val::String(k), Val::String(v)]))
                    .collect(),
            ),
        ),
        ("attempt".into(), Val::U32(delivery.attempt)),
    ])
}
