//! The durable raft log: raft-rs's [`Storage`] trait implemented over sled.
//!
//! [`SledStorage`] keeps the log entries, the hard state (term, vote, commit) and the membership
//! ([`ConfState`]) in one sled tree, the latest snapshot in another (layout in `codec`). Small metadata is
//! mirrored in memory; entries are read from sled on demand. Writes come only from the driver
//! task (which owns the storage through raft-rs's `RawNode`), one atomic sled batch per `Ready`,
//! and are made durable by a flush (`fsync`) before anything is acknowledged.
//!
//! The storage can also be opened on its own (with the node shut down) to inspect a data
//! directory.

mod codec;
#[cfg(test)]
mod tests;
mod write;

use std::path::Path;
use std::time::{Duration, Instant};

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage};

pub use self::codec::LogPosition;
use self::codec::{
    CONF_INDEX_KEY, CONF_STATE_KEY, ENTRY_PREFIX, HARD_STATE_KEY, LEGACY_SNAPSHOT_KEY,
    SNAPSHOT_KEY, TRUNCATED_KEY, decode, decode_position, decode_u64, entry_index, entry_key,
};
use crate::error::StorageError;

/// Name of the sled tree holding the raft log and its metadata.
const TREE: &str = "raft";
/// Name of the sled tree holding the latest snapshot.
const SNAPSHOT_TREE: &str = "raft-snapshot";

/// raft-rs [`Storage`] over a sled database. See the module docs.
pub struct SledStorage {
    db: sled::Db,
    tree: sled::Tree,
    /// The latest snapshot, apart from the hot log tree (see `codec`).
    snapshots: sled::Tree,
    /// sled's data file, fdatasynced after every flush: on Linux sled 0.34
    /// writes with `sync_file_range`, which neither flushes the device's
    /// write cache nor records a grown file's size.
    data_file: std::sync::Arc<std::fs::File>,
    hard_state: HardState,
    conf_state: ConfState,
    /// Log index at which `conf_state` took effect (0 if never set).
    conf_index: u64,
    /// Last compacted position: entries `<= truncated.index` are gone.
    truncated: LogPosition,
    /// Position of the stored snapshot (index 0: none).
    snapshot: LogPosition,
    /// Index of the last entry (== `truncated.index` when the log is empty).
    last_index: u64,
    /// Set when raft asked for a snapshot the stored one cannot serve (too old, or taken before
    /// the requesting peer joined); the driver takes a fresh one.
    snapshot_wanted: std::sync::atomic::AtomicBool,
    /// The commit index the last completed flush made durable.
    flushed_commit: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for SledStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStorage")
            .field("hard_state", &self.hard_state)
            .field("conf_state", &self.conf_state)
            .field("conf_index", &self.conf_index)
            .field("truncated", &self.truncated)
            .field("snapshot", &self.snapshot)
            .field("last_index", &self.last_index)
            .finish_non_exhaustive()
    }
}

