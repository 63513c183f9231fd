//! How much the store writes per committed entry once a large snapshot exists: the snapshot
//! must not be rewritten with the hot metadata (hard state, commit index) it used to share a
//! sled leaf with. Measured with this process's `wchar` (`/proc/self/io`), so this file holds
//! one test and nothing else writes meanwhile.

mod common;

use common::{config, open};

/// Bytes this process has written (`write`/`pwrite` calls), from `/proc/self/io`.
fn written() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    io.lines()
        .find_map(|line| line.strip_prefix("wchar: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("wchar in /proc/self/io")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_snapshot_is_not_rewritten_with_each_committed_entry() {
    const WRITES: u64 = 300;
    const SNAPSHOT_BYTES: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.snapshot_every = 1_000_000; // only the snapshot taken below
    let (node, journal) = open(cfg).await;
    // A state (hence a snapshot) of about 1 MiB.
    node.propose(vec![b'x'; SNAPSHOT_BYTES]).await.unwrap();
    node.compact_now().await.unwrap();

    let before = written();
    for n in 0..WRITES {
        node.propose(format!("c{n}").into_bytes()).await.unwrap();
    }
    // Let the commit index of the last write be flushed too.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let per_write = (written() - before) / WRITES;
    eprintln!(
        "{per_write} bytes written per committed entry with a {SNAPSHOT_BYTES}-byte snapshot"
    );
    assert_eq!(journal.entries().len() as u64, WRITES + 1);
    // A small entry, its hard state and sled's own bookkeeping: a few KiB. Rewriting the
    // snapshot with the metadata leaf cost hundreds of KiB per entry.
    assert!(
        per_write < 64 * 1024,
        "{per_write} bytes written per committed entry"
    );
    node.shutdown().await.unwrap();
}
