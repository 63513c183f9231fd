//! The dead-letter store of each queue: messages whose deliveries failed `max_attempts`
//! times (or whose record could not be read), with the last error. Operators list them,
//! replay them into the queue, or purge them.
//!
//! Dead letters live in sled; a named queue's messages live in the queue log. Moving between
//! the two is ordered so a crash never loses a message: dead-lettering writes the dead letter
//! and the log removal in one flush (if only the dead letter survives, it wins at open, see
//! `load`); a replay first makes the copies in the log durable, then removes the dead letters.

use std::collections::BTreeSet;

use crate::bus::{Bus, Inner, now_ms};
use crate::error::BusError;
use crate::queue::QueueState;
use crate::settle::Settled;
use crate::store::{self, DEAD};
use crate::types::{DeadLetter, QueueId};

impl Inner {
    /// Moves message `id` (its record `raw`) to the dead letters (for a topic log entry:
    /// settles it in the subscription, see `settle_log`), with the attempt count set to
    /// `attempts` if given (an unreadable record is kept as it is). Returns the write's commit
    /// generation.
    pub(crate) fn bury(
        &self,
        state: &QueueState,
        id: u64,
        raw: &[u8],
        attempts: Option<u32>,
        error: &str,
    ) -> Result<u64, sled::Error> {
        let message = attempts
            .and_then(|a| store::with_attempts(raw, a).ok())
            .unwrap_or_else(|| raw.to_vec());
        let dead_key = store::item_key(DEAD, &state.dest, id);
        let dead = store::encode_dead(now_ms(), error, &message);
        if Inner::in_log(state, id) {
            self.settle_log(state, id, vec![(dead_key, Some(dead))], Settled::Dead);
        } else {
            self.tree.insert(dead_key, dead)?;
            self.log.remove(&state.dest, id);
            state.cache.remove(id);
            state.forget(id, false, true);
        }
        Ok(self.commit.mark_written())
    }

    /// The dead-letter entries of a queue: all of them, or those with the given ids.
    fn dead_entries(
        &self,
        dest: &[u8],
        ids: Option<&[u64]>,
    ) -> Result<Vec<(sled::IVec, sled::IVec)>, BusError> {
        match ids {
            None => Ok(self
                .tree
                .scan_prefix(store::prefix(DEAD, dest))
                .collect::<Result<_, _>>()?),
            Some(ids) => {
                let mut out = Vec::new();
                for id in ids.iter().collect::<BTreeSet<_>>() {
                    let key = store::item_key(DEAD, dest, *id);
                    if let Some(value) = self.tree.get(&key)? {
                        out.push((key.into(), value));
                    }
                }
                Ok(out)
            }
        }
    }
}

impl Bus {
    /// Up to `limit` dead letters of `queue` with ids greater than `after`, in id order.
    /// A record that cannot be decoded is skipped with a warning; one whose message part is
    /// unreadable is listed with that raw message as payload.
    pub fn dead_letters(
        &self,
        queue: &QueueId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BusError> {
        let start = match after {
            Some(u64::MAX) => return Ok(Vec::new()),
            Some(after) => after + 1,
            None => 0,
        };
        let dest = store::dest(queue);
        let prefix = store::prefix(DEAD, &dest);
        let mut out = Vec::new();
        for item in self.inner.tree.range(store::item_key(DEAD, &dest, start)..) {
            if out.len() >= limit {
                break;
            }
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            let decoded = store::key_id(&key).and_then(|id| Ok((id, store::decode_dead(&value)?)));
            let (id, dead) = match decoded {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(%queue, error = %e, "skipping an unreadable dead letter");
                    continue;
                }
            };
            let letter = match store::decode_message(dead.message) {
                Ok(m) => DeadLetter {
                    id,
                    payload: m.payload,
                    attributes: m.attributes,
                    attempts: m.attempts,
                    last_error: dead.last_error,
                    dead_at_ms: dead.dead_at_ms,
                },
                Err(_) => DeadLetter {
                    id,
                    payload: dead.message.to_vec(),
                    attributes: Vec::new(),
                    attempts: 0,
                    last_error: dead.last_error,
                    dead_at_ms: dead.dead_at_ms,
                },
            };
            out.push(letter);
        }
        Ok(out)
    }