impl SledStorage {
    /// Opens (or creates) the store in `dir` and checks that what it holds is consistent.
    ///
    /// sled locks the directory: only one `SledStorage` (i.e. one running node) may have it open.
    /// sled 0.34 releases that lock a moment *after* its `Db` is dropped (its I/O threads wind
    /// down asynchronously, sled issue #1234), so a busy lock is retried for up to
    /// [`LOCK_WAIT`] before giving up. Blocking: call from a blocking context.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        Self::open_with(dir, Some(DEFAULT_BACKGROUND_FLUSH))
    }

    /// [`SledStorage::open`] with sled's background flush every `background_flush` (`None`:
    /// only the driver's flushes write anything out).
    pub fn open_with(dir: &Path, background_flush: Option<Duration>) -> Result<Self, StorageError> {
        let db = open_db(dir, background_flush)?;
        let data_file = std::fs::File::open(dir.join("db"))
            .map(std::sync::Arc::new)
            .map_err(|e| StorageError::sled("opening sled's data file", sled::Error::Io(e)))?;
        let tree = db
            .open_tree(TREE)
            .map_err(|e| StorageError::sled(format!("opening tree {TREE:?}"), e))?;
        let snapshots = db
            .open_tree(SNAPSHOT_TREE)
            .map_err(|e| StorageError::sled(format!("opening tree {SNAPSHOT_TREE:?}"), e))?;
        move_legacy_snapshot(&tree, &snapshots)?;
        let mut storage = SledStorage {
            db,
            tree,
            snapshots,
            data_file,
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            conf_index: 0,
            truncated: LogPosition::default(),
            snapshot: LogPosition::default(),
            last_index: 0,
            snapshot_wanted: std::sync::atomic::AtomicBool::new(false),
            flushed_commit: std::sync::atomic::AtomicU64::new(0),
        };
        storage.load()?;
        *storage.flushed_commit.get_mut() = storage.hard_state.commit;
        Ok(storage)
    }

    /// Whether the store holds a membership, i.e. was bootstrapped or received a snapshot.
    pub fn is_initialized(&self) -> bool {
        self.conf_state != ConfState::default()
    }

    /// The persisted hard state (term, vote, commit).
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The persisted membership.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// Log index at which the persisted membership took effect.
    pub fn conf_index(&self) -> u64 {
        self.conf_index
    }

    /// Last compacted position; entries at or below its index are no longer stored.
    pub fn truncated(&self) -> LogPosition {
        self.truncated
    }

    /// Position of the stored snapshot (index 0 when there is none).
    pub fn snapshot_position(&self) -> LogPosition {
        self.snapshot
    }

    /// Index of the last stored entry (the truncated index when the log is empty).
    pub fn last_log_index(&self) -> u64 {
        self.last_index
    }

    /// Whether raft asked for a snapshot newer than the stored one since the last call (and
    /// clears the request).
    pub(crate) fn take_snapshot_wanted(&self) -> bool {
        self.snapshot_wanted
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// Bytes the whole sled database takes on disk.
    pub fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.db
            .size_on_disk()
            .map_err(|e| StorageError::sled("measuring the database size", e))
    }

    /// Reads the stored snapshot (metadata and state machine data); empty if there is none.
    pub fn read_snapshot(&self) -> Result<Snapshot, StorageError> {
        let stored = self
            .snapshots
            .get(SNAPSHOT_KEY)
            .map_err(|e| StorageError::sled("reading snapshot", e))?;
        match stored {
            Some(bytes) => decode(&bytes, || "snapshot".to_string()),
            None => Ok(Snapshot::default()),
        }
    }

    /// Reads the entry at `index` if it is stored.
    pub fn entry(&self, index: u64) -> Result<Option<Entry>, StorageError> {
        let what = || format!("log entry {index}");
        let Some(bytes) = self.get(&entry_key(index), &what())? else {
            return Ok(None);
        };
        let entry: Entry = decode(&bytes, what)?;
        if entry.index != index {
            return Err(StorageError::corrupt(
                what(),
                format!("stored under index {index} but says index {}", entry.index),
            ));
        }
        Ok(Some(entry))
    }

    /// Reads entries `[low, high)`, all of which must be stored, stopping once `max_size`
    /// bytes are exceeded (at least one entry is always returned), like raft-rs's `limit_size`.
    pub fn read_entries(
        &self,
        low: u64,
        high: u64,
        max_size: Option<u64>,
    ) -> Result<Vec<Entry>, StorageError> {
        let mut entries = Vec::new();
        let mut size = 0u64;
        let mut expected = low;
        for item in self.tree.range(entry_key(low)..entry_key(high)) {
            let (key, value) =
                item.map_err(|e| StorageError::sled(format!("reading log {low}..{high}"), e))?;
            let index = entry_index(&key)?;
            if index != expected {
                return Err(StorageError::corrupt(
                    format!("log entry {expected}"),
                    format!("missing (next stored entry is {index})"),
                ));
            }
            let entry: Entry = decode(&value, || format!("log entry {index}"))?;
            if entry.index != index {
                return Err(StorageError::corrupt(
                    format!("log entry {index}"),
                    format!("stored under index {index} but says index {}", entry.index),
                ));
            }
            size += u64::from(protobuf::Message::compute_size(&entry));
            if !entries.is_empty() && max_size.is_some_and(|max| size > max) {
                return Ok(entries);
            }
            entries.push(entry);
            expected += 1;
        }
        if expected != high {
            return Err(StorageError::corrupt(
                format!("log entry {expected}"),
                format!("missing (log should reach {})", high - 1),
            ));
        }
        Ok(entries)
    }

    /// The term of the entry at `index`, which must lie in `[truncated.index, last_index]`.
    fn term_of(&self, index: u64) -> Result<u64, StorageError> {
        if index == self.truncated.index {
            return Ok(self.truncated.term);
        }
        match self.entry(index)? {
            Some(entry) => Ok(entry.term),
            None => Err(StorageError::corrupt(
                format!("log entry {index}"),
                format!(
                    "missing although the log spans {}..={}",
                    self.truncated.index + 1,
                    self.last_index
                ),
            )),
        }
    }

    fn get(&self, key: &[u8], what: &str) -> Result<Option<sled::IVec>, StorageError> {
        self.tree
            .get(key)
            .map_err(|e| StorageError::sled(format!("reading {what}"), e))
    }

    /// Loads the metadata and verifies the log: contiguous, starting right after the truncated
    /// index, with commit and snapshot inside it.
    fn load(&mut self) -> Result<(), StorageError> {
        if let Some(bytes) = self.get(HARD_STATE_KEY, "hard state")? {
            self.hard_state = decode(&bytes, || "hard state".to_string())?;
        }
        if let Some(bytes) = self.get(CONF_STATE_KEY, "conf state")? {
            self.conf_state = decode(&bytes, || "conf state".to_string())?;
        }
        if let Some(bytes) = self.get(CONF_INDEX_KEY, "conf index")? {
            self.conf_index = decode_u64(&bytes, || "conf index".to_string())?;
        }
        if let Some(bytes) = self.get(TRUNCATED_KEY, "truncated state")? {
            self.truncated = decode_position(&bytes, "truncated state")?;
        }
        let snapshot = self.read_snapshot()?;
        self.snapshot = LogPosition {
            index: snapshot.get_metadata().index,
            term: snapshot.get_metadata().term,
        };

        let mut expected = self.truncated.index + 1;
        for key in self.tree.scan_prefix([ENTRY_PREFIX]).keys() {
            let key = key.map_err(|e| StorageError::sled("scanning the log", e))?;
            let index = entry_index(&key)?;
            if index != expected {
                return Err(StorageError::corrupt(
                    format!("log entry {expected}"),
                    format!("missing (next stored entry is {index})"),
                ));
            }
            expected += 1;
        }
        self.last_index = expected - 1;
        if self.last_index > self.truncated.index {
            // Decode the last entry now: a torn tail is better reported at open than mid-run.
            self.term_of(self.last_index)?;
        }

        let (first, last) = (self.truncated.index, self.last_index);
        if !self.is_initialized() && (last > 0 || self.hard_state != HardState::default()) {
            return Err(StorageError::corrupt(
                "conf state",
                "missing although the store holds a log or a hard state",
            ));
        }
        if self.hard_state.commit < first || self.hard_state.commit > last {
            return Err(StorageError::corrupt(
                "hard state",
                format!(
                    "commit index {} outside the stored log {first}..={last}",
                    self.hard_state.commit
                ),
            ));
        }
        if self.snapshot.index < first || self.snapshot.index > self.hard_state.commit {
            return Err(StorageError::corrupt(
                "snapshot",
                format!(
                    "index {} outside {first}..={} (truncated..=commit)",
                    self.snapshot.index, self.hard_state.commit
                ),
            ));
        }
        Ok(())
    }
}

