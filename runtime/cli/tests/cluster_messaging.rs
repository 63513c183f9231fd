//! Queues and topics on a cluster of three `cloudware up --cluster-listen` processes: the
//! cluster's replicated bus keeps every acknowledged message when the host that leads the
//! bus's raft group (and so delivers) is killed with `kill -9`, and a surviving host
//! delivers them all, at least once: the queue's jobs all wait for a worker deployed after
//! the kill; the topic's subscriber runs throughout, and a second batch of events is still
//! undelivered at the kill — the shared Redis is paused (SIGSTOP) before they are published,
//! so no delivery can record its event, and resumed only after the kill. At most the
//! subscription's concurrency (4) of them are in flight at the killed host (whose writes,
//! already sent, Redis may still apply); the new bus leader must deliver the rest.
//!
//! Deliveries are observed in key-value buckets the consumers write to. Each host's
//! key-value store would be its own (sled), so every host uses one Redis server (started
//! here on a free port; the test is skipped when `redis-server` is not installed) and the
//! buckets are read back through `kv-guest` on a surviving host.

mod common;

use cloudware_test_artifacts::{PUBSUB_PUBLISHER, PUBSUB_SUBSCRIBER, QUEUE_PRODUCER, QUEUE_WORKER};
use common::capabilities::{
    DELIVERY_TIMEOUT, deploy_kv_reader, kv_get, kv_keys, publish, send_job,
};
use common::cluster::{SETTLE, cluster_of, wait_for_members};
use common::paused::Paused;
use common::{Node, cli_json, deploy_ok, gateway_send, tenant_developer, wait_until};
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Jobs sent before the kill.
const JOBS: usize = 24;
/// Events (kind `a`) published and delivered before the kill.
const EVENTS: u64 = 8;
/// Events (kind `b`) published while deliveries cannot complete, pending at the kill.
const PENDING: u64 = 12;

/// A throw-away Redis server (no persistence), killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Option<Redis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let redis = Redis { child, port };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The id of the host `node` reports as the bus group's leader.
fn bus_leader(node: &Node) -> Option<u64> {
    let nodes = cli_json(node, &node.token, &["node", "list"]);
    nodes["hosts"].as_array()?.iter().find_map(|host| {
        host["bus_leader"]
            .as_bool()
            .unwrap_or(false)
            .then(|| host["id"].as_u64())
            .flatten()
    })
}

