//! Queues: send, consume, acknowledge, ordering, durability across restarts and crashes,
//! limits, group commit and operator listings.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cloudware_bus::{
    Bus, BusConfig, Delivery, NewMessage, QueueId, QueueKind, QueuePolicy, SendError, handler_fn,
};
use common::{WAIT, eventually, open, payloads, recorder, stuck};

fn q(name: &str) -> QueueId {
    QueueId::queue("acme", name)
}

#[tokio::test]
async fn send_consume_ack_removes() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path());
    let queue = q("jobs");
    for i in 0..3u8 {
        let msg = NewMessage::new(vec![i]).with_attribute("k", "v");
        assert_eq!(bus.send(&queue, msg).await.unwrap(), u64::from(i) + 1);
    }
    assert_eq!(bus.stats(&queue).depth, 3);
    let (seen, handler) = recorder();
    let consumer = bus.consume(queue.clone(), handler, 1);
    eventually("3 acks", WAIT, || bus.stats(&queue).acked_total == 3).await;
    consumer.stop().await;
    let stats = bus.stats(&queue);
    assert_eq!((stats.depth, stats.in_flight, stats.ready), (0, 0, 0));
    assert_eq!(stats.sent_total, 3);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].source, "jobs");
    assert_eq!(seen[0].attempt, 1);
    assert_eq!(seen[0].attributes, vec![("k".to_string(), "v".to_string())]);
    assert_eq!(seen[0].queue, queue);
}

#[tokio::test]
async fn ids_are_monotonic_and_delivered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path());
    let queue = q("ordered");
    for i in 1..=50u64 {
        let id = bus
            .send(&queue, NewMessage::new(i.to_be_bytes()))
            .await
            .unwrap();
        assert_eq!(id, i);
    }
    let (seen, handler) = recorder();
    let _consumer = bus.consume(queue.clone(), handler, 1);
    eventually("50 deliveries", WAIT, || seen.lock().unwrap().len() == 50).await;
    let ids: Vec<u64> = seen.lock().unwrap().iter().map(|d| d.id).collect();
    assert_eq!(ids, (1..=50).collect::<Vec<_>>());
}

#[tokio::test]
async fn durable_across_reopen_and_ids_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let queue = q("durable");
    const N: u64 = 200;
    {
        let bus = open(dir.path());
        let mut sends = tokio::task::JoinSet::new();
        for i in 0..N {
            let (bus, queue) = (bus.clone(), queue.clone());
            sends.spawn(async move { bus.send(&queue, NewMessage::new(i.to_be_bytes())).await });
        }
        while let Some(r) = sends.join_next().await {
            r.unwrap().unwrap();
        }
    } // dropped without consuming
    let bus = open(dir.path());
    assert_eq!(bus.stats(&queue).depth, N);
    let (seen, handler) = recorder();
    let consumer = bus.consume(queue.clone(), handler, 8);
    eventually("all redelivered", WAIT, || {
        bus.stats(&queue).acked_total == N
    })
    .await;
    consumer.stop().await;
    let mut got: Vec<u64> = payloads(&seen)
        .iter()
        .map(|p| u64::from_be_bytes(p.as_slice().try_into().unwrap()))
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    drop(bus);

    // Empty now, but ids continue after a restart.
    let bus = open(dir.path());
    assert_eq!(bus.stats(&queue).depth, 0);
    assert_eq!(bus.stats(&queue).sent_total, N);
    assert_eq!(
        bus.send(&queue, NewMessage::new("next")).await.unwrap(),
        N + 1
    );
}

#[test]
fn in_flight_messages_are_redelivered_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let queue = q("crash");
    {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let bus = open(dir.path());
            for i in 0..5u8 {
                bus.send(&queue, NewMessage::new(vec![i])).await.unwrap();
            }
            let consumer = bus.consume(queue.clone(), stuck(), 3);
            eventually("3 in flight", WAIT, || bus.stats(&queue).in_flight == 3).await;
            // Leak the handle into the runtime: only the runtime's death stops it.
            std::mem::forget(consumer);
        });
        // "Crash": every task (dispatcher, handlers) is dropped mid-flight.
        drop(rt);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bus = open(dir.path());
        assert_eq!(bus.stats(&queue).depth, 5);
        let (seen, handler) = recorder();
        let _consumer = bus.consume(queue.clone(), handler, 2);
        eventually("5 redelivered", WAIT, || bus.stats(&queue).acked_total == 5).await;
        let seen = seen.lock().unwrap();
        let mut ids: Vec<u64> = seen.iter().map(|d| d.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
        // A lease lost in a crash is not a failed attempt.
        assert!(seen.iter().all(|d| d.attempt == 1));
    });
}