/// Moves a snapshot stored by an older version in the log tree into the snapshot tree (one
/// transaction), so that it no longer shares the log tree's hot leaf.
fn move_legacy_snapshot(tree: &sled::Tree, snapshots: &sled::Tree) -> Result<(), StorageError> {
    use sled::Transactional as _;
    let legacy = tree
        .get(LEGACY_SNAPSHOT_KEY)
        .map_err(|e| StorageError::sled("reading the snapshot of an older layout", e))?;
    let Some(bytes) = legacy else {
        return Ok(());
    };
    (tree, snapshots)
        .transaction(|(tree, snapshots)| {
            snapshots.insert(SNAPSHOT_KEY, bytes.clone())?;
            tree.remove(LEGACY_SNAPSHOT_KEY)?;
            Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
        })
        .map_err(|e| transaction_error("moving the snapshot into its own tree", e))?;
    tracing::info!("moved the raft snapshot into its own sled tree");
    Ok(())
}

/// The error of a sled transaction that never aborts on its own.
pub(crate) fn transaction_error(
    op: impl Into<String>,
    error: sled::transaction::TransactionError<()>,
) -> StorageError {
    match error {
        sled::transaction::TransactionError::Storage(e) => StorageError::sled(op, e),
        sled::transaction::TransactionError::Abort(()) => {
            StorageError::Invariant(format!("{}: transaction aborted", op.into()))
        }
    }
}

