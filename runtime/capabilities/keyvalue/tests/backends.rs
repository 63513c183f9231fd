//! The backend conformance suite, against sled and against a real Redis.

#[path = "support/conformance.rs"]
mod conformance;
#[path = "support/redis_server.rs"]
mod redis_server;

use cloudware_cap_keyvalue::{KvBackend, Namespace, RedisBackend, SledBackend};
use redis_server::RedisServer;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sled_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = SledBackend::open(dir.path()).expect("open sled");
    conformance::run_all(Arc::new(backend)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_conforms() {
    let Some(server) = RedisServer::start_or_skip("redis_conforms") else {
        return;
    };
    let backend = RedisBackend::connect(&server.url).await.expect("connect");
    conformance::run_all(Arc::new(backend)).await;
}

#[tokio::test]
async fn sled_sweeps_expired_entries_in_bounded_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kv = SledBackend::open(dir.path()).expect("open sled");
    let b = Namespace::new("sweep", "b");
    for i in 0..25 {
        let ttl = (i % 5 != 0).then_some(Duration::from_millis(20));
        kv.set(&b, &format!("k{i}"), b"v".to_vec(), ttl)
            .await
            .expect("set");
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    // 25 entries, 10 per sweep: three sweeps cover them all, the fourth
    // starts over and finds nothing left.
    let mut purged = Vec::new();
    for _ in 0..4 {
        purged.push(kv.sweep_expired(10).await.expect("sweep"));
    }
    assert_eq!(purged.iter().sum::<usize>(), 20, "{purged:?}");
    assert!(purged.iter().all(|&n| n <= 10));
    assert_eq!(purged[3], 0);
    assert_eq!(kv.stored_bytes("sweep").await, Ok(13 + 5));
}

#[tokio::test]
async fn sled_data_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Namespace::new("t", "b");
    {
        let kv = SledBackend::open(dir.path()).expect("open sled");
        kv.set(&b, "k", b"kept".to_vec(), None).await.expect("set");
        kv.flush().await.expect("flush");
    }
    let kv = SledBackend::open(dir.path()).expect("reopen sled");
    assert_eq!(kv.get(&b, "k").await, Ok(Some(b"kept".to_vec())));
}

#[tokio::test]
async fn redis_refuses_a_bad_url_clearly() {
    let err = RedisBackend::connect("not a url")
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("invalid redis url")),
        "{err:?}"
    );
}