    /// Moves dead letters of `queue` (all, or those in `ids`) back into the queue under their
    /// original ids with the attempt count reset, durably; returns how many moved. Unreadable
    /// ones stay (with a warning). Replay ignores `max_depth`.
    pub async fn replay(&self, queue: &QueueId, ids: Option<&[u64]>) -> Result<usize, BusError> {
        let inner = &self.inner;
        let Some(state) = inner.queues.get(queue) else {
            return Ok(0);
        };
        // One replay or purge at a time: a replay spans two flushes.
        let _ops = inner.ops.lock().await;
        let mut moved = Vec::new();
        let mut keys = Vec::new();
        for (key, value) in inner.dead_entries(&state.dest, ids)? {
            let message = store::key_id(&key).and_then(|id| {
                let dead = store::decode_dead(&value)?;
                store::decode_message(dead.message)?;
                Ok((id, store::with_attempts(dead.message, 0)?))
            });
            match message {
                Ok((id, message)) => {
                    inner
                        .log
                        .put(&state.dest, id, |out| out.extend_from_slice(&message));
                    keys.push(key);
                    moved.push(id);
                }
                Err(e) => tracing::warn!(%queue, error = %e, "cannot replay a dead letter"),
            }
        }
        if moved.is_empty() {
            return Ok(0);
        }
        let undo = |inner: &Inner| {
            for id in &moved {
                inner.log.remove(&state.dest, *id);
            }
            inner.commit.mark_written_lazily();
        };
        // The copies are durable before the dead letters go.
        let generation = inner.commit.mark_written();
        if let Err(e) = inner.commit.wait(generation).await {
            undo(inner);
            return Err(BusError::Flush(e));
        }
        let generation = {
            let mut q = state.lock();
            let mut batch = sled::Batch::default();
            for key in keys {
                batch.remove(key);
            }
            if let Err(e) = inner.tree.apply_batch(batch) {
                drop(q);
                undo(inner);
                return Err(e.into());
            }
            let n = moved.len() as u64;
            q.dead = q.dead.saturating_sub(n);
            q.depth += n;
            for id in &moved {
                q.next_id = q.next_id.max(id + 1);
            }
            q.ready.extend(moved.iter().copied());
            if state.log.is_some() {
                // A subscription's replayed messages are its own, outside the topic log.
                q.own.extend(moved.iter().copied());
            }
            inner.commit.mark_written()
        };
        state.notify.notify_waiters();
        inner
            .commit
            .wait(generation)
            .await
            .map_err(BusError::Flush)?;
        tracing::info!(%queue, count = moved.len(), "replayed dead letters");
        Ok(moved.len())
    }

    /// Deletes dead letters of `queue` (all, or those in `ids`), durably; returns how many.
    pub async fn purge_dead(
        &self,
        queue: &QueueId,
        ids: Option<&[u64]>,
    ) -> Result<usize, BusError> {
        let inner = &self.inner;
        let Some(state) = inner.queues.get(queue) else {
            return Ok(0);
        };
        let _ops = inner.ops.lock().await;
        let (count, generation) = {
            let mut q = state.lock();
            let entries = inner.dead_entries(&state.dest, ids)?;
            if entries.is_empty() {
                return Ok(0);
            }
            let mut batch = sled::Batch::default();
            for (key, _) in &entries {
                batch.remove(key.clone());
            }
            // The newest id may be among them: record that ids go on after it.
            batch.insert(
                store::meta_key(&state.dest),
                &store::encode_next_id(q.next_id)[..],
            );
            inner.tree.apply_batch(batch)?;
            q.dead = q.dead.saturating_sub(entries.len() as u64);
            (entries.len(), inner.commit.mark_written())
        };
        inner
            .commit
            .wait(generation)
            .await
            .map_err(BusError::Flush)?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::types::{Delivery, NewMessage, QueueId};
    use crate::{Bus, BusConfig, handler_fn, store};

    #[tokio::test]
    async fn corrupt_records_are_skipped_or_dead_lettered_never_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let queue = QueueId::queue("acme", "broken");
        {
            let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
            bus.send(&queue, NewMessage::new("fine")).await.unwrap();
            bus.send(&queue, NewMessage::new("to be mangled"))
                .await
                .unwrap();
            let dest = store::dest(&queue);
            let tree = &bus.inner.tree;
            tree.insert(store::item_key(store::MSG, &dest, 2), &[9u8, 9, 9][..])
                .unwrap();
            tree.insert(&b"zzz-not-a-key"[..], &b"x"[..]).unwrap();
            tree.insert(
                store::meta_key(&store::dest(&QueueId::queue("acme", "m"))),
                &[1u8][..],
            )
            .unwrap();
            tree.insert(store::item_key(store::DEAD, &dest, 7), &[0u8][..])
                .unwrap();
            bus.sync().await.unwrap();
        }
        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        let stats = bus.stats(&queue);
        assert_eq!((stats.depth, stats.dead), (2, 1));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let handler = handler_fn({
            let seen = seen.clone();
            move |d: Delivery| {
                seen.lock().unwrap().push(d.payload);
                async { Ok(()) }
            }
        });
        let consumer = bus.consume(queue.clone(), handler, 1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while bus.stats(&queue).dead < 2 || bus.stats(&queue).acked_total < 1 {
            assert!(tokio::time::Instant::now() < deadline, "timed out");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        consumer.stop().await;
        assert_eq!(*seen.lock().unwrap(), vec![b"fine".to_vec()]);
        // The unreadable dead letter (id 7) is skipped; the mangled message is listed raw.
        let dead = bus.dead_letters(&queue, None, 10).unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(
            (dead[0].id, dead[0].payload.as_slice()),
            (2, &[9u8, 9, 9][..])
        );
        assert!(
            dead[0].last_error.contains("corrupt"),
            "{}",
            dead[0].last_error
        );
        // Neither can be replayed; both can be purged.
        assert_eq!(bus.replay(&queue, None).await.unwrap(), 0);
        assert_eq!(bus.purge_dead(&queue, None).await.unwrap(), 2);
    }
}
