//! The behaviour every [`KvBackend`] must show, as one generic suite.
//!
//! Each check uses its own tenant, so the checks share one backend.

use cloudware_cap_keyvalue::backend::MAX_COUNTER;
use cloudware_cap_keyvalue::{
    KvBackend, KvError, MAX_KEY_BYTES, MAX_PAGE, MAX_VALUE_BYTES, Namespace,
};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs every check against `backend`.
pub async fn run_all(backend: Arc<dyn KvBackend>) {
    basic(&*backend).await;
    limits(&*backend).await;
    batch(&*backend).await;
    counters(&*backend).await;
    concurrent_increments(&backend).await;
    compare_and_swap(&*backend).await;
    compare_and_swap_races(&backend).await;
    paging(&*backend).await;
    isolation(&*backend).await;
    time_to_live(&*backend).await;
    stored_bytes(&*backend).await;
}

fn ns(tenant: &str, bucket: &str) -> Namespace {
    Namespace::new(tenant, bucket)
}

async fn basic(kv: &dyn KvBackend) {
    let b = ns("basic", "b");
    assert_eq!(kv.get(&b, "k").await, Ok(None));
    assert_eq!(kv.exists(&b, "k").await, Ok(false));
    kv.set(&b, "k", b"one".to_vec(), None).await.expect("set");
    assert_eq!(kv.get(&b, "k").await, Ok(Some(b"one".to_vec())));
    assert_eq!(kv.exists(&b, "k").await, Ok(true));
    kv.set(&b, "k", b"two".to_vec(), None)
        .await
        .expect("overwrite");
    assert_eq!(kv.get(&b, "k").await, Ok(Some(b"two".to_vec())));
    kv.delete(&b, "k").await.expect("delete");
    assert_eq!(kv.get(&b, "k").await, Ok(None));
    kv.delete(&b, "k")
        .await
        .expect("deleting a missing key is fine");
    // Empty values, odd keys and binary values round-trip.
    for key in ["", "a:b:c", "*?[x]\\", "ключ 🔑", "\0nul"] {
        kv.set(&b, key, vec![0, 255, 10], None).await.expect(key);
        assert_eq!(kv.get(&b, key).await, Ok(Some(vec![0, 255, 10])), "{key:?}");
    }
    kv.set(&b, "empty", Vec::new(), None).await.expect("empty");
    assert_eq!(kv.get(&b, "empty").await, Ok(Some(Vec::new())));
    assert_eq!(kv.exists(&b, "empty").await, Ok(true));
}

async fn limits(kv: &dyn KvBackend) {
    let b = ns("limits", "b");
    let long_key = "k".repeat(MAX_KEY_BYTES);
    kv.set(&b, &long_key, b"v".to_vec(), None)
        .await
        .expect("longest key");
    let too_long = "k".repeat(MAX_KEY_BYTES + 1);
    assert_eq!(
        kv.set(&b, &too_long, b"v".to_vec(), None).await,
        Err(KvError::KeyTooLarge(MAX_KEY_BYTES + 1))
    );
    assert!(kv.get(&b, &too_long).await.is_err());
    kv.set(&b, "big", vec![7; MAX_VALUE_BYTES], None)
        .await
        .expect("largest value");
    assert_eq!(
        kv.get(&b, "big").await.map(|v| v.map(|v| v.len())),
        Ok(Some(MAX_VALUE_BYTES))
    );
    let err = kv
        .set(&b, "big", vec![7; MAX_VALUE_BYTES + 1], None)
        .await
        .expect_err("too large");
    assert_eq!(
        err.to_string(),
        "value too large: 1048577 bytes, limit 1048576"
    );
    assert!(
        kv.compare_and_swap(&b, "big", None, vec![0; MAX_VALUE_BYTES + 1])
            .await
            .is_err()
    );
    assert!(
        kv.set(&b, "t", b"v".to_vec(), Some(Duration::ZERO))
            .await
            .is_err()
    );
    assert_eq!(
        kv.get(&b, "t").await,
        Ok(None),
        "a refused set changes nothing"
    );
}

