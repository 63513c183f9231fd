//! Tests of the queue log on its own ([`crate::segments`], [`crate::compact`],
//! [`crate::spare`]): recovery from torn and stale records, reopening, segment deletion,
//! compaction and recycling.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::segments::{Log, segment_path};

const DEST: &[u8] = b"queue-a";

fn open(dir: &Path, segment_bytes: u64) -> Log {
    Log::open(dir, segment_bytes, 0).expect("open log")
}

fn put(log: &Log, id: u64, body: &str) {
    log.put(DEST, id, |out| out.extend_from_slice(body.as_bytes()));
}

/// Live ids with their records.
fn contents(log: &Log) -> BTreeMap<u64, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (dest, _, ids) in log.queues() {
        for id in ids {
            let rec = log.read(&dest, id).expect("readable").expect("stored");
            out.insert(id, rec);
        }
    }
    out
}

/// Segment files in the log directory, by number.
fn segment_files(dir: &Path) -> Vec<u64> {
    let mut out: Vec<u64> = std::fs::read_dir(dir.join("queue-log"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    out.sort_unstable();
    out
}

/// Runs maintenance, recording what it asked to persist.
fn maintain(log: &Log, metas: &mut BTreeMap<Vec<u8>, u64>) -> bool {
    log.maintain(&mut |m, _floor| {
        for (dest, next) in m {
            let e = metas.entry(dest.clone()).or_default();
            *e = (*e).max(*next);
        }
        Ok(())
    })
    .expect("maintain")
}

#[test]
fn a_torn_tail_is_ignored_and_appends_continue_in_a_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), 1 << 20);
        for id in 1..=3 {
            put(&log, id, &format!("m{id}"));
        }
        log.flush().unwrap();
        put(&log, 4, "torn by a crash");
        log.flush().unwrap();
        // A power cut tore the last record: its final byte never reached the disk.
        let seg = *segment_files(dir.path()).last().unwrap();
        let state = log.lock();
        let written = state.segments[&seg].written;
        drop(state);
        let file = OpenOptions::new()
            .write(true)
            .open(segment_path(&dir.path().join("queue-log"), seg))
            .unwrap();
        file.write_all_at(&[0xAA], written - 1).unwrap();
    }
    let log = open(dir.path(), 1 << 20);
    let got = contents(&log);
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(got[&2], b"m2");
    let before = segment_files(dir.path());
    put(&log, 5, "after the crash");
    log.flush().unwrap();
    let after = segment_files(dir.path());
    assert_eq!(after.len(), before.len() + 1, "appends go to a new segment");
    drop(log);
    let log = open(dir.path(), 1 << 20);
    assert_eq!(
        contents(&log).keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 5]
    );
    assert_eq!(log.queues()[0].1, 5, "the highest id seen");
}

#[test]
fn replacements_and_removals_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), 1 << 20);
        for id in 1..=5 {
            put(&log, id, "first");
        }
        put(&log, 2, "second attempt");
        assert!(log.remove(DEST, 3));
        assert!(!log.remove(DEST, 3), "removed once");
        assert!(!log.remove(b"other", 1));
        log.flush().unwrap();
        // Dropped without a flush: lost, as nobody was told it is stored.
        put(&log, 6, "never flushed");
    }
    let log = open(dir.path(), 1 << 20);
    let got = contents(&log);
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![1, 2, 4, 5]);
    assert_eq!(got[&2], b"second attempt");
    assert_eq!(log.read(DEST, 3).unwrap(), None);
}

