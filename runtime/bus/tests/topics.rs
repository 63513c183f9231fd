//! Topics: fan-out to every subscription, filters, independent per-subscriber backlogs,
//! all-or-nothing publishing, and subscription queues kept apart from user queues.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cloudware_bus::{
    Delivery, NewMessage, PublishReceipt, QueueId, QueuePolicy, SendError, Subscription, handler_fn,
};
use common::{WAIT, eventually, fast_policy, open, payloads, recorder, stuck};

fn sub(topic: &str, subscriber: &str, filter: &[(&str, &str)]) -> Subscription {
    Subscription {
        tenant: "acme".into(),
        topic: topic.into(),
        subscriber: subscriber.into(),
        filter: filter
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

#[tokio::test]
async fn every_subscriber_receives_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path());
    let subs = vec![
        sub("orders", "billing", &[]),
        sub("orders", "shipping", &[]),
        sub("orders", "audit", &[]),
        sub("invoices", "billing", &[]),
    ];
    bus.set_subscriptions(subs.clone());
    assert_eq!(bus.subscriptions().len(), 4);
    let mut recorders = Vec::new();
    let mut consumers = Vec::new();
    for s in &subs {
        let (seen, handler) = recorder();
        consumers.push(bus.consume(s.queue_id(), handler, 2));
        recorders.push(seen);
    }
    for i in 1..=20u64 {
        let receipt = bus
            .publish("acme", "orders", NewMessage::new(i.to_be_bytes()))
            .await;
        assert_eq!(
            receipt.unwrap(),
            PublishReceipt {
                id: i,
                delivered_to: 3
            }
        );
    }
    for seen in &recorders[..3] {
        eventually("20 deliveries", WAIT, || seen.lock().unwrap().len() == 20).await;
        let mut got = payloads(seen);
        got.sort();
        assert_eq!(
            got,
            (1..=20u64)
                .map(|i| i.to_be_bytes().to_vec())
                .collect::<Vec<_>>()
        );
        assert!(seen.lock().unwrap().iter().all(|d| d.source == "orders"));
    }
    assert!(recorders[3].lock().unwrap().is_empty());
    assert_eq!(
        bus.subscription_queue("acme", "orders", "billing"),
        subs[0].queue_id()
    );
}

#[tokio::test]
async fn filters_exclude_non_matching_messages() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path());
    let eu = sub("events", "eu", &[("region", "eu")]);
    let eu_paid = sub("events", "eu-paid", &[("region", "eu"), ("status", "paid")]);
    let all = sub("events", "all", &[]);
    bus.set_subscriptions(vec![eu.clone(), eu_paid.clone(), all.clone()]);
    let sends = [
        (NewMessage::new("1").with_attribute("region", "eu"), 2),
        (NewMessage::new("2").with_attribute("region", "us"), 1),
        (NewMessage::new("3"), 1),
        (
            NewMessage::new("4")
                .with_attribute("status", "paid")
                .with_attribute("region", "eu"),
            3,
        ),
    ];
    for (msg, expected) in sends {
        let receipt = bus.publish("acme", "events", msg).await.unwrap();
        assert_eq!(receipt.delivered_to, expected);
    }
    assert_eq!(bus.stats(&eu.queue_id()).depth, 2);
    assert_eq!(bus.stats(&eu_paid.queue_id()).depth, 1);
    assert_eq!(bus.stats(&all.queue_id()).depth, 4);
    let (seen, handler) = recorder();
    let _c = bus.consume(eu.queue_id(), handler, 1);
    eventually("eu deliveries", WAIT, || seen.lock().unwrap().len() == 2).await;
    assert_eq!(payloads(&seen), vec![b"1".to_vec(), b"4".to_vec()]);

    // Replacing the set takes effect at once.
    bus.set_subscriptions(vec![]);
    let receipt = bus
        .publish("acme", "events", NewMessage::new("5"))
        .await
        .unwrap();
    assert_eq!(
        receipt,
        PublishReceipt {
            id: 5,
            delivered_to: 0
        }
    );
}

