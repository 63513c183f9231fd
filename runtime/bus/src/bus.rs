//! The [`Bus`] handle: opening the store, sending, policies and statistics. Topics, consumers
//! and dead letters add their methods in their own modules.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::commit::{GroupCommit, Storage};
use crate::error::{BusError, SendError};
use crate::load;
use crate::queue::{QueueState, Queues};
use crate::segments::{Log, SEGMENT_BYTES};
use crate::store::{self, MessageRecord};
use crate::topics::Topics;
use crate::tree::Tree;
use crate::types::{BusConfig, CommitStats, NewMessage, QueueId, QueuePolicy, QueueStats};

/// Durable queues and topic fan-out over one sled database and a queue log (segment files in
/// the same directory). Cheap to clone.
///
/// Must be used inside a Tokio runtime (consumers are Tokio tasks). Dropping the last clone
/// (and every [`ConsumerHandle`](crate::ConsumerHandle) and in-flight handler) flushes and
/// closes the database, and returns once its file lock is released: the path can be reopened
/// right away.
#[derive(Clone)]
pub struct Bus {
    pub(crate) inner: Arc<Inner>,
}

/// Everything a [`Bus`] shares between its clones and tasks.
pub(crate) struct Inner {
    /// Dropped first: stops and joins the flusher, which owns a clone of `db`.
    pub(crate) commit: GroupCommit,
    pub(crate) tree: Tree,
    /// Message bodies of named queues (and of subscriptions' replayed dead letters).
    pub(crate) log: Arc<Log>,
    pub(crate) config: BusConfig,
    pub(crate) queues: Queues,
    /// Serialises replays and purges of dead letters.
    pub(crate) ops: tokio::sync::Mutex<()>,
    pub(crate) topics: Topics,
    _db: sled::Db,
    /// Dropped last, after everything that holds the database: waits until sled has released
    /// its file lock.
    _released: Released,
}

/// Longest wait for sled's background threads to release the database's file lock.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// sled's data file; its drop waits until sled no longer holds the file's lock.
///
/// sled 0.34 returns from dropping the last handle of a database while its IO thread pool may
/// still hold the file (the write of the last buffer drops its handle a moment after waking the
/// flush it completes; sled issue #1289), so reopening the path right after a drop could fail
/// with "could not acquire lock". Waiting here makes "drop, then open" deterministic.
struct Released(PathBuf);

impl Drop for Released {
    fn drop(&mut self) {
        let Ok(file) = File::open(&self.0) else {
            return;
        };
        let deadline = Instant::now() + RELEASE_WAIT;
        loop {
            match file.try_lock() {
                // Dropping `file` unlocks it again.
                Ok(()) => return,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => {
                    tracing::warn!(path = %self.0.display(), error = %e,
                        "sled still holds the bus database's lock after closing");
                    return;
                }
            }
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Bus {
    /// Opens (or creates) the bus stored at `path` and loads every queue's state. Every stored
    /// message that was not acknowledged is ready for delivery again.
    pub fn open(path: &Path, config: BusConfig) -> Result<Bus, BusError> {
        Self::open_with(path, config, SEGMENT_BYTES)
    }

    /// [`open`](Bus::open) with queue log segments of `segment_bytes` (tests use small ones).
    pub(crate) fn open_with(
        path: &Path,
        config: BusConfig,
        segment_bytes: u64,
    ) -> Result<Bus, BusError> {
        let db = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            // The group-commit flusher decides when to flush.
            .flush_every_ms(None)
            .open()?;
        let dirty = Arc::new(AtomicBool::new(false));
        let tree = Tree::new(db.open_tree("bus")?, dirty.clone());
        let floor = match tree.get([store::LOG_FLOOR])? {
            Some(v) => store::decode_next_id(&v).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "corrupt queue log floor; using the segment files");
                0
            }),
            None => 0,
        };
        let log = Arc::new(Log::open(path, segment_bytes, floor)?);
        let queues = Queues::new(config.default_policy.clone());
        load::load(&tree, &log, &queues)?;
        // sled keeps everything in one data file, `db`; the flusher fdatasyncs it.
        let data_path = path.join("db");
        let data_file = File::open(&data_path)
            .map_err(|e| BusError::Storage(format!("opening sled's data file: {e}")))?;
        if dirty.swap(false, Ordering::SeqCst) {
            // What loading changed (moving legacy messages to the log).
            db.flush()?;
            data_file
                .sync_data()
                .map_err(|e| BusError::Flush(format!("fdatasync: {e}")))?;
        }
        let commit = GroupCommit::start(Storage {
            db: db.clone(),
            data_file,
            tree: tree.clone(),
            dirty,
            log: log.clone(),
        })
        .map_err(|e| BusError::Storage(e.to_string()))?;
        Ok(Bus {
            inner: Arc::new(Inner {
                commit,
                tree,
                log,
                config,
                queues,
                ops: tokio::sync::Mutex::new(()),
                topics: Topics::default(),
                _db: db,
                _released: Released(data_path),
            }),
        })
    }

