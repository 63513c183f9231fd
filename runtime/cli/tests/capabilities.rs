//! The platform's capabilities end to end, through the example components
//! of `cloudware-examples/` (written with the SDK) on a real `cloudware up`
//! driven by the real `cloudware` client commands: key-value, config and
//! secrets, linked services, queues (with dead letters and a `kill -9` of
//! the node) and topics. Every capability is denied unless granted at
//! deploy.
//!
//! The state the message consumers leave in key-value buckets is read
//! back through `kv-guest` (`tests/programs/kv-guest`), deployed in the
//! same tenant with the same buckets granted.

mod common;

use cloudware_test_artifacts::{
    CONFIG_GREETING, HELLO, KV_COUNTER, KV_GUEST, ORDERS_CLIENT, ORDERS_SERVICE, OUTBOUND_FETCH,
    PUBSUB_PUBLISHER, PUBSUB_SUBSCRIBER, QUEUE_PRODUCER, QUEUE_WORKER,
};
use common::{
    Node, Reply, admin_request, cli, cli_json, cli_ok, deploy_ok, files_under, gateway_get,
    gateway_send, tenant_developer, wait_until,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

/// How long asynchronous deliveries (queues, topics, retries) may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Host of the `kv-guest` reader in every test.
const KV_HOST: &str = "kv.test";

/// Deploys `kv-guest` as app `kv` at `kv.test/`, granted `buckets`.
fn deploy_kv_reader(node: &Node, token: &str, buckets: &[&str]) {
    let mut args = vec!["--route", "kv.test/"];
    for bucket in buckets {
        args.extend(["--kv-bucket", bucket]);
    }
    deploy_ok(node, token, "kv", KV_GUEST, &args);
}

/// The keys of `bucket`, read through the `kv-guest` reader.
fn kv_keys(node: &Node, bucket: &str) -> BTreeSet<String> {
    let reply = gateway_get(node, KV_HOST, &format!("/list?bucket={bucket}"));
    assert_eq!(reply.status, 200, "listing {bucket}: {}", reply.text());
    reply
        .text()
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The value of `key` in `bucket` (`None`: absent), through the reader.
fn kv_get(node: &Node, bucket: &str, key: &str) -> Option<String> {
    let reply = gateway_get(node, KV_HOST, &format!("/get?bucket={bucket}&key={key}"));
    match reply.status {
        200 => Some(reply.text()),
        404 => None,
        status => panic!("reading {bucket}/{key}: {status} {}", reply.text()),
    }
}

/// A deploy that must be refused: asserts exit code 5 (rejected input)
/// and that stderr names `needle`.
fn assert_refused(node: &Node, token: &str, app: &str, package: &str, args: &[&str], needle: &str) {
    let mut all = vec!["deploy", app, "--package", package];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = cli(node, token, &all);
    assert_eq!(
        code,
        5,
        "`cloudware {}` should be refused: stdout {stdout:?}, stderr {stderr:?}",
        all.join(" ")
    );
    assert!(
        stderr.contains(needle),
        "the refusal should name `{needle}`: {stderr:?}"
    );
}

fn assert_reply(reply: &Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.text());
}

#[test]
fn kv_counter_counts_across_requests_and_a_bucket_must_be_granted() {
    let node = Node::start(&[]);
    let dev = tenant_developer(&node, "acme");
    deploy_ok(
        &node,
        &dev,
        "counter",
        KV_COUNTER,
        &["--route", "/counter", "--kv-bucket", "counters"],
    );

    // Each request is a fresh instance: the count lives in the bucket.
    for expected in 1..=3 {
        let reply = gateway_get(&node, "any.test", "/counter/home");
        assert_reply(&reply, 200, "GET /counter/home");
        assert_eq!(reply.text(), format!("/counter/home {expected}\n"));
    }
    let reply = gateway_get(&node, "any.test", "/counter/about");
    assert_eq!(reply.text(), "/counter/about 1\n");
    // Peeking does not count; the health probe of the deploy did not either.
    let reply = gateway_get(&node, "any.test", "/counter/home?peek=1");
    assert_eq!(reply.text(), "/counter/home 3\n");
    let reply = gateway_get(&node, "any.test", "/counter?peek=1");
    assert_eq!(reply.text(), "/counter 0\n");

    // The same package without the grant is refused, naming the interface,
    // and nothing of it is deployed.
    assert_refused(
        &node,
        &dev,
        "uncounted",
        KV_COUNTER,
        &["--route", "/uncounted"],
        "wasi:keyvalue/store@0.2.0-draft",
    );
    let reply = gateway_get(&node, "any.test", "/uncounted/x");
    assert_eq!(reply.status, 404, "{}", reply.text());
    // The refusal changed nothing for the granted app.
    let reply = gateway_get(&node, "any.test", "/counter/home");
    assert_eq!(reply.text(), "/counter/home 4\n");
}

#[test]
fn config_greeting_sees_config_and_secret_which_never_leak() {
    let node = Node::start(&[]);
    let dev = tenant_developer(&node, "acme");
    let secret = format!("s3cr3t-{}-{}", std::process::id(), node.admin.port());
    let secret_arg = format!("api_key={secret}");
    let deployed = cli_json(
        &node,
        &dev,
        &[
            "deploy",
            "greeting",
            "--package",
            CONFIG_GREETING,
            "--route",
            "/greet",
            "--config",
            "greeting=Bonjour",
            "--secret",
            &secret_arg,
        ],
    );
    assert_eq!(deployed["status"], "active", "{deployed}");

    let reply = gateway_get(&node, "any.test", "/greet");
    assert_reply(&reply, 200, "GET /greet");
    assert_eq!(
        reply.text(),
        format!("Bonjour, world!\napi_key: set ({} bytes)\n", secret.len())
    );
    // The guest's log line (wasi:logging) reached the node's log.
    wait_until("the guest's log line", Duration::from_secs(5), || {
        node.stderr().contains("greeting with").then_some(())
    });

    // Nothing the platform shows back holds the secret: CLI (text and
    // JSON), raw API answers, the node's log, the files of its data dir.
    let mut shown = vec![deployed.to_string()];
    for args in [
        &["history", "greeting"][..],
        &["history", "greeting", "--output", "json"],
        &["apps"],
        &["apps", "--output", "json"],
        &["status", "--output", "json"],
        &["packages", "--output", "json"],
    ] {
        shown.push(cli_ok(&node, &dev, args));
    }
    for path in ["/v1/apps/greeting/deployments", "/v1/apps", "/v1/status"] {
        let reply = admin_request(&node, "GET", path, Some(&dev), None);
        assert_reply(&reply, 200, path);
        shown.push(reply.text());
    }
    for text in &shown {
        assert!(!text.contains(&secret), "the secret is shown: {text}");
    }
    assert!(
        !node.stderr().contains(&secret),
        "the secret is in the node's log"
    );
    let files = files_under(&node.data_dir());
    assert!(!files.is_empty(), "the data dir holds files");
    for file in files {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes
                .windows(secret.len())
                .any(|window| window == secret.as_bytes()),
            "{} holds the secret in the clear",
            file.display()
        );
    }
}

