//! Queues and topics end to end, through the example components of
//! `cloudware-examples/` on a real `cloudware up`: every queued job is
//! processed, failing ones are dead-lettered (and replayed with
//! `cloudware queue`), a full queue pushes back on the sender, jobs survive
//! a `kill -9` of the node, and each topic subscription gets what its filter
//! matches. The state the consumers leave in key-value buckets is read back
//! through `kv-guest` (`tests/programs/kv-guest`).

mod common;

use cloudware_test_artifacts::{PUBSUB_PUBLISHER, PUBSUB_SUBSCRIBER, QUEUE_PRODUCER, QUEUE_WORKER};
use common::capabilities::{
    DELIVERY_TIMEOUT, assert_reply, deploy_kv_reader, kv_get, kv_keys, publish, send_job,
};
use common::{
    Node, admin_request, cli_json, cli_ok, deploy_ok, gateway_send, tenant_developer, wait_until,
};
use serde_json::Value;
use std::collections::BTreeSet;

/// A grants file for the queue worker: its bucket, and the queue with a
/// quick retry policy (two attempts, 100 ms apart).
fn worker_grants(dir: &std::path::Path) -> String {
    let path = dir.join("worker.toml");
    std::fs::write(
        &path,
        "[keyvalue]\nbuckets = [\"jobs-done\"]\n\
         [[queues.consume]]\nqueue = \"jobs\"\nmax_attempts = 2\nbackoff_ms = 100\n",
    )
    .expect("write the grants file");
    path.to_str().expect("utf-8 path").to_owned()
}

/// Deploys `queue-producer` (at `jobs.test/`, sending to `jobs`) and
/// `queue-worker` with the grants file `grants`.
fn deploy_producer_and_worker(node: &Node, dev: &str, grants: &str) {
    deploy_ok(
        node,
        dev,
        "producer",
        QUEUE_PRODUCER,
        &["--route", "jobs.test/", "--send-queue", "jobs"],
    );
    deploy_ok(
        node,
        dev,
        "worker",
        QUEUE_WORKER,
        &["--capabilities", grants],
    );
}

/// Waits until every id of `ids` is a key of bucket `jobs-done`, then
/// checks each holds its payload.
fn wait_for_jobs(node: &Node, jobs: &[(u64, String)]) {
    let wanted: BTreeSet<String> = jobs.iter().map(|(id, _)| id.to_string()).collect();
    wait_until(
        "every job is recorded in bucket jobs-done",
        DELIVERY_TIMEOUT,
        || {
            let keys = kv_keys(node, "jobs-done");
            wanted.is_subset(&keys).then_some(())
        },
    );
    for (id, payload) in jobs {
        assert_eq!(
            kv_get(node, "jobs-done", &id.to_string()).as_deref(),
            Some(payload.as_str()),
            "job {id}"
        );
    }
}

