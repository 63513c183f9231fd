//! Helpers of the capability tests (`capabilities.rs`, `messaging.rs`):
//! the `kv-guest` reader that reads key-value buckets back, refused deploys
//! and reply checks.

use super::{Node, Reply, cli, deploy_ok, gateway_get, gateway_send};
use cloudware_test_artifacts::KV_GUEST;
use std::collections::BTreeSet;
use std::time::Duration;

/// How long asynchronous deliveries (queues, topics, retries) may take.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Host of the `kv-guest` reader in every test.
pub const KV_HOST: &str = "kv.test";

/// Deploys `kv-guest` as app `kv` at `kv.test/`, granted `buckets`.
pub fn deploy_kv_reader(node: &Node, token: &str, buckets: &[&str]) {
    let mut args = vec!["--route", "kv.test/"];
    for bucket in buckets {
        args.extend(["--kv-bucket", bucket]);
    }
    deploy_ok(node, token, "kv", KV_GUEST, &args);
}

/// The keys of `bucket`, read through the `kv-guest` reader.
pub fn kv_keys(node: &Node, bucket: &str) -> BTreeSet<String> {
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
pub fn kv_get(node: &Node, bucket: &str, key: &str) -> Option<String> {
    let reply = gateway_get(node, KV_HOST, &format!("/get?bucket={bucket}&key={key}"));
    match reply.status {
        200 => Some(reply.text()),
        404 => None,
        status => panic!("reading {bucket}/{key}: {status} {}", reply.text()),
    }
}

/// A deploy that must be refused: asserts exit code 5 (rejected input)
/// and that stderr names `needle`.
pub fn assert_refused(
    node: &Node,
    token: &str,
    app: &str,
    package: &str,
    args: &[&str],
    needle: &str,
) {
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

pub fn assert_reply(reply: &Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.text());
}

/// POSTs `payload` to the queue producer (`jobs.test/`) through `node`'s
/// gateway; the message id it answers.
pub fn send_job(node: &Node, payload: &str) -> u64 {
    let reply = gateway_send(node, "POST", "jobs.test", "/", &[], payload.as_bytes());
    assert_reply(&reply, 200, "POST a job");
    reply
        .text()
        .trim()
        .parse()
        .unwrap_or_else(|err| panic!("not an id ({err}): {:?}", reply.text()))
}

/// Publishes an event of `kind` through the publisher (`events.test/`) on
/// `node`'s gateway; how many subscriptions it reached.
pub fn publish(node: &Node, kind: &str) -> String {
    let reply = gateway_send(
        node,
        "POST",
        "events.test",
        &format!("/?kind={kind}"),
        &[],
        b"{}",
    );
    assert_reply(&reply, 200, "publish");
    reply.text().trim().to_owned()
}
