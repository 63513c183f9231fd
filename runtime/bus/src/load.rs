//! Rebuilding the in-memory state from the store when the bus opens.
//!
//! Named queues: every message live in the queue log ([`crate::segments`]) is ready, unless
//! it is also a dead letter (dead-lettering writes the dead letter to sled and the removal to
//! the log; if a crash kept only the first, the dead letter wins and the removal is written
//! now). Messages of stores written before the queue log (`m` keys) are moved into the log
//! first: appended, made durable, then removed from sled. Subscriptions: every log entry after the
//! subscription's cursor (and, for a removed subscription, not after its removal point) that
//! matches its stored filter and is neither dead-lettered nor stored as its own message is
//! pending again, with the attempt count of its `a` key. Undecodable keys and records are
//! skipped with a warning, never a panic.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::error::BusError;
use crate::queue::Queues;
use crate::segments::Log;
use crate::store::{self, Key, SubRecord};
use crate::topics::filter_matches;
use crate::tree::Tree;
use crate::types::QueueId;

type Attributes = Option<Vec<(String, String)>>;

/// What the scan found besides plain queue messages.
#[derive(Default)]
struct Found {
    /// Log entries per topic with their attributes (`None` if the record is unreadable: it is
    /// then delivered to every subscription, which dead-letters it).
    logs: BTreeMap<(String, String), Vec<(u64, Attributes)>>,
    counters: HashMap<(String, String), u64>,
    cursors: HashMap<QueueId, u64>,
    subs: Vec<(QueueId, SubRecord)>,
    attempts: Vec<(QueueId, u64, u32)>,
    /// Every dead letter.
    dead: HashSet<(QueueId, u64)>,
    /// Messages stored in sled by an older version: key, queue, id, record.
    legacy: Vec<(sled::IVec, QueueId, u64, sled::IVec)>,
}

/// Loads every queue, subscription and topic log of `tree` and `log` into `queues`.
pub(crate) fn load(tree: &Tree, log: &Log, queues: &Queues) -> Result<(), BusError> {
    let mut found = Found::default();
    for item in tree.iter() {
        let (raw_key, value) = item?;
        let key = match store::decode_key(&raw_key) {
            Ok(key) => key,
            Err(e) => {
                tracing::warn!(key = ?raw_key, error = %e, "skipping an undecodable bus key");
                continue;
            }
        };
        match key {
            Key::Message(queue, id) => found.legacy.push((raw_key, queue, id, value)),
            Key::Dead(queue, id) => {
                let state = queues.get_or_create(&queue);
                let mut q = state.lock();
                q.dead += 1;
                q.next_id = q.next_id.max(id.saturating_add(1));
                found.dead.insert((queue, id));
            }
            Key::LogFloor => {}
            Key::Meta(queue) => match store::decode_next_id(&value) {
                Ok(next_id) => {
                    let state = queues.get_or_create(&queue);
                    let mut q = state.lock();
                    q.next_id = q.next_id.max(next_id);
                }
                Err(e) => tracing::warn!(%queue, error = %e, "skipping corrupt queue meta"),
            },
            Key::Topic(tenant, topic) => match store::decode_u64(&value) {
                Ok(next) => {
                    found.counters.insert((tenant, topic), next);
                }
                Err(e) => tracing::warn!(%tenant, %topic, error = %e, "corrupt topic counter"),
            },
            Key::Log(tenant, topic, id) => {
                let attrs = store::decode_message(&value).ok().map(|m| m.attributes);
                found
                    .logs
                    .entry((tenant, topic))
                    .or_default()
                    .push((id, attrs));
            }
            Key::Cursor(queue) => match store::decode_next_id(&value) {
                Ok(cursor) => {
                    found.cursors.insert(queue, cursor);
                }
                Err(e) => tracing::warn!(%queue, error = %e, "skipping a corrupt cursor"),
            },
            Key::Sub(queue) => match store::decode_sub(&value) {
                Ok(rec) => found.subs.push((queue, rec)),
                Err(e) => tracing::warn!(%queue, error = %e, "skipping a corrupt subscription"),
            },
            Key::Attempts(queue, id) => match store::decode_attempts(&value) {
                Ok(n) => found.attempts.push((queue, id, n)),
                Err(e) => {
                    tracing::warn!(%queue, id, error = %e, "skipping a corrupt attempt count")
                }
            },
        }
    }
    migrate(tree, log, std::mem::take(&mut found.legacy))?;
    load_log(log, queues, &found.dead)?;
    apply(queues, found);
    Ok(())
}

