//! A three-member replicated bus in one process over loopback TCP: exactly-once delivery when
//! nothing fails, acknowledged messages surviving the loss of the leader, topic fan-out
//! surviving the loss of a follower, retries and dead letters, and restoring a member from
//! snapshots. Every wait is bounded.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cloudware_bus::{NewMessage, QueueId, QueuePolicy, Subscription};
use cloudware_bus_replicated::{ConsumerHandle, ReplicatedBus};
use common::{Cluster, Recorder, SETTLE, wait_for};

/// Starts a consumer of `queue` on every running member, acknowledging everything after
/// `delay`.
fn consume_everywhere(
    cluster: &Cluster,
    recorder: &Recorder,
    queue: &QueueId,
    delay: Duration,
    concurrency: usize,
) -> Vec<ConsumerHandle> {
    cluster
        .members
        .iter()
        .map(|(&id, m)| {
            m.bus.consume(
                queue.clone(),
                recorder.handler(id, delay, |_| Ok(())),
                concurrency,
            )
        })
        .collect()
}

async fn stop_all(consumers: Vec<ConsumerHandle>) {
    for c in consumers {
        c.stop().await;
    }
}

/// Waits until `bus` applied a state where `queue` holds no message.
async fn wait_drained(bus: &ReplicatedBus, queue: &QueueId) {
    wait_for(&format!("{queue} is drained"), SETTLE, || {
        (bus.stats(queue).depth == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_through_a_follower_and_the_leader_are_delivered_exactly_once() {
    let cluster = Cluster::start(10_000).await;
    let leader = cluster.leader().await;
    let follower = cluster.follower().await;
    let queue = QueueId::queue("acme", "jobs");
    let started = Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    for n in 0..40 {
        let bus = cluster
            .bus(if n % 2 == 0 { leader } else { follower })
            .clone();
        let queue = queue.clone();
        sends.spawn(async move { bus.send(&queue, NewMessage::new(format!("m{n}"))).await });
    }
    let mut ids = HashSet::new();
    while let Some(sent) = sends.join_next().await {
        ids.insert(sent.unwrap().expect("send is acknowledged"));
    }
    assert_eq!(ids, (1..=40).collect(), "ids are unique and consecutive");
    tracing::info!(elapsed = ?started.elapsed(), "40 sends committed");

    let recorder = Recorder::default();
    let consumers = consume_everywhere(&cluster, &recorder, &queue, Duration::from_millis(5), 4);
    wait_for("all 40 messages are delivered", SETTLE, || {
        (recorder.counts(&queue.to_string()).len() == 40).then_some(())
    })
    .await;
    for member in cluster.members.values() {
        wait_drained(&member.bus, &queue).await;
    }
    // Give a stray duplicate the chance to show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = recorder.all();
    assert_eq!(seen.len(), 40, "each message delivered exactly once");
    assert!(seen.iter().all(|s| s.member == leader && s.attempt == 1));
    let stats = cluster.bus(follower).stats(&queue);
    assert_eq!((stats.sent_total, stats.acked_total), (40, 40));
    tracing::info!(elapsed = ?started.elapsed(), "delivered exactly once");
    stop_all(consumers).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_are_all_delivered_after_the_leader_is_killed() {
    const N: usize = 60;
    const CONCURRENCY: usize = 4;
    let mut cluster = Cluster::start(10_000).await;
    let leader = cluster.leader().await;
    let queue = QueueId::queue("acme", "orders");
    let ids: Vec<u64> = cluster.members.keys().copied().collect();
    for n in 0..N {
        let bus = cluster.bus(ids[n % ids.len()]);
        bus.send(&queue, NewMessage::new(format!("m{n}")))
            .await
            .expect("send is acknowledged");
    }
    let recorder = Recorder::default();
    let consumers = consume_everywhere(
        &cluster,
        &recorder,
        &queue,
        Duration::from_millis(25),
        CONCURRENCY,
    );
    wait_for("the leader delivered some messages", SETTLE, || {
        (recorder.all().len() >= 12).then_some(())
    })
    .await;
    let killed = Instant::now();
    cluster.kill(leader).await;
    let delivered_before = recorder.all().len();
    assert!(delivered_before < N, "killed before all were acknowledged");
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader);
    tracing::info!(new_leader, elapsed = ?killed.elapsed(), "failed over");
    let key = queue.to_string();
    wait_for("every acknowledged message is delivered", SETTLE, || {
        (recorder.counts(&key).len() == N).then_some(())
    })
    .await;
    for member in cluster.members.values() {
        wait_drained(&member.bus, &queue).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = recorder.all();
    let duplicates = seen.len() - N;
    tracing::info!(
        delivered_before,
        duplicates,
        recovered_in = ?killed.elapsed(),
        "all delivered after the leader was killed"
    );
    assert!(
        duplicates <= CONCURRENCY,
        "{duplicates} duplicates, more than the {CONCURRENCY} in flight"
    );
    assert!(
        seen.iter()
            .filter(|s| s.at > killed)
            .all(|s| s.member == new_leader || s.member == leader),
        "after the kill only the new leader delivers (besides handlers already running)"
    );
    stop_all(consumers).await;
    cluster.stop().await;
}

fn subscription(subscriber: &str, filter: &[(&str, &str)]) -> Subscription {
    Subscription {
        tenant: "acme".into(),
        topic: "orders".into(),
        subscriber: subscriber.into(),
        filter: filter
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn order(n: usize) -> NewMessage {
    let region = if n.is_multiple_of(2) { "eu" } else { "us" };
    NewMessage::new(format!("o{n}")).with_attribute("region", region)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_fan_out_with_a_filter_survives_the_loss_of_a_follower() {
    let mut cluster = Cluster::start(10_000).await;
    let leader = cluster.leader().await;
    let follower = cluster.follower().await;
    cluster
        .bus(follower)
        .set_subscriptions(vec![
            subscription("audit", &[]),
            subscription("billing", &[("region", "eu")]),
        ])
        .await
        .unwrap();
    for n in 0..10 {
        let receipt = cluster
            .bus(follower)
            .publish("acme", "orders", order(n))
            .await;
        let expected = if n % 2 == 0 { 2 } else { 1 };
        assert_eq!(receipt.unwrap().delivered_to, expected);
    }
    cluster.kill(follower).await;
    let other = *cluster.members.keys().find(|&&id| id != leader).unwrap();
    for n in 10..20 {
        // Through the remaining follower and the leader: a majority of two commits.
        let via = if n % 2 == 0 { other } else { leader };
        cluster
            .bus(via)
            .publish("acme", "orders", order(n))
            .await
            .expect("publish is acknowledged with one member down");
    }
    let audit = QueueId::subscription("acme", "orders", "audit");
    let billing = QueueId::subscription("acme", "orders", "billing");
    let recorder = Recorder::default();
    let mut consumers = consume_everywhere(&cluster, &recorder, &audit, Duration::ZERO, 4);
    consumers.extend(consume_everywhere(
        &cluster,
        &recorder,
        &billing,
        Duration::ZERO,
        4,
    ));
    wait_for("every subscription received its messages", SETTLE, || {
        let audit = recorder.counts(&audit.to_string());
        let billing = recorder.counts(&billing.to_string());
        (audit.len() == 20 && billing.len() == 10).then_some(())
    })
    .await;
    let billing_seen = recorder.counts(&billing.to_string());
    let expected: HashSet<String> = (0..20).step_by(2).map(|n| format!("o{n}")).collect();
    assert_eq!(
        billing_seen.keys().cloned().collect::<HashSet<_>>(),
        expected
    );
    for member in cluster.members.values() {
        wait_drained(&member.bus, &audit).await;
        wait_drained(&member.bus, &billing).await;
        wait_for("the topic log is released", SETTLE, || {
            (member.bus.retained_publications() == 0).then_some(())
        })
        .await;
    }
    assert_eq!(recorder.all().len(), 30, "exactly once without a failover");

    // The follower comes back and catches up with the same state.
    cluster.restart(follower).await;
    let back = cluster.bus(follower);
    back.sync_reads().await.unwrap();
    assert_eq!(back.subscriptions().len(), 2);
    assert_eq!(back.stats(&audit).acked_total, 20);
    assert_eq!(back.stats(&billing).acked_total, 10);
    assert_eq!(back.retained_publications(), 0);
    stop_all(consumers).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handler_retries_then_dead_letters_and_replay_brings_it_back() {
    let cluster = Cluster::start(10_000).await;
    let follower = cluster.follower().await;
    let queue = QueueId::queue("acme", "mail");
    let policy = QueuePolicy {
        max_attempts: 3,
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        ..QueuePolicy::default()
    };
    cluster
        .bus(follower)
        .set_policy(&queue, &policy)
        .await
        .unwrap();
    let healed = Arc::new(AtomicBool::new(false));
    let recorder = Recorder::default();
    let consumers: Vec<_> = cluster
        .members
        .iter()
        .map(|(&id, m)| {
            let healed = Arc::clone(&healed);
            let handler = recorder.handler(id, Duration::ZERO, move |d| {
                if d.payload == b"poison" && !healed.load(Ordering::SeqCst) {
                    Err("poisoned".to_string())
                } else {
                    Ok(())
                }
            });
            m.bus.consume(queue.clone(), handler, 2)
        })
        .collect();
    let bus = cluster.bus(follower);
    bus.send(&queue, NewMessage::new("good")).await.unwrap();
    let poison = bus.send(&queue, NewMessage::new("poison")).await.unwrap();
    let leader = cluster.leader().await;
    wait_for("the poison message is dead-lettered", SETTLE, || {
        (cluster.bus(leader).dead_letters(&queue, None, 10).len() == 1).then_some(())
    })
    .await;
    let attempts: Vec<_> = recorder
        .all()
        .into_iter()
        .filter(|s| s.payload == "poison")
        .collect();
    assert_eq!(
        attempts.iter().map(|s| s.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let gaps: Vec<_> = attempts.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps[0] >= Duration::from_millis(90), "backoff: {gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(190), "doubled: {gaps:?}");
    bus.sync_reads().await.unwrap();
    let dead = bus.dead_letters(&queue, None, 10);
    assert_eq!(dead.len(), 1, "dead letters are replicated");
    assert_eq!((dead[0].id, dead[0].attempts), (poison, 3));
    assert_eq!(dead[0].last_error, "poisoned");
    assert_eq!(dead[0].payload, b"poison");
    assert_eq!(bus.stats(&queue).dead, 1);

    healed.store(true, Ordering::SeqCst);
    assert_eq!(bus.replay(&queue, None).await.unwrap(), 1);
    wait_for("the replayed message is delivered", SETTLE, || {
        (recorder.counts(&queue.to_string())["poison"] == 4).then_some(())
    })
    .await;
    wait_drained(cluster.bus(leader), &queue).await;
    let last = recorder.all().into_iter().rfind(|s| s.payload == "poison");
    assert_eq!(last.map(|s| s.attempt), Some(1), "attempts reset by replay");
    bus.sync_reads().await.unwrap();
    assert!(bus.dead_letters(&queue, None, 10).is_empty());
    assert_eq!(recorder.counts(&queue.to_string())["good"], 1);
    stop_all(consumers).await;
    cluster.stop().await;
}

/// What must be equal on every member: per queue the durable counters, dead letter ids, and
/// the subscriptions.
fn fingerprint(bus: &ReplicatedBus) -> String {
    let queues: Vec<_> = bus
        .queues(None)
        .into_iter()
        .map(|(id, s)| {
            let dead: Vec<u64> = bus
                .dead_letters(&id, None, usize::MAX)
                .iter()
                .map(|d| d.id)
                .collect();
            format!(
                "{id}: depth {} dead {dead:?} sent {} acked {} last {}",
                s.depth, s.sent_total, s.acked_total, s.last_id
            )
        })
        .collect();
    format!("{queues:#?} {:?}", bus.subscriptions())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_member_restores_the_machine_from_snapshots() {
    let mut cluster = Cluster::start(20).await;
    let follower = cluster.follower().await;
    let queue = QueueId::queue("acme", "work");
    let backlog = QueueId::queue("acme", "backlog");
    let leader = cluster.leader().await;
    let bus = cluster.bus(leader).clone();
    bus.set_subscriptions(vec![subscription("audit", &[("region", "eu")])])
        .await
        .unwrap();
    let once = QueuePolicy {
        max_attempts: 1,
        ..QueuePolicy::default()
    };
    bus.set_policy(&queue, &once).await.unwrap();
    for n in 0..30 {
        bus.send(&queue, NewMessage::new(format!("{n}")))
            .await
            .unwrap();
    }
    for n in 0..10 {
        bus.publish("acme", "orders", order(n)).await.unwrap();
    }
    // Even messages are acknowledged, odd ones dead-lettered at their first failure.
    let recorder = Recorder::default();
    let consumers: Vec<_> = cluster
        .members
        .iter()
        .map(|(&id, m)| {
            let handler = recorder.handler(id, Duration::ZERO, |d| {
                let n: u64 = String::from_utf8_lossy(&d.payload).parse().unwrap_or(1);
                if n.is_multiple_of(2) {
                    Ok(())
                } else {
                    Err(format!("odd {n}"))
                }
            });
            m.bus.consume(queue.clone(), handler, 4)
        })
        .collect();
    wait_for("work is settled", SETTLE, || {
        let s = bus.stats(&queue);
        (s.depth == 0 && s.dead == 15).then_some(())
    })
    .await;
    stop_all(consumers).await;
    let expected = fingerprint(&bus);
    for member in cluster.members.values() {
        wait_for("every member snapshotted", SETTLE, || {
            (member.bus.node().status().snapshot_index > 0).then_some(())
        })
        .await;
    }

    // Restart from its own snapshot plus the log after it.
    cluster.kill(follower).await;
    cluster.restart(follower).await;
    let restored = cluster.bus(follower).clone();
    assert!(restored.node().status().snapshot_index > 0);
    restored.sync_reads().await.unwrap();
    assert_eq!(fingerprint(&restored), expected);

    // Down while the others move on and compact: it catches up from the leader's snapshot.
    cluster.kill(follower).await;
    for n in 0..25 {
        cluster
            .bus(leader)
            .send(&backlog, NewMessage::new(format!("b{n}")))
            .await
            .unwrap();
    }
    let mut compacted = 0;
    for member in cluster.members.values() {
        compacted = member.bus.node().compact_now().await.unwrap();
    }
    let expected = fingerprint(cluster.bus(leader));
    cluster.restart(follower).await;
    let caught_up = cluster.bus(follower).clone();
    wait_for("the restarted member catches up", SETTLE, || {
        (fingerprint(&caught_up) == expected).then_some(())
    })
    .await;
    let status = caught_up.node().status();
    assert!(
        status.snapshot_index >= compacted,
        "caught up from the leader's snapshot: {status:?}"
    );
    assert_eq!(caught_up.stats(&backlog).depth, 25);
    assert_eq!(
        caught_up
            .stats(&QueueId::subscription("acme", "orders", "audit"))
            .depth,
        5
    );
    cluster.stop().await;
}
