//! Failed deliveries: backoff, attempt counting (also across restarts), panics and lease
//! timeouts, dead letters, replay and purge.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudware_bus::{Delivery, NewMessage, QueueId, QueuePolicy, handler_fn};
use common::{WAIT, eventually, fast_policy, open, recorder};

fn q(name: &str) -> QueueId {
    QueueId::queue("acme", name)
}

#[tokio::test]
async fn failing_handler_retries_with_backoff_then_dead_letters_then_replays() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path());
    let queue = q("flaky");
    let healthy = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<(u32, Instant)>>> = Arc::default();
    let handler = handler_fn({
        let (healthy, seen) = (healthy.clone(), seen.clone());
        move |d: Delivery| {
            seen.lock().unwrap().push((d.attempt, Instant::now()));
            let ok = healthy.load(Ordering::SeqCst);
            async move {
                if ok {
                    Ok(())
                } else {
                    Err(format!("boom {}", d.attempt))
                }
            }
        }
    });
    let id = bus
        .send(&queue, NewMessage::new("order-1").with_attribute("a", "b"))
        .await
        .unwrap();
    let consumer = bus.consume(queue.clone(), handler, 4);
    eventually("dead-lettered", WAIT, || bus.stats(&queue).dead == 1).await;

    let attempts: Vec<(u32, Instant)> = seen.lock().unwrap().clone();
    assert_eq!(
        attempts.iter().map(|a| a.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // backoff_initial is 30 ms and doubles: 30 ms before attempt 2, 60 ms before attempt 3.
    assert!(attempts[1].1 - attempts[0].1 >= Duration::from_millis(30));
    assert!(attempts[2].1 - attempts[1].1 >= Duration::from_millis(60));
    let stats = bus.stats(&queue);
    assert_eq!((stats.depth, stats.in_flight, stats.dead), (0, 0, 1));

    let dead = bus.dead_letters(&queue, None, 10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, id);
    assert_eq!(dead[0].payload, b"order-1");
    assert_eq!(dead[0].attributes, vec![("a".to_string(), "b".to_string())]);
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(dead[0].last_error, "boom 3");
    assert!(dead[0].dead_at_ms > 0);

    healthy.store(true, Ordering::SeqCst);
    assert_eq!(bus.replay(&queue, None).await.unwrap(), 1);
    eventually("acked after replay", WAIT, || {
        bus.stats(&queue).acked_total == 1
    })
    .await;
    consumer.stop().await;
    let last = *seen.lock().unwrap().last().unwrap();
    assert_eq!(last.0, 1, "replay resets the attempt count");
    assert!(bus.dead_letters(&queue, None, 10).unwrap().is_empty());
    let stats = bus.stats(&queue);
    assert_eq!((stats.depth, stats.dead), (0, 0));
}

#[tokio::test]
async fn panics_and_lease_timeouts_count_as_failed_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path());
    let queue = q("unruly");
    bus.set_policy(
        &queue,
        QueuePolicy {
            lease_timeout: Duration::from_millis(100),
            max_attempts: 5,
            ..fast_policy()
        },
    );
    let seen: Arc<Mutex<Vec<u32>>> = Arc::default();
    let handler = handler_fn({
        let seen = seen.clone();
        move |d: Delivery| {
            seen.lock().unwrap().push(d.attempt);
            async move {
                match d.attempt {
                    1 => panic!("handler bug"),
                    2 => std::future::pending().await,
                    _ => Ok(()),
                }
            }
        }
    });
    bus.send(&queue, NewMessage::new("x")).await.unwrap();
    let _consumer = bus.consume(queue.clone(), handler, 1);
    eventually("acked on attempt 3", WAIT, || {
        bus.stats(&queue).acked_total == 1
    })
    .await;
    assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3]);
    assert_eq!(bus.stats(&queue).dead, 0);
}

#[tokio::test]
async fn attempt_count_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let queue = q("remember");
    {
        let bus = open(dir.path());
        bus.set_policy(
            &queue,
            QueuePolicy {
                backoff_initial: Duration::from_secs(3600),
                backoff_max: Duration::from_secs(3600),
                ..fast_policy()
            },
        );
        bus.send(&queue, NewMessage::new("x")).await.unwrap();
        let handler = handler_fn(|_d: Delivery| async { Err::<(), _>("no".to_string()) });
        let consumer = bus.consume(queue.clone(), handler, 1);
        eventually("retry scheduled", WAIT, || bus.stats(&queue).delayed == 1).await;
        consumer.stop().await;
    }
    let bus = open(dir.path());
    let (seen, handler) = recorder();
    let _consumer = bus.consume(queue.clone(), handler, 1);
    eventually("redelivered", WAIT, || bus.stats(&queue).acked_total == 1).await;
    assert_eq!(seen.lock().unwrap()[0].attempt, 2);
}

#[tokio::test]
async fn dead_letters_page_replay_selected_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path());
    let queue = q("graveyard");
    bus.set_policy(
        &queue,
        QueuePolicy {
            max_attempts: 1,
            ..fast_policy()
        },
    );
    for i in 0..4u8 {
        bus.send(&queue, NewMessage::new(vec![i])).await.unwrap();
    }
    let failing = handler_fn(|_d: Delivery| async { Err::<(), _>("bad".to_string()) });
    let consumer = bus.consume(queue.clone(), failing, 2);
    eventually("4 dead", WAIT, || bus.stats(&queue).dead == 4).await;
    consumer.stop().await;

    let page1 = bus.dead_letters(&queue, None, 2).unwrap();
    assert_eq!(page1.iter().map(|d| d.id).collect::<Vec<_>>(), vec![1, 2]);
    let page2 = bus.dead_letters(&queue, Some(2), 10).unwrap();
    assert_eq!(page2.iter().map(|d| d.id).collect::<Vec<_>>(), vec![3, 4]);
    assert!(
        bus.dead_letters(&queue, Some(u64::MAX), 10)
            .unwrap()
            .is_empty()
    );

    assert_eq!(bus.replay(&queue, Some(&[2, 2, 99])).await.unwrap(), 1);
    assert_eq!(bus.purge_dead(&queue, Some(&[4])).await.unwrap(), 1);
    let stats = bus.stats(&queue);
    assert_eq!((stats.depth, stats.dead), (1, 2));
    let (seen, handler) = recorder();
    let consumer = bus.consume(queue.clone(), handler, 1);
    eventually("replayed one delivered", WAIT, || {
        bus.stats(&queue).acked_total == 1
    })
    .await;
    assert_eq!(seen.lock().unwrap()[0].id, 2);
    assert_eq!(bus.purge_dead(&queue, None).await.unwrap(), 2);
    assert_eq!(bus.stats(&queue).dead, 0);
    // Every task holding the bus must be gone before the store can be reopened.
    consumer.stop().await;
    drop(bus);
    let bus = open(dir.path());
    let stats = bus.stats(&queue);
    assert_eq!((stats.depth, stats.dead, stats.sent_total), (0, 0, 4));
    // Everything is gone, yet ids are not reused.
    assert_eq!(bus.send(&queue, NewMessage::new("again")).await.unwrap(), 5);
}