/// How long [`SledStorage::open`] waits for another holder of the directory lock to let go.
pub const LOCK_WAIT: Duration = Duration::from_secs(3);

/// sled's default background flush period.
pub(crate) const DEFAULT_BACKGROUND_FLUSH: Duration = Duration::from_millis(500);

/// Opens the sled database, retrying while its directory lock is still held.
fn open_db(dir: &Path, background_flush: Option<Duration>) -> Result<sled::Db, StorageError> {
    let flush_every_ms =
        background_flush.map(|period| u64::try_from(period.as_millis().max(1)).unwrap_or(u64::MAX));
    let deadline = Instant::now() + LOCK_WAIT;
    let mut backoff = Duration::from_millis(5);
    loop {
        let config = sled::Config::new().path(dir).flush_every_ms(flush_every_ms);
        match config.open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(100));
            }
            Err(e) => {
                return Err(StorageError::sled(
                    format!("opening sled in {}", dir.display()),
                    e,
                ));
            }
        }
    }
}

/// Wraps one of our errors into the error type raft-rs's `Storage` trait must return.
fn to_raft(error: StorageError) -> raft::Error {
    raft::Error::Store(raft::StorageError::Other(Box::new(error)))
}

impl Storage for SledStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.truncated.index {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if high > self.last_index + 1 {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        if low >= high {
            return Ok(Vec::new());
        }
        self.read_entries(low, high, max_size.into())
            .map_err(to_raft)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx < self.truncated.index {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if idx > self.last_index {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        self.term_of(idx).map_err(to_raft)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.truncated.index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index)
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let snapshot = self.read_snapshot().map_err(to_raft)?;
        let conf_state = snapshot.get_metadata().get_conf_state();
        let names_peer = conf_state.voters.contains(&to) || conf_state.learners.contains(&to);
        if snapshot.get_metadata().index < request_index || !names_peer {
            // A peer ignores a snapshot whose membership does not include it (one taken before
            // it joined). Ask the driver for a fresh one; raft asks again on its next probe.
            self.snapshot_wanted
                .store(true, std::sync::atomic::Ordering::Relaxed);
            return Err(raft::Error::Store(
                raft::StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(snapshot)
    }
}