#[test]
fn queued_jobs_are_all_processed_and_failing_ones_are_dead_lettered() {
    let node = Node::start(&[]);
    let dev = tenant_developer(&node, "acme");
    let grants_dir = tempfile::tempdir().expect("temp dir");
    deploy_kv_reader(&node, &dev, &["jobs-done"]);
    deploy_producer_and_worker(&node, &dev, &worker_grants(grants_dir.path()));

    let mut jobs = Vec::new();
    for n in 0..20 {
        let payload = format!("job {n}");
        jobs.push((send_job(&node, &payload), payload));
    }
    let failing = send_job(&node, "fail");
    let trapping = send_job(&node, "trap");
    let ids: BTreeSet<u64> = jobs.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), jobs.len(), "message ids are unique: {ids:?}");
    wait_for_jobs(&node, &jobs);

    // Both misbehaving jobs end up dead-lettered after their two attempts,
    // and were never recorded.
    let letters = wait_until(
        "the failing jobs are dead-lettered",
        DELIVERY_TIMEOUT,
        || {
            let reply = admin_request(
                &node,
                "GET",
                "/v1/queues/jobs/dead-letters",
                Some(&dev),
                None,
            );
            assert_reply(&reply, 200, "dead letters");
            let letters: Vec<Value> = serde_json::from_str(&reply.text()).expect("JSON");
            (letters.len() >= 2).then_some(letters)
        },
    );
    assert_eq!(letters.len(), 2, "{letters:?}");
    let letter = |id: u64| {
        letters
            .iter()
            .find(|letter| letter["id"] == id)
            .unwrap_or_else(|| panic!("no dead letter {id}: {letters:?}"))
    };
    assert_eq!(letter(failing)["payload"], "fail");
    assert_eq!(letter(failing)["attempts"], 2);
    assert!(
        letter(failing)["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("asked to fail")),
        "{letters:?}"
    );
    assert_eq!(letter(trapping)["payload"], "trap");
    assert_eq!(letter(trapping)["attempts"], 2);
    for id in [failing, trapping] {
        assert_eq!(kv_get(&node, "jobs-done", &id.to_string()), None);
    }
    // The queue drains: nothing left to deliver, two dead letters kept.
    wait_until("queue `jobs` is drained", DELIVERY_TIMEOUT, || {
        let reply = admin_request(&node, "GET", "/v1/queues", Some(&dev), None);
        assert_reply(&reply, 200, "queues");
        let queues: Value = serde_json::from_str(&reply.text()).expect("JSON");
        let jobs_queue = queues
            .as_array()
            .and_then(|list| list.iter().find(|q| q["queue"] == "jobs"))
            .unwrap_or_else(|| panic!("no queue `jobs` in {queues}"))
            .clone();
        assert_eq!(jobs_queue["dead"], 2, "{jobs_queue}");
        (jobs_queue["depth"] == 0).then_some(())
    });

    // The operator's view through the CLI: the dead letters with their
    // errors, then a replay puts them back (they fail again, twice each).
    let listed = cli_ok(&node, &dev, &["queue", "dlq", "jobs"]);
    assert!(
        listed.contains("asked to fail") && listed.contains(&failing.to_string()),
        "{listed}"
    );
    let replayed = cli_json(
        &node,
        &dev,
        &["queue", "replay", "jobs", "--id", &failing.to_string()],
    );
    assert_eq!(replayed["replayed"], 1, "{replayed}");
    wait_until("the replayed job is dead again", DELIVERY_TIMEOUT, || {
        let letters = cli_json(&node, &dev, &["queue", "dlq", "jobs"]);
        let again = letters
            .as_array()
            .and_then(|list| list.iter().find(|l| l["id"] == failing).cloned())?;
        (letters.as_array().map(Vec::len) == Some(2)).then_some(again)
    });
    let queues = cli_ok(&node, &dev, &["queue", "list"]);
    assert!(queues.contains("jobs"), "{queues}");
}

#[test]
fn a_full_queue_pushes_back_on_the_sender_and_loses_nothing() {
    let node = Node::start(&[]);
    let dev = tenant_developer(&node, "acme");
    let grants_dir = tempfile::tempdir().expect("temp dir");
    let grants = grants_dir.path().join("worker.toml");
    // At most 3 messages in the queue; failing jobs wait a minute between
    // attempts, so they stay in it.
    std::fs::write(
        &grants,
        "[keyvalue]\nbuckets = [\"jobs-done\"]\n\
         [[queues.consume]]\nqueue = \"jobs\"\nmax_attempts = 100\nbackoff_ms = 60000\nmax_depth = 3\n",
    )
    .expect("grants file");
    deploy_producer_and_worker(&node, &dev, grants.to_str().expect("utf-8"));
    let held: Vec<u64> = (0..3).map(|_| send_job(&node, "fail")).collect();
    // The fourth is refused with back-pressure, and stored nowhere.
    let reply = gateway_send(&node, "POST", "jobs.test", "/", &[], b"one too many");
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert!(reply.text().contains("full"), "{}", reply.text());
    let queues = cli_json(&node, &dev, &["queue", "list"]);
    let jobs = queues
        .as_array()
        .and_then(|list| list.iter().find(|q| q["queue"] == "jobs").cloned())
        .unwrap_or_else(|| panic!("no queue jobs in {queues}"));
    assert_eq!(jobs["depth"], 3, "{jobs}");
    assert_eq!(jobs["sent_total"], 3, "{jobs}");
    assert_eq!(held.len(), 3);
}

