//! Group commit: many writers share one `fsync`.
//!
//! A writer appends to the queue log ([`crate::segments`]) or applies its sled batch, then
//! calls [`GroupCommit::mark_written`], which returns a *generation* (a counter incremented
//! once per write) and wakes the flusher thread. The flusher repeatedly reads the current
//! written generation, flushes (the queue log: one `write` and one `fdatasync` per segment
//! written; sled, only if something was written to it since its last flush, see
//! [`crate::tree`]), and publishes that generation as flushed on a `tokio::sync::watch`. A
//! writer that must not return before its data is durable awaits [`GroupCommit::wait`] for its
//! generation. Every write that happened before the flusher read the generation is covered by
//! that flush, so with many writers in flight one flush makes a whole group durable.
//!
//! A sled flush is `db.flush()` followed by `fdatasync` of sled's data file: on Linux sled
//! 0.34's own flush ends with `sync_file_range`, which neither flushes the device's write cache
//! nor records a grown file size, so on its own it does not survive a power cut. The queue log
//! is flushed first, so a batch of sends costs one `fdatasync`, not sled's flush and two.
//!
//! After a flush (at most every [`MAINTAIN_EVERY`] while writers keep it busy, else as soon as
//! it is idle) the flusher lets the queue log reclaim space ([`crate::compact`]); records that
//! compaction copies are marked like lazy writes. The flusher also runs the thread that
//! prepares the queue log's spare segment files ([`crate::spare`]).
//!
//! Gathering: after a flush that made `G` writes durable, the next flush waits (briefly: half
//! the last flush's duration, at most [`MAX_GATHER`]) until `G` new writes are pending. The
//! writers just released by the flush are about to write again; without the wait the next
//! flush would start with only a part of them, and groups would settle at half the writers.
//! A lone writer has `G == 1` and never waits.
//!
//! Writes nobody waits for (acknowledgements: losing one only means a redelivery) are marked
//! lazily: they ride along with the next flush somebody waits for, or are flushed within
//! [`IDLE_PARK`], so a busy consumer does not keep the disk fsyncing on its own.
//!
//! The flusher is a dedicated OS thread (fsync blocks); it is stopped and joined when the
//! [`GroupCommit`] is dropped, after a final flush, so the sled database (and its file lock) is
//! released deterministically.

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::segments::Log;
use crate::spare::Preparer;
use crate::store;
use crate::tree::Tree;

/// Longest wait for a flush group to fill up.
const MAX_GATHER: Duration = Duration::from_millis(2);
/// Longest delay of a flush when only lazily marked writes are pending.
const IDLE_PARK: Duration = Duration::from_millis(200);
/// Shortest interval between two runs of the queue log's maintenance.
const MAINTAIN_EVERY: Duration = Duration::from_millis(10);

/// What the flusher has achieved so far.
#[derive(Clone, Debug, Default)]
struct Flushed {
    /// Every write with a generation up to this one is durable.
    generation: u64,
    /// The last failed flush: the generation it tried to reach, and the error.
    error: Option<(u64, String)>,
}

struct Shared {
    written: AtomicU64,
    /// The highest generation somebody may wait for; writes above it are lazy.
    urgent: AtomicU64,
    /// Set while the flusher is (about to be) parked: only then do writers unpark it.
    sleeping: AtomicBool,
    flushes: AtomicU64,
    stop: AtomicBool,
    flushed: watch::Sender<Flushed>,
}

/// The group-commit coordinator and its flusher thread.
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    waker: std::thread::Thread,
}

/// What the flusher makes durable.
pub(crate) struct Storage {
    pub db: sled::Db,
    /// sled's data file (fdatasynced after `db.flush()`).
    pub data_file: File,
    /// The bus's tree (its writes set `dirty`).
    pub tree: Tree,
    /// Set by every sled write since the last sled flush.
    pub dirty: Arc<AtomicBool>,
    pub log: Arc<Log>,
}

