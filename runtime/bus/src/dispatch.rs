//! Consumers: a dispatcher task per [`Bus::consume`] call leases ready messages to a
//! [`MessageHandler`], at most `concurrency` at a time, and settles each delivery.
//!
//! At least once: a message is removed only after its handler returned `Ok`. An `Err`, a panic,
//! or a handler outliving the queue's `lease_timeout` counts as a failed attempt: the attempt
//! count is stored durably and the message is retried after an exponential backoff, or moved to
//! the dead-letter store after `max_attempts`. The dispatcher sleeps on a [`Notify`] that every
//! send wakes, and on a timer only for the earliest pending retry.
//!
//! [`Notify`]: tokio::sync::Notify

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::bus::{Bus, Inner};
use crate::queue::{Claim, QueueState};
use crate::store::MessageRecord;
use crate::types::{Delivery, QueueId};

/// A boxed, sendable future, as returned by [`MessageHandler::handle`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Processes deliveries of one queue. The node implements it by invoking a component.
pub trait MessageHandler: Send + Sync + 'static {
    /// Handles one delivery. `Ok` acknowledges (removes) the message; `Err` carries the reason
    /// of the failed attempt, kept as the dead letter's `last_error` if it is the last one.
    fn handle(&self, delivery: Delivery) -> BoxFuture<'static, Result<(), String>>;
}

/// A [`MessageHandler`] made from an async closure; see [`handler_fn`].
pub struct FnHandler<F>(F);

impl<F, Fut> MessageHandler for FnHandler<F>
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    fn handle(&self, delivery: Delivery) -> BoxFuture<'static, Result<(), String>> {
        Box::pin((self.0)(delivery))
    }
}

/// Wraps `f(delivery) -> impl Future<Output = Result<(), String>>` as a handler.
pub fn handler_fn<F, Fut>(f: F) -> Arc<dyn MessageHandler>
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(FnHandler(f))
}

/// A running consumer. Dropping it stops dispatching; handlers already running finish and
/// settle their messages.
pub struct ConsumerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ConsumerHandle {
    /// The handle of a dispatcher `task` that stops when `stop` turns `true`
    /// (for dispatchers of other bus backends, e.g. the replicated bus).
    pub fn new(stop: watch::Sender<bool>, task: JoinHandle<()>) -> Self {
        ConsumerHandle { stop, task }
    }

    /// Stops dispatching and waits until every in-flight handler has finished.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await
            && e.is_panic()
        {
            tracing::error!("a bus dispatcher panicked");
        }
    }

    /// Whether the dispatcher has exited (stopped, or its backend stopped).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Bus {
    /// Starts a consumer of `queue`: a dispatcher task that hands ready messages to `handler`,
    /// at most `concurrency` (at least 1) at a time. Several consumers of one queue compete
    /// for its messages. Must be called inside a Tokio runtime.
    pub fn consume(
        &self,
        queue: QueueId,
        handler: Arc<dyn MessageHandler>,
        concurrency: usize,
    ) -> ConsumerHandle {
        let concurrency = concurrency
            .clamp(1, u32::MAX as usize)
            .min(Semaphore::MAX_PERMITS);
        let state = self.inner.queues.get_or_create(&queue);
        let (stop, stopped) = watch::channel(false);
        let span = tracing::info_span!("bus_consumer", queue = %queue, concurrency);
        let task = tokio::spawn(
            run(self.inner.clone(), state, handler, concurrency, stopped).instrument(span),
        );
        ConsumerHandle { stop, task }
    }
}

/// Resolves when the handle asked to stop or was dropped.
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The dispatcher loop.
async fn run(
    inner: Arc<Inner>,
    state: Arc<QueueState>,
    handler: Arc<dyn MessageHandler>,
    concurrency: usize,
    mut stop: watch::Receiver<bool>,
) {
    tracing::debug!("consumer started");
    let permits = Arc::new(Semaphore::new(concurrency));
    'dispatch: loop {
        let permit = tokio::select! {
            biased;
            _ = stop_requested(&mut stop) => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let id = loop {
            let notified = state.notify.notified();
            tokio::pin!(notified);
            // Registered before looking, so a send between the look and the wait wakes us.
            notified.as_mut().enable();
            match state.claim(Instant::now()) {
                Claim::Ready(id) => break id,
                Claim::Wait(until) => tokio::select! {
                    biased;
                    _ = stop_requested(&mut stop) => break 'dispatch,
                    _ = &mut notified => {}
                    _ = sleep_until(until) => {}
                },
            }
        };
        if let Some((delivery, record)) = inner.load(&state, id) {
            let span = tracing::debug_span!("bus_delivery", id, attempt = delivery.attempt);
            let task = deliver(
                inner.clone(),
                state.clone(),
                handler.clone(),
                delivery,
                record,
                permit,
            );
            tokio::spawn(task.instrument(span));
        }
    }
    // In-flight handlers hold permits; wait for all of them.
    let _ = permits.acquire_many(concurrency as u32).await;
    tracing::debug!("consumer stopped");
}

/// Runs one delivery under its lease and settles the message.
async fn deliver(
    inner: Arc<Inner>,
    state: Arc<QueueState>,
    handler: Arc<dyn MessageHandler>,
    delivery: Delivery,
    record: Arc<MessageRecord>,
    permit: OwnedSemaphorePermit,
) {
    let policy = state.policy();
    let (id, attempt) = (delivery.id, delivery.attempt);
    let started = std::panic::catch_unwind(AssertUnwindSafe(|| handler.handle(delivery)));
    let outcome = match started {
        Err(panic) => Err(format!(
            "handler panicked: {}",
            panic_message(panic.as_ref())
        )),
        Ok(future) => match tokio::time::timeout(policy.lease_timeout, CatchUnwind(future)).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(format!(
                "handler panicked: {}",
                panic_message(panic.as_ref())
            )),
            // Dropping the handler's future cancels it.
            Err(_) => Err(format!("lease timed out after {:?}", policy.lease_timeout)),
        },
    };
    match outcome {
        Ok(()) => inner.ack(&state, id),
        Err(error) => {
            inner
                .fail(&state, id, attempt, &record, error, &policy)
                .await
        }
    }
    // Release the bus before the permit: once a stopped consumer has all its permits back,
    // nothing of it holds the store open.
    drop(state);
    drop(inner);
    drop(permit);
}

/// Turns a panic while polling the handler's future into an error, like a task boundary would,
/// without spawning a second task per delivery.
struct CatchUnwind(BoxFuture<'static, Result<(), String>>);

impl Future for CatchUnwind {
    type Output = Result<Result<(), String>, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(r)) => Poll::Ready(Ok(r)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}