#[tokio::test]
async fn full_queue_refuses_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let queue = q("small");
    {
        let bus = open(dir.path());
        bus.set_policy(
            &queue,
            QueuePolicy {
                max_depth: 3,
                ..common::fast_policy()
            },
        );
        for _ in 0..3 {
            bus.send(&queue, NewMessage::new("x")).await.unwrap();
        }
        let err = bus.send(&queue, NewMessage::new("y")).await.unwrap_err();
        assert_eq!(
            err,
            SendError::Full {
                queue: queue.clone(),
                depth: 3,
                limit: 3
            }
        );
        let stats = bus.stats(&queue);
        assert_eq!((stats.depth, stats.sent_total, stats.last_id), (3, 3, 3));
    }
    let bus = open(dir.path());
    let stats = bus.stats(&queue);
    assert_eq!((stats.depth, stats.sent_total, stats.last_id), (3, 3, 3));
}

#[tokio::test]
async fn too_large_payload_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = BusConfig {
        max_payload_bytes: 16,
        ..BusConfig::default()
    };
    let bus = Bus::open(dir.path(), config).unwrap();
    let queue = q("tiny");
    let err = bus
        .send(&queue, NewMessage::new(vec![0; 17]))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SendError::TooLarge {
            size: 17,
            limit: 16
        }
    );
    let err = bus
        .publish("acme", "t", NewMessage::new(vec![0; 17]))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::TooLarge { .. }));
    assert_eq!(bus.stats(&queue).depth, 0);
    assert_eq!(
        bus.send(&queue, NewMessage::new(vec![0; 16]))
            .await
            .unwrap(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_shares_flushes_between_concurrent_senders() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path());
    let queue = q("hot");
    const SENDERS: u64 = 64;
    const EACH: u64 = 40;
    let before = bus.commit_stats();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..SENDERS {
        let (bus, queue) = (bus.clone(), queue.clone());
        tasks.spawn(async move {
            for i in 0..EACH {
                let payload = (s * EACH + i).to_be_bytes();
                bus.send(&queue, NewMessage::new(payload)).await.unwrap();
            }
        });
    }
    let deadline = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
    });
    deadline.await.expect("senders finished in time");
    let after = bus.commit_stats();
    let messages = SENDERS * EACH;
    let flushes = after.flushes - before.flushes;
    eprintln!(
        "{messages} messages, {flushes} flushes, {:?}",
        started.elapsed()
    );
    assert_eq!(bus.stats(&queue).depth, messages);
    assert!(
        flushes < messages / 2,
        "{flushes} flushes for {messages} messages"
    );
}

#[tokio::test]
async fn consumer_wakes_at_once_on_send() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path());
    let queue = q("idle");
    let (seen, handler) = recorder();
    let _consumer = bus.consume(queue.clone(), handler, 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..3u8 {
        let sent = Instant::now();
        bus.send(&queue, NewMessage::new(vec![i])).await.unwrap();
        let want = usize::from(i) + 1;
        eventually("delivery", WAIT, || seen.lock().unwrap().len() == want).await;
        assert!(
            sent.elapsed() < Duration::from_secs(2),
            "{:?}",
            sent.elapsed()
        );
    }
}

#[tokio::test]
async fn stop_lets_in_flight_handlers_finish() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path());
    let queue = q("slow");
    let done = Arc::new(AtomicU32::new(0));
    let handler = handler_fn({
        let done = done.clone();
        move |_d: Delivery| {
            let done = done.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(150)).await;
                done.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }
    });
    for _ in 0..4 {
        bus.send(&queue, NewMessage::new("x")).await.unwrap();
    }
    let consumer = bus.consume(queue.clone(), handler, 2);
    eventually("2 in flight", WAIT, || bus.stats(&queue).in_flight == 2).await;
    tokio::time::timeout(WAIT, consumer.stop()).await.unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 2);
    let stats = bus.stats(&queue);
    assert_eq!((stats.acked_total, stats.depth, stats.in_flight), (2, 2, 0));
}

#[tokio::test]
async fn queues_lists_what_exists_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    {
        let bus = open(dir.path());
        bus.send(&q("b"), NewMessage::new("1")).await.unwrap();
        bus.send(&q("a"), NewMessage::new("2")).await.unwrap();
        bus.send(&QueueId::queue("other", "c"), NewMessage::new("3"))
            .await
            .unwrap();
        bus.set_policy(&q("configured-only"), common::fast_policy());
        let listed: Vec<QueueId> = bus
            .queues(Some("acme"))
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(listed, vec![q("a"), q("b")]);
    }
    let bus = open(dir.path());
    let all = bus.queues(None);
    assert_eq!(all.len(), 3);
    assert!(
        all.iter()
            .all(|(id, s)| s.depth == 1 && matches!(id.kind, QueueKind::Queue { .. }))
    );
}