impl GroupCommit {
    /// Starts the flusher thread for `storage`.
    pub(crate) fn start(storage: Storage) -> std::io::Result<Self> {
        let (flushed, _) = watch::channel(Flushed::default());
        let shared = Arc::new(Shared {
            written: AtomicU64::new(0),
            urgent: AtomicU64::new(0),
            sleeping: AtomicBool::new(false),
            flushes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            flushed,
        });
        let thread = std::thread::Builder::new()
            .name("bus-flusher".into())
            .spawn({
                let shared = shared.clone();
                move || run(&shared, &storage)
            })?;
        let waker = thread.thread().clone();
        Ok(Self {
            shared,
            thread: Mutex::new(Some(thread)),
            waker,
        })
    }

    /// Records that a write was applied; returns its generation. The flusher will make it
    /// durable soon even if nobody waits.
    pub(crate) fn mark_written(&self) -> u64 {
        let generation = self.shared.written.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared.urgent.fetch_max(generation, Ordering::SeqCst);
        if self.shared.sleeping.load(Ordering::SeqCst) {
            self.waker.unpark();
        }
        generation
    }

    /// Records a write nobody waits for (an acknowledgement): it joins the next flush that
    /// somebody waits for, or else a flush within [`IDLE_PARK`]; it never wakes the flusher.
    pub(crate) fn mark_written_lazily(&self) {
        self.shared.written.fetch_add(1, Ordering::SeqCst);
    }

    /// Waits until the write of `generation` is durable.
    pub(crate) async fn wait(&self, generation: u64) -> Result<(), String> {
        let mut rx = self.shared.flushed.subscribe();
        let state = rx
            .wait_for(|f| {
                f.generation >= generation
                    || f.error.as_ref().is_some_and(|(g, _)| *g >= generation)
            })
            .await
            .map_err(|_| "the flusher stopped".to_string())?;
        if state.generation >= generation {
            return Ok(());
        }
        Err(state
            .error
            .as_ref()
            .map(|(_, e)| e.clone())
            .unwrap_or_default())
    }

    /// Marks a write and waits until it is durable.
    pub(crate) async fn commit(&self) -> Result<(), String> {
        let generation = self.mark_written();
        self.wait(generation).await
    }

    /// (writes, flushes) so far.
    pub(crate) fn counters(&self) -> (u64, u64) {
        (
            self.shared.written.load(Ordering::Acquire),
            self.shared.flushes.load(Ordering::Acquire),
        )
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.waker.unpark();
        let thread = match self.thread.lock() {
            Ok(mut t) => t.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("the bus flusher thread panicked");
        }
    }
}

/// Makes every write so far durable: the queue log, then sled if it was written.
fn flush(s: &Storage) -> Result<(), String> {
    s.log.flush()?;
    sync_sled(s, false)
}

/// Flushes sled if it was written since its last flush (or if `always`).
fn sync_sled(s: &Storage, always: bool) -> Result<(), String> {
    if !s.dirty.swap(false, Ordering::SeqCst) && !always {
        return Ok(());
    }
    let flushed = s.db.flush().map_err(|e| e.to_string()).and_then(|_| {
        s.data_file
            .sync_data()
            .map_err(|e| format!("fdatasync: {e}"))
    });
    if flushed.is_err() {
        s.dirty.store(true, Ordering::SeqCst);
    }
    flushed
}

/// Records the next ids of queues (and the log's floor) in sled, durably, before the queue
/// log deletes segments (see [`crate::compact`]).
fn persist(s: &Storage, metas: &[(Vec<u8>, u64)], floor: u64) -> Result<(), String> {
    let raise = |key: Vec<u8>, value: u64| {
        s.tree
            .update_and_fetch(key, |old| {
                let old = old.and_then(|o| store::decode_next_id(o).ok()).unwrap_or(0);
                Some(store::encode_next_id(old.max(value)).to_vec())
            })
            .map_err(|e| e.to_string())
    };
    for (dest, next) in metas {
        raise(store::meta_key(dest), *next)?;
    }
    raise(vec![store::LOG_FLOOR], floor)?;
    sync_sled(s, true)
}

/// Lets the queue log reclaim space; returns whether it appended copies.
fn maintain(s: &Storage) -> bool {
    match s.log.maintain(&mut |metas, floor| persist(s, metas, floor)) {
        Ok(copied) => copied,
        Err(e) => {
            tracing::warn!(error = %e, "reclaiming queue log space failed; will retry");
            false
        }
    }
}