async fn batch(kv: &dyn KvBackend) {
    let b = ns("batch", "b");
    let pairs = vec![
        ("a".to_owned(), b"1".to_vec()),
        ("c".to_owned(), b"3".to_vec()),
    ];
    kv.set_many(&b, pairs).await.expect("set_many");
    let keys = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
    assert_eq!(
        kv.get_many(&b, keys.clone()).await,
        Ok(vec![
            Some(("a".to_owned(), b"1".to_vec())),
            None,
            Some(("c".to_owned(), b"3".to_vec())),
        ])
    );
    kv.delete_many(&b, vec!["a".to_owned(), "b".to_owned()])
        .await
        .expect("delete_many");
    assert_eq!(
        kv.get_many(&b, keys).await,
        Ok(vec![None, None, Some(("c".to_owned(), b"3".to_vec()))])
    );
    assert_eq!(kv.get_many(&b, Vec::new()).await, Ok(Vec::new()));
    kv.set_many(&b, Vec::new()).await.expect("empty set_many");
    kv.delete_many(&b, Vec::new())
        .await
        .expect("empty delete_many");
}

async fn counters(kv: &dyn KvBackend) {
    let b = ns("counters", "b");
    assert_eq!(kv.increment(&b, "n", 5).await, Ok(5), "absent counts as 0");
    assert_eq!(kv.increment(&b, "n", 0).await, Ok(5));
    assert_eq!(kv.increment(&b, "n", 37).await, Ok(42));
    assert_eq!(
        kv.get(&b, "n").await,
        Ok(Some(b"42".to_vec())),
        "decimal ASCII"
    );
    kv.set(&b, "m", b"100".to_vec(), None).await.expect("set");
    assert_eq!(
        kv.increment(&b, "m", 1).await,
        Ok(101),
        "a set decimal is a counter"
    );
    for bad in [&b"abc"[..], b"007", b"-1", b"", b"1 "] {
        kv.set(&b, "bad", bad.to_vec(), None).await.expect("set");
        assert_eq!(
            kv.increment(&b, "bad", 1).await,
            Err(KvError::NotACounter),
            "{bad:?}"
        );
        assert_eq!(kv.get(&b, "bad").await, Ok(Some(bad.to_vec())), "unchanged");
    }
    let max = MAX_COUNTER.to_string().into_bytes();
    kv.set(&b, "max", max.clone(), None).await.expect("set");
    assert_eq!(kv.increment(&b, "max", 0).await, Ok(MAX_COUNTER));
    assert_eq!(kv.increment(&b, "max", 1).await, Err(KvError::Overflow));
    assert_eq!(kv.get(&b, "max").await, Ok(Some(max)), "unchanged");
    assert_eq!(
        kv.increment(&b, "huge", u64::MAX).await,
        Err(KvError::Overflow)
    );
    assert_eq!(kv.exists(&b, "huge").await, Ok(false));
}

