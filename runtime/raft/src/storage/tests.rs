//! Storage tests on real sled files: the raft-rs `Storage` contract, conflicting-suffix
//! overwrites, compaction, recovery and corruption reporting.

use raft::eraftpb::{Entry, HardState, Snapshot};
use raft::{GetEntriesContext, Storage};

use super::codec::{HARD_STATE_KEY, entry_key};
use super::{SledStorage, TREE};
use crate::error::StorageError;

fn entry(index: u64, term: u64, data: &str) -> Entry {
    Entry {
        index,
        term,
        data: data.as_bytes().to_vec().into(),
        ..Default::default()
    }
}

fn hard_state(term: u64, commit: u64) -> HardState {
    HardState {
        term,
        commit,
        ..Default::default()
    }
}

fn ctx() -> GetEntriesContext {
    GetEntriesContext::empty(false)
}

fn bootstrapped(dir: &std::path::Path) -> SledStorage {
    let mut storage = SledStorage::open(dir).unwrap();
    assert!(!storage.is_initialized());
    storage.bootstrap(vec![1], b"initial".to_vec()).unwrap();
    storage
}

fn raft_err_is(err: raft::Error, expected: raft::StorageError) -> bool {
    matches!(err, raft::Error::Store(e) if e == expected)
}

#[test]
fn bootstrap_then_append_read_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = bootstrapped(dir.path());
    assert_eq!(storage.first_index().unwrap(), 2);
    assert_eq!(storage.last_index().unwrap(), 1);
    assert_eq!(storage.term(1).unwrap(), 1);
    assert_eq!(storage.initial_state().unwrap().conf_state.voters, vec![1]);

    let entries: Vec<_> = (2..=6).map(|i| entry(i, 2, &format!("c{i}"))).collect();
    assert!(
        storage
            .persist_ready(None, &entries, Some(&hard_state(2, 4)))
            .unwrap()
    );
    assert_eq!(storage.last_index().unwrap(), 6);
    assert_eq!(storage.entries(2, 7, None, ctx()).unwrap(), entries);
    // max_size keeps at least one entry and stops once exceeded.
    assert_eq!(storage.entries(2, 7, Some(0), ctx()).unwrap().len(), 1);
    assert!(raft_err_is(
        storage.entries(1, 3, None, ctx()).unwrap_err(),
        raft::StorageError::Compacted
    ));
    assert!(raft_err_is(
        storage.term(7).unwrap_err(),
        raft::StorageError::Unavailable
    ));
    drop(storage);

    let storage = SledStorage::open(dir.path()).unwrap();
    assert_eq!(storage.last_index().unwrap(), 6);
    assert_eq!(storage.hard_state().commit, 4);
    assert_eq!(storage.entries(3, 5, None, ctx()).unwrap(), entries[1..3]);
    assert_eq!(&storage.read_snapshot().unwrap().data[..], b"initial");
}

#[test]
fn conflicting_suffix_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = bootstrapped(dir.path());
    let old: Vec<_> = (2..=6).map(|i| entry(i, 2, "old")).collect();
    storage.persist_ready(None, &old, None).unwrap();
    let new = vec![entry(4, 3, "new")];
    storage.persist_ready(None, &new, None).unwrap();
    assert_eq!(storage.last_index().unwrap(), 4);
    assert_eq!(storage.entry(5).unwrap(), None);
    assert_eq!(storage.term(4).unwrap(), 3);

    // A gap and an overwrite of compacted entries are refused, not applied.
    let gap = storage.persist_ready(None, &[entry(9, 3, "gap")], None);
    assert!(matches!(gap, Err(StorageError::Invariant(_))), "{gap:?}");
    let compacted = storage.persist_ready(None, &[entry(1, 3, "x")], None);
    assert!(matches!(compacted, Err(StorageError::Invariant(_))));
    assert_eq!(storage.last_index().unwrap(), 4);
}