#[test]
fn acknowledged_queue_and_topic_messages_survive_a_kill_9_of_the_bus_leader() {
    let Some(redis) = Redis::start() else {
        eprintln!("skipped: no redis-server to share key-value buckets between hosts");
        return;
    };
    let config_dir = tempfile::tempdir().expect("temp dir");
    let config = config_dir.path().join("cloudware.toml");
    std::fs::write(
        &config,
        format!(
            "[keyvalue]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:{}/0\"\n",
            redis.port
        ),
    )
    .expect("write the config");
    let config = config.to_str().expect("utf-8 path").to_owned();
    let extra = ["--config", config.as_str()];
    let started = Instant::now();
    let mut hosts = cluster_of(&[("alpha", &extra), ("beta", &extra), ("gamma", &extra)]);
    wait_for_members(&hosts[0], 3);
    eprintln!("three hosts in {:?}", started.elapsed());

    let dev = tenant_developer(&hosts[0], "acme");
    deploy_kv_reader(&hosts[0], &dev, &["jobs-done", "events-all"]);
    let grants = config_dir.path().join("worker.toml");
    std::fs::write(
        &grants,
        "[keyvalue]\nbuckets = [\"jobs-done\"]\n\
         [[queues.consume]]\nqueue = \"jobs\"\nmax_attempts = 10\nbackoff_ms = 100\n",
    )
    .expect("write the grants file");
    let producer_args = ["--route", "jobs.test/", "--send-queue", "jobs"];
    deploy_ok(&hosts[0], &dev, "producer", QUEUE_PRODUCER, &producer_args);
    let grants = grants.to_str().expect("utf-8 path");
    let subscriber_args = [
        "--subscribe",
        "events",
        "--config",
        "name=all",
        "--kv-bucket",
        "events-all",
    ];
    deploy_ok(
        &hosts[0],
        &dev,
        "audit",
        PUBSUB_SUBSCRIBER,
        &subscriber_args,
    );
    let publisher_args = ["--route", "events.test/", "--publish", "events"];
    deploy_ok(
        &hosts[0],
        &dev,
        "publisher",
        PUBSUB_PUBLISHER,
        &publisher_args,
    );

    let leader = wait_until("a bus leader is reported", SETTLE, || bus_leader(&hosts[0]));
    // alpha, beta and gamma are hosts 1, 2 and 3.
    let leader_index = usize::try_from(leader).expect("an id") - 1;
    assert!(leader_index < hosts.len(), "bus leader {leader}");
    // Write through a host that does not deliver (its writes are forwarded to the leader).
    let via = (leader_index + 1) % hosts.len();
    // The subscription is replicated shortly after the subscriber's deploy.
    wait_until("the topic subscription is in place", SETTLE, || {
        let reply = gateway_send(
            &hosts[via],
            "POST",
            "events.test",
            "/?kind=probe",
            &[],
            b"{}",
        );
        (reply.status == 200 && reply.text().trim() == "1").then_some(())
    });

    let mut jobs = Vec::new();
    for n in 0..JOBS {
        let payload = format!("job {n} before the kill");
        jobs.push((send_job(&hosts[via], &payload), payload));
    }
    for _ in 0..EVENTS {
        assert_eq!(
            publish(&hosts[via], "a"),
            "1",
            "every event reaches the subscription"
        );
    }
    let before = kv_keys(&hosts[via], "jobs-done").len();
    let seen = |node: &Node, kind: &str| {
        kv_get(node, "events-all", &format!("seen-{kind}"))
            .and_then(|text| text.trim().parse::<u64>().ok())
    };
    wait_until(
        "the events before the pause are counted",
        DELIVERY_TIMEOUT,
        || (seen(&hosts[via], "a") >= Some(EVENTS)).then_some(()),
    );
    eprintln!(
        "before the kill of host {leader}: {before} of {JOBS} jobs recorded, every event of kind a counted"
    );

    // No delivery can record its event from here until after the kill.
    let redis_paused = Paused::stop(&[redis.child.id()]);
    for _ in 0..PENDING {
        assert_eq!(
            publish(&hosts[via], "b"),
            "1",
            "every pending event reaches the subscription"
        );
    }
    // Let the leader take some of them in flight.
    std::thread::sleep(Duration::from_millis(300));

    let killed_at = Instant::now();
    hosts[leader_index].kill9();
    redis_paused.resume();
    let survivor = &hosts[via];
    // The worker comes only now: every job was still queued when the leader died.
    deploy_ok(
        survivor,
        &dev,
        "worker",
        QUEUE_WORKER,
        &["--capabilities", grants],
    );
    let wanted: BTreeSet<String> = jobs.iter().map(|(id, _)| id.to_string()).collect();
    wait_until(
        "every acknowledged job is recorded after the kill",
        SETTLE + DELIVERY_TIMEOUT,
        || {
            wanted
                .is_subset(&kv_keys(survivor, "jobs-done"))
                .then_some(())
        },
    );
    eprintln!(
        "every job recorded {:?} after the kill",
        killed_at.elapsed()
    );
    for (id, payload) in &jobs {
        assert_eq!(
            kv_get(survivor, "jobs-done", &id.to_string()).as_deref(),
            Some(payload.as_str()),
            "job {id}"
        );
    }
    wait_until(
        "every event pending at the kill is counted after it",
        SETTLE + DELIVERY_TIMEOUT,
        || (seen(survivor, "b") >= Some(PENDING)).then_some(()),
    );
    eprintln!(
        "every pending event counted {:?} after the kill ({:?} deliveries of {PENDING}: at least once)",
        killed_at.elapsed(),
        seen(survivor, "b")
    );
    // Another host leads the bus now, and new messages still go through.
    let new_leader = wait_until("a new bus leader", SETTLE, || {
        bus_leader(survivor).filter(|id| *id != leader)
    });
    let after = send_job(survivor, "job after the kill");
    wait_until(
        "the job after the kill is recorded",
        DELIVERY_TIMEOUT,
        || {
            kv_keys(survivor, "jobs-done")
                .contains(&after.to_string())
                .then_some(())
        },
    );
    eprintln!("host {new_leader} leads the bus after the kill of host {leader}");
}