#[test]
fn dead_segments_are_deleted_oldest_first_once_durable_and_recycled() {
    let dir = tempfile::tempdir().unwrap();
    let mut metas = BTreeMap::new();
    let log = open(dir.path(), 4096);
    for id in 1..=200 {
        put(
            &log,
            id,
            &format!("message {id:04} with some padding to fill segments"),
        );
    }
    log.flush().unwrap();
    let files = segment_files(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    for id in 1..=200 {
        assert!(log.remove(DEST, id));
    }
    // The removals are not durable yet: nothing may go.
    maintain(&log, &mut metas);
    assert_eq!(segment_files(dir.path()), files);
    log.flush().unwrap();
    maintain(&log, &mut metas);
    let left = segment_files(dir.path());
    assert!(left.len() <= 1, "at most the active segment: {left:?}");
    assert!(left.iter().all(|no| no > files.last().unwrap()));
    assert_eq!(
        metas.get(DEST),
        Some(&201),
        "next id recorded before deleting"
    );
    assert!(
        dir.path().join("queue-log/spare").exists(),
        "a deleted segment's file became the spare"
    );
    // The next segments reuse the recycled file; its stale records never come back.
    for id in 201..=260 {
        put(
            &log,
            id,
            &format!("message {id:04} with some padding to fill segments"),
        );
    }
    log.flush().unwrap();
    drop(log);
    let log = open(dir.path(), 4096);
    let got = contents(&log);
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (201..=260).collect::<Vec<_>>()
    );
}

#[test]
fn a_sparse_oldest_segment_is_compacted_then_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut metas = BTreeMap::new();
    let log = open(dir.path(), 4096);
    for id in 1..=120 {
        put(
            &log,
            id,
            &format!("message {id:04} with some padding to fill segments"),
        );
    }
    log.flush().unwrap();
    let first = segment_files(dir.path())[0];
    // Everything is acknowledged except message 1 (a straggler waiting for a retry).
    for id in 2..=120 {
        log.remove(DEST, id);
    }
    log.flush().unwrap();
    assert!(
        maintain(&log, &mut metas),
        "the straggler was copied forward"
    );
    assert!(
        segment_files(dir.path()).contains(&first),
        "not durable yet"
    );
    log.flush().unwrap();
    maintain(&log, &mut metas);
    assert!(!segment_files(dir.path()).contains(&first));
    assert_eq!(
        log.read(DEST, 1).unwrap().unwrap(),
        b"message 0001 with some padding to fill segments"
    );
    drop(log);
    let log = open(dir.path(), 4096);
    assert_eq!(contents(&log).keys().copied().collect::<Vec<_>>(), vec![1]);
}

#[test]
fn a_backlog_is_not_rewritten_but_dead_segments_behind_it_wait() {
    let dir = tempfile::tempdir().unwrap();
    let mut metas = BTreeMap::new();
    let log = open(dir.path(), 4096);
    // A backlog of another queue fills the first segments, then traffic flows.
    for id in 1..=60 {
        log.put(b"backlog", id, |o| o.extend_from_slice(&[7; 60]));
    }
    for id in 1..=80 {
        put(&log, id, "flowing message with some padding");
        log.remove(DEST, id);
    }
    log.flush().unwrap();
    let before = segment_files(dir.path());
    assert!(!maintain(&log, &mut metas), "a full segment is not copied");
    assert_eq!(segment_files(dir.path())[0], before[0]);
    // Once the backlog drains, everything but the active segment goes.
    for id in 1..=60 {
        log.remove(b"backlog", id);
    }
    log.flush().unwrap();
    maintain(&log, &mut metas);
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert_eq!(metas.get(&b"backlog"[..]), Some(&61));
}

#[test]
fn a_corrupt_record_in_a_sealed_segment_reads_as_corrupt_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 1 << 20);
    put(&log, 1, "good");
    put(&log, 2, "will rot");
    log.flush().unwrap();
    let seg = segment_files(dir.path())[0];
    let written = log.lock().segments[&seg].written;
    let file = OpenOptions::new()
        .write(true)
        .open(segment_path(&dir.path().join("queue-log"), seg))
        .unwrap();
    file.write_all_at(b"X", written - 2).unwrap();
    assert!(matches!(
        log.read(DEST, 2),
        Err(crate::segments::ReadError::Corrupt(..))
    ));
    assert_eq!(log.read(DEST, 1).unwrap().unwrap(), b"good");
}