#[test]
fn orders_client_calls_the_linked_orders_service_with_typed_values() {
    let node = Node::start(&[]);
    let dev = tenant_developer(&node, "acme");
    deploy_ok(&node, &dev, "orders", ORDERS_SERVICE, &[]);
    deploy_ok(
        &node,
        &dev,
        "shop",
        ORDERS_CLIENT,
        &[
            "--route",
            "/orders",
            "--link",
            "acme:orders/api@1.0.0=orders",
        ],
    );

    let post = |body: Value| {
        gateway_send(
            &node,
            "POST",
            "shop.test",
            "/orders",
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )
    };
    let json_of = |reply: &Reply| -> Value {
        serde_json::from_str(&reply.text())
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", reply.text()))
    };

    // A list of records in, a record with a list of records out.
    let reply = post(json!({
        "customer": "ada",
        "lines": [{"sku": "book", "quantity": 2}, {"sku": "pen", "quantity": 3}],
    }));
    assert_reply(&reply, 200, "POST /orders");
    assert_eq!(
        json_of(&reply),
        json!({
            "customer": "ada",
            "lines": [
                {"sku": "book", "quantity": 2, "unit_cents": 1250, "cents": 2500},
                {"sku": "pen", "quantity": 3, "unit_cents": 150, "cents": 450},
            ],
            "total_cents": 2950,
        })
    );
    // Typed refusals: variant cases with and without payloads.
    let reply = post(json!({"customer": "ada", "lines": [{"sku": "rocket", "quantity": 1}]}));
    assert_reply(&reply, 422, "an unknown SKU");
    assert_eq!(
        json_of(&reply),
        json!({"error": "unknown-sku", "detail": "rocket"})
    );
    let reply = post(json!({"customer": "ada", "lines": []}));
    assert_reply(&reply, 422, "an empty order");
    assert_eq!(json_of(&reply)["error"], "empty");
    // A service that traps: the caller gets `platform(failed(…))`, not a trap.
    let reply = post(json!({"customer": "ada", "lines": [{"sku": "panic", "quantity": 1}]}));
    assert_reply(&reply, 503, "a trapping service");
    let refusal = json_of(&reply);
    assert_eq!(refusal["error"], "platform", "{refusal}");
    assert!(
        refusal["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("the service failed")),
        "{refusal}"
    );
    // A function returning a plain list.
    let reply = gateway_get(&node, "shop.test", "/orders");
    assert_reply(&reply, 200, "GET /orders");
    assert_eq!(json_of(&reply), json!(["book", "mug", "pen"]));

    // Importing the interface without a link is refused, naming it.
    assert_refused(
        &node,
        &dev,
        "unlinked-shop",
        ORDERS_CLIENT,
        &["--route", "/unlinked"],
        "acme:orders/api@1.0.0",
    );
}

#[test]
fn outbound_fetch_reaches_only_the_allowed_hosts() {
    let node = Node::start(&[]);
    let dev = tenant_developer(&node, "acme");
    // The upstream: hello, on every host; the fetcher on its own host,
    // allowed to call the gateway by its IP (not by any other name).
    deploy_ok(&node, &dev, "hello", HELLO, &["--route", "/"]);
    let allowed = format!("127.0.0.1:{}", node.gateway.port());
    deploy_ok(
        &node,
        &dev,
        "fetch",
        OUTBOUND_FETCH,
        &["--route", "fetch.test/", "--allow-outbound", &allowed],
    );

    let reply = gateway_get(&node, "fetch.test", &format!("/?url=http://{allowed}/"));
    assert_reply(&reply, 200, "fetching an allowed host");
    assert_eq!(reply.text(), "Hello from Cloudware!\n");
    let denied = format!("localhost:{}", node.gateway.port());
    let reply = gateway_get(&node, "fetch.test", &format!("/?url=http://{denied}/"));
    assert_reply(&reply, 403, "fetching a host not allowed");
    assert!(
        reply.text().starts_with("outbound request denied"),
        "{}",
        reply.text()
    );
}

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

/// POSTs `payload` to the producer and returns the message id it answers.
fn send_job(node: &Node, payload: &str) -> u64 {
    let reply = gateway_send(node, "POST", "jobs.test", "/", &[], payload.as_bytes());
    assert_reply(&reply, 200, "POST a job");
    reply
        .text()
        .trim()
        .parse()
        .unwrap_or_else(|err| panic!("not an id ({err}): {:?}", reply.text()))
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
    let publish = |kind: &str| {
        let reply = gateway_send(
            &node,
            "POST",
            "events.test",
            &format!("/?kind={kind}"),
            &[],
            b"{}",
        );
        assert_reply(&reply, 200, "publish");
        reply.text().trim().to_owned()
    };
    for _ in 0..3 {
        assert_eq!(publish("a"), "2");
    }
    for _ in 0..2 {
        assert_eq!(publish("b"), "1");
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
