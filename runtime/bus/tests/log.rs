//! The topic log: durable cursors (advance over the contiguous acked prefix, redelivery of
//! everything after them on restart), back-pressure from a stuck subscriber, filters kept
//! across restarts, and new subscriptions starting at the end of the log.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use cloudware_bus::{Delivery, NewMessage, SendError, Subscription, handler_fn};
use common::{WAIT, eventually, open, payloads, recorder, stuck};

fn sub(subscriber: &str, filter: &[(&str, &str)]) -> Subscription {
    Subscription {
        tenant: "acme".into(),
        topic: "t".into(),
        subscriber: subscriber.into(),
        filter: filter
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn num(d: &Delivery) -> u64 {
    u64::from_be_bytes(d.payload.as_slice().try_into().unwrap())
}

#[test]
fn cursor_advances_over_acked_prefix_and_restart_redelivers_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let s = sub("s", &[]);
    {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let bus = open(dir.path());
            bus.set_subscriptions(vec![s.clone()]);
            for i in 1..=10u64 {
                bus.publish("acme", "t", NewMessage::new(i.to_be_bytes()))
                    .await
                    .unwrap();
            }
            // 3 and 7 never finish; everything else is acknowledged out of order around them.
            let handler = handler_fn(|d: Delivery| async move {
                if matches!(num(&d), 3 | 7) {
                    std::future::pending::<()>().await;
                }
                Ok(())
            });
            let consumer = bus.consume(s.queue_id(), handler, 4);
            eventually("8 acks", WAIT, || bus.stats(&s.queue_id()).acked_total == 8).await;
            bus.sync().await.unwrap();
            std::mem::forget(consumer);
        });
        drop(rt); // crash with 3 and 7 in flight
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bus = open(dir.path());
        bus.set_subscriptions(vec![s.clone()]);
        // The durable cursor is 2: everything after it comes again (at least once).
        assert_eq!(bus.stats(&s.queue_id()).depth, 8);
        let (seen, handler) = recorder();
        let consumer = bus.consume(s.queue_id(), handler, 2);
        eventually("redelivery", WAIT, || seen.lock().unwrap().len() == 8).await;
        let got: BTreeSet<u64> = seen.lock().unwrap().iter().map(num).collect();
        assert_eq!(got, (3..=10).collect());
        eventually("acked", WAIT, || bus.stats(&s.queue_id()).depth == 0).await;
        bus.sync().await.unwrap();
        consumer.stop().await;
    });
    drop(rt);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bus = open(dir.path());
        assert_eq!(
            bus.stats(&s.queue_id()).depth,
            0,
            "nothing left after all acks"
        );
        bus.set_subscriptions(vec![s.clone()]);
        let r = bus.publish("acme", "t", NewMessage::new(11u64.to_be_bytes()));
        assert_eq!(r.await.unwrap().id, 11, "ids are not reused");
    });
}

#[tokio::test]
async fn a_stuck_subscriber_makes_publish_full_instead_of_growing() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path());
    let (good, slow) = (sub("good", &[]), sub("slow", &[]));
    bus.set_subscriptions(vec![good.clone(), slow.clone()]);
    bus.set_policy(
        &slow.queue_id(),
        cloudware_bus::QueuePolicy {
            max_depth: 5,
            ..common::fast_policy()
        },
    );
    let (seen, handler) = recorder();
    let _g = bus.consume(good.queue_id(), handler, 1);
    let _s = bus.consume(slow.queue_id(), stuck(), 1);
    for i in 0..5u64 {
        bus.publish("acme", "t", NewMessage::new(i.to_be_bytes()))
            .await
            .unwrap();
    }
    let err = bus
        .publish("acme", "t", NewMessage::new("x"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SendError::Full {
            queue: slow.queue_id(),
            depth: 5,
            limit: 5
        }
    );
    eventually("good got 5", WAIT, || seen.lock().unwrap().len() == 5).await;
    let stats = bus.stats(&slow.queue_id());
    assert_eq!((stats.depth, stats.in_flight, stats.ready), (5, 1, 4));
}

#[test]
fn filters_apply_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (eu, all) = (sub("eu", &[("region", "eu")]), sub("all", &[]));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bus = open(dir.path());
        bus.set_subscriptions(vec![eu.clone(), all.clone()]);
        for (i, region) in ["eu", "us", "eu", "asia"].iter().enumerate() {
            let msg = NewMessage::new(vec![i as u8]).with_attribute("region", *region);
            let r = bus.publish("acme", "t", msg).await.unwrap();
            assert_eq!(r.delivered_to, if *region == "eu" { 2 } else { 1 });
        }
        assert_eq!(bus.stats(&eu.queue_id()).depth, 2);
        assert_eq!(bus.stats(&all.queue_id()).depth, 4);
    });
    drop(rt);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bus = open(dir.path());
        assert_eq!(bus.stats(&eu.queue_id()).depth, 2);
        assert_eq!(bus.stats(&all.queue_id()).depth, 4);
        bus.set_subscriptions(vec![eu.clone(), all.clone()]);
        let (seen, handler) = recorder();
        let _c = bus.consume(eu.queue_id(), handler, 1);
        eventually("eu", WAIT, || seen.lock().unwrap().len() == 2).await;
        assert_eq!(payloads(&seen), vec![vec![0u8], vec![2u8]]);
    });
}

#[tokio::test]
async fn a_new_subscription_starts_at_the_end_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path());
    let (a, b) = (sub("a", &[]), sub("b", &[]));
    bus.set_subscriptions(vec![a.clone()]);
    bus.publish("acme", "t", NewMessage::new("old"))
        .await
        .unwrap();
    bus.set_subscriptions(vec![a.clone(), b.clone()]);
    bus.publish("acme", "t", NewMessage::new("new"))
        .await
        .unwrap();
    let (seen, handler) = recorder();
    let _c = bus.consume(b.queue_id(), handler, 1);
    eventually("b got new", WAIT, || seen.lock().unwrap().len() == 1).await;
    assert_eq!(payloads(&seen), vec![b"new".to_vec()]);
    assert_eq!(bus.stats(&a.queue_id()).depth, 2);
    // Removed, b keeps its backlog but receives nothing new.
    bus.set_subscriptions(vec![a.clone()]);
    let r = bus
        .publish("acme", "t", NewMessage::new("later"))
        .await
        .unwrap();
    assert_eq!(r.delivered_to, 1);
    assert_eq!(bus.stats(&b.queue_id()).depth, 0);
}