#[test]
fn snapshot_compacts_and_keeps_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = bootstrapped(dir.path());
    let entries: Vec<_> = (2..=20).map(|i| entry(i, 2, "c")).collect();
    storage
        .persist_ready(None, &entries, Some(&hard_state(2, 20)))
        .unwrap();
    let truncated = storage.save_snapshot(15, b"state@15".to_vec(), 3).unwrap();
    assert_eq!((truncated.index, truncated.term), (12, 2));
    assert_eq!(storage.first_index().unwrap(), 13);
    assert_eq!(
        storage.term(12).unwrap(),
        2,
        "term of the truncated entry is kept"
    );
    assert!(raft_err_is(
        storage.term(11).unwrap_err(),
        raft::StorageError::Compacted
    ));
    assert_eq!(storage.entry(12).unwrap(), None);
    let snapshot = storage.snapshot(0, 1).unwrap();
    assert_eq!(snapshot.get_metadata().index, 15);
    assert_eq!(snapshot.get_metadata().get_conf_state().voters, vec![1]);
    assert!(!storage.take_snapshot_wanted());
    assert!(raft_err_is(
        storage.snapshot(16, 1).unwrap_err(),
        raft::StorageError::SnapshotTemporarilyUnavailable
    ));
    assert!(
        storage.take_snapshot_wanted(),
        "a newer snapshot is asked for"
    );
    assert!(!storage.take_snapshot_wanted(), "once");
    // A peer the stored membership does not name would ignore this snapshot.
    assert!(raft_err_is(
        storage.snapshot(0, 2).unwrap_err(),
        raft::StorageError::SnapshotTemporarilyUnavailable
    ));
    assert!(storage.take_snapshot_wanted());
    drop(storage);

    let storage = SledStorage::open(dir.path()).unwrap();
    assert_eq!(storage.snapshot_position().index, 15);
    assert_eq!(storage.truncated().index, 12);
    assert_eq!(storage.entries(13, 21, None, ctx()).unwrap().len(), 8);
}

#[test]
fn snapshot_from_leader_replaces_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = bootstrapped(dir.path());
    let entries: Vec<_> = (2..=5).map(|i| entry(i, 2, "c")).collect();
    storage.persist_ready(None, &entries, None).unwrap();
    let mut snapshot = Snapshot {
        data: b"leader state".to_vec().into(),
        ..Default::default()
    };
    let meta = snapshot.mut_metadata();
    meta.index = 40;
    meta.term = 5;
    meta.mut_conf_state().voters = vec![1, 2, 3];
    storage
        .persist_ready(Some(&snapshot), &[entry(41, 5, "after")], None)
        .unwrap();
    assert_eq!(storage.first_index().unwrap(), 41);
    assert_eq!(storage.last_index().unwrap(), 41);
    assert_eq!(storage.term(40).unwrap(), 5);
    assert_eq!(storage.hard_state().commit, 40);
    assert_eq!(storage.conf_state().voters, vec![1, 2, 3]);
    assert_eq!(storage.conf_index(), 40);
    assert_eq!(storage.entry(5).unwrap(), None);
}

#[test]
fn corruption_is_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = bootstrapped(dir.path());
    let entries: Vec<_> = (2..=6).map(|i| entry(i, 2, "c")).collect();
    storage.persist_ready(None, &entries, None).unwrap();
    drop(storage);

    // Garble entry 3 behind the store's back.
    {
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree(TREE).unwrap();
        tree.insert(entry_key(3), &[0xff, 0xff, 0xff][..]).unwrap();
        tree.flush().unwrap();
    }
    let storage = SledStorage::open(dir.path()).unwrap();
    let err = storage.read_entries(2, 7, None).unwrap_err();
    assert!(err.to_string().contains("log entry 3"), "{err}");
    let err = storage.entries(2, 7, None, ctx()).unwrap_err();
    assert!(err.to_string().contains("log entry 3"), "{err}");
    drop(storage);

    // A hole in the log and a garbled hard state fail the open itself.
    {
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree(TREE).unwrap();
        tree.remove(entry_key(4)).unwrap();
        tree.flush().unwrap();
    }
    let err = SledStorage::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("log entry 4"), "{err}");
    {
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree(TREE).unwrap();
        tree.insert(entry_key(4), b"x".to_vec()).unwrap();
        tree.insert(HARD_STATE_KEY, &[0xff, 0x01][..]).unwrap();
        tree.flush().unwrap();
    }
    let err = SledStorage::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("hard state"), "{err}");
}

#[test]
fn a_snapshot_in_the_old_layout_moves_to_its_own_tree() {
    use super::codec::{LEGACY_SNAPSHOT_KEY, SNAPSHOT_KEY};
    let dir = tempfile::tempdir().unwrap();
    let storage = bootstrapped(dir.path());
    let written = storage.read_snapshot().unwrap();
    // Rewrite it as versions before the snapshot tree stored it: in the log tree.
    let bytes = storage.snapshots.remove(SNAPSHOT_KEY).unwrap().unwrap();
    storage.tree.insert(LEGACY_SNAPSHOT_KEY, bytes).unwrap();
    storage.db.flush().unwrap();
    drop(storage);

    let storage = SledStorage::open(dir.path()).unwrap();
    assert_eq!(storage.read_snapshot().unwrap(), written);
    assert_eq!(storage.snapshot_position().index, 1);
    assert!(storage.tree.get(LEGACY_SNAPSHOT_KEY).unwrap().is_none());
    assert!(storage.snapshots.get(SNAPSHOT_KEY).unwrap().is_some());
}
