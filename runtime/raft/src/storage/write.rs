//! Writes to the raft store. Only the driver task calls these (through `RawNode::mut_store`).
//!
//! Each method builds one sled batch (atomic on recovery) — with a new snapshot, one transaction
//! over the log tree and the snapshot tree — applies it, and only then updates the in-memory
//! mirror. None of them fsyncs: the driver calls [`SledStorage::flush`] where the raft
//! `Ready` protocol requires durability (before sending messages or applying).

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};

use super::codec::{
    CONF_INDEX_KEY, CONF_STATE_KEY, HARD_STATE_KEY, SNAPSHOT_KEY, TRUNCATED_KEY, encode,
    encode_position, entry_key,
};
use super::{LogPosition, SledStorage, transaction_error};
use crate::error::StorageError;

impl SledStorage {
    /// Writes a fresh single-configuration store: a snapshot at index 1, term 1 holding the
    /// given membership and the initial state machine data, then fsyncs. Starting the log at 1
    /// (not 0) means nodes added later catch up from a snapshot that carries the membership.
    pub(crate) fn bootstrap(
        &mut self,
        voters: Vec<u64>,
        data: Vec<u8>,
    ) -> Result<(), StorageError> {
        if self.is_initialized() {
            return Err(StorageError::Invariant(
                "bootstrap of an already initialized store".into(),
            ));
        }
        let mut snapshot = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        let meta = snapshot.mut_metadata();
        meta.index = 1;
        meta.term = 1;
        meta.mut_conf_state().voters = voters;
        let hard_state = HardState {
            term: 1,
            commit: 1,
            ..Default::default()
        };
        self.persist_ready(Some(&snapshot), &[], Some(&hard_state))?;
        self.tree
            .flush()
            .map_err(|e| StorageError::sled("flushing the bootstrap state", e))?;
        Ok(())
    }

    /// Persists what a raft `Ready` asks for, in one atomic batch: a snapshot received from the
    /// leader (replacing the whole log), new entries (overwriting any conflicting suffix), and
    /// the hard state. Returns whether anything was written.
    pub(crate) fn persist_ready(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<bool, StorageError> {
        let mut batch = sled::Batch::default();
        let mut truncated = self.truncated;
        let mut snapshot_pos = self.snapshot;
        let mut last_index = self.last_index;
        let mut conf = None;
        let mut new_hard_state = hard_state.cloned();
        let mut snapshot_bytes = None;

        if let Some(snapshot) = snapshot.filter(|s| !s.is_empty()) {
            let meta = snapshot.get_metadata();
            if meta.index <= self.truncated.index {
                return Err(StorageError::Invariant(format!(
                    "snapshot at {} is older than the log start {}",
                    meta.index,
                    self.truncated.index + 1
                )));
            }
            self.remove_range(&mut batch, self.truncated.index + 1, self.last_index)?;
            snapshot_bytes = Some(encode("snapshot", snapshot)?);
            let position = LogPosition {
                index: meta.index,
                term: meta.term,
            };
            batch.insert(TRUNCATED_KEY, &encode_position(position));
            let cs = meta.get_conf_state().clone();
            batch.insert(CONF_STATE_KEY, encode("conf state", &cs)?);
            batch.insert(CONF_INDEX_KEY, &meta.index.to_be_bytes());
            conf = Some((cs, meta.index));
            let hs = new_hard_state.get_or_insert_with(|| self.hard_state.clone());
            hs.term = hs.term.max(meta.term);
            hs.commit = hs.commit.max(meta.index);
            truncated = position;
            snapshot_pos = position;
            last_index = meta.index;
        }

        if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
            if first.index <= truncated.index || first.index > last_index + 1 {
                return Err(StorageError::Invariant(format!(
                    "appending entries {}..={} to a log spanning {}..={last_index}",
                    first.index,
                    last.index,
                    truncated.index + 1
                )));
            }
            for (offset, entry) in entries.iter().enumerate() {
                if entry.index != first.index + offset as u64 {
                    return Err(StorageError::Invariant(format!(
                        "non-contiguous entries: {} follows {}",
                        entry.index,
                        first.index + offset as u64 - 1
                    )));
                }
                batch.insert(&entry_key(entry.index), encode("log entry", entry)?);
            }
            // Entries past the new tail were overwritten by a new leader: drop them.
            self.remove_range(&mut batch, last.index + 1, last_index)?;
            last_index = last.index;
        }

        if let Some(hs) = &new_hard_state {
            batch.insert(HARD_STATE_KEY, encode("hard state", hs)?);
        }
        if snapshot.is_none_or(Snapshot::is_empty) && entries.is_empty() && new_hard_state.is_none()
        {
            return Ok(false);
        }
        self.write(batch, snapshot_bytes, || {
            format!("persisting a raft ready up to {last_index}")
        })?;

        self.truncated = truncated;
        self.snapshot = snapshot_pos;
        self.last_index = last_index;
        if let Some((cs, index)) = conf {
            self.conf_state = cs;
            self.conf_index = index;
        }
        if let Some(hs) = new_hard_state {
            self.hard_state = hs;
        }
        Ok(true)
    }