    /// Appends a message to `queue` and returns its id once it is durably stored (fsynced,
    /// shared with concurrent writers by group commit).
    pub async fn send(&self, queue: &QueueId, msg: NewMessage) -> Result<u64, SendError> {
        self.inner.check_size(&msg)?;
        if queue.is_subscription() {
            return Err(SendError::Storage(format!(
                "{queue} is a topic subscription: publish to its topic instead"
            )));
        }
        let state = self.inner.queues.get_or_create(queue);
        let (id, generation) = self.inner.append(&state, msg)?;
        self.inner
            .commit
            .wait(generation)
            .await
            .map_err(SendError::Storage)?;
        Ok(id)
    }

    /// Sets the policy of `queue` (in memory; the node's reconciler sets it after every start).
    /// Messages already waiting for a retry keep their scheduled time.
    pub fn set_policy(&self, queue: &QueueId, policy: QueuePolicy) {
        let state = self.inner.queues.get_or_create(queue);
        state.lock().policy = policy;
        state.notify.notify_waiters();
    }

    /// The policy of `queue` (the default if none was set).
    pub fn policy(&self, queue: &QueueId) -> QueuePolicy {
        match self.inner.queues.get(queue) {
            Some(state) => state.policy(),
            None => self.inner.config.default_policy.clone(),
        }
    }

    /// The counters of `queue` (all zero if it does not exist).
    pub fn stats(&self, queue: &QueueId) -> QueueStats {
        self.inner
            .queues
            .get(queue)
            .map(|s| s.stats())
            .unwrap_or_default()
    }

    /// Every queue that exists on disk (of `tenant`, if given), with its counters, sorted.
    pub fn queues(&self, tenant: Option<&str>) -> Vec<(QueueId, QueueStats)> {
        let mut out: Vec<_> = self
            .inner
            .queues
            .all()
            .into_iter()
            .filter(|s| tenant.is_none_or(|t| s.id.tenant == t) && s.exists())
            .map(|s| (s.id.clone(), s.stats()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// How many writes were made durable by how many flushes since the bus was opened.
    pub fn commit_stats(&self) -> CommitStats {
        let (writes, flushes) = self.inner.commit.counters();
        CommitStats { writes, flushes }
    }

    /// Waits until every write made so far (including acknowledgements) is durable.
    pub async fn sync(&self) -> Result<(), BusError> {
        self.inner.commit.commit().await.map_err(BusError::Flush)
    }
}

impl Inner {
    pub(crate) fn check_size(&self, msg: &NewMessage) -> Result<(), SendError> {
        let limit = self.config.max_payload_bytes;
        if msg.payload.len() > limit {
            return Err(SendError::TooLarge {
                size: msg.payload.len(),
                limit,
            });
        }
        Ok(())
    }

    /// Appends `msg` to `state`'s queue, keeps it in the cache for the dispatcher, and returns
    /// its id and the write's commit generation; the caller waits for durability.
    pub(crate) fn append(
        &self,
        state: &QueueState,
        msg: NewMessage,
    ) -> Result<(u64, u64), SendError> {
        let mut q = state.lock();
        if q.depth >= q.policy.max_depth {
            return Err(SendError::Full {
                queue: state.id.clone(),
                depth: q.depth,
                limit: q.policy.max_depth,
            });
        }
        let record = MessageRecord {
            attempts: 0,
            enqueued_ms: now_ms(),
            attributes: msg.attributes,
            payload: msg.payload,
        };
        let id = q.next_id;
        // Appended under the lock, so ids reach the log in order.
        self.log.put(&state.dest, id, |out| {
            store::write_message(
                out,
                0,
                record.enqueued_ms,
                &record.attributes,
                &record.payload,
            )
        });
        state.cache.insert(id, Arc::new(record));
        q.next_id = id + 1;
        q.depth += 1;
        q.ready.insert(id);
        drop(q);
        let generation = self.commit.mark_written();
        state.notify.notify_waiters();
        Ok((id, generation))
    }
}
