//! Bus-level tests of the queue log: messages spread over many (small) segments across a
//! reopen, `kill -9` of a process in the middle of sends, acknowledgements and retries,
//! stores written before the queue log, and a crash between dead-lettering's two writes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store;
use crate::{Bus, BusConfig, Delivery, NewMessage, QueueId, QueuePolicy, handler_fn};

/// Small segments, so a few hundred messages roll, delete, compact and recycle many.
const SMALL: u64 = 4096;

fn config() -> BusConfig {
    BusConfig {
        default_policy: QueuePolicy {
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(50),
            ..QueuePolicy::default()
        },
        ..BusConfig::default()
    }
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("queue-log"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".log")
        })
        .count()
}

/// Consumes every message of `queue`, acknowledging it; returns id → payload.
async fn drain(bus: &Bus, queue: &QueueId) -> BTreeMap<u64, Vec<u8>> {
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let handler = handler_fn({
        let seen = seen.clone();
        move |d: Delivery| {
            seen.lock().unwrap().insert(d.id, d.payload);
            async { Ok(()) }
        }
    });
    let consumer = bus.consume(queue.clone(), handler, 8);
    let deadline = Instant::now() + Duration::from_secs(30);
    while bus.stats(queue).depth > 0 {
        assert!(Instant::now() < deadline, "timed out draining {queue}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    consumer.stop().await;
    seen.lock().unwrap().clone()
}

#[tokio::test]
async fn messages_over_many_segments_survive_a_reopen_and_dead_ones_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let queue = QueueId::queue("acme", "q");
    {
        let bus = Bus::open_with(dir.path(), config(), SMALL).unwrap();
        for i in 1..=300u64 {
            let id = bus.send(&queue, NewMessage::new(format!("m{i:040}"))).await;
            assert_eq!(id.unwrap(), i);
        }
        assert!(segment_files(dir.path()) > 5);
        assert_eq!(drain(&bus, &queue).await.len(), 300);
        for i in 301..=320u64 {
            bus.send(&queue, NewMessage::new(format!("m{i:040}")))
                .await
                .unwrap();
        }
        bus.sync().await.unwrap();
        // The flusher deletes dead segments once it is idle.
        let deadline = Instant::now() + Duration::from_secs(10);
        while segment_files(dir.path()) > 3 {
            let files = segment_files(dir.path());
            assert!(Instant::now() < deadline, "{files} segment files left");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let bus = Bus::open_with(dir.path(), config(), SMALL).unwrap();
    assert_eq!(bus.stats(&queue).depth, 20);
    let got = drain(&bus, &queue).await;
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (301..=320).collect::<Vec<_>>()
    );
    assert_eq!(got[&305], format!("m{:040}", 305).into_bytes());
    bus.sync().await.unwrap();
    bus.sync().await.unwrap();
    drop(bus);
    // Every segment holding those ids may be gone: the next id still goes on.
    let bus = Bus::open_with(dir.path(), config(), SMALL).unwrap();
    assert_eq!(
        bus.send(&queue, NewMessage::new("next")).await.unwrap(),
        321
    );
}

/// The child side of [`everything_acknowledged_survives_kill_9`]: sends, consumes (slower
/// than it sends, failing every seventh message once) and prints what happened until it is
/// killed.
fn crash_child(dir: &Path) {
    // The test harness has printed the test's name without a line end.
    println!();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bus = Bus::open_with(dir, config(), SMALL).unwrap();
        let queue = QueueId::queue("crash", "q");
        let handler = handler_fn(|d: Delivery| async move {
            if d.id.is_multiple_of(7) && d.attempt == 1 {
                return Err("first attempts of every seventh fail".to_string());
            }
            if d.id.is_multiple_of(3) {
                // Slower than the senders: a backlog builds up.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            println!("acked {}", d.id);
            Ok(())
        });
        let _consumer = bus.consume(queue.clone(), handler, 4);
        for s in 0..16 {
            let (bus, queue) = (bus.clone(), queue.clone());
            tokio::spawn(async move {
                for i in 0u64.. {
                    let payload = format!("p{s}-{i}");
                    let id = bus.send(&queue, NewMessage::new(payload.clone())).await;
                    println!("sent {} {payload}", id.unwrap());
                }
            });
        }
        std::future::pending::<()>().await;
    });
}

#[test]
fn everything_acknowledged_survives_kill_9() {
    const CHILD: &str = "CLOUDWARE_BUS_CRASH_CHILD";
    if let Some(dir) = std::env::var_os(CHILD) {
        crash_child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "recovery_tests::everything_acknowledged_survives_kill_9",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut sent = BTreeMap::new();
    let mut acked = BTreeSet::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut record = |line: String| {
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some("sent"), Some(id), Some(payload)) => {
                sent.insert(id.parse::<u64>().unwrap(), payload.to_string());
            }
            (Some("acked"), Some(id), None) => {
                acked.insert(id.parse::<u64>().unwrap());
            }
            _ => {}
        }
        sent.len()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in lines.by_ref() {
        if record(line.unwrap()) >= 4000 || Instant::now() > deadline {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // What the child printed up to its death: a handler prints before its ack is applied.
    for line in lines {
        record(line.unwrap());
    }
    assert!(sent.len() >= 4000, "the child sent only {}", sent.len());
    assert!(!acked.is_empty());

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bus = Bus::open_with(dir.path(), config(), SMALL).unwrap();
        let queue = QueueId::queue("crash", "q");
        let got = drain(&bus, &queue).await;
        assert!(!got.is_empty(), "a backlog was left");
        for (id, payload) in &sent {
            if !acked.contains(id) {
                assert!(got.contains_key(id), "acknowledged send {id} was lost");
            }
            if let Some(found) = got.get(id) {
                assert_eq!(found, payload.as_bytes(), "message {id}");
            }
        }
        let highest = sent.keys().chain(&acked).chain(got.keys()).max().copied();
        let next = bus.send(&queue, NewMessage::new("after")).await.unwrap();
        assert!(next > highest.unwrap_or(0), "id {next} reused");
    });
}

#[tokio::test]
async fn messages_stored_in_sled_by_an_older_version_move_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let queue = QueueId::queue("acme", "old");
    let dest = store::dest(&queue);
    {
        let bus = Bus::open_with(dir.path(), config(), SMALL).unwrap();
        for id in [5u64, 6] {
            let rec = store::encode_message(0, 1, &[], format!("old {id}").as_bytes());
            bus.inner
                .tree
                .insert(store::item_key(store::MSG, &dest, id), rec)
                .unwrap();
        }
        bus.inner
            .tree
            .insert(store::meta_key(&dest), &store::encode_next_id(9)[..])
            .unwrap();
        bus.sync().await.unwrap();
    }
    let bus = Bus::open_with(dir.path(), config(), SMALL).unwrap();
    assert_eq!(bus.stats(&queue).depth, 2);
    let legacy = bus.inner.tree.scan_prefix(store::prefix(store::MSG, &dest));
    assert_eq!(legacy.count(), 0, "moved out of sled");
    drop(bus);
    let bus = Bus::open_with(dir.path(), config(), SMALL).unwrap();
    let got = drain(&bus, &queue).await;
    assert_eq!(got[&5], b"old 5");
    assert_eq!(got[&6], b"old 6");
    assert_eq!(bus.send(&queue, NewMessage::new("new")).await.unwrap(), 9);
}

#[tokio::test]
async fn a_dead_letter_wins_over_a_log_copy_left_by_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let queue = QueueId::queue("acme", "dlq");
    let dest = store::dest(&queue);
    {
        let bus = Bus::open_with(dir.path(), config(), SMALL).unwrap();
        for i in 1..=3u8 {
            bus.send(&queue, NewMessage::new(vec![i])).await.unwrap();
        }
        // A crash after dead-lettering's sled write, before its log removal.
        let rec = store::encode_message(5, 1, &[], &[2]);
        let dead = store::encode_dead(1, "failed", &rec);
        bus.inner
            .tree
            .insert(store::item_key(store::DEAD, &dest, 2), dead)
            .unwrap();
        bus.sync().await.unwrap();
    }
    let bus = Bus::open_with(dir.path(), config(), SMALL).unwrap();
    let stats = bus.stats(&queue);
    assert_eq!((stats.depth, stats.dead), (2, 1));
    assert_eq!(bus.purge_dead(&queue, None).await.unwrap(), 1);
    drop(bus);
    let bus = Bus::open_with(dir.path(), config(), SMALL).unwrap();
    let got = drain(&bus, &queue).await;
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(bus.stats(&queue).dead, 0);
}