/// When the queue log's maintenance runs: after a flush, at most every [`MAINTAIN_EVERY`]
/// while writers keep the flusher busy, at once when it is idle.
struct Maintenance {
    /// A flush happened since the last run.
    owed: bool,
    last: Instant,
}

impl Maintenance {
    /// Runs owed maintenance if the flusher is `idle` or it is due; returns whether it ran.
    fn run(&mut self, shared: &Shared, s: &Storage, idle: bool) -> bool {
        if !self.owed || !(idle || self.last.elapsed() >= MAINTAIN_EVERY) {
            return false;
        }
        self.owed = false;
        self.last = Instant::now();
        if maintain(s) {
            // Copies made by compaction: flushed with the next group.
            shared.written.fetch_add(1, Ordering::SeqCst);
        }
        true
    }
}

fn run(shared: &Shared, s: &Storage) {
    // Stopped and joined when the flusher returns.
    let _preparer = Preparer::start(s.log.clone())
        .map_err(
            |e| tracing::warn!(error = %e, "no spare queue log segments: cannot start a thread"),
        )
        .ok();
    let mut done = 0u64;
    // Size of the last group, and how long its flush took.
    let mut last_group = 0u64;
    let mut last_flush = Duration::ZERO;
    let mut gather_until: Option<Instant> = None;
    let mut last_flush_at = Instant::now();
    let mut maintenance = Maintenance {
        owed: false,
        last: Instant::now(),
    };
    loop {
        let target = shared.written.load(Ordering::SeqCst);
        let urgent = shared.urgent.load(Ordering::SeqCst);
        let stopping = shared.stop.load(Ordering::SeqCst);
        if target > done && urgent <= done && !stopping {
            // Only lazy writes: flush them with the next urgent group, or after IDLE_PARK.
            let since = last_flush_at.elapsed();
            if since < IDLE_PARK {
                // Nobody waits: a good moment for owed maintenance.
                if !maintenance.run(shared, s, true) {
                    park(shared, target, urgent, IDLE_PARK - since);
                }
                continue;
            }
        }
        if target > done {
            let pending = target - done;
            if pending < last_group && !stopping {
                let now = Instant::now();
                let until =
                    *gather_until.get_or_insert_with(|| now + (last_flush / 2).min(MAX_GATHER));
                if now < until {
                    park(shared, target, urgent, until - now);
                    continue;
                }
            }
            gather_until = None;
            let started = Instant::now();
            match flush(s) {
                Ok(()) => {
                    last_flush_at = Instant::now();
                    last_flush = last_flush_at - started;
                    last_group = pending;
                    done = target;
                    shared.flushes.fetch_add(1, Ordering::AcqRel);
                    shared.flushed.send_modify(|f| f.generation = target);
                    maintenance.owed = !stopping;
                    maintenance.run(shared, s, false);
                }
                Err(msg) => {
                    tracing::error!(error = %msg, "bus flush failed");
                    shared
                        .flushed
                        .send_modify(|f| f.error = Some((target, msg)));
                    if shared.stop.load(Ordering::Acquire) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            continue;
        }
        if stopping {
            return;
        }
        if !maintenance.run(shared, s, true) {
            park(shared, target, urgent, IDLE_PARK);
        }
    }
}

/// Parks the flusher for at most `timeout` unless, since it read `written` and `urgent`, a
/// write arrived or somebody started waiting.
fn park(shared: &Shared, written: u64, urgent: u64, timeout: Duration) {
    // Dekker-style: a writer updates `written` and `urgent`, then reads `sleeping`; we set
    // `sleeping`, then read them. With SeqCst at least one side sees the other.
    shared.sleeping.store(true, Ordering::SeqCst);
    if shared.written.load(Ordering::SeqCst) == written
        && shared.urgent.load(Ordering::SeqCst) == urgent
        && !shared.stop.load(Ordering::SeqCst)
    {
        std::thread::park_timeout(timeout);
    }
    shared.sleeping.store(false, Ordering::SeqCst);
}