    /// Records a newer commit index. Not fsynced here (the driver flushes it within a tick, see
    /// [`commit_unflushed`](Self::commit_unflushed)): losing it in a crash only means the
    /// entries are committed again after the next election — but a host that restarts behind
    /// its last commit replays an older registry (older peer addresses) until it hears from
    /// the leader.
    pub(crate) fn set_commit(&mut self, commit: u64) -> Result<(), StorageError> {
        let mut hs = self.hard_state.clone();
        hs.commit = commit;
        self.tree
            .insert(HARD_STATE_KEY, encode("hard state", &hs)?)
            .map_err(|e| StorageError::sled(format!("recording commit index {commit}"), e))?;
        self.hard_state = hs;
        Ok(())
    }

    /// Records the membership that took effect when the entry at `index` was applied.
    pub(crate) fn set_conf_state(&mut self, cs: ConfState, index: u64) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        batch.insert(CONF_STATE_KEY, encode("conf state", &cs)?);
        batch.insert(CONF_INDEX_KEY, &index.to_be_bytes());
        self.tree
            .apply_batch(batch)
            .map_err(|e| StorageError::sled(format!("recording conf state at {index}"), e))?;
        self.conf_state = cs;
        self.conf_index = index;
        Ok(())
    }

    /// Stores a snapshot of the state machine taken at `index` (which must be applied, hence
    /// committed and stored) and drops the log up to `index - keep_tail`. Returns the new
    /// truncated position. A snapshot not newer than the stored one is ignored.
    pub(crate) fn save_snapshot(
        &mut self,
        index: u64,
        data: Vec<u8>,
        keep_tail: u64,
    ) -> Result<LogPosition, StorageError> {
        if index <= self.snapshot.index {
            return Ok(self.truncated);
        }
        if index > self.last_index || index > self.hard_state.commit {
            return Err(StorageError::Invariant(format!(
                "snapshot at {index} beyond the commit index {} / last index {}",
                self.hard_state.commit, self.last_index
            )));
        }
        let term = self.term_of(index)?;
        let mut meta = SnapshotMetadata {
            index,
            term,
            ..Default::default()
        };
        meta.set_conf_state(self.conf_state.clone());
        let mut snapshot = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        snapshot.set_metadata(meta);

        let compact_to = index.saturating_sub(keep_tail).max(self.truncated.index);
        let truncated = LogPosition {
            index: compact_to,
            term: self.term_of(compact_to)?,
        };
        let mut batch = sled::Batch::default();
        self.remove_range(&mut batch, self.truncated.index + 1, compact_to)?;
        batch.insert(TRUNCATED_KEY, &encode_position(truncated));
        // The commit index is otherwise written lazily; store it with the snapshot so that a
        // recovered store never has a snapshot beyond its commit index.
        batch.insert(HARD_STATE_KEY, encode("hard state", &self.hard_state)?);
        let bytes = encode("snapshot", &snapshot)?;
        self.write(batch, Some(bytes), || {
            format!("saving the snapshot at {index}")
        })?;
        self.snapshot = LogPosition { index, term };
        self.truncated = truncated;
        Ok(truncated)
    }

    /// Applies `batch` to the log tree; with a snapshot, in one transaction with storing it in
    /// the snapshot tree (both or neither survive a crash).
    fn write(
        &self,
        batch: sled::Batch,
        snapshot: Option<Vec<u8>>,
        op: impl FnOnce() -> String,
    ) -> Result<(), StorageError> {
        use sled::Transactional as _;
        let Some(snapshot) = snapshot else {
            return self
                .tree
                .apply_batch(batch)
                .map_err(|e| StorageError::sled(op(), e));
        };
        let snapshot = sled::IVec::from(snapshot);
        (&self.tree, &self.snapshots)
            .transaction(|(tree, snapshots)| {
                tree.apply_batch(&batch)?;
                snapshots.insert(SNAPSHOT_KEY, snapshot.clone())?;
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| transaction_error(op(), e))
    }

    /// Whether the stored commit index is newer than the last flush made durable
    /// ([`set_commit`](Self::set_commit) does not flush).
    pub(crate) fn commit_unflushed(&self) -> bool {
        self.hard_state.commit
            > self
                .flushed_commit
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes every write so far durable: sled's flush (its buffers written
    /// out with `sync_file_range`), then `fdatasync` of its data file so the
    /// device's write cache and the file's size are durable too.
    pub(crate) async fn flush(&self) -> Result<(), StorageError> {
        let commit = self.hard_state.commit;
        self.tree
            .flush_async()
            .await
            .map_err(|e| StorageError::sled("flushing", e))?;
        let file = self.data_file.clone();
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(|e| {
                StorageError::sled(
                    "fdatasync",
                    sled::Error::Io(std::io::Error::other(e.to_string())),
                )
            })?
            .map_err(|e| StorageError::sled("fdatasync of sled's data file", sled::Error::Io(e)))?;
        self.flushed_commit
            .fetch_max(commit, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Adds removals of the stored entries `from..=to` to `batch`.
    fn remove_range(
        &self,
        batch: &mut sled::Batch,
        from: u64,
        to: u64,
    ) -> Result<(), StorageError> {
        if from > to {
            return Ok(());
        }
        for key in self.tree.range(entry_key(from)..=entry_key(to)).keys() {
            let key =
                key.map_err(|e| StorageError::sled(format!("listing log {from}..={to}"), e))?;
            batch.remove(key);
        }
        Ok(())
    }
}
