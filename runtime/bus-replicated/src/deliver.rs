//! Consumers: only the raft leader's host delivers.
//!
//! [`ReplicatedBus::consume`] starts a dispatcher task on every host that calls it; the task
//! idles while its host follows. When its host becomes leader it first waits until it applied
//! everything committed before (a read-index round), so acknowledgements made through the
//! previous leader are seen; then it leases due messages in memory (shared by all consumers
//! of the queue on this host), hands each to the [`MessageHandler`] — at most `concurrency`
//! at a time — and proposes `Ack` on `Ok`, `Fail` on `Err`, a panic or a lease timeout (the
//! machine schedules the retry by the queue's backoff, or dead-letters the message).
//!
//! At least once: a message leaves the machine only through a committed `Ack`. When
//! leadership moves, the new leader delivers everything unacknowledged again, so the messages
//! in flight at the old leader (at most the consumers' `concurrency` per queue) may be
//! delivered twice.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use cloudware_bus::{BoxFuture, ConsumerHandle, Delivery, MessageHandler, QueueId};
use cloudware_raft::Role;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::Instrument as _;

use crate::bus::{Inner, ReplicatedBus, now_ms};
use crate::command::{Command, QueueKey};

/// Pause before retrying a failed catch-up read after becoming leader.
const CATCH_UP_RETRY: Duration = Duration::from_millis(50);

impl ReplicatedBus {
    /// Starts a consumer of `queue` on this host: while this host leads the raft group, ready
    /// messages go to `handler`, at most `concurrency` (at least 1) at a time. Call it on every
    /// host that should take over deliveries on failover. Must be called inside a Tokio
    /// runtime.
    pub fn consume(
        &self,
        queue: QueueId,
        handler: Arc<dyn MessageHandler>,
        concurrency: usize,
    ) -> ConsumerHandle {
        let concurrency = concurrency.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        let (stop, stopped) = watch::channel(false);
        let span = tracing::info_span!(
            "replicated_bus_consumer",
            node = self.inner.node.id(),
            queue = %queue,
            concurrency
        );
        let dispatcher = Dispatcher {
            inner: Arc::clone(&self.inner),
            key: QueueKey::from(&queue),
            handler,
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
        };
        let task = tokio::spawn(dispatcher.run(stopped).instrument(span));
        ConsumerHandle::new(stop, task)
    }
}

/// One consumer's dispatcher task.
struct Dispatcher {
    inner: Arc<Inner>,
    key: QueueKey,
    handler: Arc<dyn MessageHandler>,
    permits: Arc<Semaphore>,
    concurrency: usize,
}

async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn sleep_until_ms(at_ms: Option<u64>) {
    match at_ms {
        Some(at) => {
            let wait = at.saturating_sub(now_ms()).max(1);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        None => std::future::pending().await,
    }
}

impl Dispatcher {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::debug!("consumer started");
        let node = Arc::clone(&self.inner.node);
        let mut status = node.watch_status();
        let mut applied = node.subscribe();
        // The term in which this host caught up as leader.
        let mut caught_up: Option<u64> = None;
        loop {
            if *stop.borrow() || self.inner.is_stopped() {
                break;
            }
            let current = status.borrow_and_update().clone();
            if current.role != Role::Leader {
                caught_up = None;
                tokio::select! {
                    biased;
                    _ = stop_requested(&mut stop) => break,
                    changed = status.changed() => if changed.is_err() { break },
                }
                continue;
            }
            if caught_up != Some(current.term) {
                // Apply everything committed before delivering, so acks made through the
                // previous leader are seen.
                let read = tokio::select! {
                    biased;
                    _ = stop_requested(&mut stop) => break,
                    read = node.read_index() => read,
                };
                match read {
                    Ok(index) => {
                        tracing::info!(term = current.term, index, "leading: delivering");
                        caught_up = Some(current.term);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "catching up as leader failed; retrying");
                        tokio::time::sleep(CATCH_UP_RETRY).await;
                    }
                }
                continue;
            }
            let released = self.inner.released.notified();
            tokio::pin!(released);
            // Registered before looking, so a release between the look and the wait wakes us.
            released.as_mut().enable();
            let free = self.permits.available_permits();
            let mut next_due = None;
            if free > 0 {
                let (due, next) = self.inner.claim(&self.key, free);
                next_due = next;
                for delivery in due {
                    let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
                        // Cannot happen (we only take what is free); give the lease back.
                        self.inner.release(&self.key, delivery.id);
                        continue;
                    };
                    self.spawn_delivery(delivery, permit);
                }
            }
            tokio::select! {
                biased;
                _ = stop_requested(&mut stop) => break,
                changed = status.changed() => if changed.is_err() { break },
                changed = applied.changed() => if changed.is_err() { break },
                _ = &mut released => {}
                _ = sleep_until_ms(next_due) => {}
            }
        }
        // In-flight handlers hold permits; wait for all of them.
        let _ = self.permits.acquire_many(self.concurrency as u32).await;
        tracing::debug!("consumer stopped");
    }

    fn spawn_delivery(&self, delivery: Delivery, permit: OwnedSemaphorePermit) {
        let span = tracing::debug_span!(
            "replicated_bus_delivery",
            id = delivery.id,
            attempt = delivery.attempt
        );
        let inner = Arc::clone(&self.inner);
        let handler = Arc::clone(&self.handler);
        let key = self.key.clone();
        tokio::spawn(
            async move {
                deliver(&inner, &key, handler, delivery).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}

/// Runs one delivery under its lease, proposes its settlement and releases the lease.
async fn deliver(
    inner: &Inner,
    key: &QueueKey,
    handler: Arc<dyn MessageHandler>,
    delivery: Delivery,
) {
    let lease = inner
        .machine
        .read()
        .queue_policy(&inner.machine.limits, key)
        .lease_timeout;
    let (id, attempt) = (delivery.id, delivery.attempt);
    let started = std::panic::catch_unwind(AssertUnwindSafe(|| handler.handle(delivery)));
    let outcome = match started {
        Err(panic) => Err(format!(
            "handler panicked: {}",
            panic_message(panic.as_ref())
        )),
        Ok(future) => match tokio::time::timeout(lease, CatchUnwind(future)).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(format!(
                "handler panicked: {}",
                panic_message(panic.as_ref())
            )),
            // Dropping the handler's future cancels it.
            Err(_) => Err(format!("lease timed out after {lease:?}")),
        },
    };
    let command = match outcome {
        Ok(()) => Command::Ack {
            queue: key.clone(),
            id,
        },
        Err(error) => Command::Fail {
            queue: key.clone(),
            id,
            attempt,
            error,
            at_ms: now_ms(),
        },
    };
    if let Err(e) = inner.propose("settle", &command).await {
        // The message stays unacknowledged: delivered again by whoever leads.
        tracing::warn!(id, error = %e, "settling a delivery failed");
    }
    inner.release(key, id);
}

/// Turns a panic while polling the handler's future into an error.
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