#[test]
fn queued_jobs_survive_a_kill_9_of_the_node() {
    let mut node = Node::start(&[]);
    let dev = tenant_developer(&node, "acme");
    let grants_dir = tempfile::tempdir().expect("temp dir");
    deploy_kv_reader(&node, &dev, &["jobs-done"]);
    // A producer, and no consumer yet: the jobs wait in the queue.
    deploy_ok(
        &node,
        &dev,
        "producer",
        QUEUE_PRODUCER,
        &["--route", "jobs.test/", "--send-queue", "jobs"],
    );
    let mut jobs = Vec::new();
    for n in 0..15 {
        let payload = format!("job {n} before the crash");
        jobs.push((send_job(&node, &payload), payload));
    }

    // The node dies without a chance to flush anything more.
    node.kill9();
    node.restart();

    // The queue kept every acknowledged job; the consumer gets them all.
    deploy_ok(
        &node,
        &dev,
        "worker",
        QUEUE_WORKER,
        &["--capabilities", &worker_grants(grants_dir.path())],
    );
    // And the producer still works after the restart, ids going on.
    let after = send_job(&node, "job after the crash");
    assert!(
        jobs.iter().all(|(id, _)| *id < after),
        "ids go on after a restart: {after} vs {jobs:?}"
    );
    jobs.push((after, "job after the crash".to_owned()));
    wait_for_jobs(&node, &jobs);
}

#[test]
fn each_topic_subscription_gets_the_events_its_filter_matches() {
    let node = Node::start(&[]);
    let dev = tenant_developer(&node, "acme");
    deploy_kv_reader(&node, &dev, &["events-all", "events-a"]);
    // One package, two subscriptions: everything, and kind=a only.
    deploy_ok(
        &node,
        &dev,
        "audit",
        PUBSUB_SUBSCRIBER,
        &[
            "--subscribe",
            "events",
            "--config",
            "name=all",
            "--kv-bucket",
            "events-all",
        ],
    );
    deploy_ok(
        &node,
        &dev,
        "only-a",
        PUBSUB_SUBSCRIBER,
        &[
            "--subscribe",
            "events:kind=a",
            "--config",
            "name=a",
            "--kv-bucket",
            "events-a",
        ],
    );
    deploy_ok(
        &node,
        &dev,
        "publisher",
        PUBSUB_PUBLISHER,
        &["--route", "events.test/", "--publish", "events"],
    );

    // Each publish says how many subscriptions it reached.
    for _ in 0..3 {
        assert_eq!(publish(&node, "a"), "2");
    }
    for _ in 0..2 {
        assert_eq!(publish(&node, "b"), "1");
    }

    let count = |bucket: &str, key: &str| {
        kv_get(&node, bucket, key).map(|text| text.trim().parse::<u64>().expect("a count"))
    };
    wait_until("every subscriber has counted", DELIVERY_TIMEOUT, || {
        let done = count("events-all", "seen-a") >= Some(3)
            && count("events-all", "seen-b") >= Some(2)
            && count("events-a", "seen-a") >= Some(3);
        done.then_some(())
    });
    // Delivery is at least once; on a healthy node, exactly once.
    assert_eq!(count("events-all", "seen-a"), Some(3));
    assert_eq!(count("events-all", "seen-b"), Some(2));
    assert_eq!(count("events-a", "seen-a"), Some(3));
    assert_eq!(
        kv_keys(&node, "events-a"),
        BTreeSet::from(["seen-a".to_owned()]),
        "the kind=a subscription got only kind a"
    );
}
