//! Reading leased messages and settling deliveries: acknowledgement, failed attempts.
//!
//! Named queues (and a subscription's replayed dead letters) keep their messages in the queue
//! log ([`crate::segments`]): an ack appends a removal, a failed attempt a new copy with the
//! new attempt count. A subscription's log entries are shared: an ack removes the entry
//! from the subscription's pending set, advances its durable cursor past the contiguous settled
//! prefix, and lets the topic log collect what every subscription has passed. Failed attempts
//! of a log entry are counted under an `a` key of the subscription, only for entries that
//! failed.
//!
//! Fresh messages come from the in-memory cache; the store is read only for messages that
//! were loaded at open, evicted, or failed before.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::bus::Inner;
use crate::queue::QueueState;
use crate::segments::ReadError;
use crate::store::{self, MessageRecord};
use crate::types::{Delivery, QueuePolicy};

/// `delay` plus up to 10% of pseudo-random jitter, so retries of a burst spread out.
fn jittered(delay: Duration, id: u64) -> Duration {
    let span = (delay.as_nanos() / 10) as u64;
    if span == 0 {
        return delay;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let mix = (nanos ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    delay + Duration::from_nanos((mix >> 11) % span)
}

/// A write of a settlement: a key and its new value, or `None` to remove it.
pub(crate) type Op = (Vec<u8>, Option<Vec<u8>>);

/// How a log entry left a subscription's backlog.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    Acked,
    Dead,
    Missing,
}

impl Inner {
    /// Whether `id` of `state` is an entry of its topic's log.
    pub(crate) fn in_log(state: &QueueState, id: u64) -> bool {
        state.log.is_some() && state.lock().in_log(id)
    }

    /// Reads a leased message. A missing or unreadable record is settled here (forgotten, or
    /// dead-lettered with the decoding error) and `None` returned.
    pub(crate) fn load(
        &self,
        state: &QueueState,
        id: u64,
    ) -> Option<(Delivery, Arc<MessageRecord>)> {
        let (log, failed) = match &state.log {
            Some(log) => {
                let q = state.lock();
                match q.in_log(id) {
                    true => (Some(log), q.attempts.get(&id).copied().unwrap_or(0)),
                    false => (None, 0),
                }
            }
            None => (None, 0),
        };
        let cached = match log {
            Some(log) => log.cache.get(id),
            None => state.cache.get(id),
        };
        let record = match cached {
            Some(record) => record,
            None => self.read(state, log.map(|l| l.prefix.as_slice()), id)?,
        };
        let attempts = if log.is_some() {
            failed
        } else {
            record.attempts
        };
        let delivery = Delivery {
            queue: state.id.clone(),
            id,
            source: state.id.source().to_string(),
            payload: record.payload.clone(),
            attributes: record.attributes.clone(),
            attempt: attempts.saturating_add(1),
        };
        Some((delivery, record))
    }

    /// Reads message `id` from the topic log with prefix `log`, or from the queue log.
    fn read(&self, state: &QueueState, log: Option<&[u8]>, id: u64) -> Option<Arc<MessageRecord>> {
        let raw = match log {
            Some(prefix) => self
                .tree
                .get(store::log_key(prefix, id))
                .map(|v| v.map(|v| v.to_vec()))
                .map_err(|e| ReadError::Io(e.to_string())),
            None => self.log.read(&state.dest, id),
        };
        let raw = match raw {
            Ok(Some(raw)) => raw,
            Ok(None) => {
                tracing::warn!(id, "a leased message is not stored; forgetting it");
                match log {
                    Some(_) => self.settle_log(state, id, Vec::new(), Settled::Missing),
                    None => state.forget(id, false, false),
                }
                return None;
            }
            Err(ReadError::Io(e)) => {
                tracing::error!(id, error = %e, "reading a message failed; retrying later");
                let delay = state.policy().backoff_initial;
                state.release(id, Some(Instant::now() + delay));
                return None;
            }
            Err(ReadError::Corrupt(raw, e)) => {
                self.bury_unreadable(state, id, &raw, &e.to_string());
                return None;
            }
        };
        match store::decode_message(&raw) {
            Ok(rec) => Some(Arc::new(rec)),
            Err(e) => {
                self.bury_unreadable(state, id, &raw, &e.to_string());
                None
            }
        }
    }

    /// Moves a message whose record could not be read (`raw`, as found) to the dead letters.
    fn bury_unreadable(&self, state: &QueueState, id: u64, raw: &[u8], error: &str) {
        tracing::warn!(id, %error, "moving an unreadable message to the dead letters");
        if let Err(e) = self.bury(state, id, raw, None, error) {
            tracing::error!(id, error = %e, "dead-lettering an unreadable message failed");
            state.release(id, Some(Instant::now() + state.policy().backoff_max));
        }
    }

    /// Applies `ops` (key, value or removal) atomically: one sled operation when there is only
    /// one (sled batches take a tree-wide lock), a batch otherwise.
    fn write(&self, mut ops: Vec<Op>) -> Result<(), sled::Error> {
        if ops.len() == 1 {
            if let Some((key, value)) = ops.pop() {
                match value {
                    Some(v) => self.tree.insert(key, v)?,
                    None => self.tree.remove(key)?,
                };
            }
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (key, value) in ops {
            match value {
                Some(v) => batch.insert(key, v),
                None => batch.remove(key),
            }
        }
        self.tree.apply_batch(batch)
    }

    /// Removes log entry `id` from `state`'s backlog, writing `ops` (plus the removal of its
    /// attempt count and the advanced cursor) atomically, then collects the log. Not waited
    /// for: a lost cursor update only means a redelivery.
    pub(crate) fn settle_log(&self, state: &QueueState, id: u64, mut ops: Vec<Op>, how: Settled) {
        let Some(log) = &state.log else { return };
        {
            let mut q = state.lock();
            if !q.log_pending.remove(&id) {
                return;
            }
            let had_attempts = q.attempts.remove(&id);
            if had_attempts.is_some() {
                ops.push((store::item_key(store::ATTEMPTS, &state.dest, id), None));
            }
            let floor = q.log_pending.first().map_or(log.last(), |f| f - 1);
            let advance = q.sub.is_some() && floor > q.cursor;
            if advance {
                ops.push((
                    store::prefix(store::CURSOR, &state.dest),
                    Some(store::encode_next_id(floor).to_vec()),
                ));
            }
            // Under the lock, so cursor writes reach the disk in order.
            if ops.is_empty() {
                // Nothing to write (no cursor yet, or an entry above a pending one).
            } else if let Err(e) = self.write(ops) {
                tracing::error!(id, error = %e, "settling a log entry failed; retrying later");
                q.log_pending.insert(id);
                if let Some(n) = had_attempts {
                    q.attempts.insert(id, n);
                }
                drop(q);
                state.release(id, Some(Instant::now() + state.policy().backoff_initial));
                return;
            }
            if advance {
                q.cursor = floor;
            }
        }
        state.forget(id, how == Settled::Acked, how == Settled::Dead);
        self.commit.mark_written_lazily();
        if let Err(e) = log.collect(&self.tree) {
            tracing::warn!(error = %e, "collecting the topic log failed; will retry");
        }
    }

    /// Settles an acknowledged message. Not waited for: a lost acknowledgement only means a
    /// redelivery; the flusher makes it durable with the next group.
    pub(crate) fn ack(&self, state: &QueueState, id: u64) {
        if Self::in_log(state, id) {
            self.settle_log(state, id, Vec::new(), Settled::Acked);
            return;
        }
        self.log.remove(&state.dest, id);
        state.cache.remove(id);
        state.forget(id, true, false);
        self.commit.mark_written_lazily();
    }

    /// Settles a failed attempt: dead-letters the message after `max_attempts`, otherwise
    /// stores the attempt count durably and schedules the retry.
    pub(crate) async fn fail(
        &self,
        state: &QueueState,
        id: u64,
        attempt: u32,
        record: &MessageRecord,
        error: String,
        policy: &QueuePolicy,
    ) {
        if attempt >= policy.max_attempts {
            tracing::warn!(id, attempt, %error, "delivery failed for the last time; dead-lettering");
            let raw = store::encode_message(
                attempt,
                record.enqueued_ms,
                &record.attributes,
                &record.payload,
            );
            match self.bury(state, id, &raw, Some(attempt), &error) {
                Ok(generation) => {
                    if let Err(e) = self.commit.wait(generation).await {
                        tracing::warn!(id, error = %e, "dead-lettering is not durable yet");
                    }
                }
                Err(e) => {
                    tracing::error!(id, error = %e, "dead-lettering failed; retrying later");
                    state.release(id, Some(Instant::now() + policy.backoff(attempt)));
                }
            }
            return;
        }
        let delay = jittered(policy.backoff(attempt), id);
        tracing::debug!(id, attempt, ?delay, %error, "delivery failed; will retry");
        let stored = if Self::in_log(state, id) {
            let key = store::item_key(store::ATTEMPTS, &state.dest, id);
            let mut q = state.lock();
            let stored = self.tree.insert(key, &store::encode_attempts(attempt)[..]);
            if stored.is_ok() {
                q.attempts.insert(id, attempt);
            }
            stored.map(|_| ())
        } else {
            self.log.put(&state.dest, id, |out| {
                store::write_message(
                    out,
                    attempt,
                    record.enqueued_ms,
                    &record.attributes,
                    &record.payload,
                )
            });
            state.cache.insert(
                id,
                Arc::new(MessageRecord {
                    attempts: attempt,
                    ..record.clone()
                }),
            );
            Ok(())
        };
        match stored {
            Ok(()) => {
                if let Err(e) = self.commit.commit().await {
                    tracing::warn!(id, error = %e, "the attempt count is not durable yet");
                }
            }
            Err(e) => tracing::error!(id, error = %e, "storing the attempt count failed"),
        }
        state.release(id, Some(Instant::now() + delay));
    }
}