/// Moves messages stored in sled by an older version into the queue log: appended (replacing
/// any copy a crashed earlier move left), made durable, then removed from sled.
fn migrate(
    tree: &Tree,
    log: &Log,
    legacy: Vec<(sled::IVec, QueueId, u64, sled::IVec)>,
) -> Result<(), BusError> {
    if legacy.is_empty() {
        return Ok(());
    }
    for (_, queue, id, record) in &legacy {
        log.put(&store::dest(queue), *id, |out| {
            out.extend_from_slice(record)
        });
    }
    log.flush().map_err(BusError::Flush)?;
    let mut batch = sled::Batch::default();
    for (key, ..) in &legacy {
        batch.remove(key.clone());
    }
    tree.apply_batch(batch)?;
    tracing::info!(
        count = legacy.len(),
        "moved queued messages from sled to the queue log"
    );
    Ok(())
}

/// Makes every message live in the queue log ready in its queue.
fn load_log(log: &Log, queues: &Queues, dead: &HashSet<(QueueId, u64)>) -> Result<(), BusError> {
    let mut buried = 0;
    for (dest, max_id, ids) in log.queues() {
        let queue = match store::decode_dest(&dest) {
            Ok(queue) => queue,
            Err(e) => {
                tracing::warn!(error = %e, "skipping queue log records of an unreadable queue");
                continue;
            }
        };
        let state = queues.get_or_create(&queue);
        let mut q = state.lock();
        q.next_id = q.next_id.max(max_id.saturating_add(1));
        let mut key = (queue, 0);
        for id in ids {
            key.1 = id;
            if dead.contains(&key) {
                log.remove(&dest, id);
                buried += 1;
                continue;
            }
            q.depth += 1;
            q.ready.insert(id);
            if state.log.is_some() {
                q.own.insert(id);
            }
        }
    }
    if buried > 0 {
        tracing::info!(
            buried,
            "removed dead-lettered messages left in the queue log by a crash"
        );
        log.flush().map_err(BusError::Flush)?;
    }
    Ok(())
}

fn apply(queues: &Queues, found: Found) {
    for (queue, rec) in found.subs {
        if !queue.is_subscription() {
            continue;
        }
        let state = queues.get_or_create(&queue);
        let mut q = state.lock();
        q.cursor = found.cursors.get(&queue).copied().unwrap_or(0);
        q.next_id = q.next_id.max(q.cursor + 1);
        q.sub = Some(rec);
    }
    let mut topics: HashSet<(String, String)> = found.counters.keys().cloned().collect();
    topics.extend(found.logs.keys().cloned());
    for key in topics {
        let entries = found.logs.get(&key).map(Vec::as_slice).unwrap_or_default();
        let log = queues.log(&key.0, &key.1);
        let newest = entries.last().map_or(0, |e| e.0);
        let counter = found.counters.get(&key).copied().unwrap_or(1);
        log.init(counter.max(newest + 1).max(1), entries.first().map(|e| e.0));
        for state in log.subs() {
            let mut q = state.lock();
            let Some(rec) = q.sub.clone() else { continue };
            for (id, attrs) in entries {
                let id = *id;
                let wanted = id > q.cursor
                    && rec.end.is_none_or(|end| id <= end)
                    && attrs
                        .as_ref()
                        .is_none_or(|a| filter_matches(&rec.filter, a))
                    && !q.own.contains(&id)
                    && !found.dead.contains(&(state.id.clone(), id));
                if wanted {
                    q.ready.insert(id);
                    q.log_pending.insert(id);
                    q.depth += 1;
                    q.next_id = q.next_id.max(id + 1);
                }
            }
        }
    }
    for (queue, id, n) in found.attempts {
        if let Some(state) = queues.get(&queue) {
            let mut q = state.lock();
            if q.log_pending.contains(&id) {
                q.attempts.insert(id, n);
            }
        }
    }
}