async fn concurrent_increments(kv: &Arc<dyn KvBackend>) {
    let b = ns("concurrent", "b");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (kv, b) = (kv.clone(), b.clone());
            tokio::spawn(async move {
                for _ in 0..200 {
                    kv.increment(&b, "hits", 1).await.expect("increment");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(kv.get(&b, "hits").await, Ok(Some(b"1600".to_vec())));
}

async fn compare_and_swap(kv: &dyn KvBackend) {
    let b = ns("cas", "b");
    assert_eq!(
        kv.compare_and_swap(&b, "k", None, b"v1".to_vec()).await,
        Ok(true)
    );
    assert_eq!(
        kv.compare_and_swap(&b, "k", None, b"v2".to_vec()).await,
        Ok(false)
    );
    assert_eq!(
        kv.compare_and_swap(&b, "k", Some(b"nope".to_vec()), b"v2".to_vec())
            .await,
        Ok(false)
    );
    assert_eq!(kv.get(&b, "k").await, Ok(Some(b"v1".to_vec())));
    assert_eq!(
        kv.compare_and_swap(&b, "k", Some(b"v1".to_vec()), b"v2".to_vec())
            .await,
        Ok(true)
    );
    assert_eq!(kv.get(&b, "k").await, Ok(Some(b"v2".to_vec())));
    assert_eq!(
        kv.compare_and_swap(&b, "gone", Some(Vec::new()), b"x".to_vec())
            .await,
        Ok(false)
    );
    assert_eq!(kv.exists(&b, "gone").await, Ok(false));
    kv.set(&b, "empty", Vec::new(), None).await.expect("set");
    assert_eq!(
        kv.compare_and_swap(&b, "empty", None, b"x".to_vec()).await,
        Ok(false)
    );
    assert_eq!(
        kv.compare_and_swap(&b, "empty", Some(Vec::new()), b"x".to_vec())
            .await,
        Ok(true)
    );
}

async fn compare_and_swap_races(kv: &Arc<dyn KvBackend>) {
    let b = ns("cas-race", "b");
    kv.set(&b, "k", b"v0".to_vec(), None).await.expect("set");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (kv, b) = (kv.clone(), b.clone());
            tokio::spawn(async move {
                let mine = format!("task-{i}").into_bytes();
                let won = kv
                    .compare_and_swap(&b, "k", Some(b"v0".to_vec()), mine.clone())
                    .await;
                (won.expect("cas"), mine)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (won, mine) = task.await.expect("task");
        if won {
            winners.push(mine);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one CAS from the same value wins");
    assert_eq!(kv.get(&b, "k").await, Ok(winners.pop()));

    // A counter kept by CAS loops loses no update.
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (kv, b) = (kv.clone(), b.clone());
            tokio::spawn(async move {
                for _ in 0..50 {
                    loop {
                        let current = kv.get(&b, "n").await.expect("get");
                        let n: u64 = current
                            .as_deref()
                            .map_or(0, |v| String::from_utf8_lossy(v).parse().expect("number"));
                        let next = (n + 1).to_string().into_bytes();
                        if kv
                            .compare_and_swap(&b, "n", current, next)
                            .await
                            .expect("cas")
                        {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(kv.get(&b, "n").await, Ok(Some(b"200".to_vec())));
}

/// Pages through a bucket, returning every page's keys.
async fn all_pages(kv: &dyn KvBackend, b: &Namespace, limit: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut cursor = None;
    for _ in 0..10_000 {
        let page = kv.list_keys(b, cursor, limit).await.expect("list");
        assert!(page.keys.len() <= MAX_PAGE);
        pages.push(page.keys);
        cursor = page.cursor;
        if cursor.is_none() {
            return pages;
        }
    }
    panic!("listing did not end");
}

async fn paging(kv: &dyn KvBackend) {
    let b = ns("paging", "b");
    let other = ns("paging", "other");
    let expected: BTreeSet<String> = (0..250).map(|i| format!("key-{i:03}")).collect();
    for key in &expected {
        kv.set(&b, key, b"v".to_vec(), None).await.expect("set");
    }
    kv.set(&other, "elsewhere", b"v".to_vec(), None)
        .await
        .expect("set");
    let pages = all_pages(kv, &b, 100).await;
    let listed: Vec<String> = pages.iter().flatten().cloned().collect();
    let unique: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(unique, expected, "every key, and only the bucket's");
    if kv.kind() == "sled" {
        assert_eq!(listed.len(), 250, "no key twice");
        assert_eq!(
            pages.len(),
            3,
            "pages of 100: {:?}",
            pages.iter().map(Vec::len).collect::<Vec<_>>()
        );
    }
    assert!(pages.len() >= 2, "250 keys need more than one page of 100");
    let empty = ns("paging", "empty");
    assert_eq!(
        all_pages(kv, &empty, 100).await.concat(),
        Vec::<String>::new()
    );
}

async fn isolation(kv: &dyn KvBackend) {
    let acme = ns("acme", "cart");
    let globex = ns("globex", "cart");
    let acme_other = ns("acme", "wishlist");
    kv.set(&acme, "item", b"anvil".to_vec(), None)
        .await
        .expect("set");
    kv.set(&globex, "item", b"laser".to_vec(), None)
        .await
        .expect("set");
    assert_eq!(kv.get(&acme, "item").await, Ok(Some(b"anvil".to_vec())));
    assert_eq!(kv.get(&globex, "item").await, Ok(Some(b"laser".to_vec())));
    assert_eq!(kv.get(&acme_other, "item").await, Ok(None));
    assert_eq!(kv.increment(&acme_other, "n", 1).await, Ok(1));
    kv.delete(&globex, "item").await.expect("delete");
    assert_eq!(kv.get(&acme, "item").await, Ok(Some(b"anvil".to_vec())));
    assert_eq!(
        all_pages(kv, &globex, 100).await.concat(),
        Vec::<String>::new()
    );
    // Separators inside names cannot make two namespaces meet.
    let pairs = [
        (ns("a:b", "c"), ns("a", "b:c")),
        (ns("ab", "c"), ns("a", "bc")),
        (ns("x%3A", "y"), ns("x:", "y")),
    ];
    for (left, right) in pairs {
        kv.set(&left, "k", b"left".to_vec(), None)
            .await
            .expect("set");
        assert_eq!(
            kv.get(&right, "k").await,
            Ok(None),
            "{left:?} leaked into {right:?}"
        );
        assert_eq!(
            all_pages(kv, &right, 100).await.concat(),
            Vec::<String>::new()
        );
    }
}

/// Polls until `key` is gone, at most a few seconds.
async fn wait_until_gone(kv: &dyn KvBackend, b: &Namespace, key: &str) {
    let started = Instant::now();
    while kv.exists(b, key).await.expect("exists") {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{key} never expired"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn time_to_live(kv: &dyn KvBackend) {
    let b = ns("ttl", "b");
    let ttl = Some(Duration::from_millis(300));
    kv.set(&b, "short", b"v".to_vec(), ttl).await.expect("set");
    kv.set(&b, "cleared", b"v".to_vec(), ttl)
        .await
        .expect("set");
    kv.set(&b, "cleared", b"w".to_vec(), None)
        .await
        .expect("plain set clears the ttl");
    kv.set(&b, "count", b"5".to_vec(), ttl).await.expect("set");
    kv.set(&b, "cas", b"old".to_vec(), ttl).await.expect("set");
    kv.set(&b, "cas-kept", b"old".to_vec(), ttl)
        .await
        .expect("set");
    assert_eq!(kv.get(&b, "short").await, Ok(Some(b"v".to_vec())));
    assert_eq!(kv.increment(&b, "count", 1).await, Ok(6));
    assert_eq!(
        kv.compare_and_swap(&b, "cas-kept", Some(b"old".to_vec()), b"new".to_vec())
            .await,
        Ok(true)
    );
    wait_until_gone(kv, &b, "short").await;
    wait_until_gone(kv, &b, "count").await;
    wait_until_gone(kv, &b, "cas").await;
    // Expired keys are absent for every read and start over for writes.
    assert_eq!(kv.get(&b, "short").await, Ok(None));
    assert_eq!(kv.get(&b, "cleared").await, Ok(Some(b"w".to_vec())));
    assert_eq!(
        kv.get(&b, "cas-kept").await,
        Ok(Some(b"new".to_vec())),
        "CAS clears the ttl"
    );
    let listed: BTreeSet<String> = all_pages(kv, &b, 100).await.concat().into_iter().collect();
    assert_eq!(
        listed,
        BTreeSet::from(["cas-kept".to_owned(), "cleared".to_owned()])
    );
    assert_eq!(kv.get_many(&b, vec!["short".into()]).await, Ok(vec![None]));
    assert_eq!(
        kv.compare_and_swap(&b, "cas", Some(b"old".to_vec()), b"x".to_vec())
            .await,
        Ok(false)
    );
    assert_eq!(
        kv.compare_and_swap(&b, "cas", None, b"fresh".to_vec())
            .await,
        Ok(true)
    );
    assert_eq!(
        kv.increment(&b, "count", 1).await,
        Ok(1),
        "an expired counter restarts"
    );
}

async fn stored_bytes(kv: &dyn KvBackend) {
    let one = ns("meter", "one");
    let two = ns("meter", "two");
    kv.set(&one, "ab", b"xyz".to_vec(), None)
        .await
        .expect("set");
    kv.set(&one, "c", Vec::new(), None).await.expect("set");
    kv.set(&two, "d", b"12".to_vec(), None).await.expect("set");
    kv.set(&ns("meter-other", "one"), "zzzz", b"zzzz".to_vec(), None)
        .await
        .expect("set");
    kv.set(
        &two,
        "brief",
        b"gone soon".to_vec(),
        Some(Duration::from_millis(100)),
    )
    .await
    .expect("set");
    wait_until_gone(kv, &two, "brief").await;
    assert_eq!(kv.stored_bytes("meter").await, Ok(9));
    assert_eq!(kv.stored_bytes("nobody").await, Ok(0));
}