#[tokio::test]
async fn a_stuck_or_failing_subscriber_does_not_hold_back_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path());
    let (good, stuck_sub, failing) = (
        sub("t", "good", &[]),
        sub("t", "stuck", &[]),
        sub("t", "failing", &[]),
    );
    bus.set_subscriptions(vec![good.clone(), stuck_sub.clone(), failing.clone()]);
    bus.set_policy(
        &failing.queue_id(),
        QueuePolicy {
            max_attempts: 1000,
            ..fast_policy()
        },
    );
    let (seen, handler) = recorder();
    let _c1 = bus.consume(good.queue_id(), handler, 1);
    let _c2 = bus.consume(stuck_sub.queue_id(), stuck(), 2);
    let fail = handler_fn(|_d: Delivery| async { Err::<(), _>("down".to_string()) });
    let _c3 = bus.consume(failing.queue_id(), fail, 2);
    for i in 0..50u32 {
        bus.publish("acme", "t", NewMessage::new(i.to_be_bytes()))
            .await
            .unwrap();
    }
    eventually("good got all", WAIT, || seen.lock().unwrap().len() == 50).await;
    assert_eq!(bus.stats(&good.queue_id()).depth, 0);
    let stuck_stats = bus.stats(&stuck_sub.queue_id());
    assert_eq!((stuck_stats.depth, stuck_stats.in_flight), (50, 2));
    assert_eq!(bus.stats(&failing.queue_id()).depth, 50);
}

#[tokio::test]
async fn publish_is_all_or_nothing_when_a_subscriber_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path());
    let (a, b) = (sub("t", "a", &[]), sub("t", "b", &[]));
    bus.set_subscriptions(vec![a.clone(), b.clone()]);
    bus.set_policy(
        &b.queue_id(),
        QueuePolicy {
            max_depth: 1,
            ..fast_policy()
        },
    );
    bus.publish("acme", "t", NewMessage::new("1"))
        .await
        .unwrap();
    let err = bus
        .publish("acme", "t", NewMessage::new("2"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SendError::Full {
            queue: b.queue_id(),
            depth: 1,
            limit: 1
        }
    );
    assert_eq!(bus.stats(&a.queue_id()).depth, 1);
    assert_eq!(bus.stats(&b.queue_id()).depth, 1);
    // The refused publication did not consume an id.
    bus.set_policy(
        &b.queue_id(),
        QueuePolicy {
            max_depth: 2,
            ..fast_policy()
        },
    );
    let receipt = bus
        .publish("acme", "t", NewMessage::new("3"))
        .await
        .unwrap();
    assert_eq!(
        receipt,
        PublishReceipt {
            id: 2,
            delivered_to: 2
        }
    );
}

#[tokio::test]
async fn subscription_queues_never_collide_with_user_queues() {
    let dir = tempfile::tempdir().unwrap();
    let queue = QueueId::queue("acme", "orders");
    let s = sub("orders", "orders", &[]);
    {
        let bus = open(dir.path());
        bus.set_subscriptions(vec![s.clone()]);
        bus.send(&queue, NewMessage::new("direct")).await.unwrap();
        bus.publish("acme", "orders", NewMessage::new("published"))
            .await
            .unwrap();
        assert_ne!(queue, s.queue_id());
        assert_eq!(bus.queues(Some("acme")).len(), 2);
    }
    let bus = open(dir.path());
    assert_eq!(bus.queues(Some("acme")).len(), 2);
    let (seen, handler) = recorder();
    let _c = bus.consume(s.queue_id(), handler, 1);
    eventually("published delivered", WAIT, || {
        seen.lock().unwrap().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(payloads(&seen), vec![b"published".to_vec()]);
    assert_eq!(bus.stats(&queue).depth, 1);
    // Publication ids survive the restart; subscriptions do not (the node sets them again).
    let receipt = bus
        .publish("acme", "orders", NewMessage::new("again"))
        .await;
    assert_eq!(
        receipt.unwrap(),
        PublishReceipt {
            id: 2,
            delivered_to: 0
        }
    );
}
